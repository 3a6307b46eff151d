import pRetry from 'p-retry';
import type { ForeignPolicy } from '../config/env.ts';
import type { Ledger, LedgerChange } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import { parsePfAddress } from '../net/address.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { OpnsenseApiError, type ApiErrorKind } from './opnsense/api-error.ts';
import type { OpnsenseClient } from './opnsense/client.ts';

/** The part of the OPNsense client a reconciler uses. `listAlias` returns entries in canonical spelling (parsePfEntry), the ledger's. */
export type AliasApi = Pick<OpnsenseClient, 'addToAlias' | 'deleteFromAlias' | 'listAlias' | 'getAlias' | 'getTableSize' | 'killStates'>;

export interface RetryPolicy {
  retries: number;
  minTimeoutMs: number;
  maxTimeoutMs: number;
}

export interface AliasReconcilerOptions {
  /** Human id for logs and status, e.g. `https://fw1 fail2ban_blocklist`. */
  id: string;
  /** The ledger target whose bans this alias carries. */
  ledgerTarget: string;
  alias: string;
  api: AliasApi;
  ledger: Ledger;
  clock: Clock;
  logger: Logger;
  intervalMs: number;
  /** add/delete calls in flight at once. */
  concurrency: number;
  foreignPolicy: ForeignPolicy;
  adoptBantimeMs: number;
  /**
   * Why an alias entry must not be adopted (the ban guard's verdict: the gateway, a private range,
   * a network wider than a host…), or null. Adoption is a way into the ledger like any other.
   */
  adoptionRefusal: (address: string) => string | null;
  killStates: boolean;
  listPageSize: number;
  retry?: RetryPolicy;
}

/** `standby`: another replica holds this target's leader lease and enforces it (cluster mode). */
export type TargetState = 'starting' | 'syncing' | 'in-sync' | 'unreachable' | 'degraded' | 'stopped' | 'standby';

export interface PassPlan {
  add: string[];
  remove: string[];
  foreign: string[];
  inAlias: number;
  desired: number;
}

export interface PassResult extends PassPlan {
  ok: boolean;
  at: number;
  /** Added with `done` but absent on the verifying list (pf dropped them: table-entries limit?). */
  unconfirmed: string[];
  error: string | null;
}

export interface TargetStatus {
  id: string;
  alias: string;
  ledgerTarget: string;
  state: TargetState;
  aliasType: string | null;
  inAlias: number | null;
  pending: number;
  rejected: string[];
  killStates: boolean;
  /** `not-stored`: adds answered `done` that the verifying list did not find (pf dropped them). */
  lastError: { kind: ApiErrorKind | 'internal' | 'not-stored'; message: string; at: number } | null;
  lastPass: PassResult | null;
  /** The last full pass that finished without an error (the alias then held what the ledger wanted, or was reported unconfirmed). */
  lastSuccess: PassResult | null;
  /** Full passes finished without an error since this reconciler was built. */
  successfulPasses: number;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 4, minTimeoutMs: 200, maxTimeoutMs: 5_000 };
const MAX_REJECTED_SHOWN = 100;

/**
 * Converges one OPNsense alias toward the ledger, level-triggered: every decision compares what
 * the ledger wants now with what the alias holds, so retries, outages, an OPNsense reboot and an
 * edgeban restart all take the same path. A full pass (list every page, diff, fix) runs on start,
 * every interval and after errors; between passes each ledger change sends only its own add or
 * delete, through a bounded pool with retries. It never flushes.
 */
export class AliasReconciler {
  private readonly options: AliasReconcilerOptions;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;
  private state: TargetState = 'starting';
  /** What the alias holds, as far as edgeban knows; null until the first list. */
  private remote: Set<string> | null = null;
  /** Addresses whose alias entry may not match the ledger, in arrival order. */
  private readonly dirty = new Set<string>();
  /** Addresses dirtied by a new ban (not a restore): their pf states are killed after the add. */
  private readonly freshBans = new Set<string>();
  private readonly inFlight = new Set<string>();
  private readonly rejected = new Set<string>();
  /** Results of adds/deletes that completed while a list was being read (the list may predate them). */
  private touchedDuringList: Map<string, boolean> | null = null;
  private blocked = false;
  private killStatesEnabled: boolean;
  private aliasType: string | null = null;
  /** False once the key proved to lack "Firewall: Aliases": the type is then not checked again. */
  private aliasTypeReadable = true;
  /** Why the last full pass found adds pf did not store; the target stays degraded until a pass finds them stored. */
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

  constructor(options: AliasReconcilerOptions) {
    this.options = options;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.killStatesEnabled = options.killStates;
    this.log = options.logger.child({ target: options.id });
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
    return { add: [], remove: [], foreign: [], inAlias: this.remote?.size ?? 0, desired: 0, ok: false, at, unconfirmed: [], error: 'standby: another replica holds the leader lease and enforces this target' };
  }

  status(): TargetStatus {
    return {
      id: this.options.id,
      alias: this.options.alias,
      ledgerTarget: this.options.ledgerTarget,
      state: this.state,
      aliasType: this.aliasType,
      inAlias: this.remote?.size ?? null,
      pending: this.pendingCount(),
      rejected: [...this.rejected].slice(0, MAX_REJECTED_SHOWN),
      killStates: this.killStatesEnabled,
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
   * Alias entries edgeban never banned (the ledger knows nothing of them), as of the last list and
   * the changes edgeban made since: true when `address` is one. `edgeban unban` says so.
   */
  holdsForeign(address: string): boolean {
    // A follower's view of the alias is stale and it sends nothing: the leader answers for the target.
    return !this.isStandingBy() && this.remote !== null && this.remote.has(address) && !this.options.ledger.isKnown(this.options.ledgerTarget, address);
  }

  /** Deletes a foreign entry on request (`edgeban unban --foreign`): there is no ban to end for it. */
  async removeForeign(address: string): Promise<void> {
    if (!this.holdsForeign(address)) return;
    await this.options.api.deleteFromAlias(this.options.alias, address);
    this.markRemote(address, false);
  }

  /** What a full pass would do, without changing anything. */
  async plan(): Promise<PassPlan> {
    await this.checkAlias();
    const listed = new Set(await this.options.api.listAlias(this.options.alias, this.options.listPageSize));
    return this.diff(listed);
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
    try {
      await this.checkAlias();
      this.touchedDuringList = new Map();
      const listed = new Set(await this.withRetry(() => this.options.api.listAlias(this.options.alias, this.options.listPageSize)));
      for (const [address, present] of this.touchedDuringList) {
        if (present) listed.add(address);
        else listed.delete(address);
      }
      this.remote = listed;
      // A replica cut off from a shared ledger must not act on stale state: the pass fails instead.
      await this.options.ledger.sync();
      plan = this.diff(listed);
    } catch (error) {
      return this.isStandingBy() ? this.standingBy(at) : this.failPass(at, error);
    } finally {
      this.touchedDuringList = null;
    }
    // Leadership lost while listing: the new leader acts, not this replica.
    if (this.isStandingBy()) return this.standingBy(at);
    this.recover();
    if (plan.foreign.length > 0) await this.handleForeign(plan.foreign);
    const work = [...plan.add, ...plan.remove, ...(this.options.foreignPolicy === 'exclusive' ? plan.foreign : [])];
    for (const address of work) this.dirty.add(address);
    await this.drainAddresses(work);
    // Stood by (or stopped) while draining: the adds were never sent, so a verifying list would blame pf.
    if (this.isStandingBy() || this.stopped) return this.standingBy(at);
    if (this.blocked) return this.failPass(at, this.lastError?.message ?? 'target became unreachable during the pass', plan);
    let unconfirmed: string[] = [];
    if (plan.add.length > 0) {
      // `done` does not mean pf stored it (table-entries limit, pfctl errors): verify with a list.
      try {
        const listed = new Set(await this.withRetry(() => this.options.api.listAlias(this.options.alias, this.options.listPageSize)));
        this.remote = listed;
        unconfirmed = plan.add.filter((a) => !listed.has(a) && this.options.ledger.isActive(this.options.ledgerTarget, a));
      } catch (error) {
        return this.failPass(at, error, plan);
      }
    }
    if (unconfirmed.length > 0) await this.reportNotStored(unconfirmed);
    else this.clearNotStored();
    this.consecutiveFailures = 0;
    this.lastPass = { ...plan, ok: unconfirmed.length === 0, at, unconfirmed, error: null };
    this.lastSuccess = this.lastPass;
    this.successfulPasses++;
    if (this.dirty.size === 0 && this.inFlight.size === 0 && this.notStored === null && !this.stopped) this.state = 'in-sync';
    this.log.info({ added: plan.add.length, removed: plan.remove.length, foreign: plan.foreign.length, inAlias: this.remote?.size, unconfirmed: unconfirmed.length }, 'full reconcile pass done');
    return this.lastPass;
  }

  private diff(listed: ReadonlySet<string>): PassPlan {
    const { ledger, ledgerTarget } = this.options;
    const desired = ledger.activeAddresses(ledgerTarget);
    const add: string[] = [];
    for (const address of desired) if (!listed.has(address)) add.push(address);
    const remove: string[] = [];
    const foreign: string[] = [];
    for (const address of listed) {
      if (desired.has(address)) continue;
      if (ledger.isKnown(ledgerTarget, address)) remove.push(address);
      else foreign.push(address);
    }
    return { add, remove, foreign, inAlias: listed.size, desired: desired.size };
  }

  private async handleForeign(foreign: string[]): Promise<void> {
    if (this.options.foreignPolicy !== 'adopt') return;
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
        this.log.warn({ entry, reason: refusal }, 'alias entry not adopted: edgeban would never ban it; it stays in the alias as it was, delete it there if it should not be blocked');
      }
    }
    if (unadoptable.length > 0) {
      for (const entry of unadoptable) this.unadoptableReported.add(entry);
      this.log.warn({ count: unadoptable.length, sample: unadoptable.slice(0, 5) },
        'alias entries not adopted: not an address edgeban would ban as spelled (an IPv4-mapped ::ffff:a.b.c.d entry never matches IPv4 traffic); delete them, or ban the IPv4 addresses');
    }
    if (adoptable.length === 0) return;
    await this.options.ledger.banMany(adoptable.map((address) => ({
      target: this.options.ledgerTarget, address, jail: 'adopted', origin: 'adopted' as const, durationMs: this.options.adoptBantimeMs,
    })));
    this.log.info({ adopted: adoptable.length }, 'took over alias entries edgeban did not ban (EDGEBAN_FOREIGN_ENTRIES=adopt)');
  }

  /**
   * Adds answered `done` that the verifying list did not find: bans that do not reach the edge
   * while every call "succeeded". The target is degraded (health and /readyz fail) until a pass
   * finds them stored. The cause is named from get_table_size: the global table-entries limit only
   * when it is actually reached.
   */
  private async reportNotStored(unconfirmed: string[]): Promise<void> {
    let table: { size: number; used: number } | null = null;
    try {
      table = await this.options.api.getTableSize();
    } catch {
      table = null;
    }
    let cause: string;
    if (table !== null && table.used >= table.size) {
      cause = `pf's table-entries limit is reached (${table.used} of ${table.size} entries used by all tables): raise Firewall ▸ Settings ▸ Advanced ▸ Firewall Maximum Table Entries`;
    } else if (table !== null) {
      cause = `pf has room (${table.used} of ${table.size} table entries used), so pfctl refused them for another reason: see the firewall's system log`;
    } else {
      cause = 'the table-entries use could not be read (get_table_size); if the limit is reached, raise Firewall ▸ Settings ▸ Advanced ▸ Firewall Maximum Table Entries';
    }
    const desired = this.options.ledger.activeAddresses(this.options.ledgerTarget);
    let stored = 0;
    for (const address of desired) if (this.remote?.has(address)) stored++;
    const message = `${unconfirmed.length} adds to ${this.options.alias} were answered done but not stored (e.g. ${unconfirmed.slice(0, 3).join(', ')}); it holds ${stored} of the ledger's ${desired.size} active bans: ${cause}`;
    const first = this.notStored === null;
    this.notStored = message;
    this.lastError = { kind: 'not-stored', message, at: this.options.clock.now() };
    if (!this.blocked) this.state = 'degraded';
    if (first) this.log.error({ count: unconfirmed.length, sample: unconfirmed.slice(0, 5), tableEntries: table }, `enforcement degraded: ${message}`);
  }

  private clearNotStored(): void {
    if (this.notStored === null) return;
    this.notStored = null;
    if (this.lastError?.kind === 'not-stored') this.lastError = null;
    if (this.state === 'degraded' && !this.blocked && !this.stopped) this.state = 'syncing';
    this.log.info('pf stores every ban again: the adds it had dropped are in the alias now');
  }

  private onLedgerChange(changes: readonly LedgerChange[]): void {
    if (this.stopped) return;
    for (const change of changes) {
      if (change.target !== this.options.ledgerTarget) continue;
      this.dirty.add(change.address);
      this.rejected.delete(change.address);
      if (this.options.ledger.isActive(change.target, change.address)) this.freshBans.add(change.address);
      else this.freshBans.delete(change.address);
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

  /** Brings one alias entry in line with the ledger, re-judging the ledger before every attempt. */
  private async converge(address: string): Promise<void> {
    const { api, alias, ledger, ledgerTarget } = this.options;
    let outcome: 'added' | 'removed' | 'none' | 'deferred';
    try {
      outcome = await this.withRetry(async () => {
        const remote = this.remote;
        if (remote === null || this.blocked) return 'deferred';
        const wanted = ledger.isActive(ledgerTarget, address);
        const present = remote.has(address);
        if (wanted && !present) {
          await api.addToAlias(alias, address);
          this.markRemote(address, true);
          return 'added';
        }
        if (!wanted && present && (ledger.isKnown(ledgerTarget, address) || this.options.foreignPolicy === 'exclusive')) {
          // Another replica may have banned it again a moment ago: judge on the shared ledger's latest.
          await ledger.sync();
          if (ledger.isActive(ledgerTarget, address)) return 'none';
          await api.deleteFromAlias(alias, address);
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
      if (this.freshBans.delete(address)) await this.killStates(address);
      return;
    }
    // A ban that arrived meanwhile (dirty again: a re-ban during its expiry delete) keeps its flag for the add that follows.
    if (!this.dirty.has(address)) this.freshBans.delete(address);
  }

  private markRemote(address: string, present: boolean): void {
    if (present) this.remote?.add(address);
    else this.remote?.delete(address);
    this.touchedDuringList?.set(address, present);
  }

  private async killStates(address: string): Promise<void> {
    if (!this.killStatesEnabled) return;
    const parsed = parsePfAddress(address);
    if (parsed.family !== 4 || parsed.prefix !== 32) return; // the API strips ':' and '/'
    try {
      await this.options.api.killStates(address);
    } catch (error) {
      if (error instanceof OpnsenseApiError && error.kind === 'forbidden') {
        // Concurrent adds may each get the 403; warn once.
        if (!this.killStatesEnabled) return;
        this.killStatesEnabled = false;
        this.log.warn('kill_states is forbidden for this API key (privilege "Diagnostics: Show States"); established connections of banned addresses are no longer cut. Grant it, or set EDGEBAN_KILL_STATES=0');
        return;
      }
      this.log.debug({ address, err: describe(error) }, 'kill_states failed; the ban itself is in place');
    }
  }

  private handleOpFailure(address: string, error: unknown): void {
    if (error instanceof OpnsenseApiError && error.kind === 'rejected') {
      this.rejected.add(address);
      this.log.error({ address, err: error.message }, 'OPNsense rejected this entry; not retried until the ban changes');
      return;
    }
    // Everything else is retried by the next full pass: keep the address pending.
    this.dirty.add(address);
    this.block(error);
  }

  private failPass(at: number, error: unknown, plan?: PassPlan): PassResult {
    this.block(error);
    const message = describe(error);
    this.lastPass = {
      add: plan?.add ?? [], remove: plan?.remove ?? [], foreign: plan?.foreign ?? [],
      inAlias: plan?.inAlias ?? this.remote?.size ?? 0, desired: plan?.desired ?? 0,
      ok: false, at, unconfirmed: [], error: message,
    };
    return this.lastPass;
  }

  /** Stops sending until a full pass succeeds; logs once per change of state, not once per call. */
  private block(error: unknown): void {
    const kind: ApiErrorKind | 'internal' = error instanceof OpnsenseApiError ? error.kind : 'internal';
    const message = describe(error);
    // A follower's call still in flight when it stood by: the leader owns the target's state now.
    if (this.state === 'standby') return;
    const next: TargetState = error instanceof OpnsenseApiError && !error.needsOperator ? 'unreachable' : 'degraded';
    const changed = !this.blocked || this.state !== next || this.lastError?.kind !== kind;
    this.blocked = true;
    this.state = next;
    this.lastError = { kind, message, at: this.options.clock.now() };
    if (changed) {
      this.consecutiveFailures = 0;
      if (next === 'degraded') this.log.error({ err: message }, 'enforcement degraded: fix this on the firewall; retrying every reconcile interval');
      else this.log.warn({ err: message }, 'firewall unreachable; bans are kept in the ledger and applied when it answers again');
    }
    this.consecutiveFailures++;
    this.watched?.resolve();
  }

  private recover(): void {
    if (this.blocked) this.log.info({ pending: this.dirty.size }, 'firewall answers again; applying pending changes');
    this.blocked = false;
    if (this.stopped) return;
    this.state = this.notStored === null ? 'syncing' : 'degraded';
    // Still degraded for what pf dropped: that, not the outage just ended, is the error to show.
    if (this.notStored !== null && this.lastError?.kind !== 'not-stored') this.lastError = { kind: 'not-stored', message: this.notStored, at: this.options.clock.now() };
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
   * Reads the alias definition on every full pass (two GETs), so an alias deleted or retyped while
   * edgeban runs is noticed as at start-up: missing degrades, not External warns (once per change).
   */
  private async checkAlias(): Promise<void> {
    if (!this.aliasTypeReadable) return;
    const { api, alias } = this.options;
    let info;
    try {
      info = await this.withRetry(() => api.getAlias(alias));
    } catch (error) {
      if (error instanceof OpnsenseApiError && error.kind === 'forbidden') {
        this.aliasTypeReadable = false;
        this.log.warn('cannot read the alias definition (privilege "Firewall: Aliases" missing): its type is not verified');
        return;
      }
      throw error;
    }
    if (info === null) {
      throw new OpnsenseApiError('alias-missing', `GET /api/firewall/alias/get_alias_u_u_i_d/${alias}`,
        `no alias named ${alias} on this firewall: create it as type External (advanced) and block it in a WAN rule (edgeban setup-opnsense does both)`);
    }
    const previous = this.aliasType;
    this.aliasType = info.type;
    if (info.type === previous) return;
    if (info.type !== 'external') {
      this.log.warn({ type: info.type },
        `alias ${alias} is of type ${info.type}, not External: every ban rewrites config.xml and adds a backup revision (slow, and it evicts real backups). Recreate it as External (advanced)`);
    } else if (previous !== null) {
      this.log.info({ previous }, `alias ${alias} is External now`);
    }
  }

  private withRetry<T>(operation: () => Promise<T>): Promise<T> {
    return pRetry(operation, {
      retries: this.retry.retries,
      minTimeout: this.retry.minTimeoutMs,
      maxTimeout: this.retry.maxTimeoutMs,
      factor: 2,
      randomize: true,
      shouldRetry: ({ error }) => !this.stopped && !this.blocked && error instanceof OpnsenseApiError && error.retryable,
    });
  }

  /** Resolves when none of `addresses` is pending any more, or the target got blocked. */
  private drainAddresses(addresses: readonly string[]): Promise<void> {
    const remaining = new Set(addresses.filter((a) => this.dirty.has(a) || this.inFlight.has(a)));
    if (remaining.size === 0 || this.blocked) return Promise.resolve();
    return new Promise((resolve) => {
      this.watched = { addresses: remaining, resolve: () => { this.watched = null; resolve(); } };
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

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
