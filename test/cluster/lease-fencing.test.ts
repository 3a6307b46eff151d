import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { LeaderLease } from '../../src/cluster/leader-lease.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { until } from '../helpers/until.ts';
import { RedisServer } from '../ledger-redis/redis-server.ts';

test('the fencing token never repeats: after FLUSHALL the lease is taken again under a higher token, whichever replica takes it', async (t) => {
  const server = await RedisServer.start(t);
  const redis = new Redis(server.url, { protocol: 2 });
  redis.on('error', () => {});
  t.after(() => redis.disconnect());
  const leases = ['a', 'b'].map(
    (holder) =>
      new LeaderLease({
        redis,
        clock: systemClock,
        logger: silentLogger(),
        key: 'test:lease:target',
        holder,
        ttlMs: 900,
        onRole: () => {},
      }),
  );
  t.after(() => Promise.all(leases.map((l) => l.stop())));
  await Promise.all(leases.map((l) => l.start()));
  const leader = () => leases.find((l) => l.status().role === 'leader');
  await until('one leader', async () => leader() !== undefined);
  const before = leader()!.status();
  assert.ok(before.token !== null && before.token >= 1);

  await redis.flushall();
  // The lease is gone with the counter. Whichever replica takes it next (the leader renewing or the
  // follower retrying) gets a token above the one held before.
  let taken = '';
  await until('the lease taken again', async () => {
    taken = (await redis.get('test:lease:target')) ?? '';
    return taken !== '';
  });
  const [holder, token] = taken.split('|') as [string, string];
  assert.ok(Number(token) > before.token!, `token ${token} after FLUSHALL, ${before.token} before`);
  await until('the replica holding it counts itself leader under that token', async () =>
    leases.some((l) => l.status().holder === holder && l.status().role === 'leader' && l.status().token === Number(token)),
  );
  await until('the other stands by', async () => leases.filter((l) => l.status().role === 'leader').length === 1);
  assert.equal(await redis.get('test:lease:target:fence'), token);
});
