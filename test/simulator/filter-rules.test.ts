import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import { EDITOR, READ_ONLY, call, post, startSim } from './helpers.ts';

let sim: OpnsenseSimulator;
before(async () => {
  sim = await startSim();
});
after(async () => {
  await sim.stop();
});

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
  description: 'api blocklist',
};

test('add_rule with a block rule on the blocklist alias, then search, get, apply, delete', async () => {
  const revisions = sim.configRevisions();
  const added = (await post(sim, '/api/firewall/filter/add_rule', { rule: RULE }, EDITOR)).json as { result: string; uuid: string };
  assert.equal(added.result, 'saved');
  assert.equal(sim.configRevisions(), revisions + 1);
  const search = (await call(sim, 'GET', '/api/firewall/filter/search_rule?searchPhrase=api%20blocklist', { auth: EDITOR })).json as {
    total: number;
    rows: { uuid: string }[];
  };
  assert.equal(search.total, 1);
  assert.equal(search.rows[0]?.uuid, added.uuid);
  const got = (await call(sim, 'GET', `/api/firewall/filter/get_rule/${added.uuid}`, { auth: EDITOR })).json as {
    rule: { action: Record<string, { selected: number }>; source_net: string };
  };
  assert.equal(got.rule.action.block?.selected, 1);
  assert.equal(got.rule.source_net, 'fail2ban_blocklist');
  assert.equal((await call(sim, 'GET', '/api/firewall/filter/get_rule/nope', { auth: EDITOR })).text, '[]');
  assert.deepEqual((await call(sim, 'GET', '/api/firewall/filter/apply', { auth: EDITOR })).json, { status: 'error' });
  assert.deepEqual((await post(sim, '/api/firewall/filter/apply', {}, EDITOR)).json, { status: 'OK\n\n' });
  assert.deepEqual((await post(sim, `/api/firewall/filter/del_rule/${added.uuid}`, {}, EDITOR)).json, { result: 'deleted' });
  assert.deepEqual((await post(sim, `/api/firewall/filter/del_rule/${added.uuid}`, {}, EDITOR)).json, { result: 'not found' });
});

test('add_rule validations: unknown alias, bad option; read-only refused; 26.7 has no savepoint', async () => {
  const bad = (await post(sim, '/api/firewall/filter/add_rule', { rule: { ...RULE, source_net: 'no_such_alias', action: 'drop' } }, EDITOR)).json as {
    result: string;
    validations: Record<string, string>;
  };
  assert.equal(bad.result, 'failed');
  assert.ok('rule.source_net' in bad.validations);
  assert.ok('rule.action' in bad.validations);
  const cidr = (await post(sim, '/api/firewall/filter/add_rule', { rule: { ...RULE, source_net: '198.51.100.0/24' } }, EDITOR)).json as { result: string };
  assert.equal(cidr.result, 'saved');
  assert.equal((await post(sim, '/api/firewall/filter/add_rule', { rule: RULE }, READ_ONLY)).status, 500);
  assert.equal((await post(sim, '/api/firewall/filter/savepoint', {}, EDITOR)).status, 404);
  assert.equal((await post(sim, '/api/firewall/filter/del_rule', {}, EDITOR)).status, 404);
});
