import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BanClaim } from '../../src/ledger/ban-claim.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { RedisLedgerCorruptError, RedisLedgerStore } from '../../src/ledger/redis-ledger-store.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { RedisServer } from './redis-server.ts';
import { PREFIX, T, openReplica, rawClient, settle } from './replicas.ts';

function claim(address: string, jail: string, overrides: Partial<BanClaim> = {}): BanClaim {
  return { target: T, address, jail, origin: 'jail', bannedAt: 1_000, expiresAt: 61_000, endedAt: null, banCount: 1, ...overrides };
}

async function openStore(url: string, prefix = PREFIX, compactAfterRecords?: number): Promise<RedisLedgerStore> {
  return RedisLedgerStore.open({ url, prefix, logger: silentLogger(), ...(compactAfterRecords !== undefined ? { compactAfterRecords } : {}) });
}

test('store contract: append is durable and load replays it; compact replaces the history; close ends cleanly', async (t) => {
  const redis = await RedisServer.start(t);
  const first = await openStore(redis.url);
  assert.deepEqual(await first.load(), [], 'a new prefix starts empty');
  await first.append([
    { op: 'ban', claim: claim('198.51.100.1', 'dovecot') },
    { op: 'ban', claim: claim('198.51.100.2', 'postfix') },
  ]);
  await first.append([{ op: 'end', target: T, address: '198.51.100.1', jail: null, at: 5_000 }]);
  await first.close();

  const second = await openStore(redis.url);
  const loaded = await second.load();
  assert.deepEqual(
    loaded.find((c) => c.address === '198.51.100.1'),
    claim('198.51.100.1', 'dovecot', { endedAt: 5_000 }),
  );
  assert.deepEqual(
    loaded.find((c) => c.address === '198.51.100.2'),
    claim('198.51.100.2', 'postfix'),
  );
  // Compaction keeps only what it is given (the ledger purged the ended claim).
  await second.compact([claim('198.51.100.2', 'postfix')]);
  await second.append([{ op: 'ban', claim: claim('203.0.113.7', 'traefik', { expiresAt: null }) }]);
  await second.close();

  const third = await openStore(redis.url);
  const after = await third.load();
  assert.deepEqual(after.map((c) => c.address).sort(), ['198.51.100.2', '203.0.113.7']);
  assert.equal(after.find((c) => c.address === '203.0.113.7')?.expiresAt, null, 'permanent stays permanent');
  await third.close();

  // Another prefix is another deployment's ledger.
  const other = await openStore(redis.url, 'edgeban-other:');
  assert.deepEqual(await other.load(), []);
  await other.close();
});

test('compaction bounds the journal: a snapshot plus at most one compaction period of entries', async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const clock = new ManualClock();
  const store = await openStore(redis.url, PREFIX, 20);
  const ledger = await Ledger.open({ store, clock, logger: silentLogger(), historyRetentionMs: 1_000 });
  await ledger.ban({ target: T, address: '198.51.100.200', jail: 'dovecot', origin: 'jail', durationMs: 500 });
  await clock.advance(2_000); // ended, and past the history retention: compaction purges it
  const rounds = 40;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 5; i++) await ledger.ban({ target: T, address: `198.51.100.${i}`, jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
    await store.catchUp(20_000); // compaction is judged on what this replica has read back
  }
  await ledger.close();
  const length = await raw.xlen(`${PREFIX}ledger:journal`);
  // Threshold 20 + 2 × 5 claims: about 30 records a period, and one period is kept for replicas behind.
  assert.ok(length <= 80, `journal trimmed by compaction (${length} entries left of ${rounds * 5 + 1} written)`);
  const meta = await raw.hgetall(`${PREFIX}ledger:meta`);
  assert.notEqual(meta.snapshotId, '0-0', 'a snapshot was written');
  assert.equal(await raw.pttl(meta.snapshotKey!), -1, 'the installed snapshot does not expire');

  const reopened = await openStore(redis.url);
  const claims = await reopened.load();
  assert.deepEqual(
    claims.map((c) => c.address).sort(),
    ['198.51.100.0', '198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'],
    'the purged claim is gone',
  );
  assert.ok(
    claims.every((c) => c.banCount === rounds),
    'every repeat counted, across snapshot and journal',
  );
  await reopened.close();
});

test('a journal entry that is not a ledger mutation stops load() naming the key and entry', async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const store = await openStore(redis.url);
  await store.load();
  await store.append([{ op: 'ban', claim: claim('198.51.100.1', 'dovecot') }]);
  await store.close();
  const id = await raw.xadd(`${PREFIX}ledger:journal`, '*', 'w', 'someone', 'n', '1', 'm', '[{"op":"ban"}]');

  const reopened = await openStore(redis.url);
  await assert.rejects(reopened.load(), (error: unknown) => {
    assert.ok(error instanceof RedisLedgerCorruptError);
    assert.match(error.message, new RegExp(`key ${PREFIX}ledger:journal, entry ${id}: not a ledger mutation`));
    return true;
  });
  await reopened.close();
});

test('an unreachable Redis fails open() with a clear error naming EDGEBAN_REDIS_URL', async (t) => {
  const redis = await RedisServer.start(t);
  const url = redis.url;
  await redis.stop();
  await assert.rejects(
    RedisLedgerStore.open({ url, prefix: PREFIX, logger: silentLogger(), connectTimeoutMs: 2_000 }),
    /cannot reach Redis for the shared ledger \(EDGEBAN_REDIS_URL\)/,
  );
});

test('two replicas: a ban on one reaches the other (onChange fires), and so does the unban', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  const banned = await a.ledger.ban({ target: T, address: '198.51.100.7', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await settle(a, b);
  assert.equal(b.ledger.isActive(T, '198.51.100.7'), true);
  assert.deepEqual(b.ledger.claimsOf(T, '198.51.100.7'), [banned], 'the same claim, expiry included');
  assert.deepEqual(b.changes, [{ target: T, address: '198.51.100.7' }]);
  assert.deepEqual(a.changes, [{ target: T, address: '198.51.100.7' }], 'a replica is not told twice of its own write');

  await b.ledger.unban({ address: '198.51.100.7' });
  await settle(a, b);
  assert.equal(a.ledger.isActive(T, '198.51.100.7'), false);
  assert.equal(a.changes.length, 2);
  assert.deepEqual(a.ledger.claimsOf(T, '198.51.100.7'), b.ledger.claimsOf(T, '198.51.100.7'));

  // Expiry needs no write: each replica reaches it from the claim's expiresAt, by its own clock.
  await a.ledger.ban({ target: T, address: '203.0.113.9', jail: 'postfix', origin: 'jail', durationMs: 60_000 });
  await settle(a, b);
  const before = b.changes.length;
  await a.clock.advance(60_000);
  await b.clock.advance(60_000);
  assert.equal(a.ledger.isActive(T, '203.0.113.9'), false);
  assert.equal(b.ledger.isActive(T, '203.0.113.9'), false);
  assert.deepEqual(b.changes.slice(before), [{ target: T, address: '203.0.113.9' }], 'the other replica announces the expiry too');
});

test('a restarted replica loads everything, including what others wrote while it was down', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url);
  let b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await b.ledger.ban({ target: T, address: '198.51.100.2', jail: 'postfix', origin: 'jail', durationMs: null });
  await b.close();
  await a.ledger.ban({ target: T, address: '2001:DB8::5', jail: 'traefik', origin: 'jail', durationMs: 600_000 });
  await a.ledger.unban({ address: '198.51.100.2' });
  b = await openReplica(t, redis.url);
  assert.deepEqual([...b.ledger.activeAddresses(T)].sort(), ['198.51.100.1', '2001:db8::5']);
  assert.equal(b.ledger.isKnown(T, '198.51.100.2'), true, 'ended claims stay as history');
});

test('concurrent writes to one claim by two replicas end in the same state on both (stream order wins)', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url, { clock: new ManualClock(1_000_000) });
  const b = await openReplica(t, redis.url, { clock: new ManualClock(2_000_000) });
  for (let round = 0; round < 20; round++) {
    const address = `198.51.100.${round}`;
    // Same jail on both nodes (one DaemonSet): both claims share one key.
    await Promise.all([
      a.ledger.ban({ target: T, address, jail: 'dovecot', origin: 'jail', durationMs: 600_000 }),
      b.ledger.ban({ target: T, address, jail: 'dovecot', origin: 'jail', durationMs: 60_000 }),
      round % 2 === 0 ? b.ledger.unban({ address }) : Promise.resolve(0),
    ]);
  }
  await settle(a, b);
  for (let round = 0; round < 20; round++) {
    const address = `198.51.100.${round}`;
    assert.deepEqual(a.ledger.claimsOf(T, address), b.ledger.claimsOf(T, address), `${address}: both replicas hold the same claim`);
  }
  const fresh = await openReplica(t, redis.url);
  for (let round = 0; round < 20; round++) {
    const address = `198.51.100.${round}`;
    assert.deepEqual(fresh.ledger.claimsOf(T, address), a.ledger.claimsOf(T, address), `${address}: what is stored is what the replicas hold`);
  }
});

test('purges decided by one replica compaction reach the others', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url, { historyRetentionMs: 1_000, store: { compactAfterRecords: 3 } });
  const b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.3', jail: 'dovecot', origin: 'jail', durationMs: 100 });
  await settle(a, b);
  assert.equal(b.ledger.isKnown(T, '198.51.100.3'), true);
  await a.clock.advance(5_000);
  await b.clock.advance(5_000);
  for (let i = 0; i < 12; i++) {
    await a.ledger.ban({ target: T, address: '203.0.113.1', jail: 'postfix', origin: 'jail', durationMs: null });
    await settle(a, b);
  }
  assert.equal(a.ledger.isKnown(T, '198.51.100.3'), false, 'purged past its retention');
  assert.equal(b.ledger.isKnown(T, '198.51.100.3'), false, 'the other replica forgot it too');
  assert.deepEqual([...b.ledger.activeAddresses(T)], ['203.0.113.1']);
});

test("a snapshot key lost from Redis is named and reported; the journal's bans after it are kept, and the next load is clean", async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const store = await openStore(redis.url);
  await store.load();
  await store.append([{ op: 'ban', claim: claim('198.51.100.1', 'dovecot') }]);
  await store.catchUp(20_000);
  await store.compact([claim('198.51.100.1', 'dovecot')]);
  await store.append([{ op: 'ban', claim: claim('203.0.113.2', 'postfix') }]);
  await store.close();
  const meta = await raw.hgetall(`${PREFIX}ledger:meta`);
  assert.notEqual(meta.snapshotKey, '', 'a snapshot was written');
  await raw.del(meta.snapshotKey!);

  const reopened = await openStore(redis.url);
  const claims = await reopened.load();
  assert.deepEqual(
    claims.map((c) => c.address),
    ['203.0.113.2'],
    'what the journal still holds is kept',
  );
  const damage = reopened.damage();
  assert.ok(damage);
  assert.match(
    damage.problems.join(),
    new RegExp(`snapshot key ${meta.snapshotKey!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is missing: the 1 claims it held .* are lost`),
  );
  assert.equal(damage.keptClaims, 1);
  await reopened.close();
  const again = await openStore(redis.url);
  assert.deepEqual(
    (await again.load()).map((c) => c.address),
    ['203.0.113.2'],
  );
  assert.equal(again.damage(), null, 'reported once, not at every start');
  await again.close();
});

test('an unban on one replica right after a ban on another ends that ban (it reads the shared ledger before deciding)', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  for (let i = 0; i < 5; i++) {
    const address = `198.51.100.${40 + i}`;
    await b.ledger.ban({ target: T, address, jail: 'postfix', origin: 'jail', durationMs: 600_000 });
    assert.equal(await a.ledger.unban({ address }), 1, `${address}: ended from the other replica`);
  }
  await b.ledger.sync();
  assert.deepEqual([...b.ledger.activeAddresses(T)], []);
});
