import { Column, Entity, PrimaryColumn } from 'typeorm';

/** An API key; only a SHA-256 hash of the secret is stored. */
@Entity({ name: 'api_keys', schema: 'drover' })
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'varchar', length: 128 }) name!: string;
  /** Public lookup prefix (part of the key); unique. */
  @Column({ type: 'varchar', length: 32, unique: true }) prefix!: string;
  /** Hex SHA-256 of the whole key. */
  @Column({ type: 'varchar', length: 64 }) hash!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true }) lastUsedAt!: Date | null;
  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true }) revokedAt!: Date | null;
  /** `read`, `producer` or `admin` (what the key may do). */
  @Column({ type: 'varchar', length: 16, default: 'admin' }) scope!: string;
  /** The workspaces the key may see and act on; null: every workspace. */
  @Column({ type: 'text', array: true, nullable: true }) workspaces!: string[] | null;
  /** After this the key is refused like a revoked one; null: never. */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true }) expiresAt!: Date | null;
}
