import type { BanClaim, LedgerMutation } from './ban-claim.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * Durable storage of the ban ledger. Implementations: the crash-safe file store (embedded
 * default) and, for multi-replica deployments, the Redis store. Nothing above this interface may
 * assume this process is the only writer: another replica's writes arrive through
 * `onRemoteMutations`.
 *
 * The contract (test/ledger/store-contract.test.ts runs it against both stores):
 * - **Durable before visible.** `append` resolves only once the mutations would survive a crash
 *   (file: written and fdatasync'ed; Redis: acknowledged by a Redis that persists it). The Ledger
 *   changes its memory, tells the reconcilers and answers the CLI only after that.
 * - **A failed write leaves no trace.** `append` rejects with the cause (a LedgerWriteError for
 *   the file store: full disk, EIO from fsync; an error naming Redis when it is unreachable, unless
 *   the Redis store has a spool, whose fsync'ed local write then counts as durable);
 *   the Ledger's memory is unchanged, and after a restart the mutation is absent. What a failed
 *   write may have left in storage is removed before the error is reported, and in any case
 *   before the next write, so a partial record never has a record after it.
 * - **Damage is named and recovered, never silent.** A torn last write (a crash) is skipped with
 *   a warning. Any other damage (a missing snapshot or journal, a gap in sequence numbers,
 *   unreadable records in the middle, a journal cut short) is detected at `load`: every readable
 *   record is kept, the damaged data is moved aside, a clean copy is written, and what was lost
 *   is logged as an error and reported by `damage()` (shown by `edgeban status`). `load` throws
 *   only for what it cannot read around (a snapshot whose header is unreadable, a format version
 *   it does not know), naming the file and line.
 */
export interface LedgerStore {
  /** Every claim, active and historical, as stored; recovers as the contract says. */
  load(): Promise<BanClaim[]>;
  /** Records mutations durably: resolves only once they would survive a crash; rejects leaving no trace. */
  append(mutations: readonly LedgerMutation[]): Promise<void>;
  /** Replaces the stored history with exactly `claims` (compaction). */
  compact(claims: readonly BanClaim[]): Promise<void>;
  /** Whether compaction would pay off now (the store knows its own growth). */
  wantsCompaction(): boolean;
  /** Damage found (and recovered from) by `load`, or null when the store loaded clean. */
  damage(): LedgerDamage | null;
  /** Mutations written by other writers. A single-writer store never calls the listener. */
  onRemoteMutations(listener: (mutations: readonly LedgerMutation[]) => void): () => void;
  /**
   * Shared stores: resolves once every mutation other writers had made when it was called has been
   * delivered; rejects when the store is unreachable. A single-writer store is always caught up.
   */
  catchUp?(timeoutMs?: number): Promise<void>;
  /** Mutations of types this version does not know, skipped (a newer writer), and the last one. */
  unknownMutations?(): { count: number; last: string | null };
  /** Shared stores: why the shared ledger cannot be reached now (naming its server), or null while it can. */
  unreachable?(): string | null;
  close(): Promise<void>;
}

/** What `load` found damaged, what it lost and where the damaged data went. */
export interface LedgerDamage {
  /** Epoch ms of the recovery. */
  at: number;
  /** One sentence per problem, naming the file (or key) and the records lost. */
  problems: string[];
  /** The damaged files, kept under these names. */
  movedAside: string[];
  /** Claims recovered from what was readable. */
  keptClaims: number;
}

/** A write the store could not make durable; nothing of it is kept. */
export class LedgerWriteError extends Error {
  constructor(file: string, cause: unknown) {
    super(`could not save to the ledger (${file}): ${describeIoError(cause)}; the change was not made`, { cause });
    this.name = 'LedgerWriteError';
  }
}

const IO_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error from the disk',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

/** An I/O error as one phrase, its code kept for searching (`no space left on the device (ENOSPC)`). */
export function describeIoError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code && IO_ERRORS[code]) return `${IO_ERRORS[code]} (${code})`;
  return errorMessage(error);
}
