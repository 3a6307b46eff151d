import type { EdgebanEnv, FirewallEndpoint } from '../config/env.ts';
import { LedgerLockedError } from '../ledger/file-ledger-store.ts';
import type { LedgerStore } from '../ledger/ledger-store.ts';
import { openLedgerStore } from '../ledger/open-ledger-store.ts';
import { Ledger } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import type { EdgeTarget, TargetCallRecord } from './edge-target.ts';
import { opnsenseKind, opnsenseOptions } from './opnsense/kind.ts';
import { createTarget, type TargetSpec } from './registry.ts';
import { backendId } from './target-ids.ts';
import { TargetReconciler, type PassResult, type RetryPolicy } from './target-reconciler.ts';

export interface Enforcement {
  backends: EdgeTarget[];
  reconcilers: TargetReconciler[];
  close(): Promise<void>;
}

export interface BuildOptions {
  /** The ban guard's refusal of an alias entry under EDGEBAN_FOREIGN_ENTRIES=adopt (see TargetReconcilerOptions in target-reconciler.ts). */
  adoptionRefusal: (address: string) => string | null;
  retry?: RetryPolicy;
  /** Told of every API call the target's backend makes, with the reconciler it serves (metrics). */
  onCall?: (call: TargetCallRecord, reconciler: TargetReconciler) => void;
}

/** What enforces one ledger target: each OPNsense endpoint of an HA pair, or one registry backend. */
export type TargetBackend = { endpoint: FirewallEndpoint; spec?: never } | { spec: TargetSpec; endpoint?: never };

export function targetBackends(target: { endpoints: readonly FirewallEndpoint[]; spec?: TargetSpec }): TargetBackend[] {
  return target.spec ? [{ spec: target.spec }] : target.endpoints.map((endpoint) => ({ endpoint }));
}

/**
 * A key for the reconciler of one backend of a ledger target, known before it is built and read
 * back from its status (reloads keep the running ones): the OPNsense endpoint's id, or the ledger
 * target a registry backend alone enforces.
 */
export function backendKey(backend: TargetBackend, target: { id: string; alias: string }): string {
  return backend.spec ? registryKey(backend.spec.kind, target.id) : backendId(backend.endpoint.url, target.alias);
}

export function reconcilerKey(status: { id: string; kind: string; ledgerTarget: string }): string {
  return status.kind === 'opnsense' ? status.id : registryKey(status.kind, status.ledgerTarget);
}

function registryKey(kind: string, ledgerTarget: string): string {
  return `${kind}\0${ledgerTarget}`;
}

/** A backend as an EdgeTarget and the reconciler that keeps it in line with a ledger target. */
export function createTargetReconciler(
  env: EdgebanEnv,
  chosen: TargetBackend,
  target: { id: string; alias: string },
  ledger: Ledger,
  clock: Clock,
  logger: Logger,
  options: BuildOptions,
): { backend: EdgeTarget; reconciler: TargetReconciler } {
  const { retry, onCall, adoptionRefusal } = options;
  if (chosen.endpoint?.tlsInsecure) {
    logger.warn(
      { firewall: chosen.endpoint.url },
      "OPNSENSE_TLS_INSECURE=1: the firewall's certificate is not verified, so anyone in the path can read the API key; set OPNSENSE_CA_FILE instead",
    );
  }
  // The backend exists before its reconciler; calls can only start once both exist.
  let reconciler: TargetReconciler | null = null;
  const deps = {
    clock,
    logger,
    ...(onCall
      ? {
          onCall: (call: TargetCallRecord) => {
            if (reconciler) onCall(call, reconciler);
          },
        }
      : {}),
  };
  const backend = chosen.spec ? createTarget(chosen.spec, deps) : opnsenseKind.create(opnsenseOptions(chosen.endpoint, target.alias, env), deps);
  reconciler = new TargetReconciler({
    ledgerTarget: target.id,
    list: target.alias,
    target: backend,
    ledger,
    clock,
    logger,
    intervalMs: env.reconcileIntervalMs,
    concurrency: env.apiConcurrency,
    foreignPolicy: env.foreignPolicy,
    adoptBantimeMs: env.adoptBantimeSec * 1000,
    adoptionRefusal,
    killConnections: env.killStates,
    ...(retry ? { retry } : {}),
  });
  return { backend, reconciler };
}

/** One reconciler per backend of each target: every firewall of an HA pair gets every ban. */
export function buildEnforcement(
  env: EdgebanEnv,
  targets: readonly { id: string; alias: string; endpoints: readonly FirewallEndpoint[]; spec?: TargetSpec }[],
  ledger: Ledger,
  clock: Clock,
  logger: Logger,
  adoptionRefusal: (address: string) => string | null,
  retry?: RetryPolicy,
): Enforcement {
  const built = targets.flatMap((target) =>
    targetBackends(target).map((backend) =>
      createTargetReconciler(env, backend, target, ledger, clock, logger, { adoptionRefusal, ...(retry ? { retry } : {}) }),
    ),
  );
  const backends = built.map((b) => b.backend);
  const reconcilers = built.map((b) => b.reconciler);
  return {
    backends,
    reconcilers,
    async close() {
      await Promise.all(reconcilers.map((r) => r.stop()));
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}

/** One target's outcome of `edgeban reconcile`: the pass (or, dry, its plan) and whether it converged. */
export type ReconcileEntry = { target: string; kind?: string; ok: boolean; pending?: number; dryRun?: true; error?: string | null } & Partial<PassResult>;
export interface ReconcileReport {
  targets: ReconcileEntry[];
}

/**
 * One full pass of each reconciler, one after the other. `running`: the daemon's own reconcilers,
 * which keep running (a pass already under way when asked is followed by a fresh one, so the
 * pass sees the ledger as it is now); otherwise reconcilers built for this pass, started and stopped.
 */
export async function reconcileTargets(
  reconcilers: readonly TargetReconciler[],
  options: { dryRun: boolean; running: boolean; clock: Clock },
): Promise<ReconcileReport> {
  const report: ReconcileEntry[] = [];
  for (const reconciler of reconcilers) {
    const { id, kind } = reconciler.status();
    if (options.dryRun) {
      try {
        report.push({ target: id, kind, ok: true, dryRun: true, ...(await reconciler.plan()) });
      } catch (error) {
        report.push({ target: id, kind, ok: false, dryRun: true, error: (error as Error).message });
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
    report.push({ target: id, kind, ...result, ok: result.ok && status.pending === 0 && !errorNow, pending: status.pending });
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
