import { InitialSchema1763900000000 } from './1763900000000-initial-schema';
import { SinkOutputs1764000000000 } from './1764000000000-sink-outputs';
import { UnfinishedIndexes1764100000000 } from './1764100000000-unfinished-indexes';
import { AttemptOwner1764300000000 } from './1764300000000-attempt-owner';
import { DropRunGeneration1764600000000 } from './1764600000000-drop-run-generation';

/** Every migration, oldest first (imported, not globbed, so ts and built js agree). */
export const MIGRATIONS = [
  InitialSchema1763900000000, SinkOutputs1764000000000, UnfinishedIndexes1764100000000, AttemptOwner1764300000000,
  DropRunGeneration1764600000000,
];
