import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { ADD, ADMIN, DELETE, call, post, startSim } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim({
    aliases: [
      { name: 'fail2ban_blocklist', type: 'external' },
      { name: 'second', type: 'external' },
    ],
  });
});
after(async () => {
  await sim.stop();
});

const entries = () => sim.tableEntries('fail2ban_blocklist');

test('trap 1: uppercase hex is not_an_address; the lowercase spelling is accepted', async () => {
  const upper = await post(sim, ADD, { address: '2001:DB8::A' });
  assert.deepEqual(upper.json, { status: 'not_an_address' });
  const lower = await post(sim, ADD, { address: '2001:db8::a' });
  assert.deepEqual(lower.json, { status: 'done' });
  assert.ok(entries().includes('2001:db8::a'));
});

test('the character check rejects spaces, dashes, ! and lists, and runs before the alias existence check', async () => {
  for (const address of ['192.0.2.1 ', '192.0.2.1-192.0.2.9', '!192.0.2.1', '192.0.2.1,192.0.2.2', 'Example']) {
    assert.deepEqual((await post(sim, ADD, { address })).json, { status: 'not_an_address' }, address);
  }
  const nonexistent = await post(sim, '/api/firewall/alias_util/add/no_such_alias', { address: '2001:DB8::1' });
  assert.deepEqual(nonexistent.json, { status: 'not_an_address' });
});

test('trap 2: a nonexistent alias is 200 with status failed and a message', async () => {
  const res = await post(sim, '/api/firewall/alias_util/add/no_such_alias', { address: '192.0.2.1' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'failed', status_msg: 'nonexistent alias no_such_alias' });
  // Alias names are case-sensitive.
  const cased = await post(sim, '/api/firewall/alias_util/add/Fail2ban_Blocklist', { address: '192.0.2.1' });
  assert.deepEqual(cased.json, { status: 'failed', status_msg: 'nonexistent alias Fail2ban_Blocklist' });
  assert.equal(sim.tableEntries('no_such_alias').length, 0);
});

test('missing address → failed', async () => {
  assert.deepEqual((await post(sim, ADD, {})).json, { status: 'failed' });
  assert.deepEqual((await post(sim, ADD, { address: null })).json, { status: 'failed' });
  assert.deepEqual((await post(sim, DELETE, {})).json, { status: 'failed' });
});

test('trap 3: done even when pfctl added nothing (words, empty string, duplicates)', async () => {
  const before = entries().length;
  for (const address of ['cafe', '', 'dead_beef', '1.2.3', '192.0.2.300', '10.0.0.1/33']) {
    assert.deepEqual((await post(sim, ADD, { address })).json, { status: 'done' }, JSON.stringify(address));
  }
  assert.equal(entries().length, before);
  await post(sim, ADD, { address: '192.0.2.40' });
  assert.deepEqual((await post(sim, ADD, { address: '192.0.2.40' })).json, { status: 'done' });
  assert.equal(entries().filter((e) => e === '192.0.2.40').length, 1);
});

test('pf spelling: host bits masked, /32 and /128 dropped, IPv6 compressed', async () => {
  for (const address of ['203.0.113.77/24', '192.0.2.41/32', '2001:db8:0:0:0:0:0:42/128', '2001:0db8:0001::/48', '2001:db8:5:6:7::1/64']) {
    assert.deepEqual((await post(sim, ADD, { address })).json, { status: 'done' });
  }
  const e = entries();
  for (const spelled of ['203.0.113.0/24', '192.0.2.41', '2001:db8::42', '2001:db8:1::/48', '2001:db8:5:6::/64']) {
    assert.ok(e.includes(spelled), `${spelled} in ${e.join(' ')}`);
  }
});

test('pf order: IPv4 first, then IPv6, each ascending (numerically, not as strings)', async () => {
  for (const address of ['2001:db8::9', '198.51.100.9', '2001:db8::10', '192.0.2.9', '198.51.100.10']) {
    await post(sim, '/api/firewall/alias_util/add/second', { address });
  }
  assert.deepEqual(sim.tableEntries('second'), ['192.0.2.9', '198.51.100.9', '198.51.100.10', '2001:db8::9', '2001:db8::10']);
  const listed = await post(sim, '/api/firewall/alias_util/list/second');
  assert.deepEqual(
    (listed.json as { rows: { ip: string }[] }).rows.map((r) => r.ip),
    sim.tableEntries('second'),
  );
});

test('trap 5: delete needs pfctl spelling, silently deletes nothing otherwise, always done', async () => {
  await post(sim, ADD, { address: '192.0.2.50' });
  await post(sim, ADD, { address: '198.51.100.77/24' });
  await post(sim, ADD, { address: '2001:db8::50' });
  for (const wrong of ['192.0.2.50/32', '198.51.100.77/24', '2001:DB8::50', '2001:db8:0::50', ' 192.0.2.50']) {
    assert.deepEqual((await post(sim, DELETE, { address: wrong })).json, { status: 'done' }, wrong);
  }
  assert.ok(entries().includes('192.0.2.50'));
  assert.ok(entries().includes('198.51.100.0/24'));
  assert.ok(entries().includes('2001:db8::50'));
  for (const right of ['192.0.2.50', '198.51.100.0/24', '2001:db8::50']) {
    assert.deepEqual((await post(sim, DELETE, { address: right })).json, { status: 'done' });
    assert.ok(!entries().includes(right), right);
  }
  // Deleting something absent, or from a nonexistent alias, is still done.
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/delete/nope', { address: '192.0.2.50' })).json, { status: 'done' });
});

test('flush empties the table and says done; GET gets failed', async () => {
  await post(sim, '/api/firewall/alias_util/add/second', { address: '192.0.2.60' });
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/alias_util/flush/second')).json, { status: 'failed' });
  assert.ok(sim.tableEntries('second').length > 0);
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/flush/second')).json, { status: 'done' });
  assert.deepEqual(sim.tableEntries('second'), []);
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/flush/never_existed')).json, { status: 'done' });
});

test('trap 13: aliases lists pf tables (built-ins, pfctl-created), natural case-insensitive order', async () => {
  sim.seedTableEntries('Zeta10', ['192.0.2.1']);
  sim.seedTableEntries('zeta9', ['192.0.2.1']);
  const res = await call(sim, 'GET', '/api/firewall/alias_util/aliases');
  const names = res.json as string[];
  for (const builtin of ['bogons', 'bogonsv6', 'sshlockout', 'virusprot', 'fail2ban_blocklist', 'second']) assert.ok(names.includes(builtin), builtin);
  assert.ok(names.indexOf('zeta9') < names.indexOf('Zeta10'));
  // list works on any table, add only on configured aliases.
  assert.equal((await post(sim, '/api/firewall/alias_util/list/Zeta10')).status, 200);
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/add/Zeta10', { address: '192.0.2.2' })).json, {
    status: 'failed',
    status_msg: 'nonexistent alias Zeta10',
  });
});

test('list: defaults, nonexistent table, search, sort, GET', async () => {
  const empty = await post(sim, '/api/firewall/alias_util/list/does_not_exist');
  assert.deepEqual(empty.json, { total: 0, rowCount: 0, current: 1, rows: [] });
  sim.seedTableEntries('listing', ['192.0.2.1', '192.0.2.10', '192.0.2.2', '2001:db8::aa', '2001:db8::AB'.toLowerCase()]);
  const all = await call(sim, 'GET', '/api/firewall/alias_util/list/listing');
  assert.deepEqual(all.json, {
    total: 5,
    rowCount: 5,
    current: 1,
    rows: ['192.0.2.1', '192.0.2.2', '192.0.2.10', '2001:db8::aa', '2001:db8::ab'].map((ip) => ({ ip })),
  });
  const search = await post(sim, '/api/firewall/alias_util/list/listing', { searchPhrase: 'DB8 ::A' });
  assert.deepEqual((search.json as { total: number }).total, 2);
  const both = await post(sim, '/api/firewall/alias_util/list/listing', { searchPhrase: '192.0.2.1' });
  assert.deepEqual((both.json as { rows: unknown[] }).rows, [{ ip: '192.0.2.1' }, { ip: '192.0.2.10' }]);
  const desc = await post(sim, '/api/firewall/alias_util/list/listing', { sort: { ip: 'desc' }, rowCount: 2 });
  assert.deepEqual(desc.json, { total: 5, rowCount: 2, current: 1, rows: [{ ip: '2001:db8::ab' }, { ip: '2001:db8::aa' }] });
  const asc = await post(sim, '/api/firewall/alias_util/list/listing', { sort: { ip: 'asc' } });
  // PHP compares strings: 192.0.2.10 sorts before 192.0.2.2.
  assert.deepEqual((asc.json as { rows: { ip: string }[] }).rows.map((r) => r.ip).slice(0, 3), ['192.0.2.1', '192.0.2.10', '192.0.2.2']);
  const page = await post(sim, '/api/firewall/alias_util/list/listing', { rowCount: 2, current: 3 });
  assert.deepEqual(page.json, { total: 5, rowCount: 1, current: 3, rows: [{ ip: '2001:db8::ab' }] });
  const rows = (all.json as { rows: object[] }).rows;
  assert.ok(
    rows.every((r) => Object.keys(r).join() === 'ip'),
    'no counters without per-entry counters',
  );
});

test('find_references names the tables holding an address', async () => {
  sim.seedTableEntries('refs_a', ['198.51.100.128/25']);
  sim.seedTableEntries('refs_b', ['198.51.100.200']);
  const res = await post(sim, '/api/firewall/alias_util/find_references', { ip: '198.51.100.200' }, ADMIN);
  const matches = (res.json as { status: string; matches: string[] }).matches;
  assert.deepEqual([...matches].sort(), ['refs_a', 'refs_b']);
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/find_references', { ip: '203.0.113.0/24' })).json, { status: 'Invalid IP specified!' });
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/find_references', {})).json, { status: 'IP parameter not specified!' });
});
