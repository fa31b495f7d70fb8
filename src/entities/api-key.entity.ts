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
}
