import { randomBytes } from 'node:crypto';
import { parsePfEntry, type PfAddress } from '../../net/address.ts';
import type { Clock } from '../../util/clock.ts';

/*
 * Cloudflare account state as the Lists API documents it (developers.cloudflare.com, read
 * 2026-12-07): lists of kind ip with name ^[a-z0-9_]+$ (≤ 50), items with 32-hex ids and a comment
 * of ≤ 500 characters; writes (POST/PUT/DELETE items) answer an operation_id at once and are
 * applied later; one pending bulk operation per account; a limit on items per account.
 */

export interface SimItem {
  id: string;
  ip: string;
  comment: string;
  created_on: string;
  modified_on: string;
  /** Insertion order, for cursors. */
  seq: number;
}

export interface SimList {
  id: string;
  name: string;
  kind: string;
  description: string;
  items: Map<string, SimItem>;
  created_on: string;
  modified_on: string;
}

export type OperationStatus = 'pending' | 'running' | 'completed' | 'failed';

export interface SimOperation {
  id: string;
  status: OperationStatus;
  error?: string;
  completed?: string;
}

export interface ListsStateOptions {
  clock: Pick<Clock, 'now' | 'setTimer'>;
  /** Time from submit to applied; the status is `running` in the second half. */
  operationDelayMs: number;
  /** Items across all lists of an account (docs: 10,000 on most plans). */
  maxItems: number;
  /** 128: today's rule (individual IPv6 addresses, /12–/128); 64: the rule before July 2025 (/12–/64 only). */
  ipv6FinestPrefix: number;
}

/**
 * Error codes: 10000 (Authentication error) and 971 (throttled) are Cloudflare's as seen in the
 * wild; the codes of the other refusals are not documented, so the simulator answers them with
 * this one and clients must go by the HTTP status.
 */
export const UNDOCUMENTED = 1000;

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: number;
  readonly headers: Record<string, string>;
  constructor(status: number, code: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function hexId(): string {
  return randomBytes(16).toString('hex');
}

interface Account {
  lists: Map<string, SimList>;
  operations: Map<string, SimOperation>;
  pending: SimOperation | null;
  seq: number;
}

export class ListsState {
  private readonly accounts = new Map<string, Account>();
  readonly options: ListsStateOptions;
  /** Writes refused because another operation was pending (429). */
  conflicts = 0;
  /** Bulk operations submitted. */
  submitted = 0;

  constructor(options: ListsStateOptions) {
    this.options = options;
  }

  addAccount(id: string): void {
    if (!this.accounts.has(id)) this.accounts.set(id, { lists: new Map(), operations: new Map(), pending: null, seq: 0 });
  }

  accountIds(): string[] {
    return [...this.accounts.keys()];
  }

  /** The account's next item sequence number (insertion order, for cursors). */
  nextSeq(accountId: string): number {
    return ++this.account(accountId).seq;
  }

  private account(id: string): Account {
    const account = this.accounts.get(id);
    if (account === undefined) throw new ApiFailure(403, 10000, 'Authentication error');
    return account;
  }

  lists(accountId: string): SimList[] {
    return [...this.account(accountId).lists.values()];
  }

  list(accountId: string, listId: string): SimList {
    const list = this.account(accountId).lists.get(listId);
    if (list === undefined) throw new ApiFailure(404, UNDOCUMENTED, 'list not found');
    return list;
  }

  listByName(accountId: string, name: string): SimList | undefined {
    return this.lists(accountId).find((list) => list.name === name);
  }

  createList(accountId: string, name: string, kind: string, description: string, id = hexId()): SimList {
    const account = this.account(accountId);
    if (!/^[a-z0-9_]{1,50}$/.test(name)) throw new ApiFailure(400, UNDOCUMENTED, 'list name must match ^[a-z0-9_]+$ and be at most 50 characters');
    if (!['ip', 'hostname', 'asn', 'redirect'].includes(kind)) throw new ApiFailure(400, UNDOCUMENTED, `invalid list kind ${kind}`);
    if (this.listByName(accountId, name) !== undefined) throw new ApiFailure(400, UNDOCUMENTED, 'a list with that name already exists');
    const now = new Date(this.options.clock.now()).toISOString();
    const list: SimList = { id, name, kind, description, items: new Map(), created_on: now, modified_on: now };
    account.lists.set(id, list);
    return list;
  }

  /** The stored spelling of an item ip, or a 400 naming it. */
  validateIp(ip: unknown, index: number): string {
    const bad = () =>
      new ApiFailure(
        400,
        UNDOCUMENTED,
        `item ${index}: ${JSON.stringify(ip)} is not a valid IPv4 address, IPv4 CIDR /8–/32, ${this.options.ipv6FinestPrefix === 128 ? 'IPv6 address or IPv6 CIDR /12–/128' : 'or IPv6 CIDR /12–/64'}`,
      );
    if (typeof ip !== 'string') throw bad();
    let parsed: PfAddress;
    try {
      parsed = parsePfEntry(ip);
    } catch {
      throw bad();
    }
    const hasPrefix = ip.includes('/');
    if (parsed.family === 4 && parsed.prefix < 8) throw bad();
    if (parsed.family === 6 && (parsed.prefix < 12 || parsed.prefix > this.options.ipv6FinestPrefix)) throw bad();
    if (parsed.family === 6 && !hasPrefix && this.options.ipv6FinestPrefix < 128) throw bad();
    return ip.trim().toLowerCase();
  }

  /**
   * Submits a write, applied after operationDelayMs; refused with 429 while another operation of
   * the account is pending. `added` (evaluated when applied) counts the items it would create: over
   * the account's limit the operation fails and changes nothing.
   */
  submit(accountId: string, added: () => number, apply: () => void): SimOperation {
    const account = this.account(accountId);
    if (account.pending !== null) {
      this.conflicts++;
      throw new ApiFailure(429, 971, 'a bulk operation is already pending for this account; retry once it has completed', { 'retry-after': '1' });
    }
    this.submitted++;
    const operation: SimOperation = { id: hexId(), status: 'pending' };
    account.operations.set(operation.id, operation);
    account.pending = operation;
    const delay = this.options.operationDelayMs;
    this.options.clock.setTimer(delay / 2, () => {
      if (operation.status === 'pending') operation.status = 'running';
    });
    this.options.clock.setTimer(delay, () => {
      const total = [...account.lists.values()].reduce((sum, list) => sum + list.items.size, 0);
      const more = added();
      if (more > 0 && total + more > this.options.maxItems) {
        operation.status = 'failed';
        operation.error = `the account would hold ${total + more} list items, over its limit of ${this.options.maxItems}`;
      } else {
        apply();
        operation.status = 'completed';
      }
      operation.completed = new Date(this.options.clock.now()).toISOString();
      account.pending = null;
    });
    return operation;
  }

  /** A foreign writer's operation (another tool on the account) that stays pending for `ms`. */
  hold(accountId: string, ms: number): SimOperation {
    const account = this.account(accountId);
    const operation: SimOperation = { id: hexId(), status: 'pending' };
    account.operations.set(operation.id, operation);
    account.pending = operation;
    this.options.clock.setTimer(ms, () => {
      operation.status = 'completed';
      operation.completed = new Date(this.options.clock.now()).toISOString();
      if (account.pending === operation) account.pending = null;
    });
    return operation;
  }

  operation(accountId: string, operationId: string): SimOperation {
    const operation = this.account(accountId).operations.get(operationId);
    if (operation === undefined) throw new ApiFailure(404, UNDOCUMENTED, 'operation not found');
    return operation;
  }

  /** How many of `ips` the list does not hold yet. */
  newCount(list: SimList, ips: string[]): number {
    const held = new Set([...list.items.values()].map((item) => keyOf(item.ip)));
    return new Set(ips.map(keyOf).filter((key) => !held.has(key))).size;
  }

  /** Adds (or merges: the same ip updates the item's comment) at once, as an applied operation does. */
  upsert(accountId: string, list: SimList, items: Array<{ ip: string; comment: string }>): void {
    const now = new Date(this.options.clock.now()).toISOString();
    const byKey = new Map([...list.items.values()].map((item) => [keyOf(item.ip), item]));
    for (const { ip, comment } of items) {
      const existing = byKey.get(keyOf(ip));
      if (existing !== undefined) {
        existing.comment = comment;
        existing.modified_on = now;
        continue;
      }
      const item: SimItem = { id: hexId(), ip, comment, created_on: now, modified_on: now, seq: this.nextSeq(accountId) };
      list.items.set(item.id, item);
      byKey.set(keyOf(ip), item);
    }
    list.modified_on = now;
  }

  /** Items after `cursor` (an opaque token naming the last seq returned), `perPage` of them. */
  page(list: SimList, perPage: number, cursor: string | null): { items: SimItem[]; after: string | null } {
    let afterSeq = 0;
    if (cursor !== null) {
      const decoded = /^s(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (decoded === null) throw new ApiFailure(400, UNDOCUMENTED, 'invalid cursor');
      afterSeq = Number(decoded[1]);
    }
    const sorted = [...list.items.values()].filter((item) => item.seq > afterSeq).sort((a, b) => a.seq - b.seq);
    const items = sorted.slice(0, perPage);
    const last = items.at(-1);
    const after = sorted.length > perPage && last !== undefined ? Buffer.from(`s${last.seq}`).toString('base64url') : null;
    return { items, after };
  }

  itemCount(accountId: string): number {
    return this.lists(accountId).reduce((sum, list) => sum + list.items.size, 0);
  }
}

/** Cloudflare merges items by their address; the simulator compares them in pf spelling. */
function keyOf(ip: string): string {
  try {
    return parsePfEntry(ip).text;
  } catch {
    return ip;
  }
}
