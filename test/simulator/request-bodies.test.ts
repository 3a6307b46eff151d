import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { ADD, LIST, call, post, startSim } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim();
});
after(async () => {
  await sim.stop();
});

const has = (address: string) => sim.tableEntries('fail2ban_blocklist').includes(address);

test('JSON is parsed for application/json and application/json;charset=utf-8, case and spaces aside', async () => {
  for (const [i, type] of ['application/json', 'Application/JSON', 'application/json; charset=UTF-8', 'application/json ; charset = utf-8'].entries()) {
    const res = await call(sim, 'POST', ADD, { body: { address: `192.0.2.${20 + i}` }, contentType: type });
    assert.deepEqual(res.json, { status: 'done' }, type);
    assert.ok(has(`192.0.2.${20 + i}`), type);
  }
});

test('trap 9: charset=utf8 (no dash) or other JSON-ish types are not parsed: the address is missing → failed', async () => {
  for (const type of ['application/json; charset=utf8', 'text/json', 'application/vnd.api+json', 'text/plain']) {
    const res = await call(sim, 'POST', ADD, { body: { address: '192.0.2.30' }, contentType: type });
    assert.equal(res.status, 200, type);
    assert.deepEqual(res.json, { status: 'failed' }, type);
  }
  assert.ok(!has('192.0.2.30'));
});

test('trap 9: application/json with an empty body is 400 Invalid JSON syntax, even on GET', async () => {
  for (const [method, path] of [
    ['POST', ADD],
    ['POST', '/api/diagnostics/firewall/kill_states'],
    ['GET', '/api/firewall/alias_util/aliases'],
  ] as const) {
    const res = await call(sim, method, path, { body: '', contentType: 'application/json' });
    assert.equal(res.status, 400, `${method} ${path}`);
    assert.deepEqual(res.json, { status: 400, message: 'Invalid JSON syntax' });
  }
  // `{}` is fine.
  assert.equal((await call(sim, 'GET', '/api/firewall/alias_util/aliases', { body: '{}' })).status, 200);
});

test('non-empty invalid JSON is silently treated as no parameters', async () => {
  const res = await call(sim, 'POST', ADD, { body: '{"address": "192.0.2.31"', contentType: 'application/json' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'failed' });
});

test('urlencoded and multipart forms are parsed; query-string parameters are ignored', async () => {
  const form = await call(sim, 'POST', ADD, { body: 'address=192.0.2.32', contentType: 'application/x-www-form-urlencoded' });
  assert.deepEqual(form.json, { status: 'done' });
  assert.ok(has('192.0.2.32'));
  const boundary = 'XyZ123';
  const multipart = `--${boundary}\r\nContent-Disposition: form-data; name="address"\r\n\r\n192.0.2.33\r\n--${boundary}--\r\n`;
  const mp = await call(sim, 'POST', ADD, { body: multipart, contentType: `multipart/form-data; boundary=${boundary}` });
  assert.deepEqual(mp.json, { status: 'done' });
  assert.ok(has('192.0.2.33'));
  const query = await call(sim, 'POST', `${ADD}?address=192.0.2.34`, { body: '', contentType: 'application/x-www-form-urlencoded' });
  assert.deepEqual(query.json, { status: 'failed' });
  assert.ok(!has('192.0.2.34'));
});

test('trap 4: paging parameters in the query string are ignored (POST fields only)', async () => {
  sim.seedTableEntries('paging_q', ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  const viaQuery = await call(sim, 'POST', '/api/firewall/alias_util/list/paging_q?rowCount=1&current=2', { body: {} });
  assert.equal((viaQuery.json as { rowCount: number }).rowCount, 3);
  const viaForm = await call(sim, 'POST', '/api/firewall/alias_util/list/paging_q', {
    body: 'rowCount=1&current=2',
    contentType: 'application/x-www-form-urlencoded',
  });
  assert.deepEqual(viaForm.json, { total: 3, rowCount: 1, current: 2, rows: [{ ip: '192.0.2.2' }] });
});

test('replies are application/json; charset=UTF-8 with PHP-escaped slashes', async () => {
  await post(sim, ADD, { address: '198.51.100.0/24' });
  const res = await post(sim, LIST, { searchPhrase: '198.51.100' });
  assert.equal(res.headers['content-type'], 'application/json; charset=UTF-8');
  assert.ok(res.text.includes('"198.51.100.0\\/24"'), res.text);
});

test('trap 12: GET on a write action is 200 with a failure body, never 405', async () => {
  for (const [path, body] of [
    [ADD, { status: 'failed' }],
    ['/api/firewall/alias_util/delete/fail2ban_blocklist', { status: 'failed' }],
    ['/api/firewall/alias_util/flush/fail2ban_blocklist', { status: 'failed' }],
    ['/api/diagnostics/firewall/kill_states', { result: 'failed' }],
  ] as const) {
    const res = await call(sim, 'GET', path);
    assert.equal(res.status, 200, path);
    assert.deepEqual(res.json, body, path);
  }
  // GET with a JSON body still does not count as POST.
  const withBody = await call(sim, 'GET', ADD, { body: { address: '192.0.2.35' } });
  assert.deepEqual(withBody.json, { status: 'failed' });
  assert.ok(!has('192.0.2.35'));
});

test('an array where a string is expected makes PHP throw: 500 Unexpected error', async () => {
  const res = await call(sim, 'POST', ADD, { body: 'address[]=192.0.2.36', contentType: 'application/x-www-form-urlencoded' });
  assert.equal(res.status, 500);
  assert.deepEqual(res.json, { errorMessage: 'Unexpected error, check log for details' });
});
