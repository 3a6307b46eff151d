import type { TargetStatus } from '../targets/alias-reconciler.ts';

// Apart from edgeban-metrics.ts so that readiness (always loaded) does not load prom-client.

/** Labels of one reconciler: its ledger target, the firewall's base URL and the alias. (A type, not an interface: prom-client wants an index signature.) */
export type TargetLabels = {
  target: string;
  firewall: string;
  alias: string;
};

/**
 * The reconciler id is `${firewall URL} ${alias}` (src/targets/enforcement.ts): split it back
 * so firewall and alias are separate labels.
 */
export function targetLabels(status: Pick<TargetStatus, 'id' | 'alias' | 'ledgerTarget'>): TargetLabels {
  const suffix = ` ${status.alias}`;
  const firewall = status.id.endsWith(suffix) ? status.id.slice(0, -suffix.length) : status.id;
  return { target: status.ledgerTarget, firewall, alias: status.alias };
}
