import { z } from 'zod';
import {
  TargetError,
  type DesiredEntry,
  type EdgeTarget,
  type ListedEntry,
  type TargetCapabilities,
  type TargetCheckResult,
  type TargetDeps,
} from '../edge-target.ts';
import { CloudflareApi, LISTS_PERMISSION, type CloudflareReply } from './cloudflare-api.ts';
import { cloudflareCanonical, listedSpelling } from './cloudflare-address.ts';
import { Coalescer } from './coalescer.ts';

/*
 * Lists API (verified 2026-12-07, developers.cloudflare.com/api/resources/rules/subresources/lists/
 * and waf/tools/lists/lists-api/endpoints/):
 * - GET    /accounts/{account}/rules/lists                      every list (id, name, kind, num_items)
 * - GET    /accounts/{account}/rules/lists/{list}               one list
 * - GET    /accounts/{account}/rules/lists/{list}/items         items `{ id, ip, comment, … }`, cursor
 *          paged: `?per_page=&cursor=`, next cursor in `result_info.cursors.after`, absent at the end
 * - POST   /accounts/{account}/rules/lists/{list}/items         body `[{ ip, comment }]` → `{ operation_id }`
 *          (an ip already listed is merged into its item, not duplicated)
 * - DELETE /accounts/{account}/rules/lists/{list}/items         body `{ items: [{ id }] }` → `{ operation_id }`
 * - GET    /accounts/{account}/rules/lists/bulk_operations/{operation_id}
 *          `{ id, status: pending|running|completed|failed, error?, completed? }`
 * Writes are asynchronous, and "there is a limit of 1 pending bulk operation per account. If an
 * outstanding bulk operation is in progress, the request will be rejected" (with 429: lists-api/
 * "Rate limiting"). So every write here runs under one lock per account and is polled to its end
 * before the next is sent; a 429 from another writer on the account is waited out (Retry-After).
 * Item comments: at most 500 characters (lists-api/json-object). Limits on modifications: 1,000,000
 * items and 30,000 write requests per 12 h, hence batches.
 */

/** Marks an item as edgeban's: its comment starts with this word. */
export const OWNER_TAG = 'edgeban';
const MAX_COMMENT = 500;
const MAX_LIST_PAGES = 10_000;

export interface CloudflareOptions {
  account: string;
  /** A list id (32 hex digits) or a list name. */
  list: string;
  token: string;
  /** API base URL, `https://api.cloudflare.com/client/v4` unless testing. */
  api: string;
}

/** Serializes list writes per Cloudflare account: one pending bulk operation per account. */
export class AccountLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(account: string, job: () => Promise<T>): Promise<T> {
    const before = this.tails.get(account) ?? Promise.resolve();
    const result = before.then(job, job);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(account, tail);
    void tail.then(() => {
      if (this.tails.get(account) === tail) this.tails.delete(account);
    });
    return result;
  }
}

export interface CloudflareTuning {
  /** Items per bulk operation. */
  batchSize: number;
  /** Items per listing page (`per_page`). */
  pageSize: number;
  /** First wait before polling an operation; grows ×1.5 up to 2 s. */
  pollIntervalMs: number;
  /** How long an operation may stay pending before the write is reported as `retry`. */
  operationTimeoutMs: number;
  timeoutMs: number;
  rateLimitRetries: number;
  maxRetryAfterMs: number;
  sleep: (ms: number) => Promise<void>;
}

export const DEFAULT_TUNING: CloudflareTuning = {
  batchSize: 1000,
  pageSize: 500,
  pollIntervalMs: 250,
  operationTimeoutMs: 120_000,
  timeoutMs: 30_000,
  rateLimitRetries: 5,
  maxRetryAfterMs: 30_000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const ListSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.string(),
    num_items: z.number().optional(),
    num_referencing_filters: z.number().optional(),
  })
  .loose();
const ItemSchema = z.object({ id: z.string(), ip: z.string().optional(), comment: z.string().optional() }).loose();
const OperationIdSchema = z.object({ operation_id: z.string() }).loose();
const OperationSchema = z
  .object({
    id: z.string().optional(),
    status: z.enum(['pending', 'running', 'completed', 'failed']),
    error: z.string().optional(),
  })
  .loose();

const LIST_ID = /^[0-9a-f]{32}$/;

export class CloudflareTarget implements EdgeTarget {
  readonly kind = 'cloudflare';
  readonly id: string;
  readonly capabilities: TargetCapabilities = { nativeExpiry: false, bulk: true, killConnections: false, comments: true };
  private readonly api: CloudflareApi;
  private readonly account: string;
  private listId: string | null;
  /** Item ids by canonical address, from the last full listing (deletes need ids). */
  private ids = new Map<string, string[]>();
  private readonly adds: Coalescer<{ ip: string; comment: string }>;
  private readonly deletes: Coalescer<string>;

  private readonly options: CloudflareOptions;
  private readonly deps: TargetDeps;
  private readonly locks: AccountLocks;
  private readonly tuning: CloudflareTuning;

  constructor(options: CloudflareOptions, deps: TargetDeps, locks: AccountLocks, tuning: CloudflareTuning = DEFAULT_TUNING) {
    this.options = options;
    this.deps = deps;
    this.locks = locks;
    this.tuning = tuning;
    this.account = options.account;
    this.id = `cloudflare ${options.account}/${options.list}`;
    this.listId = LIST_ID.test(options.list) ? options.list : null;
    this.adds = new Coalescer(tuning.batchSize, (batch) => this.sendAdds(batch));
    this.deletes = new Coalescer(tuning.batchSize, (batch) => this.sendDeletes(batch));
    this.api = new CloudflareApi({
      baseUrl: options.api.replace(/\/+$/, ''),
      token: options.token,
      timeoutMs: tuning.timeoutMs,
      kind: this.kind,
      target: this.id,
      onCall: deps.onCall,
      now: () => deps.clock.now(),
      sleep: tuning.sleep,
      rateLimitRetries: tuning.rateLimitRetries,
      maxRetryAfterMs: tuning.maxRetryAfterMs,
      permissionHint: `the permission "${LISTS_PERMISSION}" (Account ▸ Account Filter Lists ▸ Edit) on account ${options.account}`,
    });
  }

  canonical(address: string): string | null {
    return cloudflareCanonical(address);
  }

  async check(): Promise<TargetCheckResult> {
    const listId = await this.resolveList();
    const { result: list } = await this.api.request('GET', `/accounts/${this.account}/rules/lists/${listId}`, 'rules/lists/get', ListSchema);
    const errors: string[] = [];
    const warnings: string[] = [];
    if (list.kind !== 'ip')
      errors.push(`Cloudflare list ${list.name} is of kind ${list.kind}, not ip: create an IP list (edgeban setup-cloudflare) and point list= at it`);
    if (list.num_referencing_filters === 0) {
      warnings.push(
        `no rule uses Cloudflare list ${list.name}: its addresses are not blocked; add a WAF custom rule "ip.src in $${list.name}" → Block (edgeban setup-cloudflare --zone ZONE_ID)`,
      );
    }
    const facts: Record<string, string> = { account: this.account, list: list.name, 'list id': list.id, kind: list.kind };
    if (list.num_items !== undefined) facts.items = String(list.num_items);
    return { errors, warnings, facts };
  }

  async list(): Promise<ListedEntry[]> {
    const listId = await this.resolveList();
    const byAddress = new Map<string, { owned: boolean; ids: string[] }>();
    const seenCursors = new Set<string>();
    let cursor: string | null = null;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const query: string = `?per_page=${this.tuning.pageSize}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const reply: CloudflareReply<Array<z.infer<typeof ItemSchema>>> = await this.api.request(
        'GET',
        `/accounts/${this.account}/rules/lists/${listId}/items${query}`,
        'rules/lists/items/list',
        z.array(ItemSchema),
      );
      for (const item of reply.result) {
        if (item.ip === undefined) continue;
        const address = listedSpelling(item.ip);
        const entry = byAddress.get(address) ?? { owned: false, ids: [] };
        entry.owned ||= isOwned(item.comment);
        entry.ids.push(item.id);
        byAddress.set(address, entry);
      }
      if (reply.after === null || reply.after === '') {
        this.ids = new Map([...byAddress].map(([address, entry]) => [address, entry.ids]));
        return [...byAddress].map(([address, entry]) => ({ address, owned: entry.owned }));
      }
      if (seenCursors.has(reply.after)) {
        throw new TargetError(
          'retry',
          'paging',
          `GET /accounts/${this.account}/rules/lists/${listId}/items`,
          `Cloudflare returned cursor ${JSON.stringify(reply.after.slice(0, 40))} twice: the listing cannot be completed`,
        );
      }
      seenCursors.add(reply.after);
      cursor = reply.after;
    }
    throw new TargetError(
      'retry',
      'paging',
      `GET /accounts/${this.account}/rules/lists/${listId}/items`,
      `more than ${MAX_LIST_PAGES} pages of items: the listing cannot be completed`,
    );
  }

  add(entry: DesiredEntry): Promise<void> {
    return this.addMany([entry]);
  }

  delete(address: string): Promise<void> {
    return this.deleteMany([address]);
  }

  /**
   * Adds in batches of one bulk operation each, one at a time, each polled until Cloudflare has
   * applied it; adds arriving meanwhile (from any caller) go together in the next batch.
   */
  async addMany(entries: readonly DesiredEntry[]): Promise<void> {
    const items = new Map<string, { ip: string; comment: string }>();
    const refused: string[] = [];
    for (const entry of entries) {
      const ip = cloudflareCanonical(entry.address);
      if (ip === null) refused.push(entry.address);
      else items.set(ip, { ip, comment: ownedComment(entry.comment) });
    }
    await this.adds.submit([...items.values()]);
    if (refused.length > 0) {
      throw new TargetError(
        'rejected',
        'unsupported-address',
        `POST /accounts/${this.account}/rules/lists/${this.listId ?? this.options.list}/items`,
        `a Cloudflare list cannot hold ${refused.slice(0, 5).join(', ')}${refused.length > 5 ? ` and ${refused.length - 5} more` : ''}: IPv4 /8–/32 and IPv6 /12–/64 only`,
      );
    }
  }

  /** Deletes by item id, batched like adds; addresses not on the list are done already. */
  async deleteMany(addresses: readonly string[]): Promise<void> {
    await this.deletes.submit([...new Set(addresses.map(listedSpelling))]);
  }

  private async sendAdds(batch: Array<{ ip: string; comment: string }>): Promise<void> {
    const listId = await this.resolveList();
    await this.bulk('POST', `/accounts/${this.account}/rules/lists/${listId}/items`, 'rules/lists/items/create', batch);
  }

  /** Ids come from the last listing, refreshed once when it lacks an address. */
  private async sendDeletes(addresses: string[]): Promise<void> {
    if (addresses.some((address) => !this.ids.has(address))) await this.list();
    const ids = addresses.flatMap((address) => this.ids.get(address) ?? []);
    if (ids.length > 0) {
      const listId = await this.resolveList();
      await this.bulk('DELETE', `/accounts/${this.account}/rules/lists/${listId}/items`, 'rules/lists/items/delete', { items: ids.map((id) => ({ id })) });
    }
    for (const address of addresses) this.ids.delete(address);
  }

  async close(): Promise<void> {
    // fetch keeps no per-target connection pool to close.
  }

  /** Submits one bulk operation and waits for it, under the account's lock. */
  private bulk(method: 'POST' | 'DELETE', path: string, endpoint: string, body: unknown): Promise<void> {
    return this.locks.run(this.account, async () => {
      const { result } = await this.api.request(method, path, endpoint, OperationIdSchema, body);
      await this.waitFor(result.operation_id, `${method} ${path}`);
    });
  }

  private async waitFor(operationId: string, call: string): Promise<void> {
    const path = `/accounts/${this.account}/rules/lists/bulk_operations/${encodeURIComponent(operationId)}`;
    const deadline = this.deps.clock.now() + this.tuning.operationTimeoutMs;
    let interval = this.tuning.pollIntervalMs;
    for (let round = 0; round < 100_000; round++) {
      await this.tuning.sleep(interval);
      const { result } = await this.api.request('GET', path, 'rules/lists/bulk_operations/get', OperationSchema);
      if (result.status === 'completed') return;
      if (result.status === 'failed') {
        throw new TargetError(
          'rejected',
          'operation-failed',
          call,
          `Cloudflare could not apply bulk operation ${operationId}: ${result.error ?? 'no reason given'}`,
        );
      }
      if (this.deps.clock.now() > deadline) break;
      interval = Math.min(2000, Math.round(interval * 1.5));
    }
    throw new TargetError(
      'retry',
      'operation-timeout',
      call,
      `Cloudflare bulk operation ${operationId} still pending after ${Math.round(this.tuning.operationTimeoutMs / 1000)} s`,
    );
  }

  /** The list's id: given, or looked up once by name. */
  private async resolveList(): Promise<string> {
    if (this.listId !== null) return this.listId;
    const { result } = await this.api.request('GET', `/accounts/${this.account}/rules/lists`, 'rules/lists/list', z.array(ListSchema));
    const found = result.find((list) => list.name === this.options.list);
    if (found === undefined) {
      throw new TargetError(
        'operator',
        'list-missing',
        `GET /accounts/${this.account}/rules/lists`,
        `Cloudflare account ${this.account} has no list named ${this.options.list}: create it with edgeban setup-cloudflare, or set list= to an existing IP list's name or id`,
      );
    }
    this.listId = found.id;
    return found.id;
  }
}

export function isOwned(comment: string | undefined): boolean {
  return comment !== undefined && (comment === OWNER_TAG || comment.startsWith(`${OWNER_TAG} `) || comment.startsWith(`${OWNER_TAG}:`));
}

/** The item comment: the reconciler's text (jail, expiry) behind the ownership tag, within Cloudflare's 500 characters. */
export function ownedComment(comment: string): string {
  const text = isOwned(comment) ? comment : `${OWNER_TAG} ${comment}`.trim();
  return text.length > MAX_COMMENT ? text.slice(0, MAX_COMMENT) : text;
}
