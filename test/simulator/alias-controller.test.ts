import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { EDITOR, call, post, startSim } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim();
});
after(async () => {
  await sim.stop();
});

test('trap 10: get_alias_u_u_i_d and get_item answer [] when nothing is found, not {} and not 404', async () => {
  const uuid = await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/not_there');
  assert.equal(uuid.status, 200);
  assert.equal(uuid.text, '[]');
  const item = await call(sim, 'GET', '/api/firewall/alias/get_item/00000000-0000-4000-8000-000000000000');
  assert.equal(item.status, 200);
  assert.equal(item.text, '[]');
});

test('built-in aliases have uuid = name; get_item shows the type as the selected key', async () => {
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/bogons')).json, { uuid: 'bogons' });
  const uuid = ((await call(sim, 'GET', '/api/firewall/alias/getAliasUUID/fail2ban_blocklist')).json as { uuid: string }).uuid;
  const item = (await call(sim, 'GET', `/api/firewall/alias/get_item/${uuid}`)).json as {
    alias: { name: string; type: Record<string, { value: string; selected: number }> };
  };
  assert.equal(item.alias.name, 'fail2ban_blocklist');
  const selected = Object.entries(item.alias.type)
    .filter(([, v]) => v.selected === 1)
    .map(([k]) => k);
  assert.deepEqual(selected, ['external']);
  assert.equal(item.alias.type.external?.value, 'External (advanced)');
  assert.equal(Object.keys(item.alias.type).length, 14);
});

test('trap 15: search_item gives the raw type and the label in %type; query string accepted', async () => {
  const res = await call(sim, 'GET', '/api/firewall/alias/search_item?searchPhrase=fail2ban');
  const body = res.json as { total: number; rows: Record<string, string>[] };
  assert.equal(body.total, 1);
  assert.equal(body.rows[0]?.type, 'external');
  assert.equal(body.rows[0]?.['%type'], 'External (advanced)');
  const byType = await post(sim, '/api/firewall/alias/search_item', { type: ['external'], rowCount: 2 });
  assert.equal((byType.json as { rowCount: number }).rowCount, 2);
});

test('add_item validates the name, saves a revision, and the table exists after reconfigure', async () => {
  const bad = [
    ['1abc', 'alias.name'],
    ['__internal', 'alias.name'],
    ['a'.repeat(32), 'alias.name'],
    ['with-dash', 'alias.name'],
    ['ssh', 'alias.name'],
    ['fail2ban_blocklist', 'alias.name'],
    ['bogons', 'alias.name'],
  ];
  for (const [name, field] of bad) {
    const res = await post(sim, '/api/firewall/alias/add_item', { alias: { enabled: '1', name, type: 'external' } }, EDITOR);
    const body = res.json as { result: string; validations: Record<string, string> };
    assert.equal(body.result, 'failed', name);
    assert.ok(field! in body.validations, `${name}: ${JSON.stringify(body)}`);
  }
  assert.deepEqual((await post(sim, '/api/firewall/alias/add_item', { name: 'x' }, EDITOR)).json, { result: 'failed' });
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/alias/add_item', { auth: EDITOR })).json, { result: 'failed' });
  const revisions = sim.configRevisions();
  const ok = await post(
    sim,
    '/api/firewall/alias/add_item',
    {
      alias: { enabled: '1', name: 'blocklist_v2', type: 'external', description: 'api managed', counters: '0' },
    },
    EDITOR,
  );
  const saved = ok.json as { result: string; uuid: string };
  assert.equal(saved.result, 'saved');
  assert.equal(sim.configRevisions(), revisions + 1);
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/blocklist_v2')).json, { uuid: saved.uuid });
  let tables = (await call(sim, 'GET', '/api/firewall/alias_util/aliases')).json as string[];
  assert.ok(!tables.includes('blocklist_v2'), 'not a pf table before reconfigure');
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/alias/reconfigure', { auth: EDITOR })).json, { status: 'failed' });
  assert.deepEqual((await post(sim, '/api/firewall/alias/reconfigure', {}, EDITOR)).json, { status: 'ok' });
  tables = (await call(sim, 'GET', '/api/firewall/alias_util/aliases')).json as string[];
  assert.ok(tables.includes('blocklist_v2'));
  assert.deepEqual((await post(sim, '/api/firewall/alias_util/add/blocklist_v2', { address: '192.0.2.1' })).json, { status: 'done' });
});

test('get_table_size reports the global limit and the entries used by all tables', async () => {
  sim.seedTableEntries('bogons', ['203.0.113.0/24', '198.51.100.0/24']);
  await post(sim, '/api/firewall/alias_util/add/fail2ban_blocklist', { address: '192.0.2.99' });
  const res = (await call(sim, 'GET', '/api/firewall/alias/get_table_size')).json as {
    status: string;
    size: number;
    used: number;
    details: Record<string, { count: number }>;
  };
  assert.equal(res.status, 'ok');
  assert.equal(res.size, 1_000_000);
  assert.equal(
    res.used,
    Object.values(res.details).reduce((sum, d) => sum + d.count, 0),
  );
  assert.equal(res.details.bogons?.count, 2);
});
