import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test, type TestContext } from 'node:test';
import { ManualClock } from '../../src/util/clock.ts';
import { ALIAS, startHarness, startSimulator, type Harness } from '../helpers/enforcement-harness.ts';
import { advanceUntil, documentationAddresses } from './enforcement-fault-helpers.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const INTERVAL = MINUTE;

function ban(address: string, durationMs: number | null = 60 * MINUTE, jail = 'dovecot') {
  return { target: ALIAS, address, jail, origin: 'jail' as const, durationMs };
}

/** A harness whose simulator lives on the same injected clock (call times, flap periods, and optionally its waits). */
async function harnessOnInjectedTime(t: TestContext, options: { injectedLatency?: boolean; timeoutMs?: number } = {}): Promise<Harness> {
  const clock = new ManualClock();
  const sim = await startSimulator(t, {
    now: () => clock.now(),
    ...(options.injectedLatency ? { sleep: (ms: number) => clock.sleep(ms) } : {}),
  });
  return startHarness(t, { sim, clock, reconciler: { intervalMs: INTERVAL }, ...(options.timeoutMs ? { endpoint: { timeoutMs: options.timeoutMs } } : {}) });
}

/** Advances injected time and lets the reconciler finish what that started (real HTTP underneath). */
async function tick(h: Harness, ms: number): Promise<void> {
  await h.clock.advance(ms);
  await h.reconciler.idle();
}

function assertAliasEqualsLedger(h: Harness, message: string): void {
  const alias = [...h.sim.tableEntries(ALIAS)].sort();
  const wanted = [...h.ledger.activeAddresses(ALIAS)].sort();
  assert.equal(alias.length, wanted.length, `${message}: alias holds ${alias.length}, the ledger wants ${wanted.length}`);
  assert.deepEqual(alias, wanted, message);
}

/** Heap in use after a full collection (V8's gc exposed at run time: the test runner's flags stay untouched). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test('OPNsense down for 5 minutes during a 10,000-address attack: no ban lost, alias == ledger after recovery, pending and heap bounded', {
  timeout: 240_000,
}, async (t) => {
  const h = await harnessOnInjectedTime(t);
  const before = documentationAddresses(20);
  await h.ledger.banMany(before.map((a) => ban(a)));
  await h.reconciler.start();
  assertAliasEqualsLedger(h, 'in sync before the outage');

  h.sim.setFaults({ refuse: true });
  const heapAtOutage = heapAfterGc();
  const attack = documentationAddresses(10_000, 20);
  const shortLived = attack.slice(0, 300); // their bantime ends during the outage: never to be sent
  const distinct = new Set(before);
  const steps = 60; // 5 minutes in 5 s steps
  const perStep = Math.ceil(attack.length / steps);
  let maxPending = 0;
  const passStarts = new Set<number>();
  for (let step = 0; step < steps; step++) {
    const fresh = attack.slice(step * perStep, (step + 1) * perStep);
    // Repeat offenders hit again by another jail: more ledger changes, no more addresses.
    const repeats = [...before, ...attack.slice(shortLived.length, shortLived.length + 30)].filter((a) => distinct.has(a));
    await h.ledger.banMany([
      ...fresh.map((a) => ban(a, shortLived.includes(a) ? 2 * MINUTE : 60 * MINUTE)),
      ...repeats.map((a) => ban(a, 60 * MINUTE, 'postfix')),
    ]);
    for (const a of fresh) distinct.add(a);
    await tick(h, 5 * SECOND);
    passStarts.add(h.reconciler.status().lastPass?.at ?? 0);
    const status = h.reconciler.status();
    assert.equal(status.state, 'unreachable', `step ${step}`);
    maxPending = Math.max(maxPending, status.pending);
    assert.ok(status.pending <= distinct.size, `pending ${status.pending} exceeds the ${distinct.size} distinct addresses banned`);
  }
  const heapAfterAttack = heapAfterGc();
  // Five more minutes of failing passes must not grow memory: nothing accumulates per retry.
  for (let i = 0; i < 60; i++) {
    await tick(h, 5 * SECOND);
    passStarts.add(h.reconciler.status().lastPass?.at ?? 0);
  }
  const heapAfterLongerOutage = heapAfterGc();
  // Retries back off (no storm of passes) but never wait longer than one interval, so recovery
  // is noticed within one interval whenever it comes.
  const starts = [...passStarts].filter((at) => at > 0).sort((a, b) => a - b);
  const gaps = starts.slice(1).map((at, i) => at - starts[i]!);
  assert.ok(starts.length >= 5 && starts.length <= 40, `${starts.length} recovery passes in 10 minutes`);
  assert.ok(Math.max(...gaps) <= INTERVAL, `a recovery pass waited ${Math.max(...gaps)} ms, more than the ${INTERVAL} ms interval`);
  assert.deepEqual(h.sim.tableEntries(ALIAS).sort(), [...before].sort(), 'nothing removed from the alias during the outage');
  const wanted = h.ledger.activeAddresses(ALIAS);
  assert.equal(wanted.size, 20 + 10_000 - shortLived.length);

  h.sim.setFaults({ refuse: false });
  // Recovery passes back off up to the interval, never beyond: one interval brings it back.
  h.sim.clearCalls();
  await advanceUntil(
    h.clock,
    'the first pass after recovery',
    () => h.reconciler.status().lastPass?.ok === true,
    SECOND,
    INTERVAL / SECOND,
    () => h.reconciler.idle(),
  );
  await h.reconciler.idle();
  assertAliasEqualsLedger(h, 'converged after recovery');
  assert.equal(h.reconciler.status().state, 'in-sync');
  assert.equal(h.reconciler.status().pending, 0);
  const sent = new Set(
    h.sim
      .calls()
      .filter((c) => c.path.includes('/add/'))
      .map((c) => JSON.parse(c.requestBody).address as string),
  );
  for (const a of shortLived) assert.ok(!sent.has(a), `${a}: its ban ended during the outage but it was sent`);

  const perAddress = (heapAfterAttack - heapAtOutage) / 10_000;
  t.diagnostic(
    `${starts.length} recovery passes in 10 minutes down, longest gap ${Math.max(...gaps)} ms; max pending ${maxPending}; heap +${((heapAfterAttack - heapAtOutage) / 2 ** 20).toFixed(1)} MiB for 10,000 bans (${perAddress.toFixed(0)} B each), ` +
      `${((heapAfterLongerOutage - heapAfterAttack) / 2 ** 20).toFixed(1)} MiB over 5 more minutes down`,
  );
  assert.ok(maxPending <= distinct.size);
  // Generous bounds (ledger claims and indexes are legitimately per address); a leak per call or per retry blows them.
  assert.ok(perAddress < 4096, `heap per banned address while down: ${perAddress.toFixed(0)} B`);
  assert.ok(
    heapAfterLongerOutage - heapAfterAttack < 16 * 2 ** 20,
    `heap grew ${((heapAfterLongerOutage - heapAfterAttack) / 2 ** 20).toFixed(1)} MiB while staying down`,
  );
});

test('flapping OPNsense (half the calls answered 500, seeded) during an attack: every ban lands, alias == ledger once it stops', {
  timeout: 120_000,
}, async (t) => {
  const h = await harnessOnInjectedTime(t);
  h.sim.setFaults({ errorRate: 0.5 });
  await h.reconciler.start();
  const attack = documentationAddresses(400, 100);
  for (let step = 0; step < 20; step++) {
    await h.ledger.banMany(attack.slice(step * 20, step * 20 + 20).map((a) => ban(a)));
    await tick(h, 10 * SECOND);
    assert.ok(h.reconciler.status().pending <= (step + 1) * 20);
  }
  assert.ok(h.sim.tableEntries(ALIAS).length > 0, 'progress while flapping');
  assert.ok(
    h.sim.calls().some((c) => c.status === 500),
    'the fault did strike',
  );
  h.sim.setFaults({ errorRate: 0 });
  await advanceUntil(
    h.clock,
    'alias == ledger after the flapping stopped',
    () => sameEntries(h),
    SECOND,
    INTERVAL / SECOND,
    () => h.reconciler.idle(),
  );
  await h.reconciler.idle();
  assertAliasEqualsLedger(h, 'converged within one interval after the flapping stopped');
  assert.equal(h.ledger.activeAddresses(ALIAS).size, 400);
});

test('flapping OPNsense (30 s up, 30 s answering 503) during an attack: converges within one interval of the last outage', { timeout: 120_000 }, async (t) => {
  const h = await harnessOnInjectedTime(t);
  await h.reconciler.start();
  h.sim.setFaults({ flapPeriodMs: 30 * SECOND });
  const attack = documentationAddresses(240, 600);
  let sawUnreachable = false;
  for (let step = 0; step < 24; step++) {
    // four minutes: four outages
    await h.ledger.banMany(attack.slice(step * 10, step * 10 + 10).map((a) => ban(a)));
    await tick(h, 10 * SECOND);
    sawUnreachable ||= h.reconciler.status().state === 'unreachable';
  }
  assert.ok(sawUnreachable, 'the flapping made the firewall unreachable at times');
  assert.ok(h.sim.calls().some((c) => c.status === 503));
  h.sim.setFaults({ flapPeriodMs: 0 });
  await advanceUntil(
    h.clock,
    'alias == ledger after the flapping stopped',
    () => sameEntries(h),
    SECOND,
    INTERVAL / SECOND,
    () => h.reconciler.idle(),
  );
  await h.reconciler.idle();
  assertAliasEqualsLedger(h, 'converged');
  assert.equal(h.ledger.activeAddresses(ALIAS).size, 240);
});

test('slow OPNsense (2 s per call, injected time) during an attack: bans still land through the bounded pool, none time out', {
  timeout: 120_000,
}, async (t) => {
  const h = await harnessOnInjectedTime(t, { injectedLatency: true, timeoutMs: 30_000 });
  h.sim.setFaults({ latencyMs: 2000 });
  const started = h.reconciler.start();
  await advanceUntil(h.clock, 'the first pass', () => h.reconciler.status().lastPass !== null, 100, 1000, realPause);
  assert.equal((await started).ok, true);
  const attack = documentationAddresses(120, 900);
  for (let step = 0; step < 6; step++) {
    await h.ledger.banMany(attack.slice(step * 20, step * 20 + 20).map((a) => ban(a)));
    await h.clock.advance(SECOND);
  }
  // Real HTTP under injected waits: step time while answers trickle in (bounded).
  const steps = await advanceUntil(h.clock, 'all 120 bans in the slow alias', () => sameEntries(h), 100, 5000, realPause);
  // 120 adds of 2 s each take 240 s one after the other; the pool of 16 needs about 16 s (margin for a loaded machine).
  t.diagnostic(`120 bans took ${steps * 100} ms of injected time at 2 s per call`);
  assert.ok(steps * 100 < 100 * SECOND, `took ${steps * 100} ms of injected time: calls were not overlapped`);
  await advanceUntil(h.clock, 'the pool to drain', () => h.reconciler.status().pending === 0, 100, 1000, realPause);
  assertAliasEqualsLedger(h, 'converged while slow');
  assert.notEqual(h.reconciler.status().state, 'unreachable');
  assert.equal(h.reconciler.status().lastError, null, 'a 2 s answer is slow, not a failure');
  assert.ok(h.sim.maxInFlight() <= 16 + 1, `bounded concurrency while slow (saw ${h.sim.maxInFlight()})`);
});

test('hanging OPNsense connections: the client timeout fires, hung sockets are released, the alias converges once answers return', {
  timeout: 120_000,
}, async (t) => {
  const h = await harnessOnInjectedTime(t, { timeoutMs: 500 });
  const attack = documentationAddresses(60, 1200);
  await h.ledger.banMany(attack.slice(0, 20).map((a) => ban(a)));
  h.sim.setFaults({ hangRate: 1 });
  const first = await h.reconciler.start(); // must come back: every call hangs
  assert.equal(first.ok, false);
  assert.equal(h.reconciler.status().state, 'unreachable');
  assert.equal(h.reconciler.status().lastError?.kind, 'timeout');
  h.sim.setFaults({ hangRate: 0.3 });
  for (let step = 0; step < 4; step++) {
    await h.ledger.banMany(attack.slice(20 + step * 10, 30 + step * 10).map((a) => ban(a)));
    await tick(h, 30 * SECOND);
  }
  h.sim.setFaults({ hangRate: 0 });
  await advanceUntil(
    h.clock,
    'alias == ledger after the hangs stopped',
    () => sameEntries(h),
    SECOND,
    (3 * INTERVAL) / SECOND,
    () => h.reconciler.idle(),
  );
  await h.reconciler.idle();
  assertAliasEqualsLedger(h, 'converged after hangs');
  assert.ok(h.sim.calls().filter((c) => c.status === 0).length > 0, 'calls did hang');
  // Each timed-out call closed its socket: nothing stays open on the firewall side.
  for (let i = 0; i < 200 && h.sim.inFlight() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  assert.equal(h.sim.inFlight(), 0, 'hung requests left open');
});

/** A few real milliseconds for sockets to carry answers released by an injected wait. */
const realPause = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

function sameEntries(h: Harness): boolean {
  const alias = h.sim.tableEntries(ALIAS);
  const wanted = h.ledger.activeAddresses(ALIAS);
  return alias.length === wanted.size && alias.every((a) => wanted.has(a));
}
