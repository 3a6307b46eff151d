import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, EDITOR, call, post, startSim } from './helpers.ts';

const aliases = [
  { name: 'fail2ban_blocklist', type: 'external' as const },
  { name: 'hosts', type: 'host' as const },
  { name: 'nets', type: 'network' as const },
];

async function content(sim: Awaited<ReturnType<typeof startSim>>, name: string): Promise<string[]> {
  const uuid = ((await call(sim, 'GET', `/api/firewall/alias/get_alias_u_u_i_d/${name}`)).json as { uuid: string }).uuid;
  const item = (await call(sim, 'GET', `/api/firewall/alias/get_item/${uuid}`)).json as { alias: { content: Record<string, unknown> } };
  return Object.keys(item.alias.content);
}

test('trap 6: host/network adds and deletes write a config revision each; external ones do not', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/fail2ban_blocklist', { address: '192.0.2.1' });
    await post(sim, '/api/firewall/alias_util/delete/fail2ban_blocklist', { address: '192.0.2.1' });
    assert.equal(sim.configRevisions(), 0);
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.1' });
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '198.51.100.0/24' });
    assert.equal(sim.configRevisions(), 3);
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.1', '192.0.2.2']);
    await post(sim, '/api/firewall/alias_util/delete/hosts', { address: '192.0.2.2' });
    assert.equal(sim.configRevisions(), 4);
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.1']);
    // Deleting an address not in the content saves nothing.
    await post(sim, '/api/firewall/alias_util/delete/hosts', { address: '192.0.2.99' });
    assert.equal(sim.configRevisions(), 4);
  } finally {
    await sim.stop();
  }
});

test('trap 6: re-adding the FIRST content entry duplicates it (array_search index 0), later entries do not', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.1' });
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.1' });
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    assert.deepEqual(await content(sim, 'hosts'), ['192.0.2.1', '192.0.2.2']);
    const item = await call(sim, 'GET', `/api/firewall/alias/search_item?searchPhrase=hosts`);
    const row = (item.json as { rows: { name: string; content: string }[] }).rows.find((r) => r.name === 'hosts');
    assert.equal(row?.content, '192.0.2.1,192.0.2.2,192.0.2.1');
    assert.equal(sim.configRevisions(), 3);
    // pf itself holds each address once.
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.1', '192.0.2.2']);
  } finally {
    await sim.stop();
  }
});

test('trap 6: network aliases get /32, and `::1` also gets /32 (strpos 0 is falsy)', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '192.0.2.7' });
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '2001:db8::7' });
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '::1' });
    const rows = ((await call(sim, 'GET', '/api/firewall/alias/search_item?searchPhrase=nets')).json as { rows: { name: string; content: string }[] }).rows;
    assert.equal(rows.find((r) => r.name === 'nets')?.content, '192.0.2.7/32,2001:db8::7/128,::1/32');
    // pfctl got `::1/32` and masked it.
    assert.deepEqual(sim.tableEntries('nets'), ['192.0.2.7', '::/32', '2001:db8::7']);
  } finally {
    await sim.stop();
  }
});

test('trap 6: a CIDR on a host alias (or a word on a network alias) is HTTP 500 and adds nothing', async () => {
  const sim = await startSim({ aliases });
  try {
    const cidr = await post(sim, '/api/firewall/alias_util/add/hosts', { address: '198.51.100.0/24' });
    assert.equal(cidr.status, 500);
    assert.deepEqual(cidr.json, { errorMessage: 'Unexpected error, check log for details' });
    const word = await post(sim, '/api/firewall/alias_util/add/nets', { address: 'cafe' });
    assert.equal(word.status, 500);
    assert.deepEqual(sim.tableEntries('hosts'), []);
    assert.deepEqual(sim.tableEntries('nets'), []);
    assert.equal(sim.configRevisions(), 0);
    // A host name is valid host content but pfctl cannot resolve it: done, config changed, table not.
    const name = await post(sim, '/api/firewall/alias_util/add/hosts', { address: 'cafe.example' });
    assert.deepEqual(name.json, { status: 'not_an_address' });
    const hexName = await post(sim, '/api/firewall/alias_util/add/hosts', { address: 'cafe' });
    assert.deepEqual(hexName.json, { status: 'done' });
    assert.equal(sim.configRevisions(), 1);
    assert.deepEqual(sim.tableEntries('hosts'), []);
  } finally {
    await sim.stop();
  }
});

test('network delete removes address and address/32 from content', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '192.0.2.8' });
    await post(sim, '/api/firewall/alias_util/delete/nets', { address: '192.0.2.8' });
    assert.deepEqual(await content(sim, 'nets'), []);
    assert.deepEqual(sim.tableEntries('nets'), []);
  } finally {
    await sim.stop();
  }
});

test('trap 7: reboot empties external tables but reloads host/network from config; both survive reconfigure and apply', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/fail2ban_blocklist', { address: '192.0.2.1' });
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    await post(sim, '/api/firewall/alias_util/add/nets', { address: '198.51.100.0/24' });
    sim.seedTableEntries('bogons', ['203.0.113.0/24']);
    sim.seedTableEntries('adhoc', ['203.0.113.9']);
    sim.seedStates('192.0.2.1', 3);
    assert.deepEqual((await post(sim, '/api/firewall/alias/reconfigure', {}, EDITOR)).json, { status: 'ok' });
    assert.deepEqual((await post(sim, '/api/firewall/filter/apply', {}, ADMIN)).json, { status: 'OK\n\n' });
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), ['192.0.2.1']);
    sim.reboot();
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
    assert.deepEqual(sim.tableEntries('bogons'), []);
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.2']);
    assert.deepEqual(sim.tableEntries('nets'), ['198.51.100.0/24']);
    assert.equal(sim.stateCount('192.0.2.1'), 0);
    const tables = (await call(sim, 'GET', '/api/firewall/alias_util/aliases')).json as string[];
    assert.ok(!tables.includes('adhoc'), 'a table only pfctl created does not survive a reboot');
    assert.ok(tables.includes('fail2ban_blocklist'));
  } finally {
    await sim.stop();
  }
});

test('flush on a host alias empties pf but not the config; reconfigure refills it', async () => {
  const sim = await startSim({ aliases });
  try {
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    await post(sim, '/api/firewall/alias_util/flush/hosts');
    assert.deepEqual(sim.tableEntries('hosts'), []);
    assert.deepEqual(await content(sim, 'hosts'), ['192.0.2.2']);
    await post(sim, '/api/firewall/alias/reconfigure', {}, EDITOR);
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.2']);
  } finally {
    await sim.stop();
  }
});

test('the per-minute update_tables cron undoes a flush of a host alias, not of an external one', async () => {
  let now = Date.UTC(2026, 10, 21, 12, 0, 10);
  const sim = await startSim({ aliases, now: () => now });
  try {
    await post(sim, '/api/firewall/alias_util/add/hosts', { address: '192.0.2.2' });
    await post(sim, '/api/firewall/alias_util/add/fail2ban_blocklist', { address: '192.0.2.3' });
    await post(sim, '/api/firewall/alias_util/flush/hosts');
    await post(sim, '/api/firewall/alias_util/flush/fail2ban_blocklist');
    now += 30_000; // 12:00:40, same minute
    assert.deepEqual(sim.tableEntries('hosts'), []);
    now += 30_000; // 12:01:10
    assert.deepEqual(sim.tableEntries('hosts'), ['192.0.2.2']);
    assert.deepEqual(sim.tableEntries('fail2ban_blocklist'), []);
  } finally {
    await sim.stop();
  }
});
