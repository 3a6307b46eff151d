import type { AliasInfo } from '../targets/opnsense/client.ts';
import type { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import { OpnsenseApiError } from '../targets/opnsense/api-error.ts';
import { blockRule, familiesBlocked, familyLabel, missingRules, seriesAtLeast, type Family } from './block-rule.ts';
import type { BlockRuleSpec, UrlTableSource } from '../targets/opnsense/admin-client.ts';

export interface SetupOptions {
  alias: string;
  /** OPNsense interface key of the WAN: `wan`, or `opt1`… */
  interface: string;
  /**
   * Durable mode (deploy/opnsense-durable.md): the alias is a URL Table (IPs) fed by edgeban's pull
   * feed, which OPNsense keeps on disk and reloads at boot; the daemon's alias_util adds still go
   * into the same table for immediacy.
   */
  durable?: UrlTableSource;
}

/** What the firewall has and what setup would change: computed from reads only (that is --dry-run). */
export interface SetupPlan {
  /** `product_version`, or null when the key may not read it (no System: Firmware). */
  version: string | null;
  alias: AliasInfo | null;
  createAlias: boolean;
  /** Durable mode: the existing alias becomes (or is brought back to) the URL table; the fields that differ. */
  updateAlias: { uuid: string; changes: string[] } | null;
  /** Existing rules that already block the alias (uuid and family label). */
  existingRules: Array<{ uuid: string; families: string }>;
  addRules: BlockRuleSpec[];
  /** true: 24.1–26.1 (apply with a 60 s rollback, then confirm); false: 26.7+; null: unknown, try. */
  savepoints: boolean | null;
  warnings: string[];
}

export interface SetupResult {
  createdAlias: string | null;
  addedRules: string[];
  applied: 'with-rollback' | 'direct' | 'none';
}

/** The privileges setup-opnsense needs beyond the daemon's (see deploy/opnsense.md). */
export const SETUP_PRIVILEGES = [
  'Firewall: Alias: Edit (page-firewall-alias-edit): create the alias and reconfigure',
  'Firewall: Rules [new] (≤25.7: Firewall: Automation: Filter; page-filter-api): read and add the block rule, savepoint, apply',
  'optional: System: Firmware (page-system-firmware-manualupdate): read the OPNsense version (otherwise detected from the filter API)',
] as const;

/** Reads the firewall and decides what to change; makes no change. */
export async function planSetup(client: OpnsenseAdminClient, options: SetupOptions): Promise<SetupPlan> {
  const warnings: string[] = [];
  let version: string | null = null;
  try {
    version = await client.firmwareVersion();
  } catch (error) {
    if (!(error instanceof OpnsenseApiError) || (error.kind !== 'forbidden' && error.kind !== 'not-found')) throw error;
  }
  if (version !== null && seriesAtLeast(version, 24, 1) === false) {
    throw new OpnsenseApiError(
      'not-found',
      'version check',
      `OPNsense ${version} has no filter API (it came with 24.1): upgrade, or create the alias and the WAN rule by hand as deploy/opnsense.md shows`,
    );
  }
  if (options.durable && version !== null && seriesAtLeast(version, 25, 7) === false) {
    throw new OpnsenseApiError(
      'not-found',
      'version check',
      `OPNsense ${version} cannot authenticate to a URL table (that came with 25.7), and edgeban's feed is never open: upgrade, or see deploy/opnsense-durable.md for the manual fallback`,
    );
  }
  const alias = await client.getAlias(options.alias);
  let updateAlias: SetupPlan['updateAlias'] = null;
  if (options.durable && alias !== null && (alias.type === 'external' || alias.type === 'urltable')) {
    const changes =
      alias.type === 'external'
        ? ['type External → URL Table (IPs)', 'url', 'refresh', 'auth']
        : urlTableChanges(await client.urlTableSource(alias.uuid), options.durable);
    if (changes.length > 0) updateAlias = { uuid: alias.uuid, changes };
  } else if (alias !== null && alias.type === 'urltable') {
    warnings.push(
      `alias ${alias.name} is a URL Table (durable mode, set up by setup-opnsense --durable): kept as it is; OPNsense refills it from edgeban's feed`,
    );
  } else if (alias !== null && alias.type !== 'external') {
    warnings.push(
      alias.type === 'host' || alias.type === 'network'
        ? `alias ${alias.name} exists as type ${alias.type}, not External: edgeban works with it, but every ban and unban rewrites config.xml and adds a backup revision (opnsense/plugins#3397), evicting real backups. Recreate it as External (advanced): remove the rules using it, delete it in Firewall ▸ Aliases, run setup-opnsense again. Left as it is.`
        : `alias ${alias.name} exists as type ${alias.type}: OPNsense refills that type by itself and drops edgeban's bans. Recreate it as External (advanced). Left as it is.`,
    );
  }
  if (alias !== null && !alias.enabled)
    warnings.push(`alias ${alias.name} is disabled: pf does not load a disabled alias, so nothing is blocked; enable it in Firewall ▸ Aliases. Left as it is.`);
  // inet46 from 25.1: by version when readable, else from the rule model's option list.
  const inet46 = version !== null ? seriesAtLeast(version, 25, 1) === true : (await client.ruleFieldOptions('ipprotocol')).includes('inet46');
  const existing = alias === null ? [] : await client.rulesWithSource(options.alias);
  const covered = new Set<Family>();
  const existingRules: SetupPlan['existingRules'] = [];
  for (const rule of existing) {
    const families = familiesBlocked(rule.fields, options.alias, options.interface);
    if (families.length === 0) continue;
    for (const f of families) covered.add(f);
    existingRules.push({ uuid: rule.uuid, families: familyLabel(rule.fields.ipprotocol ?? '') });
  }
  if (alias === null) {
    // Reached only with filter-API access; a key without it fails here, before any change.
    await client.ruleFieldOptions('ipprotocol');
  }
  const addRules = missingRules(covered, inet46).map((family) => blockRule(options.alias, options.interface, family));
  const savepoints = version === null ? null : seriesAtLeast(version, 26, 7) === false;
  return { version, alias, createAlias: alias === null, updateAlias, existingRules, addRules, savepoints, warnings };
}

/** What differs between a URL table's settings and the wanted ones (names only: the token is a secret). */
function urlTableChanges(current: UrlTableSource, wanted: UrlTableSource): string[] {
  const changes: string[] = [];
  if (current.url.trim() !== wanted.url) changes.push('url');
  if (!(Math.abs(Number.parseFloat(current.updatefreq) - Number.parseFloat(wanted.updatefreq)) < 1e-6)) changes.push('refresh');
  if (current.authtype !== wanted.authtype || current.username !== wanted.username || current.password !== wanted.password) changes.push('auth');
  return changes;
}

export function planChanges(plan: SetupPlan): number {
  return (plan.createAlias ? 1 : 0) + (plan.updateAlias ? 1 : 0) + plan.addRules.length;
}

/**
 * Carries the plan out. Before 26.7 the filter is applied against a savepoint: OPNsense restores
 * the rules after 60 s unless the change is confirmed, and it is confirmed only once the API still
 * answers after the apply (a rule that locked edgeban out rolls itself back).
 */
export async function applySetup(client: OpnsenseAdminClient, plan: SetupPlan, options: SetupOptions): Promise<SetupResult> {
  const result: SetupResult = { createdAlias: null, addedRules: [], applied: 'none' };
  if (plan.createAlias) {
    result.createdAlias = options.durable
      ? await client.createUrlTableAlias(
          options.alias,
          options.durable,
          "edgeban blocklist (durable: refreshed from edgeban's feed, kept on disk across reboots; edgeban also adds to it directly)",
        )
      : await client.createExternalAlias(options.alias, 'edgeban blocklist (managed by edgeban; External: contents live in pf only)');
  }
  if (plan.updateAlias && options.durable) await client.setUrlTableAlias(plan.updateAlias.uuid, options.durable);
  // Declares the table and, for a URL table, makes OPNsense fetch the feed now (update_tables.py).
  if (plan.createAlias || plan.updateAlias) await client.reconfigureAliases();
  if (plan.addRules.length === 0) return result;
  for (const rule of plan.addRules) result.addedRules.push(await client.addRule(rule));
  let revision: string | null = null;
  if (plan.savepoints !== false) {
    try {
      revision = await client.savepoint();
    } catch (error) {
      // 26.7 removed savepoints (404): apply directly.
      if (!(error instanceof OpnsenseApiError) || error.kind !== 'not-found' || plan.savepoints === true) throw error;
    }
  }
  if (revision === null) {
    await client.applyFilter();
    result.applied = 'direct';
    return result;
  }
  await client.applyFilter(revision);
  // Still reachable after the new ruleset: keep it.
  const firstRule = result.addedRules[0];
  if (firstRule !== undefined && (await client.getRule(firstRule)) === null) {
    throw new OpnsenseApiError(
      'server',
      `GET /api/firewall/filter/get_rule/${firstRule}`,
      'the rule just added is not there after apply; the change will roll back within 60 s',
    );
  }
  await client.cancelRollback(revision);
  result.applied = 'with-rollback';
  return result;
}
