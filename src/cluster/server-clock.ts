import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { withinDeadline } from '../ledger/redis-deadline.ts';

/** Beyond this the local clock is reported as off (warning, status). */
export const SKEW_WARN_MS = 3_000;
const REMEASURE_MS = 30_000;

export interface ClockStatus {
  /** Redis's time minus this host's, as last measured (ms). */
  offsetMs: number;
  /** |offsetMs| > SKEW_WARN_MS. */
  skewed: boolean;
  /** Epoch ms (Redis time) of the last measurement; null before the first. */
  measuredAt: number | null;
}

/**
 * The cluster's one clock: the Redis server's TIME, read as this host's clock plus an offset
 * measured at connect and every 30 s (half the round trip counted). Ban starts and ends, expiry
 * and findtime all read `now()` from it, so a replica whose own clock is a minute ahead neither
 * ends bans early nor makes them short; durations (timers, sleeps) run on the local clock.
 * When Redis does not answer, the last offset stays.
 */
export class ServerClock implements Clock {
  private readonly redis: Pick<Redis, 'time'>;
  private readonly base: Clock;
  private readonly log: Logger;
  private offsetMs = 0;
  private measuredAt: number | null = null;
  private warned = false;
  private timer: TimerHandle | null = null;
  private stopped = false;

  constructor(options: { redis: Pick<Redis, 'time'>; base: Clock; logger: Logger }) {
    this.redis = options.redis;
    this.base = options.base;
    this.log = options.logger.child({ component: 'server-clock' });
  }

  /** Measures once (within `timeoutMs`, else the local clock stands until the next try) and keeps measuring. */
  async start(timeoutMs = 5_000): Promise<void> {
    await this.measure(timeoutMs);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  now(): number {
    return this.base.now() + this.offsetMs;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    return this.base.setTimer(ms, fn);
  }

  sleep(ms: number): Promise<void> {
    return this.base.sleep(ms);
  }

  status(): ClockStatus {
    return { offsetMs: this.offsetMs, skewed: Math.abs(this.offsetMs) > SKEW_WARN_MS, measuredAt: this.measuredAt };
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.base.setTimer(REMEASURE_MS, () => void this.measure(REMEASURE_MS / 2).finally(() => this.schedule()));
  }

  private async measure(timeoutMs: number): Promise<void> {
    const sent = this.base.now();
    try {
      const [seconds, micros] = await withinDeadline(this.redis.time(), timeoutMs, { clock: this.base, why: () => `no answer within ${timeoutMs} ms` });
      const received = this.base.now();
      const serverMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      this.offsetMs = Math.round(serverMs + (received - sent) / 2 - received);
      this.measuredAt = serverMs;
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "could not read the Redis server's time; the last measured offset stays");
      return;
    }
    const skewed = Math.abs(this.offsetMs) > SKEW_WARN_MS;
    if (skewed && !this.warned) {
      this.log.warn(
        { offsetMs: this.offsetMs },
        `this host's clock is ${Math.abs(this.offsetMs / 1000).toFixed(1)} s ${this.offsetMs < 0 ? 'ahead of' : 'behind'} the Redis server's: edgeban uses Redis's time for bans; fix the host's time sync (NTP)`,
      );
    } else if (!skewed && this.warned) {
      this.log.info({ offsetMs: this.offsetMs }, "this host's clock agrees with the Redis server's again");
    }
    this.warned = skewed;
  }
}
