import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ManualClock } from '../../src/util/clock.ts';
import { ALIAS, KEY, SECRET, startHarness, startSimulator } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { activeAddresses, documentationAddresses, dovecotFailure, readLedgerClaims, startDaemonProcess, until } from './enforcement-fault-helpers.ts';

const SECOND = 1000;
const INTERVAL = 60 * SECOND;

test('OPNsense reboot mid-run (External tables emptied): restored by the next interval pass, one interval after, with bans made meanwhile', async (t) => {
  const clock = new ManualClock();
  const sim = await startSimulator(t, { now: () => clock.now() });
  const h = await startHarness(t, { sim, clock, reconciler: { intervalMs: INTERVAL } });
  const banned = documentationAddresses(500);
  await h.ledger.banMany(banned.map((address) => ({ target: ALIAS, address, jail: 'dovecot', origin: 'jail' as const, durationMs: 3600 * SECOND })));
  await h.reconciler.start();
  assert.equal(sim.tableEntries(ALIAS).length, 500);

  // Half an interval in, the firewall reboots: its External tables come back empty.
  await h.clock.advance(INTERVAL / 2);
  await h.reconciler.idle();
  sim.reboot();
  assert.equal(sim.tableEntries(ALIAS).length, 0);
  // An attack goes on meanwhile: a fresh ban is sent at once, between passes.
  await h.ledger.ban({ target: ALIAS, address: '203.0.113.250', jail: 'postfix', origin: 'jail', durationMs: 3600 * SECOND });
  await h.reconciler.idle();
  assert.deepEqual(sim.tableEntries(ALIAS), ['203.0.113.250']);

  // The next pass is due one interval after the last one, i.e. within one interval of the reboot.
  await h.clock.advance(INTERVAL / 2 - SECOND);
  await h.reconciler.idle();
  assert.equal(sim.tableEntries(ALIAS).length, 1, 'no pass before the interval is up (the restore below is the interval pass)');
  await h.clock.advance(SECOND);
  await h.reconciler.idle();
  const wanted = [...h.ledger.activeAddresses(ALIAS)].sort();
  assert.equal(wanted.length, 501);
  assert.deepEqual([...sim.tableEntries(ALIAS)].sort(), wanted, 'restored by one interval pass');
  assert.equal(h.reconciler.status().state, 'in-sync');
  assert.equal(h.reconciler.status().lastPass?.add.length, 500);
});

test('OPNsense reboot under edgeban run (EDGEBAN_RECONCILE_INTERVAL=2): restored by the first full pass after the reboot', { timeout: 120_000 }, async (t) => {
  const sim = await startSimulator(t);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  await mkdir(configDir);
  const mailLog = path.join(root, 'mail.log');
  await writeFile(mailLog, '');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 2\nfindtime = 10m\nbantime = 1h\n`);
  const daemon = await startDaemonProcess(t, {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  });
  const attackers = documentationAddresses(40, 300);
  await appendFile(mailLog, attackers.flatMap((a) => [dovecotFailure(a), dovecotFailure(a)]).join(''));
  await until('40 attackers in the alias', () => sim.tableEntries(ALIAS).length === 40);

  // Reboot between API calls (none being answered), so the call log splits cleanly at the reboot.
  await until('no API call in flight', () => sim.inFlight() === 0, 10_000, 1);
  sim.clearCalls();
  sim.reboot();
  const rebootAt = Date.now();
  await until('the alias restored', () => sim.tableEntries(ALIAS).length === 40, 30_000, 20);
  const restoredAfterMs = Date.now() - rebootAt;
  // Which pass restored it: the adds come after the first list following the reboot, with no list between.
  const calls = sim.calls();
  const firstList = calls.findIndex((c) => c.path.includes('alias_util/list'));
  const adds = calls.map((c, i) => ({ c, i })).filter(({ c }) => c.path.includes('alias_util/add'));
  assert.ok(firstList >= 0 && adds.length === 40, `one list then 40 adds (saw list at ${firstList}, ${adds.length} adds)`);
  assert.ok(
    adds.every(({ i }) => i > firstList),
    'restored by the first pass after the reboot',
  );
  const listsBeforeLastAdd = calls.slice(0, adds.at(-1)!.i).filter((c) => c.path.includes('alias_util/list')).length;
  assert.equal(listsBeforeLastAdd, 1, 'no second pass was needed');
  t.diagnostic(`restored ${restoredAfterMs} ms after the reboot (interval 2 s)`);
  // A sanity bound only (the pass structure above is the real check): one interval plus a loaded machine's slack.
  assert.ok(restoredAfterMs < 2000 + 15_000, `restored after ${restoredAfterMs} ms`);

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
  assert.deepEqual([...sim.tableEntries(ALIAS)].sort(), [...activeAddresses(await readLedgerClaims(dataDir), ALIAS)].sort());
});
