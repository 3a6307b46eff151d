import type { Dispatcher } from 'undici';
import { request } from '../../net/undici.ts';
import { z } from 'zod';
import type { Logger } from '../../logging/logger.ts';
import { TargetError, type TargetCallRecord } from '../edge-target.ts';
import { callDeadline, readCapped, tlsAgent, transportFailure } from '../http-client.ts';
import type { MikrotikOptions } from './options.ts';

export type Family = 4 | 6;

/** One address-list row as edgeban reads it (RouterOS sends every value as a string). */
export interface RouterEntry {
  /** `*1A`: RouterOS's internal id, unique within one menu (the IPv4 and IPv6 menus count separately). */
  id: string;
  /** As the router prints it: `192.0.2.1`, `198.51.100.0/24`, `2001:db8::1/128`, or a DNS name. */
  address: string;
  comment: string;
  disabled: boolean;
  /** True for entries with a timeout: kept in RAM, gone after a reboot. */
  dynamic: boolean;
  /** What is left of its timeout, in ms, as the router printed it (whole seconds); null when it printed none. */
  remainingMs: number | null;
}

/** One connection-tracking row, as far as killing a banned address's connections needs it. */
export interface RouterConnection {
  id: string;
  /** As the router prints it: `198.51.100.7:40000` (IPv4 with the port), or the address alone (see connectionHosts). */
  srcAddress: string;
  dstAddress: string;
}

export interface NewEntry {
  list: string;
  address: string;
  comment: string;
  /** RouterOS time (`3h25m7s`), or undefined for a static, permanent entry. */
  timeout?: string;
}

/**
 * Replies are read up to a cap: a proxy or a broken router answering hundreds of MB must not take
 * the daemon's memory with it. A list row is about 250 bytes of JSON (id, list, address, comment,
 * timeout, creation-time, flags), so 64 MiB holds a quarter of a million entries, more than a
 * RouterOS box keeps in one list in practice.
 */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

const ROW_PROPERTIES = '.id,address,comment,disabled,dynamic,timeout';

const RowSchema = z.object({
  '.id': z.string().regex(/^\*[0-9A-Fa-f]+$/),
  address: z.string(),
  comment: z.string().optional(),
  disabled: z.string().optional(),
  dynamic: z.string().optional(),
  timeout: z.string().optional(),
});
const RowsSchema = z.array(RowSchema);
const ConnectionRowsSchema = z.array(
  z.object({
    '.id': z.string().regex(/^\*[0-9A-Fa-f]+$/),
    'src-address': z.string().optional(),
    'dst-address': z.string().optional(),
  }),
);
/** RouterOS's error body: `{"error":400,"message":"Bad Request","detail":"failure: already have such entry"}`. */
const ErrorSchema = z.object({ error: z.number().optional(), message: z.string().optional(), detail: z.string().optional() });
const ResourceSchema = z.object({ version: z.string(), 'board-name': z.string().optional() });

export interface MikrotikClientOptions {
  options: MikrotikOptions;
  logger: Logger;
  /** Id for call records (`url list`). */
  target: string;
  onCall?: (call: TargetCallRecord) => void;
  /** Default MAX_REPLY_BYTES. */
  maxReplyBytes?: number;
}

interface Reply {
  status: number;
  json: unknown;
  /** RouterOS's `detail` (or `message`) of an error reply the caller chose to handle. */
  detail: string;
}

/**
 * The RouterOS v7 REST calls edgeban makes on `/ip/firewall/address-list` and
 * `/ipv6/firewall/address-list` (help.mikrotik.com "REST API"): GET lists with property filters in
 * the query, PUT adds and answers the new row with its `.id`, PATCH sets, DELETE `/*ID` removes.
 * Basic auth on every request; errors are HTTP statuses with a JSON body naming the cause.
 * Messages carry the method and path only, never the user's password or the Authorization header.
 */
export class MikrotikClient {
  readonly url: string;
  private readonly authorization: string;
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly target: string;
  private readonly onCall: ((call: TargetCallRecord) => void) | undefined;
  private readonly maxReplyBytes: number;

  constructor(options: MikrotikClientOptions) {
    const o = options.options;
    this.url = o.url;
    this.authorization = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
    this.timeoutMs = o.timeoutMs;
    this.logger = options.logger;
    this.target = options.target;
    this.onCall = options.onCall;
    this.maxReplyBytes = options.maxReplyBytes ?? MAX_REPLY_BYTES;
    // RouterOS's web server handles few connections at once; edgeban's calls are short.
    this.dispatcher = tlsAgent({ connections: 4, ca: o.ca, tlsInsecure: o.tlsInsecure });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Rows of one list, optionally only those with this exact address (as the router prints it). */
  async listEntries(family: Family, list: string, address?: string): Promise<RouterEntry[]> {
    const query = new URLSearchParams({ list });
    if (address !== undefined) query.set('address', address);
    query.set('.proplist', ROW_PROPERTIES);
    const reply = await this.call('GET', menu(family), { query });
    const rows = RowsSchema.safeParse(reply.json);
    if (!rows.success) throw badReply(`GET /rest/${menu(family)}`, rows.error);
    return rows.data.map((row) => ({
      id: row['.id'],
      address: row.address,
      comment: row.comment ?? '',
      disabled: isTrue(row.disabled),
      dynamic: isTrue(row.dynamic),
      remainingMs: row.timeout === undefined ? null : routerTimeMs(row.timeout),
    }));
  }

  /**
   * Adds a row and answers its id, or null when RouterOS already has one with this list and address
   * ("failure: already have such entry").
   */
  async addEntry(family: Family, entry: NewEntry): Promise<string | null> {
    const reply = await this.call('PUT', menu(family), { body: { ...entry }, handle: [400] });
    if (reply.status === 400) {
      if (/already have such entry/i.test(reply.detail)) return null;
      throw new TargetError(
        'rejected',
        'invalid-entry',
        `PUT /rest/${menu(family)}`,
        `PUT /rest/${menu(family)}: RouterOS refused ${entry.address}: ${reply.detail || 'HTTP 400'}`,
      );
    }
    const row = RowSchema.pick({ '.id': true }).safeParse(reply.json);
    if (!row.success) throw badReply(`PUT /rest/${menu(family)}`, row.error);
    return row.data['.id'];
  }

  /** Sets properties of a row; false when the row is gone. */
  async patchEntry(family: Family, id: string, changes: { timeout?: string; comment?: string }): Promise<boolean> {
    const reply = await this.call('PATCH', `${menu(family)}/${checkedId(id)}`, { body: changes, handle: [404] });
    return reply.status !== 404;
  }

  /** Removes a row by id; false when there was none (expired, removed by hand). */
  async deleteEntry(family: Family, id: string): Promise<boolean> {
    const reply = await this.call('DELETE', `${menu(family)}/${checkedId(id)}`, { handle: [404] });
    return reply.status !== 404;
  }

  /**
   * Every connection-tracking row of one family (`/ip/firewall/connection`, `/ipv6/…`), three
   * properties each. RouterOS cannot filter them by address on its side: `src-address` carries the
   * port, REST GET filters only by equality and API queries have no `~` (docs/routeros-rest.md).
   */
  async listConnections(family: Family): Promise<RouterConnection[]> {
    const reply = await this.call('GET', connectionMenu(family), { query: new URLSearchParams({ '.proplist': '.id,src-address,dst-address' }) });
    const rows = ConnectionRowsSchema.safeParse(reply.json);
    if (!rows.success) throw badReply(`GET /rest/${connectionMenu(family)}`, rows.error);
    return rows.data.map((row) => ({ id: row['.id'], srcAddress: row['src-address'] ?? '', dstAddress: row['dst-address'] ?? '' }));
  }

  /** Removes a tracked connection; false when it was gone already (closed, timed out). */
  async deleteConnection(family: Family, id: string): Promise<boolean> {
    const reply = await this.call('DELETE', `${connectionMenu(family)}/${checkedId(id)}`, { handle: [404] });
    return reply.status !== 404;
  }

  /** RouterOS version and board (`/system/resource`): a cheap read that proves URL, TLS and login. */
  async systemResource(): Promise<{ version: string; board: string }> {
    const reply = await this.call('GET', 'system/resource');
    const parsed = ResourceSchema.safeParse(reply.json);
    if (!parsed.success) throw badReply('GET /rest/system/resource', parsed.error);
    return { version: parsed.data.version, board: parsed.data['board-name'] ?? '' };
  }

  /** Firewall rules of a menu (`ip/firewall/filter`, `ipv6/firewall/raw`…) matching these properties. */
  async rules(path: string, match: Record<string, string>): Promise<Array<Record<string, string>>> {
    const reply = await this.call('GET', path, { query: new URLSearchParams(match) });
    const rows = z.array(z.record(z.string(), z.string())).safeParse(reply.json);
    if (!rows.success) throw badReply(`GET /rest/${path}`, rows.error);
    return rows.data;
  }

  /** Adds a firewall rule to a menu (`ip/firewall/raw`…) and answers its `.id`; `edgeban setup-mikrotik` only. */
  async addRule(path: string, rule: Record<string, string>): Promise<string> {
    const reply = await this.call('PUT', path, { body: { ...rule } });
    const row = RowSchema.pick({ '.id': true }).safeParse(reply.json);
    if (!row.success) throw badReply(`PUT /rest/${path}`, row.error);
    return row.data['.id'];
  }

  private async call(
    method: 'GET' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    what: { query?: URLSearchParams; body?: Record<string, unknown>; handle?: number[] } = {},
  ): Promise<Reply> {
    const started = performance.now();
    const endpoint = `${method} ${path.replace(/\/\*[0-9A-Fa-f]+$/, '')}`;
    try {
      const reply = await this.callOnce(method, path, what);
      this.onCall?.({ kind: 'mikrotik', target: this.target, endpoint, outcome: 'ok', durationMs: performance.now() - started });
      return reply;
    } catch (error) {
      const outcome = error instanceof TargetError ? error.kind : 'retry';
      this.onCall?.({ kind: 'mikrotik', target: this.target, endpoint, outcome, durationMs: performance.now() - started });
      throw error;
    }
  }

  private async callOnce(method: string, path: string, what: { query?: URLSearchParams; body?: Record<string, unknown>; handle?: number[] }): Promise<Reply> {
    const call = `${method} /rest/${path}`;
    const headers: Record<string, string> = { authorization: this.authorization, accept: 'application/json' };
    let payload: string | undefined;
    if (what.body !== undefined) {
      payload = JSON.stringify(what.body);
      headers['content-type'] = 'application/json';
    }
    const query = what.query && [...what.query.keys()].length > 0 ? `?${what.query.toString()}` : '';
    const started = performance.now();
    let status: number;
    let text: string;
    const deadline = callDeadline(this.timeoutMs);
    try {
      const response = await request(`${this.url}/rest/${path}${query}`, {
        method: method as Dispatcher.HttpMethod,
        headers,
        body: payload,
        dispatcher: this.dispatcher,
        signal: deadline.signal,
      });
      status = response.statusCode;
      text = await readCapped(
        response.body,
        this.maxReplyBytes,
        () =>
          new TargetError(
            'operator',
            'too-large',
            call,
            `${call}: reply larger than ${this.maxReplyBytes} bytes, abandoned: the router (or a proxy in front of it) answers far more than any address list; check url`,
          ),
      );
    } catch (error) {
      if (error instanceof TargetError) throw error;
      throw this.transportError(error, call);
    } finally {
      deadline.done();
    }
    this.logger.debug({ call, status, ms: Math.round(performance.now() - started) }, 'mikrotik call');
    let json: unknown = null;
    if (text.trim() !== '') {
      try {
        json = JSON.parse(text);
      } catch {
        // A proxy's or the WebFig login page's HTML: not RouterOS's REST service answering. An
        // error status is judged by the status alone.
        if (status >= 200 && status < 300) {
          throw new TargetError(
            'operator',
            'not-json',
            call,
            `${call}: HTTP ${status} and the body is not JSON (${describe(text)}); is url the router's https address (the www-ssl service, RouterOS 7.1 or later)?`,
          );
        }
      }
    }
    const error = ErrorSchema.safeParse(json);
    const detail = status >= 400 && error.success ? (error.data.detail ?? error.data.message ?? '') : '';
    if (status >= 200 && status < 300) return { status, json, detail: '' };
    if (what.handle?.includes(status)) return { status, json, detail };
    throw statusError(status, detail, call);
  }

  private transportError(error: unknown, call: string): TargetError {
    const failure = transportFailure(error);
    const code = failure.code;
    if (failure.kind === 'timeout') {
      return new TargetError('retry', 'timeout', call, `${call}: no answer within ${this.timeoutMs} ms`, { cause: error });
    }
    if (failure.kind === 'tls') {
      return new TargetError(
        'operator',
        'tls',
        call,
        `${call}: TLS verification failed (${code || failure.message}): give the router's CA with ca_file= (MIKROTIK_CA_FILE), or tls_insecure=1 to accept any certificate (not recommended)`,
        { cause: error },
      );
    }
    return new TargetError('retry', 'network', call, `${call}: cannot reach the router (${code || failure.name || 'error'})`, { cause: error });
  }
}

/** RouterOS 7 prints flags as `true`/`false`; older firmware and some menus as `yes`/`no`. */
function isTrue(flag: string | undefined): boolean {
  return flag === 'true' || flag === 'yes';
}

function menu(family: Family): string {
  return family === 4 ? 'ip/firewall/address-list' : 'ipv6/firewall/address-list';
}

function connectionMenu(family: Family): string {
  return family === 4 ? 'ip/firewall/connection' : 'ipv6/firewall/connection';
}

function checkedId(id: string): string {
  // Ids come from the router's own replies; anything else must never be spliced into a path.
  if (!/^\*[0-9A-Fa-f]{1,16}$/.test(id)) throw new TargetError('rejected', 'bad-id', 'id check', `${JSON.stringify(id)} is not a RouterOS id`);
  return id;
}

function statusError(status: number, detail: string, call: string): TargetError {
  const suffix = detail ? ` (${detail})` : '';
  if (status === 401) {
    return new TargetError(
      'operator',
      'unauthorized',
      call,
      `${call}: HTTP 401${suffix}: user/password wrong or the user lacks the api/rest-api policy (see README "MikroTik RouterOS")`,
    );
  }
  if (status === 403 || /not enough permissions/i.test(detail)) {
    return new TargetError(
      'operator',
      'forbidden',
      call,
      `${call}: HTTP ${status}${suffix}: the user's group lacks the read or write policy (see README "MikroTik RouterOS")`,
    );
  }
  if (status === 404) {
    return new TargetError(
      'operator',
      'not-found',
      call,
      `${call}: HTTP 404${suffix}: no REST API here; RouterOS 7.1 or later with the www-ssl service is needed`,
    );
  }
  if (status === 408 || status === 429 || status >= 500) return new TargetError('retry', `http-${status}`, call, `${call}: HTTP ${status}${suffix}`);
  return new TargetError('rejected', `http-${status}`, call, `${call}: HTTP ${status}${suffix}`);
}

function badReply(call: string, error: z.ZodError): TargetError {
  const issue = error.issues[0];
  return new TargetError(
    'retry',
    'bad-reply',
    call,
    `${call}: unexpected reply: ${issue ? `${issue.path.join('.') || '(root)'} ${issue.message}` : 'schema mismatch'}`,
  );
}

function describe(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${JSON.stringify(flat.slice(0, 80))}…` : JSON.stringify(flat);
}

const TIME_UNITS_S: Readonly<Record<string, number>> = { w: 604_800, d: 86_400, h: 3600, m: 60, s: 1 };

/**
 * A RouterOS time as RouterOS 7 prints it (`1w2d3h4m5s`, optionally `…hh:mm:ss` or with `ms`), in
 * ms; null when it is no such time (then the entry's end is unknown, not guessed).
 */
export function routerTimeMs(text: string): number | null {
  const match = /^((?:\d+(?:ms|[wdhms]))*)(?:(\d{1,2}):(\d{2}):(\d{2}))?$/.exec(text.trim().toLowerCase());
  if (match === null || text.trim() === '') return null;
  let ms = 0;
  for (const part of match[1]!.matchAll(/(\d+)(ms|[wdhms])/g)) ms += part[2] === 'ms' ? Number(part[1]) : Number(part[1]) * TIME_UNITS_S[part[2]!]! * 1000;
  if (match[2] !== undefined) ms += (Number(match[2]) * 3600 + Number(match[3]) * 60 + Number(match[4])) * 1000;
  return ms;
}
