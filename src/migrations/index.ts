import { InitialSchema1763900000000 } from './1763900000000-initial-schema';

/** Every migration, oldest first (imported, not globbed, so ts and built js agree). */
export const MIGRATIONS = [InitialSchema1763900000000];
