import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADD, DAEMON, LIST, basic, call, post, startSim } from './helpers.ts';

test('the call log records method, path, status, key id and bodies, never the secret or Authorization', async () => {
  const sim = await startSim();
  try {
    await post(sim, ADD, { address: '192.0.2.1' });
    await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: { key: DAEMON.key, secret: 'typo-secret' } });
    await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: { key: 'pasted-secret-as-key', secret: 'x' } });
    const calls = sim.calls();
    assert.equal(calls.length, 3);
    assert.deepEqual(
      calls.map((c) => [c.seq, c.method, c.path, c.status, c.key]),
      [
        [1, 'POST', ADD, 200, 'daemon-key'],
        [2, 'GET', '/api/firewall/alias_util/aliases', 401, 'daemon-key'],
        [3, 'GET', '/api/firewall/alias_util/aliases', 401, null],
      ],
    );
    assert.equal(calls[0]?.requestBody, '{"address":"192.0.2.1"}');
    assert.equal(calls[0]?.replyBody, '{"status":"done"}');
    const dump = JSON.stringify(calls);
    for (const secret of [DAEMON.secret, 'typo-secret', basic(DAEMON), 'pasted-secret-as-key']) assert.ok(!dump.includes(secret), secret);
    sim.clearCalls();
    assert.equal(sim.calls().length, 0);
  } finally {
    await sim.stop();
  }
});

test('callLogLimit keeps the newest entries; long bodies are truncated', async () => {
  const sim = await startSim({ callLogLimit: 3 });
  try {
    sim.seedTableEntries(
      'fail2ban_blocklist',
      Array.from({ length: 2000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`),
    );
    for (let i = 0; i < 5; i++) await post(sim, LIST, { current: i + 1, rowCount: 1000 });
    const calls = sim.calls();
    assert.deepEqual(
      calls.map((c) => c.seq),
      [3, 4, 5],
    );
    assert.ok(calls.every((c) => c.replyBody.length < 600));
  } finally {
    await sim.stop();
  }
});

test('admin interface: state, calls, faults (validated), seed, reboot, states; not logged, no auth', async () => {
  const sim = await startSim();
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sim.url}/__simulator/${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  try {
    assert.equal((await admin('POST', 'seed', { table: 'fail2ban_blocklist', entries: ['192.0.2.2', '192.0.2.1/32'] })).status, 200);
    await post(sim, ADD, { address: '192.0.2.3' });
    const state = (await admin('GET', 'state')).json as { tables: Record<string, string[]>; configRevisions: number; maxInFlight: number; calls: number };
    assert.deepEqual(state.tables.fail2ban_blocklist, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    assert.deepEqual(state.tables.bogons, []);
    assert.equal(state.configRevisions, 0);
    assert.equal(state.calls, 1);
    assert.equal(state.maxInFlight, 1);
    const calls = (await admin('GET', 'calls')).json as unknown as { path: string }[];
    assert.deepEqual(
      calls.map((c) => c.path),
      [ADD],
    );
    const bad = await admin('POST', 'faults', { errorRate: 'lots' });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error), /errorRate/);
    const unknown = await admin('POST', 'faults', { latency: 5 });
    assert.equal(unknown.status, 400);
    assert.match(String(unknown.json.error), /latency/);
    const ok = await admin('POST', 'faults', { latencyMs: 1 });
    assert.equal(ok.json.latencyMs, 1);
    assert.equal(sim.faults().latencyMs, 1);
    assert.equal((await admin('POST', 'states', { address: '192.0.2.1', count: 4 })).status, 200);
    assert.equal(sim.stateCount('192.0.2.1'), 4);
    assert.equal((await admin('POST', 'reboot')).status, 200);
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
    assert.equal(sim.stateCount('192.0.2.1'), 0);
    assert.equal((await admin('POST', 'seed', { table: 'x' })).status, 400);
    assert.equal((await admin('GET', 'nothing')).status, 404);
    assert.equal(sim.calls().length, 1, 'admin calls are not logged');
  } finally {
    await sim.stop();
  }
});

test('admin refuseForMs refuses connections for a while, then listens again', async () => {
  const sim = await startSim();
  try {
    const res = await fetch(`${sim.url}/__simulator/faults`, { method: 'POST', body: JSON.stringify({ refuseForMs: 150 }) });
    assert.equal(res.status, 200);
    await res.text();
    // Bounded wait for the refusal, then for the recovery (no timing assertion).
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        await post(sim, LIST);
        await new Promise((resolve) => setTimeout(resolve, 2));
      } catch {
        refused = true;
      }
    }
    assert.ok(refused, 'connections were refused');
    let recovered = false;
    for (let i = 0; i < 400 && !recovered; i++) {
      try {
        recovered = (await post(sim, LIST)).status === 200;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    assert.ok(recovered, 'listening again');
    assert.equal(sim.faults().refuse, false);
  } finally {
    await sim.stop();
  }
});

test('only loopback hosts are accepted; ::1 works', async () => {
  await assert.rejects(startSim({ host: '0.0.0.0' }), /loopback/);
  let sim;
  try {
    sim = await startSim({ host: '::1' });
  } catch {
    return; // no IPv6 loopback on this machine
  }
  try {
    assert.match(sim.url, /^http:\/\/\[::1\]:\d+$/);
    assert.equal((await post(sim, ADD, { address: '192.0.2.1' })).status, 200);
  } finally {
    await sim.stop();
  }
});

test('start() rejects bad alias names, duplicates, and a port in use', async () => {
  await assert.rejects(startSim({ aliases: [{ name: 'bad-name', type: 'external' }] }), /bad-name/);
  await assert.rejects(startSim({ aliases: [{ name: 'bogons', type: 'external' }] }), /already exists/);
  const sim = await startSim();
  try {
    await assert.rejects(startSim({ port: sim.port }), /EADDRINUSE/);
  } finally {
    await sim.stop();
  }
});
