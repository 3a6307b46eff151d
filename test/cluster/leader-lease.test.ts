import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runCli, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { until } from '../helpers/until.ts';
import { RedisServer } from '../ledger-redis/redis-server.ts';

import { ALIAS, KEY, SECRET, startNode, targetStates, LEASE_SEC, type Call } from './cluster-nodes.ts';

test('three replicas on one Redis: one leader enforces, each ban is one add and one state kill; SIGKILL of the leader hands over within the lease TTL', async (t) => {
  const redis = await RedisServer.start(t);
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const nodes = [await startNode(t, sim.url, redis.url), await startNode(t, sim.url, redis.url), await startNode(t, sim.url, redis.url)];
  const calls = async () => (await sim.admin('calls')) as Call[];
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const sent = async (route: string, address: string) => (await calls()).filter((c) => c.path.includes(route) && c.requestBody.includes(`"${address}"`)).length;

  // Exactly one leader; the others stand by and are still ready.
  let states: string[][] = [];
  await until('one leader elected and in sync', async () => {
    states = await Promise.all(nodes.map(targetStates));
    return states.filter((s) => s[0] === 'in-sync').length === 1 && states.filter((s) => s[0] === 'standby').length === 2;
  }).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(states)}\n${nodes.map((n) => n.daemon.stderr.join('\n')).join('\n---\n')}`);
  });
  const leader = states.findIndex((s) => s[0] === 'in-sync');
  const followers = nodes.filter((_, i) => i !== leader);

  // A ban decided on a follower (its log) and a manual ban on the other follower: one add and one kill each.
  for (let i = 0; i < 3; i++) await appendFile(followers[0]!.mailLog, dovecotFailure('192.0.2.50'));
  const manual = await runCli(['ban', '203.0.113.9', '--bantime', '1h'], { env: followers[1]!.env });
  assert.equal(manual.code, 0, manual.stderr);
  await until('both bans in the alias', async () => {
    const held = await alias();
    return held.includes('192.0.2.50') && held.includes('203.0.113.9');
  });
  // Every replica has seen both bans (their own status), so a late duplicate would have been sent by now.
  for (const node of nodes) {
    await until('the replica holds both bans', async () => {
      const banned = JSON.parse((await runCli(['banned', '--json'], { env: node.env })).stdout) as { banned: Array<{ address: string }> };
      return ['192.0.2.50', '203.0.113.9'].every((a) => banned.banned.some((b) => b.address === a));
    });
  }
  for (const address of ['192.0.2.50', '203.0.113.9']) {
    assert.equal(await sent('/alias_util/add/', address), 1, `one add for ${address}`);
    assert.equal(await sent('kill_states', address), 1, `one state kill for ${address}`);
  }

  // The leader dies without releasing its lease: a follower takes over within the TTL and enforces.
  nodes[leader]!.daemon.child.kill('SIGKILL');
  await nodes[leader]!.daemon.exited;
  const killedAt = Date.now();
  const late = await runCli(['ban', '198.51.100.20', '--bantime', '1h'], { env: followers[0]!.env });
  assert.equal(late.code, 0, late.stderr);
  await until('the ban made after the leader died is in the alias', async () => (await alias()).includes('198.51.100.20'));
  const handover = Date.now() - killedAt;
  // The lease lapses at most one TTL after the leader's last renewal; a full pass and polling add a little.
  assert.ok(handover < (LEASE_SEC + 3) * 1000, `handover took ${handover} ms`);
  await until('one new leader, one follower', async () => {
    const now = await Promise.all(followers.map(targetStates));
    return now.filter((s) => s[0] === 'in-sync').length === 1 && now.filter((s) => s[0] === 'standby').length === 1;
  });
  assert.deepEqual((await alias()).sort(), ['192.0.2.50', '198.51.100.20', '203.0.113.9']);
  assert.equal(await sent('/alias_util/add/', '198.51.100.20'), 1, 'one add after the handover');
  for (const follower of followers) assert.equal(await follower.daemon.stop(), 0);
});
