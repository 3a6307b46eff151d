import assert from 'node:assert/strict';
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createLedgerHandlers } from '../../src/control/ledger-handlers.ts';
import { NO_NETWORK_FACTS } from '../../src/jails/network-facts.ts';
import { FileLedgerStore, JOURNAL_FILE, SNAPSHOT_FILE } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { crc32 } from 'node:zlib';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';
const IN_SNAPSHOT = ['192.0.2.1', '192.0.2.2'];
const IN_JOURNAL = ['198.51.100.3', '198.51.100.4', '198.51.100.5'];

/** A ledger whose snapshot holds records 1–2 and whose journal holds records 3–5 (lines 2–4). */
async function ledgerOnDisk(t: TestContext): Promise<{ dir: string; snapshot: string; journal: string }> {
  const dir = await tempDir(t);
  const store = await FileLedgerStore.open({ dir, logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: new ManualClock(), logger: silentLogger() });
  for (const address of IN_SNAPSHOT) await ledger.ban({ target: T, address, jail: 'sshd', origin: 'jail', durationMs: null });
  await store.compact(ledger.activeClaims());
  for (const address of IN_JOURNAL) await ledger.ban({ target: T, address, jail: 'sshd', origin: 'jail', durationMs: null });
  await ledger.close();
  return { dir, snapshot: path.join(dir, SNAPSHOT_FILE), journal: path.join(dir, JOURNAL_FILE) };
}

async function reopen(t: TestContext, dir: string) {
  const logged: Array<{ level: number; msg: string }> = [];
  const logger = createLogger({
    destination: {
      write: (line: string) => {
        logged.push(JSON.parse(line));
      },
    },
  });
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir, logger }), clock: new ManualClock(), logger });
  t.after(() => ledger.close());
  return { ledger, logged };
}

async function assertRecovered(t: TestContext, dir: string, expected: { kept: string[]; problem: RegExp; movedAside: number }): Promise<void> {
  const { ledger, logged } = await reopen(t, dir);
  assert.deepEqual([...ledger.activeAddresses(T)].sort(), [...expected.kept].sort(), 'every readable ban is kept');
  const damage = ledger.damage();
  assert.ok(damage, 'the damage is reported for status');
  assert.ok(
    damage.problems.some((p) => expected.problem.test(p)),
    `named: ${damage.problems.join(' | ')}`,
  );
  assert.equal(damage.keptClaims, expected.kept.length);
  assert.equal(damage.movedAside.length, expected.movedAside);
  for (const file of damage.movedAside) assert.match(path.basename(file), /\.damaged-/);
  assert.ok(
    logged.some((l) => l.level === 50 && expected.problem.test(l.msg)),
    'an error line names what was lost',
  );
  const status = (await createLedgerHandlers({
    ledger,
    targets: () => [],
    manualBantimeSec: 60,
    jails: { jail: () => null, manualTarget: () => T, facts: () => NO_NETWORK_FACTS },
  }).status(null)) as { ledgerDamage: unknown };
  assert.deepEqual(status.ledgerDamage, damage, 'edgeban status shows it');
  await ledger.close();
  // Recovery wrote a clean ledger: the next start is silent and keeps the same bans.
  const again = await reopen(t, dir);
  assert.equal(again.ledger.damage(), null);
  assert.deepEqual([...again.ledger.activeAddresses(T)].sort(), [...expected.kept].sort());
  await again.ledger.ban({ target: T, address: '203.0.113.9', jail: 'sshd', origin: 'jail', durationMs: null });
  await again.ledger.close();
  const third = await reopen(t, dir);
  assert.equal(third.ledger.isActive(T, '203.0.113.9'), true, 'records numbered on from the recovered ledger');
  assert.equal(third.ledger.damage(), null);
}

test("a deleted snapshot is named (the bans it held are lost), the journal's bans are kept", async (t) => {
  const { dir, snapshot } = await ledgerOnDisk(t);
  await rm(snapshot);
  await assertRecovered(t, dir, {
    kept: IN_JOURNAL,
    problem: /snapshot .*snapshot\.jsonl is missing: every ban recorded up to record 2 is lost/,
    movedAside: 1,
  });
});

test("a deleted journal is named, the snapshot's bans are kept", async (t) => {
  const { dir, journal } = await ledgerOnDisk(t);
  await rm(journal);
  await assertRecovered(t, dir, {
    kept: IN_SNAPSHOT,
    problem: /journal .*journal\.jsonl is missing: every ban recorded after record 2 is lost/,
    movedAside: 1,
  });
});

test('a record zeroed in the middle of the journal is named with its line; the records around it are kept', async (t) => {
  const { dir, journal } = await ledgerOnDisk(t);
  const lines = (await readFile(journal, 'utf8')).split('\n');
  lines[2] = `${'\0'.repeat(lines[2]!.length - 1)}x`;
  await writeFile(journal, lines.join('\n'));
  await assertRecovered(t, dir, { kept: [...IN_SNAPSHOT, '198.51.100.3', '198.51.100.5'], problem: /unreadable record\(s\) at line 3/, movedAside: 2 });
});

test('a record missing from the middle of the journal is found by its sequence number', async (t) => {
  const { dir, journal } = await ledgerOnDisk(t);
  const lines = (await readFile(journal, 'utf8')).split('\n');
  lines.splice(2, 1);
  await writeFile(journal, lines.join('\n'));
  await assertRecovered(t, dir, { kept: [...IN_SNAPSHOT, '198.51.100.3', '198.51.100.5'], problem: /records 4 are missing/, movedAside: 2 });
});

test('a journal cut in half is named as cut, not taken for a torn last write', async (t) => {
  const { dir, journal } = await ledgerOnDisk(t);
  const text = await readFile(journal, 'utf8');
  const headerLength = text.indexOf('\n') + 1;
  // Keeps the header and half of record 3.
  await truncate(journal, headerLength + Math.floor((text.length - headerLength) / 6));
  await assertRecovered(t, dir, { kept: IN_SNAPSHOT, problem: /was cut short: records 3–4 were saved and are gone/, movedAside: 2 });
});

test('a snapshot cut short keeps its readable claims and names the rest', async (t) => {
  const { dir, snapshot } = await ledgerOnDisk(t);
  const text = await readFile(snapshot, 'utf8');
  await writeFile(snapshot, text.slice(0, text.length - 20));
  await assertRecovered(t, dir, { kept: ['192.0.2.1', ...IN_JOURNAL], problem: /snapshot .*: unreadable record\(s\) at line 3/, movedAside: 2 });
});

test('a read-only opener reports the damage and changes nothing on disk', async (t) => {
  const { dir, snapshot } = await ledgerOnDisk(t);
  await rm(snapshot);
  const before = (await readdir(dir)).sort();
  const store = await FileLedgerStore.open({ dir, logger: silentLogger(), readOnly: true });
  const claims = await store.load();
  assert.deepEqual(claims.map((c) => c.address).sort(), IN_JOURNAL);
  assert.match(store.damage()?.problems.join() ?? '', /is missing/);
  assert.deepEqual(store.damage()?.movedAside, []);
  await store.close();
  assert.deepEqual((await readdir(dir)).sort(), before);
});

test('a version-1 ledger that never recorded a ban (an empty journal, no snapshot) is upgraded, not reported as damage', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, JOURNAL_FILE), '');
  const { ledger, logged } = await reopen(t, dir);
  assert.equal(ledger.damage(), null, 'no damage');
  assert.deepEqual(
    logged.filter((l) => l.level >= 50),
    [],
    'no error logged',
  );
  await ledger.ban({ target: T, address: '198.51.100.9', jail: 'sshd', origin: 'jail', durationMs: null });
  await ledger.close();
  const again = await reopen(t, dir);
  assert.deepEqual([...again.ledger.activeAddresses(T)], ['198.51.100.9'], 'the upgraded ledger keeps what it records');
  assert.equal(again.ledger.damage(), null);
});

test('a journal record of a mutation type this version does not know (a newer edgeban) is skipped with a warning naming it and counted in status, not damage', async (t) => {
  const { dir, journal } = await ledgerOnDisk(t);
  const lines = (await readFile(journal, 'utf8')).split('\n');
  const json = JSON.stringify({ seq: 4, m: { op: 'quarantine', target: T, address: '198.51.100.4', until: 1 } });
  lines[2] = `${crc32(json).toString(16).padStart(8, '0')} ${json}`;
  await writeFile(journal, lines.join('\n'));
  const { ledger, logged } = await reopen(t, dir);
  assert.deepEqual([...ledger.activeAddresses(T)].sort(), [...IN_SNAPSHOT, '198.51.100.3', '198.51.100.5'].sort());
  assert.equal(ledger.damage(), null, 'nothing is moved aside or reported lost');
  assert.deepEqual(ledger.unknownMutations(), { count: 1, last: `${journal} line 3 (record 4), op "quarantine"` });
  assert.ok(
    logged.some((l) => l.level === 40 && /type this version does not know/.test(l.msg)),
    'a warning names it',
  );
  const status = (await createLedgerHandlers({
    ledger,
    targets: () => [],
    manualBantimeSec: 60,
    jails: { jail: () => null, manualTarget: () => T, facts: () => NO_NETWORK_FACTS },
  }).status(null)) as { unknownMutations: unknown };
  assert.deepEqual(status.unknownMutations, { count: 1, last: `${journal} line 3 (record 4), op "quarantine"` });
  // Later records are numbered on; the next start is the same.
  await ledger.ban({ target: T, address: '203.0.113.9', jail: 'sshd', origin: 'jail', durationMs: null });
  await ledger.close();
  const again = await reopen(t, dir);
  assert.equal(again.ledger.isActive(T, '203.0.113.9'), true);
  assert.equal(again.ledger.damage(), null);
});
