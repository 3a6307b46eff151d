// OpnsenseTarget through the seam: OPNsense's errors as TargetError kinds, the alias checks, kill_states' rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LEAST_PRIVILEGES } from '../../src/simulator/opnsense-simulator.ts';
import { TargetError } from '../../src/targets/edge-target.ts';
import { OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { OpnsenseTarget } from '../../src/targets/opnsense/target.ts';
import { ALIAS, CapturedLog, endpointFor, KEY, SECRET, startSimulator } from '../helpers/enforcement-harness.ts';
import { post } from '../simulator/helpers.ts';

const entry = (address: string) => ({ address, expiresAt: null, comment: 'edgeban test' });

function isTargetError(kind: string, reason: string) {
  return (error: unknown) => {
    assert.ok(error instanceof TargetError, String(error));
    assert.equal(error.kind, kind);
    assert.equal(error.reason, reason);
    return true;
  };
}

test('OpnsenseTarget: add, list (owned null), delete; errors classified retry / operator / rejected', async (t) => {
  const sim = await startSimulator(t);
  const log = new CapturedLog();
  const target = new OpnsenseTarget(new OpnsenseClient({ endpoint: endpointFor(sim, { timeoutMs: 2000 }), logger: log.logger }), ALIAS);
  t.after(() => target.close());
  assert.equal(target.id, `${sim.url} ${ALIAS}`);
  assert.equal(target.canonical('192.0.2.1/32'), '192.0.2.1');
  assert.equal(target.canonical('not an address'), null);
  await target.add(entry('192.0.2.1'));
  await target.add(entry('2001:db8::1'));
  assert.deepEqual(
    (await target.list()).sort((a, b) => a.address.localeCompare(b.address)),
    [
      { address: '192.0.2.1', owned: null },
      { address: '2001:db8::1', owned: null },
    ],
  );
  await target.delete('192.0.2.1');
  assert.deepEqual(sim.tableEntries(ALIAS), ['2001:db8::1']);

  const check = await target.check();
  assert.deepEqual(check.errors, []);
  assert.deepEqual(check.warnings, []);
  assert.equal(check.facts.aliasType, 'external');

  sim.setFaults({ errorRate: 1 });
  await assert.rejects(target.add(entry('192.0.2.2')), isTargetError('retry', 'server'));
  sim.setFaults({ errorRate: 0 });

  sim.deleteAlias(ALIAS);
  await assert.rejects(target.check(), (error: unknown) => isTargetError('operator', 'alias-missing')(error) && /External/.test((error as Error).message));
  sim.createAlias({ name: ALIAS, type: 'host' });
  assert.match((await target.check()).warnings.join(), /not External/);

  const wrongKey = new OpnsenseTarget(new OpnsenseClient({ endpoint: endpointFor(sim, { secret: 'not-the-secret-0123456789' }), logger: log.logger }), ALIAS);
  t.after(() => wrongKey.close());
  await assert.rejects(wrongKey.list(), isTargetError('operator', 'auth'));
});

test('OpnsenseTarget.killConnections: one IPv4 host only, nothing sent otherwise; a missing privilege is an operator error naming it', async (t) => {
  const sim = await startSimulator(t, {
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES.filter((p) => p !== 'page-diagnostics-showstates') }],
  });
  const log = new CapturedLog();
  const target = new OpnsenseTarget(new OpnsenseClient({ endpoint: endpointFor(sim), logger: log.logger }), ALIAS);
  t.after(() => target.close());
  assert.equal(await target.killConnections('2001:db8::1'), 0);
  assert.equal(await target.killConnections('198.51.100.0/24'), 0);
  assert.equal(sim.calls().filter((c) => c.path.includes('kill_states')).length, 0, 'kill_states strips : and /, so nothing is sent');
  await assert.rejects(
    target.killConnections('192.0.2.9'),
    (error: unknown) => isTargetError('operator', 'forbidden')(error) && /Diagnostics: Show States/.test((error as Error).message),
  );
});

test('OpnsenseTarget.check: a URL Table (IPs) alias (durable mode) is not warned about: alias_util adds to it as plain pfctl adds, no config.xml write', async (t) => {
  const admin = { key: 'admin-key', secret: 'admin-secret', privileges: ['page-all'], user: 'root' };
  const sim = await startSimulator(t, { aliases: [], keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }, admin] });
  const saved = await post(
    sim,
    '/api/firewall/alias/add_item',
    {
      alias: {
        enabled: '1',
        name: ALIAS,
        type: 'urltable',
        content: 'http://127.0.0.1:9/blocklist/fw.txt',
        updatefreq: '0.5',
        authtype: 'Bearer',
        username: '',
        password: 'feed-token-0123456789',
      },
    },
    admin,
  );
  assert.equal((saved.json as { result: string }).result, 'saved');
  const target = new OpnsenseTarget(new OpnsenseClient({ endpoint: endpointFor(sim, { timeoutMs: 2000 }), logger: new CapturedLog().logger }), ALIAS);
  t.after(() => target.close());
  const check = await target.check();
  assert.equal(check.facts.aliasType, 'urltable');
  assert.deepEqual(check.warnings, [], 'no "rewrites config.xml" warning for a URL table');
});
