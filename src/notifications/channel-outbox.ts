import type { Dispatcher } from 'undici';
import type { Logger } from '../logging/logger.ts';
import type { SecretScrubber } from '../logging/secret-scrubber.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { ChannelConfig } from './channel-config.ts';
import { requestFor } from './channel-requests.ts';
import { deliver, DeliveryError, type DeliveryPolicy } from './http-delivery.ts';
import { alertsMessage, banMessage, DigestAccumulator, digestMessage, type AlertEvent, type BanEvent, type OutgoingMessage } from './messages.ts';

export interface ChannelOutboxOptions {
  channel: ChannelConfig;
  dispatcher: Dispatcher;
  clock: Clock;
  logger: Logger;
  /** At most one message per this long. */
  intervalMs: number;
  policy: DeliveryPolicy;
  /** Alerts waiting beyond this are counted, not kept. */
  maxPendingAlerts?: number;
  /** Scrubbed from every outgoing text (defence in depth: error texts quoted in alerts). */
  scrubber?: SecretScrubber;
  random?: () => number;
}

export interface ChannelStats {
  channel: string;
  kind: ChannelConfig['kind'];
  /** Messages delivered. */
  sent: number;
  /** Messages given up on (after retries, or refused with a 4xx). */
  failed: number;
  retries: number;
  /** Ban and unban events folded into digests instead of sent one by one. */
  digested: number;
  pendingEvents: number;
  pendingAlerts: number;
  droppedAlerts: number;
  lastError: string | null;
  lastSentAt: number | null;
}

const DEFAULT_MAX_PENDING_ALERTS = 50;

/**
 * One channel's rate limit: at most one message per interval, one message in flight. Bans and
 * unbans arriving while the channel must wait are folded into a digest (constant memory), so a
 * flood of 10,000 bans gives the first ban at once and one digest per interval after it.
 *
 * Alerts (enforcement failing, a silent log, and their recoveries) have their own short queue and
 * take the next slot before any digest; all alerts waiting then go out as one message. They cannot
 * be starved by bans, and they cannot starve bans either: each failure raises one alert and one
 * recovery, so the digest waits at most a slot or two and loses nothing (its counts keep growing).
 */
export class ChannelOutbox {
  readonly channel: ChannelConfig;
  private readonly options: ChannelOutboxOptions;
  private readonly log: Logger;
  private readonly maxPendingAlerts: number;
  private readonly digest = new DigestAccumulator();
  private alerts: AlertEvent[] = [];
  private droppedAlerts = 0;
  private lastSentAt: number | null = null;
  private inFlight: Promise<void> | null = null;
  private timer: TimerHandle | null = null;
  private readonly abort = new AbortController();
  private stopped = false;
  private readonly counts = { sent: 0, failed: 0, retries: 0, digested: 0, droppedAlerts: 0 };
  private lastError: string | null = null;

  constructor(options: ChannelOutboxOptions) {
    this.options = options;
    this.channel = options.channel;
    this.log = options.logger.child({ channel: options.channel.label });
    this.maxPendingAlerts = options.maxPendingAlerts ?? DEFAULT_MAX_PENDING_ALERTS;
  }

  offerEvent(event: BanEvent): void {
    if (this.stopped) return;
    this.digest.add(event);
    this.pump();
  }

  offerAlert(alert: AlertEvent): void {
    if (this.stopped) return;
    if (this.alerts.length >= this.maxPendingAlerts) {
      this.droppedAlerts++;
      this.counts.droppedAlerts++;
    } else {
      this.alerts.push(alert);
    }
    this.pump();
  }

  /** Stops sending: a delivery in flight or waiting to retry is aborted; what is pending is dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.abort.abort();
    await this.inFlight;
  }

  /** Resolves when nothing is in flight (tests, and a bounded flush on stop if ever wanted). */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  stats(): ChannelStats {
    return {
      channel: this.channel.label,
      kind: this.channel.kind,
      sent: this.counts.sent,
      failed: this.counts.failed,
      retries: this.counts.retries,
      digested: this.counts.digested,
      pendingEvents: this.digest.size,
      pendingAlerts: this.alerts.length,
      droppedAlerts: this.counts.droppedAlerts,
      lastError: this.lastError,
      lastSentAt: this.lastSentAt,
    };
  }

  private pump(): void {
    if (this.stopped || this.inFlight || (this.alerts.length === 0 && this.digest.size === 0)) return;
    const now = this.options.clock.now();
    const wait = this.lastSentAt === null ? 0 : this.lastSentAt + this.options.intervalMs - now;
    if (wait > 0) {
      this.timer ??= this.options.clock.setTimer(wait, () => {
        this.timer = null;
        this.pump();
      });
      return;
    }
    const windowStart = this.lastSentAt ?? now;
    const message = this.compose(windowStart, now);
    this.lastSentAt = now;
    this.inFlight = this.send(message).finally(() => {
      this.inFlight = null;
      this.pump();
    });
  }

  private compose(windowStart: number, now: number): OutgoingMessage {
    if (this.alerts.length > 0) {
      const message = alertsMessage(this.alerts, this.droppedAlerts, now);
      this.alerts = [];
      this.droppedAlerts = 0;
      return message;
    }
    const digest = this.digest.take();
    const only = digest.sample[0];
    if (digest.bans + digest.unbans === 1 && only) return banMessage(only);
    this.counts.digested += digest.bans + digest.unbans;
    return digestMessage(digest, windowStart, now);
  }

  private async send(message: OutgoingMessage): Promise<void> {
    const scrubber = this.options.scrubber;
    const clean = scrubber ? { ...message, title: scrubber.scrub(message.title), text: scrubber.scrub(message.text) } : message;
    try {
      const { attempts } = await deliver(requestFor(this.channel, clean), {
        dispatcher: this.options.dispatcher,
        clock: this.options.clock,
        policy: this.options.policy,
        signal: this.abort.signal,
        ...(this.options.random ? { random: this.options.random } : {}),
        onRetry: (error, delayMs, attempt) => {
          this.counts.retries++;
          this.log.warn({ kind: message.kind, attempt, retryInMs: delayMs, problem: error.message }, 'notification not delivered; retrying');
        },
      });
      this.counts.sent++;
      this.lastError = null;
      this.log.debug({ kind: message.kind, attempts }, 'notification delivered');
    } catch (error) {
      if (this.stopped) return;
      this.counts.failed++;
      const problem = error instanceof DeliveryError ? error.message : 'internal error';
      this.lastError = problem;
      const final = error instanceof DeliveryError && !error.retryable;
      this.log.error(
        { kind: message.kind, problem },
        final ? 'notification refused; not retried (check the channel settings)' : 'notification dropped after retries',
      );
    }
  }
}
