import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runCli, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { until } from '../helpers/until.ts';
import { ALIAS, KEY, SECRET, startNode, type Node } from './cluster-nodes.ts';
import { RedisServer } from '../ledger-redis/redis-server.ts';

async function failuresCounted(node: Node): Promise<number> {
  const status = await runCli(['status', 'dovecot', '--json'], { env: node.env });
  assert.equal(status.code, 0, status.stderr);
  return (JSON.parse(status.stdout) as { jails: Array<{ failures: number }> }).jails[0]?.failures ?? 0;
}

test('three replicas, maxretry 5: 4+4+4 failures spread over them ban at the fifth, counted across replicas', async (t) => {
  const redis = await RedisServer.start(t);
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const nodes: Node[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startNode(t, sim.url, redis.url, { maxretry: 5 }));
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const attacker = '198.51.100.44';

  // Four on the first replica: below maxretry there and in total.
  for (let i = 0; i < 4; i++) await appendFile(nodes[0]!.mailLog, dovecotFailure(attacker));
  await until('four failures counted on the first replica', async () => (await failuresCounted(nodes[0]!)) === 4);
  assert.deepEqual(await alias(), [], 'four failures: no ban');
  // The fifth arrives on another replica, whose own count is 1: the shared count bans.
  await appendFile(nodes[1]!.mailLog, dovecotFailure(attacker));
  await until('banned at the fifth failure', async () => (await alias()).includes(attacker));
  const banned = JSON.parse((await runCli(['banned', '--json'], { env: nodes[2]!.env })).stdout) as { banned: Array<{ address: string; jail: string }> };
  assert.deepEqual(
    banned.banned.map((b) => [b.address, b.jail]),
    [[attacker, 'dovecot']],
  );

  // Another attacker spreads 4+4+4 over the three: banned too (at its fifth failure in the order they arrive).
  const spread = '203.0.113.45';
  for (const node of nodes) for (let i = 0; i < 4; i++) await appendFile(node.mailLog, dovecotFailure(spread));
  await until('the spread attacker banned', async () => (await alias()).includes(spread));
  for (const node of nodes) assert.equal(await node.daemon.stop(), 0);
});
