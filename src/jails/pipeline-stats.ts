// Leaf types of a jail's log pipeline (src/daemon/jail-pipeline.ts), here so that metrics and
// notifications read them without importing the daemon.
import type { PersistenceStats } from './failure-persistence.ts';
import type { LogFollower } from '../sources/log-follower.ts';
import type { LogFormat, UnwrapStats } from '../sources/container-log-format.ts';

export interface PipelineStats {
  jail: string;
  lines: number;
  matches: number;
  /** Matches without a usable address (a host name, which is never resolved). */
  unusable: number;
  /** Matches dropped as older than findtime while catching up on what was written before start. */
  old: number;
  follower: ReturnType<LogFollower['stats']> | null;
  /** A container log (jail option logformat): its format and records read, joined, malformed (skipped), lines pending. Absent for plain logs. */
  container?: UnwrapStats & { logformat: LogFormat; pending: number };
  /** The failure journal that carries counts below maxretry across a restart. */
  failureJournal?: PersistenceStats;
}

/** Why a matched failure was not handed to the jail. */
export type DropReason = 'unusable' | 'old';

/** Counters a pipeline increments per batch (metrics); they outlive the pipeline, which a reload replaces. */
export interface PipelineCounters {
  lines(path: string, count: number): void;
  matches(count: number): void;
  dropped(reason: DropReason, count: number): void;
}
