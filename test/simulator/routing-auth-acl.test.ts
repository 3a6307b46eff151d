import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { isAllowed, LEAST_PRIVILEGES, urlMatches } from '../../src/simulator/acl.ts';
import { ADMIN, ADD, DAEMON, LIST, READ_ONLY, call, post, startSim, basic } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim();
});
after(async () => {
  await sim.stop();
});

test('the action name is matched case-insensitively after camelizing', async () => {
  for (const action of ['get_alias_u_u_i_d', 'getAliasUUID', 'get_alias_uuid', 'getaliasuuid']) {
    const res = await call(sim, 'GET', `/api/firewall/alias/${action}/fail2ban_blocklist`, { auth: ADMIN });
    assert.equal(res.status, 200, action);
    assert.match(String((res.json as { uuid?: string }).uuid), /^[0-9a-f-]{36}$/);
  }
});

test('controller alias_util and aliasUtil route, aliasutil is 404; module falls back case-insensitively', async () => {
  assert.equal((await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: ADMIN })).status, 200);
  assert.equal((await call(sim, 'GET', '/api/firewall/aliasUtil/aliases', { auth: ADMIN })).status, 200);
  assert.equal((await call(sim, 'GET', '/api/Firewall/alias_util/aliases', { auth: ADMIN })).status, 200);
  const res = await call(sim, 'GET', '/api/firewall/aliasutil/aliases', { auth: ADMIN });
  assert.equal(res.status, 404);
  assert.deepEqual(res.json, { errorMessage: 'Endpoint not found' });
});

test('unknown endpoints are 404 even without credentials (routing precedes auth)', async () => {
  const res = await call(sim, 'GET', '/api/firewall/alias_util/nosuchaction', { auth: null });
  assert.equal(res.status, 404);
  assert.deepEqual(res.json, { errorMessage: 'Endpoint not found' });
});

test('trap 12: a missing required path argument is 404, surplus arguments are ignored', async () => {
  const missing = await post(sim, '/api/firewall/alias_util/add', { address: '192.0.2.1' });
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json, { errorMessage: 'Endpoint not found' });
  const surplus = await post(sim, `${ADD}/extra/args`, { address: '192.0.2.2' });
  assert.deepEqual(surplus.json, { status: 'done' });
  assert.ok(sim.tableEntries('fail2ban_blocklist').includes('192.0.2.2'));
});

test('path arguments are not URL-decoded; the query string is not used for routing', async () => {
  const res = await post(sim, '/api/firewall/alias_util/add/fail2ban%5Fblocklist', { address: '192.0.2.3' });
  assert.deepEqual(res.json, { status: 'failed', status_msg: 'nonexistent alias fail2ban%5Fblocklist' });
  const routed = await post(sim, `${ADD}?action=delete`, { address: '192.0.2.4' });
  assert.deepEqual(routed.json, { status: 'done' });
  assert.ok(sim.tableEntries('fail2ban_blocklist').includes('192.0.2.4'));
});

test('no Authorization header: 401 with an empty body and a Location to the login page', async () => {
  const res = await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: null });
  assert.equal(res.status, 401);
  assert.equal(res.text, '');
  assert.equal(res.headers.location, '/?url=/api/firewall/alias_util/aliases');
});

test('bad secret, unknown key and malformed headers: 401 Authentication Failed', async () => {
  const expected = { status: 401, message: 'Authentication Failed' };
  for (const header of [
    basic({ key: DAEMON.key, secret: 'wrong' }),
    basic({ key: 'nobody', secret: DAEMON.secret }),
    'Basic',
    'Basic !!!notbase64',
    `Basic ${Buffer.from('no-colon').toString('base64')}`,
    '',
  ]) {
    const res = await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: header });
    assert.equal(res.status, 401, header);
    assert.deepEqual(res.json, expected, header);
  }
});

test('the scheme word is never checked: only the second token counts', async () => {
  const token = Buffer.from(`${DAEMON.key}:${DAEMON.secret}`).toString('base64');
  for (const header of [`Bearer ${token}`, `whatever ${token}`, `Basic ${token} trailing`]) {
    const res = await call(sim, 'GET', '/api/firewall/alias_util/aliases', { auth: header });
    assert.equal(res.status, 200, header);
  }
});

test('trap 8: ACL patterns are case-sensitive, camelCase URLs route but get 403 without page-all', async () => {
  const snake = await post(sim, '/api/diagnostics/firewall/kill_states', { filter: '192.0.2.9' });
  assert.equal(snake.status, 200);
  const camel = await post(sim, '/api/diagnostics/firewall/killStates', { filter: '192.0.2.9' });
  assert.equal(camel.status, 403);
  assert.deepEqual(camel.json, { status: 403, message: 'Forbidden' });
  const camelUtil = await post(sim, '/api/firewall/aliasUtil/add/fail2ban_blocklist', { address: '192.0.2.10' });
  assert.equal(camelUtil.status, 403);
  assert.ok(!sim.tableEntries('fail2ban_blocklist').includes('192.0.2.10'));
  const admin = await post(sim, '/api/diagnostics/firewall/killStates', { filter: '192.0.2.9' }, ADMIN);
  assert.equal(admin.status, 200);
});

test('least privileges: alias reads allowed, alias edits and filter rules forbidden', async () => {
  assert.equal((await call(sim, 'GET', '/api/firewall/alias/search_item')).status, 200);
  assert.equal((await call(sim, 'GET', '/api/firewall/alias/get_table_size')).status, 200);
  const addItem = await post(sim, '/api/firewall/alias/add_item', { alias: { name: 'x', type: 'external' } });
  assert.equal(addItem.status, 403);
  assert.equal((await post(sim, '/api/firewall/alias/reconfigure')).status, 403);
  assert.equal((await post(sim, '/api/firewall/filter/apply')).status, 403);
});

test('ACL: anchored on the full URI incl. query string, * wildcard, trailing /* matches the bare path, case-sensitive', () => {
  assert.equal(urlMatches('/api/firewall/alias/export', 'api/firewall/alias/export'), true);
  assert.equal(urlMatches('/api/firewall/alias/export?format=json', 'api/firewall/alias/export'), false);
  assert.equal(urlMatches('/api/firewall/alias/get_item/x?y=1', 'api/firewall/alias/get*'), true);
  assert.equal(urlMatches('/api/firewall/alias_util', 'api/firewall/alias_util/*'), true);
  assert.equal(urlMatches('/api/firewall/alias_utility', 'api/firewall/alias_util/*'), false);
  assert.equal(urlMatches('/api/firewall/aliasUtil/add/x', 'api/firewall/alias_util/*'), false);
  assert.equal(urlMatches('/x/api/firewall/alias_util/add', 'api/firewall/alias_util/*'), false);
  assert.equal(urlMatches('/api/firewall/aliasXget', 'api/firewall/alias.get*'), false);
  assert.equal(isAllowed('/api/anything', ['page-all']), true);
  assert.equal(isAllowed('/api/firewall/filter/apply', LEAST_PRIVILEGES), false);
});

test('trap 14: read-only keys are refused on alias_util writes (HEAD ≥ 26.7.1) and model saves', async () => {
  const expected = { errorMessage: 'User auditor denied for write access (user-config-readonly set)', errorTitle: 'General access' };
  for (const path of [ADD, '/api/firewall/alias_util/delete/fail2ban_blocklist', '/api/firewall/alias_util/flush/fail2ban_blocklist']) {
    const res = await post(sim, path, { address: '192.0.2.11' }, READ_ONLY);
    assert.equal(res.status, 500, path);
    assert.deepEqual(res.json, expected, path);
  }
  const addItem = await post(sim, '/api/firewall/alias/add_item', { alias: { name: 'ro_try', type: 'external' } }, READ_ONLY);
  assert.equal(addItem.status, 500);
  assert.deepEqual(addItem.json, expected);
  assert.ok(!sim.tableEntries('fail2ban_blocklist').includes('192.0.2.11'));
  // Reads are fine, and kill_states never checks.
  assert.equal((await post(sim, LIST, {}, READ_ONLY)).status, 200);
  sim.seedStates('192.0.2.12', 2);
  const kill = await post(sim, '/api/diagnostics/firewall/kill_states', { filter: '192.0.2.12' }, READ_ONLY);
  assert.deepEqual(kill.json, { result: 'ok', dropped_states: 2 });
});

test('a read-only key gets failed (not the read-only error) when the request fails step 1', async () => {
  const res = await call(sim, 'GET', ADD, { auth: READ_ONLY });
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'failed' });
});
