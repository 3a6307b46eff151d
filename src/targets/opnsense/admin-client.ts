import { z } from 'zod';
import { OpnsenseApiError } from './api-error.ts';
import { OpnsenseClient } from './client.ts';
import {
  AliasItemReplySchema,
  OptionFieldSchema,
  RuleItemReplySchema,
  SavedReplySchema,
  SavepointReplySchema,
  SearchRuleReplySchema,
  StatusReplySchema,
} from './replies.ts';

/** A filter rule as edgeban reads it back: option fields as their selected keys joined by `,`. */
export type RuleFields = Record<string, string>;

/** The fields of the WAN block rule setup-opnsense writes (M/Firewall/Filter.xml names). */
export interface BlockRuleSpec {
  enabled: '1';
  action: 'block';
  quick: '1';
  interface: string;
  direction: 'in';
  ipprotocol: 'inet' | 'inet6' | 'inet46';
  protocol: 'any';
  source_net: string;
  source_not: '0';
  destination_net: 'any';
  destination_not: '0';
  log: '1' | '0';
  description: string;
}

/**
 * The configuration calls `edgeban setup-opnsense` makes (alias and filter models): they need a
 * key with more privileges than the daemon's — Firewall: Alias: Edit and the filter API.
 * Same transport, judging of replies and error kinds as the daemon's client.
 */
export class OpnsenseAdminClient extends OpnsenseClient {
  /** alias/add_item for an External alias, then alias/reconfigure so pf declares its table. */
  async createExternalAlias(name: string, description: string): Promise<string> {
    const alias = this.checkedAlias(name);
    const call = 'POST /api/firewall/alias/add_item';
    const reply = await this.call('POST', 'firewall/alias/add_item', SavedReplySchema, {
      alias: { enabled: '1', name: alias, type: 'external', description, counters: '0' },
    });
    if (reply.result !== 'saved' || reply.uuid === undefined)
      throw new OpnsenseApiError('rejected', call, `not saved${describeValidations(reply.validations)}`);
    return reply.uuid;
  }

  /**
   * alias/add_item for a URL Table (IPs) alias (durable mode): OPNsense fetches `url` every
   * `updatefreq` days with the token as a bearer token (25.7+), keeps the list on disk and reloads
   * it at boot. Follow with alias/reconfigure, which makes the first fetch.
   */
  async createUrlTableAlias(name: string, source: UrlTableSource, description: string): Promise<string> {
    const alias = this.checkedAlias(name);
    const call = 'POST /api/firewall/alias/add_item';
    const reply = await this.call('POST', 'firewall/alias/add_item', SavedReplySchema, {
      alias: { enabled: '1', name: alias, type: 'urltable', description, counters: '0', ...urlTableFields(source) },
    });
    if (reply.result !== 'saved' || reply.uuid === undefined)
      throw new OpnsenseApiError('rejected', call, `not saved${describeValidations(reply.validations)}`);
    return reply.uuid;
  }

  /** alias/set_item: turns the alias into this URL table (type, URL, refresh, auth); other fields stay. */
  async setUrlTableAlias(uuid: string, source: UrlTableSource): Promise<void> {
    const path = `firewall/alias/set_item/${encodeURIComponent(uuid)}`;
    const reply = await this.call('POST', path, SavedReplySchema, { alias: { type: 'urltable', ...urlTableFields(source) } });
    if (reply.result !== 'saved') throw new OpnsenseApiError('rejected', `POST /api/${path}`, `not saved${describeValidations(reply.validations)}`);
  }

  /** A URL table's settings as get_item renders them (content: the selected items). */
  async urlTableSource(uuid: string): Promise<UrlTableSource> {
    const path = `firewall/alias/get_item/${encodeURIComponent(uuid)}`;
    const reply = await this.call('GET', path, AliasItemReplySchema);
    if (Array.isArray(reply)) throw new OpnsenseApiError('alias-missing', `GET /api/${path}`, 'the alias vanished while setup read it');
    const parsed = UrlTableItemSchema.safeParse(reply.alias);
    if (!parsed.success) throw new OpnsenseApiError('server', `GET /api/${path}`, 'the alias item has no URL-table fields (content, updatefreq, authtype)');
    const { content, updatefreq, authtype, username, password } = parsed.data;
    const selected = (options: Record<string, { selected?: unknown }>) =>
      Object.entries(options)
        .filter(([, o]) => Number(o.selected) === 1 || o.selected === true)
        .map(([key]) => key);
    return {
      url: selected(content).join('\n'),
      updatefreq: String(updatefreq),
      authtype: selected(authtype)[0] ?? '',
      username,
      password,
    };
  }

  async reconfigureAliases(): Promise<void> {
    const reply = await this.call('POST', 'firewall/alias/reconfigure', StatusReplySchema, {});
    if (reply.status !== 'ok') throw new OpnsenseApiError('rejected', 'POST /api/firewall/alias/reconfigure', `replied status ${JSON.stringify(reply.status)}`);
  }

  /** The keys of a rule option field in this release (get_rule without a uuid renders the defaults with every option). */
  async ruleFieldOptions(field: string): Promise<string[]> {
    const reply = await this.call('GET', 'firewall/filter/get_rule', RuleItemReplySchema);
    const call = 'GET /api/firewall/filter/get_rule';
    if (Array.isArray(reply)) throw new OpnsenseApiError('server', call, 'replied [] for the rule defaults');
    const parsed = OptionFieldSchema.safeParse(reply.rule[field]);
    if (!parsed.success) throw new OpnsenseApiError('server', call, `rule.${field} is not an option list`);
    return Object.keys(parsed.data);
  }

  /** Every filter-API rule whose source is `alias`, read back field by field. */
  async rulesWithSource(alias: string): Promise<Array<{ uuid: string; fields: RuleFields }>> {
    const reply = await this.call('POST', 'firewall/filter/search_rule', SearchRuleReplySchema, { current: 1, rowCount: -1, searchPhrase: '' });
    const out: Array<{ uuid: string; fields: RuleFields }> = [];
    for (const row of reply.rows) {
      // Rows may hold labels instead of raw values (older releases); the alias name is the same in both.
      const source = (row as Record<string, unknown>).source_net;
      if (typeof source !== 'string' || !source.split(',').includes(alias)) continue;
      const fields = await this.getRule(row.uuid);
      if (fields) out.push({ uuid: row.uuid, fields });
    }
    return out;
  }

  async getRule(uuid: string): Promise<RuleFields | null> {
    const reply = await this.call('GET', `firewall/filter/get_rule/${encodeURIComponent(uuid)}`, RuleItemReplySchema);
    if (Array.isArray(reply)) return null;
    const fields: RuleFields = {};
    for (const [name, value] of Object.entries(reply.rule)) {
      if (typeof value === 'string' || typeof value === 'number') {
        fields[name] = String(value);
        continue;
      }
      const options = OptionFieldSchema.safeParse(value);
      if (options.success) {
        fields[name] = Object.entries(options.data)
          .filter(([, o]) => Number(o.selected) === 1 || o.selected === true)
          .map(([key]) => key)
          .join(',');
      }
    }
    return fields;
  }

  async addRule(rule: BlockRuleSpec): Promise<string> {
    const call = 'POST /api/firewall/filter/add_rule';
    const reply = await this.call('POST', 'firewall/filter/add_rule', SavedReplySchema, { rule });
    if (reply.result !== 'saved' || reply.uuid === undefined)
      throw new OpnsenseApiError('rejected', call, `not saved${describeValidations(reply.validations)}`);
    return reply.uuid;
  }

  /** 24.1–26.1: a savepoint to roll back to; 26.7 and later answer 404 (kind `not-found`). */
  async savepoint(): Promise<string> {
    const reply = await this.call('POST', 'firewall/filter/savepoint', SavepointReplySchema, {});
    if (reply.status !== 'ok' || reply.revision === undefined) {
      throw new OpnsenseApiError('rejected', 'POST /api/firewall/filter/savepoint', `replied status ${JSON.stringify(reply.status)}`);
    }
    return reply.revision;
  }

  /** Applies the filter; with a revision (before 26.7) OPNsense rolls back after 60 s unless cancelRollback follows. */
  async applyFilter(revision?: string): Promise<void> {
    const path = revision === undefined ? 'firewall/filter/apply' : `firewall/filter/apply/${encodeURIComponent(revision)}`;
    const reply = await this.call('POST', path, StatusReplySchema, {});
    // The raw configd output: "OK\n\n" (any case, trailing whitespace).
    if (reply.status.trim().toLowerCase() !== 'ok')
      throw new OpnsenseApiError('rejected', `POST /api/${path}`, `replied status ${JSON.stringify(reply.status)}`);
  }

  async cancelRollback(revision: string): Promise<void> {
    const path = `firewall/filter/cancel_rollback/${encodeURIComponent(revision)}`;
    const reply = await this.call('POST', path, StatusReplySchema, {});
    if (reply.status !== 'ok') throw new OpnsenseApiError('rejected', `POST /api/${path}`, `replied status ${JSON.stringify(reply.status)}`);
  }
}

/** A URL Table (IPs) alias's source, in M/Firewall/Alias.xml's fields. */
export interface UrlTableSource {
  url: string;
  /** Days between fetches, possibly fractional (`0.041667` ≈ 1 h); the GUI splits it into days and hours. */
  updatefreq: string;
  /** `Bearer` for edgeban's feed; empty for none. */
  authtype: string;
  username: string;
  password: string;
}

const UrlTableItemSchema = z
  .object({
    content: z.record(z.string(), z.object({ selected: z.unknown().optional() }).loose()),
    updatefreq: z.union([z.string(), z.number()]),
    authtype: z.record(z.string(), z.object({ selected: z.unknown().optional() }).loose()),
    username: z.string(),
    password: z.string(),
  })
  .loose();

function urlTableFields(source: UrlTableSource): Record<string, string> {
  return { content: source.url, updatefreq: source.updatefreq, authtype: source.authtype, username: source.username, password: source.password };
}

function describeValidations(validations: Record<string, string | string[]> | undefined): string {
  if (!validations) return '';
  const parts = Object.entries(validations).map(([field, message]) => `${field}: ${Array.isArray(message) ? message.join(' ') : message}`);
  return parts.length > 0 ? ` (${parts.join('; ')})` : '';
}
