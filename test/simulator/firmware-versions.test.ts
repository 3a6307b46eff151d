import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, DAEMON, call, post, startSim } from './helpers.ts';

const RULE = {
  enabled: '1',
  action: 'block',
  quick: '1',
  interface: 'wan',
  direction: 'in',
  ipprotocol: 'inet46',
  protocol: 'any',
  source_net: 'fail2ban_blocklist',
  source_not: '0',
  destination_net: 'any',
  log: '1',
  description: 'edgeban',
};

test('core/firmware/status reports the played release; it needs System: Firmware', async (t) => {
  const sim = await startSim({ firmwareVersion: '25.1.3' });
  t.after(() => sim.stop());
  const status = (await call(sim, 'GET', '/api/core/firmware/status', { auth: ADMIN })).json as {
    product: { product_version: string; product_series: string };
    status: string;
  };
  assert.equal(status.product.product_version, '25.1.3');
  assert.equal(status.product.product_series, '25.1');
  assert.equal(status.status, 'none');
  assert.equal((await call(sim, 'GET', '/api/core/firmware/status', { auth: DAEMON })).status, 403);
  sim.setFirmwareVersion('26.7.2');
  assert.equal(
    ((await call(sim, 'GET', '/api/core/firmware/status', { auth: ADMIN })).json as { product: { product_version: string } }).product.product_version,
    '26.7.2',
  );
  assert.throws(() => sim.setFirmwareVersion('25.4'), RangeError);
});

test('24.7: no inet46 option (validation and get_rule), savepoint + apply/<rev> rolls back after 60 s unless cancelled', async (t) => {
  let now = Date.parse('2025-06-01T12:00:00Z');
  const sim = await startSim({ firmwareVersion: '24.7.12', now: () => now });
  t.after(() => sim.stop());
  const defaults = (await call(sim, 'GET', '/api/firewall/filter/get_rule', { auth: ADMIN })).json as { rule: { ipprotocol: Record<string, unknown> } };
  assert.deepEqual(Object.keys(defaults.rule.ipprotocol), ['inet', 'inet6']);
  const refused = (await post(sim, '/api/firewall/filter/add_rule', { rule: RULE }, ADMIN)).json as { result: string; validations: Record<string, string> };
  assert.equal(refused.result, 'failed');
  assert.ok('rule.ipprotocol' in refused.validations);

  const savepoint = (await post(sim, '/api/firewall/filter/savepoint', {}, ADMIN)).json as { status: string; revision: string; retention: string };
  assert.equal(savepoint.status, 'ok');
  assert.equal((await post(sim, '/api/firewall/filter/add_rule', { rule: { ...RULE, ipprotocol: 'inet' } }, ADMIN)).status, 200);
  assert.deepEqual((await post(sim, `/api/firewall/filter/apply/${savepoint.revision}`, {}, ADMIN)).json, { status: 'OK\n\n' });
  assert.equal(sim.filterRules().rollbackPending, true);
  now += 61_000;
  assert.deepEqual(sim.filterRules().rules, [], 'not confirmed within 60 s: the rule is rolled back');
  assert.equal(sim.filterRules().rollbacks, 1);

  const second = (await post(sim, '/api/firewall/filter/savepoint', {}, ADMIN)).json as { revision: string };
  await post(sim, '/api/firewall/filter/add_rule', { rule: { ...RULE, ipprotocol: 'inet6' } }, ADMIN);
  await post(sim, `/api/firewall/filter/apply/${second.revision}`, {}, ADMIN);
  assert.deepEqual((await post(sim, `/api/firewall/filter/cancel_rollback/${second.revision}`, {}, ADMIN)).json, { status: 'ok' });
  now += 120_000;
  const kept = sim.filterRules();
  assert.deepEqual([kept.rules.length, kept.applied, kept.rollbackPending], [1, true, false]);
  assert.deepEqual((await post(sim, `/api/firewall/filter/revert/${second.revision}`, {}, ADMIN)).json, { status: 'ok' });
  assert.deepEqual(sim.filterRules().rules, []);
  assert.deepEqual((await post(sim, '/api/firewall/filter/revert/123.4', {}, ADMIN)).json, { status: 'unknown (or removed) savepoint' });
});

test('23.7 has no filter API (404); search_item shows the type label before 25.7', async (t) => {
  const sim = await startSim({ firmwareVersion: '23.7.12' });
  t.after(() => sim.stop());
  assert.equal((await call(sim, 'GET', '/api/firewall/filter/get_rule', { auth: ADMIN })).status, 404);
  assert.equal((await post(sim, '/api/firewall/filter/add_rule', { rule: RULE }, ADMIN)).status, 404);
  const rows = (
    (await call(sim, 'GET', '/api/firewall/alias/search_item?searchPhrase=fail2ban', { auth: ADMIN })).json as { rows: Array<Record<string, string>> }
  ).rows;
  assert.equal(rows[0]?.type, 'External (advanced)');
  assert.equal(rows[0]?.['%type'], undefined);
});

test('admin API: aliases created and deleted, keys added, firmware and table-entries changed, state shows them', async (t) => {
  const sim = await startSim({ aliases: [] });
  t.after(() => sim.stop());
  const admin = async (path: string, body?: unknown) => {
    const res = await fetch(
      `${sim.url}/__simulator/${path}`,
      body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    );
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  assert.equal((await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/fail2ban_blocklist', { auth: ADMIN })).text, '[]');
  assert.equal((await admin('aliases', { create: [{ name: 'fail2ban_blocklist', type: 'host' }] })).status, 200);
  assert.match((await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/fail2ban_blocklist', { auth: ADMIN })).text, /uuid/);
  assert.equal((await admin('aliases', { create: [{ name: 'ssh', type: 'external' }] })).status, 400, 'reserved name refused');
  assert.equal((await admin('aliases', { delete: ['fail2ban_blocklist'] })).status, 200);
  assert.equal((await admin('aliases', { delete: ['fail2ban_blocklist'] })).status, 404);
  assert.equal((await call(sim, 'GET', '/api/firewall/alias/get_alias_u_u_i_d/fail2ban_blocklist', { auth: ADMIN })).text, '[]');

  const limited = { key: 'limited', secret: 'limited-secret' };
  assert.equal((await admin('keys', { ...limited, privileges: ['page-diagnostics-tables'] })).status, 200);
  assert.equal((await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: limited })).status, 200);
  assert.equal((await call(sim, 'GET', '/api/firewall/alias/get_table_size', { auth: limited })).status, 403);
  assert.equal((await admin('keys', { ...limited, privileges: ['no-such-privilege'] })).status, 400);

  assert.equal((await admin('firmware', { version: '24.1' })).status, 200);
  assert.equal((await admin('firmware', { version: 'latest' })).status, 400);
  assert.equal((await admin('table-entries', { limit: 500 })).status, 200);
  const size = (await call(sim, 'GET', '/api/firewall/alias/get_table_size', { auth: ADMIN })).json as { size: number };
  assert.equal(size.size, 500);
  const state = (await admin('state')).json;
  assert.equal(state.firmwareVersion, '24.1');
  assert.equal(state.tableEntriesLimit, 500);
  assert.deepEqual(state.aliases, []);
});
