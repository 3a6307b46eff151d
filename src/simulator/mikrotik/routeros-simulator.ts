import type http from 'node:http';
import { z } from 'zod';
import { describeZodError, FaultPlan, faultsSchema, type SimulatorFaults } from '../faults.ts';
import { BodyTooLargeError, isLoopbackHost, readBody, TimerSet } from '../http-util.ts';
import { createRng } from '../rng.ts';
import { SimulatorListener } from '../simulator-listener.ts';
import { AddressListStore, RouterFailure, type Menu } from './address-list-store.ts';
import { ConnectionTable } from './connection-table.ts';

/**
 * RouterOS user group policies (help.mikrotik.com "User"): `rest-api` lets a user log in to the
 * REST API, `read` allows GET, `write` allows PUT/PATCH/DELETE.
 */
export interface RouterUser {
  name: string;
  password: string;
  policies: string[];
}

export interface RouterRule {
  chain: string;
  action: string;
  'src-address-list'?: string;
  comment?: string;
  disabled?: string;
}

export interface RouterOsSimulatorOptions {
  host?: string;
  port?: number;
  users: RouterUser[];
  /** The rules of `ip/firewall/filter`, `ip/firewall/raw`, `ipv6/firewall/filter`, `ipv6/firewall/raw`. */
  rules?: Partial<Record<RulePath, RouterRule[]>>;
  /** PEM; serve https (RouterOS's www-ssl) instead of http (www). */
  tls?: { cert: string; key: string };
  faults?: Partial<MikrotikFaults>;
  seed?: number;
  /** Wall clock; the simulator adds its own offset, moved forward by advanceClock(). Default Date.now. */
  now?: () => number;
  version?: string;
}

export const RULE_PATHS = ['ip/firewall/filter', 'ip/firewall/raw', 'ipv6/firewall/filter', 'ipv6/firewall/raw'] as const;
export type RulePath = (typeof RULE_PATHS)[number];

/** The faults that mean something for a router: latency, 500s, hangs, down (refuse), flapping. */
export type MikrotikFaults = Pick<SimulatorFaults, 'latencyMs' | 'errorRate' | 'hangRate' | 'refuse' | 'flapPeriodMs'>;
const mikrotikFaultsSchema = faultsSchema
  .pick({ latencyMs: true, errorRate: true, hangRate: true, refuse: true, flapPeriodMs: true })
  .extend({ refuseForMs: z.number().int().min(1).max(3_600_000).optional() });

interface SimulatorCallRecord {
  method: string;
  path: string;
  status: number;
}

const MAX_BODY = 1024 * 1024;
const ADDRESS_LIST = /^\/rest\/(ip|ipv6)\/firewall\/address-list(?:\/(\*[0-9A-Fa-f]+))?$/;
const CONNECTION = /^\/rest\/(ip|ipv6)\/firewall\/connection(?:\/(\*[0-9A-Fa-f]+))?$/;
const WRITABLE = new Set(['list', 'address', 'comment', 'timeout', 'disabled']);
const RULE_WRITABLE = new Set(['chain', 'action', 'src-address-list', 'comment', 'disabled']);

interface Reply {
  status: number;
  body?: unknown;
}

const failure = (status: number, message: string, detail?: string): Reply => ({ status, body: { error: status, message, ...(detail ? { detail } : {}) } });

/**
 * A RouterOS v7 REST API on loopback (help.mikrotik.com "REST API", "Address-lists", "User"):
 * HTTP basic auth against users and their group policies, the IPv4 and IPv6 address-list menus
 * (GET with property filters and `.proplist`, PUT to add, PATCH to set, DELETE by `.id`), the
 * `/system/resource` print, firewall filter/raw rules to read and add (PUT), and errors as RouterOS sends them:
 * `{"error":400,"message":"Bad Request","detail":"failure: already have such entry"}`.
 * Time runs on an offset clock tests move forward; a reboot drops dynamic (timeout) entries.
 */
export class RouterOsSimulator {
  readonly store: AddressListStore;
  /** The connection-tracking tables; tests fill them through `POST /__simulator/connections`. */
  readonly connections = new ConnectionTable();
  private readonly listener: SimulatorListener;
  private readonly users: RouterUser[];
  private readonly rules: Record<RulePath, RouterRule[]>;
  private readonly version: string;
  private readonly wallClock: () => number;
  private offsetMs = 0;
  private readonly faultPlan: FaultPlan;
  private readonly timers = new TimerSet();
  private readonly callLog: SimulatorCallRecord[] = [];
  private stopped = false;

  private constructor(options: RouterOsSimulatorOptions) {
    const host = options.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new RangeError(`the simulator only listens on loopback, not ${JSON.stringify(host)}`);
    this.listener = new SimulatorListener({
      name: 'RouterOS simulator',
      host,
      tls: options.tls,
      handler: (req, res) => {
        const admin = (req.url ?? '').startsWith('/__simulator/');
        void (admin ? this.handleAdmin(req, res) : this.handleRest(req, res)).catch(() => res.destroy());
      },
    });
    this.users = options.users.map((u) => ({ ...u, policies: [...u.policies] }));
    this.rules = { 'ip/firewall/filter': [], 'ip/firewall/raw': [], 'ipv6/firewall/filter': [], 'ipv6/firewall/raw': [] };
    for (const path of RULE_PATHS) this.rules[path] = [...(options.rules?.[path] ?? [])];
    this.version = options.version ?? '7.16.2 (stable)';
    this.wallClock = options.now ?? Date.now;
    this.store = new AddressListStore(() => this.now());
    this.faultPlan = new FaultPlan(createRng(options.seed ?? 1), () => this.now());
    this.faultPlan.update(options.faults ?? {});
  }

  static async start(options: RouterOsSimulatorOptions): Promise<RouterOsSimulator> {
    const simulator = new RouterOsSimulator(options);
    await simulator.listener.start(options.port ?? 0);
    if (simulator.faultPlan.settings().refuse) simulator.listener.refuse();
    return simulator;
  }

  get url(): string {
    return this.listener.url;
  }

  now(): number {
    return this.wallClock() + this.offsetMs;
  }

  /** Moves the router's clock forward: timeouts run down, entries whose timeout ends are removed. */
  advanceClock(ms: number): void {
    this.offsetMs += ms;
  }

  reboot(): void {
    this.store.reboot();
  }

  setFaults(faults: Partial<MikrotikFaults>): void {
    const previous = this.faultPlan.update(faults);
    const refuse = this.faultPlan.settings().refuse;
    if (refuse !== previous.refuse && !this.stopped) {
      if (refuse) this.listener.refuse();
      else this.listener.reopen();
    }
  }

  setRules(path: RulePath, rules: RouterRule[]): void {
    this.rules[path] = [...rules];
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.cancelAll();
    await this.listener.stop();
  }

  private async handleRest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY);
    } catch (error) {
      if (error instanceof BodyTooLargeError && !res.headersSent) send(res, failure(413, 'Request Entity Too Large'));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://router');
    const method = req.method ?? 'GET';
    const settings = this.faultPlan.settings();
    if (settings.latencyMs > 0) await this.timers.sleep(settings.latencyMs);
    const verdict = this.faultPlan.verdict();
    if (verdict === 'hang') return; // never answered: the client's timeout decides
    let reply: Reply;
    if (verdict === 'unavailable') reply = failure(503, 'Service Unavailable');
    else if (verdict === 'error') reply = failure(500, 'Internal Server Error');
    else reply = this.dispatch(req, url, method, body);
    this.callLog.push({ method, path: url.pathname, status: reply.status });
    send(res, reply);
  }

  private dispatch(req: http.IncomingMessage, url: URL, method: string, raw: Buffer): Reply {
    const user = this.authenticate(req.headers.authorization);
    if (!user) return failure(401, 'Unauthorized');
    const needs = method === 'GET' ? 'read' : 'write';
    if (!user.policies.includes(needs)) return failure(403, 'Forbidden', 'not enough permissions (9)');
    let body: Record<string, unknown> = {};
    if (method === 'PUT' || method === 'PATCH' || method === 'POST') {
      try {
        const parsed: unknown = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return failure(400, 'Bad Request', 'JSON object expected');
        body = parsed as Record<string, unknown>;
      } catch {
        return failure(400, 'Bad Request', 'JSON parse error');
      }
    }
    try {
      return this.route(url, method, body);
    } catch (error) {
      if (error instanceof RouterFailure) return failure(error.status, 'Bad Request', error.message);
      throw error;
    }
  }

  private route(url: URL, method: string, body: Record<string, unknown>): Reply {
    const path = url.pathname.replace(/\/+$/, '');
    const list = ADDRESS_LIST.exec(path);
    if (list) return this.addressList(list[1] as Menu, list[2], url.searchParams, method, body);
    const connection = CONNECTION.exec(path);
    if (connection) return this.connection(connection[1] as Menu, connection[2], url.searchParams, method);
    if (path === '/rest/system/resource' && method === 'GET') {
      return { status: 200, body: { version: this.version, 'board-name': 'CHR', platform: 'MikroTik', uptime: '1h2m3s', 'architecture-name': 'x86_64' } };
    }
    const rulePath = path.replace(/^\/rest\//, '') as RulePath;
    if (RULE_PATHS.includes(rulePath) && method === 'GET') {
      const rows = this.rules[rulePath].map((rule, index) => ruleRow(rule, index));
      return { status: 200, body: filterRows(rows, url.searchParams) };
    }
    if (RULE_PATHS.includes(rulePath) && method === 'PUT') {
      // `add`: the rule goes last (RouterOS's default without place-before); rules are never removed here, so the index is the id.
      const fields = writableFields(body, RULE_WRITABLE);
      if (fields.chain === undefined) throw new RouterFailure('missing value(s) of argument(s) chain');
      const { chain, action = 'accept', ...rest } = fields;
      const rule: RouterRule = { chain, action, ...rest };
      this.rules[rulePath].push(rule);
      return { status: 201, body: ruleRow(rule, this.rules[rulePath].length - 1) };
    }
    if (!path.startsWith('/rest/')) return failure(404, 'Not Found');
    return failure(400, 'Bad Request', `no such command or directory (${path.split('/').pop() ?? ''})`);
  }

  private addressList(menu: Menu, id: string | undefined, query: URLSearchParams, method: string, body: Record<string, unknown>): Reply {
    const store = this.store;
    if (id === undefined) {
      if (method === 'GET')
        return {
          status: 200,
          body: filterRows(
            store.all(menu).map((e) => store.print(e)),
            query,
          ),
        };
      if (method !== 'PUT') return failure(400, 'Bad Request', 'no such command');
      const fields = writableFields(body);
      if (fields.address === undefined) throw new RouterFailure('missing value(s) of argument(s) address');
      if (fields.list === undefined) throw new RouterFailure('missing value(s) of argument(s) list');
      const entry = store.add(menu, {
        list: fields.list,
        address: fields.address,
        ...(fields.comment === undefined ? {} : { comment: fields.comment }),
        ...(fields.timeout === undefined ? {} : { timeout: fields.timeout }),
        ...(fields.disabled === undefined ? {} : { disabled: fields.disabled === 'true' || fields.disabled === 'yes' }),
      });
      return { status: 201, body: store.print(entry) };
    }
    const entry = store.get(menu, id);
    if (!entry) return failure(404, 'Not Found', 'no such item');
    if (method === 'GET') return { status: 200, body: store.print(entry) };
    if (method === 'DELETE') {
      store.remove(menu, id);
      return { status: 204 };
    }
    if (method === 'PATCH') {
      const fields = writableFields(body);
      if (fields.address !== undefined || fields.list !== undefined) throw new RouterFailure('the simulator does not change address or list of an entry');
      const updated = store.update(menu, id, {
        ...(fields.comment === undefined ? {} : { comment: fields.comment }),
        ...(fields.timeout === undefined ? {} : { timeout: fields.timeout }),
        ...(fields.disabled === undefined ? {} : { disabled: fields.disabled === 'true' || fields.disabled === 'yes' }),
      });
      return updated ? { status: 200, body: store.print(updated) } : failure(404, 'Not Found', 'no such item');
    }
    return failure(400, 'Bad Request', 'no such command');
  }

  /** The router fills the table; a client prints and removes (`remove` is DELETE `/*ID`). */
  private connection(menu: Menu, id: string | undefined, query: URLSearchParams, method: string): Reply {
    const table = this.connections;
    if (id === undefined) {
      if (method === 'GET')
        return {
          status: 200,
          body: filterRows(
            table.all(menu).map((row) => table.print(menu, row)),
            query,
          ),
        };
      return failure(400, 'Bad Request', 'no such command');
    }
    const row = table.all(menu).find((r) => r.id === id);
    if (!row) return failure(404, 'Not Found', 'no such item');
    if (method === 'GET') return { status: 200, body: table.print(menu, row) };
    if (method === 'DELETE') {
      table.remove(menu, id);
      return { status: 204 };
    }
    return failure(400, 'Bad Request', 'no such command');
  }

  /** Basic auth; a user without the rest-api policy cannot log in at all (HTTP 401, as a wrong password). */
  private authenticate(header: string | undefined): RouterUser | null {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
    if (!match) return null;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const name = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const user = this.users.find((u) => u.name === name && u.password === password);
    return user?.policies.includes('rest-api') ? user : null;
  }

  private async handleAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    const raw = await readBody(req, MAX_BODY);
    let body: unknown = {};
    try {
      body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
    } catch {
      send(res, { status: 400, body: { error: 'body is not valid JSON' } });
      return;
    }
    const route = `${req.method ?? 'GET'} ${path}`;
    try {
      send(res, this.admin(route, body, res));
    } catch (error) {
      send(res, { status: 400, body: { error: (error as Error).message } });
    }
  }

  /**
   * Unauthenticated control interface under /__simulator/ for tests that run `edgeban simulate
   * --kind mikrotik` as a process: state, faults, clock, reboot, seeded entries, tracked connections, rules, users.
   */
  private admin(route: string, body: unknown, res: http.ServerResponse): Reply {
    switch (route) {
      case 'GET /__simulator/state':
        return {
          status: 200,
          body: {
            ip: this.store.all('ip').map((e) => this.store.print(e)),
            ipv6: this.store.all('ipv6').map((e) => this.store.print(e)),
            connections: {
              ip: this.connections.all('ip').map((r) => this.connections.print('ip', r)),
              ipv6: this.connections.all('ipv6').map((r) => this.connections.print('ipv6', r)),
            },
            faults: this.faultPlan.settings(),
            now: this.now(),
            calls: this.callLog,
          },
        };
      case 'POST /__simulator/faults': {
        const parsed = mikrotikFaultsSchema.safeParse(body);
        if (!parsed.success) throw new Error(describeZodError(parsed.error));
        const { refuseForMs, ...faults } = parsed.data;
        this.setFaults(faults);
        if (refuseForMs !== undefined) {
          res.once('finish', () => {
            this.setFaults({ refuse: true });
            this.timers.after(refuseForMs, () => this.setFaults({ refuse: false }));
          });
        }
        return { status: 200, body: this.faultPlan.settings() };
      }
      case 'POST /__simulator/clock': {
        const { advanceMs } = z
          .strictObject({
            advanceMs: z
              .number()
              .int()
              .min(0)
              .max(10 * 365 * 86_400_000),
          })
          .parse(body);
        this.advanceClock(advanceMs);
        return { status: 200, body: { now: this.now() } };
      }
      case 'POST /__simulator/reboot':
        this.reboot();
        return { status: 200, body: { rebooted: true } };
      case 'POST /__simulator/entries': {
        const entry = z
          .strictObject({
            menu: z.enum(['ip', 'ipv6']),
            list: z.string(),
            address: z.string(),
            comment: z.string().optional(),
            timeout: z.string().optional(),
            disabled: z.boolean().optional(),
            restored: z.boolean().optional(),
          })
          .parse(body);
        const { menu, ...input } = entry;
        return { status: 200, body: this.store.print(this.store.add(menu, input)) };
      }
      case 'POST /__simulator/connections': {
        const port = z.number().int().min(0).max(65_535).optional();
        const { menu, ...input } = z
          .strictObject({
            menu: z.enum(['ip', 'ipv6']),
            protocol: z.string().min(1),
            srcAddress: z.string(),
            srcPort: port,
            dstAddress: z.string(),
            dstPort: port,
          })
          .parse(body);
        const row = this.connections.add(menu, {
          protocol: input.protocol,
          srcAddress: input.srcAddress,
          dstAddress: input.dstAddress,
          ...(input.srcPort === undefined ? {} : { srcPort: input.srcPort }),
          ...(input.dstPort === undefined ? {} : { dstPort: input.dstPort }),
        });
        return { status: 200, body: this.connections.print(menu, row) };
      }
      case 'POST /__simulator/rules': {
        const { path, rules } = z
          .strictObject({
            path: z.enum(RULE_PATHS),
            rules: z.array(
              z.strictObject({ chain: z.string(), action: z.string(), 'src-address-list': z.string().optional(), disabled: z.string().optional() }),
            ),
          })
          .parse(body);
        this.setRules(path, rules);
        return { status: 200, body: { ok: true } };
      }
      case 'POST /__simulator/users': {
        const user = z.strictObject({ name: z.string().min(1), password: z.string(), policies: z.array(z.string()) }).parse(body);
        const index = this.users.findIndex((u) => u.name === user.name);
        if (index === -1) this.users.push(user);
        else this.users[index] = user;
        return { status: 200, body: { ok: true } };
      }
      default:
        return { status: 404, body: { error: `no admin route ${route}` } };
    }
  }
}

function ruleRow(rule: RouterRule, index: number): Record<string, string> {
  return { '.id': `*${(index + 1).toString(16).toUpperCase()}`, disabled: 'false', ...rule };
}

function writableFields(body: Record<string, unknown>, writable: ReadonlySet<string> = WRITABLE): Partial<Record<string, string>> {
  const fields: Partial<Record<string, string>> = {};
  for (const [key, value] of Object.entries(body)) {
    if (!writable.has(key)) throw new RouterFailure(`unknown parameter ${key}`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new RouterFailure(`invalid value for argument ${key}`);
    fields[key] = String(value);
  }
  return fields;
}

/** `?prop=value` keeps rows whose printed property equals the value; `.proplist=a,b` keeps those properties. */
function filterRows(rows: Array<Record<string, string>>, query: URLSearchParams): Array<Record<string, string>> {
  const proplist = query.get('.proplist');
  const filters = [...query.entries()].filter(([key]) => !key.startsWith('.'));
  const kept = rows.filter((row) => filters.every(([key, value]) => row[key] === value));
  if (proplist === null) return kept;
  const props = proplist.split(',');
  return kept.map((row) => Object.fromEntries(Object.entries(row).filter(([key]) => props.includes(key))));
}

function send(res: http.ServerResponse, reply: Reply): void {
  if (reply.status === 204 || reply.body === undefined) {
    res.writeHead(reply.status);
    res.end();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (reply.status === 401) headers['www-authenticate'] = 'Basic realm="MikroTik"';
  res.writeHead(reply.status, headers);
  res.end(JSON.stringify(reply.body));
}
