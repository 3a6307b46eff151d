import type { LedgerSettings } from '../config/env.ts';
import type { SharedFailureCounter } from '../jails/jail-engine.ts';
import type { Logger } from '../logging/logger.ts';
import type { TargetReconciler } from '../targets/target-reconciler.ts';
import type { Clock } from '../util/clock.ts';
import type { ClockStatus } from './server-clock.ts';

/**
 * Who enforces: with the file ledger this replica is alone and always enforces. With the Redis
 * ledger each reconciler (one firewall's alias) has its own leader lease, and only its holder
 * runs passes and sends adds, deletes and state kills; the other replicas record bans in the
 * shared ledger and stand by. A separate lease picks the one replica that announces bans.
 * Failures are counted across replicas, and bans dated by Redis's clock, through the same connection.
 */
export interface EnforcementRoles {
  /** Starts the reconciler (file ledger), or enters it in its target's election (Redis). */
  enforce(reconciler: TargetReconciler): void;
  /** Leaves every election entered so far, releasing held leases (once the reconcilers are stopped). */
  release(): Promise<void>;
  /** Whether this replica announces bans and unbans. */
  announces(): boolean;
  /** Failures counted across replicas (null: this replica is alone). */
  readonly sharedFailures: SharedFailureCounter | null;
  /** The clock bans are dated by: Redis's time in a cluster, this host's alone. */
  readonly clock: Clock;
  /** How far this host's clock is from the cluster's (null: alone). */
  clockStatus(): ClockStatus | null;
  close(): Promise<void>;
}

export async function createEnforcementRoles(ledger: LedgerSettings, clock: Clock, logger: Logger): Promise<EnforcementRoles> {
  if (ledger.kind === 'file') {
    return {
      clock,
      clockStatus: () => null,
      enforce: (reconciler) => void reconciler.start(),
      release: async () => {},
      announces: () => true,
      sharedFailures: null,
      close: async () => {},
    };
  }
  // Loaded only for the Redis ledger: ioredis and what it pulls in (tls, dns) cost a file-ledger daemon ~2 MiB of heap.
  const { LeasedRoles } = await import('./leased-roles.ts');
  const roles = new LeasedRoles(ledger, clock, logger);
  await roles.serverClock.start();
  return roles;
}
