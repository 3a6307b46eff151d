import type { TargetStatus } from '../targets/target-reconciler.ts';

// Apart from edgeban-metrics.ts so that readiness (always loaded) does not load prom-client.

/**
 * Labels of one reconciler: its backend kind, its ledger target, the backend's endpoint (the
 * firewall's base URL) and its list (the alias). (A type, not an interface: prom-client wants an
 * index signature.)
 */
export type TargetLabels = {
  kind: string;
  target: string;
  firewall: string;
  alias: string;
};

/**
 * A backend id is `${endpoint} ${list}` (e.g. the OPNsense target's `${firewall URL} ${alias}`):
 * split it back so endpoint and list are separate labels.
 */
export function targetLabels(status: Pick<TargetStatus, 'id' | 'kind' | 'alias' | 'ledgerTarget'>): TargetLabels {
  const suffix = ` ${status.alias}`;
  const firewall = status.id.endsWith(suffix) ? status.id.slice(0, -suffix.length) : status.id;
  return { kind: status.kind, target: status.ledgerTarget, firewall, alias: status.alias };
}
