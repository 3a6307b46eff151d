import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { LedgerSettings } from '../config/env.ts';
import type { SharedFailureCounter } from '../jails/jail-engine.ts';
import type { Logger } from '../logging/logger.ts';
import type { TargetReconciler } from '../targets/target-reconciler.ts';
import type { Clock } from '../util/clock.ts';
import type { EnforcementRoles } from './enforcement-roles.ts';
import { LeaderLease, type LeaderLeaseOptions } from './leader-lease.ts';
import { ServerClock, type ClockStatus } from './server-clock.ts';
import { RedisFailureCounter } from './shared-failure-counter.ts';

/** The Redis ledger's roles: a leader lease per reconciler and one for announcing (see enforcement-roles.ts). */
export class LeasedRoles implements EnforcementRoles {
  private readonly redis: Redis;
  private readonly holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly leases: LeaderLease[] = [];
  private readonly notifications: LeaderLease;
  private readonly settings: Extract<LedgerSettings, { kind: 'redis' }>;
  /** The leases measure their TTL as durations: the local clock serves. */
  private readonly localClock: Clock;
  private readonly logger: Logger;
  readonly sharedFailures: SharedFailureCounter;
  readonly serverClock: ServerClock;

  constructor(settings: Extract<LedgerSettings, { kind: 'redis' }>, clock: Clock, logger: Logger) {
    this.settings = settings;
    this.localClock = clock;
    this.logger = logger;
    // Its own connection: a lease renewal must not queue behind the ledger's writes and reads.
    this.redis = new Redis(settings.url, {
      protocol: 2,
      connectionName: 'edgeban-lease',
      ...(settings.password ? { password: settings.password } : {}),
    });
    this.redis.on('error', () => {}); // the leases and the counter report what they could not do
    this.sharedFailures = new RedisFailureCounter(this.redis, settings.prefix);
    this.serverClock = new ServerClock({ redis: this.redis, base: clock, logger });
    this.notifications = this.lease('notifications', () => {});
    void this.notifications.start();
  }

  private lease(name: string, onRole: LeaderLeaseOptions['onRole']): LeaderLease {
    return new LeaderLease({
      redis: this.redis,
      clock: this.localClock,
      logger: this.logger,
      holder: this.holder,
      key: `${this.settings.prefix}lease:${name}`,
      ttlMs: this.settings.leaseTtlMs,
      onRole,
    });
  }

  enforce(reconciler: TargetReconciler): void {
    // Standing by until the lease answers: nothing is sent before this replica knows it leads.
    reconciler.standBy();
    const lease = this.lease(`target:${reconciler.status().id}`, (role) => {
      if (role === 'leader') void reconciler.start();
      else reconciler.standBy();
    });
    this.leases.push(lease);
    void lease.start();
  }

  async release(): Promise<void> {
    const leases = this.leases.splice(0);
    await Promise.all(leases.map((l) => l.stop()));
  }

  announces(): boolean {
    return this.notifications.status().role === 'leader';
  }

  get clock(): Clock {
    return this.serverClock;
  }

  clockStatus(): ClockStatus {
    return this.serverClock.status();
  }

  async close(): Promise<void> {
    await this.release();
    await this.notifications.stop();
    this.serverClock.stop();
    this.redis.disconnect();
  }
}
