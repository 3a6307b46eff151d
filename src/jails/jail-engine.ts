import { claimKey, isClaimActive, type BanClaim } from '../ledger/ban-claim.ts';
import type { BanRequest } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import { InvalidAddressError } from '../net/address.ts';
import type { Clock } from '../util/clock.ts';
import { BanGuard, isInternal, REFUSAL_REASONS, type RefusalReason } from './ban-guard.ts';
import { banTimeSec } from './ban-time.ts';
import { cidrContains, cidrList, coveringNetwork, parseCidr, type Cidr } from './cidr.ts';
import type { LineRef } from './failure-journal.ts';
import { FailureTracker } from './failure-tracker.ts';
import type { NetworkFacts } from './network-facts.ts';
import { ProxyDetector, type ProxyDetectorOptions, type ProxySuspicion } from './proxy-detector.ts';
import type { JailSettings } from './settings.ts';

/** One failure a filter found. */
export interface FailureMatch {
  /** The offender, pf spelling (any spelling parsePfAddress accepts). */
  host: string;
  /** The log line's time, epoch seconds. */
  time: number;
  user?: string;
  /** Where the line was read: handed on to counter observers (the failure journal). */
  line?: LineRef;
}

/**
 * Told synchronously of every change to a jail's failure counter that a restart must redo: a
 * failure counted (its time as counted, the ticket may have reached maxretry and been dropped,
 * exactly as a replay through FailureTracker.add reproduces) and a count reset by a manual unban.
 */
export interface CounterObserver {
  failure(network: Cidr, timeSec: number, line: LineRef | undefined): void;
  forget(network: Cidr): void;
}

export type MatchOutcome =
  | { kind: 'unknown-jail' }
  | { kind: 'ignored'; reason: RefusalReason; match: string }
  /** Older than findtime: not counted. */
  | { kind: 'old' }
  | { kind: 'counted'; address: string; retry: number }
  /** maxretry reached while this jail's ban is still active (or being written) in every target. */
  | { kind: 'already-banned'; address: string }
  /** The ban would already be over (failure time + bantime is past): fail2ban ignores it too. */
  | { kind: 'expired'; address: string }
  | { kind: 'banned'; address: string; durationMs: number | null; previousBans: number; targets: string[] }
  | { kind: 'ban-failed'; address: string };

/** What the engine reads of the ledger: Ledger satisfies it. */
export interface BanHistory {
  claimsOf(target: string, address: string): readonly BanClaim[];
  targets(): string[];
}

export type BanSink = (request: BanRequest) => Promise<unknown>;

/**
 * Failures counted by every replica of a cluster (the Redis ledger): each failure this replica
 * counts is recorded there too, and the answer is how many failures of (jail, address) all
 * replicas recorded within findtime. Rejects when the shared count cannot be had (the engine then
 * keeps its own count, which still bans at maxretry on its own).
 */
export interface SharedFailureCounter {
  record(jail: string, address: string, timeSec: number, nowSec: number, findtimeSec: number): Promise<number>;
  /** The address was banned: the shared count starts again, as fail2ban drops the ticket. */
  reset(jail: string, address: string): Promise<void>;
}

export interface JailStats {
  jail: string;
  /** Failures handed to the jail. */
  matches: number;
  /** Failures counted towards a ban. */
  failures: number;
  old: number;
  ignored: Record<RefusalReason, number>;
  bans: number;
  alreadyBanned: number;
  expired: number;
  banErrors: number;
  /** Addresses currently counted. */
  tracked: number;
  capReached: boolean;
  evictedByCap: number;
  proxyWarning: ProxySuspicion | null;
}

export interface JailEngineOptions {
  jails: readonly JailSettings[];
  facts: NetworkFacts;
  history: BanHistory;
  ban: BanSink;
  clock: Clock;
  /** [0, 1), for bantime.rndtime. */
  random: () => number;
  logger: Logger;
  proxy?: ProxyDetectorOptions;
  /** Cluster mode: failures counted across replicas. */
  shared?: SharedFailureCounter;
}

interface Jail {
  settings: JailSettings;
  guard: BanGuard;
  tracker: FailureTracker;
  proxy: ProxyDetector;
  stats: Omit<JailStats, 'tracked' | 'capReached' | 'evictedByCap' | 'proxyWarning'>;
  privateReported: boolean;
  /** Persisted failures were replayed into (or offered to) this counter already: a reload must not redo it. */
  restoreTaken: boolean;
}

/**
 * The runtime between "a filter matched" and "ban it in the ledger": guards, fail2ban's
 * counting, bantime.increment, and per-jail stats. Counting is synchronous, so failures are
 * decided in the order they arrive; only the ban sink is awaited.
 */
export class JailEngine {
  private jails = new Map<string, Jail>();
  private facts: NetworkFacts;
  private proxyCandidates: readonly Cidr[] = [];
  /** Bans handed to the sink and not yet settled: `${target}\0${address}\0${jail}`. */
  private readonly inFlight = new Set<string>();
  private readonly history: BanHistory;
  private readonly sink: BanSink;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly logger: Logger;
  private readonly proxyOptions: ProxyDetectorOptions;
  private readonly observers = new Map<string, Set<CounterObserver>>();
  private readonly shared: SharedFailureCounter | null;
  /** Whether the last shared count failed (logged once per outage, not per failure). */
  private sharedDown = false;

  constructor(options: JailEngineOptions) {
    this.shared = options.shared ?? null;
    this.history = options.history;
    this.sink = options.ban;
    this.clock = options.clock;
    this.random = options.random;
    this.logger = options.logger;
    this.proxyOptions = options.proxy ?? {};
    this.facts = options.facts;
    this.reload(options.jails, options.facts);
  }

  /** New settings (SIGHUP): counters, stats and proxy findings of jails that still exist are kept. */
  reload(jails: readonly JailSettings[], facts: NetworkFacts = this.facts): void {
    this.facts = facts;
    this.proxyCandidates = cidrList([...facts.gateways, ...facts.selfAddresses]);
    const next = new Map<string, Jail>();
    for (const settings of jails) {
      const guard = new BanGuard({ facts, ignoreip: settings.ignoreip, banprivate: settings.banprivate, ipv6prefix: settings.ipv6prefix });
      const old = this.jails.get(settings.name);
      if (old) {
        old.tracker.reconfigure({ maxretry: settings.maxretry, findtimeSec: settings.findtimeSec, cap: settings.maxtracked });
        next.set(settings.name, { ...old, settings, guard });
        continue;
      }
      next.set(settings.name, {
        settings,
        guard,
        tracker: new FailureTracker({ maxretry: settings.maxretry, findtimeSec: settings.findtimeSec, cap: settings.maxtracked }),
        proxy: new ProxyDetector(this.proxyOptions),
        stats: emptyStats(settings.name),
        privateReported: false,
        restoreTaken: false,
      });
    }
    this.jails = next;
  }

  async onMatch(jailName: string, match: FailureMatch): Promise<MatchOutcome> {
    const jail = this.jails.get(jailName);
    if (!jail) return { kind: 'unknown-jail' };
    const { settings, stats } = jail;
    stats.matches++;
    const nowMs = this.clock.now();

    let host: Cidr;
    try {
      host = parseCidr(match.host);
    } catch (error) {
      if (!(error instanceof InvalidAddressError)) throw error;
      return this.refuse(jail, 'invalid', match.host.slice(0, 64));
    }
    if (host.prefix !== (host.family === 4 ? 32 : 128)) return this.refuse(jail, 'invalid', host.text);
    const network = host.family === 6 ? coveringNetwork(host, settings.ipv6prefix) : host;

    this.observeProxy(jail, host, nowMs);
    const verdict = jail.guard.check(host, network);
    if (!verdict.ok) {
      if (verdict.reason === 'private' && !jail.privateReported) {
        jail.privateReported = true;
        this.logger.info(
          { jail: settings.name, address: host.text },
          `[${settings.name}] ${host.text} is a private address: not banned at the edge (a WAN rule cannot block internal hosts); set banprivate = true to ban such addresses anyway. Further ones are only counted in status.`,
        );
      }
      return this.refuse(jail, verdict.reason, verdict.match, host.text);
    }

    const result = jail.tracker.add(network, match.time, nowMs / 1000);
    if (result.kind === 'old') {
      stats.old++;
      return { kind: 'old' };
    }
    stats.failures++;
    // Still synchronous: observers see failures in counting order.
    for (const o of this.observers.get(jailName) ?? []) o.failure(network, Math.min(match.time, nowMs / 1000), match.line);
    const time = Math.min(match.time, nowMs / 1000);
    if (result.kind === 'counted') {
      if (this.logger.isLevelEnabled('debug')) {
        this.logger.debug({ jail: settings.name, address: network.text, retry: result.retry }, `[${settings.name}] Found ${network.text}`);
      }
      if (!this.shared) return { kind: 'counted', address: network.text, retry: result.retry };
      return await this.countShared(jail, network, result.retry, time, nowMs);
    }
    if (this.shared) void this.shared.reset(settings.name, network.text).catch(() => {});
    return this.ban(jail, network.text, result.lastTime, nowMs);
  }

  /** A failure counted here and in the cluster: banned when every replica's failures reach maxretry. */
  private async countShared(jail: Jail, network: Cidr, retry: number, time: number, nowMs: number): Promise<MatchOutcome> {
    const { settings } = jail;
    const total = await this.sharedCount(jail, network.text, time, nowMs);
    if (total < settings.maxretry) return { kind: 'counted', address: network.text, retry };
    // Other replicas' failures complete the count: banned here, the local ticket goes as on a local ban.
    jail.tracker.delete(network);
    this.logger.info(
      { jail: settings.name, address: network.text, failures: total },
      `[${settings.name}] ${network.text} reached maxretry counting every replica's failures`,
    );
    return this.ban(jail, network.text, time, nowMs);
  }

  /** This failure counted by every replica, or 0 (local count only) without a cluster or while Redis does not answer. */
  private async sharedCount(jail: Jail, address: string, timeSec: number, nowMs: number): Promise<number> {
    if (!this.shared) return 0;
    const { name, findtimeSec } = jail.settings;
    try {
      const total = await this.shared.record(name, address, timeSec, nowMs / 1000, findtimeSec);
      // A failed reset must not undo the count that reached maxretry: the ban goes ahead regardless.
      if (total >= jail.settings.maxretry) void this.shared.reset(name, address).catch(() => {});
      if (this.sharedDown) this.logger.info('failures are counted across replicas again');
      this.sharedDown = false;
      return total;
    } catch (error) {
      if (!this.sharedDown)
        this.logger.warn(
          { jail: name, err: (error as Error).message },
          'failures cannot be shared with the other replicas (Redis): each replica counts its own until it answers',
        );
      this.sharedDown = true;
      return 0;
    }
  }

  /** Drops counters whose last failure is findtime old (the daemon calls this now and then). */
  sweep(): number {
    const nowSec = this.clock.now() / 1000;
    let removed = 0;
    for (const jail of this.jails.values()) removed += jail.tracker.sweep(nowSec);
    return removed;
  }

  /** Forgets the failures counted for an address (manual unban). */
  forget(address: string, jailName?: string): void {
    let host: Cidr;
    try {
      host = parseCidr(address);
    } catch {
      return;
    }
    for (const jail of this.jails.values()) {
      if (jailName !== undefined && jail.settings.name !== jailName) continue;
      const network = host.family === 6 ? coveringNetwork(host, jail.settings.ipv6prefix) : host;
      if (jail.tracker.delete(network)) for (const o of this.observers.get(jail.settings.name) ?? []) o.forget(network);
    }
  }

  /** Watches a jail's counter (see CounterObserver); returns the unsubscribe function. */
  observeCounter(jailName: string, observer: CounterObserver): () => void {
    let set = this.observers.get(jailName);
    if (!set) this.observers.set(jailName, (set = new Set()));
    set.add(observer);
    return () => {
      set.delete(observer);
      if (set.size === 0 && this.observers.get(jailName) === set) this.observers.delete(jailName);
    };
  }

  /**
   * The counter to replay persisted failures into, once per counter: the first pipeline started
   * for a jail gets it, a pipeline restarted by a reload gets null (the counter kept its counts).
   */
  takeCounterForRestore(jailName: string): FailureTracker | null {
    const jail = this.jails.get(jailName);
    if (!jail || jail.restoreTaken) return null;
    jail.restoreTaken = true;
    return jail.tracker;
  }

  /** Visits the live tickets of a jail's counter, least recently failing first (journal compaction). */
  forEachTicket(jailName: string, visit: Parameters<FailureTracker['forEachTicket']>[0]): void {
    this.jails.get(jailName)?.tracker.forEachTicket(visit);
  }

  /** Addresses a jail counts now (0 for an unknown jail). */
  trackedCount(jailName: string): number {
    return this.jails.get(jailName)?.tracker.tracked ?? 0;
  }

  stats(jailName?: string): JailStats[] {
    const out: JailStats[] = [];
    for (const jail of this.jails.values()) {
      if (jailName !== undefined && jail.settings.name !== jailName) continue;
      const tracker = jail.tracker.stats();
      out.push({
        ...jail.stats,
        ignored: { ...jail.stats.ignored },
        tracked: tracker.tracked,
        capReached: tracker.capReached,
        evictedByCap: tracker.evictedByCap,
        proxyWarning: jail.proxy.suspicion,
      });
    }
    return out;
  }

  jailNames(): string[] {
    return [...this.jails.keys()];
  }

  private refuse(jail: Jail, reason: RefusalReason, match: string, address?: string): MatchOutcome {
    jail.stats.ignored[reason]++;
    this.logger.debug({ jail: jail.settings.name, address, reason, match }, `[${jail.settings.name}] Ignore ${address ?? match} (${reason})`);
    return { kind: 'ignored', reason, match };
  }

  private observeProxy(jail: Jail, host: Cidr, nowMs: number): void {
    const candidate = isInternal(host) || this.proxyCandidates.some((c) => cidrContains(c, host));
    const found = jail.proxy.observe(candidate ? host.text : null, nowMs);
    if (!found) return;
    const name = jail.settings.name;
    this.logger.warn(
      { jail: name, address: found.address, share: found.share, window: found.window },
      `[${name}] ${Math.round(found.share * 100)}% of the last ${found.window} failures come from ${found.address}, a private address: jail ${name} sees a proxy, not the real client IPs. Make the proxy pass them on (PROXY protocol, X-Forwarded-For / real_ip) and log those, or edgeban cannot ban the attackers.`,
    );
  }

  private async ban(jail: Jail, address: string, lastFailureSec: number, nowMs: number): Promise<MatchOutcome> {
    const { settings, stats } = jail;
    const name = settings.name;
    const targets = settings.targets.map((t) => t.id);
    const pending = targets.filter((target) => !this.isBanned(target, address, name, nowMs));
    if (targets.length > 0 && pending.length === 0) {
      stats.alreadyBanned++;
      this.logger.debug({ jail: name, address }, `[${name}] ${address} already banned`);
      return { kind: 'already-banned', address };
    }
    const previousBans = countPreviousBans(this.history, settings, address);
    const seconds = banTimeSec(settings, previousBans, this.random);
    let durationMs: number | null = null;
    if (seconds >= 0) {
      // fail2ban bans from the failure's time (the ticket's), not from when it read the line.
      durationMs = Math.round((lastFailureSec + seconds) * 1000 - nowMs);
      if (durationMs <= 0) {
        stats.expired++;
        this.logger.info({ jail: name, address }, `[${name}] Ignore ${address}: its ban would already have ended`);
        return { kind: 'expired', address };
      }
    }
    stats.bans++;
    const bantime = seconds < 0 ? 'permanent' : `${Math.round(seconds)}s`;
    this.logger.info(
      { jail: name, address, bantime, previousBans, targets: pending },
      `[${name}] Ban ${address} (${bantime}${previousBans > 0 ? `, banned ${previousBans} time(s) before` : ''})`,
    );
    if (targets.length === 0) {
      this.logger.warn({ jail: name, address }, `[${name}] no opnsense action: ${address} is not banned at any firewall`);
    }
    const results = await Promise.allSettled(
      pending.map(async (target) => {
        const key = claimKey(target, address, name);
        this.inFlight.add(key);
        try {
          await this.sink({ target, address, jail: name, origin: 'jail', durationMs });
        } finally {
          this.inFlight.delete(key);
        }
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length > 0) {
      stats.banErrors++;
      for (const failure of failed)
        this.logger.error({ jail: name, address, err: (failure as PromiseRejectedResult).reason }, `[${name}] could not record the ban of ${address}`);
      return { kind: 'ban-failed', address };
    }
    return { kind: 'banned', address, durationMs, previousBans, targets: pending };
  }

  private isBanned(target: string, address: string, jail: string, nowMs: number): boolean {
    if (this.inFlight.has(claimKey(target, address, jail))) return true;
    return this.history.claimsOf(target, address).some((c) => c.jail === jail && isClaimActive(c, nowMs));
  }
}

/**
 * fail2ban's ban.Count: how often this jail banned the address before (bips.bancount), or with
 * overalljails the sum over every jail. A jail enforcing in several targets counts once.
 * Manual bans naming a jail count the same way.
 */
export function countPreviousBans(history: BanHistory, settings: Pick<JailSettings, 'name' | 'increment' | 'targets'>, address: string): number {
  const perJail = new Map<string, number>();
  const targets = settings.increment.overalljails ? history.targets() : settings.targets.map((t) => t.id);
  for (const target of targets) {
    for (const claim of history.claimsOf(target, address)) {
      if (claim.origin === 'adopted') continue;
      if (!settings.increment.overalljails && claim.jail !== settings.name) continue;
      perJail.set(claim.jail, Math.max(perJail.get(claim.jail) ?? 0, claim.banCount));
    }
  }
  let total = 0;
  for (const count of perJail.values()) total += count;
  return total;
}

function emptyStats(jail: string): Jail['stats'] {
  return {
    jail,
    matches: 0,
    failures: 0,
    old: 0,
    ignored: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>,
    bans: 0,
    alreadyBanned: 0,
    expired: 0,
    banErrors: 0,
  };
}
