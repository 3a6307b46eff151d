import type http from 'node:http';
import type { Socket } from 'node:net';
import { isAllowed, LEAST_PRIVILEGES } from './acl.ts';
import { aliasNameProblem } from './alias-config.ts';
import { handleAdmin, type AdminTarget } from './admin-api.ts';
import { ApiException, type ActionContext, type ApiReply } from './api-types.ts';
import { authenticate, knownKeyId, type SimulatorKey } from './auth.ts';
import { CallLog, type SimulatorCall } from './call-log.ts';
import { FaultPlan, type SimulatorFaults } from './faults.ts';
import { DEFAULT_FIRMWARE_VERSION, parseFirmwareVersion } from './firmware.ts';
import { BodyTooLargeError, isLoopbackHost, readBody, TimerSet } from './http-util.ts';
import { phpJsonEncode } from './php-json.ts';
import { parseBody, parseUrlEncoded } from './request-params.ts';
import { createRng } from './rng.ts';
import { resolveRoute } from './routing.ts';
import { SimulatorListener } from './simulator-listener.ts';
import { SimulatorState } from './simulator-state.ts';
import { NftEdge, type NftEdgeOptions } from './nft-table-store.ts';

export { LEAST_PRIVILEGES };
export type { SimulatorKey, SimulatorCall, SimulatorFaults };

export interface SimulatorAlias {
  name: string;
  type: 'external' | 'host' | 'network';
}

export interface SimulatorOptions {
  /** Default 127.0.0.1; anything but loopback is refused. */
  host?: string;
  /** Default 0 = ephemeral. */
  port?: number;
  keys?: SimulatorKey[];
  /** Default [{name:'fail2ban_blocklist', type:'external'}]; [] for a firewall without any. */
  aliases?: SimulatorAlias[];
  /** The OPNsense release played (features and replies follow it); default 26.7.2. */
  firmwareVersion?: string;
  /** Global pf table-entries limit shared by all tables, built-ins included. Default 1_000_000. */
  tableEntriesLimit?: number;
  /** Padding of a failed password check; default 2000 like OPNsense. */
  authFailDelayMs?: number;
  faults?: Partial<SimulatorFaults>;
  seed?: number;
  /** PEM; serve https instead of http. */
  tls?: { cert: string; key: string };
  /** Clock for call timestamps and flap periods; default Date.now. */
  now?: () => number;
  /** Every simulated wait (latency, lock hold, auth padding) goes through this; default real timers. */
  sleep?: (ms: number) => Promise<void>;
  /** Call log entries kept (oldest dropped); default 200_000. */
  callLogLimit?: number;
  /** Makes the pf tables real: an nftables set per alias (and family) in this namespace's table; kill_states deletes its conntrack flows. Needs root. */
  nft?: NftEdgeOptions;
}

const JSON_TYPE = 'application/json; charset=UTF-8';
const MAX_BODY = 16 * 1024 * 1024;
const UNAVAILABLE_HTML =
  '<?xml version="1.0" encoding="iso-8859-1"?>\n<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>\n';

/**
 * An OPNsense API on loopback that behaves like the real one (routing, auth, ACL, body parsing,
 * alias_util/pfctl semantics and their traps) with injectable faults. See
 * docs/opnsense-api.md for the behaviour reproduced.
 */
export class OpnsenseSimulator {
  private readonly listener: SimulatorListener;
  private readonly keys: SimulatorKey[];
  private readonly authFailDelayMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly timers = new TimerSet();
  private readonly state: SimulatorState;
  private readonly faultPlan: FaultPlan;
  private readonly callLog: CallLog;
  private inFlightCount = 0;
  private maxInFlightCount = 0;
  private stopped = false;

  private constructor(options: SimulatorOptions) {
    const host = options.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new RangeError(`the simulator only listens on loopback, not ${JSON.stringify(host)}`);
    this.listener = new SimulatorListener({
      name: 'OPNsense simulator',
      host,
      tls: options.tls,
      handler: (req, res) => {
        if ((req.url ?? '').startsWith('/__simulator/')) void handleAdmin(this.adminTarget(), req, res).catch(() => res.destroy());
        else void this.handleApi(req, res).catch(() => res.destroy());
      },
      tune: (server) => {
        server.headersTimeout = 35_000;
        server.requestTimeout = 120_000;
        server.maxRequestsPerSocket = 0;
        server.on('connection', (socket: Socket) => socket.setNoDelay(true));
      },
    });
    this.keys = (options.keys ?? []).map((k) => ({ ...k, privileges: [...k.privileges] }));
    this.authFailDelayMs = options.authFailDelayMs ?? 2000;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => this.timers.sleep(ms));
    const rng = createRng(options.seed ?? 1);
    this.faultPlan = new FaultPlan(rng, this.now);
    this.callLog = new CallLog(options.callLogLimit ?? 200_000);
    this.state = new SimulatorState({
      tableEntriesLimit: options.tableEntriesLimit ?? 1_000_000,
      rng: createRng((options.seed ?? 1) ^ 0x5eed),
      now: this.now,
      sleep: this.sleep,
      faults: () => this.faultPlan.settings(),
      firmware: parseFirmwareVersion(options.firmwareVersion ?? DEFAULT_FIRMWARE_VERSION),
      ...(options.nft ? { edge: new NftEdge(options.nft) } : {}),
    });
    for (const alias of options.aliases ?? [{ name: 'fail2ban_blocklist', type: 'external' }]) this.createAlias(alias);
    const { refuse, ...otherFaults } = options.faults ?? {};
    this.faultPlan.update(otherFaults);
    if (refuse) this.faultPlan.update({ refuse });
  }

  static async start(options: SimulatorOptions = {}): Promise<OpnsenseSimulator> {
    const simulator = new OpnsenseSimulator(options);
    await simulator.listener.start(options.port ?? 0);
    if (simulator.faultPlan.settings().refuse) simulator.listener.refuse();
    return simulator;
  }

  get port(): number {
    return this.listener.port;
  }

  get url(): string {
    return this.listener.url;
  }

  setFaults(faults: Partial<SimulatorFaults>): void {
    const previous = this.faultPlan.update(faults);
    const refuse = this.faultPlan.settings().refuse;
    if (refuse !== previous.refuse && !this.stopped) {
      if (refuse) this.listener.refuse();
      else this.listener.reopen();
    }
  }

  faults(): SimulatorFaults {
    return this.faultPlan.settings();
  }

  reboot(): void {
    this.state.reboot();
  }

  /**
   * An alias made in the GUI (no config revision counted, declared in pf at once). RangeError for
   * a name OPNsense would refuse or that exists.
   */
  createAlias(alias: SimulatorAlias): void {
    const problem = aliasNameProblem(alias.name, (n) => this.state.aliases.byName(n) !== undefined);
    if (problem) throw new RangeError(`alias ${JSON.stringify(alias.name)}: ${problem}`);
    this.state.aliases.create({ name: alias.name, type: alias.type, enabled: true, content: [], description: '', counters: false });
    this.state.pf.declare(alias.name);
  }

  /** Deletes a user alias and its pf table, as the GUI does; false when there is none by that name. */
  deleteAlias(name: string): boolean {
    const removed = this.state.aliases.remove(name);
    if (removed) this.state.pf.destroy(name);
    return removed;
  }

  /** Adds a key, or replaces the one with the same key id (new privileges, read-only flag). */
  setKey(key: SimulatorKey): void {
    const copy = { ...key, privileges: [...key.privileges] };
    const index = this.keys.findIndex((k) => k.key === key.key);
    if (index === -1) this.keys.push(copy);
    else this.keys[index] = copy;
  }

  /** Plays another release from now on (RangeError for a malformed version). */
  setFirmwareVersion(version: string): void {
    this.state.firmware = parseFirmwareVersion(version);
  }

  firmwareVersion(): string {
    return this.state.firmware.text;
  }

  /** Changes the global table-entries limit (Firewall ▸ Settings ▸ Advanced), as on a filter reload. */
  setTableEntriesLimit(limit: number): void {
    this.state.pf.limit = limit;
  }

  /** Configured user aliases (built-ins left out). */
  aliases(): Array<{ name: string; type: string; uuid: string; enabled: boolean }> {
    return this.state.aliases
      .all()
      .filter((a) => !a.builtin)
      .map((a) => ({ name: a.name, type: a.type, uuid: a.uuid, enabled: a.enabled }));
  }

  /** Filter rules as saved, and whether they are applied (live in pf). */
  filterRules(): { rules: Array<Record<string, string>>; applied: boolean; rollbacks: number; rollbackPending: boolean } {
    this.state.runTimers();
    return {
      rules: this.state.rules.all().map((r) => ({ ...r })),
      applied: this.state.rules.inSync(),
      rollbacks: this.state.rules.rollbackCount(),
      rollbackPending: this.state.rules.rollbackPending(),
    };
  }

  tableEntries(table: string): string[] {
    this.state.runTimers();
    return [...(this.state.pf.get(table)?.inPfOrder() ?? [])];
  }

  /**
   * Like an admin running `pfctl -t table -T add …`: pf spelling, creates the table, no API, no
   * call log. The batch is atomic and, unlike through the API, failures are reported: a RangeError
   * for an unparseable entry or when the global table-entries limit would be exceeded.
   */
  seedTableEntries(table: string, entries: string[]): void {
    this.state.pf.addBatch(table, entries);
  }

  calls(): readonly SimulatorCall[] {
    return this.callLog.list();
  }

  clearCalls(): void {
    this.callLog.clear();
  }

  configRevisions(): number {
    return this.state.aliases.revisionCount();
  }

  inFlight(): number {
    return this.inFlightCount;
  }

  maxInFlight(): number {
    return this.maxInFlightCount;
  }

  resetMaxInFlight(): void {
    this.maxInFlightCount = this.inFlightCount;
  }

  seedStates(address: string, count: number): void {
    this.state.states.seed(address, count);
  }

  stateCount(address: string): number {
    return this.state.states.countFrom(address);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.cancelAll();
    await this.listener.stop();
  }

  private adminTarget(): AdminTarget {
    return {
      setFaults: (f) => this.setFaults(f),
      faults: () => this.faults(),
      reboot: () => this.reboot(),
      refreshAliases: (options) => this.state.refreshAliases(options),
      tableSnapshot: () => {
        const out: Record<string, string[]> = {};
        for (const name of this.state.pf.names()) out[name] = this.tableEntries(name);
        return out;
      },
      seedTableEntries: (t, e) => this.seedTableEntries(t, e),
      seedStates: (a, c) => this.seedStates(a, c),
      calls: () => this.calls(),
      clearCalls: () => this.clearCalls(),
      configRevisions: () => this.configRevisions(),
      maxInFlight: () => this.maxInFlight(),
      resetMaxInFlight: () => this.resetMaxInFlight(),
      createAlias: (a) => this.createAlias(a),
      deleteAlias: (n) => this.deleteAlias(n),
      aliases: () => this.aliases(),
      setKey: (k) => this.setKey(k),
      setFirmwareVersion: (v) => this.setFirmwareVersion(v),
      firmwareVersion: () => this.firmwareVersion(),
      setTableEntriesLimit: (l) => this.setTableEntriesLimit(l),
      tableEntriesLimit: () => this.state.pf.limit,
      filterRules: () => this.filterRules(),
      refuseFor: (ms) => {
        this.setFaults({ refuse: true });
        this.timers.after(ms, () => this.setFaults({ refuse: false }));
      },
    };
  }

  private async handleApi(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const at = this.now();
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    this.inFlightCount++;
    if (this.inFlightCount > this.maxInFlightCount) this.maxInFlightCount = this.inFlightCount;
    let counted = true;
    res.on('close', () => {
      if (counted) {
        counted = false;
        this.inFlightCount--;
      }
    });
    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY);
    } catch (error) {
      if (error instanceof BodyTooLargeError && !res.headersSent) {
        res.writeHead(413, { connection: 'close' });
        res.end();
      }
      return;
    }
    const keyId = knownKeyId(req.headers.authorization, this.keys);
    const record = (status: number, replyBody: string): void => {
      this.callLog.record({ at, method, path: url, status, key: keyId, requestBody: body.toString('utf8'), replyBody });
    };
    const latency = this.faultPlan.settings().latencyMs;
    if (latency > 0) await this.sleep(latency);
    if (this.stopped) return;
    const verdict = this.faultPlan.verdict();
    if (verdict === 'hang') {
      // Never answered: the socket stays open until the client gives up, refuse, or stop().
      record(0, '');
      return;
    }
    let reply: ApiReply;
    if (verdict === 'unavailable') {
      reply = { status: 503, raw: UNAVAILABLE_HTML, headers: { 'content-type': 'text/html' } };
    } else if (verdict === 'error') {
      reply = { status: 500, body: { errorMessage: 'Unexpected error, check log for details' } };
    } else {
      reply = await this.dispatch(req, url, method, body);
    }
    if (this.stopped) return;
    const text = reply.raw ?? phpJsonEncode(reply.body);
    const headers: Record<string, string> = reply.raw === undefined ? { 'content-type': JSON_TYPE } : {};
    Object.assign(headers, reply.headers);
    record(reply.status, text);
    if (res.destroyed) return;
    res.writeHead(reply.status, headers);
    res.end(text);
  }

  /** Route → authenticate → ACL → body → action, in the order OPNsense does them. */
  private async dispatch(req: http.IncomingMessage, url: string, method: string, body: Buffer): Promise<ApiReply> {
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    this.state.runTimers();
    const route = resolveRoute(pathname);
    // A route of another release (the filter API before 24.1, savepoints from 26.7) is unknown here.
    if (!route || (route.endpoint.availableIn && !route.endpoint.availableIn(this.state.features()))) {
      return { status: 404, body: { errorMessage: 'Endpoint not found' } };
    }
    const auth = authenticate(req.headers.authorization, this.keys);
    if (auth.kind === 'missing') {
      // Session mode: redirect to the login page, empty body.
      return { status: 401, raw: '', headers: { location: `/?url=${/^[\x21-\x7e]*$/.test(url) ? url : encodeURI(url)}` } };
    }
    if (auth.kind !== 'ok') {
      if (auth.kind === 'failed' && this.authFailDelayMs > 0) await this.sleep(this.authFailDelayMs);
      return { status: 401, body: { status: 401, message: 'Authentication Failed' } };
    }
    if (!isAllowed(url, auth.key.privileges)) return { status: 403, body: { status: 403, message: 'Forbidden' } };
    const parsed = parseBody(method, req.headers['content-type'], body);
    if (parsed.kind === 'invalid-json') return { status: 400, body: { status: 400, message: 'Invalid JSON syntax' } };
    const ctx: ActionContext = {
      method,
      isPost: method === 'POST',
      args: route.args,
      post: parsed.params,
      query: parseUrlEncoded(q === -1 ? '' : url.slice(q + 1)),
      user: auth.user,
      readOnly: auth.key.readOnly === true,
      state: this.state,
    };
    try {
      return await route.endpoint.handler(ctx);
    } catch (error) {
      if (error instanceof ApiException) return error.reply;
      return { status: 500, body: { errorMessage: 'Unexpected error, check log for details' } };
    }
  }
}
