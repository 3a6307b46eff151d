import type { ReportedTargetStatus } from '../cluster/target-report.ts';
import { targetLabels } from './target-labels.ts';

export type DaemonPhase = 'starting' | 'running' | 'stopping';

export interface TargetReadiness {
  target: string;
  firewall: string;
  alias: string;
  state: ReportedTargetStatus['state'];
  ready: boolean;
  /** Why not, without addresses or error texts: the state and the error kind. */
  reason: string | null;
}

export interface Readiness {
  ready: boolean;
  reason: string | null;
  phase: DaemonPhase;
  targets: TargetReadiness[];
}

/**
 * /readyz: configuration loaded and ledger open (the daemon is running), and every target has
 * completed a successful full pass since it was built — edgeban has enforced the ledger at least
 * once. After that a transient outage (`unreachable`) keeps it ready: bans wait in the ledger and
 * the metrics say so; a restart would not help. A `degraded` target (bad key, missing privilege
 * or alias, adds that pf does not store) is not ready: only an operator can fix it, and a rollout with a broken key must not
 * look healthy.
 */
export function judgeReadiness(phase: DaemonPhase, targets: readonly ReportedTargetStatus[]): Readiness {
  const judged = targets.map((status): TargetReadiness => {
    const labels = targetLabels(status);
    const kind = status.lastError?.kind;
    let reason: string | null = null;
    // A cluster follower stands by for the leader: ready (it records bans and takes over when needed).
    if (status.state === 'standby') reason = null;
    // Redis down: an outage like the firewall's `unreachable` (bans wait, spooled, and are enforced
    // once it answers; a restart would not help), shown as its own state naming Redis.
    else if (status.state === 'ledger-unreachable') reason = null;
    else if (status.state === 'degraded')
      reason = `degraded (${kind ?? 'unknown'}): needs a fix on the firewall${kind === 'not-stored' ? '' : ' or in the credentials'}`;
    else if (status.lastSuccess === null) reason = `no successful full pass yet (state ${status.state}${kind ? `, last error ${kind}` : ''})`;
    return { ...labels, state: status.state, ready: reason === null, reason };
  });
  let reason: string | null = null;
  if (phase !== 'running') reason = phase === 'starting' ? 'starting: configuration or ledger not loaded yet' : 'stopping';
  else if (judged.some((t) => !t.ready)) reason = `${judged.filter((t) => !t.ready).length} of ${judged.length} targets not ready`;
  return { ready: reason === null, reason, phase, targets: judged };
}
