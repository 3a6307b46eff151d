import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SharedFailureCounter } from '../jails/jail-engine.ts';
import { withinDeadline } from '../ledger/redis-deadline.ts';

// One sorted set per (jail, address): a member per failure scored by its time, trimmed to
// findtime and expiring with it, so an address costs at most maxretry small members for findtime.
const RECORD_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf')`;

/** A count that takes longer than this is given up: log processing never waits on Redis. */
const ANSWER_WITHIN_MS = 1_000;

/** Failures of every replica in Redis (see SharedFailureCounter). */
export class RedisFailureCounter implements SharedFailureCounter {
  private readonly redis: Pick<Redis, 'eval' | 'del' | 'status'>;
  private readonly prefix: string;
  private readonly replica = randomUUID().slice(0, 8);
  private seq = 0;

  constructor(redis: Pick<Redis, 'eval' | 'del' | 'status'>, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(jail: string, address: string): string {
    return `${this.prefix}failures:${jail}:${address}`;
  }

  async record(jail: string, address: string, timeSec: number, nowSec: number, findtimeSec: number): Promise<number> {
    // Disconnected: answer at once rather than let the client queue the command (the jail counts locally meanwhile).
    if (this.redis.status !== 'ready') throw new Error(`Redis is not connected (${this.redis.status})`);
    const member = `${this.replica}:${++this.seq}`;
    const horizon = nowSec - findtimeSec;
    return Number(
      await withinDeadline(
        this.redis.eval(RECORD_SCRIPT, 1, this.key(jail, address), member, String(timeSec), String(horizon), String(Math.ceil(findtimeSec * 1000))),
        ANSWER_WITHIN_MS,
      ),
    );
  }

  async reset(jail: string, address: string): Promise<void> {
    await withinDeadline(this.redis.del(this.key(jail, address)), ANSWER_WITHIN_MS);
  }
}
