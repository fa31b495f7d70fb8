import { InitialSchema1763900000000 } from './1763900000000-initial-schema';
import { SinkOutputs1764000000000 } from './1764000000000-sink-outputs';

/** Every migration, oldest first (imported, not globbed, so ts and built js agree). */
export const MIGRATIONS = [InitialSchema1763900000000, SinkOutputs1764000000000];
