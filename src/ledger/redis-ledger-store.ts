import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../logging/logger.ts';
import { UserFacingError } from '../util/errors.ts';
import { BanClaimSchema, LedgerMutationSchema, type BanClaim, type LedgerMutation } from './ban-claim.ts';
import { ClaimIndex } from './claim-index.ts';
import type { LedgerDamage, LedgerStore } from './ledger-store.ts';

export interface RedisLedgerStoreOptions {
  /** redis:// or rediss:// (TLS). */
  url: string;
  /** When not in the URL. */
  password?: string | null;
  /** Prefix of every key (one deployment's ledger). */
  prefix: string;
  logger: Logger;
  /** Compaction is worthwhile once the journal holds this many records beyond twice the live claims. */
  compactAfterRecords?: number;
  /** How long one blocking read waits before checking again (ms). */
  blockMs?: number;
  /** How long open() waits for Redis to answer (ms). */
  connectTimeoutMs?: number;
  /** Extra ioredis options (tests shorten the reconnect backoff). */
  redisOptions?: Partial<RedisOptions>;
}

/** A journal entry or snapshot in Redis that is not what edgeban wrote. */
export class RedisLedgerCorruptError extends UserFacingError {
  constructor(key: string, where: string, reason: string) {
    super(`the shared ledger in Redis is corrupt: key ${key}, ${where}: ${reason}. edgeban will not start on a damaged ledger; ` +
      'restore Redis from a backup, or delete the keys under this prefix to begin with an empty ledger');
    this.name = 'RedisLedgerCorruptError';
  }
}

const FORMAT = 'edgeban-ledger-1';
const KNOWN_OPS: ReadonlySet<string> = new Set(LedgerMutationSchema.options.map((o) => o.shape.op.value));
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const PAGE = 1000;
const LOAD_ATTEMPTS = 5;
// A replaced snapshot lingers this long, so a replica loading it meanwhile can finish.
const OLD_SNAPSHOT_TTL_MS = 10 * 60_000;
const COMPACTION_LOCK_MS = 120_000;

const MetaSchema = z.object({
  format: z.literal(FORMAT),
  /** Random id of this ledger's lifetime in Redis: it changes only when the data was lost and recreated. */
  epoch: z.string().min(1),
  /** Journal position the snapshot covers (entries ≤ it are in the snapshot). */
  snapshotId: z.string(),
  snapshotKey: z.string(),
  claims: z.coerce.number().int().nonnegative(),
  /** Journal entries below this id were trimmed. */
  trimmedBelow: z.string(),
});
type Meta = z.infer<typeof MetaSchema>;

const EntrySchema = z.object({ w: z.string().min(1), n: z.coerce.number().int().positive(), m: z.string() });
interface Entry { writer: string; seq: number; mutations: LedgerMutation[] }

// Creates the meta hash of an empty ledger unless one exists; returns it.
const INIT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'format', ARGV[2], 'epoch', ARGV[1], 'snapshotId', '0-0', 'snapshotKey', '', 'claims', '0', 'trimmedBelow', '0-0')
end
return redis.call('HGETALL', KEYS[1])`;

// Installs a snapshot written at journal position ARGV[2], unless a newer one is already in place,
// and trims the journal below the previous snapshot (one compaction period of history stays, so a
// replica a little behind never has to reload everything).
const COMMIT_SNAPSHOT_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'snapshotId', 'snapshotKey')
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
if meta[1] ~= ARGV[1] then redis.call('DEL', KEYS[3]) return 0 end
local nm, ns = parse(ARGV[2])
local cm, cs = parse(meta[2])
if nm < cm or (nm == cm and ns <= cs) then redis.call('DEL', KEYS[3]) return 0 end
if meta[3] and meta[3] ~= '' and meta[3] ~= KEYS[3] then redis.call('PEXPIRE', meta[3], ARGV[4]) end
redis.call('PERSIST', KEYS[3])
redis.call('HSET', KEYS[1], 'snapshotId', ARGV[2], 'snapshotKey', KEYS[3], 'claims', ARGV[3], 'trimmedBelow', meta[2])
redis.call('XTRIM', KEYS[2], 'MINID', meta[2])
return 1`;

// Points the meta away from a snapshot key that no longer exists (same epoch and key as read).
const UNLINK_LOST_SNAPSHOT_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'snapshotKey')
if meta[1] ~= ARGV[1] or meta[2] ~= KEYS[2] or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'snapshotKey', '', 'claims', '0')
return 1`;

const RELEASE_LOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface PendingAppend { keys: string[]; id: string | null }
interface CatchUpWaiter { target: string; resolve: () => void }

/**
 * The shared ledger store for several replicas: an append-only Redis Stream (the journal) plus
 * a snapshot hash, the same shape as the file store's journal and snapshot.
 *
 * Why a stream, not one hash of claims: the stream gives every mutation one total order (the
 * entry id), so every replica replays the same history and reaches the same state; its ids are
 * a resume point, so a replica that was disconnected re-reads exactly what it missed (XREAD from
 * its last id) instead of trusting pub/sub, which drops messages while disconnected; and the
 * claim semantics stay in one place (ClaimIndex), not re-implemented in Lua. Memory stays bounded
 * by compaction: a snapshot of the state at a journal position, then the journal is trimmed.
 *
 * Convergence: the Ledger applies its own mutations once Redis acknowledged them, in the order
 * it made them, not in stream order, so two replicas mutating one claim at once would each end
 * with its own version. The store therefore keeps
 * `mirror` (the state replayed in stream order: authoritative) and `view` (what its Ledger holds),
 * and after each read delivers, for every touched address with none of this replica's writes
 * still in flight, the difference as `ban` (the claim as the stream has it) and `purge` mutations.
 *
 * Durability is Redis's: run it with appendonly yes (appendfsync always for no loss on a power cut).
 */
export class RedisLedgerStore implements LedgerStore {
  private readonly redis: Redis;
  private readonly reader: Redis;
  private readonly logger: Logger;
  private readonly prefix: string;
  private readonly compactAfterRecords: number;
  private readonly blockMs: number;
  private readonly writerId = randomUUID();
  private readonly listeners = new Set<(mutations: readonly LedgerMutation[]) => void>();
  private mirror = new ClaimIndex();
  private view = new ClaimIndex();
  /** Highest sequence applied per writer: a command resent after a reconnect is applied once. */
  private applied = new Map<string, number>();
  private lastId = '0-0';
  private epoch = '';
  private snapshotId = '0-0';
  private recordsSinceSnapshot = 0;
  private seq = 0;
  private readonly pending = new Map<number, PendingAppend>();
  private readonly pendingPerKey = new Map<string, number>();
  private waiters: CatchUpWaiter[] = [];
  private tailing: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private loaded = false;
  private closed = false;
  private readonly closedSignal = Promise.withResolvers<void>();
  private connectionDown = false;
  private damageReport: LedgerDamage | null = null;
  private readonly unknownSkipped: { count: number; last: string | null } = { count: 0, last: null };
  /** The last connection error, for messages. */
  private lastError: string | null = null;

  private constructor(options: RedisLedgerStoreOptions) {
    this.logger = options.logger.child({ component: 'redis-ledger' });
    this.prefix = options.prefix;
    this.compactAfterRecords = options.compactAfterRecords ?? 50_000;
    this.blockMs = options.blockMs ?? 5_000;
    const redisOptions: RedisOptions = {
      protocol: 2,
      connectionName: 'edgeban-ledger',
      ...(options.password ? { password: options.password } : {}),
      ...options.redisOptions,
    };
    this.redis = new Redis(options.url, redisOptions);
    // The blocking reader waits through outages; after a reconnect ioredis resends its XREAD from the same id.
    this.reader = this.redis.duplicate({ connectionName: 'edgeban-ledger-reader', maxRetriesPerRequest: null });
    for (const connection of [this.redis, this.reader]) {
      connection.on('error', (error: Error) => this.connectionLost(error));
      connection.on('ready', () => this.connectionBack());
    }
  }

  static async open(options: RedisLedgerStoreOptions): Promise<RedisLedgerStore> {
    const store = new RedisLedgerStore(options);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      // ioredis would keep the PING queued through 20 reconnect attempts: a command run by hand waited a minute.
      await Promise.race([
        store.redis.ping(),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms${store.lastError ? ` (${store.lastError})` : ''}`)), timeoutMs); }),
      ]);
    } catch (error) {
      await store.close();
      throw new UserFacingError(`cannot reach Redis for the shared ledger (EDGEBAN_REDIS_URL): ${describe(error)}`);
    } finally {
      clearTimeout(timer);
    }
    return store;
  }

  private key(name: string): string {
    return `${this.prefix}ledger:${name}`;
  }

  private get metaKey(): string { return this.key('meta'); }
  private get journalKey(): string { return this.key('journal'); }

  async load(): Promise<BanClaim[]> {
    const state = await this.readState(true);
    this.installState(state);
    if (this.damageReport) this.damageReport.keptClaims = state.index.size;
    this.view = copyIndex(state.index);
    this.loaded = true;
    return [...state.index.all()];
  }

  append(mutations: readonly LedgerMutation[]): Promise<void> {
    if (mutations.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('ledger store closed'));
    if (!this.loaded) return Promise.reject(new Error('ledger store used before load()'));
    // Fail at once rather than queue behind reconnects: the caller (a jail, `edgeban ban`) learns
    // now that nothing was recorded, and nothing lands later that it was told had failed.
    if (this.redis.status !== 'ready') {
      return Promise.reject(new Error(`the shared ledger in Redis is unreachable${this.lastError ? ` (${this.lastError})` : ''}; nothing was recorded`));
    }
    return this.write(mutations);
  }

  /**
   * The Ledger hands over its claims after purging old history; the purges it decided are
   * appended (so every replica forgets them too), then the authoritative state is snapshotted
   * at this replica's journal position, unless another replica is compacting.
   */
  async compact(claims: readonly BanClaim[]): Promise<void> {
    if (this.closed) return;
    const keep = new Set(claims.map((c) => claimKey(c.target, c.address, c.jail)));
    const purges: LedgerMutation[] = [];
    for (const claim of this.view.all()) {
      if (!keep.has(claimKey(claim.target, claim.address, claim.jail))) purges.push({ op: 'purge', target: claim.target, address: claim.address, jail: claim.jail });
    }
    for (let i = 0; i < purges.length; i += PAGE) await this.append(purges.slice(i, i + PAGE));
    const lockKey = this.key('compacting');
    if (await this.redis.set(lockKey, this.writerId, 'PX', COMPACTION_LOCK_MS, 'NX') !== 'OK') return;
    try {
      await this.writeSnapshot();
    } finally {
      await this.redis.eval(RELEASE_LOCK_SCRIPT, 1, lockKey, this.writerId);
    }
  }

  /** Whether the writing connection to Redis is up. */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /** A lost snapshot found by load (recovered from the journal); entries that are not mutations still stop load. */
  damage(): LedgerDamage | null {
    return this.damageReport;
  }

  wantsCompaction(): boolean {
    return !this.closed && this.recordsSinceSnapshot > this.compactAfterRecords + 2 * this.mirror.size;
  }

  onRemoteMutations(listener: (mutations: readonly LedgerMutation[]) => void): () => void {
    this.listeners.add(listener);
    this.startTail();
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves once every journal entry that existed when it was called has been read and
   * delivered; rejects after `timeoutMs` (Redis unreachable). A reconciler about to remove an
   * entry can call it first, so it never acts on a state another replica already changed.
   */
  async catchUp(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the shared ledger did not catch up with Redis within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.untilClosed(this.readUpToEnd()), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async readUpToEnd(): Promise<void> {
    const last = await this.redis.xrevrange(this.journalKey, '+', '-', 'COUNT', 1);
    const target = last[0]?.[0];
    if (target === undefined || compareIds(this.lastId, target) >= 0) return;
    this.startTail();
    // A waiter left by a timed-out call resolves harmlessly once the tail gets there.
    await new Promise<void>((resolve) => this.waiters.push({ target, resolve }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closedSignal.resolve();
    this.wake?.();
    // Aborts the blocking read; QUIT on the writer waits for commands already sent.
    this.reader.disconnect();
    await this.tailing;
    // QUIT lets commands already sent finish; with Redis unreachable there is nothing to wait for.
    if (this.redis.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.redis.quit().catch(() => undefined),
        new Promise((resolve) => { timer = setTimeout(resolve, 5_000); }),
      ]);
      clearTimeout(timer);
    }
    this.redis.disconnect();
  }

  // ---- writing ----

  private async write(mutations: readonly LedgerMutation[]): Promise<void> {
    const seq = ++this.seq;
    const pending: PendingAppend = { keys: mutations.map(addressKeyOf), id: null };
    this.pending.set(seq, pending);
    for (const key of pending.keys) this.pendingPerKey.set(key, (this.pendingPerKey.get(key) ?? 0) + 1);
    let id: string | null;
    try {
      id = await this.redis.xadd(this.journalKey, '*', 'w', this.writerId, 'n', String(seq), 'm', JSON.stringify(mutations));
    } catch (error) {
      // Not stored (as far as we know): whatever the tail delivered meanwhile stays as the stream has it.
      this.settle(seq);
      this.deliver(this.reconcile(new Set(pending.keys)));
      throw error;
    }
    pending.id = id;
    // Durable now: the Ledger applies it as this resolves (it may already have arrived through the tail).
    for (const mutation of mutations) this.view.apply(mutation);
    // Already passed by a reload that covered it: it will never be read back one by one.
    if (id !== null && this.pending.has(seq) && compareIds(id, this.lastId) <= 0) {
      this.settle(seq);
      this.deliver(this.reconcile(new Set(pending.keys)));
    }
  }

  /** This replica's write `seq` is no longer in flight. */
  private settle(seq: number): void {
    const pending = this.pending.get(seq);
    if (!pending) return;
    this.pending.delete(seq);
    for (const key of pending.keys) {
      const left = (this.pendingPerKey.get(key) ?? 1) - 1;
      if (left <= 0) this.pendingPerKey.delete(key);
      else this.pendingPerKey.set(key, left);
    }
  }

  private async writeSnapshot(): Promise<void> {
    const at = this.lastId;
    if (compareIds(at, this.snapshotId) <= 0) return;
    const claims = [...this.mirror.all()];
    const recordsCovered = this.recordsSinceSnapshot;
    const snapshotKey = this.key(`snapshot:${at}:${this.writerId}`);
    for (let i = 0; i < claims.length; i += PAGE) {
      const fields: string[] = [];
      for (const claim of claims.slice(i, i + PAGE)) fields.push(claimKey(claim.target, claim.address, claim.jail), JSON.stringify(claim));
      // Expires unless committed: an interrupted compaction leaves nothing behind.
      await this.redis.multi().hset(snapshotKey, ...fields).pexpire(snapshotKey, OLD_SNAPSHOT_TTL_MS).exec();
    }
    const installed = await this.redis.eval(COMMIT_SNAPSHOT_SCRIPT, 3, this.metaKey, this.journalKey, snapshotKey,
      this.epoch, at, String(claims.length), String(OLD_SNAPSHOT_TTL_MS));
    if (installed === 1) {
      this.snapshotId = at;
      this.recordsSinceSnapshot = Math.max(0, this.recordsSinceSnapshot - recordsCovered);
      this.logger.debug({ claims: claims.length, at }, 'shared ledger snapshot written');
    }
  }

  // ---- reading ----

  private async readState(strict: boolean): Promise<LoadedState> {
    for (let attempt = 1; attempt <= LOAD_ATTEMPTS; attempt++) {
      const meta = await this.ensureMeta();
      const index = new ClaimIndex();
      let claims = await this.readSnapshot(meta);
      if (claims === null && await this.snapshotLost(meta)) {
        this.recordDamage(`snapshot key ${meta.snapshotKey} is missing: the ${meta.claims} claims it held (every ban recorded up to journal entry ${meta.snapshotId}) are lost`);
        claims = [];
      }
      // The snapshot was replaced and expired under us: start over from the new one.
      if (claims === null) continue;
      for (const claim of claims) index.apply({ op: 'ban', claim });
      const applied = new Map<string, number>();
      let lastId = meta.snapshotId;
      let records = 0;
      for (;;) {
        const page = await this.redis.xrange(this.journalKey, `(${lastId}`, '+', 'COUNT', PAGE);
        for (const [id, fields] of page) {
          lastId = id;
          const entry = this.decodeEntry(id, fields, strict);
          if (entry === null || isDuplicate(applied, entry)) continue;
          for (const mutation of entry.mutations) index.apply(mutation);
          records += entry.mutations.length;
        }
        if (page.length < PAGE) break;
      }
      const after = await this.readMeta();
      // Trimmed past our snapshot while we read: entries may be missing.
      if (after === null || after.epoch !== meta.epoch || compareIds(after.trimmedBelow, meta.snapshotId) > 0) continue;
      return { index, applied, lastId, epoch: meta.epoch, snapshotId: meta.snapshotId, records };
    }
    throw new UserFacingError(`the shared ledger in Redis (${this.metaKey}) changed under every one of ${LOAD_ATTEMPTS} attempts to read it; is another edgeban compacting in a loop?`);
  }

  private installState(state: LoadedState): void {
    this.mirror = state.index;
    this.applied = state.applied;
    this.lastId = state.lastId;
    this.epoch = state.epoch;
    this.snapshotId = state.snapshotId;
    this.recordsSinceSnapshot = state.records;
  }

  private async ensureMeta(): Promise<Meta> {
    const reply = await this.redis.eval(INIT_SCRIPT, 1, this.metaKey, randomUUID(), FORMAT);
    const meta = parseMeta(pairsToObject(reply));
    if (meta === null) throw new RedisLedgerCorruptError(this.metaKey, 'meta', `not an edgeban ledger (format ${FORMAT} expected)`);
    return meta;
  }

  private async readMeta(): Promise<Meta | null> {
    const fields = await this.redis.hgetall(this.metaKey);
    if (Object.keys(fields).length === 0) return null;
    const meta = parseMeta(fields);
    if (meta === null) throw new RedisLedgerCorruptError(this.metaKey, 'meta', `not an edgeban ledger (format ${FORMAT} expected)`);
    return meta;
  }

  /**
   * Whether the snapshot `meta` names is gone for good (deleted, or lost by Redis) rather than
   * replaced by a compaction meanwhile. A lost snapshot is unlinked from the meta, so the next
   * load starts from the journal without reporting it again.
   */
  private async snapshotLost(meta: Meta): Promise<boolean> {
    if (await this.redis.exists(meta.snapshotKey) === 1) return false;
    const unlinked = await this.redis.eval(UNLINK_LOST_SNAPSHOT_SCRIPT, 2, this.metaKey, meta.snapshotKey, meta.epoch);
    return unlinked === 1;
  }

  private recordDamage(problem: string): void {
    this.logger.error({ key: this.metaKey }, `the shared ledger in Redis was damaged: ${problem}. Every readable ban was kept; bans that were lost are no longer known to edgeban: their firewall entries count as foreign until removed or re-banned.`);
    this.damageReport ??= { at: Date.now(), problems: [], movedAside: [], keptClaims: 0 };
    this.damageReport.problems.push(problem);
  }

  /** The snapshot's claims; null when it vanished or was replaced meanwhile (read again). */
  private async readSnapshot(meta: Meta): Promise<BanClaim[] | null> {
    if (meta.snapshotKey === '' || meta.claims === 0) return [];
    const claims: BanClaim[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(meta.snapshotKey, cursor, 'COUNT', PAGE);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const parsed = BanClaimSchema.safeParse(parseJson(flat[i + 1]!));
        if (!parsed.success) throw new RedisLedgerCorruptError(meta.snapshotKey, `field ${flat[i]}`, 'not a ban record');
        claims.push(parsed.data);
      }
    } while (cursor !== '0');
    return claims.length === meta.claims ? claims : null;
  }

  private decodeEntry(id: string, fields: readonly string[], strict: boolean): Entry | null {
    const object: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) object[fields[i]!] = fields[i + 1]!;
    const entry = EntrySchema.safeParse(object);
    const raw = entry.success ? parseJson(entry.data.m) : null;
    const mutations = entry.success ? z.array(LedgerMutationSchema).safeParse(Array.isArray(raw) ? raw.filter((m) => !this.isUnknownOp(id, m)) : raw) : null;
    if (entry.success && mutations?.success) return { writer: entry.data.w, seq: entry.data.n, mutations: mutations.data };
    if (strict) throw new RedisLedgerCorruptError(this.journalKey, `entry ${id}`, 'not a ledger mutation');
    this.logger.error({ key: this.journalKey, entry: id }, 'skipped a shared-ledger journal entry that is not a ledger mutation');
    return null;
  }

  /**
   * A mutation whose `op` this version does not know (written by a newer edgeban): skipped with a
   * warning naming the entry, and counted for status, never a refusal to start. An `op` it knows
   * with the wrong shape is still damage.
   */
  private isUnknownOp(id: string, mutation: unknown): boolean {
    const op = (mutation as { op?: unknown } | null)?.op;
    if (typeof op !== 'string' || KNOWN_OPS.has(op)) return false;
    this.unknownSkipped.count++;
    this.unknownSkipped.last = `entry ${id}, op ${JSON.stringify(op.slice(0, 40))}`;
    this.logger.warn({ key: this.journalKey, entry: id, op: op.slice(0, 40) }, 'skipped a shared-ledger mutation of a type this version does not know (written by a newer edgeban?); upgrade this replica');
    return true;
  }

  /** Mutations of unknown types skipped so far (status). */
  unknownMutations(): { count: number; last: string | null } {
    return { ...this.unknownSkipped };
  }

  private startTail(): void {
    if (this.tailing || this.closed || !this.loaded) return;
    this.tailing = this.tail().finally(() => { this.tailing = null; });
  }

  private async tail(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const from = this.lastId;
        const reply = await this.untilClosed(this.reader.xread('COUNT', PAGE, 'BLOCK', this.blockMs, 'STREAMS', this.journalKey, from) as Promise<StreamReply | null>);
        if (this.closed) break;
        // Checked after the read: trimming and the epoch only move forward, so a meta that is
        // fine now was fine when the read ran.
        const meta = await this.untilClosed(this.readMeta());
        if (this.closed) break;
        if (meta === null || meta.epoch !== this.epoch || compareIds(meta.trimmedBelow, from) > 0) {
          await this.resync(meta);
        } else {
          if (compareIds(meta.snapshotId, this.snapshotId) > 0) {
            // Another replica compacted: its snapshot covers what this one counted.
            this.snapshotId = meta.snapshotId;
            this.recordsSinceSnapshot = 0;
          }
          if (reply && reply[0]) this.process(reply[0][1]);
        }
        if (failures > 0) this.logger.info('shared ledger reads from Redis again');
        failures = 0;
        this.resolveWaiters();
      } catch (error) {
        if (this.closed) break;
        if (error instanceof RedisLedgerCorruptError) this.logger.error({ err: error.message }, 'shared ledger unreadable');
        else if (failures === 0) this.logger.warn({ err: describe(error) }, 'cannot read the shared ledger from Redis; retrying (changes by other replicas arrive once it answers)');
        failures++;
        await this.sleep(Math.min(5_000, 50 * 2 ** Math.min(failures, 7)));
      }
    }
  }

  private process(entries: ReadonlyArray<[id: string, fields: string[]]>): void {
    const touched = new Set<string>();
    for (const [id, fields] of entries) {
      this.lastId = id;
      const entry = this.decodeEntry(id, fields, false);
      if (entry === null || isDuplicate(this.applied, entry)) continue;
      for (const mutation of entry.mutations) {
        this.mirror.apply(mutation);
        touched.add(addressKeyOf(mutation));
      }
      this.recordsSinceSnapshot += entry.mutations.length;
      if (entry.writer === this.writerId) this.settle(entry.seq);
    }
    this.deliver(this.reconcile(touched));
  }

  /** The journal is not continuous from our position any more (trimmed, or Redis lost its data): reload. */
  private async resync(meta: Meta | null): Promise<void> {
    const lost = meta === null || meta.epoch !== this.epoch;
    if (lost) this.logger.error('the shared ledger in Redis was emptied (restarted without persistence, or flushed); writing back the claims this replica knows that it lacks');
    else this.logger.warn('this replica fell behind a compaction of the shared ledger; reloading it');
    const state = await this.readState(false);
    this.installState(state);
    for (const [seq, pending] of this.pending) {
      if (pending.id !== null && compareIds(pending.id, this.lastId) <= 0) this.settle(seq);
    }
    if (lost) {
      const missing: LedgerMutation[] = [];
      for (const claim of this.view.all()) {
        if (!this.mirror.get(claim.target, claim.address, claim.jail)) missing.push({ op: 'ban', claim });
      }
      for (let i = 0; i < missing.length; i += PAGE) await this.write(missing.slice(i, i + PAGE));
    }
    const everything = new Set<string>();
    for (const claim of this.view.all()) everything.add(addressKey(claim.target, claim.address));
    for (const claim of this.mirror.all()) everything.add(addressKey(claim.target, claim.address));
    this.deliver(this.reconcile(everything));
  }

  /**
   * For each address with none of this replica's writes in flight, the mutations that bring the
   * Ledger's claims (`view`) to the stream's (`mirror`); applied to `view` as they are returned.
   */
  private reconcile(addressKeys: ReadonlySet<string>): LedgerMutation[] {
    const out: LedgerMutation[] = [];
    for (const key of addressKeys) {
      if (this.pendingPerKey.has(key)) continue;
      const [target, address] = splitAddressKey(key);
      for (const claim of this.mirror.claimsOf(target, address)) {
        const current = this.view.get(target, address, claim.jail);
        if (!current || !sameClaim(current, claim)) out.push({ op: 'ban', claim });
      }
      for (const claim of this.view.claimsOf(target, address)) {
        if (!this.mirror.get(target, address, claim.jail)) out.push({ op: 'purge', target, address, jail: claim.jail });
      }
    }
    for (const mutation of out) this.view.apply(mutation);
    return out;
  }

  private deliver(mutations: readonly LedgerMutation[]): void {
    if (mutations.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(mutations);
      } catch (error) {
        this.logger.error({ err: error }, 'shared ledger listener failed');
      }
    }
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const waiting: CatchUpWaiter[] = [];
    for (const waiter of this.waiters) {
      if (compareIds(this.lastId, waiter.target) >= 0) waiter.resolve();
      else waiting.push(waiter);
    }
    this.waiters = waiting;
  }

  /** `operation`, or undefined once the store closes (a command queued for a reconnect may never settle). */
  private untilClosed<R>(operation: Promise<R>): Promise<R> {
    operation.catch(() => undefined);
    return Promise.race([operation, this.closedSignal.promise as Promise<never>]);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.wake = null; resolve(); }, ms);
      this.wake = () => { clearTimeout(timer); this.wake = null; resolve(); };
    });
  }

  private connectionLost(error: Error): void {
    this.lastError = describe(error);
    if (this.closed || this.connectionDown) return;
    this.connectionDown = true;
    this.logger.warn({ err: describe(error) }, 'lost the connection to Redis (shared ledger); reconnecting');
  }

  private connectionBack(): void {
    if (!this.connectionDown) return;
    this.connectionDown = false;
    this.logger.info('connected to Redis again (shared ledger)');
  }
}

interface LoadedState {
  index: ClaimIndex;
  applied: Map<string, number>;
  lastId: string;
  epoch: string;
  snapshotId: string;
  records: number;
}

type StreamReply = Array<[key: string, entries: Array<[id: string, fields: string[]]>]>;

/** Stream ids `ms-seq`, compared numerically. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

function isDuplicate(applied: Map<string, number>, entry: Entry): boolean {
  if ((applied.get(entry.writer) ?? 0) >= entry.seq) return true;
  applied.set(entry.writer, entry.seq);
  return false;
}

function claimKey(target: string, address: string, jail: string): string {
  return JSON.stringify([target, address, jail]);
}

function addressKey(target: string, address: string): string {
  return `${target}\u0000${address}`;
}

function splitAddressKey(key: string): [string, string] {
  const at = key.indexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

function addressKeyOf(mutation: LedgerMutation): string {
  return mutation.op === 'ban' ? addressKey(mutation.claim.target, mutation.claim.address) : addressKey(mutation.target, mutation.address);
}

function sameClaim(a: BanClaim, b: BanClaim): boolean {
  return a.origin === b.origin && a.bannedAt === b.bannedAt && a.expiresAt === b.expiresAt && a.endedAt === b.endedAt && a.banCount === b.banCount;
}

function copyIndex(source: ClaimIndex): ClaimIndex {
  const copy = new ClaimIndex();
  for (const claim of source.all()) copy.apply({ op: 'ban', claim });
  return copy;
}

function pairsToObject(reply: unknown): Record<string, string> {
  const object: Record<string, string> = {};
  if (!Array.isArray(reply)) return object;
  for (let i = 0; i + 1 < reply.length; i += 2) object[String(reply[i])] = String(reply[i + 1]);
  return object;
}

function parseMeta(fields: Record<string, string>): Meta | null {
  const meta = MetaSchema.safeParse(fields);
  return meta.success ? meta.data : null;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
