import type { Dispatcher } from 'undici';
import { Agent } from '../net/undici.ts';
import type { EdgebanEnv } from '../config/env.ts';
import type { PipelineStats } from '../jails/pipeline-stats.ts';
import type { LedgerChange } from '../ledger/ledger.ts';
import type { Logger } from '../logging/logger.ts';
import type { SecretScrubber } from '../logging/secret-scrubber.ts';
import type { ReportedTargetStatus } from '../cluster/target-report.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { NotifyPlan } from './channel-config.ts';
import { ChannelOutbox, type ChannelStats } from './channel-outbox.ts';
import { EnforcementMonitor } from './enforcement-monitor.ts';
import { DEFAULT_DELIVERY_POLICY, type DeliveryPolicy } from './http-delivery.ts';
import { eventsOfChange, type LedgerView } from './ledger-events.ts';
import { LogWatchdog } from './log-watchdog.ts';
import type { AlertEvent, BanEvent } from './messages.ts';

export interface NotifierOptions {
  plan: NotifyPlan;
  ledger: LedgerView & { onChange(listener: (changes: readonly LedgerChange[]) => void): () => void };
  /** Every reconciler's status (enforcement failing / recovered). */
  targets: () => readonly ReportedTargetStatus[];
  /** Every jail pipeline's stats (the watchdog reads follower.files[].lastLineAt). */
  sources: () => readonly PipelineStats[];
  clock: Clock;
  logger: Logger;
  env: Pick<EdgebanEnv, 'notifyIntervalSec' | 'watchdogSilenceSec' | 'enforcementAlertAfterSec'>;
  /** HTTP client; a small keep-alive pool is made (and closed on stop) when not given. */
  dispatcher?: Dispatcher;
  /** Scrubs every outgoing message (the daemon's, which learns secrets on reload too). */
  scrubber?: SecretScrubber;
  policy?: Partial<DeliveryPolicy>;
  /** How often targets and logs are looked at; default 10 s. */
  checkIntervalMs?: number;
  random?: () => number;
  /**
   * Whether this replica announces bans and unbans (cluster mode: only the holder of the
   * notification lease does, so each event is sent once). Alerts are this replica's own facts and
   * always sent. Default: always.
   */
  announces?: () => boolean;
}

export interface NotifierStats {
  channels: ChannelStats[];
  events: { bans: number; unbans: number; alerts: number; recoveries: number };
}

export interface NotifierHandle {
  stop(): Promise<void>;
  stats(): NotifierStats;
  /** Takes a reloaded plan: channels that stay keep their rate limit and pending digest. */
  reconfigure(plan: NotifyPlan): Promise<void>;
  /** Resolves once no message is in flight (tests). */
  idle(): Promise<void>;
}

const DEFAULT_CHECK_INTERVAL_MS = 10_000;
/** The same ban announced for two targets of one jail within this long is one notification. */
const REPEAT_WINDOW_MS = 2_000;
const MAX_RECENT = 4_096;

/**
 * Notifications, one entry point for the daemon: ledger changes become ban/unban events for the
 * channels of the jail that caused them; target and log checks become alerts for every channel.
 * Each channel rate-limits and digests on its own (ChannelOutbox).
 */
export class Notifier implements NotifierHandle {
  private readonly options: NotifierOptions;
  private readonly log: Logger;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly policy: DeliveryPolicy;
  private outboxes = new Map<string, ChannelOutbox>();
  private jailChannels: Record<string, string[]> = {};
  private readonly enforcement: EnforcementMonitor;
  private readonly watchdog: LogWatchdog | null;
  /** Recently announced (kind, jail, address) → when: a bounded memory against double announcements. */
  private readonly recent = new Map<string, number>();
  private readonly counts = { bans: 0, unbans: 0, alerts: 0, recoveries: 0 };
  private unsubscribe: () => void = () => {};
  private checkTimer: TimerHandle | null = null;
  private stopping: Promise<void> | null = null;

  private constructor(options: NotifierOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'notifier' });
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Agent({ connections: 4, keepAliveTimeout: 30_000 });
    this.policy = { ...DEFAULT_DELIVERY_POLICY, ...options.policy };
    this.enforcement = new EnforcementMonitor(options.env.enforcementAlertAfterSec * 1000);
    this.watchdog = options.env.watchdogSilenceSec > 0 ? new LogWatchdog(options.env.watchdogSilenceSec * 1000) : null;
  }

  static start(options: NotifierOptions): Notifier {
    const notifier = new Notifier(options);
    notifier.applyPlan(options.plan);
    notifier.unsubscribe = options.ledger.onChange((changes) => notifier.onLedgerChange(changes));
    notifier.scheduleCheck();
    if (options.plan.channels.length > 0) {
      notifier.log.info({ channels: options.plan.channels.map((c) => c.label), intervalSec: options.env.notifyIntervalSec }, 'notifications on');
    }
    return notifier;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.unsubscribe();
      this.checkTimer?.cancel();
      this.checkTimer = null;
      await Promise.all([...this.outboxes.values()].map((o) => o.stop()));
      if (this.ownsDispatcher) await this.dispatcher.close();
    })();
    return this.stopping;
  }

  stats(): NotifierStats {
    return { channels: [...this.outboxes.values()].map((o) => o.stats()), events: { ...this.counts } };
  }

  async reconfigure(plan: NotifyPlan): Promise<void> {
    if (this.stopping) return;
    const keep = new Set(plan.channels.map((c) => c.id));
    const gone = [...this.outboxes.entries()].filter(([id]) => !keep.has(id));
    for (const [id] of gone) this.outboxes.delete(id);
    this.applyPlan(plan);
    await Promise.all(gone.map(([, o]) => o.stop()));
  }

  async idle(): Promise<void> {
    await Promise.all([...this.outboxes.values()].map((o) => o.idle()));
  }

  /** Runs the target and log checks now (the timer does this every check interval). */
  check(): void {
    const now = this.options.clock.now();
    const alerts = [...this.enforcement.check(this.options.targets(), now), ...(this.watchdog?.check(this.options.sources(), now) ?? [])];
    for (const alert of alerts) this.raise(alert);
  }

  private applyPlan(plan: NotifyPlan): void {
    for (const channel of plan.channels) {
      if (this.outboxes.has(channel.id)) continue;
      this.outboxes.set(
        channel.id,
        new ChannelOutbox({
          channel,
          dispatcher: this.dispatcher,
          clock: this.options.clock,
          logger: this.options.logger,
          intervalMs: this.options.env.notifyIntervalSec * 1000,
          policy: this.policy,
          ...(this.options.scrubber ? { scrubber: this.options.scrubber } : {}),
          ...(this.options.random ? { random: this.options.random } : {}),
        }),
      );
    }
    this.jailChannels = plan.jailChannels;
  }

  private onLedgerChange(changes: readonly LedgerChange[]): void {
    const now = this.options.clock.now();
    const logged = new Set<string>();
    for (const change of changes) {
      for (const event of eventsOfChange(this.options.ledger, change, now)) {
        this.logEvent(event, logged);
        const ids = this.jailChannels[event.jail];
        if (!ids || this.isRepeat(event) || this.options.announces?.() === false) continue;
        if (event.kind === 'ban') this.counts.bans++;
        else this.counts.unbans++;
        for (const id of ids) this.outboxes.get(id)?.offerEvent(event);
      }
    }
  }

  /**
   * fail2ban's info lines, `[jail] Ban ADDR` and `[jail] Unban ADDR`, for every ban and unban. A
   * jail's own bans are logged by the jail engine when it decides them (with the bantime); manual
   * and adopted bans and every unban, manual or expiring, are logged here. One line per jail and
   * address, however many firewall targets the change touched.
   */
  private logEvent(event: BanEvent, logged: Set<string>): void {
    if (event.kind === 'ban' && event.origin === 'jail') return;
    const key = `${event.kind} ${event.jail} ${event.address}`;
    if (logged.has(key)) return;
    logged.add(key);
    const fields = { jail: event.jail, address: event.address, origin: event.origin };
    if (event.kind === 'unban') {
      this.options.logger.info(fields, `[${event.jail}] Unban ${event.address}`);
      return;
    }
    const until = event.expiresAt === null ? 'permanent' : `until ${new Date(event.expiresAt).toISOString()}`;
    this.options.logger.info({ ...fields, expiresAt: event.expiresAt }, `[${event.jail}] Ban ${event.address} (${event.origin}, ${until})`);
  }

  private isRepeat(event: BanEvent): boolean {
    const key = `${event.kind}\u0000${event.jail}\u0000${event.address}`;
    // The opposite event resets the memory: ban, unban, ban again is three notifications.
    this.recent.delete(`${event.kind === 'ban' ? 'unban' : 'ban'}\u0000${event.jail}\u0000${event.address}`);
    const previous = this.recent.get(key);
    this.recent.delete(key);
    this.recent.set(key, event.at);
    if (this.recent.size > MAX_RECENT) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
    return previous !== undefined && Math.abs(event.at - previous) < REPEAT_WINDOW_MS;
  }

  private raise(alert: AlertEvent): void {
    if (alert.kind === 'alert') this.counts.alerts++;
    else this.counts.recoveries++;
    const log = alert.kind === 'alert' ? this.log.warn.bind(this.log) : this.log.info.bind(this.log);
    log({ source: alert.source, subject: alert.subject }, alert.title);
    for (const outbox of this.outboxes.values()) outbox.offerAlert(alert);
  }

  private scheduleCheck(): void {
    if (this.stopping) return;
    this.checkTimer = this.options.clock.setTimer(this.options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS, () => {
      try {
        this.check();
      } catch (error) {
        this.log.error({ err: error }, 'notification check failed');
      }
      this.scheduleCheck();
    });
  }
}
