import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { ADD, DAEMON, SleepGate, basic, startSim, until } from './helpers.ts';

test('hundreds of concurrent keep-alive connections are all served, and maxInFlight counts them', async () => {
  const gate = new SleepGate();
  const sim = await startSim({ sleep: gate.sleep, faults: { latencyMs: 10 } });
  const dispatcher = new Agent({ connections: 300 });
  try {
    const send = (i: number) =>
      request(`${sim.url}${ADD}`, {
        method: 'POST',
        dispatcher,
        headers: { authorization: basic(DAEMON), 'content-type': 'application/json' },
        body: JSON.stringify({ address: `10.0.${i >> 8}.${i & 255}` }),
      }).then(async (res) => ({ status: res.statusCode, body: await res.body.json() }));
    const first = Array.from({ length: 300 }, (_, i) => send(i));
    await until(() => gate.waiting === 300, '300 calls in flight');
    assert.equal(sim.inFlight(), 300);
    gate.releaseAll();
    const replies = await Promise.all(first);
    assert.ok(replies.every((r) => r.status === 200));
    assert.equal(sim.maxInFlight(), 300);
    // The same connections are reused for a second wave.
    sim.setFaults({ latencyMs: 0 });
    const second = await Promise.all(Array.from({ length: 300 }, (_, i) => send(300 + i)));
    assert.ok(second.every((r) => r.status === 200));
    assert.equal(sim.tableEntries('fail2ban_blocklist').length, 600);
  } finally {
    gate.releaseAll();
    await dispatcher.close();
    await sim.stop();
  }
});
