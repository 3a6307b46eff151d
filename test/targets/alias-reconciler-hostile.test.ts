// The reconciler against a firewall (or proxy) that misbehaves the ways the hostile-suite issue
// found: short list pages, rows spelled another way, adds answered `done` that store nothing, a
// re-ban racing its expiry delete, an alias retyped while edgeban runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeHealth } from '../../src/cli/health-command.ts';
import { judgeReadiness } from '../../src/metrics/readiness.ts';
import type { TargetStatus } from '../../src/targets/target-reconciler.ts';
import { ALIAS, attackers, startHarness, type Harness } from '../helpers/enforcement-harness.ts';
import { until } from '../helpers/until.ts';

const MINUTE = 60_000;

function ban(address: string, jail = 'dovecot', durationMs: number | null = 10 * MINUTE) {
  return { target: ALIAS, address, jail, origin: 'jail' as const, durationMs };
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

function writes(h: Harness, kind: 'add' | 'delete'): string[] {
  return h.sim
    .calls()
    .filter((c) => c.path.includes(`/alias_util/${kind}/`))
    .map((c) => String(JSON.parse(c.requestBody).address));
}

function health(status: TargetStatus) {
  return judgeHealth({ activeBans: 0, targets: [{ id: status.id, state: status.state, lastError: status.lastError }] }, false);
}

/** Simulated waits that run at once, except the next `hold` calls, held in flight until released. */
class HeldCalls {
  hold = 0;
  private readonly waiting: Array<() => void> = [];
  readonly sleep = async (): Promise<void> => {
    if (this.hold === 0) return;
    this.hold--;
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  };
  get held(): number {
    return this.waiting.length;
  }
  release(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

test('a re-ban while its expiry delete is in flight is in the alias once the delete completes (single flight per address)', async (t) => {
  const gate = new HeldCalls();
  const h = await startHarness(t, { simulator: { faults: { latencyMs: 1 }, sleep: gate.sleep } });
  await h.reconciler.start();
  await h.ledger.ban(ban('192.0.2.80', 'dovecot', 30_000));
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.80']);
  gate.hold = 1;
  await h.clock.advance(31_000); // the ban ends: its delete goes out and the firewall holds it
  await until('the expiry delete reaches the firewall', () => gate.held === 1);
  h.sim.seedStates('192.0.2.80', 2); // the attacker is back
  await h.ledger.ban(ban('192.0.2.80', 'dovecot', 10 * MINUTE)); // banned again meanwhile
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  gate.release();
  await until('the firewall answered the delete', () => writes(h, 'delete').length === 1);
  await h.reconciler.idle();
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.80'], 'the re-ban is enforced now, not at the next full pass');
  assert.deepEqual(writes(h, 'add'), ['192.0.2.80', '192.0.2.80']);
  assert.deepEqual(writes(h, 'delete'), ['192.0.2.80']);
  assert.equal(h.sim.stateCount('192.0.2.80'), 0, 'a fresh ban: its states are killed after the add');
  assert.equal(h.reconciler.status().pending, 0);
});

test('200 bans ending with their deletes in flight, all banned again meanwhile: every one is in the alias after', async (t) => {
  const gate = new HeldCalls();
  const h = await startHarness(t, { simulator: { faults: { latencyMs: 1 }, sleep: gate.sleep } });
  await h.reconciler.start();
  const addresses = attackers(200);
  await h.ledger.banMany(addresses.map((a) => ban(a, 'dovecot', 30_000)));
  await h.reconciler.idle();
  assert.equal(h.sim.tableEntries(ALIAS).length, 200);
  gate.hold = 16; // the whole pool
  await h.clock.advance(31_000);
  await until('16 deletes held in flight', () => gate.held === 16);
  await h.ledger.banMany(addresses.map((a) => ban(a, 'dovecot', 10 * MINUTE)));
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  gate.release();
  await until('the held deletes answered', () => writes(h, 'delete').length >= 16);
  await h.reconciler.idle();
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set(addresses));
  assert.equal(h.reconciler.status().pending, 0);
});

test('short list pages (a firewall or proxy capping rows): every page is read up to total, expired bans on later pages are removed', async (t) => {
  const h = await startHarness(t);
  const active = attackers(250);
  const ended = attackers(50, 250);
  await h.ledger.banMany(active.map((a) => ban(a)));
  await h.ledger.banMany(ended.map((a) => ban(a, 'postfix', 30_000)));
  await h.reconciler.start();
  assert.equal(h.sim.tableEntries(ALIAS).length, 300);
  await h.restart(); // the 50 end while edgeban is down: only a full pass can remove them
  await h.clock.advance(31_000);
  h.sim.setFaults({ listPageCap: 100 });
  h.sim.clearCalls();
  const result = await h.reconciler.start();
  assert.equal(result.ok, true, result.error ?? '');
  assert.deepEqual(sorted(result.remove), sorted(ended));
  assert.deepEqual(result.add, []);
  assert.deepEqual(result.foreign, []);
  assert.deepEqual(result.unconfirmed, []);
  assert.deepEqual(new Set(h.sim.tableEntries(ALIAS)), new Set(active));
  assert.equal(writes(h, 'add').length, 0, 'nothing re-added that was already there');
  assert.equal(h.log.atLevel(40).filter((e) => /table-entries/.test(String(e.msg))).length, 0, 'no full pf table blamed');
});

test('rows spelled /32, /128 or in upper case are the same entries: expired bans are removed, active ones not re-added', async (t) => {
  for (const spelling of ['host-prefix', 'upper-case'] as const) {
    await t.test(spelling, async (t2) => {
      const h = await startHarness(t2);
      const active = ['198.51.100.7', '2001:db8::a7'];
      const ended = ['192.0.2.7', '2001:db8::e7'];
      await h.ledger.banMany(active.map((a) => ban(a)));
      await h.ledger.banMany(ended.map((a) => ban(a, 'postfix', 30_000)));
      await h.reconciler.start();
      await h.restart();
      await h.clock.advance(31_000);
      h.sim.setFaults({ listSpelling: spelling });
      h.sim.clearCalls();
      const result = await h.reconciler.start();
      assert.deepEqual(sorted(result.remove), sorted(ended));
      assert.deepEqual(result.add, []);
      assert.deepEqual(result.foreign, []);
      assert.deepEqual(sorted(h.sim.tableEntries(ALIAS)), sorted(active));
      assert.deepEqual(writes(h, 'add'), []);
    });
  }
});

test('a foreign ::ffff:a.b.c.d entry is an IPv6 entry of its own: exclusive removes it and never the IPv4 ban', async (t) => {
  const h = await startHarness(t, { reconciler: { foreignPolicy: 'exclusive' } });
  await h.ledger.ban(ban('192.0.2.1'));
  h.sim.seedTableEntries(ALIAS, ['::ffff:192.0.2.1']);
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['::ffff:192.0.2.1'], 'pf keeps a mapped address as an IPv6 entry');
  const result = await h.reconciler.start();
  assert.deepEqual(result.add, ['192.0.2.1'], 'the mapped entry does not block the IPv4 attacker');
  assert.deepEqual(result.foreign, ['::ffff:192.0.2.1']);
  await h.reconciler.idle();
  for (let i = 0; i < 3; i++) {
    h.sim.seedTableEntries(ALIAS, ['::ffff:192.0.2.1']); // someone keeps adding it
    await h.clock.advance(MINUTE);
    await h.reconciler.idle();
    assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.1']);
  }
  assert.deepEqual(writes(h, 'delete'), ['::ffff:192.0.2.1', '::ffff:192.0.2.1', '::ffff:192.0.2.1', '::ffff:192.0.2.1']);
  assert.deepEqual(writes(h, 'add'), ['192.0.2.1'], 'its own ban was never deleted, so never re-added');
});

test('a foreign ::ffff:a.b.c.d entry is kept under keep and not adopted under adopt (it blocks nothing)', async (t) => {
  for (const policy of ['keep', 'adopt'] as const) {
    await t.test(policy, async (t2) => {
      const h = await startHarness(t2, { reconciler: { foreignPolicy: policy } });
      h.sim.seedTableEntries(ALIAS, ['::ffff:203.0.113.9']);
      const result = await h.reconciler.start();
      await h.reconciler.idle();
      assert.deepEqual(result.foreign, ['::ffff:203.0.113.9']);
      assert.deepEqual(h.sim.tableEntries(ALIAS), ['::ffff:203.0.113.9']);
      await h.clock.advance(MINUTE);
      await h.reconciler.idle();
      assert.equal(h.ledger.activeAddresses(ALIAS).size, 0);
      assert.deepEqual(writes(h, 'delete'), []);
      const warned = h.log.atLevel(40).filter((e) => /not adopted/.test(String(e.msg))).length;
      assert.equal(warned, policy === 'adopt' ? 1 : 0, 'adopt says once why it leaves the entry alone');
    });
  }
});

test('adds that pf does not store (table-entries limit) degrade the target, fail health and /readyz, and recover when stored', async (t) => {
  const h = await startHarness(t, { simulator: { tableEntriesLimit: 10 } });
  await h.ledger.banMany(attackers(15).map((a) => ban(a)));
  const result = await h.reconciler.start();
  assert.equal(result.unconfirmed.length, 5);
  let status = h.reconciler.status();
  assert.equal(status.state, 'degraded');
  assert.match(status.lastError?.message ?? '', /5 adds .*not stored.*holds 10 of the ledger's 15 active bans/);
  assert.match(status.lastError?.message ?? '', /table-entries limit.*10 of 10/);
  assert.equal(judgeReadiness('running', [status]).ready, false);
  assert.equal(health(status).healthy, false);
  assert.match(health(status).line, /table-entries/);
  // Incremental adds between passes do not clear it: only a verifying list can.
  await h.ledger.ban(ban('203.0.113.250'));
  await h.reconciler.idle();
  assert.equal(h.reconciler.status().state, 'degraded');

  h.sim.setTableEntriesLimit(100); // the operator raises the limit
  await h.clock.advance(MINUTE);
  await h.reconciler.idle();
  status = h.reconciler.status();
  assert.equal(status.state, 'in-sync');
  assert.equal(status.lastError, null);
  assert.equal(h.sim.tableEntries(ALIAS).length, 16);
  assert.equal(judgeReadiness('running', [status]).ready, true);
  assert.equal(health(status).healthy, true);
});

test('adds answered done that store nothing with room in the table degrade without blaming the table-entries limit', async (t) => {
  const h = await startHarness(t);
  h.sim.setFaults({ discardAdds: true });
  await h.ledger.banMany(attackers(3).map((a) => ban(a)));
  await h.reconciler.start();
  const status = h.reconciler.status();
  assert.equal(status.state, 'degraded');
  assert.match(status.lastError?.message ?? '', /3 adds .*not stored.*holds 0 of the ledger's 3 active bans/);
  assert.doesNotMatch(status.lastError?.message ?? '', /raise/i);
  assert.match(status.lastError?.message ?? '', /room/);
  h.sim.setFaults({ discardAdds: false });
  await h.clock.advance(MINUTE);
  await h.reconciler.idle();
  assert.equal(h.reconciler.status().state, 'in-sync');
  assert.equal(h.sim.tableEntries(ALIAS).length, 3);
});

test('an alias switched to Host(s) or deleted while edgeban runs is noticed by the next full pass', async (t) => {
  const h = await startHarness(t);
  await h.ledger.ban(ban('192.0.2.44'));
  await h.reconciler.start();
  assert.equal(h.reconciler.status().aliasType, 'external');
  assert.equal(h.log.atLevel(40).filter((e) => /not External/.test(String(e.msg))).length, 0);
  h.sim.deleteAlias(ALIAS);
  h.sim.createAlias({ name: ALIAS, type: 'host' });
  for (let i = 0; i < 3; i++) {
    await h.clock.advance(MINUTE);
    await h.reconciler.idle();
  }
  assert.equal(h.reconciler.status().aliasType, 'host');
  assert.equal(h.log.atLevel(40).filter((e) => /not External/.test(String(e.msg))).length, 1, 'warned once, not every pass');
  assert.deepEqual(h.sim.tableEntries(ALIAS), ['192.0.2.44'], 'restored into the new table');

  h.sim.deleteAlias(ALIAS);
  await h.clock.advance(MINUTE);
  await h.reconciler.idle();
  assert.equal(h.reconciler.status().state, 'degraded');
  assert.equal(h.reconciler.status().lastError?.kind, 'alias-missing');
});
