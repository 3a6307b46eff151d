import assert from 'node:assert/strict';
import { appendFile, cp, rm } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { runCli, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { RedisServer } from '../ledger-redis/redis-server.ts';
import { ALIAS, KEY, SECRET, startNode, targetStates, type Call, type Node } from './cluster-nodes.ts';

interface TargetReport {
  state: string;
  lastError: { message: string } | null;
  lastPass: { foreign: string[] } | null;
}
interface Status {
  targets: TargetReport[];
  clock?: { offsetMs: number; skewed: boolean };
  unknownMutations?: { count: number; last: string };
}

/** Redis, the simulator as a process, and helpers reading its alias and call log. */
async function cluster(t: TestContext) {
  const redis = await RedisServer.start(t);
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const sent = async (route: string, address: string) =>
    ((await sim.admin('calls')) as Call[]).filter((c) => c.path.includes(route) && c.requestBody.includes(`"${address}"`)).length;
  const raw = new Redis(redis.url, { protocol: 2 });
  raw.on('error', () => {});
  t.after(() => raw.disconnect());
  return { redis, sim, alias, sent, raw };
}

async function status(node: Node): Promise<Status> {
  const result = await runCli(['status', '--json'], { env: node.env });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as Status;
}

async function banned(node: Node): Promise<string[]> {
  const result = await runCli(['banned', '--json'], { env: node.env });
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { banned: Array<{ address: string }> }).banned.map((b) => b.address).sort();
}

async function ban(node: Node, address: string, bantime = '1h'): Promise<void> {
  const result = await runCli(['ban', address, '--bantime', bantime], { env: node.env });
  assert.equal(result.code, 0, result.stderr);
}

async function sleepUntil(time: number): Promise<void> {
  const left = time - Date.now();
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
}

async function oneLeader(nodes: readonly Node[]): Promise<number> {
  let states: string[][] = [];
  await until('one leader in sync', async () => {
    states = await Promise.all(nodes.map(targetStates));
    return states.filter((s) => s[0] === 'in-sync').length === 1;
  });
  return states.findIndex((s) => s[0] === 'in-sync');
}

test("a replica whose clock is 60 s ahead leads without deleting live bans early: bans are dated by Redis's clock, and status shows its skew", async (t) => {
  const { sim, redis, alias, sent } = await cluster(t);
  // Started first, so it takes the lease and is the one that would delete.
  const ahead = await startNode(t, sim.url, redis.url, undefined, { EDGEBAN_TEST_CLOCK_OFFSET_MS: '60000' });
  await until('the skewed replica leads', async () => (await targetStates(ahead))[0] === 'in-sync');
  const other = await startNode(t, sim.url, redis.url);
  // 40 s: already over by the skewed clock, 40 s to go by Redis's.
  await ban(other, '192.0.2.60', '40');
  await until('the ban in the alias', async () => (await alias()).includes('192.0.2.60'));
  // A later ban through the same leader: once it is in, an early expiry of the first would have been acted on.
  await ban(other, '192.0.2.61', '1h');
  await until('the barrier ban in the alias', async () => (await alias()).includes('192.0.2.61'));
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.ok((await alias()).includes('192.0.2.60'), 'still in the alias');
  assert.equal(await sent('/alias_util/delete/', '192.0.2.60'), 0, 'never deleted');
  assert.equal(await sent('/alias_util/add/', '192.0.2.60'), 1, 'added once');
  const clock = (await status(ahead)).clock!;
  assert.ok(clock.skewed && clock.offsetMs < -55_000 && clock.offsetMs > -65_000, JSON.stringify(clock));
});

test('Redis stopped for 120 s, past the old client retry limit: bans decided meanwhile are spooled (log processing goes on), the targets say ledger-unreachable naming Redis, and everything is enforced once Redis answers', async (t) => {
  const { sim, redis, alias, sent } = await cluster(t);
  const nodes = [await startNode(t, sim.url, redis.url), await startNode(t, sim.url, redis.url)];
  await oneLeader(nodes);
  await ban(nodes[0]!, '192.0.2.70');
  await until('the first ban in the alias', async () => (await alias()).includes('192.0.2.70'));

  await redis.stop();
  const stoppedAt = Date.now();
  for (const node of nodes) {
    await until('the target shows the ledger unreachable', async () => {
      const target = (await status(node)).targets[0]!;
      return target.state === 'ledger-unreachable' && /the shared ledger in Redis is unreachable/.test(target.lastError?.message ?? '');
    });
  }
  const health = await runCli(['health'], { env: nodes[0]!.env });
  assert.equal(health.code, 0, 'an outage, like an unreachable firewall: healthy');
  assert.match(health.stdout, /ledger-unreachable/);
  assert.doesNotMatch(JSON.stringify((await status(nodes[0]!)).targets), /fix this on the firewall/);
  // A jail's ban on one replica, a manual ban and an unban on the other: all recorded at once.
  for (let i = 0; i < 3; i++) await appendFile(nodes[0]!.mailLog, dovecotFailure('198.51.100.71'));
  await until('the jail banned while Redis is down', async () => (await banned(nodes[0]!)).includes('198.51.100.71'));
  await ban(nodes[1]!, '203.0.113.72');
  const unban = await runCli(['unban', '192.0.2.70'], { env: nodes[1]!.env });
  assert.equal(unban.code, 0, unban.stderr);
  // Log processing does not stall: a later attacker on the first replica is banned too.
  for (let i = 0; i < 3; i++) await appendFile(nodes[0]!.mailLog, dovecotFailure('198.51.100.73'));
  await until('log processing goes on', async () => (await banned(nodes[0]!)).includes('198.51.100.73'));
  // The production client (the settings this test runs) used to give queued commands up after 20
  // reconnect attempts: about 11 s against a refused port, ~73 s in the field. A ban decided after
  // 100 s down, then 120 s down in all, as the issue measured.
  await sleepUntil(stoppedAt + 100_000);
  for (let i = 0; i < 3; i++) await appendFile(nodes[1]!.mailLog, dovecotFailure('198.51.100.74'));
  await until('a jail still bans after 100 s down', async () => (await banned(nodes[1]!)).includes('198.51.100.74'));
  await sleepUntil(stoppedAt + 120_000);

  await redis.start();
  const expected = ['198.51.100.71', '198.51.100.73', '198.51.100.74', '203.0.113.72'];
  let held: string[] = [];
  await until(
    'every ban decided meanwhile is enforced',
    async () => {
      held = await alias();
      return expected.every((a) => held.includes(a)) && !held.includes('192.0.2.70');
    },
    60_000,
  ).catch(async (error: Error) => {
    const states = await Promise.all(nodes.map(status));
    throw new Error(
      `${error.message}: alias ${JSON.stringify(held)}, targets ${JSON.stringify(states.map((s) => s.targets))}\n${nodes.map((n) => n.daemon.stdout.slice(-40).join('\n')).join('\n---\n')}`,
    );
  });
  for (const node of nodes) await until('each replica holds them', async () => JSON.stringify(await banned(node)) === JSON.stringify(expected));
  for (const address of expected) assert.equal(await sent('/alias_util/add/', address), 1, `one add for ${address}`);
  const fresh = await startNode(t, sim.url, redis.url);
  assert.deepEqual(await banned(fresh), expected, 'Redis holds them all');
});

test("Redis restored from an older snapshot: the replicas write back what it lost, so a replica started afterwards knows every ban in the alias as edgeban's", async (t) => {
  const { sim, redis, alias, sent } = await cluster(t);
  const nodes = [await startNode(t, sim.url, redis.url), await startNode(t, sim.url, redis.url)];
  await oneLeader(nodes);
  await ban(nodes[0]!, '192.0.2.80');
  await until('the first ban in the alias', async () => (await alias()).includes('192.0.2.80'));
  const old = path.join(await tempDir(t), 'redis-old');
  await redis.stop();
  await cp(redis.dir, old, { recursive: true });
  await redis.start();
  await ban(nodes[1]!, '192.0.2.81');
  await ban(nodes[0]!, '192.0.2.82');
  await until('the later bans in the alias', async () => (await alias()).includes('192.0.2.81') && (await alias()).includes('192.0.2.82'));

  await redis.stop();
  await rm(redis.dir, { recursive: true, force: true });
  await cp(old, redis.dir, { recursive: true });
  await redis.start();
  const expected = ['192.0.2.80', '192.0.2.81', '192.0.2.82'];
  // A replica started now loads only what Redis holds.
  await until(
    'Redis holds every ban again',
    async () => {
      const probe = await runCli(['banned', '--json'], { env: { ...nodes[0]!.env, EDGEBAN_CONTROL_SOCKET: path.join(await tempDir(t), 'none.sock') } });
      return (
        probe.code === 0 &&
        JSON.stringify((JSON.parse(probe.stdout) as { banned: Array<{ address: string }> }).banned.map((b) => b.address).sort()) === JSON.stringify(expected)
      );
    },
    60_000,
    500,
  );
  // The old replicas go; a new one leads and finds nothing foreign in the alias.
  const fresh = await startNode(t, sim.url, redis.url);
  for (const node of nodes) assert.equal(await node.daemon.stop(), 0);
  await until('the new replica leads', async () => (await targetStates(fresh))[0] === 'in-sync');
  const target = (await status(fresh)).targets[0]!;
  assert.deepEqual(target.lastPass?.foreign, [], 'no alias entry is foreign');
  assert.deepEqual(await banned(fresh), expected);
  for (const address of expected) assert.equal(await sent('/alias_util/delete/', address), 0);
});

test('an unban right after FLUSHALL stays: no replica writes the ban back, and the alias loses it', async (t) => {
  const { sim, redis, alias, sent, raw } = await cluster(t);
  const nodes = [await startNode(t, sim.url, redis.url), await startNode(t, sim.url, redis.url)];
  await oneLeader(nodes);
  await ban(nodes[0]!, '192.0.2.90');
  await ban(nodes[0]!, '192.0.2.91');
  await until('both bans in the alias', async () => (await alias()).includes('192.0.2.90') && (await alias()).includes('192.0.2.91'));
  await raw.flushall();
  const unban = await runCli(['unban', '192.0.2.90'], { env: nodes[1]!.env });
  assert.equal(unban.code, 0, unban.stderr);
  assert.match(unban.stdout, /1 ban ended/);
  await until('the alias loses it', async () => !(await alias()).includes('192.0.2.90'));
  // A later ban as a barrier: the refills of both replicas have come and gone by the time it is in.
  await ban(nodes[1]!, '192.0.2.92');
  await until('the barrier ban in the alias', async () => (await alias()).includes('192.0.2.92'));
  for (const node of nodes) assert.deepEqual(await banned(node), ['192.0.2.91', '192.0.2.92']);
  const fresh = await startNode(t, sim.url, redis.url);
  assert.deepEqual(await banned(fresh), ['192.0.2.91', '192.0.2.92'], 'Redis holds the unban');
  assert.ok(!(await alias()).includes('192.0.2.90'));
  assert.equal(await sent('/alias_util/add/', '192.0.2.90'), 1, 'never added back');
});

test('a journal entry of a type this version does not know: a restarted replica skips it, says so in status, and starts', async (t) => {
  const { sim, redis, raw } = await cluster(t);
  const node = await startNode(t, sim.url, redis.url);
  await ban(node, '192.0.2.95');
  const id = await raw.xadd(
    'edgeban:ledger:journal',
    '*',
    'w',
    'newer-replica',
    'n',
    '1',
    'm',
    JSON.stringify([{ op: 'quarantine', target: ALIAS, address: '192.0.2.96' }]),
  );
  assert.equal(await node.daemon.stop(), 0);
  const restarted = await startNode(t, sim.url, redis.url);
  const report = await status(restarted);
  assert.deepEqual(report.unknownMutations, { count: 1, last: `entry ${id}, op "quarantine"` });
  assert.ok(
    restarted.daemon.stdout.concat(restarted.daemon.stderr).some((line) => line.includes(id!) && line.includes('does not know')),
    'the log names the entry',
  );
  assert.deepEqual(await banned(restarted), ['192.0.2.95']);
});
