import type { BanClaim, LedgerMutation } from './ban-claim.ts';

/**
 * Durable storage of the ban ledger. Implementations: the crash-safe file store (embedded
 * default) and, for multi-replica deployments, a shared store. Nothing above this interface may
 * assume this process is the only writer: another replica's writes arrive through
 * `onRemoteMutations`.
 */
export interface LedgerStore {
  /** Every claim, active and historical, as stored. Recovers from a torn last write; throws on corruption. */
  load(): Promise<BanClaim[]>;
  /** Records mutations durably: resolves only once they would survive a crash. */
  append(mutations: readonly LedgerMutation[]): Promise<void>;
  /** Replaces the stored history with exactly `claims` (compaction). */
  compact(claims: readonly BanClaim[]): Promise<void>;
  /** Whether compaction would pay off now (the store knows its own growth). */
  wantsCompaction(): boolean;
  /** Mutations written by other writers. A single-writer store never calls the listener. */
  onRemoteMutations(listener: (mutations: readonly LedgerMutation[]) => void): () => void;
  /**
   * Shared stores: resolves once every mutation other writers had made when it was called has been
   * delivered; rejects when the store is unreachable. A single-writer store is always caught up.
   */
  catchUp?(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}
