import { request } from 'undici';
import { LEAST_PRIVILEGES, OpnsenseSimulator, type SimulatorKey, type SimulatorOptions } from '../../src/simulator/opnsense-simulator.ts';

/** Keys every test simulator knows: the daemon's least-privilege key, an admin, a read-only key, an alias editor. */
export const DAEMON: SimulatorKey = { key: 'daemon-key', secret: 'daemon-secret', privileges: LEAST_PRIVILEGES, user: 'edgeban' };
export const ADMIN: SimulatorKey = { key: 'admin-key', secret: 'admin-secret', privileges: ['page-all'], user: 'root' };
export const READ_ONLY: SimulatorKey = { key: 'ro-key', secret: 'ro-secret', privileges: ['page-all'], readOnly: true, user: 'auditor' };
export const EDITOR: SimulatorKey = {
  key: 'editor-key',
  secret: 'editor-secret',
  user: 'editor',
  privileges: [...LEAST_PRIVILEGES, 'page-firewall-alias-edit', 'page-filter-api'],
};

export function basic(key: { key: string; secret: string }): string {
  return `Basic ${Buffer.from(`${key.key}:${key.secret}`).toString('base64')}`;
}

export async function startSim(options: SimulatorOptions = {}): Promise<OpnsenseSimulator> {
  return OpnsenseSimulator.start({ keys: [DAEMON, ADMIN, READ_ONLY, EDITOR], authFailDelayMs: 0, ...options });
}

export interface CallOptions {
  /** A JSON-able value (sent as application/json) or a string sent as is. */
  body?: unknown;
  contentType?: string | null;
  /** Key to authenticate with; null = no Authorization header; a string = the raw header. */
  auth?: { key: string; secret: string } | string | null;
}

export interface CallResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** One API call through undici (which, unlike fetch, can send a body with GET). */
export async function call(sim: OpnsenseSimulator, method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = {};
  const auth = options.auth === undefined ? DAEMON : options.auth;
  if (typeof auth === 'string') headers.authorization = auth;
  else if (auth !== null) headers.authorization = basic(auth);
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    if (options.contentType === undefined) headers['content-type'] = 'application/json';
  }
  if (options.contentType) headers['content-type'] = options.contentType;
  const res = await request(`${sim.url}${path}`, { method: method as 'GET', headers, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export function post(sim: OpnsenseSimulator, path: string, body: unknown = {}, auth?: CallOptions['auth']): Promise<CallResult> {
  return call(sim, 'POST', path, auth === undefined ? { body } : { body, auth });
}

export const ALIAS = 'fail2ban_blocklist';
export const ADD = `/api/firewall/alias_util/add/${ALIAS}`;
export const DELETE = `/api/firewall/alias_util/delete/${ALIAS}`;
export const LIST = `/api/firewall/alias_util/list/${ALIAS}`;

/** A sleep the test controls: waits until released, and records what was asked for. */
export class SleepGate {
  readonly requested: number[] = [];
  private waiters: (() => void)[] = [];

  readonly sleep = (ms: number): Promise<void> => {
    this.requested.push(ms);
    return new Promise((resolve) => this.waiters.push(resolve));
  };

  get waiting(): number {
    return this.waiters.length;
  }

  releaseOne(): void {
    this.waiters.shift()?.();
  }

  releaseAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Polls `condition` (bounded: at most `tries` × 5 ms) and fails with `what` if it never holds. */
export async function until(condition: () => boolean, what: string, tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}
