import { loadEnv, type EdgebanEnv } from '../config/env.ts';
import { createCommandLogger, scrubSecrets } from '../logging/logger.ts';
import { applySetup, planChanges, planSetup, SETUP_PRIVILEGES, type SetupPlan } from '../setup/opnsense-setup.ts';
import { familyLabel } from '../setup/block-rule.ts';
import { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import { OpnsenseApiError } from '../targets/opnsense/api-error.ts';
import { UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

const USAGE = `usage: edgeban setup-opnsense [--dry-run] [--interface wan] [--json]

Creates, on every firewall of OPNSENSE_URL, the External alias OPNSENSE_ALIAS and a WAN inbound
block rule whose source is that alias (filter API, OPNsense 24.1+: one IPv4+IPv6 rule from 25.1,
an IPv4 and an IPv6 rule before), then applies the filter (before 26.7 with a savepoint and a
60 s rollback that is cancelled once the API still answers). Idempotent: a second run changes
nothing. --dry-run prints the plan and changes nothing.

It needs a key with more privileges than the daemon's, given as OPNSENSE_SETUP_KEY and
OPNSENSE_SETUP_SECRET (or their _FILE forms; default: OPNSENSE_KEY/OPNSENSE_SECRET):
${SETUP_PRIVILEGES.map((p) => `  - ${p}`).join('\n')}
Use it once and delete it; the daemon keeps its least-privilege key (deploy/opnsense.md).`;

const INTERFACE_KEY = /^[a-z][a-z0-9_]{0,31}$/;

/** The environment with the setup key in place of the daemon's, when one is given. */
function setupEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const hasSetupKey = env.OPNSENSE_SETUP_KEY !== undefined || env.OPNSENSE_SETUP_KEY_FILE !== undefined;
  if (!hasSetupKey) return env;
  // Empty strings (not deletions), so a .env file cannot bring the daemon's key back.
  env.OPNSENSE_KEY = env.OPNSENSE_SETUP_KEY ?? '';
  env.OPNSENSE_KEY_FILE = env.OPNSENSE_SETUP_KEY_FILE ?? '';
  env.OPNSENSE_SECRET = env.OPNSENSE_SETUP_SECRET ?? '';
  env.OPNSENSE_SECRET_FILE = env.OPNSENSE_SETUP_SECRET_FILE ?? '';
  return env;
}

export async function runSetupOpnsenseCommand(argv: string[]): Promise<number> {
  const values = parseCommandFlags(argv, {
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    interface: { type: 'string', default: 'wan' },
  }, USAGE);
  if (values === null) return 0;
  if (!INTERFACE_KEY.test(values.interface)) throw new UserFacingError(`--interface: ${JSON.stringify(values.interface)} is not an OPNsense interface key such as wan or opt1`);
  const env: EdgebanEnv = loadEnv({ env: setupEnvironment(), requireFirewall: true });
  const logger = createCommandLogger(env);
  const options = { alias: env.alias, interface: values.interface };
  const lines: string[] = [];
  const out = (line: string) => {
    if (!values.json) process.stdout.write(`${scrubSecrets(line, env.secrets)}\n`);
    lines.push(line);
  };
  const report: unknown[] = [];
  let exitCode = 0;
  for (const endpoint of env.firewalls) {
    const client = new OpnsenseAdminClient({ endpoint, logger, connections: 2 });
    try {
      const plan = await planSetup(client, options);
      printPlan(out, endpoint.url, plan, options, values['dry-run']);
      if (values['dry-run'] || planChanges(plan) === 0) {
        report.push({ firewall: endpoint.url, ok: true, dryRun: values['dry-run'], changes: planChanges(plan), plan: jsonPlan(plan) });
        continue;
      }
      const result = await applySetup(client, plan, options);
      out(`  done: ${planChanges(plan)} change(s); filter applied${result.applied === 'with-rollback' ? ' with a savepoint, rollback cancelled after the API answered' : ''}`);
      report.push({ firewall: endpoint.url, ok: true, dryRun: false, changes: planChanges(plan), plan: jsonPlan(plan), result });
    } catch (error) {
      exitCode = 1;
      const message = failureMessage(error);
      out(`${endpoint.url}: FAILED: ${message}`);
      report.push({ firewall: endpoint.url, ok: false, error: message });
    } finally {
      await client.close();
    }
  }
  if (values.json) process.stdout.write(`${scrubSecrets(JSON.stringify({ firewalls: report }), env.secrets)}\n`);
  return exitCode;
}

function printPlan(out: (line: string) => void, url: string, plan: SetupPlan, options: { alias: string; interface: string }, dryRun: boolean): void {
  const iface = options.interface;
  const verb = dryRun ? 'would ' : '';
  out(`${url}: OPNsense ${plan.version ?? '(version not readable: no System: Firmware privilege; features detected from the filter API)'}`);
  for (const warning of plan.warnings) out(`  WARNING: ${warning}`);
  const alias = plan.alias;
  if (plan.createAlias) out(`  alias: ${verb}create ${options.alias} as External (advanced), then reconfigure aliases`);
  else if (alias) out(`  alias: ${alias.name} exists (${alias.type}), kept`);
  for (const rule of plan.existingRules) out(`  rule: ${rule.uuid} already blocks ${rule.families} from the alias on ${iface}, kept`);
  for (const rule of plan.addRules) {
    out(`  rule: ${verb}add "block in quick on ${iface} from <${rule.source_net}> to any" for ${familyLabel(rule.ipprotocol)} (log on)`);
  }
  if (plan.addRules.length > 0) {
    const how = plan.savepoints === false ? 'apply' : plan.savepoints === true ? 'savepoint, apply with 60 s rollback, confirm' : 'savepoint if supported, apply, confirm';
    out(`  filter: ${verb}${how}`);
  }
  if (planChanges(plan) === 0) out(`  nothing to change: the alias and a WAN block rule for IPv4 and IPv6 are in place`);
}

function jsonPlan(plan: SetupPlan): unknown {
  return {
    version: plan.version,
    alias: plan.alias,
    createAlias: plan.createAlias,
    existingRules: plan.existingRules,
    addRules: plan.addRules.map((r) => r.ipprotocol),
    warnings: plan.warnings,
  };
}

function failureMessage(error: unknown): string {
  if (error instanceof OpnsenseApiError && error.kind === 'forbidden') {
    return `${error.message}\n  setup-opnsense needs a key with more privileges than the daemon's (OPNSENSE_SETUP_KEY / OPNSENSE_SETUP_SECRET):\n${SETUP_PRIVILEGES.map((p) => `    - ${p}`).join('\n')}`;
  }
  if (error instanceof OpnsenseApiError && error.kind === 'read-only') {
    return `${error.message}\n  the setup key's user holds "System: Deny config write"; use one without it`;
  }
  return error instanceof Error ? error.message : String(error);
}
