import type { Redis } from 'ioredis';
import type { Logger } from '../logging/logger.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { withinDeadline } from '../ledger/redis-deadline.ts';

export type LeaseRole = 'leader' | 'follower';

export interface LeaderLeaseOptions {
  redis: Pick<Redis, 'eval'>;
  clock: Clock;
  logger: Logger;
  /** The Redis key of the lease (its fencing counter is KEY:fence). */
  key: string;
  /** This replica's id, unique per process. */
  holder: string;
  /** How long the lease lives in Redis without a renewal (ms). */
  ttlMs: number;
  /** Told of every change of role. */
  onRole: (role: LeaseRole, token: number | null) => void;
}

export interface LeaseStatus {
  role: LeaseRole;
  token: number | null;
  holder: string;
}

// Takes the lease when nobody holds it (SET NX PX, under a fresh fencing token above every token
// the asking replica has seen) or renews it when this holder still does. Answers {1, token} to the
// leader, {0, current token, milliseconds the current lease has left} to anyone else.
const ACQUIRE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(token)}
  end
  return {0, tonumber(token) or 0, math.max(redis.call('PTTL', KEYS[1]), 1)}
end
-- A Redis that lost the counter (FLUSHALL, an older snapshot) must not hand out a token again.
if tonumber(ARGV[3]) > (tonumber(redis.call('GET', KEYS[2])) or 0) then redis.call('SET', KEYS[2], ARGV[3]) end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2], 'NX')
return {1, token}`;

// Gives the lease up only if this holder still has it (a clean stop hands over at once).
const RELEASE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(.*)|%d+$') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * One leader among replicas through a lease in Redis. The leader renews every third of the TTL;
 * it counts itself leader only until (time it sent its last successful renewal + TTL − a margin),
 * by its own clock, so a leader cut off from Redis steps down before its lease can expire there
 * and another replica takes it: two replicas never both act as leader, whatever the network does
 * (as long as clocks run at about the same rate; offsets do not matter). A follower retries as
 * soon as the current lease would expire, so it takes over within one TTL of the leader's death.
 * Each acquisition gets a new fencing token (a counter in Redis), shown in status; every replica
 * remembers the highest token it has seen, so a Redis that lost the counter never repeats one.
 */
export class LeaderLease {
  private readonly options: LeaderLeaseOptions;
  private readonly log: Logger;
  private role: LeaseRole = 'follower';
  private token: number | null = null;
  /** The highest token this replica has seen: the counter never goes below it, even after Redis lost it. */
  private highestToken = 0;
  /** Local time until which this replica may act as leader. */
  private leaderUntil = 0;
  private tickTimer: TimerHandle | null = null;
  private expiryTimer: TimerHandle | null = null;
  private stopped = false;
  private attempt: Promise<void> | null = null;

  constructor(options: LeaderLeaseOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'leader-lease', lease: options.key });
  }

  private get renewMs(): number {
    return Math.max(50, Math.floor(this.options.ttlMs / 3));
  }
  /** Steps down this much before the lease could expire in Redis: timers and event loops run late. */
  private get marginMs(): number {
    return Math.max(25, Math.floor(this.options.ttlMs / 5));
  }

  /** Tries at once, then keeps trying (follower) or renewing (leader) until `stop`. */
  start(): Promise<void> {
    return this.tick();
  }

  status(): LeaseStatus {
    return { role: this.role, token: this.token, holder: this.options.holder };
  }

  /** Stops renewing and releases the lease if held, so a follower takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.tickTimer?.cancel();
    this.expiryTimer?.cancel();
    await this.attempt;
    const wasLeader = this.role === 'leader';
    this.setRole('follower', null);
    if (!wasLeader) return;
    try {
      await this.withTimeout(this.options.redis.eval(RELEASE_SCRIPT, 1, this.options.key, this.options.holder));
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, 'could not release the leader lease; another replica takes over when it expires');
    }
  }

  private tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.attempt = this.tryOnce().finally(() => {
      this.attempt = null;
    });
    return this.attempt;
  }

  private async tryOnce(): Promise<void> {
    const { redis, clock, key, holder, ttlMs } = this.options;
    const sentAt = clock.now();
    let next = this.renewMs;
    try {
      const answer = await this.withTimeout(redis.eval(ACQUIRE_SCRIPT, 2, key, `${key}:fence`, holder, String(ttlMs), String(this.highestToken)));
      const [held, token, leftMs] = (answer as unknown[]).map(Number) as [number, number, number | undefined];
      if (this.stopped) return;
      this.highestToken = Math.max(this.highestToken, token);
      if (held === 1) {
        this.leaderUntil = sentAt + ttlMs - this.marginMs;
        this.setRole('leader', token);
        this.armExpiry();
      } else {
        this.setRole('follower', null);
        // Try again right after the current lease would expire.
        next = Math.min(this.renewMs, (leftMs ?? this.renewMs) + 10);
      }
    } catch (error) {
      if (this.stopped) return;
      if (this.role === 'leader')
        this.log.warn({ err: (error as Error).message }, 'could not renew the leader lease; stepping down if it is not renewed in time');
      this.checkExpiry();
    }
    if (!this.stopped) this.tickTimer = clock.setTimer(next, () => void this.tick());
  }

  /** A command that does not answer within one renewal interval counts as failed (ioredis would keep it queued). */
  private withTimeout<T>(command: Promise<T>): Promise<T> {
    return withinDeadline(command, this.renewMs, { clock: this.options.clock });
  }

  private armExpiry(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = this.options.clock.setTimer(this.leaderUntil - this.options.clock.now(), () => this.checkExpiry());
  }

  private checkExpiry(): void {
    if (this.role === 'leader' && this.options.clock.now() >= this.leaderUntil) {
      this.log.warn('leader lease not renewed in time (Redis unreachable?): standing by as follower');
      this.setRole('follower', null);
    }
  }

  private setRole(role: LeaseRole, token: number | null): void {
    if (role === this.role && token === this.token) return;
    const changed = role !== this.role;
    this.role = role;
    this.token = token;
    if (!changed) return;
    // (the logger redacts fields named `token`)
    if (role === 'leader') this.log.info({ fencingToken: token }, 'leader lease taken: this replica acts for it');
    else this.log.info('leader lease not held: another replica acts for it; standing by');
    this.options.onRole(role, token);
  }
}
