import type { TargetState, TargetStatus } from '../targets/target-reconciler.ts';

/**
 * A target as status, metrics, notifications and /readyz show it: its reconciler's state, or
 * `ledger-unreachable` while the shared ledger's Redis does not answer. Then no replica can lead
 * the target, and the cause is Redis, not the firewall: bans decided meanwhile are spooled and
 * enforced as soon as Redis answers.
 */
export type ReportedTargetState = TargetState | 'ledger-unreachable';
export type ReportedTargetStatus = Omit<TargetStatus, 'state' | 'lastError'> & {
  state: ReportedTargetState;
  lastError: TargetStatus['lastError'] | { kind: 'ledger-unreachable'; message: string; at: number };
};

/** `status` as reported, given why the ledger is unreachable (null while it answers). */
export function reportTarget(status: TargetStatus, ledgerUnreachable: string | null, now: number): ReportedTargetStatus {
  if (ledgerUnreachable === null || status.state === 'stopped') return status;
  return {
    ...status,
    state: 'ledger-unreachable',
    lastError: {
      kind: 'ledger-unreachable',
      message: `${ledgerUnreachable}; nothing to fix on the firewall: enforcement resumes as soon as Redis answers`,
      at: now,
    },
  };
}
