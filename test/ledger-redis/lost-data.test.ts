import assert from 'node:assert/strict';
import { cp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { CuttableProxy, RedisServer } from './redis-server.ts';
import { T, openReplica, rawClient, settle } from './replicas.ts';

const TEN_MIN = 600_000;

test('bans and unbans made while Redis is cut off are spooled on disk at once, named as Redis being unreachable, and replayed in order once it answers', async (t) => {
  const redis = await RedisServer.start(t);
  const proxy = await CuttableProxy.start(t, redis.port);
  const spoolDir = path.join(await tempDir(t), 'ledger-spool');
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, proxy.url, { store: { spoolDir } });
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await settle(a, b);

  await proxy.cut();
  await until('the cut-off replica to notice', () => b.store.connected === false);
  assert.match(b.ledger.unreachable() ?? '', /the shared ledger in Redis is unreachable.*spool/);
  await b.clock.advance(1000);
  const started = Date.now();
  await b.ledger.ban({ target: T, address: '203.0.113.5', jail: 'postfix', origin: 'jail', durationMs: TEN_MIN });
  await b.ledger.unban({ address: '198.51.100.1' });
  await b.ledger.ban({ target: T, address: '203.0.113.6', jail: 'postfix', origin: 'jail', durationMs: TEN_MIN });
  assert.ok(Date.now() - started < 2_000, `recorded at once (${Date.now() - started} ms), not after the client's retries`);
  assert.equal(b.ledger.isActive(T, '203.0.113.5'), true, 'a spooled ban is enforced by its replica');
  assert.equal((await readFile(path.join(spoolDir, 'spool.jsonl'), 'utf8')).trim().split('\n').length, 3, 'three durable batches');
  assert.equal(a.ledger.isActive(T, '203.0.113.5'), false);

  await proxy.restore();
  await until('the spool is replayed', () => a.ledger.isActive(T, '203.0.113.6'));
  await settle(a, b);
  for (const replica of [a, b]) assert.deepEqual([...replica.ledger.activeAddresses(T)].sort(), ['203.0.113.5', '203.0.113.6']);
  assert.equal(b.ledger.unreachable(), null);
  await until('the spool emptied', async () => (await readFile(path.join(spoolDir, 'spool.jsonl'), 'utf8')) === '');
});

test('a spooled ban survives a restart of its replica and is replayed then; a spooled ban older than an unban made elsewhere is dropped, not replayed over it', async (t) => {
  const redis = await RedisServer.start(t);
  const proxy = await CuttableProxy.start(t, redis.port);
  const spoolDir = path.join(await tempDir(t), 'ledger-spool');
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, proxy.url, { store: { spoolDir } });
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await settle(a, b);

  await proxy.cut();
  await until('the cut-off replica to notice', () => b.store.connected === false);
  await b.clock.advance(1000);
  await b.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await b.ledger.ban({ target: T, address: '203.0.113.7', jail: 'postfix', origin: 'jail', durationMs: TEN_MIN });
  await b.close();
  // Meanwhile an operator unbans through the other replica, later than the spooled repeat ban.
  await a.clock.advance(6000);
  await a.ledger.unban({ address: '198.51.100.1' });

  await proxy.restore();
  const c = await openReplica(t, proxy.url, { store: { spoolDir } });
  assert.equal(c.ledger.isActive(T, '203.0.113.7'), true, 'the spooled ban holds from the start');
  await until('the spool is replayed', () => a.ledger.isActive(T, '203.0.113.7'));
  await settle(a, c);
  for (const replica of [a, c]) {
    assert.deepEqual([...replica.ledger.activeAddresses(T)], ['203.0.113.7']);
    assert.equal(replica.ledger.isKnown(T, '198.51.100.1'), true);
  }
});

test('Redis restored from an older snapshot: the replicas notice (entry numbers went back) and write back what it lost; bans stay known, unbans stay', async (t) => {
  const redis = await RedisServer.start(t);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await settle(a, b);
  const old = path.join(await tempDir(t), 'old');
  await redis.stop();
  await cp(redis.dir, old, { recursive: true });
  await redis.start();
  await until('both replicas to reconnect', () => a.store.connected && b.store.connected);
  for (const replica of [a, b]) await replica.clock.advance(1000);
  await a.ledger.ban({ target: T, address: '203.0.113.2', jail: 'postfix', origin: 'jail', durationMs: TEN_MIN });
  await b.ledger.unban({ address: '198.51.100.1' });
  await settle(a, b);

  await redis.stop();
  await rm(redis.dir, { recursive: true, force: true });
  await cp(old, redis.dir, { recursive: true });
  await redis.start();
  await until('both replicas to reconnect', () => a.store.connected && b.store.connected);
  const raw = rawClient(t, redis.url);
  const fresh = async () => {
    const replica = await openReplica(t, redis.url);
    const state = [[...replica.ledger.activeAddresses(T)].sort(), replica.ledger.isKnown(T, '198.51.100.1')];
    await replica.close();
    return state;
  };
  await until('Redis holds what it lost again', async () => JSON.stringify(await fresh()) === JSON.stringify([['203.0.113.2'], true]), 30_000, 300);
  assert.ok(Number(await raw.hget('edgeban-test:ledger:meta', 'entries')) > 0);
  for (const replica of [a, b]) assert.deepEqual([...replica.ledger.activeAddresses(T)], ['203.0.113.2']);
});

test('an unban right after FLUSHALL stays: the replicas refilling Redis write the unbanned claim back as ended', async (t) => {
  const redis = await RedisServer.start(t);
  const raw = rawClient(t, redis.url);
  const a = await openReplica(t, redis.url);
  const b = await openReplica(t, redis.url);
  await a.ledger.ban({ target: T, address: '198.51.100.1', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await a.ledger.ban({ target: T, address: '198.51.100.2', jail: 'dovecot', origin: 'jail', durationMs: TEN_MIN });
  await settle(a, b);
  await raw.flushall();
  await b.clock.advance(1000);
  assert.equal(await b.ledger.unban({ address: '198.51.100.1' }), 1);
  await settle(a, b);
  await settle(a, b);
  for (const replica of [a, b]) {
    assert.deepEqual([...replica.ledger.activeAddresses(T)], ['198.51.100.2']);
    assert.equal(replica.ledger.isKnown(T, '198.51.100.1'), true, "still edgeban's: its entry is removed, not left as foreign");
  }
  const fresh = await openReplica(t, redis.url);
  assert.deepEqual([...fresh.ledger.activeAddresses(T)], ['198.51.100.2']);
});
