import assert from 'node:assert/strict';
import { test } from 'node:test';
import { until } from '../helpers/until.ts';
import { CuttableProxy, RedisServer } from './redis-server.ts';
import { T, openReplica, rawClient, settle } from './replicas.ts';

test('a replica cut off from Redis gets every mutation written meanwhile once it reconnects; its own ban fails at once, naming Redis, leaving no trace', async (t) => {
  const redis = await RedisServer.start(t);
  const proxy = await CuttableProxy.start(t, redis.port);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, proxy.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await settle(a, b);
  assert.equal(b.ledger.isActive(T, '198.51.100.1'), true);

  await proxy.cut();
  await a.ledger.unban({ address: '198.51.100.1' });
  await a.ledger.ban({ target: T, address: '203.0.113.5', jail: 'postfix', origin: 'jail', durationMs: 600_000 });
  await a.ledger.ban({ target: T, address: '2001:db8::7', jail: 'traefik', origin: 'jail', durationMs: null });
  await until('the cut-off replica to notice', () => b.store.connected === false);
  const started = Date.now();
  await assert.rejects(
    b.ledger.ban({ target: T, address: '198.51.100.9', jail: 'dovecot', origin: 'jail', durationMs: 600_000 }),
    /the shared ledger in Redis is unreachable/,
  );
  assert.ok(Date.now() - started < 1_000, `refused at once (${Date.now() - started} ms), not after the client's retries`);
  assert.equal(b.ledger.isActive(T, '198.51.100.9'), false, 'a ban that was not recorded is not enforced');
  assert.equal(b.ledger.isActive(T, '203.0.113.5'), false, 'nothing arrives while cut off');
  await assert.rejects(b.store.catchUp(300), /did not catch up.*the shared ledger in Redis is unreachable/, 'a replica that cannot reach Redis says so');

  await proxy.restore();
  await settle(a, b);
  for (const replica of [a, b]) {
    assert.deepEqual([...replica.ledger.activeAddresses(T)].sort(), ['2001:db8::7', '203.0.113.5']);
    assert.equal(replica.ledger.isKnown(T, '198.51.100.1'), true);
  }
  assert.ok(
    b.changes.some((c) => c.address === '198.51.100.1'),
    'the unban made while cut off reached the listener',
  );
});

test('a Redis restart (AOF) loses nothing; both replicas reconnect and keep exchanging mutations', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await b.ledger.ban({ target: T, address: '198.51.100.2', jail: 'postfix', origin: 'jail', durationMs: 600_000 });
  await settle(a, b);
  await redis.restart();
  // Writes are refused while a replica is disconnected (they would otherwise queue unseen).
  await until('both replicas to reconnect', () => a.store.connected && b.store.connected);
  await a.ledger.ban({ target: T, address: '203.0.113.3', jail: 'traefik', origin: 'jail', durationMs: 600_000 });
  await b.ledger.unban({ address: '198.51.100.1' });
  await settle(a, b);
  for (const replica of [a, b]) assert.deepEqual([...replica.ledger.activeAddresses(T)].sort(), ['198.51.100.2', '203.0.113.3']);
  const fresh = await openReplica(t, redis.url);
  assert.deepEqual([...fresh.ledger.activeAddresses(T)].sort(), ['198.51.100.2', '203.0.113.3']);
  assert.equal(fresh.ledger.isKnown(T, '198.51.100.1'), true);
});

test('a Redis that lost its data (flushed, or restarted without persistence) is refilled from the replicas, not emptied into them', async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await b.ledger.ban({ target: T, address: '198.51.100.2', jail: 'postfix', origin: 'jail', durationMs: null });
  await settle(a, b);
  await raw.flushall();
  await a.ledger.ban({ target: T, address: '203.0.113.3', jail: 'traefik', origin: 'jail', durationMs: 600_000 });
  await settle(a, b);
  const expected = ['198.51.100.1', '198.51.100.2', '203.0.113.3'];
  for (const replica of [a, b]) assert.deepEqual([...replica.ledger.activeAddresses(T)].sort(), expected);
  const fresh = await openReplica(t, redis.url);
  assert.deepEqual([...fresh.ledger.activeAddresses(T)].sort(), expected, 'Redis holds every ban again');
  assert.equal(fresh.ledger.claimsOf(T, '198.51.100.2')[0]?.expiresAt, null);
});
