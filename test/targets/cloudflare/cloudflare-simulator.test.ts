import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/util/clock.ts';
import { CloudflareSimulator } from '../../../src/simulator/cloudflare/cloudflare-simulator.ts';

const ACCOUNT = '0123456789abcdef0123456789abcdef';
const TOKEN = 'sim-token-Kq2Wm4Ex6Rn8Tb0Yc1';

test('simulator: a bulk operation is pending, then running, and applied only when its time has come; a second write meanwhile is a 429', async (t) => {
  const clock = new ManualClock();
  const sim = await CloudflareSimulator.start({
    clock,
    operationDelayMs: 1000,
    tokens: [{ token: TOKEN, permissions: ['lists:edit'] }],
    accounts: [{ id: ACCOUNT, lists: [{ name: 'blocklist' }] }],
  });
  t.after(() => sim.stop());
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${sim.url}/accounts/${ACCOUNT}/rules/lists${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: (await response.json()) as { success: boolean; result: Record<string, string> & Array<{ id: string; ip: string }> },
    };
  };
  const listId = (await call('GET', '')).body.result[0]?.id ?? '';
  const submitted = await call('POST', `/${listId}/items`, [{ ip: '192.0.2.1', comment: 'edgeban jail=sshd' }]);
  const operation = submitted.body.result.operation_id ?? '';
  assert.equal((await call('GET', `/bulk_operations/${operation}`)).body.result.status, 'pending');
  const second = await call('POST', `/${listId}/items`, [{ ip: '192.0.2.2' }]);
  assert.equal(second.status, 429);
  assert.equal(second.retryAfter, '1');
  assert.equal((await call('GET', `/${listId}/items`)).body.result.length, 0, 'not applied yet');
  await clock.advance(600);
  assert.equal((await call('GET', `/bulk_operations/${operation}`)).body.result.status, 'running');
  await clock.advance(400);
  assert.equal((await call('GET', `/bulk_operations/${operation}`)).body.result.status, 'completed');
  assert.deepEqual(
    (await call('GET', `/${listId}/items`)).body.result.map((i) => i.ip),
    ['192.0.2.1'],
  );
  const invalid = await call('POST', `/${listId}/items`, [{ ip: '10.0.0.0/7' }]);
  assert.equal(invalid.status, 400, 'IPv4 wider than /8');
});
