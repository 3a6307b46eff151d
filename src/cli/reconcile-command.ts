import { parseArgs } from 'node:util';
import { adoptionRefusal } from '../jails/ban-guard.ts';
import { loadEnv } from '../config/env.ts';
import { createCommandLogger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import type { PassOutline } from '../targets/target-reconciler.ts';
import { ControlClient, DaemonNotRunningError } from '../control/control-client.ts';
import { configJails, enforcedTargets, guardFacts, loadDaemonConfig, settleLedger } from '../daemon/daemon-config.ts';
import { buildEnforcement, openLedgerForCommand, reconcileTargets, type ReconcileEntry, type ReconcileReport } from '../targets/enforcement.ts';
import { holdingNoun, targetLabel } from '../targets/edge-target.ts';
import { systemClock } from '../util/clock.ts';
import { UserFacingError } from '../util/errors.ts';

const SHOWN_PER_KIND = 20;
/** A full pass lists every page of every alias and applies the difference. */
const RECONCILE_TIMEOUT_MS = 30 * 60_000;

/** `edgeban reconcile [--dry-run] [--json] [--all]`: one full pass of every target, from the command line. */
export async function runReconcileCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { 'dry-run': { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, all: { type: 'boolean', default: false } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\nusage: edgeban reconcile [--dry-run] [--json] [--all]`);
  }
  const env = loadEnv();
  const scrubber = new SecretScrubber(env.secrets);
  const logger = createCommandLogger(env, scrubber);
  const dryRun = values['dry-run'];
  // Beside a running daemon, the daemon runs the pass on its own reconcilers and live ledger: a
  // copy read here could be stale by the time it is acted on (a ban re-made meanwhile removed).
  let report = await askDaemon(env.controlSocket, dryRun);
  if (report === null) {
    const config = await loadDaemonConfig(env);
    for (const secret of config.secrets) scrubber.add(secret);
    const { ledger, readOnly } = await openLedgerForCommand(env, systemClock, logger);
    if (readOnly) {
      await ledger.close();
      throw new UserFacingError(
        `the ledger is locked by a running edgeban, but nothing answers on ${env.controlSocket}; try again, or set EDGEBAN_CONTROL_SOCKET to its socket`,
      );
    }
    try {
      // As the daemon does at start: renamed targets move, bans the guard refuses end (not on a dry run: it changes nothing).
      const facts = await guardFacts(config, env, logger);
      if (!dryRun) await settleLedger(ledger, config, configJails(config, facts), env, systemClock, logger);
      const enforcement = buildEnforcement(env, enforcedTargets(config, ledger.targets()), ledger, systemClock, logger, adoptionRefusal(facts));
      try {
        report = await reconcileTargets(enforcement.reconcilers, { dryRun, running: false, clock: systemClock });
      } finally {
        await enforcement.close();
      }
    } finally {
      await ledger.close();
    }
  }
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (values.json) out(JSON.stringify(report));
  else if (report.targets.length === 0) out('nothing to reconcile: no enabled jail bans at a firewall, and no ban is recorded for OPNSENSE_ALIAS');
  else for (const entry of report.targets) printEntry(out, entry, env.foreignPolicy, values.all);
  return report.targets.every((entry) => entry.ok) ? 0 : 1;
}

/** The daemon's report, or null when no daemon answers on the control socket. */
async function askDaemon(socketPath: string, dryRun: boolean): Promise<ReconcileReport | null> {
  const client = new ControlClient({ socketPath });
  try {
    return await client.call<ReconcileReport>('POST', '/reconcile', { dryRun }, RECONCILE_TIMEOUT_MS);
  } catch (error) {
    if (error instanceof DaemonNotRunningError) return null;
    throw error;
  } finally {
    await client.close();
  }
}

function printEntry(out: (line: string) => void, entry: ReconcileEntry, policy: string, all: boolean): void {
  // A daemon of an older release answers without the kind: its targets were all OPNsense aliases.
  const kind = entry.kind ?? 'opnsense';
  const id = targetLabel({ kind, id: entry.target });
  const noun = holdingNoun(kind);
  const plan: PassOutline = {
    add: entry.add ?? [],
    remove: entry.remove ?? [],
    foreign: entry.foreign ?? [],
    inAlias: entry.inAlias ?? 0,
    desired: entry.desired ?? 0,
  };
  if (entry.dryRun) {
    if (entry.ok) printPlan(out, id, noun, plan, policy, all, 'would ');
    else out(`${id}: cannot read the ${noun}: ${entry.error ?? 'unknown error'}`);
    return;
  }
  printPlan(out, id, noun, plan, policy, all, '');
  if (entry.error) out(`  FAILED: ${entry.error}`);
  else if ((entry.unconfirmed ?? []).length > 0)
    out(
      `  NOT CONVERGED: ${entry.unconfirmed!.length} addresses were accepted but are not in the ${noun}${kind === 'opnsense' ? ' (table-entries limit?)' : ''}`,
    );
  else if ((entry.pending ?? 0) > 0) out(`  NOT CONVERGED: ${entry.pending} changes still pending`);
  else out('  converged');
}

function printPlan(out: (line: string) => void, id: string, noun: string, plan: PassOutline, policy: string, all: boolean, verb: string): void {
  out(`${id}: ${plan.inAlias} in the ${noun}, ${plan.desired} banned in the ledger`);
  const foreignAction = policy === 'keep' ? 'keep' : policy === 'adopt' ? 'adopt' : 'remove';
  printList(out, `${verb}add`, plan.add, all);
  printList(out, `${verb}remove`, plan.remove, all, '(ban ended)');
  printList(out, `foreign, ${verb}${foreignAction}`, plan.foreign, all, policy === 'keep' ? '(not banned by edgeban; EDGEBAN_FOREIGN_ENTRIES=keep)' : '');
  if (plan.add.length + plan.remove.length === 0) out('  nothing to add or remove');
}

function printList(out: (line: string) => void, label: string, addresses: readonly string[], all: boolean, note = ''): void {
  if (addresses.length === 0) return;
  out(`  ${label}: ${addresses.length} ${note}`.trimEnd());
  const shown = all ? addresses : addresses.slice(0, SHOWN_PER_KIND);
  for (const address of shown) out(`    ${address}`);
  if (shown.length < addresses.length) out(`    … and ${addresses.length - shown.length} more (--all shows every one)`);
}
