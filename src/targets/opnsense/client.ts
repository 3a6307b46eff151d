import type { Dispatcher } from 'undici';
import { request } from '../../net/undici.ts';
import type { z } from 'zod';
import type { FirewallEndpoint } from '../../config/env.ts';
import type { Logger } from '../../logging/logger.ts';
import { canonicalEntry, parsePfAddress, parsePfEntry } from '../../net/address.ts';
import { isValidAliasName } from '../../config/env.ts';
import { callDeadline, readCapped, tlsAgent, transportFailure } from '../http-client.ts';
import { OpnsenseApiError, type ApiErrorKind } from './api-error.ts';
import {
  AliasItemReplySchema,
  AliasNamesReplySchema,
  AliasUuidReplySchema,
  ErrorReplySchema,
  FirmwareStatusReplySchema,
  KillStatesReplySchema,
  ListReplySchema,
  StatusReplySchema,
  TableSizeReplySchema,
} from './replies.ts';

export type AliasType = string; // 'external', 'host', 'network', … as OPNsense names them

export interface AliasInfo {
  name: string;
  uuid: string;
  type: AliasType;
  enabled: boolean;
}

export interface TableSize {
  size: number;
  used: number;
}

export interface OpnsenseClientOptions {
  endpoint: FirewallEndpoint;
  logger: Logger;
  /** HTTP connection pool; one is made from the endpoint's TLS settings when not given. */
  dispatcher?: Dispatcher;
  /** Keep-alive connections the default pool may open. */
  connections?: number;
  /** Told of every call's outcome (metrics): `ok` or the error kind. */
  onCall?: (call: ApiCallRecord) => void;
}

export interface ApiCallRecord {
  /** Route without its variable part: `POST firewall/alias_util/add`, so metric labels stay bounded. */
  endpoint: string;
  outcome: 'ok' | ApiErrorKind;
  ms: number;
}

/** Default page for alias_util/list: OPNsense's own default since 25.7. */
export const DEFAULT_LIST_PAGE_SIZE = 9999;

/**
 * Replies are read up to a cap, not whole: a proxy or a broken firewall answering hundreds of MB
 * must not take the daemon's memory with it. The largest legitimate reply is a list page: a row
 * with every pf counter (`in_block_p`…`out_xpass_b`, 20-digit values) and a long IPv6 network is
 * about 450 bytes of PHP JSON, so the default page of 9,999 rows is under 5 MiB; 32 MiB leaves
 * 7× headroom, and bigger pages (EDGEBAN_LIST_PAGE_SIZE) get 1 KiB per row asked.
 */
export const DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024;
const MAX_LIST_ROW_BYTES = 1024;
/** A list that needs more pages than this is not converging (the table grows as fast as it is read). */
const MAX_LIST_PAGES = 100_000;

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The filter kill_states is sent for an address: one IPv4 host, or null for anything else
 * (OPNsense strips `:` and `/` from the filter, which would mangle IPv6 and CIDRs).
 */
export function killStatesFilter(address: string): string | null {
  const parsed = parsePfAddress(address);
  return parsed.family === 4 && parsed.prefix === 32 ? parsed.text : null;
}

/**
 * The OPNsense API calls edgeban makes, each judged by its JSON reply and not only by HTTP 200
 * (docs/opnsense-api.md, "Traps"). Addresses are sent in pf's spelling, paths in snake_case
 * (camelCase routes but fails the ACL), and a JSON content type always comes with a non-empty body.
 */
export class OpnsenseClient {
  readonly baseUrl: string;
  private readonly authorization: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly onCall: ((call: ApiCallRecord) => void) | undefined;

  constructor(options: OpnsenseClientOptions) {
    const { endpoint } = options;
    this.baseUrl = endpoint.url;
    this.authorization = `Basic ${Buffer.from(`${endpoint.key}:${endpoint.secret}`).toString('base64')}`;
    this.timeoutMs = endpoint.timeoutMs;
    this.logger = options.logger;
    this.onCall = options.onCall;
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? tlsAgent({ connections: options.connections ?? 32, ca: endpoint.ca, tlsInsecure: endpoint.tlsInsecure });
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** Adds one address or network to a configured alias. Resolves only on `{"status":"done"}`. */
  async addToAlias(alias: string, address: string): Promise<void> {
    const spelled = this.checkedAddress(address);
    const reply = await this.call('POST', `firewall/alias_util/add/${this.checkedAlias(alias)}`, StatusReplySchema, { address: spelled });
    this.expectDone(reply, `POST /api/firewall/alias_util/add/${alias}`, spelled);
  }

  /** Deletes one entry; pf matches the exact spelling, which is why it is normalized first. */
  async deleteFromAlias(alias: string, address: string): Promise<void> {
    const spelled = this.checkedAddress(address);
    const reply = await this.call('POST', `firewall/alias_util/delete/${this.checkedAlias(alias)}`, StatusReplySchema, { address: spelled });
    this.expectDone(reply, `POST /api/firewall/alias_util/delete/${alias}`, spelled);
  }

  /**
   * Every entry of a pf table in canonical spelling (parsePfEntry; rows that are no address as
   * they came), page by page until `total` is reached. Paging fields go in the POST body (the query
   * string is ignored). A page shorter than asked before `total` means the firewall or a proxy caps
   * pages: paging goes on at the size it answered. A page that adds nothing new is an error, not
   * the end: stopping there would hide entries (expired bans never removed, adds taken for dropped).
   */
  async listAlias(alias: string, pageSize = DEFAULT_LIST_PAGE_SIZE): Promise<string[]> {
    const path = `firewall/alias_util/list/${this.checkedAlias(alias)}`;
    const entries = new Set<string>();
    let size = pageSize;
    let position = 0; // rows read so far, in list order
    for (let pages = 1; ; pages++) {
      const current = Math.floor(position / size) + 1;
      const reply = await this.call('POST', path, ListReplySchema, { current, rowCount: size }, Math.max(DEFAULT_MAX_REPLY_BYTES, size * MAX_LIST_ROW_BYTES));
      const before = entries.size;
      for (const row of reply.rows) entries.add(canonicalEntry(row.ip));
      const end = (current - 1) * size + reply.rows.length;
      if (end >= reply.total) break;
      if (entries.size === before) {
        throw new OpnsenseApiError(
          'server',
          `POST /api/${path}`,
          `page ${current} (${size} rows asked) brought ${reply.rows.length} rows and no new entry, but total says ${reply.total} and only ${entries.size} were read: the list cannot be completed (a proxy or firewall that ignores paging?)`,
        );
      }
      if (pages >= MAX_LIST_PAGES) {
        throw new OpnsenseApiError(
          'server',
          `POST /api/${path}`,
          `still short of total (${reply.total}) after ${pages} pages of ${size} rows: the list cannot be completed`,
        );
      }
      if (reply.rows.length < size) size = reply.rows.length;
      position = end;
    }
    return [...entries];
  }

  /** pf table names (not configured aliases). */
  async listTables(): Promise<string[]> {
    return this.call('GET', 'firewall/alias_util/aliases', AliasNamesReplySchema);
  }

  /** The configured alias with its type, or null when no alias has that name. */
  async getAlias(name: string): Promise<AliasInfo | null> {
    const alias = this.checkedAlias(name);
    const found = await this.call('GET', `firewall/alias/get_alias_u_u_i_d/${alias}`, AliasUuidReplySchema);
    if (Array.isArray(found)) return null;
    const item = await this.call('GET', `firewall/alias/get_item/${encodeURIComponent(found.uuid)}`, AliasItemReplySchema);
    if (Array.isArray(item)) return null;
    const selected = Object.entries(item.alias.type).find(([, option]) => Number(option.selected) === 1 || option.selected === true);
    return {
      name: item.alias.name,
      uuid: found.uuid,
      type: selected?.[0] ?? 'unknown',
      enabled: item.alias.enabled === undefined || String(item.alias.enabled) === '1',
    };
  }

  /** The global pf table-entries limit and how much of it all tables use. */
  async getTableSize(): Promise<TableSize> {
    const reply = await this.call('GET', 'firewall/alias/get_table_size', TableSizeReplySchema);
    return { size: reply.size, used: reply.used };
  }

  /** Entries in a pf table (one row fetched: a cheap, read-only probe of the alias_util privilege). */
  async aliasEntryCount(alias: string): Promise<number> {
    const reply = await this.call('POST', `firewall/alias_util/list/${this.checkedAlias(alias)}`, ListReplySchema, { current: 1, rowCount: 1 });
    return reply.total;
  }

  /**
   * Checks the kill_states privilege without killing anything: a GET is answered
   * `{"result":"failed"}` once the ACL let it through, and 403 otherwise.
   */
  async probeKillStates(): Promise<void> {
    await this.call('GET', 'diagnostics/firewall/kill_states', KillStatesReplySchema);
  }

  /** The installed release (`product_version`, e.g. `25.1.3`) from core/firmware/status; a GET runs no update check. */
  async firmwareVersion(): Promise<string> {
    const reply = await this.call('GET', 'core/firmware/status', FirmwareStatusReplySchema);
    return reply.product.product_version;
  }

  /**
   * Drops the pf states of an IPv4 host, so established sessions (IMAP IDLE, SMTP) end with the ban.
   * IPv4 only: OPNsense strips `:` and `/` from the filter, which would mangle IPv6 and CIDRs.
   */
  async killStates(address: string): Promise<number> {
    const filter = killStatesFilter(address);
    if (filter === null) {
      throw new OpnsenseApiError(
        'rejected',
        'POST /api/diagnostics/firewall/kill_states',
        `kill_states takes a single IPv4 address, not ${parsePfAddress(address).text}`,
      );
    }
    const reply = await this.call('POST', 'diagnostics/firewall/kill_states', KillStatesReplySchema, { filter });
    if (reply.result !== 'ok') {
      throw new OpnsenseApiError('rejected', 'POST /api/diagnostics/firewall/kill_states', `replied result ${JSON.stringify(reply.result)}`);
    }
    return reply.dropped_states ?? 0;
  }

  /** pf's spelling of an entry, family kept: a foreign `::ffff:a.b.c.d` is deleted as itself, never as the IPv4 `a.b.c.d`. */
  private checkedAddress(address: string): string {
    try {
      return parsePfEntry(address).text;
    } catch (error) {
      throw new OpnsenseApiError('rejected', 'address check', (error as Error).message);
    }
  }

  protected checkedAlias(alias: string): string {
    if (!isValidAliasName(alias)) throw new OpnsenseApiError('rejected', 'alias check', `${JSON.stringify(alias)} is not a valid alias name`);
    return alias;
  }

  protected expectDone(reply: z.infer<typeof StatusReplySchema>, call: string, address: string | null): void {
    if (reply.status === 'done') return;
    const what = address === null ? '' : ` for ${address}`;
    if (reply.status === 'failed' && reply.status_msg?.startsWith('nonexistent alias')) {
      throw new OpnsenseApiError('alias-missing', call, `${reply.status_msg}: create it as type External (advanced) in Firewall ▸ Aliases`);
    }
    if (reply.status === 'not_an_address') throw new OpnsenseApiError('rejected', call, `OPNsense says not_an_address${what}`);
    throw new OpnsenseApiError(
      'rejected',
      call,
      `OPNsense replied status ${JSON.stringify(reply.status)}${reply.status_msg ? ` (${reply.status_msg})` : ''}${what}`,
    );
  }

  protected async call<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T>,
    body?: Record<string, unknown>,
    maxReplyBytes = DEFAULT_MAX_REPLY_BYTES,
  ): Promise<T> {
    if (!this.onCall) return this.callOnce(method, path, schema, body, maxReplyBytes);
    const started = performance.now();
    const endpoint = `${method} ${routeOf(path)}`;
    try {
      const result = await this.callOnce(method, path, schema, body, maxReplyBytes);
      this.onCall({ endpoint, outcome: 'ok', ms: performance.now() - started });
      return result;
    } catch (error) {
      this.onCall({ endpoint, outcome: error instanceof OpnsenseApiError ? error.kind : 'server', ms: performance.now() - started });
      throw error;
    }
  }

  private async callOnce<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T>,
    body: Record<string, unknown> | undefined,
    maxReplyBytes: number,
  ): Promise<T> {
    const call = `${method} /api/${path}`;
    const headers: Record<string, string> = { authorization: this.authorization, accept: 'application/json' };
    let payload: string | undefined;
    if (body !== undefined) {
      // Never an empty body with a JSON content type: OPNsense answers 400 "Invalid JSON syntax".
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const started = performance.now();
    let statusCode: number;
    let text: string;
    const deadline = callDeadline(this.timeoutMs);
    try {
      const response = await request(`${this.baseUrl}/api/${path}`, {
        method,
        headers,
        body: payload,
        dispatcher: this.dispatcher,
        signal: deadline.signal,
      });
      statusCode = response.statusCode;
      text = await readCapped(
        response.body,
        maxReplyBytes,
        () =>
          new OpnsenseApiError(
            'too-large',
            call,
            `reply larger than ${formatBytes(maxReplyBytes)}, abandoned: the firewall (or a proxy in front of it) answers far more than any OPNsense reply; check OPNSENSE_URL and what sits in between`,
          ),
      );
    } catch (error) {
      if (error instanceof OpnsenseApiError) throw error;
      throw classifyTransportError(error, call, this.timeoutMs);
    } finally {
      deadline.done();
    }
    this.logger.debug({ call, status: statusCode, ms: Math.round(performance.now() - started) }, 'opnsense call');
    if (statusCode !== 200) throw httpError(statusCode, text, call);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new OpnsenseApiError(
        'server',
        call,
        `HTTP 200 but the body is not JSON (${describeBody(text)}); is OPNSENSE_URL the API of an OPNsense firewall?`,
        200,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new OpnsenseApiError(
        'server',
        call,
        `unexpected reply ${describeBody(text)}: ${issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'schema mismatch'}`,
        200,
      );
    }
    return parsed.data;
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${bytes} bytes`;
}

/** `firewall/alias_util/add/blocklist` → `firewall/alias_util/add`: module/controller/command only. */
function routeOf(path: string): string {
  return path.split('/').slice(0, 3).join('/');
}

function httpError(statusCode: number, text: string, call: string): OpnsenseApiError {
  let detail = '';
  try {
    const parsed = ErrorReplySchema.safeParse(JSON.parse(text));
    if (parsed.success) detail = parsed.data.errorMessage ?? parsed.data.message ?? '';
  } catch {
    detail = '';
  }
  const suffix = detail ? ` (${detail})` : '';
  let kind: ApiErrorKind;
  let advice: string;
  if (statusCode === 401) {
    kind = 'auth';
    advice = 'authentication failed: check OPNSENSE_KEY and OPNSENSE_SECRET (System ▸ Access ▸ Users ▸ API keys)';
  } else if (statusCode === 403) {
    kind = 'forbidden';
    advice = `forbidden: the API user lacks the privilege for ${call.replace(/^\w+ /, '')} (see deploy/opnsense.md for the privileges edgeban needs)`;
  } else if (statusCode === 404) {
    kind = 'not-found';
    advice = 'endpoint not found: is this OPNsense 24.1 or later, and OPNSENSE_URL its base URL?';
  } else if (statusCode === 408 || statusCode === 429) {
    kind = 'throttled';
    advice = `HTTP ${statusCode}`;
  } else if (statusCode === 500 && /denied for write access/i.test(detail)) {
    kind = 'read-only';
    advice = 'the API user is read-only ("System: Deny config write"): remove that privilege';
  } else if (statusCode >= 500) {
    kind = 'server';
    advice = `HTTP ${statusCode}`;
  } else {
    kind = 'rejected';
    advice = `HTTP ${statusCode}`;
  }
  return new OpnsenseApiError(kind, call, `${advice}${suffix}`, statusCode);
}

export function classifyTransportError(error: unknown, call: string, timeoutMs: number): OpnsenseApiError {
  const failure = transportFailure(error);
  const code = failure.code;
  if (failure.kind === 'timeout') return new OpnsenseApiError('timeout', call, `no answer within ${timeoutMs} ms`);
  if (failure.kind === 'tls') {
    return new OpnsenseApiError(
      'tls',
      call,
      `TLS verification failed (${code || failure.message}): set OPNSENSE_CA_FILE to the firewall's CA, or OPNSENSE_TLS_INSECURE=1 to accept any certificate (not recommended)`,
    );
  }
  if (NETWORK_ERROR_CODES.has(code)) return new OpnsenseApiError('network', call, `cannot reach the firewall (${code})`);
  return new OpnsenseApiError('network', call, `request failed (${code || failure.name || 'error'}: ${failure.message ?? 'unknown'})`);
}

function describeBody(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${JSON.stringify(flat.slice(0, 120))}…` : JSON.stringify(flat);
}
