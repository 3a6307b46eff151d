import { parseArgs } from 'node:util';
import { loadEnv } from '../config/env.ts';
import { createCommandLogger } from '../logging/logger.ts';
import type { PassPlan } from '../targets/alias-reconciler.ts';
import { buildEnforcement, openLedgerForCommand } from '../targets/enforcement.ts';
import { systemClock } from '../util/clock.ts';
import { UserFacingError } from '../util/errors.ts';

const SHOWN_PER_KIND = 20;

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
  const logger = createCommandLogger(env);
  const { ledger, readOnly } = await openLedgerForCommand(env, systemClock, logger);
  const effectiveEnv = readOnly && env.foreignPolicy === 'adopt' ? { ...env, foreignPolicy: 'keep' as const } : env;
  const enforcement = buildEnforcement(effectiveEnv, ledger, systemClock, logger);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const report: unknown[] = [];
  let exitCode = 0;
  try {
    for (const reconciler of enforcement.reconcilers) {
      const { id } = reconciler.status();
      if (values['dry-run']) {
        let plan: PassPlan;
        try {
          plan = await reconciler.plan();
        } catch (error) {
          exitCode = 1;
          report.push({ target: id, ok: false, error: (error as Error).message });
          if (!values.json) out(`${id}: cannot read the alias: ${(error as Error).message}`);
          continue;
        }
        report.push({ target: id, ok: true, dryRun: true, ...plan });
        if (!values.json) printPlan(out, id, plan, env.foreignPolicy, values.all, 'would ');
        continue;
      }
      const result = await reconciler.start();
      await reconciler.idle();
      await reconciler.stop();
      const status = reconciler.status();
      const ok = result.ok && status.pending === 0 && status.lastError === null;
      if (!ok) exitCode = 1;
      report.push({ target: id, ...result, ok, pending: status.pending });
      if (values.json) continue;
      printPlan(out, id, result, effectiveEnv.foreignPolicy, values.all, '');
      if (result.error) out(`  FAILED: ${result.error}`);
      else if (result.unconfirmed.length > 0) out(`  NOT CONVERGED: ${result.unconfirmed.length} addresses were accepted but are not in the alias (table-entries limit?)`);
      else if (status.pending > 0) out(`  NOT CONVERGED: ${status.pending} changes still pending`);
      else out('  converged');
    }
    if (readOnly && !values.json) out('(the ledger is held by a running edgeban; it was read, not changed)');
    if (values.json) out(JSON.stringify({ targets: report }));
  } finally {
    await enforcement.close();
    await ledger.close();
  }
  return exitCode;
}

function printPlan(out: (line: string) => void, id: string, plan: PassPlan, policy: string, all: boolean, verb: string): void {
  out(`${id}: ${plan.inAlias} in the alias, ${plan.desired} banned in the ledger`);
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
