import pRetry from 'p-retry';
import type { ForeignPolicy } from '../config/env.ts';
import { isClaimActive } from '../ledger/ban-claim.ts';
import type { Ledger, LedgerChange } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import { parsePfAddress } from '../net/address.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { errorMessage as describe } from '../util/errors.ts';
import { TargetError, type DesiredEntry, type EdgeTarget, type ListedEntry } from './edge-target.ts';
import { planPass, type PassPlan } from './plan-pass.ts';

export interface RetryPolicy {
  retries: number;
  minTimeoutMs: number;
  maxTimeoutMs: number;
}

export interface TargetReconcilerOptions {
  /** The ledger target whose bans this backend list carries. */
  ledgerTarget: string;
  /** The list's name for status and metrics (an OPNsense alias, a MikroTik address list…). */
  list: string;
  target: EdgeTarget;
  ledger: Ledger;
  clock: Clock;
  logger: Logger;
  intervalMs: number;
  /** add/delete calls in flight at once. */
  concurrency: number;
  foreignPolicy: ForeignPolicy;
  adoptBantimeMs: number;
  /**
   * Why a backend entry must not be adopted (the ban guard's verdict: the gateway, a private range,
   * a network wider than a host…), or null. Adoption is a way into the ledger like any other.
   */
  adoptionRefusal: (address: string) => string | null;
  /** Drop a fresh ban's connections where the backend can (EDGEBAN_KILL_STATES). */
  killConnections: boolean;
  retry?: RetryPolicy;
}

/** `standby`: another replica holds this target's leader lease and enforces it (cluster mode). */
export type TargetState = 'starting' | 'syncing' | 'in-sync' | 'unreachable' | 'degraded' | 'stopped' | 'standby';

/** What a pass found and did, as reported (status, `edgeban reconcile`). */
export type PassOutline = Pick<PassPlan, 'add' | 'remove' | 'foreign' | 'inAlias' | 'desired'>;

export interface PassResult extends PassOutline {
  ok: boolean;
  at: number;
  /** Added with success but absent on the verifying list (pf dropped them: table-entries limit?). */
  unconfirmed: string[];
  /** Ledger bans this backend cannot hold (its `canonical` refused them): reported, never silently skipped. */
  unholdable: string[];
  error: string | null;
}

export interface TargetStatus {
  id: string;
  /** Backend kind (`opnsense`, `memory`, …). */
  kind: string;
  /** The list's name (TargetReconcilerOptions.list). */
  alias: string;
  ledgerTarget: string;
  state: TargetState;
  /** The OPNsense alias type as check() last read it, else null. */
  aliasType: string | null;
  inAlias: number | null;
  pending: number;
  rejected: string[];
  killStates: boolean;
  /**
   * `kind`: the backend's reason (TargetError.reason: `auth`, `alias-missing`, `timeout`…),
   * `internal`, or `not-stored` (adds answered success that the verifying list did not find).
   */
  lastError: { kind: string; message: string; at: number } | null;
  lastPass: PassResult | null;
  /** The last full pass that finished without an error (the list then held what the ledger wanted, or was reported unconfirmed). */
  lastSuccess: PassResult | null;
  /** Full passes finished without an error since this reconciler was built. */
  successfulPasses: number;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 4, minTimeoutMs: 200, maxTimeoutMs: 5_000 };
const MAX_REJECTED_SHOWN = 100;
/** How much earlier than sent a backend may report an entry's end (whole seconds printed, a list's duration). */
const LISTED_EXPIRY_SLACK_MS = 5_000;

/**
 * Converges one backend list (an EdgeTarget) toward the ledger, level-triggered: every decision
 * compares what the ledger wants now with what the backend holds, so retries, outages, a firewall
 * reboot and an edgeban restart all take the same path. A full pass (list everything, plan, fix)
 * runs on start, every interval and after errors; between passes each ledger change sends only
 * its own add or delete, through a bounded pool with retries, one operation per address at a
 * time. It never flushes. It knows no backend: what to fix on one comes in the backend's messages.
 */
export class TargetReconciler {
  private readonly options: TargetReconcilerOptions;
  private readonly target: EdgeTarget;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;
  private state: TargetState = 'starting';
  /** What the backend holds (canonical spelling → its ownership mark), as far as edgeban knows; null until the first list. */
  private remote: Map<string, boolean | null> | null = null;
  /** Canonical addresses whose backend entry may not match the ledger, in arrival order. */
  private readonly dirty = new Set<string>();
  /** Addresses dirtied by a new ban (not a restore): their connections are killed after the add. */
  private readonly freshBans = new Set<string>();
  private readonly inFlight = new Set<string>();
  private readonly rejected = new Set<string>();
  /** Canonical spelling → the ledger addresses spelled otherwise that map to it (a backend that widens or respells). */
  private readonly spellings = new Map<string, Set<string>>();
  /** Ledger addresses this backend cannot hold, already logged. */
  private readonly unholdableReported = new Set<string>();
  /**
   * Native-expiry backends only: the expiry each entry was last sent with (null: permanent), so a
   * ban that grows is sent again, or the backend drops the entry at the old end. Absent when not
   * known (an entry listed but not sent by this process).
   */
  private readonly sentExpiry = new Map<string, number | null>();
  /** Results of adds/deletes that completed while a list was being read (the list may predate them). */
  private touchedDuringList: Map<string, boolean> | null = null;
  private blocked = false;
  private killEnabled: boolean;
  /** The last check()'s facts and warnings (each warning logged once while it lasts). */
  private facts: Record<string, string> = {};
  private checkWarnings = new Set<string>();
  /** Why the last full pass found adds the backend did not store; the target stays degraded until a pass finds them stored. */
  private notStored: string | null = null;
  /** Foreign entries already reported as not adoptable (logged once each). */
  private readonly unadoptableReported = new Set<string>();
  private lastError: TargetStatus['lastError'] = null;
  private lastPass: PassResult | null = null;
  private lastSuccess: PassResult | null = null;
  private successfulPasses = 0;
  private passRunning: Promise<PassResult> | null = null;
  private passTimer: TimerHandle | null = null;
  private consecutiveFailures = 0;
  private unsubscribe: () => void = () => {};
  private stopped = false;
  private waiters: Array<() => void> = [];
  private watched: { addresses: Set<string>; resolve: () => void } | null = null;

  constructor(options: TargetReconcilerOptions) {
    this.options = options;
    this.target = options.target;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.killEnabled = options.killConnections && options.target.capabilities.killConnections && options.target.killConnections !== undefined;
    this.log = options.logger.child({ target: options.target.id });
  }

  /** Subscribes to the ledger and runs the first full pass (which restores everything missing). */
  start(): Promise<PassResult> {
    this.stopped = false;
    if (this.state === 'standby' || this.state === 'stopped') this.state = 'starting';
    this.unsubscribe();
    this.unsubscribe = this.options.ledger.onChange((changes) => this.onLedgerChange(changes));
    // Leader again while the pass begun before standing by still runs: a fresh pass follows it.
    const running = this.passRunning;
    return running ? running.then(() => this.runFullPass()) : this.runFullPass();
  }

  async stop(): Promise<void> {
    this.halt('stopped');
  }

  /** Cluster follower: sends nothing (no passes, adds, deletes) until `start` again; the ledger is still recorded. */
  standBy(): void {
    this.halt('standby');
  }

  private halt(state: 'stopped' | 'standby'): void {
    this.stopped = true;
    this.state = state;
    this.unsubscribe();
    this.passTimer?.cancel();
    this.passTimer = null;
    this.watched?.resolve();
    this.notifyIdle();
  }

  // A method, not a field test: the state changes while a pass awaits.
  private isStandingBy(): boolean {
    return this.state === 'standby';
  }

  /** A pass asked of a follower: nothing is listed or sent. */
  private standingBy(at: number): PassResult {
    return {
      add: [],
      remove: [],
      foreign: [],
      inAlias: this.remote?.size ?? 0,
      desired: 0,
      ok: false,
      at,
      unconfirmed: [],
      unholdable: [],
      error: 'standby: another replica holds the leader lease and enforces this target',
    };
  }

  status(): TargetStatus {
    return {
      id: this.target.id,
      kind: this.target.kind,
      alias: this.options.list,
      ledgerTarget: this.options.ledgerTarget,
      state: this.state,
      aliasType: this.facts.aliasType ?? null,
      inAlias: this.remote?.size ?? null,
      pending: this.pendingCount(),
      rejected: [...this.rejected].slice(0, MAX_REJECTED_SHOWN),
      killStates: this.killEnabled,
      lastError: this.lastError,
      lastPass: this.lastPass,
      lastSuccess: this.lastSuccess,
      successfulPasses: this.successfulPasses,
    };
  }

  /** Resolves once no add/delete is queued or in flight and no pass runs (or the target is blocked). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Backend entries that are not edgeban's (no ownership mark, and the ledger knows nothing of
   * them), as of the last list and the changes edgeban made since: true when `address` is one.
   * `edgeban unban` says so.
   */
  holdsForeign(address: string): boolean {
    // A follower's view of the list is stale and it sends nothing: the leader answers for the target.
    if (this.isStandingBy() || this.remote === null) return false;
    const spelled = this.target.canonical(address) ?? address;
    if (!this.remote.has(spelled)) return false;
    return planPass([], [{ address: spelled, owned: this.remote.get(spelled) ?? null }], (a) => this.ledgerOwns(a), 'keep').foreign.length === 1;
  }

  /** Deletes a foreign entry on request (`edgeban unban --foreign`): there is no ban to end for it. */
  async removeForeign(address: string): Promise<void> {
    if (!this.holdsForeign(address)) return;
    const spelled = this.target.canonical(address) ?? address;
    await this.target.delete(spelled);
    this.markRemote(spelled, false);
  }

  /** What a full pass would do, without changing anything. */
  async plan(): Promise<PassOutline> {
    await this.checkTarget();
    return outline(this.diff(this.listedMap(await this.target.list())).plan);
  }

  /** Runs a full pass now (or joins the one running). */
  runFullPass(): Promise<PassResult> {
    if (this.passRunning) return this.passRunning;
    this.passTimer?.cancel();
    this.passTimer = null;
    this.passRunning = this.fullPass().finally(() => {
      this.passRunning = null;
      this.scheduleNextPass();
      this.notifyIdle();
    });
    return this.passRunning;
  }

  private async fullPass(): Promise<PassResult> {
    const at = this.options.clock.now();
    if (this.state === 'standby') return this.standingBy(at);
    if (this.state !== 'degraded' && this.state !== 'unreachable') this.state = 'syncing';
    let plan: PassPlan;
    let unholdable: string[];
    try {
      await this.checkTarget();
      this.touchedDuringList = new Map();
      const listed = await this.readList();
      for (const [address, present] of this.touchedDuringList) {
        if (present) listed.set(address, this.ownMark());
        else listed.delete(address);
      }
      this.remote = listed;
      // Gone from the backend (expired there, a reboot): whatever it was sent with no longer holds.
      for (const address of this.sentExpiry.keys()) if (!listed.has(address)) this.sentExpiry.delete(address);
      // A replica cut off from a shared ledger must not act on stale state: the pass fails instead.
      await this.syncLedger();
      ({ plan, unholdable } = this.diff(listed));
    } catch (error) {
      return this.isStandingBy() ? this.standingBy(at) : this.failPass(at, error);
    } finally {
      this.touchedDuringList = null;
    }
    // Leadership lost while listing: the new leader acts, not this replica.
    if (this.isStandingBy()) return this.standingBy(at);
    this.recover();
    if (plan.adopt.length > 0) await this.adopt(plan.adopt);
    // Bans that grew beyond what their entry was sent with (while standing by, or while edgeban was down) are sent again.
    const grown = this.target.capabilities.nativeExpiry ? [...(this.remote?.keys() ?? [])].filter((a) => this.expiryGrew(a)) : [];
    const work = [...plan.add, ...plan.remove, ...plan.deleteForeign, ...grown];
    for (const address of work) this.dirty.add(address);
    await this.drainAddresses(work);
    // Stood by (or stopped) while draining: the adds were never sent, so a verifying list would blame the backend.
    if (this.isStandingBy() || this.stopped) return this.standingBy(at);
    if (this.blocked) return this.failPass(at, this.lastError?.message ?? 'target became unreachable during the pass', plan);
    let unconfirmed: string[] = [];
    if (plan.add.length > 0) {
      // Success does not mean the backend stored it (pf's table-entries limit, pfctl errors): verify with a list.
      try {
        const listed = this.listedMap(await this.withRetry(() => this.target.list()));
        this.remote = listed;
        unconfirmed = plan.add.filter((a) => !listed.has(a) && this.wanted(a));
      } catch (error) {
        return this.failPass(at, error, plan);
      }
    }
    if (unconfirmed.length > 0) await this.reportNotStored(unconfirmed);
    else this.clearNotStored();
    this.consecutiveFailures = 0;
    this.lastPass = { ...outline(plan), ok: unconfirmed.length === 0 && unholdable.length === 0, at, unconfirmed, unholdable, error: null };
    this.lastSuccess = this.lastPass;
    this.successfulPasses++;
    if (this.dirty.size === 0 && this.inFlight.size === 0 && this.notStored === null && !this.stopped) this.state = 'in-sync';
    this.log.info(
      {
        added: plan.add.length,
        removed: plan.remove.length,
        foreign: plan.foreign.length,
        inAlias: this.remote?.size,
        unconfirmed: unconfirmed.length,
        unholdable: unholdable.length,
      },
      'full reconcile pass done',
    );
    return this.lastPass;
  }

  /** The pass plan against `listed`, and the ledger bans this backend cannot hold (reported). */
  private diff(listed: ReadonlyMap<string, boolean | null>): { plan: PassPlan; unholdable: string[] } {
    // The ledger's fresh Set of active bans becomes the desired set in place (at 100,000 bans a second
    // Set is megabytes of garbage per pass): most addresses are spelled as the backend spells them.
    const desired = this.options.ledger.activeAddresses(this.options.ledgerTarget);
    const unholdable: string[] = [];
    const respelled: string[] = [];
    for (const address of desired) {
      const spelled = this.spelled(address, true);
      if (spelled === address) continue;
      desired.delete(address);
      if (spelled === null) unholdable.push(address);
      else respelled.push(spelled);
    }
    for (const spelled of respelled) desired.add(spelled);
    return { plan: planPass(desired, listed, (a) => this.ledgerOwns(a), this.options.foreignPolicy), unholdable };
  }

  /** The backend's list as a map; the listed entries (one object each) are garbage once it returns, before the pass plans. */
  private async readList(): Promise<Map<string, boolean | null>> {
    const entries = await this.withRetry(() => this.target.list());
    this.learnExpiry(entries);
    return this.listedMap(entries);
  }

  /**
   * The listed entries as a map, each address keyed by the ledger's own copy of its text when the
   * ledger knows it: the map lives until the next pass, and a copy per entry parsed from the list
   * is 70 bytes per ban at 100,000 bans.
   */
  private listedMap(entries: readonly ListedEntry[]): Map<string, boolean | null> {
    const { ledger, ledgerTarget } = this.options;
    const map = new Map<string, boolean | null>();
    for (const entry of entries) map.set(ledger.claimsOf(ledgerTarget, entry.address)[0]?.address ?? entry.address, entry.owned);
    return map;
  }

  /**
   * The backend's spelling of a ledger address, or null when it cannot hold it: such a ban is
   * rejected for this target (status `rejected`, one error line each), never silently dropped.
   */
  private spelled(address: string, report: boolean): string | null {
    const spelled = this.target.canonical(address);
    if (spelled === null) {
      if (!report) return null;
      this.rejected.add(address);
      if (!this.unholdableReported.has(address)) {
        this.unholdableReported.add(address);
        this.log.error({ address }, 'this target cannot hold this ban (its spelling is refused by the backend): the address is not blocked here');
      }
      return null;
    }
    if (spelled !== address) {
      const set = this.spellings.get(spelled) ?? new Set<string>();
      set.add(address);
      this.spellings.set(spelled, set);
    }
    return spelled;
  }

  /** Whether the ledger wants this canonical address on the backend now. */
  private wanted(spelled: string): boolean {
    const { ledger, ledgerTarget } = this.options;
    if (ledger.isActive(ledgerTarget, spelled)) return true;
    for (const address of this.spellings.get(spelled) ?? []) if (ledger.isActive(ledgerTarget, address)) return true;
    return false;
  }

  /** Whether the ledger ever banned this canonical address here (ownership of unmarked entries). */
  private ledgerOwns(spelled: string): boolean {
    const { ledger, ledgerTarget } = this.options;
    if (ledger.isKnown(ledgerTarget, spelled)) return true;
    for (const address of this.spellings.get(spelled) ?? []) if (ledger.isKnown(ledgerTarget, address)) return true;
    return false;
  }

  /**
   * Takes the end a native-expiry backend reports for entries this process did not send (the
   * router's timeout) as what they were sent with, so a ban that grew while no reconciler sent
   * it (an offline `edgeban ban`, another replica's leadership) is sent again after a restart.
   * Foreign entries are not edgeban's to extend (the backend leaves them as they are).
   */
  private learnExpiry(entries: readonly ListedEntry[]): void {
    if (!this.target.capabilities.nativeExpiry) return;
    for (const entry of entries) {
      // What this process sent is exact (and uncapped: a ban longer than a router's longest timeout is not re-sent every pass).
      if (entry.expiresAt === undefined || entry.owned === false || this.sentExpiry.has(entry.address) || this.touchedDuringList?.has(entry.address)) continue;
      // The router prints whole seconds left, read a moment ago: a reported end up to that much early is no shorter ban.
      this.sentExpiry.set(entry.address, entry.expiresAt === null ? null : entry.expiresAt + LISTED_EXPIRY_SLACK_MS);
    }
  }

  /**
   * Whether the ban on a native-expiry backend entry now ends later than the entry was sent with
   * (a longer re-ban, bantime.increment, a permanent ban over a timed one): it must be sent again.
   */
  private expiryGrew(spelled: string): boolean {
    if (!this.target.capabilities.nativeExpiry || !this.remote?.has(spelled) || !this.wanted(spelled)) return false;
    const sent = this.sentExpiry.get(spelled);
    if (sent === undefined || sent === null) return false;
    const wanted = this.desiredEntry(spelled).expiresAt;
    return wanted === null || wanted > sent;
  }

  /** What is sent for a canonical address: its expiry for backends that expire entries themselves, and a comment naming the jails. */
  private desiredEntry(spelled: string): DesiredEntry {
    const { ledger, ledgerTarget, clock } = this.options;
    const now = clock.now();
    const claims = [spelled, ...(this.spellings.get(spelled) ?? [])].flatMap((a) => ledger.claimsOf(ledgerTarget, a)).filter((c) => isClaimActive(c, now));
    const permanent = claims.some((c) => c.expiresAt === null);
    const latest = permanent || claims.length === 0 ? null : Math.max(...claims.map((c) => c.expiresAt ?? 0));
    const jails = [...new Set(claims.map((c) => c.jail))].sort().join(',') || 'edgeban';
    return {
      address: spelled,
      expiresAt: this.target.capabilities.nativeExpiry ? latest : null,
      comment: `edgeban ${jails} until ${latest === null ? 'permanent' : new Date(latest).toISOString()}`,
    };
  }

  private async adopt(foreign: string[]): Promise<void> {
    const adoptable: string[] = [];
    const unadoptable: string[] = [];
    for (const entry of foreign) {
      if (!isBanSpelling(entry)) {
        if (!this.unadoptableReported.has(entry)) unadoptable.push(entry);
        continue;
      }
      const refusal = this.options.adoptionRefusal(entry);
      if (refusal === null) {
        adoptable.push(entry);
      } else if (!this.unadoptableReported.has(entry)) {
        // Refused by the ban guard: it stays where it is (kept, never deleted), but is not taken on as a ban.
        this.unadoptableReported.add(entry);
        this.log.warn(
          { entry, reason: refusal },
          'alias entry not adopted: edgeban would never ban it; it stays in the alias as it was, delete it there if it should not be blocked',
        );
      }
    }
    if (unadoptable.length > 0) {
      for (const entry of unadoptable) this.unadoptableReported.add(entry);
      this.log.warn(
        { count: unadoptable.length, sample: unadoptable.slice(0, 5) },
        'alias entries not adopted: not an address edgeban would ban as spelled (an IPv4-mapped ::ffff:a.b.c.d entry never matches IPv4 traffic); delete them, or ban the IPv4 addresses',
      );
    }
    if (adoptable.length === 0) return;
    await this.options.ledger.banMany(
      adoptable.map((address) => ({
        target: this.options.ledgerTarget,
        address,
        jail: 'adopted',
        origin: 'adopted' as const,
        durationMs: this.options.adoptBantimeMs,
      })),
    );
    this.log.info({ adopted: adoptable.length }, 'took over alias entries edgeban did not ban (EDGEBAN_FOREIGN_ENTRIES=adopt)');
  }

  /**
   * Adds answered success that the verifying list did not find: bans that do not reach the edge
   * while every call "succeeded". The target is degraded (health and /readyz fail) until a pass
   * finds them stored; the backend names the cause when it can.
   */
  private async reportNotStored(unconfirmed: string[]): Promise<void> {
    let cause = 'the backend accepted them but does not list them: see its logs';
    if (this.target.explainUnstored) {
      try {
        cause = await this.target.explainUnstored();
      } catch {
        // keep the generic cause
      }
    }
    const desired = this.options.ledger.activeAddresses(this.options.ledgerTarget);
    let stored = 0;
    for (const address of desired) if (this.remote?.has(this.target.canonical(address) ?? address)) stored++;
    const message = `${unconfirmed.length} adds to ${this.options.list} were answered done but not stored (e.g. ${unconfirmed.slice(0, 3).join(', ')}); it holds ${stored} of the ledger's ${desired.size} active bans: ${cause}`;
    const first = this.notStored === null;
    this.notStored = message;
    this.lastError = { kind: 'not-stored', message, at: this.options.clock.now() };
    if (!this.blocked) this.state = 'degraded';
    if (first) this.log.error({ count: unconfirmed.length, sample: unconfirmed.slice(0, 5) }, `enforcement degraded: ${message}`);
  }

  private clearNotStored(): void {
    if (this.notStored === null) return;
    this.notStored = null;
    if (this.lastError?.kind === 'not-stored') this.lastError = null;
    if (this.state === 'degraded' && !this.blocked && !this.stopped) this.state = 'syncing';
    this.log.info('the target stores every ban again: the adds it had dropped are listed now');
  }

  private onLedgerChange(changes: readonly LedgerChange[]): void {
    if (this.stopped) return;
    for (const change of changes) {
      if (change.target !== this.options.ledgerTarget) continue;
      this.rejected.delete(change.address);
      // Only an active ban the backend cannot hold is reported: an ended one needs nothing there.
      const spelled = this.spelled(change.address, this.options.ledger.isActive(change.target, change.address));
      if (spelled === null) continue;
      this.dirty.add(spelled);
      this.rejected.delete(spelled);
      if (this.wanted(spelled)) this.freshBans.add(spelled);
      else this.freshBans.delete(spelled);
    }
    this.pump();
  }

  /**
   * Starts workers for dirty addresses, up to the concurrency limit, one operation per address at
   * a time: a change arriving while its address is in flight stays dirty and is judged again when
   * the operation completes (a re-ban during its expiry delete is added after the delete).
   */
  private pump(): void {
    // Until the first list, the alias contents are unknown: the running full pass covers everything.
    if (this.stopped || this.blocked || this.remote === null) return;
    for (const address of this.dirty) {
      if (this.inFlight.size >= this.options.concurrency) break;
      if (this.inFlight.has(address)) continue; // at most `concurrency` of these to skip
      this.dirty.delete(address);
      this.inFlight.add(address);
      void this.converge(address).finally(() => {
        this.inFlight.delete(address);
        this.settleWatched(address);
        this.pump();
        this.notifyIdle();
      });
    }
  }

  private pendingCount(): number {
    let count = this.dirty.size;
    for (const address of this.inFlight) if (!this.dirty.has(address)) count++;
    return count;
  }

  /** Brings one backend entry in line with the ledger, re-judging the ledger before every attempt. */
  private async converge(address: string): Promise<void> {
    const { foreignPolicy } = this.options;
    let outcome: 'added' | 'removed' | 'none' | 'deferred';
    try {
      outcome = await this.withRetry(async () => {
        const remote = this.remote;
        if (remote === null || this.blocked) return 'deferred';
        const listed: ListedEntry[] = remote.has(address) ? [{ address, owned: remote.get(address) ?? null }] : [];
        const plan = planPass(this.wanted(address) ? [address] : [], listed, (a) => this.ledgerOwns(a), foreignPolicy);
        if (plan.add.length > 0) {
          const entry = this.desiredEntry(address);
          await this.target.add(entry);
          this.markRemote(address, true, entry.expiresAt);
          return 'added';
        }
        if (this.expiryGrew(address)) {
          // The backend's add of an entry it holds takes the new expiry (the MikroTik backend patches its row's timeout).
          const entry = this.desiredEntry(address);
          await this.target.add(entry);
          this.markRemote(address, true, entry.expiresAt);
          return 'none';
        }
        if (plan.remove.length > 0 || plan.deleteForeign.length > 0) {
          // Another replica may have banned it again a moment ago: judge on the shared ledger's latest.
          await this.syncLedger();
          if (this.wanted(address)) return 'none';
          await this.target.delete(address);
          this.markRemote(address, false);
          return 'removed';
        }
        return 'none';
      });
    } catch (error) {
      this.handleOpFailure(address, error);
      return;
    }
    if (outcome === 'deferred') {
      // Blocked meanwhile: stays pending for the recovery pass.
      this.dirty.add(address);
      return;
    }
    if (outcome === 'added') {
      if (this.freshBans.delete(address)) await this.killConnections(address);
      return;
    }
    // A ban that arrived meanwhile (dirty again: a re-ban during its expiry delete) keeps its flag for the add that follows.
    if (!this.dirty.has(address)) this.freshBans.delete(address);
  }

  /** The ownership mark an entry edgeban added carries: the backend's tag where it has comments. */
  private ownMark(): boolean | null {
    return this.target.capabilities.comments ? true : null;
  }

  /** `expiresAt`: what an add sent (remembered for native-expiry backends). */
  private markRemote(address: string, present: boolean, expiresAt?: number | null): void {
    if (present) this.remote?.set(address, this.ownMark());
    else this.remote?.delete(address);
    if (present && expiresAt !== undefined && this.target.capabilities.nativeExpiry) this.sentExpiry.set(address, expiresAt);
    else this.sentExpiry.delete(address);
    this.touchedDuringList?.set(address, present);
  }

  /** Drops a fresh ban's connections; a backend refusing it for good (an operator error) turns it off, once. */
  private async killConnections(address: string): Promise<void> {
    if (!this.killEnabled || !this.target.killConnections) return;
    try {
      await this.target.killConnections(address);
    } catch (error) {
      if (error instanceof TargetError && error.kind === 'operator') {
        // Concurrent adds may each get the refusal; warn once.
        if (!this.killEnabled) return;
        this.killEnabled = false;
        this.log.warn(`${error.message} (killing connections of new bans is off until restart; the bans themselves are in place)`);
        return;
      }
      this.log.debug({ address, err: describe(error) }, 'killing connections failed; the ban itself is in place');
    }
  }

  private handleOpFailure(address: string, error: unknown): void {
    if (error instanceof TargetError && error.kind === 'rejected') {
      this.rejected.add(address);
      this.log.error({ address, err: error.message }, 'the target rejected this entry; not retried until the ban changes');
      return;
    }
    // Everything else is retried by the next full pass: keep the address pending.
    this.dirty.add(address);
    this.block(error);
  }

  /**
   * Catches up with a shared ledger's other writers. Its failure is an outage (Redis does not
   * answer), retried with backoff like an unreachable backend: nothing to fix on the target.
   */
  private async syncLedger(): Promise<void> {
    try {
      await this.options.ledger.sync();
    } catch (error) {
      throw new TargetError('retry', 'ledger-unreachable', 'ledger sync', describe(error), { cause: error });
    }
  }

  private failPass(at: number, error: unknown, plan?: PassPlan): PassResult {
    this.block(error);
    const message = describe(error);
    this.lastPass = {
      add: plan?.add ?? [],
      remove: plan?.remove ?? [],
      foreign: plan?.foreign ?? [],
      inAlias: plan?.inAlias ?? this.remote?.size ?? 0,
      desired: plan?.desired ?? 0,
      ok: false,
      at,
      unconfirmed: [],
      unholdable: [],
      error: message,
    };
    return this.lastPass;
  }

  /** Stops sending until a full pass succeeds; logs once per change of state, not once per call. */
  private block(error: unknown): void {
    const kind = error instanceof TargetError ? error.reason : 'internal';
    const message = describe(error);
    // A follower's call still in flight when it stood by: the leader owns the target's state now.
    if (this.state === 'standby') return;
    const next: TargetState = error instanceof TargetError && error.kind === 'retry' ? 'unreachable' : 'degraded';
    const changed = !this.blocked || this.state !== next || this.lastError?.kind !== kind;
    this.blocked = true;
    this.state = next;
    this.lastError = { kind, message, at: this.options.clock.now() };
    if (changed) {
      this.consecutiveFailures = 0;
      if (next === 'degraded') this.log.error({ err: message }, 'enforcement degraded: fix what the error names; retrying every reconcile interval');
      else this.log.warn({ err: message }, 'target unreachable; bans are kept in the ledger and applied when it answers again');
    }
    this.consecutiveFailures++;
    this.watched?.resolve();
  }

  private recover(): void {
    if (this.blocked) this.log.info({ pending: this.dirty.size }, 'target answers again; applying pending changes');
    this.blocked = false;
    if (this.stopped) return;
    this.state = this.notStored === null ? 'syncing' : 'degraded';
    // Still degraded for what pf dropped: that, not the outage just ended, is the error to show.
    if (this.notStored !== null && this.lastError?.kind !== 'not-stored')
      this.lastError = { kind: 'not-stored', message: this.notStored, at: this.options.clock.now() };
    this.pump();
  }

  private scheduleNextPass(): void {
    if (this.stopped) return;
    this.passTimer?.cancel();
    let delay = this.options.intervalMs;
    if (this.blocked && this.state === 'unreachable') {
      // Outages are retried sooner than the interval, backing off: 1 s, 2 s, 4 s … up to the interval.
      // Jitter only shortens the wait: recovery must never take longer than one interval.
      const backoff = Math.min(this.options.intervalMs, 1000 * 2 ** Math.min(this.consecutiveFailures - 1, 16));
      delay = backoff * (0.5 + Math.random() * 0.5);
    }
    this.passTimer = this.options.clock.setTimer(delay, () => {
      this.passTimer = null;
      void this.runFullPass();
    });
  }

  /**
   * The backend's own check on every full pass, so a list deleted or misconfigured while edgeban
   * runs is noticed as at start-up: errors (or an operator TargetError) degrade, warnings are
   * logged once each while they last.
   */
  private async checkTarget(): Promise<void> {
    const result = await this.withRetry(() => this.target.check());
    this.facts = result.facts;
    const warnings = new Set(result.warnings);
    for (const warning of warnings) if (!this.checkWarnings.has(warning)) this.log.warn(warning);
    for (const warning of this.checkWarnings) if (!warnings.has(warning)) this.log.info({ was: warning }, 'target check: this warning no longer applies');
    this.checkWarnings = warnings;
    if (result.errors.length > 0) throw new TargetError('operator', 'check', 'check', result.errors.join('; '));
  }

  private withRetry<T>(operation: () => Promise<T>): Promise<T> {
    return pRetry(operation, {
      retries: this.retry.retries,
      minTimeout: this.retry.minTimeoutMs,
      maxTimeout: this.retry.maxTimeoutMs,
      factor: 2,
      randomize: true,
      shouldRetry: ({ error }) => !this.stopped && !this.blocked && error instanceof TargetError && error.kind === 'retry',
    });
  }

  /** Resolves when none of `addresses` is pending any more, or the target got blocked. */
  private drainAddresses(addresses: readonly string[]): Promise<void> {
    const remaining = new Set(addresses.filter((a) => this.dirty.has(a) || this.inFlight.has(a)));
    if (remaining.size === 0 || this.blocked) return Promise.resolve();
    return new Promise((resolve) => {
      this.watched = {
        addresses: remaining,
        resolve: () => {
          this.watched = null;
          resolve();
        },
      };
      this.pump();
    });
  }

  private settleWatched(address: string): void {
    const watched = this.watched;
    if (!watched) return;
    if (!this.dirty.has(address)) watched.addresses.delete(address);
    if (watched.addresses.size === 0) watched.resolve();
  }

  private isIdle(): boolean {
    return this.passRunning === null && this.inFlight.size === 0 && (this.dirty.size === 0 || this.blocked || this.stopped);
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Whether a ban of `entry` would be stored in the ledger as spelled: a valid address, not IPv4-mapped. */
function isBanSpelling(entry: string): boolean {
  try {
    return parsePfAddress(entry).text === entry;
  } catch {
    return false;
  }
}

function outline(plan: PassPlan): PassOutline {
  return { add: plan.add, remove: plan.remove, foreign: plan.foreign, inAlias: plan.inAlias, desired: plan.desired };
}
