import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADD, LIST, call, post, startSim } from './helpers.ts';

test('trap 16: the table-entries limit is global; at the limit the add is dropped and still done', async () => {
  const sim = await startSim({ tableEntriesLimit: 5 });
  try {
    sim.seedTableEntries('bogons', ['203.0.113.0/26', '203.0.113.64/26', '203.0.113.128/26']);
    assert.deepEqual((await post(sim, ADD, { address: '192.0.2.1' })).json, { status: 'done' });
    assert.deepEqual((await post(sim, ADD, { address: '192.0.2.2' })).json, { status: 'done' });
    const full = await post(sim, ADD, { address: '192.0.2.3' });
    assert.deepEqual(full.json, { status: 'done' });
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.1', '192.0.2.2']);
    // A duplicate needs no allocation; after a delete there is room again.
    assert.deepEqual((await post(sim, ADD, { address: '192.0.2.2' })).json, { status: 'done' });
    const size = (await call(sim, 'GET', '/api/firewall/alias/get_table_size')).json as { size: number; used: number };
    assert.deepEqual([size.size, size.used], [5, 5]);
    await post(sim, '/api/firewall/alias_util/delete/fail2ban_blocklist', { address: '192.0.2.1' });
    await post(sim, ADD, { address: '192.0.2.3' });
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.2', '192.0.2.3']);
  } finally {
    await sim.stop();
  }
});

test('trap 4: list pages over 25,000 entries; default rowCount 9999, -1 = all, total is the real count', async () => {
  const sim = await startSim();
  try {
    const all: string[] = [];
    for (let i = 0; i < 25_000; i++) {
      const n = i + 1;
      all.push(`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`);
    }
    // Seed in reverse to prove ordering is the simulator's work.
    sim.seedTableEntries('fail2ban_blocklist', [...all].reverse());
    const first = (await post(sim, LIST)).json as { total: number; rowCount: number; current: number; rows: { ip: string }[] };
    assert.equal(first.total, 25_000);
    assert.equal(first.rowCount, 9999);
    assert.equal(first.rows[0]?.ip, all[0]);
    const seen: string[] = [];
    for (let current = 1; current <= 5; current++) {
      const page = (await post(sim, LIST, { rowCount: 5000, current })).json as { rowCount: number; rows: { ip: string }[] };
      assert.equal(page.rowCount, 5000);
      for (const row of page.rows) seen.push(row.ip);
    }
    assert.deepEqual(seen, all);
    const beyond = (await post(sim, LIST, { rowCount: 5000, current: 6 })).json as { total: number; rowCount: number };
    assert.deepEqual([beyond.total, beyond.rowCount], [25_000, 0]);
    const everything = (await post(sim, LIST, { rowCount: -1 })).json as { rowCount: number };
    assert.equal(everything.rowCount, 25_000);
    // Changes between pages are reflected (the cached order is patched, not stale).
    await post(sim, ADD, { address: '10.0.0.0/31' });
    await post(sim, '/api/firewall/alias_util/delete/fail2ban_blocklist', { address: all[1] });
    const after = (await post(sim, LIST, { rowCount: 3 })).json as { total: number; rows: { ip: string }[] };
    assert.equal(after.total, 25_000);
    assert.deepEqual(
      after.rows.map((r) => r.ip),
      ['10.0.0.0/31', all[0], all[2]],
    );
    const search = (await post(sim, LIST, { searchPhrase: '10.0.50.' })).json as { total: number };
    assert.equal(search.total, 256);
  } finally {
    await sim.stop();
  }
});

test('unparseable and oversized adds do not consume the limit', async () => {
  const sim = await startSim({ tableEntriesLimit: 1 });
  try {
    await post(sim, ADD, { address: 'cafe' });
    await post(sim, ADD, { address: '' });
    await post(sim, ADD, { address: '192.0.2.5' });
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.5']);
  } finally {
    await sim.stop();
  }
});

test('seedTableEntries is an atomic admin batch that reports bad entries and the limit', async () => {
  const sim = await startSim({ tableEntriesLimit: 3 });
  try {
    assert.throws(() => sim.seedTableEntries('bogons', ['203.0.113.1', 'not-an-ip']), /cannot parse/);
    assert.deepEqual(sim.tableEntries('bogons'), []);
    sim.seedTableEntries('bogons', ['203.0.113.1', '203.0.113.1/32', '203.0.113.2']);
    assert.deepEqual(sim.tableEntries('bogons'), ['203.0.113.1', '203.0.113.2']);
    assert.throws(() => sim.seedTableEntries('fail2ban_blocklist', ['192.0.2.1', '192.0.2.2']), /Cannot allocate memory/);
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
    sim.seedTableEntries('fail2ban_blocklist', ['192.0.2.1']);
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.1']);
  } finally {
    await sim.stop();
  }
});
