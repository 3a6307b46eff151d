import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { RedisServer } from './redis-server.ts';
import { PREFIX, T, openReplica, rawClient, settle } from './replicas.ts';

test('a journal entry with a mutation type this version does not know: skipped with a warning naming it, counted in status; the replica starts and keeps the rest', async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const runningLog = new CapturedLog('warn');
  const running = await openReplica(t, redis.url, { logger: runningLog.logger });
  await running.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  const claim = running.ledger.activeClaims()[0]!;
  // A newer edgeban's entry: an unknown op beside a ban this version knows.
  const id = await raw.xadd(
    `${PREFIX}ledger:journal`,
    '*',
    'w',
    'newer-replica',
    'n',
    '1',
    'm',
    JSON.stringify([
      { op: 'quarantine', target: T, address: '198.51.100.2', until: 1 },
      { op: 'ban', claim: { ...claim, address: '198.51.100.3' } },
    ]),
  );
  await settle(running);

  const log = new CapturedLog('warn');
  const restarted = await openReplica(t, redis.url, { logger: log.logger });
  assert.deepEqual(
    restarted.ledger
      .activeClaims()
      .map((c) => c.address)
      .sort(),
    ['198.51.100.1', '198.51.100.3'],
  );
  for (const [replica, captured] of [
    [restarted, log],
    [running, runningLog],
  ] as const) {
    assert.deepEqual(replica.ledger.unknownMutations(), { count: 1, last: `entry ${id}, op "quarantine"` });
    assert.ok(
      captured.entries().some((e) => e.entry === id && e.op === 'quarantine' && String(e.msg).includes('does not know')),
      'the warning names the entry',
    );
  }
  assert.ok(running.ledger.isActive(T, '198.51.100.3'), 'the running replica applied the known part');
});
