import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { TargetReconciler } from '../../src/targets/target-reconciler.ts';
import { OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { OpnsenseTarget } from '../../src/targets/opnsense/target.ts';
import { ALIAS, CapturedLog, endpointFor, startSimulator } from '../helpers/enforcement-harness.ts';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { RedisServer } from './redis-server.ts';
import { openReplica, settle, type Replica } from './replicas.ts';

interface Node {
  replica: Replica;
  reconciler: TargetReconciler;
}

/** One edgeban replica: its own ledger on the shared Redis, its own client and reconciler for the one alias. */
async function startNode(t: TestContext, sim: OpnsenseSimulator, url: string): Promise<Node> {
  const log = new CapturedLog('warn');
  const replica = await openReplica(t, url, { logger: log.logger });
  const client = new OpnsenseClient({ endpoint: endpointFor(sim), logger: log.logger });
  const reconciler = new TargetReconciler({
    ledgerTarget: ALIAS,
    list: ALIAS,
    target: new OpnsenseTarget(client, ALIAS),
    ledger: replica.ledger,
    clock: replica.clock,
    logger: log.logger,
    intervalMs: 3_600_000,
    concurrency: 4,
    foreignPolicy: 'keep',
    adoptBantimeMs: 600_000,
    adoptionRefusal: () => null,
    killConnections: false,
    retry: { retries: 3, minTimeoutMs: 5, maxTimeoutMs: 40 },
  });
  t.after(async () => {
    await reconciler.stop();
    await client.close();
  });
  await reconciler.start();
  return { replica, reconciler };
}

/** Both ledgers have read everything, both reconcilers have sent their changes, then each runs a full pass. */
async function quiesce(nodes: Node[]): Promise<void> {
  await settle(...nodes.map((n) => n.replica));
  for (const node of nodes) await node.reconciler.idle();
  for (const node of nodes) {
    const pass = await node.reconciler.runFullPass();
    assert.equal(pass.ok, true, pass.error ?? 'pass failed');
  }
}

function deletesOf(sim: OpnsenseSimulator, address: string): number {
  return sim.calls().filter((c) => c.path.includes('/delete/') && JSON.parse(c.requestBody || '{}').address === address).length;
}

test("two replicas on one alias: the alias holds the union of their bans, neither removes the other's, the last claim to end removes it", async (t) => {
  const redis = await RedisServer.start(t);
  const sim = await startSimulator(t);
  const a = await startNode(t, sim, redis.url);
  const b = await startNode(t, sim, redis.url);
  const shared = '198.51.100.10';

  await a.replica.ledger.ban({ target: ALIAS, address: shared, jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  await a.replica.ledger.ban({ target: ALIAS, address: '198.51.100.11', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await b.replica.ledger.ban({ target: ALIAS, address: shared, jail: 'postfix', origin: 'jail', durationMs: 3_600_000 });
  await b.replica.ledger.ban({ target: ALIAS, address: '2001:db8::20', jail: 'traefik', origin: 'jail', durationMs: null });
  await quiesce([a, b]);
  assert.deepEqual(sim.tableEntries(ALIAS).sort(), ['198.51.100.10', '198.51.100.11', '2001:db8::20']);
  for (const node of [a, b]) assert.deepEqual(node.reconciler.status().lastPass?.remove, [], 'no pass wanted to remove anything');

  // Node A's claim on the shared address ends: node B's claim keeps it banned, on both nodes.
  await a.replica.ledger.unban({ address: shared, jail: 'dovecot' });
  await quiesce([a, b]);
  assert.ok(sim.tableEntries(ALIAS).includes(shared), "still banned by the other node's claim");
  assert.equal(deletesOf(sim, shared), 0, 'nobody deleted it meanwhile');

  // The last claim ends (on the other node): it leaves the alias.
  await b.replica.ledger.unban({ address: shared, jail: 'postfix' });
  await quiesce([a, b]);
  assert.deepEqual(sim.tableEntries(ALIAS).sort(), ['198.51.100.11', '2001:db8::20']);

  // An expiry is reached by each node from the claim's expiresAt: both agree, nothing is re-added.
  await a.replica.clock.advance(600_000);
  await b.replica.clock.advance(600_000);
  await quiesce([a, b]);
  assert.deepEqual(sim.tableEntries(ALIAS), ['2001:db8::20']);
  const adds = sim.calls().filter((c) => c.path.includes('/add/') && JSON.parse(c.requestBody || '{}').address === '198.51.100.11');
  const lastAdd = adds.at(-1)?.seq ?? 0;
  const removal = sim.calls().find((c) => c.path.includes('/delete/') && JSON.parse(c.requestBody || '{}').address === '198.51.100.11');
  assert.ok(removal && removal.seq > lastAdd, 'not added back after the expiry removed it');
});
