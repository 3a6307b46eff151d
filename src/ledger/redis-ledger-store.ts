import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../logging/logger.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';
import {
  addressKey,
  BanClaimSchema,
  KNOWN_MUTATION_OPS,
  LedgerMutationSchema,
  splitAddressKey,
  supersedes,
  type BanClaim,
  type LedgerMutation,
} from './ban-claim.ts';
import { ClaimIndex } from './claim-index.ts';
import type { LedgerDamage, LedgerStore } from './ledger-store.ts';
import { LedgerSpool } from './ledger-spool.ts';
import { withinDeadline } from './redis-deadline.ts';

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
  /**
   * Where bans and unbans decided while Redis is unreachable are kept (fsync'ed) until they are
   * replayed; without it (a one-off command) such a change fails at once instead.
   */
  spoolDir?: string;
}

/** A journal entry or snapshot in Redis that is not what edgeban wrote. */
export class RedisLedgerCorruptError extends UserFacingError {
  constructor(key: string, where: string, reason: string) {
    super(
      `the shared ledger in Redis is corrupt: key ${key}, ${where}: ${reason}. edgeban will not start on a damaged ledger; ` +
        'restore Redis from a backup, or delete the keys under this prefix to begin with an empty ledger',
    );
    this.name = 'RedisLedgerCorruptError';
  }
}

const FORMAT = 'edgeban-ledger-1';
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
// A write Redis has not acknowledged by then is spooled too (log processing never waits on Redis);
// if it lands after all, readers drop the replayed copy (same writer and sequence number).
const WRITE_DEADLINE_MS = 2_000;
const PAGE = 1000;
/** About this many bytes of journal per read: an entry holds 1 to PAGE mutations, so PAGE entries could be tens of MiB. */
const READ_BYTES = 1024 * 1024;

/** Journal entries per XRANGE/XREAD: PAGE for small entries, fewer when entries are large, so one read stays near READ_BYTES. */
class EntriesPerRead {
  count = PAGE;

  /** Adapts to the page just read; returns whether it was full (more may follow). */
  after(page: ReadonlyArray<[id: string, fields: string[]]>): boolean {
    const full = page.length >= this.count;
    let bytes = 0;
    for (const [, fields] of page) for (const field of fields) bytes += field.length;
    if (bytes > READ_BYTES) this.count = Math.max(1, Math.floor((this.count * READ_BYTES) / bytes));
    else if (full) this.count = Math.min(PAGE, this.count * 2);
    return full;
  }
}
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
  /** Entries ever appended (each entry carries its number): going backwards means Redis lost data (an older RDB). */
  entries: z.coerce.number().int().nonnegative().default(0),
});
type Meta = z.infer<typeof MetaSchema>;

const EntrySchema = z.object({ w: z.string().min(1), n: z.coerce.number().int().positive(), m: z.string(), e: z.coerce.number().int().positive().optional() });
interface Entry {
  writer: string;
  seq: number;
  mutations: LedgerMutation[];
  ordinal: number | null;
}

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

// Appends one journal entry numbered by the meta's entry counter (creating the meta of an empty
// ledger, with a new epoch, if Redis lost it), so a replica notices a Redis that went back in time.
const APPEND_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'format', ARGV[5], 'epoch', ARGV[4], 'snapshotId', '0-0', 'snapshotKey', '', 'claims', '0', 'trimmedBelow', '0-0')
end
local n = redis.call('HINCRBY', KEYS[1], 'entries', 1)
return redis.call('XADD', KEYS[2], '*', 'w', ARGV[1], 'n', ARGV[2], 'm', ARGV[3], 'e', n)`;

const RELEASE_LOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface PendingAppend {
  keys: string[];
  id: string | null;
}
/** A batch in the spool: `seq` is its sequence number in the journal once replayed; `sent` once Redis has it. */
interface SpooledBatch {
  seq: number;
  mutations: LedgerMutation[];
  sent: boolean;
}
interface CatchUpWaiter {
  target: string;
  resolve: () => void;
}

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
 *
 * Outages: with a spool (the daemon), a change made while Redis is unreachable (or slow to
 * acknowledge) is written to a local fsync'ed spool and counts as durable; the spool is replayed in
 * order as soon as Redis answers, each change dropped if the journal holds a later version of the
 * same claim (an unban made elsewhere meanwhile wins). Log processing never waits on Redis, and no
 * command is dropped by the client's retry limits (the writer's queue never gives up).
 *
 * Lost data: each entry is numbered by a counter in the meta; an epoch that changed, a counter or
 * entry number that went backwards (Redis restored from an older snapshot) or a snapshot that
 * vanished make every replica write back the claims it knows in a later version than Redis has,
 * so bans stay edgeban's and nothing is forgotten; an unban recorded meanwhile (even one that
 * matched nothing in the emptied ledger) wins over the older claims written back.
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
  private readonly entriesPerRead = new EntriesPerRead();
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
  private spool: LedgerSpool | null = null;
  /** The spool's batches, in its order. */
  private spooled: SpooledBatch[] = [];
  private replaying: Promise<void> | null = null;
  private resyncing: Promise<void> | null = null;
  /** The highest entry number seen: a lower one later means Redis went back in time. */
  private seenEntries = 0;
  private rolledBack = false;
  /** Ends that matched no claim (Redis lost it): key → latest end time, so a claim written back older than it stays ended. */
  private tombstones = new Map<string, number>();
  private damageReport: LedgerDamage | null = null;
  private readonly unknownSkipped: { count: number; last: string | null } = { count: 0, last: null };
  /** The last connection error, for messages. */
  private lastError: string | null = null;

  private constructor(options: RedisLedgerStoreOptions) {
    this.logger = options.logger.child({ component: 'redis-ledger' });
    this.prefix = options.prefix;
    this.compactAfterRecords = options.compactAfterRecords ?? 50_000;
    this.blockMs = options.blockMs ?? 5_000;
    // The production settings, used by the tests as they are: a command is never dropped by a retry
    // limit (ioredis's default gives queued commands up after 20 reconnect attempts); appends never
    // wait on it (they spool after WRITE_DEADLINE_MS), and other callers set their own deadlines.
    const redisOptions: RedisOptions = {
      protocol: 2,
      connectionName: 'edgeban-ledger',
      maxRetriesPerRequest: null,
      ...(options.password ? { password: options.password } : {}),
    };
    this.redis = new Redis(options.url, redisOptions);
    // The blocking reader waits through outages; after a reconnect ioredis resends its XREAD from the same id.
    this.reader = this.redis.duplicate({ connectionName: 'edgeban-ledger-reader', maxRetriesPerRequest: null });
    for (const connection of [this.redis, this.reader]) {
      connection.on('error', (error: Error) => this.connectionLost(error));
      connection.on('ready', () => this.connectionBack());
    }
    this.spoolDir = options.spoolDir ?? null;
  }

  private readonly spoolDir: string | null;

  static async open(options: RedisLedgerStoreOptions): Promise<RedisLedgerStore> {
    const store = new RedisLedgerStore(options);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    try {
      // ioredis would keep the PING queued through 20 reconnect attempts: a command run by hand waited a minute.
      await withinDeadline(store.redis.ping(), timeoutMs, { why: () => `no answer within ${timeoutMs} ms${store.lastError ? ` (${store.lastError})` : ''}` });
    } catch (error) {
      await store.close();
      throw new UserFacingError(`cannot reach Redis for the shared ledger (EDGEBAN_REDIS_URL): ${errorMessage(error)}`);
    }
    if (store.spoolDir !== null) store.spool = await LedgerSpool.open(store.spoolDir, store.logger);
    return store;
  }

  private key(name: string): string {
    return `${this.prefix}ledger:${name}`;
  }

  private get metaKey(): string {
    return this.key('meta');
  }
  private get journalKey(): string {
    return this.key('journal');
  }

  async load(): Promise<BanClaim[]> {
    const state = await this.readState(true);
    this.installState(state);
    if (this.damageReport) this.damageReport.keptClaims = state.index.size;
    this.view = copyIndex(state.index);
    // Changes a previous run spooled were acknowledged as recorded: they hold until replayed.
    for (const mutations of this.spool?.batches() ?? []) {
      const seq = this.track(mutations);
      for (const mutation of mutations) this.view.apply(mutation);
      this.spooled.push({ seq, mutations, sent: false });
    }
    this.loaded = true;
    this.replaySoon();
    return [...this.view.all()];
  }

  append(mutations: readonly LedgerMutation[]): Promise<void> {
    if (mutations.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('ledger store closed'));
    if (!this.loaded) return Promise.reject(new Error('ledger store used before load()'));
    // Behind spooled changes, a change is spooled too: the journal keeps the order they were made in.
    if (this.spool && (this.redis.status !== 'ready' || this.spooled.length > 0)) return this.spoolBatch(mutations, this.track(mutations));
    // Without a spool, fail at once rather than queue behind reconnects: the caller (`edgeban ban`)
    // learns now that nothing was recorded, and nothing lands later that it was told had failed.
    if (this.redis.status !== 'ready') {
      return Promise.reject(new Error(`${this.unreachable() ?? 'the shared ledger in Redis is unreachable'}; nothing was recorded`));
    }
    if (!this.spool) return this.send(this.track(mutations), mutations);
    return this.writeOrSpool(mutations);
  }

  /** Why the shared ledger cannot be written now (naming Redis), or null while it can. */
  unreachable(): string | null {
    if (this.closed || this.redis.status === 'ready') return null;
    const spooled = this.spooled.filter((b) => !b.sent).length;
    return (
      `the shared ledger in Redis is unreachable${this.lastError ? ` (${this.lastError})` : ''}` +
      (this.spool ? `; ${spooled} change(s) decided meanwhile are kept in ${this.spool.file} and replayed in order once Redis answers` : '')
    );
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
      if (!keep.has(claimKey(claim.target, claim.address, claim.jail)))
        purges.push({ op: 'purge', target: claim.target, address: claim.address, jail: claim.jail });
    }
    for (let i = 0; i < purges.length; i += PAGE) await this.append(purges.slice(i, i + PAGE));
    const lockKey = this.key('compacting');
    if ((await this.redis.set(lockKey, this.writerId, 'PX', COMPACTION_LOCK_MS, 'NX')) !== 'OK') return;
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
    await withinDeadline(this.untilClosed(this.readUpToEnd()), timeoutMs, {
      why: () => {
        const unreachable = this.unreachable();
        return `the shared ledger did not catch up with Redis within ${timeoutMs} ms${unreachable === null ? '' : `: ${unreachable}`}`;
      },
    });
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
    await this.replaying;
    await this.spool?.close();
    // QUIT lets commands already sent finish; with Redis unreachable there is nothing to wait for.
    if (this.redis.status === 'ready') {
      await withinDeadline(this.redis.quit(), 5_000).catch(() => undefined);
    }
    this.redis.disconnect();
  }

  // ---- writing ----

  /** Marks the addresses of a write as in flight (the tail does not overwrite them); returns its sequence number. */
  private track(mutations: readonly LedgerMutation[]): number {
    const seq = ++this.seq;
    const pending: PendingAppend = { keys: mutations.map(addressKeyOf), id: null };
    this.pending.set(seq, pending);
    for (const key of pending.keys) this.pendingPerKey.set(key, (this.pendingPerKey.get(key) ?? 0) + 1);
    return seq;
  }

  /**
   * Sends directly; a write not acknowledged within WRITE_DEADLINE_MS (Redis slow or going away) is
   * spooled under the same sequence number, and the caller goes on. Should the first send land
   * after all, readers drop the replayed copy as a duplicate.
   */
  private async writeOrSpool(mutations: readonly LedgerMutation[]): Promise<void> {
    const seq = this.track(mutations);
    // Applied to `view` as it lands, unless it was spooled first (the spool applies it then);
    // still tracked if it fails late: the spooled copy is replayed under the same number.
    let spooling = false;
    const sending = this.send(seq, mutations, () => !spooling, false);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), WRITE_DEADLINE_MS);
    });
    let first: 'sent' | 'late';
    try {
      first = await Promise.race([sending.then(() => 'sent' as const), late]);
    } catch (error) {
      // Refused by Redis (not a lost connection): nothing was recorded, the caller learns why.
      this.settle(seq);
      this.deliver(this.reconcile(new Set(mutations.map(addressKeyOf))));
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (first === 'sent') return;
    spooling = true;
    const batch: SpooledBatch = { seq, mutations: [...mutations], sent: false };
    try {
      await this.spoolBatch(mutations, seq, batch);
    } catch {
      // The spool failed too: the send is all there is; its outcome is the caller's.
      await sending;
      for (const mutation of mutations) this.view.apply(mutation);
      return;
    }
    sending.then(
      () => {
        batch.sent = true;
        this.replaySoon();
      },
      () => this.replaySoon(),
    );
  }

  /** Writes a batch to the local spool (durable once this resolves); it is replayed once Redis answers. */
  private async spoolBatch(
    mutations: readonly LedgerMutation[],
    seq: number,
    batch: SpooledBatch = { seq, mutations: [...mutations], sent: false },
  ): Promise<void> {
    try {
      await this.spool!.add(mutations);
    } catch (error) {
      this.settle(seq);
      this.deliver(this.reconcile(new Set(mutations.map(addressKeyOf))));
      throw error;
    }
    for (const mutation of mutations) this.view.apply(mutation);
    if (this.spooled.length === 0)
      this.logger.warn({ file: this.spool!.file }, 'Redis does not answer: bans and unbans are kept in the local spool and replayed in order once it does');
    this.spooled.push(batch);
    this.replaySoon();
  }

  /** Replays the spool in the background once Redis answers (one replay at a time). */
  private replaySoon(): void {
    if (this.replaying || this.closed || !this.loaded || this.spooled.length === 0 || this.redis.status !== 'ready') return;
    this.replaying = this.replay()
      .catch((error: unknown) => this.logger.warn({ err: errorMessage(error) }, 'could not replay the ledger spool to Redis yet; trying again once it answers'))
      .finally(() => {
        this.replaying = null;
        if (this.spooled.some((b) => !b.sent) && this.redis.status === 'ready' && !this.closed) setTimeout(() => this.replaySoon(), 500).unref();
      });
  }

  /**
   * Reads the journal up to its end (so a later version made elsewhere is known), then sends the
   * spooled batches in order, each without the changes the journal already holds a later version
   * of; replayed batches leave the spool.
   */
  private async replay(): Promise<void> {
    await this.untilClosed(this.readToEnd());
    let replayed = 0;
    try {
      for (const batch of this.spooled) {
        if (this.closed) return;
        if (batch.sent) continue;
        const fresh = this.withoutStale(batch.mutations);
        if (fresh.length > 0) {
          // A failure leaves the batch tracked and spooled: the next replay sends it under the same number.
          await this.untilClosed(this.send(batch.seq, fresh, false, false));
        } else {
          this.settle(batch.seq);
          this.deliver(this.reconcile(new Set(batch.mutations.map(addressKeyOf))));
        }
        if (fresh.length < batch.mutations.length) {
          this.logger.info(
            { dropped: batch.mutations.length - fresh.length },
            'spooled changes superseded by later ones in the shared ledger were not replayed',
          );
          this.deliver(this.reconcile(new Set(batch.mutations.map(addressKeyOf))));
        }
        batch.sent = true;
        replayed++;
      }
    } finally {
      let done = 0;
      while (done < this.spooled.length && this.spooled[done]!.sent) done++;
      if (done > 0 && !this.closed) {
        await this.spool!.dropFirst(done);
        this.spooled.splice(0, done);
        if (replayed > 0) this.logger.info({ batches: replayed }, 'replayed the changes spooled while Redis was unreachable');
      }
    }
  }

  /** Reads the journal from this replica's position to its end now (resyncing if Redis lost data). */
  private async readToEnd(): Promise<void> {
    const meta = await this.readMeta();
    if (this.lostData(meta) || (meta !== null && compareIds(meta.trimmedBelow, this.lastId) > 0)) {
      await this.resync(meta, this.lostData(meta));
      return;
    }
    for (;;) {
      const page = await this.redis.xrange(this.journalKey, `(${this.lastId}`, '+', 'COUNT', this.entriesPerRead.count);
      const full = this.entriesPerRead.after(page);
      this.process(page);
      if (this.rolledBack) {
        await this.resync(await this.readMeta(), true);
        return;
      }
      if (!full) return;
    }
  }

  /** Whether `meta` shows Redis lost data this replica had seen: emptied, recreated, or gone back in time. */
  private lostData(meta: Meta | null): boolean {
    return meta === null || meta.epoch !== this.epoch || meta.entries < this.seenEntries;
  }

  /** The mutations of a spooled batch the journal holds no later version of. */
  private withoutStale(mutations: readonly LedgerMutation[]): LedgerMutation[] {
    const fresh: LedgerMutation[] = [];
    for (const mutation of mutations) {
      if (mutation.op === 'ban') {
        const current = this.mirror.get(mutation.claim.target, mutation.claim.address, mutation.claim.jail);
        if (current === undefined || !supersedes(current, mutation.claim) || sameClaim(current, mutation.claim)) fresh.push(mutation);
      } else if (mutation.op === 'end') {
        // Ends only the claims made before it: a ban made elsewhere since stays.
        const ended = this.mirror
          .claimsOf(mutation.target, mutation.address)
          .filter((c) => (mutation.jail === null || c.jail === mutation.jail) && c.endedAt === null && c.bannedAt <= mutation.at);
        for (const claim of ended) fresh.push({ op: 'end', target: mutation.target, address: mutation.address, jail: claim.jail, at: mutation.at });
        if (ended.length === 0 && this.mirror.claimsOf(mutation.target, mutation.address).length === 0) fresh.push(mutation);
      } else {
        fresh.push(mutation);
      }
    }
    return fresh;
  }

  /**
   * Appends one entry; `applyToView` false when the caller applies it (or already did), asked as
   * it lands; `settleOnError` false when a spooled copy stays to be sent under the same number.
   */
  private async send(seq: number, mutations: readonly LedgerMutation[], applyToView: boolean | (() => boolean) = true, settleOnError = true): Promise<void> {
    const pending = this.pending.get(seq);
    if (!pending) throw new Error('ledger write not tracked');
    let id: string | null;
    try {
      id = String(
        await this.redis.eval(APPEND_SCRIPT, 2, this.metaKey, this.journalKey, this.writerId, String(seq), JSON.stringify(mutations), randomUUID(), FORMAT),
      );
    } catch (error) {
      if (!settleOnError) throw error;
      // Not stored (as far as we know): whatever the tail delivered meanwhile stays as the stream has it.
      this.settle(seq);
      this.deliver(this.reconcile(new Set(pending.keys)));
      throw error;
    }
    pending.id = id;
    // Durable now: the Ledger applies it as this resolves (it may already have arrived through the tail).
    // Before the settling below: a reconcile must find it in `view` (else it is delivered as another replica's).
    if (typeof applyToView === 'function' ? applyToView() : applyToView) for (const mutation of mutations) this.view.apply(mutation);
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
      await this.redis
        .multi()
        .hset(snapshotKey, ...fields)
        .pexpire(snapshotKey, OLD_SNAPSHOT_TTL_MS)
        .exec();
    }
    const installed = await this.redis.eval(
      COMMIT_SNAPSHOT_SCRIPT,
      3,
      this.metaKey,
      this.journalKey,
      snapshotKey,
      this.epoch,
      at,
      String(claims.length),
      String(OLD_SNAPSHOT_TTL_MS),
    );
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
      let index = new ClaimIndex();
      let complete = await this.readSnapshot(meta, index);
      let snapshotLost = false;
      if (!complete && (await this.snapshotLost(meta))) {
        this.recordDamage(
          `snapshot key ${meta.snapshotKey} is missing: the ${meta.claims} claims it held (every ban recorded up to journal entry ${meta.snapshotId}) are lost`,
        );
        index = new ClaimIndex();
        complete = true;
        snapshotLost = true;
      }
      // The snapshot was replaced and expired under us: start over from the new one.
      if (!complete) continue;
      const applied = new Map<string, number>();
      const tombstones = new Map<string, number>();
      let lastId = meta.snapshotId;
      let records = 0;
      let entries = meta.entries;
      for (;;) {
        const page = await this.redis.xrange(this.journalKey, `(${lastId}`, '+', 'COUNT', this.entriesPerRead.count);
        const full = this.entriesPerRead.after(page);
        for (const [id, fields] of page) {
          lastId = id;
          const entry = this.decodeEntry(id, fields, strict);
          if (entry === null || isDuplicate(applied, entry)) continue;
          for (const mutation of entry.mutations) applyNoting(index, tombstones, mutation);
          records += entry.mutations.length;
          entries = Math.max(entries, entry.ordinal ?? 0);
        }
        if (!full) break;
      }
      const after = await this.readMeta();
      // Trimmed past our snapshot while we read: entries may be missing.
      if (after === null || after.epoch !== meta.epoch || compareIds(after.trimmedBelow, meta.snapshotId) > 0) continue;
      return { index, applied, lastId, epoch: meta.epoch, snapshotId: meta.snapshotId, records, entries, tombstones, snapshotLost };
    }
    throw new UserFacingError(
      `the shared ledger in Redis (${this.metaKey}) changed under every one of ${LOAD_ATTEMPTS} attempts to read it; is another edgeban compacting in a loop?`,
    );
  }

  private installState(state: LoadedState): void {
    this.mirror = state.index;
    this.applied = state.applied;
    this.lastId = state.lastId;
    this.epoch = state.epoch;
    this.snapshotId = state.snapshotId;
    this.recordsSinceSnapshot = state.records;
    this.seenEntries = state.entries;
    this.tombstones = state.tombstones;
    this.rolledBack = false;
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
    if ((await this.redis.exists(meta.snapshotKey)) === 1) return false;
    const unlinked = await this.redis.eval(UNLINK_LOST_SNAPSHOT_SCRIPT, 2, this.metaKey, meta.snapshotKey, meta.epoch);
    return unlinked === 1;
  }

  private recordDamage(problem: string): void {
    this.logger.error(
      { key: this.metaKey },
      `the shared ledger in Redis was damaged: ${problem}. Every readable ban was kept; bans that were lost are no longer known to edgeban: their firewall entries count as foreign until removed or re-banned.`,
    );
    this.damageReport ??= { at: Date.now(), problems: [], movedAside: [], keptClaims: 0 };
    this.damageReport.problems.push(problem);
  }

  /**
   * Applies the snapshot's claims to `index` page by page, as read (no array of them all); false
   * when it vanished or was replaced meanwhile (read again, into a fresh index).
   */
  private async readSnapshot(meta: Meta, index: ClaimIndex): Promise<boolean> {
    if (meta.snapshotKey === '' || meta.claims === 0) return true;
    let claims = 0;
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(meta.snapshotKey, cursor, 'COUNT', PAGE);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const parsed = BanClaimSchema.safeParse(parseJson(flat[i + 1]!));
        if (!parsed.success) throw new RedisLedgerCorruptError(meta.snapshotKey, `field ${flat[i]}`, 'not a ban record');
        index.apply({ op: 'ban', claim: parsed.data });
        claims++;
      }
    } while (cursor !== '0');
    return claims === meta.claims;
  }

  private decodeEntry(id: string, fields: readonly string[], strict: boolean): Entry | null {
    const object: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) object[fields[i]!] = fields[i + 1]!;
    const entry = EntrySchema.safeParse(object);
    const raw = entry.success ? parseJson(entry.data.m) : null;
    const mutations = entry.success ? z.array(LedgerMutationSchema).safeParse(Array.isArray(raw) ? raw.filter((m) => !this.isUnknownOp(id, m)) : raw) : null;
    if (entry.success && mutations?.success) return { writer: entry.data.w, seq: entry.data.n, mutations: mutations.data, ordinal: entry.data.e ?? null };
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
    if (typeof op !== 'string' || KNOWN_MUTATION_OPS.has(op)) return false;
    this.unknownSkipped.count++;
    this.unknownSkipped.last = `entry ${id}, op ${JSON.stringify(op.slice(0, 40))}`;
    this.logger.warn(
      { key: this.journalKey, entry: id, op: op.slice(0, 40) },
      'skipped a shared-ledger mutation of a type this version does not know (written by a newer edgeban?); upgrade this replica',
    );
    return true;
  }

  /** Mutations of unknown types skipped so far (status). */
  unknownMutations(): { count: number; last: string | null } {
    return { ...this.unknownSkipped };
  }

  private startTail(): void {
    if (this.tailing || this.closed || !this.loaded) return;
    this.tailing = this.tail().finally(() => {
      this.tailing = null;
    });
  }

  private async tail(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const from = this.lastId;
        const reply = await this.untilClosed(
          this.reader.xread('COUNT', this.entriesPerRead.count, 'BLOCK', this.blockMs, 'STREAMS', this.journalKey, from) as Promise<StreamReply | null>,
        );
        if (reply?.[0]) this.entriesPerRead.after(reply[0][1]);
        if (this.closed) break;
        // Checked after the read: trimming and the epoch only move forward, so a meta that is
        // fine now was fine when the read ran.
        const meta = await this.untilClosed(this.readMeta());
        if (this.closed) break;
        if (this.lostData(meta) || compareIds(meta!.trimmedBelow, from) > 0) {
          await this.resync(meta, this.lostData(meta));
        } else {
          if (compareIds(meta!.snapshotId, this.snapshotId) > 0) {
            // Another replica compacted: its snapshot covers what this one counted.
            this.snapshotId = meta!.snapshotId;
            this.recordsSinceSnapshot = 0;
          }
          if (reply?.[0]) this.process(reply[0][1]);
          if (this.rolledBack) await this.resync(await this.readMeta(), true);
        }
        if (failures > 0) this.logger.info('shared ledger reads from Redis again');
        failures = 0;
        this.resolveWaiters();
        this.replaySoon();
      } catch (error) {
        if (this.closed) break;
        if (error instanceof RedisLedgerCorruptError) this.logger.error({ err: error.message }, 'shared ledger unreadable');
        else if (failures === 0)
          this.logger.warn(
            { err: errorMessage(error) },
            'cannot read the shared ledger from Redis; retrying (changes by other replicas arrive once it answers)',
          );
        failures++;
        await this.sleep(Math.min(5_000, 50 * 2 ** Math.min(failures, 7)));
      }
    }
  }

  private process(entries: ReadonlyArray<[id: string, fields: string[]]>): void {
    const touched = new Set<string>();
    for (const [id, fields] of entries) {
      // Already read (the tail and a replay's catch-up both read the journal).
      if (compareIds(id, this.lastId) <= 0) continue;
      const entry = this.decodeEntry(id, fields, false);
      if (entry?.ordinal != null) {
        if (entry.ordinal <= this.seenEntries) {
          // Numbered as one already seen: Redis went back to an older state, then was written to again.
          this.rolledBack = true;
          break;
        }
        this.seenEntries = entry.ordinal;
      }
      this.lastId = id;
      if (entry === null || isDuplicate(this.applied, entry)) continue;
      for (const mutation of entry.mutations) {
        applyNoting(this.mirror, this.tombstones, mutation);
        touched.add(addressKeyOf(mutation));
      }
      this.recordsSinceSnapshot += entry.mutations.length;
      if (entry.writer === this.writerId) this.settle(entry.seq);
    }
    this.deliver(this.reconcile(touched));
  }

  /**
   * The journal is not continuous from our position any more: reload. When Redis lost data this
   * replica had seen (`lost`: emptied, recreated, gone back to an older snapshot, or its snapshot
   * vanished), the claims this replica holds in a later version than Redis now has are written
   * back, so no ban is forgotten (its alias entry would turn foreign) and no unban undone; an end
   * recorded meanwhile that matched nothing wins over an older claim written back.
   */
  private async resync(meta: Meta | null, lost: boolean): Promise<void> {
    // The tail and a replay may both find the journal discontinuous: one reload at a time.
    while (this.resyncing) await this.resyncing;
    const done = this.resyncNow(meta, lost);
    this.resyncing = done
      .catch(() => undefined)
      .finally(() => {
        this.resyncing = null;
      });
    return done;
  }

  private async resyncNow(meta: Meta | null, lost: boolean): Promise<void> {
    if (meta === null || meta.epoch !== this.epoch)
      this.logger.error(
        'the shared ledger in Redis was emptied (restarted without persistence, or flushed); writing back the claims this replica knows that it lacks',
      );
    else if (lost)
      this.logger.error(
        { seenEntries: this.seenEntries, redisEntries: meta.entries },
        'the shared ledger in Redis went back in time (restored from an older snapshot?); writing back the changes this replica saw that it lost',
      );
    else this.logger.warn('this replica fell behind a compaction of the shared ledger; reloading it');
    const state = await this.readState(false);
    this.installState(state);
    lost ||= state.snapshotLost;
    for (const [seq, pending] of this.pending) {
      if (pending.id !== null && compareIds(pending.id, this.lastId) <= 0) this.settle(seq);
    }
    if (lost) {
      const missing: LedgerMutation[] = [];
      for (const claim of this.view.all()) {
        const current = this.mirror.get(claim.target, claim.address, claim.jail);
        if (current !== undefined && supersedes(current, claim)) continue;
        const endedAt = current === undefined ? this.tombstoneFor(claim) : null;
        missing.push({ op: 'ban', claim: endedAt !== null && claim.endedAt === null ? { ...claim, endedAt } : claim });
      }
      if (missing.length > 0) this.logger.warn({ claims: missing.length }, 'writing back to Redis the claims it lost');
      // Not applied to `view` here: what comes back through the journal reaches the Ledger as a change
      // (a claim written back ended by a tombstone must end in the Ledger too).
      for (let i = 0; i < missing.length; i += PAGE) {
        const batch = missing.slice(i, i + PAGE);
        await this.send(this.track(batch), batch, false);
      }
    }
    const everything = new Set<string>();
    for (const claim of this.view.all()) everything.add(addressKey(claim.target, claim.address));
    for (const claim of this.mirror.all()) everything.add(addressKey(claim.target, claim.address));
    this.deliver(this.reconcile(everything));
  }

  /** When an end that matched nothing (Redis had lost the claim) ended `claim` after it was made, or null. */
  private tombstoneFor(claim: BanClaim): number | null {
    const at = Math.max(
      this.tombstones.get(claimKey(claim.target, claim.address, '*')) ?? -Infinity,
      this.tombstones.get(claimKey(claim.target, claim.address, claim.jail)) ?? -Infinity,
    );
    return at >= claim.bannedAt ? at : null;
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
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private connectionLost(error: Error): void {
    this.lastError = errorMessage(error);
    if (this.closed || this.connectionDown) return;
    this.connectionDown = true;
    this.logger.warn({ err: errorMessage(error) }, 'lost the connection to Redis (shared ledger); reconnecting');
  }

  private connectionBack(): void {
    this.replaySoon();
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
  /** The highest entry number read (or the meta's count when read). */
  entries: number;
  tombstones: Map<string, number>;
  /** The snapshot named by the meta was gone: its claims are lost from Redis. */
  snapshotLost: boolean;
}

/** Applies a mutation; an end that matched no claim (lost from Redis?) is kept as a tombstone. */
function applyNoting(index: ClaimIndex, tombstones: Map<string, number>, mutation: LedgerMutation): void {
  if (index.apply(mutation) || mutation.op !== 'end') return;
  const key = claimKey(mutation.target, mutation.address, mutation.jail ?? '*');
  tombstones.set(key, Math.max(tombstones.get(key) ?? -Infinity, mutation.at));
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

function addressKeyOf(mutation: LedgerMutation): string {
  return mutation.op === 'ban' ? addressKey(mutation.claim.target, mutation.claim.address) : addressKey(mutation.target, mutation.address);
}

function sameClaim(a: BanClaim, b: BanClaim): boolean {
  return a.origin === b.origin && a.bannedAt === b.bannedAt && a.expiresAt === b.expiresAt && a.endedAt === b.endedAt && a.banCount === b.banCount;
}

function copyIndex(source: ClaimIndex): ClaimIndex {
  const copy = new ClaimIndex();
  for (const claim of source.all()) copy.adopt(claim);
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
