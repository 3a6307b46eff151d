import type { EdgebanEnv, FirewallEndpoint } from '../config/env.ts';
import { LedgerLockedError } from '../ledger/file-ledger-store.ts';
import type { LedgerStore } from '../ledger/ledger-store.ts';
import { openLedgerStore } from '../ledger/open-ledger-store.ts';
import { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import { AliasReconciler, type PassResult, type RetryPolicy } from './alias-reconciler.ts';
import { OpnsenseClient, type ApiCallRecord } from './opnsense/client.ts';

export interface Enforcement {
  clients: OpnsenseClient[];
  reconcilers: AliasReconciler[];
  close(): Promise<void>;
}

export interface TargetReconcilerOptions {
  /** The ban guard's refusal of an alias entry under EDGEBAN_FOREIGN_ENTRIES=adopt (see AliasReconcilerOptions). */
  adoptionRefusal: (address: string) => string | null;
  retry?: RetryPolicy;
  /** Told of every API call the target's client makes, with the reconciler it serves (metrics). */
  onCall?: (call: ApiCallRecord, reconciler: AliasReconciler) => void;
}

/** A firewall client and the reconciler that keeps one of its aliases in line with a ledger target. */
export function createTargetReconciler(
  env: EdgebanEnv, endpoint: FirewallEndpoint, target: { id: string; alias: string },
  ledger: Ledger, clock: Clock, logger: Logger, options: TargetReconcilerOptions,
): { client: OpnsenseClient; reconciler: AliasReconciler } {
  const { retry, onCall, adoptionRefusal } = options;
  if (endpoint.tlsInsecure) {
    logger.warn({ firewall: endpoint.url }, 'OPNSENSE_TLS_INSECURE=1: the firewall\'s certificate is not verified, so anyone in the path can read the API key; set OPNSENSE_CA_FILE instead');
  }
  // The client exists before its reconciler; calls can only start once both exist.
  let reconciler: AliasReconciler | null = null;
  const client = new OpnsenseClient({
    endpoint, logger, connections: env.apiConcurrency + 4,
    ...(onCall ? { onCall: (call: ApiCallRecord) => { if (reconciler) onCall(call, reconciler); } } : {}),
  });
  reconciler = new AliasReconciler({
    id: `${endpoint.url} ${target.alias}`,
    ledgerTarget: target.id,
    alias: target.alias,
    api: client,
    ledger,
    clock,
    logger,
    intervalMs: env.reconcileIntervalMs,
    concurrency: env.apiConcurrency,
    foreignPolicy: env.foreignPolicy,
    adoptBantimeMs: env.adoptBantimeSec * 1000,
    adoptionRefusal,
    killStates: env.killStates,
    listPageSize: env.listPageSize,
    ...(retry ? { retry } : {}),
  });
  return { client, reconciler };
}

/** One reconciler per endpoint of each target: every firewall of an HA pair gets every ban. */
export function buildEnforcement(
  env: EdgebanEnv, targets: readonly { id: string; alias: string; endpoints: readonly FirewallEndpoint[] }[],
  ledger: Ledger, clock: Clock, logger: Logger, adoptionRefusal: (address: string) => string | null, retry?: RetryPolicy,
): Enforcement {
  const built = targets.flatMap((target) => target.endpoints.map((endpoint) => createTargetReconciler(env, endpoint, target, ledger, clock, logger, { adoptionRefusal, ...(retry ? { retry } : {}) })));
  const clients = built.map((b) => b.client);
  const reconcilers = built.map((b) => b.reconciler);
  return {
    clients,
    reconcilers,
    async close() {
      await Promise.all(reconcilers.map((r) => r.stop()));
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** One target's outcome of `edgeban reconcile`: the pass (or, dry, its plan) and whether it converged. */
export type ReconcileEntry = { target: string; ok: boolean; pending?: number; dryRun?: true; error?: string | null } & Partial<PassResult>;
export interface ReconcileReport { targets: ReconcileEntry[] }

/**
 * One full pass of each reconciler, one after the other. `running`: the daemon's own reconcilers,
 * which keep running (a pass already under way when asked is followed by a fresh one, so the
 * pass sees the ledger as it is now); otherwise reconcilers built for this pass, started and stopped.
 */
export async function reconcileTargets(reconcilers: readonly AliasReconciler[], options: { dryRun: boolean; running: boolean; clock: Clock }): Promise<ReconcileReport> {
  const report: ReconcileEntry[] = [];
  for (const reconciler of reconcilers) {
    const { id } = reconciler.status();
    if (options.dryRun) {
      try {
        report.push({ target: id, ok: true, dryRun: true, ...await reconciler.plan() });
      } catch (error) {
        report.push({ target: id, ok: false, dryRun: true, error: (error as Error).message });
      }
      continue;
    }
    let result: PassResult;
    const asked = options.clock.now();
    if (options.running) {
      result = await reconciler.runFullPass();
      if (result.at < asked) result = await reconciler.runFullPass();
    } else {
      result = await reconciler.start();
      await reconciler.idle();
      await reconciler.stop();
    }
    const status = reconciler.status();
    // The daemon's reconcilers live on: an error from before this run (an outage last week) is not this run's.
    const errorNow = status.lastError !== null && status.lastError.at >= asked;
    report.push({ target: id, ...result, ok: result.ok && status.pending === 0 && !errorNow, pending: status.pending });
  }
  return { targets: report };
}

/**
 * Opens the ledger for a command. A command that finds the ledger locked by the running daemon
 * opens it read-only instead of failing: it can still read what must be banned.
 */
export async function openLedgerForCommand(env: EdgebanEnv, clock: Clock, logger: Logger): Promise<{ ledger: Ledger; readOnly: boolean }> {
  let store: LedgerStore;
  let readOnly = false;
  try {
    store = await openLedgerStore(env, logger);
  } catch (error) {
    // Only the file store has a single-writer lock; a shared (Redis) store takes every writer.
    if (!(error instanceof LedgerLockedError)) throw error;
    store = await openLedgerStore(env, logger, { readOnly: true });
    readOnly = true;
  }
  return { ledger: await Ledger.open({ store, clock, logger }), readOnly };
}
