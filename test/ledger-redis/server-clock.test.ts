import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ServerClock } from '../../src/cluster/server-clock.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { RedisLedgerStore } from '../../src/ledger/redis-ledger-store.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { TargetReconciler } from '../../src/targets/target-reconciler.ts';
import { OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { OpnsenseTarget } from '../../src/targets/opnsense/target.ts';
import { systemClock, type Clock } from '../../src/util/clock.ts';
import { ALIAS, CapturedLog, endpointFor, startSimulator } from '../helpers/enforcement-harness.ts';
import { RedisServer } from './redis-server.ts';
import { PREFIX, rawClient } from './replicas.ts';

const AHEAD_MS = 60_000;
/** This host's clock as a replica whose clock runs a minute ahead sees it. */
const aheadClock: Clock = { now: () => Date.now() + AHEAD_MS, setTimer: systemClock.setTimer, sleep: systemClock.sleep };

async function replica(t: TestContext, url: string, clock: Clock): Promise<Ledger> {
  const store = await RedisLedgerStore.open({ url, prefix: PREFIX, logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock, logger: silentLogger() });
  t.after(() => ledger.close());
  return ledger;
}

async function serverClock(t: TestContext, url: string, base: Clock, log = new CapturedLog('warn')): Promise<ServerClock> {
  const clock = new ServerClock({ redis: rawClient(t, url), base, logger: log.logger });
  await clock.start();
  t.after(() => clock.stop());
  return clock;
}

test("one clock: a replica whose clock is 60 s ahead dates and ends bans by Redis's time, warns and reports the offset; its reconciler deletes no live ban", async (t) => {
  const redis = await RedisServer.start(t);
  const sim = await startSimulator(t);
  const log = new CapturedLog('warn');
  const skewed = await serverClock(t, redis.url, aheadClock, log);
  assert.ok(Math.abs(skewed.now() - Date.now()) < 1_000, "the skewed replica reads Redis's time");
  const status = skewed.status();
  assert.equal(status.skewed, true);
  assert.ok(Math.abs(status.offsetMs + AHEAD_MS) < 1_000, `offset ${status.offsetMs}`);
  assert.ok(
    log.entries().some((e) => String(e.msg).includes('60.0 s ahead of the Redis server')),
    'a warning names the offset',
  );
  assert.equal((await serverClock(t, redis.url, systemClock)).status().skewed, false);

  const right = await replica(t, redis.url, await serverClock(t, redis.url, systemClock));
  const ahead = await replica(t, redis.url, skewed);
  const uncorrected = await replica(t, redis.url, aheadClock); // what the skewed host did before: its own clock
  await right.ban({ target: ALIAS, address: '198.51.100.30', jail: 'dovecot', origin: 'jail', durationMs: 30_000 });
  for (const ledger of [ahead, uncorrected]) await ledger.sync();
  assert.equal(uncorrected.isKnown(ALIAS, '198.51.100.30'), true, 'the claim reached the uncorrected replica');
  assert.equal(uncorrected.isActive(ALIAS, '198.51.100.30'), false, 'by its own clock the ban has already ended (the bug this prevents)');
  assert.equal(ahead.isActive(ALIAS, '198.51.100.30'), true, "by Redis's clock the ban is live");

  // The skewed replica's own ban lasts its bantime in Redis's time, not a minute less.
  await ahead.ban({ target: ALIAS, address: '198.51.100.31', jail: 'dovecot', origin: 'jail', durationMs: 30_000 });
  const claim = ahead.activeClaims().find((c) => c.address === '198.51.100.31');
  assert.ok(claim && claim.expiresAt !== null && Math.abs(claim.expiresAt - (Date.now() + 30_000)) < 2_000, `expires at ${claim?.expiresAt}`);

  // Its reconciler keeps both in the alias and deletes nothing.
  const client = new OpnsenseClient({ endpoint: endpointFor(sim), logger: silentLogger() });
  const reconciler = new TargetReconciler({
    ledgerTarget: ALIAS,
    list: ALIAS,
    target: new OpnsenseTarget(client, ALIAS),
    ledger: ahead,
    clock: skewed,
    logger: silentLogger(),
    intervalMs: 3_600_000,
    concurrency: 4,
    foreignPolicy: 'keep',
    adoptBantimeMs: 600_000,
    adoptionRefusal: () => null,
    killConnections: false,
  });
  t.after(async () => {
    await reconciler.stop();
    await client.close();
  });
  const pass = await reconciler.start();
  assert.equal(pass.ok, true, pass.error ?? '');
  await reconciler.idle();
  assert.deepEqual(sim.tableEntries(ALIAS).sort(), ['198.51.100.30', '198.51.100.31']);
  assert.equal(sim.calls().filter((c) => c.path.includes('/delete/')).length, 0, 'no delete');
});
