import { loadEnv, type EdgebanEnv } from '../config/env.ts';
import { createCommandLogger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { applySetup, planChanges, planSetup, SETUP_PRIVILEGES, type SetupOptions, type SetupPlan } from '../setup/opnsense-setup.ts';
import { checkFeed, durableSource, feedUrlProblem, feedUrlWarning } from '../setup/feed-check.ts';
import type { UrlTableSource } from '../targets/opnsense/admin-client.ts';
import { familyLabel } from '../setup/block-rule.ts';
import { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import { OpnsenseApiError } from '../targets/opnsense/api-error.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

const USAGE = `usage: edgeban setup-opnsense [--dry-run] [--interface wan] [--json]
                              [--durable --feed-url URL [--refresh-hours 1]]

Creates, on every firewall of OPNSENSE_URL, the External alias OPNSENSE_ALIAS and a WAN inbound
block rule whose source is that alias (filter API, OPNsense 24.1+: one IPv4+IPv6 rule from 25.1,
an IPv4 and an IPv6 rule before), then applies the filter (before 26.7 with a savepoint and a
60 s rollback that is cancelled once the API still answers). Idempotent: a second run changes
nothing. --dry-run prints the plan and changes nothing.

It needs a key with more privileges than the daemon's, given as OPNSENSE_SETUP_KEY and
OPNSENSE_SETUP_SECRET (or their _FILE forms; default: OPNSENSE_KEY/OPNSENSE_SECRET):
${SETUP_PRIVILEGES.map((p) => `  - ${p}`).join('\n')}
Use it once and delete it; the daemon keeps its least-privilege key (deploy/opnsense.md).

--durable (OPNsense 25.7+): OPNSENSE_ALIAS becomes a URL Table (IPs) alias fed by edgeban's pull
feed at --feed-url (e.g. https://edgeban.example.org/blocklist/fail2ban_blocklist.txt), fetched
with EDGEBAN_FEED_TOKEN as a bearer token every --refresh-hours; OPNsense keeps the list on disk
and reloads it at boot, so bans survive a firewall reboot without edgeban. The daemon still adds
each ban at once through alias_util. An existing External alias is converted. The feed is fetched
first: a wrong URL or token changes nothing (deploy/opnsense-durable.md).`;

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
  const values = parseCommandFlags(
    argv,
    {
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      interface: { type: 'string', default: 'wan' },
      durable: { type: 'boolean', default: false },
      'feed-url': { type: 'string' },
      'refresh-hours': { type: 'string', default: '1' },
    },
    USAGE,
  );
  if (values === null) return 0;
  if (!INTERFACE_KEY.test(values.interface))
    throw new UserFacingError(`--interface: ${JSON.stringify(values.interface)} is not an OPNsense interface key such as wan or opt1`);
  const env: EdgebanEnv = loadEnv({ env: setupEnvironment(), requireFirewall: true });
  const scrubber = new SecretScrubber(env.secrets);
  const logger = createCommandLogger(env, scrubber);
  const durable = values.durable ? durableOptions(values['feed-url'], values['refresh-hours'], env.feedToken) : null;
  if (!values.durable && values['feed-url'] !== undefined) throw new UserFacingError('--feed-url: only with --durable');
  const options: SetupOptions = { alias: env.alias, interface: values.interface, ...(durable ? { durable } : {}) };
  const lines: string[] = [];
  const out = (line: string) => {
    if (!values.json) process.stdout.write(`${scrubber.scrub(line)}\n`);
    lines.push(line);
  };
  const report: unknown[] = [];
  let exitCode = 0;
  if (durable) {
    const warning = feedUrlWarning(durable.url);
    if (warning) out(`WARNING: ${warning}`);
    try {
      const { entries } = await checkFeed(durable.url, durable.password);
      out(`feed: ${durable.url} answers with ${entries} entr${entries === 1 ? 'y' : 'ies'}`);
    } catch (error) {
      out(`feed: FAILED: ${(error as Error).message}`);
      if (values.json) process.stdout.write(`${scrubber.scrub(JSON.stringify({ feed: { ok: false, error: (error as Error).message }, firewalls: [] }))}\n`);
      return 1;
    }
  }
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
      out(
        `  done: ${planChanges(plan)} change(s); filter applied${result.applied === 'with-rollback' ? ' with a savepoint, rollback cancelled after the API answered' : ''}`,
      );
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
  if (values.json) process.stdout.write(`${scrubber.scrub(JSON.stringify({ firewalls: report }))}\n`);
  return exitCode;
}

function durableOptions(feedUrl: string | undefined, refreshHours: string, token: string | null): UrlTableSource {
  if (feedUrl === undefined)
    throw new UserFacingError(
      "--durable needs --feed-url, the address at which the firewall reaches edgeban's feed (e.g. https://edgeban.example.org/blocklist/fail2ban_blocklist.txt)",
    );
  const problem = feedUrlProblem(feedUrl);
  if (problem) throw new UserFacingError(`--feed-url: ${problem}`);
  const hours = Number(refreshHours);
  // The cron that refreshes URL tables runs every minute; a week is already long for unbans to reach a firewall whose alias_util deletes failed.
  if (!/^\d+(\.\d+)?$/.test(refreshHours) || !(hours >= 1 / 60 && hours <= 168))
    throw new UserFacingError(`--refresh-hours: expected a number of hours from 0.017 (one minute) to 168, got ${JSON.stringify(refreshHours)}`);
  if (token === null) throw new UserFacingError("--durable: EDGEBAN_FEED_TOKEN (or EDGEBAN_FEED_TOKEN_FILE) is not set; give setup the daemon's feed token");
  return durableSource(feedUrl, token, hours);
}

function printPlan(out: (line: string) => void, url: string, plan: SetupPlan, options: SetupOptions, dryRun: boolean): void {
  const iface = options.interface;
  const verb = dryRun ? 'would ' : '';
  out(`${url}: OPNsense ${plan.version ?? '(version not readable: no System: Firmware privilege; features detected from the filter API)'}`);
  for (const warning of plan.warnings) out(`  WARNING: ${warning}`);
  const alias = plan.alias;
  const durable = options.durable;
  if (plan.createAlias && durable)
    out(
      `  alias: ${verb}create ${options.alias} as URL Table (IPs) from ${durable.url}, refreshed every ${Number((Number(durable.updatefreq) * 24).toFixed(2))} h, bearer auth, then reconfigure aliases (OPNsense fetches it)`,
    );
  else if (plan.createAlias) out(`  alias: ${verb}create ${options.alias} as External (advanced), then reconfigure aliases`);
  else if (alias && plan.updateAlias)
    out(
      `  alias: ${alias.name} (${alias.type}): ${verb}set ${plan.updateAlias.changes.join(', ')} to the URL table from ${durable?.url ?? ''}, then reconfigure aliases`,
    );
  else if (alias) out(`  alias: ${alias.name} exists (${alias.type}), kept`);
  for (const rule of plan.existingRules) out(`  rule: ${rule.uuid} already blocks ${rule.families} from the alias on ${iface}, kept`);
  for (const rule of plan.addRules) {
    out(`  rule: ${verb}add "block in quick on ${iface} from <${rule.source_net}> to any" for ${familyLabel(rule.ipprotocol)} (log on)`);
  }
  if (plan.addRules.length > 0) {
    const how =
      plan.savepoints === false
        ? 'apply'
        : plan.savepoints === true
          ? 'savepoint, apply with 60 s rollback, confirm'
          : 'savepoint if supported, apply, confirm';
    out(`  filter: ${verb}${how}`);
  }
  if (planChanges(plan) === 0)
    out(`  nothing to change: the alias${durable ? ' (URL table from the feed)' : ''} and a WAN block rule for IPv4 and IPv6 are in place`);
}

function jsonPlan(plan: SetupPlan): unknown {
  return {
    version: plan.version,
    alias: plan.alias,
    createAlias: plan.createAlias,
    updateAlias: plan.updateAlias?.changes ?? null,
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
  return errorMessage(error);
}
