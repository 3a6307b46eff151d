import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { silentLogger } from '../logging/logger.ts';
import { applyMikrotikSetup, dropRule, planMikrotikSetup, setupChanges, type MikrotikSetupPlan } from '../setup/mikrotik-setup.ts';
import { TargetError } from '../targets/edge-target.ts';
import { mikrotikKind } from '../targets/mikrotik/index.ts';
import { MikrotikClient } from '../targets/mikrotik/client.ts';
import { parseMikrotikOptions } from '../targets/mikrotik/options.ts';
import { paramsOverEnv } from '../targets/registry.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

const USAGE = `usage: edgeban setup-mikrotik [--dry-run]

Adds, on the RouterOS router MIKROTIK_URL, an enabled drop rule for the address list MIKROTIK_LIST
(default edgeban) in /ip/firewall/raw and in /ipv6/firewall/raw:
  chain=prerouting src-address-list=LIST action=drop comment="edgeban bans"
(appended; existing rules are left as they are). Idempotent: a second run changes nothing.
--dry-run prints the plan and changes nothing. MIKROTIK_CA_FILE, MIKROTIK_TLS_INSECURE and
MIKROTIK_TIMEOUT apply as for the daemon.

User: MIKROTIK_SETUP_USER / MIKROTIK_SETUP_PASSWORD (default MIKROTIK_USER / MIKROTIK_PASSWORD),
a user whose group has the read, write and rest-api policies. No users or groups are made.`;

/** The least-privilege group and user for the daemon (README "MikroTik RouterOS"), printed as a hint. */
const USER_HINT = [
  '/user/group/add name=edgeban policy=read,write,api,rest-api',
  '/user/add name=edgeban group=edgeban password="a-long-random-password" address=EDGEBAN_HOST/32',
];

export async function runSetupMikrotikCommand(argv: string[]): Promise<number> {
  const values = parseCommandFlags(argv, { 'dry-run': { type: 'boolean', default: false } }, USAGE);
  if (values === null) return 0;
  const env = process.env;
  const admin: Record<string, string> = {};
  if (env.MIKROTIK_SETUP_USER) admin.user = env.MIKROTIK_SETUP_USER;
  if (env.MIKROTIK_SETUP_PASSWORD) admin.password = env.MIKROTIK_SETUP_PASSWORD;
  let options: ReturnType<typeof parseMikrotikOptions>;
  try {
    options = parseMikrotikOptions(paramsOverEnv(mikrotikKind, admin, env));
  } catch (error) {
    throw new UserFacingError(`setup-mikrotik: ${errorMessage(error)} (MIKROTIK_URL, MIKROTIK_SETUP_USER, MIKROTIK_SETUP_PASSWORD…)\n${USAGE}`);
  }
  const client = new MikrotikClient({ options, logger: silentLogger(), target: `${options.url} ${options.list}` });
  const scrubber = new SecretScrubber([options.password]);
  const out = (line: string) => process.stdout.write(`${scrubber.scrub(line)}\n`);
  const dryRun = values['dry-run'];
  try {
    const plan = await planMikrotikSetup(client, options.list);
    printPlan(out, options.url, plan, dryRun);
    if (!dryRun && setupChanges(plan) > 0) {
      const added = await applyMikrotikSetup(client, plan);
      for (const [menu, id] of Object.entries(added)) out(`  /${menu}: added rule ${id}`);
      out(`  done: ${setupChanges(plan)} change(s)`);
    }
    out('Hint: the daemon needs only a least-privilege user; as the admin, on the router:');
    for (const command of USER_HINT) out(`    ${command}`);
    return 0;
  } catch (error) {
    out(`MikroTik ${options.url}: FAILED: ${errorMessage(error)}`);
    // A refusal (credentials, policies, TLS, URL) is the operator's to fix: exit 2 as for bad config.
    return error instanceof TargetError && error.kind === 'operator' ? 2 : 1;
  } finally {
    await client.close();
  }
}

function printPlan(out: (line: string) => void, url: string, plan: MikrotikSetupPlan, dryRun: boolean): void {
  const verb = dryRun ? 'would ' : '';
  const rule = Object.entries(dropRule(plan.list))
    .map(([key, value]) => (key === 'comment' ? `${key}="${value}"` : `${key}=${value}`))
    .join(' ');
  out(`MikroTik ${url}, address list ${plan.list}:`);
  for (const menu of plan.menus) {
    for (const id of menu.disabledRules)
      out(`  WARNING: /${menu.menu}: rule ${id} drops src-address-list=${plan.list} but is disabled, so it blocks nothing; left as it is`);
    if (menu.existingRule !== null) out(`  /${menu.menu}: rule ${menu.existingRule} already drops src-address-list=${plan.list}, kept`);
    else out(`  /${menu.menu}: ${verb}add ${rule}`);
  }
  if (setupChanges(plan) === 0) out('  nothing to change');
}
