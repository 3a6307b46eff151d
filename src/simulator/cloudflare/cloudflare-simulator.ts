import type http from 'node:http';
import { systemClock, type Clock } from '../../util/clock.ts';
import { BodyTooLargeError, isLoopbackHost, readBody } from '../http-util.ts';
import { SimulatorListener } from '../simulator-listener.ts';
import { ApiFailure, hexId, ListsState, UNDOCUMENTED, type SimList } from './lists-state.ts';

/*
 * A Cloudflare API v4 on loopback, written from developers.cloudflare.com (read 2026-12-07):
 * Lists (rules/lists, items, bulk_operations; see src/targets/cloudflare/cloudflare-target.ts for
 * the endpoint list) and the zone entry point ruleset of the http_request_firewall_custom phase
 * (ruleset-engine/rulesets-api and waf/custom-rules/create-api/: GET/PUT
 * /zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint, POST
 * /zones/{zone}/rulesets/{ruleset}/rules to append one rule). Bearer API tokens with permissions.
 */

/** What a simulated API token may do. */
export type CloudflarePermission = 'lists:read' | 'lists:edit' | 'waf:edit';

export interface CloudflareSimulatorOptions {
  host?: string;
  port?: number;
  tokens: Array<{ token: string; permissions: CloudflarePermission[] }>;
  /** Accounts with their zones and pre-created lists (kind ip). */
  accounts: Array<{ id: string; zones?: string[]; lists?: Array<{ name: string; id?: string }> }>;
  /** Submit → applied; default 300 ms. */
  operationDelayMs?: number;
  /** Items per account; default 10,000. */
  maxItems?: number;
  /** 128 (today's docs) or 64 (the rule before July 2025); default 128. */
  ipv6FinestPrefix?: number;
  /** Largest per_page; default 500. */
  maxPerPage?: number;
  /** Drives operation completion; default real timers. */
  clock?: Pick<Clock, 'now' | 'setTimer'>;
}

interface Rule {
  id: string;
  expression: string;
  action: string;
  description: string;
  enabled: boolean;
  version: string;
}
interface Zone {
  account: string;
  ruleset: { id: string; rules: Rule[]; version: number } | null;
}

const PHASE = 'http_request_firewall_custom';
const ACTIONS = ['block', 'challenge', 'js_challenge', 'managed_challenge', 'log', 'skip'];
const MAX_BODY = 16 * 1024 * 1024;

export class CloudflareSimulator {
  private readonly state: ListsState;
  private readonly tokens: Map<string, Set<CloudflarePermission>>;
  private readonly zones = new Map<string, Zone>();
  private readonly listener: SimulatorListener;
  private readonly maxPerPage: number;
  /** Next API answers forced to a status (faults), consumed one per request. */
  private faults: Array<{ status: number; retryAfter: string | null }> = [];
  /** An outage switched on and off (the queue above is for counted faults): every API call answers 503. */
  private down = false;
  /** Added before every API answer, so a client's concurrent calls overlap. */
  private latencyMs = 0;
  /** Adds complete but store nothing (an operation Cloudflare reports done that lost its items). */
  private discardAdds = false;
  /** API requests by `METHOD template`. */
  readonly calls = new Map<string, number>();

  private constructor(options: CloudflareSimulatorOptions) {
    const clock = options.clock ?? systemClock;
    this.state = new ListsState({
      clock,
      operationDelayMs: options.operationDelayMs ?? 300,
      maxItems: options.maxItems ?? 10_000,
      ipv6FinestPrefix: options.ipv6FinestPrefix ?? 128,
    });
    const host = options.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new RangeError('the simulator listens on loopback only');
    this.listener = new SimulatorListener({ name: 'Cloudflare simulator', host, handler: (req, res) => void this.handle(req, res) });
    this.maxPerPage = options.maxPerPage ?? 500;
    this.tokens = new Map(options.tokens.map((t) => [t.token, new Set(t.permissions)]));
    for (const account of options.accounts) {
      this.state.addAccount(account.id);
      for (const zone of account.zones ?? []) this.zones.set(zone, { account: account.id, ruleset: null });
      for (const list of account.lists ?? []) this.state.createList(account.id, list.name, 'ip', 'created by the simulator', list.id);
    }
  }

  static async start(options: CloudflareSimulatorOptions): Promise<CloudflareSimulator> {
    const simulator = new CloudflareSimulator(options);
    await simulator.listener.start(options.port ?? 0);
    return simulator;
  }

  /** The API base URL (what `api=` takes). */
  get url(): string {
    return `${this.listener.url}/client/v4`;
  }

  async stop(): Promise<void> {
    await this.listener.stop();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator');
    try {
      let body: unknown;
      const raw = await readBody(req, MAX_BODY);
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new ApiFailure(400, UNDOCUMENTED, 'request body is not valid JSON');
        }
      }
      const path = url.pathname.replace(/^\/client\/v4/, '');
      if (path.startsWith('/__simulator/')) {
        send(res, 200, this.admin(req.method ?? 'GET', path.slice('/__simulator/'.length), body));
        return;
      }
      if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
      if (this.down) throw new ApiFailure(503, UNDOCUMENTED, 'simulated outage');
      const fault = this.faults.shift();
      if (fault !== undefined) {
        const headers: Record<string, string> = fault.retryAfter === null ? {} : { 'retry-after': fault.retryAfter };
        throw new ApiFailure(
          fault.status,
          fault.status === 429 ? 971 : UNDOCUMENTED,
          fault.status === 429 ? 'Please wait and consider throttling your request speed' : 'simulated failure',
          headers,
        );
      }
      const reply = this.api(req.method ?? 'GET', url, req.headers.authorization, body);
      send(res, 200, {
        success: true,
        errors: [],
        messages: [],
        result: reply.result,
        ...(reply.resultInfo === undefined ? {} : { result_info: reply.resultInfo }),
      });
    } catch (error) {
      if (error instanceof ApiFailure) {
        send(res, error.status, { success: false, errors: [{ code: error.code, message: error.message }], messages: [], result: null }, error.headers);
      } else if (error instanceof BodyTooLargeError) {
        send(res, 413, { success: false, errors: [{ code: UNDOCUMENTED, message: error.message }], messages: [], result: null });
      } else {
        send(res, 500, { success: false, errors: [{ code: UNDOCUMENTED, message: (error as Error).message }], messages: [], result: null });
      }
    }
  }

  private count(template: string): void {
    this.calls.set(template, (this.calls.get(template) ?? 0) + 1);
  }

  private authorize(header: string | undefined, needs: CloudflarePermission): void {
    const token = /^Bearer (\S+)$/.exec(header ?? '')?.[1];
    const permissions = token === undefined ? undefined : this.tokens.get(token);
    // Cloudflare answers a missing or unknown token and a token without the permission alike: "Authentication error" (10000).
    if (permissions === undefined) throw new ApiFailure(401, 10000, 'Authentication error');
    const granted = permissions.has(needs) || (needs === 'lists:read' && permissions.has('lists:edit'));
    if (!granted) throw new ApiFailure(403, 10000, 'Authentication error');
  }

  private api(method: string, url: URL, auth: string | undefined, body: unknown): { result: unknown; resultInfo?: unknown } {
    const path = url.pathname.replace(/^\/client\/v4/, '');
    let m: RegExpExecArray | null;
    m = /^\/accounts\/([^/]+)\/rules\/lists\/bulk_operations\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      this.count('GET bulk_operations');
      this.authorize(auth, 'lists:read');
      return { result: this.state.operation(m[1]!, m[2]!) };
    }
    m = /^\/accounts\/([^/]+)\/rules\/lists$/.exec(path);
    if (m) {
      const account = m[1]!;
      if (method === 'GET') {
        this.count('GET lists');
        this.authorize(auth, 'lists:read');
        return { result: this.state.lists(account).map((list) => this.listJson(account, list)) };
      }
      if (method === 'POST') {
        this.count('POST lists');
        this.authorize(auth, 'lists:edit');
        const b = (body ?? {}) as { name?: unknown; kind?: unknown; description?: unknown };
        const list = this.state.createList(account, String(b.name ?? ''), String(b.kind ?? ''), typeof b.description === 'string' ? b.description : '');
        return { result: this.listJson(account, list) };
      }
    }
    m = /^\/accounts\/([^/]+)\/rules\/lists\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      this.count('GET list');
      this.authorize(auth, 'lists:read');
      return { result: this.listJson(m[1]!, this.state.list(m[1]!, m[2]!)) };
    }
    m = /^\/accounts\/([^/]+)\/rules\/lists\/([^/]+)\/items$/.exec(path);
    if (m) {
      const account = m[1]!;
      this.count(`${method} items`);
      this.authorize(auth, method === 'GET' ? 'lists:read' : 'lists:edit');
      const list = this.state.list(account, m[2]!);
      if (method === 'GET') return this.items(list, url);
      if (method === 'POST' || method === 'PUT') {
        if (!Array.isArray(body)) throw new ApiFailure(400, UNDOCUMENTED, 'body must be an array of items');
        const items = body.map((item: unknown, index) => {
          const { ip, comment } = (item ?? {}) as { ip?: unknown; comment?: unknown };
          if (comment !== undefined && (typeof comment !== 'string' || comment.length > 500))
            throw new ApiFailure(400, UNDOCUMENTED, `item ${index}: comment must be a string of at most 500 characters`);
          return { ip: this.state.validateIp(ip, index), comment: typeof comment === 'string' ? comment : '' };
        });
        const replace = method === 'PUT';
        const operation = this.state.submit(
          account,
          () =>
            replace
              ? items.length - list.items.size
              : this.state.newCount(
                  list,
                  items.map((i) => i.ip),
                ),
          () => {
            if (replace) list.items.clear();
            if (!this.discardAdds) this.state.upsert(account, list, items);
          },
        );
        return { result: { operation_id: operation.id } };
      }
      if (method === 'DELETE') {
        const ids = (body as { items?: Array<{ id?: unknown }> } | undefined)?.items;
        if (!Array.isArray(ids) || ids.some((i) => typeof i?.id !== 'string')) throw new ApiFailure(400, UNDOCUMENTED, 'body must be { items: [{ id }] }');
        const operation = this.state.submit(
          account,
          () => 0,
          () => {
            for (const { id } of ids) list.items.delete(id as string);
          },
        );
        return { result: { operation_id: operation.id } };
      }
    }
    m = /^\/zones\/([^/]+)\/rulesets\/phases\/([^/]+)\/entrypoint$/.exec(path);
    if (m) {
      this.count(`${method} entrypoint`);
      this.authorize(auth, 'waf:edit');
      const zone = this.zone(m[1]!);
      if (m[2] !== PHASE) throw new ApiFailure(400, UNDOCUMENTED, `the simulator plays only the ${PHASE} phase`);
      if (method === 'GET') {
        if (zone.ruleset === null) throw new ApiFailure(404, UNDOCUMENTED, `could not find entrypoint ruleset in the ${PHASE} phase`);
        return { result: rulesetJson(zone) };
      }
      if (method === 'PUT') {
        const rules = (body as { rules?: unknown } | undefined)?.rules;
        if (!Array.isArray(rules)) throw new ApiFailure(400, UNDOCUMENTED, 'rules must be an array');
        const checked = rules.map((rule) => this.rule(zone, rule));
        zone.ruleset = { id: zone.ruleset?.id ?? hexId(), rules: checked, version: (zone.ruleset?.version ?? 0) + 1 };
        return { result: rulesetJson(zone) };
      }
    }
    m = /^\/zones\/([^/]+)\/rulesets\/([^/]+)\/rules$/.exec(path);
    if (m && method === 'POST') {
      this.count('POST ruleset rules');
      this.authorize(auth, 'waf:edit');
      const zone = this.zone(m[1]!);
      if (zone.ruleset === null || zone.ruleset.id !== m[2]) throw new ApiFailure(404, UNDOCUMENTED, 'ruleset not found');
      zone.ruleset.rules.push(this.rule(zone, body));
      zone.ruleset.version++;
      return { result: rulesetJson(zone) };
    }
    throw new ApiFailure(404, 7000, 'No route for that URI');
  }

  private items(list: SimList, url: URL): { result: unknown; resultInfo?: unknown } {
    const perPageText = url.searchParams.get('per_page');
    const perPage = perPageText === null ? 25 : Number(perPageText);
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > this.maxPerPage)
      throw new ApiFailure(400, UNDOCUMENTED, `per_page must be from 1 to ${this.maxPerPage}`);
    const page = this.state.page(list, perPage, url.searchParams.get('cursor'));
    const result = page.items.map(({ seq: _seq, ...item }) => item);
    return { result, resultInfo: { cursors: page.after === null ? {} : { after: page.after } } };
  }

  private zone(id: string): Zone {
    const zone = this.zones.get(id);
    if (zone === undefined) throw new ApiFailure(403, 10000, 'Authentication error');
    return zone;
  }

  private rule(zone: Zone, input: unknown): Rule {
    const r = (input ?? {}) as Partial<Record<keyof Rule, unknown>>;
    if (typeof r.id === 'string' && zone.ruleset !== null) {
      // A PUT may keep an existing rule by naming only its id.
      const kept = zone.ruleset.rules.find((rule) => rule.id === r.id);
      if (kept !== undefined && r.expression === undefined) return kept;
    }
    if (typeof r.expression !== 'string' || r.expression.trim() === '') throw new ApiFailure(400, UNDOCUMENTED, 'rule expression is required');
    if (typeof r.action !== 'string' || !ACTIONS.includes(r.action))
      throw new ApiFailure(400, UNDOCUMENTED, `rule action must be one of ${ACTIONS.join(', ')}`);
    for (const [, name] of r.expression.matchAll(/\$([a-z0-9_]+)/g)) {
      if (this.state.listByName(zone.account, name!) === undefined) throw new ApiFailure(400, UNDOCUMENTED, `filter parsing error: unknown list $${name}`);
    }
    return {
      id: hexId(),
      expression: r.expression,
      action: r.action,
      description: typeof r.description === 'string' ? r.description : '',
      enabled: r.enabled !== false,
      version: '1',
    };
  }

  private listJson(account: string, list: SimList): unknown {
    const referencing = [...this.zones.values()]
      .filter((zone) => zone.account === account)
      .flatMap((zone) => zone.ruleset?.rules ?? [])
      .filter((rule) => rule.enabled && new RegExp(`\\$${list.name}\\b`).test(rule.expression)).length;
    return {
      id: list.id,
      name: list.name,
      kind: list.kind,
      description: list.description,
      num_items: list.items.size,
      num_referencing_filters: referencing,
      created_on: list.created_on,
      modified_on: list.modified_on,
    };
  }

  /** The unauthenticated test interface: state, faults, a foreign pending operation, foreign items, emptying a list. */
  private admin(method: string, action: string, body: unknown): unknown {
    const b = (body ?? {}) as Record<string, unknown>;
    if (method === 'GET' && action === 'state') {
      const accounts: Record<string, unknown> = {};
      for (const id of this.state.accountIds()) {
        accounts[id] = this.state.lists(id).map((list) => ({
          id: list.id,
          name: list.name,
          kind: list.kind,
          items: [...list.items.values()].sort((a, b) => a.seq - b.seq).map((item) => ({ id: item.id, ip: item.ip, comment: item.comment })),
        }));
      }
      const zones = Object.fromEntries([...this.zones].map(([id, zone]) => [id, zone.ruleset?.rules ?? null]));
      return { accounts, zones, submitted: this.state.submitted, conflicts: this.state.conflicts, calls: Object.fromEntries(this.calls) };
    }
    if (method === 'POST' && action === 'faults') {
      // Switches (kept until switched again) and, with a status, a queue of counted faults.
      if (b.down !== undefined) this.down = b.down === true;
      if (b.latencyMs !== undefined) this.latencyMs = Number(b.latencyMs);
      if (b.discardAdds !== undefined) this.discardAdds = b.discardAdds === true;
      if (b.status === undefined) return { down: this.down, latencyMs: this.latencyMs, discardAdds: this.discardAdds, queued: this.faults.length };
      const count = Number(b.count ?? 1);
      for (let i = 0; i < count; i++) this.faults.push({ status: Number(b.status), retryAfter: b.retryAfter === undefined ? null : String(b.retryAfter) });
      return { queued: this.faults.length };
    }
    if (method === 'POST' && action === 'hold') {
      return this.state.hold(String(b.account), Number(b.ms));
    }
    if (method === 'POST' && action === 'empty') {
      // Someone emptied the list in the dashboard: Cloudflare never loses items by itself.
      const list = this.state.listByName(String(b.account), String(b.list));
      if (list === undefined) throw new ApiFailure(404, UNDOCUMENTED, 'no such list');
      list.items.clear();
      return { items: 0 };
    }
    if (method === 'POST' && action === 'items') {
      const list = this.state.listByName(String(b.account), String(b.list));
      if (list === undefined) throw new ApiFailure(404, UNDOCUMENTED, 'no such list');
      const items = (b.items as Array<{ ip: string; comment?: string }>).map((item, index) => ({
        ip: this.state.validateIp(item.ip, index),
        comment: item.comment ?? '',
      }));
      this.state.upsert(String(b.account), list, items);
      return { items: list.items.size };
    }
    throw new ApiFailure(404, UNDOCUMENTED, `unknown admin action ${method} ${action}`);
  }
}

function rulesetJson(zone: Zone): unknown {
  const ruleset = zone.ruleset!;
  return { id: ruleset.id, name: 'default', kind: 'zone', phase: PHASE, version: String(ruleset.version), rules: ruleset.rules };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
