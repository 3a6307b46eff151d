import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LEAST_PRIVILEGES } from '../../src/simulator/opnsense-simulator.ts';
import { adoptionRefusal } from '../../src/jails/ban-guard.ts';
import { ALIAS, KEY, SECRET, attackers, startHarness, startSimulator } from '../helpers/enforcement-harness.ts';

const MINUTE = 60_000;

function ban(address: string, jail = 'dovecot', durationMs: number | null = 10 * MINUTE) {
  return { target: ALIAS, address, jail, origin: 'jail' as const, durationMs };
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

test('a restart with 20,000 bans in the ledger and an emptied alias restores all of them', async (t) => {
  const h = await startHarness(t);
  const addresses = attackers(20_000);
  await h.ledger.banMany(addresses.map((a) => ban(a)));
  await h.restart();
  h.sim.reboot(); // External tables are emptied on an OPNsense reboot
  const result = await h.reconciler.start();
  assert.equal(result.ok, true, result.error ?? '');
  assert.equal(result.add.length, 20_000);
  assert.equal(h.sim.tableEntries(ALIAS).length, 20_000);
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set(addresses));
  assert.ok(h.sim.maxInFlight() <= 16 + 1, `bounded concurrency (saw ${h.sim.maxInFlight()})`);
  assert.equal(h.reconciler.status().state, 'in-sync');
});

test('an alias with 25,000 entries reconciles correctly across pages', async (t) => {
  const h = await startHarness(t);
  const all = attackers(25_020);
  const wanted = all.slice(0, 25_000);
  await h.ledger.banMany(wanted.map((a) => ban(a)));
  await h.ledger.banMany(all.slice(25_000, 25_010).map((a) => ban(a, 'sshd', 1000)));
  await h.clock.advance(2000); // those ten ended: edgeban's to remove
  const foreign = all.slice(25_010);
  const missing = wanted.slice(12_000, 12_010);
  h.sim.seedTableEntries(ALIAS, [...wanted.filter((a) => !missing.includes(a)), ...all.slice(25_000, 25_010), ...foreign]);
  h.sim.clearCalls();
  const result = await h.reconciler.start();
  assert.deepEqual(sorted(result.add), sorted(missing));
  assert.deepEqual(sorted(result.remove), sorted(all.slice(25_000, 25_010)));
  assert.deepEqual(sorted(result.foreign), sorted(foreign));
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set([...wanted, ...foreign]));
  const writes = h.sim.calls().filter((c) => /\/(add|delete)\//.test(c.path));
  assert.equal(writes.length, 20, 'only the difference is sent');
});

test('a 2-minute outage loses no ban: bans decided meanwhile are applied when OPNsense returns', async (t) => {
  const h = await startHarness(t);
  await h.reconciler.start();
  h.sim.setFaults({ refuse: true });
  const during = attackers(50);
  for (const address of during) await h.ledger.ban(ban(address));
  await h.reconciler.idle();
  assert.equal(h.reconciler.status().state, 'unreachable');
  assert.equal(h.reconciler.status().pending, 50);
  // Two minutes of injected time: recovery passes keep failing, nothing is dropped.
  for (let s = 0; s < 120; s += 10) {
    await h.clock.advance(10_000);
    await h.reconciler.idle();
  }
  assert.equal(h.reconciler.status().pending, 50);
  h.sim.setFaults({ refuse: false });
  await h.clock.advance(MINUTE);
  await h.reconciler.idle();
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set(during));
  assert.equal(h.reconciler.status().state, 'in-sync');
  const warnings = h.log.atLevel(40).filter((e) => /unreachable/.test(String(e.msg)));
  assert.equal(warnings.length, 1, 'one warning for the outage, not one per call');
});

test('flapping (half the calls fail) and slow hanging calls still converge', async (t) => {
  const h = await startHarness(t, { endpoint: { timeoutMs: 150 } });
  h.sim.setFaults({ errorRate: 0.5, hangRate: 0.05 });
  await h.ledger.banMany(attackers(200).map((a) => ban(a, 'dovecot', null)));
  await h.reconciler.start();
  for (let i = 0; i < 20; i++) {
    await h.clock.advance(MINUTE);
    await h.reconciler.idle();
  }
  assert.ok(h.sim.tableEntries(ALIAS).length > 0, 'progress while flapping');
  h.sim.setFaults({ errorRate: 0, hangRate: 0 });
  // Bounded: each interval pass converges unless the loaded machine made a call time out.
  for (let i = 0; i < 20 && h.sim.tableEntries(ALIAS).length < 200; i++) {
    await h.clock.advance(MINUTE);
    await h.reconciler.idle();
  }
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set(attackers(200)));
});

test('an OPNsense reboot empties the alias; the next interval pass restores it', async (t) => {
  const h = await startHarness(t);
  await h.ledger.banMany(attackers(30).map((a) => ban(a, 'postfix', null)));
  await h.reconciler.start();
  assert.equal(h.sim.tableEntries(ALIAS).length, 30);
  h.sim.reboot();
  assert.equal(h.sim.tableEntries(ALIAS).length, 0);
  await h.clock.advance(MINUTE);
  await h.reconciler.idle();
  assert.equal(h.sim.tableEntries(ALIAS).length, 30);
});

test("an address banned by two jails survives the first one's expiry and leaves with the last", async (t) => {
  const h = await startHarness(t);
  await h.reconciler.start();
  await h.ledger.ban(ban('192.0.2.66', 'dovecot', MINUTE));
  await h.ledger.ban(ban('192.0.2.66', 'postfix', 10 * MINUTE));
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.66']);
  await h.clock.advance(2 * MINUTE);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.66']);
  await h.clock.advance(9 * MINUTE);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), []);
});

test('foreign entries: kept by default, adopted or removed when configured', async (t) => {
  for (const policy of ['keep', 'adopt', 'exclusive'] as const) {
    await t.test(policy, async (t2) => {
      const h = await startHarness(t2, { reconciler: { foreignPolicy: policy, adoptBantimeMs: 5 * MINUTE } });
      h.sim.seedTableEntries(ALIAS, ['203.0.113.200', '2001:db8:ff::/64']);
      await h.ledger.ban(ban('192.0.2.1'));
      const result = await h.reconciler.start();
      await h.reconciler.idle();
      assert.deepEqual(sorted(result.foreign), ['2001:db8:ff::/64', '203.0.113.200']);
      const table = h.sim.tableEntries(ALIAS);
      if (policy === 'exclusive') {
        assert.deepEqual(table, ['192.0.2.1']);
        return;
      }
      assert.deepEqual(sorted(table), ['192.0.2.1', '2001:db8:ff::/64', '203.0.113.200']);
      if (policy === 'adopt') {
        assert.equal(h.ledger.claimsOf(ALIAS, '203.0.113.200')[0]?.origin, 'adopted');
        await h.clock.advance(6 * MINUTE);
        await h.reconciler.idle();
        assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.1'], 'adopted entries expire with the default bantime');
      } else {
        await h.clock.advance(30 * MINUTE);
        await h.reconciler.idle();
        assert.deepEqual(sorted(h.sim.tableEntries(ALIAS)), ['2001:db8:ff::/64', '203.0.113.200'], "an admin's entries outlive every pass");
      }
    });
  }
});

test('adoption goes through the ban guard: the gateway, private ranges and networks are never taken on as bans, and stay as they were', async (t) => {
  const facts = { selfAddresses: ['172.18.0.5'], gateways: ['172.18.0.1'], firewallAddresses: [] };
  const h = await startHarness(t, { reconciler: { foreignPolicy: 'adopt', adoptBantimeMs: 5 * MINUTE, adoptionRefusal: adoptionRefusal(facts) } });
  const refused = ['10.0.0.5', '172.18.0.1', '198.51.100.0/24', '2001:db8:ff::/64'];
  h.sim.seedTableEntries(ALIAS, ['203.0.113.200', ...refused]);
  await h.reconciler.start();
  await h.reconciler.idle();
  assert.equal(h.ledger.claimsOf(ALIAS, '203.0.113.200')[0]?.origin, 'adopted');
  for (const entry of refused) assert.deepEqual(h.ledger.claimsOf(ALIAS, entry), [], `${entry} is not adopted`);
  assert.equal(h.log.entries().filter((e) => String(e.msg).startsWith('alias entry not adopted')).length, refused.length, 'one warning per refused entry');
  await h.clock.advance(6 * MINUTE);
  await h.reconciler.idle();
  assert.deepEqual(sorted(h.sim.tableEntries(ALIAS)), sorted(refused), 'the adopted entry expired; the refused ones are kept as foreign');
  await h.reconciler.runFullPass();
  assert.equal(h.log.entries().filter((e) => String(e.msg).startsWith('alias entry not adopted')).length, refused.length, 'not repeated on every pass');
});

test('a ban followed by its unban before either was sent sends nothing', async (t) => {
  const h = await startHarness(t, { reconciler: { concurrency: 1 } });
  await h.reconciler.start();
  h.sim.setFaults({ latencyMs: 1500 });
  await h.ledger.ban(ban('198.51.100.1')); // occupies the only slot for 1.5 s
  await h.ledger.ban(ban('198.51.100.2'));
  await h.ledger.unban({ address: '198.51.100.2' });
  await h.reconciler.idle();
  const touched = h.sim
    .calls()
    .filter((c) => /\/(add|delete)\//.test(c.path))
    .map((c) => JSON.parse(c.requestBody).address);
  assert.deepEqual(touched, ['198.51.100.1']);
});

test('bad credentials: one clear error, a degraded state in status, no storm of calls, nothing dropped', async (t) => {
  const sim = await startSimulator(t, { keys: [{ key: KEY, secret: 'a-different-secret-0123456789', privileges: LEAST_PRIVILEGES }] });
  const h = await startHarness(t, { sim });
  await h.ledger.ban(ban('192.0.2.99'));
  const result = await h.reconciler.start();
  assert.equal(result.ok, false);
  const status = h.reconciler.status();
  assert.equal(status.state, 'degraded');
  assert.equal(status.lastError?.kind, 'auth');
  for (let i = 0; i < 5; i++) {
    await h.ledger.ban(ban(`192.0.2.${100 + i}`));
    await h.clock.advance(MINUTE);
    await h.reconciler.idle();
  }
  assert.ok(sim.calls().length <= 6, `one probe per interval, not a storm (${sim.calls().length} calls)`);
  assert.equal(h.log.atLevel(50).filter((e) => /degraded/.test(String(e.msg))).length, 1, 'one error, not one per call');
  assert.equal(h.reconciler.status().pending, 5, 'bans made while degraded wait for the next successful pass');
  assert.equal(h.ledger.activeAddresses(ALIAS).size, 6);
});

test('a missing alias privilege or a missing alias degrade with the reason', async (t) => {
  const sim = await startSimulator(t, { keys: [{ key: KEY, secret: SECRET, privileges: ['page-firewall-aliases'] }] });
  const h = await startHarness(t, { sim });
  await h.ledger.ban(ban('192.0.2.98'));
  await h.reconciler.start();
  assert.equal(h.reconciler.status().lastError?.kind, 'forbidden');

  const noAlias = await startSimulator(t, { aliases: [{ name: 'something_else', type: 'external' }] });
  const h2 = await startHarness(t, { sim: noAlias });
  await h2.reconciler.start();
  assert.equal(h2.reconciler.status().state, 'degraded');
  assert.equal(h2.reconciler.status().lastError?.kind, 'alias-missing');
  assert.match(h2.reconciler.status().lastError?.message ?? '', /External/);
});

test('a Host-type alias works but is flagged (config revision per ban)', async (t) => {
  const h = await startHarness(t, { simulator: { aliases: [{ name: ALIAS, type: 'host' }] } });
  await h.ledger.ban(ban('192.0.2.3'));
  await h.reconciler.start();
  assert.equal(h.reconciler.status().aliasType, 'host');
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.3']);
  assert.ok(h.log.atLevel(40).some((e) => /not External/.test(String(e.msg))));
});

test('kill_states after a fresh IPv4 ban, not for IPv6, not for restores; a 403 disables it once', async (t) => {
  const h = await startHarness(t);
  h.sim.seedStates('192.0.2.10', 4);
  h.sim.seedStates('192.0.2.11', 2);
  await h.ledger.ban(ban('192.0.2.11')); // banned before start: a restore, its states stay
  await h.reconciler.start();
  await h.ledger.ban(ban('192.0.2.10'));
  await h.ledger.ban(ban('2001:db8::10'));
  await h.reconciler.idle();
  assert.equal(h.sim.stateCount('192.0.2.10'), 0);
  assert.equal(h.sim.stateCount('192.0.2.11'), 2);
  const kills = h.sim.calls().filter((c) => c.path.includes('kill_states'));
  assert.equal(kills.length, 1);

  const sim = await startSimulator(t, { keys: [{ key: KEY, secret: SECRET, privileges: ['page-diagnostics-tables', 'page-firewall-aliases'] }] });
  const h2 = await startHarness(t, { sim });
  await h2.reconciler.start();
  await h2.ledger.ban(ban('192.0.2.20'));
  await h2.ledger.ban(ban('192.0.2.21'));
  await h2.reconciler.idle();
  assert.deepEqual(sim.tableEntries(ALIAS), ['192.0.2.20', '192.0.2.21'], 'bans work without the privilege');
  assert.equal(h2.reconciler.status().killStates, false);
  const tried = sim.calls().filter((c) => c.path.includes('kill_states')).length;
  assert.ok(tried >= 1 && tried <= 2, 'tried by the adds already in flight, then disabled');
  await h2.ledger.ban(ban('192.0.2.22'));
  await h2.reconciler.idle();
  assert.equal(sim.calls().filter((c) => c.path.includes('kill_states')).length, tried, 'not tried again');
  assert.equal(h2.log.atLevel(40).filter((e) => /kill_states is forbidden/.test(String(e.msg))).length, 1);
});

test('done is not trusted: adds that pf silently dropped (table full) are reported as unconfirmed', async (t) => {
  const h = await startHarness(t, { simulator: { tableEntriesLimit: 10 } });
  await h.ledger.banMany(attackers(15).map((a) => ban(a)));
  const result = await h.reconciler.start();
  assert.equal(result.ok, false);
  assert.equal(result.unconfirmed.length, 5);
  assert.equal(h.sim.tableEntries(ALIAS).length, 10);
  assert.equal(h.reconciler.status().state, 'degraded');
  assert.equal(h.log.atLevel(50).filter((e) => /table-entries/.test(String(e.msg))).length, 1);
});

test('an edgeban restart mid-outage keeps bans and their expiry; the alias converges after', async (t) => {
  const h = await startHarness(t);
  await h.reconciler.start();
  h.sim.setFaults({ refuse: true });
  await h.ledger.ban(ban('203.0.113.50', 'nginx', 5 * MINUTE));
  const expiresAt = h.ledger.claimsOf(ALIAS, '203.0.113.50')[0]?.expiresAt;
  await h.reconciler.idle();
  await h.restart();
  h.sim.setFaults({ refuse: false });
  await h.reconciler.start();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['203.0.113.50']);
  assert.equal(h.ledger.claimsOf(ALIAS, '203.0.113.50')[0]?.expiresAt, expiresAt);
  await h.clock.advance(5 * MINUTE);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), []);
});
