import { z } from 'zod';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import {
  applyCloudflareSetup,
  planCloudflareSetup,
  setupChanges,
  ZONE_WAF_PERMISSION,
  type CloudflareSetupOptions,
  type CloudflareSetupPlan,
} from '../setup/cloudflare-setup.ts';
import { CloudflareApi, LISTS_PERMISSION } from '../targets/cloudflare/cloudflare-api.ts';
import { parseCloudflareOptions } from '../targets/cloudflare/cloudflare-kind.ts';
import { DEFAULT_TUNING } from '../targets/cloudflare/cloudflare-target.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

const USAGE = `usage: edgeban setup-cloudflare --zone ZONE_ID [--zone ZONE_ID]... [--dry-run]

Creates, in Cloudflare account CLOUDFLARE_ACCOUNT_ID, the IP list CLOUDFLARE_LIST (default
edgeban_blocklist) when missing, and in each zone a WAF custom rule "(ip.src in $LIST)" → Block
(appended to the zone's custom rules; existing rules are left as they are). Idempotent: a second run
changes nothing. --dry-run prints the plan and changes nothing.

Token: CLOUDFLARE_SETUP_TOKEN (default CLOUDFLARE_API_TOKEN), an API token with
  - Account ▸ Account Filter Lists ▸ Edit ("${LISTS_PERMISSION}") on the account
  - Zone ▸ Zone WAF ▸ Edit ("${ZONE_WAF_PERMISSION}") on each zone
Use it once and delete it; the daemon's token needs only ${LISTS_PERMISSION}.`;

const ZONE = z.string().regex(/^[0-9a-f]{32}$/, 'must be a zone id: 32 hex digits (the zone\'s Overview page, "Zone ID")');

export async function runSetupCloudflareCommand(argv: string[]): Promise<number> {
  const values = parseCommandFlags(
    argv,
    {
      zone: { type: 'string', multiple: true, default: [] },
      'dry-run': { type: 'boolean', default: false },
    },
    USAGE,
  );
  if (values === null) return 0;
  const zones = values.zone.map((zone) => {
    const parsed = ZONE.safeParse(zone);
    if (!parsed.success) throw new UserFacingError(`--zone ${JSON.stringify(zone.slice(0, 40))}: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  });
  const env = process.env;
  const token = env.CLOUDFLARE_SETUP_TOKEN ?? env.CLOUDFLARE_API_TOKEN;
  const params: Record<string, string> = { list: env.CLOUDFLARE_LIST ?? 'edgeban_blocklist' };
  if (env.CLOUDFLARE_ACCOUNT_ID !== undefined) params.account = env.CLOUDFLARE_ACCOUNT_ID;
  if (token !== undefined) params.token = token;
  if (env.CLOUDFLARE_API_URL !== undefined) params.api = env.CLOUDFLARE_API_URL;
  const options = parseCloudflareOptions(params);
  const api = new CloudflareApi({
    baseUrl: options.api.replace(/\/+$/, ''),
    token: options.token,
    timeoutMs: DEFAULT_TUNING.timeoutMs,
    kind: 'cloudflare',
    target: `${options.account}/${options.list}`,
    now: () => Date.now(),
    sleep: DEFAULT_TUNING.sleep,
    rateLimitRetries: DEFAULT_TUNING.rateLimitRetries,
    maxRetryAfterMs: DEFAULT_TUNING.maxRetryAfterMs,
    permissionHint: `"${LISTS_PERMISSION}" on account ${options.account} and "${ZONE_WAF_PERMISSION}" on each zone (CLOUDFLARE_SETUP_TOKEN)`,
  });
  const setup: CloudflareSetupOptions = { account: options.account, list: options.list, zones };
  const scrubber = new SecretScrubber([options.token]);
  const out = (line: string) => process.stdout.write(`${scrubber.scrub(line)}\n`);
  const dryRun = values['dry-run'];
  try {
    const plan = await planCloudflareSetup(api, setup);
    printPlan(out, options.account, plan, dryRun);
    if (dryRun || setupChanges(plan) === 0) return 0;
    const result = await applyCloudflareSetup(api, plan, setup);
    if (result.createdList !== null) out(`  list: created ${plan.listName} (id ${result.createdList})`);
    for (const [zone, rule] of Object.entries(result.addedRules)) out(`  zone ${zone}: added rule ${rule}`);
    out(`  done: ${setupChanges(plan)} change(s)`);
    return 0;
  } catch (error) {
    out(`Cloudflare account ${options.account}: FAILED: ${errorMessage(error)}`);
    return 1;
  }
}

function printPlan(out: (line: string) => void, account: string, plan: CloudflareSetupPlan, dryRun: boolean): void {
  const verb = dryRun ? 'would ' : '';
  out(`Cloudflare account ${account}:`);
  for (const warning of plan.warnings) out(`  WARNING: ${warning}`);
  if (plan.list === null) out(`  list: ${verb}create ${plan.listName} (kind ip)`);
  else out(`  list: ${plan.list.name} exists (kind ip, id ${plan.list.id}${plan.list.items === null ? '' : `, ${plan.list.items} items`}), kept`);
  for (const zone of plan.zones) {
    if (zone.existingRule !== null) out(`  zone ${zone.zone}: rule ${zone.existingRule} already blocks ip.src in $${plan.listName}, kept`);
    else
      out(
        `  zone ${zone.zone}: ${verb}add WAF custom rule "(ip.src in $${plan.listName})" → block${zone.rulesetId === null ? " (first custom rule: creates the zone's entry point ruleset)" : ''}`,
      );
  }
  if (setupChanges(plan) === 0) out('  nothing to change');
}
