import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** A browser session made at `/login`; only a SHA-256 hash of its token is stored. */
@Entity({ name: 'sessions', schema: 'drover' })
export class SessionEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  /** Hex SHA-256 of the session token (the cookie's value); unique. */
  @Column({ name: 'token_hash', type: 'varchar', length: 64, unique: true }) tokenHash!: string;
  /** The API key the session was made from; revoking it ends the session. */
  @Index('sessions_api_key_id')
  @Column({ name: 'api_key_id', type: 'uuid' }) apiKeyId!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  /** Last request seen, written at most once a minute (idle expiry counts from it). */
  @Column({ name: 'last_seen_at', type: 'timestamptz', default: () => 'now()' }) lastSeenAt!: Date;
  /** Absolute expiry: creation plus the maximum lifetime. */
  @Index('sessions_expires_at')
  @Column({ name: 'expires_at', type: 'timestamptz' }) expiresAt!: Date;
}
