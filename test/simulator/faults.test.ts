import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { ADD, DAEMON, LIST, SleepGate, basic, call, post, startSim, until } from './helpers.ts';

test('latency: every call waits latencyMs, concurrently (all in flight at once)', async () => {
  const gate = new SleepGate();
  const sim = await startSim({ sleep: gate.sleep, faults: { latencyMs: 250 } });
  try {
    const pending = Array.from({ length: 8 }, (_, i) => post(sim, ADD, { address: `192.0.2.${i + 1}` }));
    await until(() => gate.waiting === 8, '8 calls sleeping');
    assert.equal(sim.inFlight(), 8);
    assert.deepEqual(gate.requested, Array(8).fill(250));
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
    gate.releaseAll();
    const replies = await Promise.all(pending);
    assert.ok(replies.every((r) => r.status === 200));
    assert.equal(sim.maxInFlight(), 8);
    assert.equal(sim.tableEntries('fail2ban_blocklist').length, 8);
    await until(() => sim.inFlight() === 0, 'calls to finish');
    sim.resetMaxInFlight();
    assert.equal(sim.maxInFlight(), 0);
  } finally {
    gate.releaseAll();
    await sim.stop();
  }
});

test('lockMs: alias_util writes hold one global lock and are served FIFO; reads are not blocked', async () => {
  const gate = new SleepGate();
  const sim = await startSim({ sleep: gate.sleep, faults: { lockMs: 40 } });
  try {
    const addresses = ['192.0.2.5', '192.0.2.3', '192.0.2.9', '192.0.2.1'];
    const pending: Promise<unknown>[] = [];
    for (const [i, address] of addresses.entries()) {
      pending.push(post(sim, ADD, { address }));
      await until(() => sim.inFlight() === i + 1, `call ${i} received`);
      // Let its body arrive so it is queued on the lock before the next one is sent.
      for (let j = 0; j < 20; j++) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => gate.waiting === 1, 'the lock holder');
    // Only the holder sleeps; the others wait for the lock, not in parallel.
    assert.equal(gate.waiting, 1);
    assert.equal(sim.inFlight(), 4);
    // A read is answered while writers queue.
    const list = await post(sim, LIST);
    assert.equal((list.json as { total: number }).total, 0);
    const order: string[] = [];
    for (let i = 0; i < addresses.length; i++) {
      await until(() => gate.waiting === 1, `holder ${i}`);
      gate.releaseOne();
      await until(() => sim.tableEntries('fail2ban_blocklist').length === i + 1, `add ${i} applied`);
      const added = sim.tableEntries('fail2ban_blocklist').filter((e) => !order.includes(e));
      order.push(...added);
    }
    assert.deepEqual(order, addresses);
    await Promise.all(pending);
    assert.deepEqual(gate.requested, [40, 40, 40, 40]);
  } finally {
    gate.releaseAll();
    await sim.stop();
  }
});

test('errorRate: seeded, reproducible 500s that leave state untouched', async () => {
  const statuses: number[][] = [];
  for (let run = 0; run < 2; run++) {
    const sim = await startSim({ seed: 42, faults: { errorRate: 0.4 } });
    try {
      const seen: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await post(sim, ADD, { address: `192.0.2.${i + 1}` });
        seen.push(res.status);
        if (res.status === 500) assert.deepEqual(res.json, { errorMessage: 'Unexpected error, check log for details' });
      }
      const added = seen.filter((s) => s === 200).length;
      assert.equal(sim.tableEntries('fail2ban_blocklist').length, added);
      statuses.push(seen);
    } finally {
      await sim.stop();
    }
  }
  assert.deepEqual(statuses[0], statuses[1]);
  const errors = statuses[0]!.filter((s) => s === 500).length;
  assert.ok(errors > 0 && errors < 40, `some but not all calls fail (${errors}/40)`);
});

test('hangRate: the call is never answered until the client gives up; logged with status 0', async () => {
  const sim = await startSim({ faults: { hangRate: 1 } });
  try {
    const controller = new AbortController();
    const pending = request(`${sim.url}${ADD}`, {
      method: 'POST',
      signal: controller.signal,
      headers: { authorization: basic(DAEMON), 'content-type': 'application/json' },
      body: JSON.stringify({ address: '192.0.2.1' }),
    });
    await until(() => sim.calls().length === 1, 'the hung call to be logged');
    assert.equal(sim.inFlight(), 1);
    assert.equal(sim.calls()[0]?.status, 0);
    controller.abort();
    await assert.rejects(pending);
    await until(() => sim.inFlight() === 0, 'the aborted call to leave');
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
    sim.setFaults({ hangRate: 0 });
    assert.equal((await post(sim, ADD, { address: '192.0.2.1' })).status, 200);
  } finally {
    await sim.stop();
  }
});

test('stop() ends hung calls', async () => {
  const sim = await startSim({ faults: { hangRate: 1 } });
  const pending = post(sim, ADD, { address: '192.0.2.1' });
  await until(() => sim.calls().length === 1, 'the hung call');
  await sim.stop();
  await assert.rejects(pending);
});

test('refuse: connections refused and open sockets cut; recovering listens on the same port', async () => {
  const sim = await startSim({ faults: { hangRate: 1 } });
  try {
    const hung = post(sim, ADD, { address: '192.0.2.1' });
    await until(() => sim.inFlight() === 1, 'the hung call');
    const url = sim.url;
    sim.setFaults({ refuse: true, hangRate: 0 });
    await assert.rejects(hung);
    await assert.rejects(post(sim, ADD, { address: '192.0.2.2' }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ECONNREFUSED');
      return true;
    });
    assert.equal(sim.faults().refuse, true);
    sim.setFaults({ refuse: false });
    assert.equal(sim.url, url);
    const res = await post(sim, ADD, { address: '192.0.2.3' });
    assert.deepEqual(res.json, { status: 'done' });
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.3']);
  } finally {
    await sim.stop();
  }
});

test('flapPeriodMs: healthy, then 503 for a period, then healthy again (driven by the injected clock)', async () => {
  let now = 1_000_000;
  const sim = await startSim({ now: () => now, faults: { flapPeriodMs: 1000 } });
  try {
    assert.equal((await post(sim, ADD, { address: '192.0.2.1' })).status, 200);
    now += 1000;
    const down = await post(sim, ADD, { address: '192.0.2.2' });
    assert.equal(down.status, 503);
    assert.equal((await call(sim, 'GET', '/api/firewall/alias_util/aliases')).status, 503);
    now += 999;
    assert.equal((await post(sim, ADD, { address: '192.0.2.3' })).status, 503);
    now += 1;
    assert.equal((await post(sim, ADD, { address: '192.0.2.4' })).status, 200);
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.1', '192.0.2.4']);
    sim.setFaults({ flapPeriodMs: 0 });
    now += 1000;
    assert.equal((await post(sim, ADD, { address: '192.0.2.5' })).status, 200);
  } finally {
    await sim.stop();
  }
});

test('setFaults rejects bad values and unknown fields', () => {
  return startSim().then(async (sim) => {
    try {
      assert.throws(() => sim.setFaults({ errorRate: 2 }), /errorRate/);
      assert.throws(() => sim.setFaults({ latencyMs: -1 }), /latencyMs/);
      assert.throws(() => sim.setFaults({ bogus: 1 } as never), /bogus/);
      sim.setFaults({ latencyMs: 5 });
      assert.equal(sim.faults().latencyMs, 5);
    } finally {
      await sim.stop();
    }
  });
});

test('a failed password check is padded by authFailDelayMs (default 2000); success is not', async () => {
  const gate = new SleepGate();
  const sim = await startSim({ sleep: gate.sleep, authFailDelayMs: undefined as unknown as number });
  try {
    const failing = call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: { key: DAEMON.key, secret: 'wrong' } });
    await until(() => gate.waiting === 1, 'the padding sleep');
    assert.deepEqual(gate.requested, [2000]);
    gate.releaseAll();
    assert.equal((await failing).status, 401);
    assert.equal((await call(sim, 'GET', '/api/firewall/alias_util/aliases')).status, 200);
    assert.deepEqual(gate.requested, [2000]);
  } finally {
    gate.releaseAll();
    await sim.stop();
  }
});
