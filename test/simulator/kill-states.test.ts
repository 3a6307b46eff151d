import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { call, post, startSim } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim();
});
after(async () => {
  await sim.stop();
});

const KILL = '/api/diagnostics/firewall/kill_states';

test('kill_states drops the states of an IPv4 address', async () => {
  sim.seedStates('192.0.2.70', 5);
  sim.seedStates('192.0.2.71', 2);
  const res = await post(sim, KILL, { filter: '192.0.2.70' });
  assert.deepEqual(res.json, { result: 'ok', dropped_states: 5 });
  assert.equal(sim.stateCount('192.0.2.70'), 0);
  assert.equal(sim.stateCount('192.0.2.71'), 2);
  assert.deepEqual((await post(sim, KILL, { filter: '192.0.2.70' })).json, { result: 'ok', dropped_states: 0 });
});

test('trap 11: IPv6 and CIDR filters are mangled by the sanitizer and kill nothing', async () => {
  sim.seedStates('2001:db8::70', 3);
  sim.seedStates('198.51.100.70', 3);
  assert.deepEqual((await post(sim, KILL, { filter: '2001:db8::70' })).json, { result: 'ok', dropped_states: 0 });
  assert.deepEqual((await post(sim, KILL, { filter: '198.51.100.0/24' })).json, { result: 'ok', dropped_states: 0 });
  assert.equal(sim.stateCount('2001:db8::70'), 3);
  assert.equal(sim.stateCount('198.51.100.70'), 3);
  // `::` sanitizes to nothing at all → failed.
  assert.deepEqual((await post(sim, KILL, { filter: '::' })).json, { result: 'failed' });
});

test('empty filter, GET → failed', async () => {
  assert.deepEqual((await post(sim, KILL, {})).json, { result: 'failed' });
  assert.deepEqual((await post(sim, KILL, { filter: '' })).json, { result: 'failed' });
  assert.deepEqual((await call(sim, 'GET', KILL)).json, { result: 'failed' });
});

test('query_states lists states (searchPhrase keeps the colon)', async () => {
  sim.seedStates('2001:db8::71', 1);
  const res = await post(sim, '/api/diagnostics/firewall/query_states', { searchPhrase: '2001:db8::71' });
  const body = res.json as { total: number; rows: { src_addr: string; id: string }[] };
  assert.equal(body.total, 1);
  assert.equal(body.rows[0]?.src_addr, '2001:db8::71');
  const [id, creator] = body.rows[0]!.id.split('/');
  assert.deepEqual((await post(sim, `/api/diagnostics/firewall/del_state/${id}/${creator}`)).json, { result: 'ok' });
  assert.equal(sim.stateCount('2001:db8::71'), 0);
});
