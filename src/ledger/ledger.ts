import TinyQueue from 'tinyqueue';
import { errorMessage } from '../util/errors.ts';
import type { Logger } from '../logging/logger.ts';
import { parsePfAddress } from '../net/address.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { addressKey, claimEnd, claimKey, isClaimActive, type BanClaim, type LedgerMutation } from './ban-claim.ts';
import { ClaimIndex } from './claim-index.ts';
import type { LedgerDamage, LedgerStore } from './ledger-store.ts';

export interface BanRequest {
  target: string;
  /** Any spelling; stored in pf's. Throws InvalidAddressError before anything is written. */
  address: string;
  jail: string;
  origin: BanClaim['origin'];
  /** Ban length in ms; null = permanent. */
  durationMs: number | null;
}

export interface UnbanRequest {
  address: string;
  /** Only this target; all targets when omitted. */
  target?: string;
  /** Only this jail's claim; every claim on the address when omitted. */
  jail?: string;
}

/** An address whose desired state in a target may have changed. */
export interface LedgerChange {
  target: string;
  address: string;
}

export interface LedgerOptions {
  store: LedgerStore;
  clock: Clock;
  logger: Logger;
  /** How long ended claims are kept (repeat-offender counts; removal of ended bans after a long outage). */
  historyRetentionMs?: number;
}

const DEFAULT_HISTORY_RETENTION_MS = 7 * 24 * 3600 * 1000;
// setTimeout cannot wait longer than 2^31-1 ms; far expiries are re-armed.
const MAX_TIMER_MS = 6 * 3600 * 1000;

/**
 * A claim whose expiry is awaited: the claim itself (claims are never changed in place, so its
 * `expiresAt` stays what it was when queued), not an object per ban made for the queue (an object
 * and a boxed number each, 64 bytes per ban at 100,000 bans).
 */
type ExpiryEntry = BanClaim & { expiresAt: number };

/**
 * The single source of truth for what must be banned. Mutations are written durably, and only
 * then applied in memory and announced to listeners (the reconcilers), so nothing reaches a
 * firewall, or is shown by the CLI, that a crash or a failed write could forget. Expiry needs no
 * write: a claim past `expiresAt` is simply inactive, and a timer announces the change when that
 * moment comes.
 */
export class Ledger {
  private readonly store: LedgerStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly historyRetentionMs: number;
  private readonly index = new ClaimIndex();
  /** Bans being written: a repeat ban made meanwhile counts them (memory holds only what is durable). */
  private readonly staged = new Map<string, BanClaim>();
  private readonly listeners = new Set<(changes: readonly LedgerChange[]) => void>();
  private expiries = new TinyQueue<ExpiryEntry>([], byExpiry);
  private expiryTimer: TimerHandle | null = null;
  private expiryTimerAt = Infinity;
  private unsubscribeRemote: () => void = () => {};
  private compacting: Promise<void> | null = null;
  /** Commits whose write has not settled (or whose settling is not yet applied to memory). */
  private inFlight = 0;
  private closed = false;

  private constructor(options: LedgerOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.logger = options.logger;
    this.historyRetentionMs = options.historyRetentionMs ?? DEFAULT_HISTORY_RETENTION_MS;
  }

  static async open(options: LedgerOptions): Promise<Ledger> {
    const ledger = new Ledger(options);
    const now = options.clock.now();
    const awaited: ExpiryEntry[] = [];
    for (const claim of await options.store.load()) {
      ledger.index.adopt(claim);
      if (awaitsExpiry(claim, now)) awaited.push(claim);
    }
    // Ordered in one go: pushing 100,000 claims one by one grows (and copies) the queue's array step by step.
    ledger.expiries = new TinyQueue(awaited, byExpiry);
    ledger.unsubscribeRemote = options.store.onRemoteMutations((mutations) => ledger.applyRemote(mutations));
    ledger.armExpiryTimer();
    return ledger;
  }

  /** Records a ban; a repeat ban by the same jail extends it and counts the repeat. */
  async ban(request: BanRequest): Promise<BanClaim> {
    const [claim] = await this.banMany([request]);
    return claim!;
  }

  /** Records many bans with one durable write. */
  async banMany(requests: readonly BanRequest[]): Promise<BanClaim[]> {
    const now = this.clock.now();
    const claims = requests.map((request) => {
      const address = parsePfAddress(request.address).text;
      const key = claimKey(request.target, address, request.jail);
      const previous = this.staged.get(key) ?? this.index.get(request.target, address, request.jail);
      const claim: BanClaim = {
        target: request.target,
        address,
        jail: request.jail,
        origin: request.origin,
        bannedAt: now,
        expiresAt: request.durationMs === null ? null : now + request.durationMs,
        endedAt: null,
        banCount: (previous?.banCount ?? 0) + 1,
      };
      this.staged.set(key, claim);
      return claim;
    });
    try {
      await this.commit(claims.map((claim) => ({ op: 'ban', claim })));
    } finally {
      for (const claim of claims) {
        const key = claimKey(claim.target, claim.address, claim.jail);
        if (this.staged.get(key) === claim) this.staged.delete(key);
      }
    }
    for (const claim of claims) this.trackExpiry(claim);
    this.armExpiryTimer();
    return claims;
  }

  /** Ends matching active claims now; returns how many ended. */
  async unban(request: UnbanRequest): Promise<number> {
    const address = parsePfAddress(request.address).text;
    await this.catchUpBeforeDeciding('unban');
    const now = this.clock.now();
    const targets = request.target === undefined ? this.index.targets() : [request.target];
    const mutations: LedgerMutation[] = [];
    let ended = 0;
    for (const target of targets) {
      const active = this.index.claimsOf(target, address).filter((c) => isClaimActive(c, now) && (request.jail === undefined || c.jail === request.jail));
      if (active.length === 0) continue;
      ended += active.length;
      mutations.push({ op: 'end', target, address, jail: request.jail ?? null, at: now });
    }
    await this.commit(mutations);
    return ended;
  }

  /** Ends every active claim (of one target, or all). */
  async unbanAll(target?: string): Promise<number> {
    await this.catchUpBeforeDeciding('unban');
    const now = this.clock.now();
    const mutations: LedgerMutation[] = [];
    for (const t of target === undefined ? this.index.targets() : [target]) {
      for (const address of this.index.addresses(t)) {
        if (this.index.isActive(t, address, now)) mutations.push({ op: 'end', target: t, address, jail: null, at: now });
      }
    }
    await this.commit(mutations);
    return mutations.length;
  }

  isActive(target: string, address: string): boolean {
    return this.index.isActive(target, address, this.clock.now());
  }

  /** Whether edgeban ever banned this address in this target (active or history): such entries are edgeban's to remove. */
  isKnown(target: string, address: string): boolean {
    return this.index.isKnown(target, address);
  }

  activeAddresses(target: string): Set<string> {
    const now = this.clock.now();
    const active = new Set<string>();
    for (const address of this.index.addresses(target)) if (this.index.isActive(target, address, now)) active.add(address);
    return active;
  }

  /** Addresses banned now, each counted once per target however many jails claim it (no list built: status asks it at 100,000 bans). */
  activeCount(): number {
    const now = this.clock.now();
    let count = 0;
    for (const target of this.index.targets()) {
      for (const address of this.index.addresses(target)) if (this.index.isActive(target, address, now)) count++;
    }
    return count;
  }

  activeClaims(target?: string): BanClaim[] {
    const now = this.clock.now();
    const claims: BanClaim[] = [];
    for (const claim of this.index.all()) {
      if ((target === undefined || claim.target === target) && isClaimActive(claim, now)) claims.push(claim);
    }
    return claims;
  }

  /** Mutations of unknown types the store skipped (for status), or null when none. */
  unknownMutations(): { count: number; last: string | null } | null {
    const skipped = this.store.unknownMutations?.();
    return skipped && skipped.count > 0 ? skipped : null;
  }

  /** Why the shared ledger cannot be reached now (its server named), or null while it can (always null for the file ledger). */
  unreachable(): string | null {
    return this.store.unreachable?.() ?? null;
  }

  /** Damage the store found and recovered from at start-up (for status), or null. */
  damage(): LedgerDamage | null {
    return this.store.damage();
  }

  claimsOf(target: string, address: string): readonly BanClaim[] {
    return this.index.claimsOf(target, address);
  }

  targets(): string[] {
    return this.index.targets();
  }

  onChange(listener: (changes: readonly LedgerChange[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * An unban decides from the claims this replica knows: with a shared store, it first takes in
   * what other replicas wrote, or a ban made on another replica a moment ago would not be ended.
   * With the store unreachable it decides from what it knows (its writes are spooled) and says so.
   */
  private async catchUpBeforeDeciding(what: string): Promise<void> {
    const unreachable = this.unreachable();
    if (unreachable !== null) {
      // Known down: no wait for a catch-up that cannot finish; the change is spooled at once.
      this.logger.warn({ reason: unreachable }, `${what}: the shared ledger is unreachable; deciding from the bans this replica knows`);
      return;
    }
    try {
      await this.sync();
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, `${what}: the shared ledger could not be read to its end; deciding from the bans this replica knows`);
    }
  }

  /** Waits until other replicas' writes made so far are applied here (shared stores; immediate for the file store). */
  sync(): Promise<void> {
    return this.store.catchUp?.() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.expiryTimer?.cancel();
    this.unsubscribeRemote();
    await this.compacting;
    await this.store.close();
  }

  /**
   * Memory and listeners change only once the store has made the mutations durable: a write that
   * fails leaves no trace (the store's contract), so nothing is enforced that a restart would
   * forget. Commits settle in the order they were made, so applying them as they settle keeps
   * the store's order.
   */
  private async commit(mutations: LedgerMutation[]): Promise<void> {
    if (mutations.length === 0) return;
    this.inFlight++;
    try {
      await this.store.append(mutations);
    } finally {
      this.inFlight--;
    }
    const changes: LedgerChange[] = [];
    for (const mutation of mutations) {
      if (this.index.apply(mutation)) changes.push(changeOf(mutation));
    }
    this.emit(changes);
    this.maybeCompact();
  }

  private applyRemote(mutations: readonly LedgerMutation[]): void {
    const changes: LedgerChange[] = [];
    for (const mutation of mutations) {
      if (!this.index.apply(mutation)) continue;
      changes.push(changeOf(mutation));
      if (mutation.op === 'ban') this.trackExpiry(mutation.claim);
    }
    this.armExpiryTimer();
    this.emit(changes);
  }

  private emit(changes: readonly LedgerChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.logger.error({ err: error }, 'ledger change listener failed');
      }
    }
  }

  /**
   * Compacts only when memory holds everything the store has written: with a write still in
   * flight, the snapshot would cover records whose mutations the claims handed over lack.
   */
  private maybeCompact(): void {
    if (this.compacting || this.inFlight > 0 || !this.store.wantsCompaction()) return;
    const cutoff = this.clock.now() - this.historyRetentionMs;
    let purged = 0;
    for (const claim of [...this.index.all()]) {
      const end = claimEnd(claim);
      if (end !== null && end < cutoff) {
        this.index.apply({ op: 'purge', target: claim.target, address: claim.address, jail: claim.jail });
        purged++;
      }
    }
    this.compacting = this.store
      .compact([...this.index.all()])
      .then(() => this.logger.debug({ claims: this.index.size, purged }, 'ledger compacted'))
      .catch((error: unknown) => this.logger.error({ err: error }, 'ledger compaction failed; the journal keeps growing until it succeeds'))
      .finally(() => {
        this.compacting = null;
      });
  }

  /** Queues the expiry of the claim as the index holds it (one object per ban, not a second copy of the one handed in). */
  private trackExpiry(claim: BanClaim): void {
    const held = this.index.get(claim.target, claim.address, claim.jail);
    if (held !== undefined && awaitsExpiry(held, this.clock.now())) this.expiries.push(held);
  }

  private armExpiryTimer(): void {
    if (this.closed) return;
    const next = this.expiries.peek();
    if (!next) return;
    if (this.expiryTimer && this.expiryTimerAt <= next.expiresAt) return;
    this.expiryTimer?.cancel();
    const delay = Math.min(Math.max(0, next.expiresAt - this.clock.now()), MAX_TIMER_MS);
    this.expiryTimerAt = this.clock.now() + delay;
    this.expiryTimer = this.clock.setTimer(delay, () => this.fireExpiries());
  }

  private fireExpiries(): void {
    this.expiryTimer = null;
    this.expiryTimerAt = Infinity;
    const now = this.clock.now();
    const changes = new Map<string, LedgerChange>();
    for (let next = this.expiries.peek(); next && next.expiresAt <= now; next = this.expiries.peek()) {
      this.expiries.pop();
      // A later ban may have extended it: announce only what really stopped.
      if (!this.index.isActive(next.target, next.address, now))
        changes.set(addressKey(next.target, next.address), { target: next.target, address: next.address });
    }
    this.emit([...changes.values()]);
    this.armExpiryTimer();
  }
}

function awaitsExpiry(claim: BanClaim, now: number): claim is ExpiryEntry {
  return claim.expiresAt !== null && claim.endedAt === null && claim.expiresAt > now;
}

function byExpiry(a: ExpiryEntry, b: ExpiryEntry): number {
  return a.expiresAt - b.expiresAt;
}

function changeOf(mutation: LedgerMutation): LedgerChange {
  return mutation.op === 'ban' ? { target: mutation.claim.target, address: mutation.claim.address } : { target: mutation.target, address: mutation.address };
}
