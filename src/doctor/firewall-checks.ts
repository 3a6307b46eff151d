import type { FirewallEndpoint } from '../config/env.ts';
import { familiesBlocked, type Family } from '../setup/block-rule.ts';
import type { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import { OpnsenseApiError } from '../targets/opnsense/api-error.ts';
import { fail, pass, skip, warn, type CheckResult } from './check-result.ts';

export interface FirewallCheckOptions {
  endpoint: FirewallEndpoint;
  alias: string;
  /** EDGEBAN_KILL_STATES: whether the kill_states privilege matters. */
  killStates: boolean;
  /** Share of table-entries in use from which headroom is a warning (default 0.8). */
  headroomWarnShare?: number;
}

const CREATE_ALIAS = (alias: string) =>
  `create it in Firewall ▸ Aliases ▸ + with Name ${alias} and Type "External (advanced)", then a WAN rule blocking that source (deploy/opnsense.md); or run \`edgeban setup-opnsense\` once with an admin key`;

const PRIVILEGE_FIX = "System ▸ Access ▸ Users ▸ (the API key's user) ▸ Effective privileges: add";

/**
 * Checks one firewall the way the daemon will use it, with harmless calls only (reads, a
 * one-row list, a GET on kill_states that OPNsense answers "failed" without acting).
 */
export async function checkFirewall(client: OpnsenseAdminClient, options: FirewallCheckOptions): Promise<CheckResult[]> {
  const { endpoint, alias } = options;
  const url = endpoint.url;
  const aliasScope = `${url} alias ${alias}`;
  const results: CheckResult[] = [];
  let tables: string[] | null = null;
  let aliasUtilForbidden = false;
  try {
    tables = await client.listTables();
  } catch (error) {
    if (!(error instanceof OpnsenseApiError)) throw error;
    if (error.kind === 'network' || error.kind === 'timeout') {
      results.push(
        fail(
          'opnsense.reachable',
          url,
          `cannot reach the API: ${error.message}`,
          'check OPNSENSE_URL (scheme, address, port of the web GUI), that the GUI listens on the interface edgeban comes from (System ▸ Settings ▸ Administration ▸ Listen interfaces) and that no rule blocks it',
        ),
      );
      return results;
    }
    if (error.kind === 'tls') {
      results.push(pass('opnsense.reachable', url, 'answers'));
      results.push(
        fail(
          'opnsense.tls',
          url,
          error.message.replace(/: set OPNSENSE_CA_FILE.*$/, ''),
          "set OPNSENSE_CA_FILE to the PEM of the CA that signed the firewall's GUI certificate (System ▸ Trust ▸ Authorities ▸ export), and use the name or address the certificate is issued for in OPNSENSE_URL",
        ),
      );
      return results;
    }
    if (error.kind === 'auth') {
      results.push(pass('opnsense.reachable', url, 'answers'));
      results.push(tlsResult(endpoint));
      results.push(
        fail(
          'opnsense.credentials',
          url,
          'authentication failed (HTTP 401)',
          'check OPNSENSE_KEY and OPNSENSE_SECRET (or their _FILE forms): the key and secret of an API key of an enabled, unexpired user (System ▸ Access ▸ Users ▸ API keys)',
        ),
      );
      return results;
    }
    if (error.kind !== 'forbidden') {
      results.push(
        fail(
          'opnsense.reachable',
          url,
          `answers, but not like the OPNsense API: ${error.message}`,
          "OPNSENSE_URL must be the firewall's web GUI base URL (https://firewall[:port]), OPNsense 24.1 or later",
        ),
      );
      return results;
    }
    aliasUtilForbidden = true;
  }
  results.push(pass('opnsense.reachable', url, 'the API answers'));
  results.push(tlsResult(endpoint));
  results.push(pass('opnsense.credentials', url, 'the API key is accepted'));
  if (!aliasUtilForbidden) {
    try {
      await client.aliasEntryCount(alias);
    } catch (error) {
      if (!(error instanceof OpnsenseApiError) || error.kind !== 'forbidden') throw error;
      aliasUtilForbidden = true;
    }
  }
  results.push(
    aliasUtilForbidden
      ? fail(
          'privilege.alias_util',
          url,
          'the key may not use /api/firewall/alias_util (HTTP 403): edgeban cannot add, delete or list bans',
          `${PRIVILEGE_FIX} "Diagnostics: PF Table IP addresses" (page-diagnostics-tables)`,
        )
      : pass('privilege.alias_util', url, 'alias_util (add, delete, list) allowed'),
  );
  results.push(await killStatesResult(client, url, options.killStates));
  results.push(...(await aliasResults(client, options, aliasScope, tables)));
  results.push(await headroomResult(client, url, options.headroomWarnShare ?? 0.8));
  results.push(await blockRuleResult(client, aliasScope, alias));
  return results;
}

function tlsResult(endpoint: FirewallEndpoint): CheckResult {
  const url = endpoint.url;
  if (url.startsWith('http:')) return pass('opnsense.tls', url, 'plain http to a loopback address (no TLS; only accepted for loopback)');
  if (endpoint.tlsInsecure) {
    return warn(
      'opnsense.tls',
      url,
      'the certificate is NOT verified (OPNSENSE_TLS_INSECURE=1): anyone in the path can read the API key',
      "set OPNSENSE_CA_FILE to the CA of the firewall's certificate and OPNSENSE_TLS_INSECURE=0",
    );
  }
  return pass('opnsense.tls', url, `certificate verified (${endpoint.ca ? 'CA from OPNSENSE_CA_FILE' : 'system CAs'})`);
}

async function killStatesResult(client: OpnsenseAdminClient, url: string, wanted: boolean): Promise<CheckResult> {
  if (!wanted) return skip('privilege.kill_states', url, 'not checked: EDGEBAN_KILL_STATES=0');
  try {
    await client.probeKillStates();
    return pass('privilege.kill_states', url, 'kill_states allowed (open sessions of a banned IPv4 address are cut)');
  } catch (error) {
    if (!(error instanceof OpnsenseApiError) || error.kind !== 'forbidden') throw error;
    return warn(
      'privilege.kill_states',
      url,
      'the key may not call kill_states (HTTP 403): a banned address keeps its open sessions (IMAP IDLE, SMTP) until they end',
      `${PRIVILEGE_FIX} "Diagnostics: Show States" (page-diagnostics-showstates), or set EDGEBAN_KILL_STATES=0`,
    );
  }
}

async function aliasResults(client: OpnsenseAdminClient, options: FirewallCheckOptions, scope: string, tables: string[] | null): Promise<CheckResult[]> {
  const { alias } = options;
  let info;
  try {
    info = await client.getAlias(alias);
  } catch (error) {
    if (!(error instanceof OpnsenseApiError) || error.kind !== 'forbidden') throw error;
    // Without Firewall: Aliases, the pf table list still tells whether the alias is declared.
    if (tables !== null && !tables.includes(alias)) {
      return [fail('alias.exists', scope, 'no pf table of that name, and the key may not read alias definitions to say more', CREATE_ALIAS(alias))];
    }
    return [
      warn(
        'alias.type',
        scope,
        'the key may not read alias definitions (HTTP 403): whether the alias is External is not checked',
        `${PRIVILEGE_FIX} "Firewall: Aliases" (page-firewall-aliases), read-only`,
      ),
    ];
  }
  if (info === null)
    return [fail('alias.exists', scope, 'no alias of that name on this firewall: every ban would fail with "nonexistent alias"', CREATE_ALIAS(alias))];
  const results: CheckResult[] = [pass('alias.exists', scope, 'configured')];
  if (info.type === 'host' || info.type === 'network') {
    results.push(
      warn(
        'alias.type',
        scope,
        `!!! type ${info.type === 'host' ? 'Host(s)' : 'Network(s)'}, not External: EVERY ban and unban rewrites config.xml and adds a backup revision (opnsense/plugins#3397) — a burst of bans evicts your real configuration backups, and each change is slow`,
        'recreate the alias as "External (advanced)" with the same name (remove the rules using it, delete it, create it as External, restore the rules), or run `edgeban setup-opnsense` after deleting it',
      ),
    );
  } else if (info.type === 'urltable') {
    // Durable mode: alias_util adds land in the table at once, refreshes replace it with the feed (the ledger).
    results.push(
      pass(
        'alias.type',
        scope,
        "URL Table (IPs): durable mode, refilled from edgeban's feed and reloaded at boot (deploy/opnsense-durable.md); edgeban also adds to it directly",
      ),
    );
  } else if (info.type !== 'external') {
    results.push(
      fail('alias.type', scope, `type ${info.type}: OPNsense refills such an alias itself and drops edgeban's entries`, 'recreate it as "External (advanced)"'),
    );
  } else {
    results.push(pass('alias.type', scope, 'External (advanced): bans change pf only, no config.xml writes'));
  }
  if (!info.enabled)
    results.push(
      fail('alias.enabled', scope, 'the alias is disabled: pf does not load it, rules using it block nothing', 'enable it in Firewall ▸ Aliases and apply'),
    );
  return results;
}

async function headroomResult(client: OpnsenseAdminClient, url: string, warnShare: number): Promise<CheckResult> {
  let size;
  try {
    size = await client.getTableSize();
  } catch (error) {
    if (!(error instanceof OpnsenseApiError) || error.kind !== 'forbidden') throw error;
    return warn(
      'opnsense.table_entries',
      url,
      'the key may not read get_table_size (HTTP 403): table-entries headroom not checked',
      `${PRIVILEGE_FIX} "Firewall: Aliases" (page-firewall-aliases)`,
    );
  }
  const share = size.size === 0 ? 1 : size.used / size.size;
  const figures = `${size.used.toLocaleString('en-US')} of ${size.size.toLocaleString('en-US')} table entries in use (${(share * 100).toFixed(1)}%, all tables together)`;
  const fix = 'raise Firewall ▸ Settings ▸ Advanced ▸ "Firewall Maximum Table Entries", or shrink other tables (GeoIP, URL tables)';
  if (size.used >= size.size)
    return fail('opnsense.table_entries', url, `${figures}: the limit is reached, pf silently drops new bans (OPNsense still answers "done")`, fix);
  if (share >= warnShare) return warn('opnsense.table_entries', url, `${figures}: near the limit; past it new bans are silently dropped`, fix);
  return pass('opnsense.table_entries', url, figures);
}

/** The WAN rule that makes the alias block anything: visible only to keys with filter-API access. */
async function blockRuleResult(client: OpnsenseAdminClient, scope: string, alias: string): Promise<CheckResult> {
  let rules;
  try {
    rules = await client.rulesWithSource(alias);
  } catch (error) {
    if (error instanceof OpnsenseApiError && (error.kind === 'forbidden' || error.kind === 'not-found')) {
      return skip(
        'opnsense.block_rule',
        scope,
        "not checked (the daemon's key needs no filter-API access); check Firewall ▸ Rules ▸ WAN for a block rule with this alias as source",
      );
    }
    throw error;
  }
  const covered = new Set<Family>();
  for (const rule of rules) for (const family of familiesBlocked(rule.fields, alias, 'wan')) covered.add(family);
  if (covered.has('inet') && covered.has('inet6'))
    return pass('opnsense.block_rule', scope, 'an enabled WAN inbound block rule with this alias as source covers IPv4 and IPv6');
  const missing =
    covered.size === 0
      ? 'no enabled WAN inbound block rule with this alias as source'
      : `the WAN block rule covers ${covered.has('inet') ? 'IPv4' : 'IPv6'} only`;
  return warn(
    'opnsense.block_rule',
    scope,
    `${missing} among the filter-API rules (Firewall ▸ Rules [new]); rules of the legacy WAN page are not visible here`,
    'run `edgeban setup-opnsense` with an admin key, or add the rule as deploy/opnsense.md shows',
  );
}
