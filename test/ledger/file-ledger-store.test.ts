import assert from 'node:assert/strict';
import { appendFile, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { FileLedgerStore, JOURNAL_FILE, SNAPSHOT_FILE, type LedgerFileIo } from '../../src/ledger/file-ledger-store.ts';
import { moveAside } from '../../src/util/durable-files.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';

async function openLedger(dir: string, clock: ManualClock, options: { compactAfterRecords?: number } = {}) {
  const store = await FileLedgerStore.open({ dir, logger: silentLogger(), ...options });
  return Ledger.open({ store, clock, logger: silentLogger() });
}

test('bans survive a restart with their original expiry (no fresh bantime on restart)', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = await openLedger(dir, clock);
  const claim = await first.ban({ target: T, address: '192.0.2.10', jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  await first.ban({ target: T, address: '2001:DB8::1', jail: 'postfix', origin: 'jail', durationMs: null });
  await first.close();

  await clock.advance(600_000);
  const second = await openLedger(dir, clock);
  const restored = second.claimsOf(T, '192.0.2.10')[0];
  assert.equal(restored?.expiresAt, claim.expiresAt);
  assert.equal(restored?.bannedAt, claim.bannedAt);
  assert.deepEqual([...second.activeAddresses(T)].sort(), ['192.0.2.10', '2001:db8::1']);
  await second.close();
});

test('a torn last record is skipped with a warning, and the ledger still opens', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock);
  await ledger.ban({ target: T, address: '192.0.2.1', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
  await ledger.ban({ target: T, address: '192.0.2.2', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
  await ledger.close();
  // A crash in the middle of a write: half a record, no newline, then unwritten blocks as NULs.
  const journal = path.join(dir, JOURNAL_FILE);
  const whole = await readFile(journal, 'utf8');
  const lastLine = whole.trimEnd().split('\n').at(-1)!;
  await appendFile(journal, `${lastLine.slice(0, 30)}\0\0\0\0`);

  const lines: string[] = [];
  const logger = createLogger({
    destination: {
      write: (line: string) => {
        lines.push(line);
      },
    },
  });
  const store = await FileLedgerStore.open({ dir, logger });
  const reopened = await Ledger.open({ store, clock, logger });
  assert.deepEqual([...reopened.activeAddresses(T)].sort(), ['192.0.2.1', '192.0.2.2']);
  assert.ok(
    lines.some((l) => JSON.parse(l).level === 40 && /torn/.test(l)),
    'a warning names the torn record',
  );
  assert.equal(reopened.damage(), null, 'a torn last write is what a crash leaves: not damage');
  // The torn bytes were cut away, so new records append cleanly after the last good one.
  await reopened.ban({ target: T, address: '192.0.2.3', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
  await reopened.close();
  const third = await openLedger(dir, clock);
  assert.equal(third.activeAddresses(T).size, 3);
  await third.close();
});

test('a journal many read chunks long, its UTF-8 names split across chunks, loads whole; a torn record after it is cut at the right byte', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  // Mostly multibyte (2- and 3-byte characters), so that chunk boundaries fall inside characters.
  const jail = 'é€'.repeat(30);
  const count = 3000;
  const first = await openLedger(dir, clock);
  const addresses = Array.from({ length: count }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
  await first.banMany(addresses.map((address) => ({ target: T, address, jail, origin: 'jail' as const, durationMs: 3_600_000 })));
  await first.close();
  const journal = path.join(dir, JOURNAL_FILE);
  const bytes = await readFile(journal);
  const chunk = 64 * 1024;
  assert.ok(bytes.length > 4 * chunk, `the journal spans several read chunks (${bytes.length} bytes)`);
  const splitInside = Array.from({ length: Math.floor(bytes.length / chunk) }, (_, k) => bytes[(k + 1) * chunk]!).filter((b) => (b & 0xc0) === 0x80);
  assert.ok(splitInside.length > 0, 'some chunk boundary falls inside a character');
  const lastLine = bytes.toString('utf8').trimEnd().split('\n').at(-1)!;
  await appendFile(journal, lastLine.slice(0, 100));

  const second = await openLedger(dir, clock);
  assert.equal(second.activeAddresses(T).size, count);
  assert.equal(second.claimsOf(T, addresses.at(-1)!)[0]?.jail, jail);
  assert.equal(second.damage(), null);
  await second.ban({ target: T, address: '192.0.2.1', jail, origin: 'jail', durationMs: 3_600_000 });
  await second.close();
  const third = await openLedger(dir, clock);
  assert.equal(third.activeAddresses(T).size, count + 1, 'the record written after the cut is read back');
  assert.equal(third.damage(), null);
  await third.close();
});

test('compaction keeps every active ban and the journal stays small', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock, { compactAfterRecords: 100 });
  for (let i = 0; i < 500; i++) {
    await ledger.ban({ target: T, address: `203.0.113.${i % 250}`, jail: i < 250 ? 'a' : 'b', origin: 'jail', durationMs: 3_600_000 });
  }
  await ledger.unban({ address: '203.0.113.7' });
  await ledger.close();
  const files = await readdir(dir);
  assert.ok(files.includes(SNAPSHOT_FILE), 'a snapshot was written');
  assert.ok(!files.some((f) => f.endsWith('.tmp')), 'no temporary file left behind');
  const journalLines = (await readFile(path.join(dir, JOURNAL_FILE), 'utf8')).split('\n').filter(Boolean).length;
  assert.ok(journalLines < 500, `journal compacted (${journalLines} records)`);
  const reopened = await openLedger(dir, clock);
  assert.equal(reopened.activeAddresses(T).size, 249);
  assert.equal(reopened.isActive(T, '203.0.113.7'), false);
  assert.equal(reopened.isKnown(T, '203.0.113.7'), true, 'ended bans stay known, so the reconciler still removes them');
  await reopened.close();
});

test('a second writer on the same data dir is refused; a read-only opener is not', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock);
  await ledger.ban({ target: T, address: '192.0.2.50', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
  // The lock names this very process, which counts as stale (in a container edgeban is always
  // PID 1); make it name another live process, as a second edgeban would see it.
  await writeFile(path.join(dir, 'lock'), String(process.ppid));
  await assert.rejects(FileLedgerStore.open({ dir, logger: silentLogger() }), new RegExp(`in use by process ${process.ppid}`));
  const reader = await FileLedgerStore.open({ dir, logger: silentLogger(), readOnly: true });
  const claims = await reader.load();
  assert.equal(claims.length, 1);
  await reader.close();
  await ledger.close();
});

test('--reset-state moves the ledger aside instead of deleting it', async (t) => {
  const root = await tempDir(t);
  const dir = path.join(root, 'ledger');
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock);
  await ledger.ban({ target: T, address: '192.0.2.77', jail: 'sshd', origin: 'jail', durationMs: 60_000 });
  await ledger.close();
  const aside = await moveAside(dir, clock.now());
  assert.ok(aside);
  assert.ok((await readdir(aside)).includes(JOURNAL_FILE));
  const fresh = await openLedger(dir, clock);
  assert.equal(fresh.activeAddresses(T).size, 0);
  await fresh.close();
});

test('compaction while bans are still being written loses none of them', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock, { compactAfterRecords: 5 });
  const addresses = Array.from({ length: 300 }, (_, i) => `198.51.100.${i % 250}`);
  // Many bans at once: group commit writes them in batches while earlier ones settle and trigger compaction.
  for (let round = 0; round < 4; round++) {
    await Promise.all(addresses.map((address, i) => ledger.ban({ target: T, address, jail: `j${round}-${i}`, origin: 'jail', durationMs: 3_600_000 })));
  }
  const expected = ledger.activeClaims().length;
  assert.equal(expected, 1200);
  await ledger.close();
  const journalLines = (await readFile(path.join(dir, JOURNAL_FILE), 'utf8')).split('\n').filter(Boolean).length;
  assert.ok(journalLines < 1200, `compaction ran (${journalLines} journal lines)`);
  const reopened = await openLedger(dir, clock);
  assert.equal(reopened.activeClaims().length, expected, 'every ban made during compaction survives a restart');
  assert.equal(reopened.damage(), null);
  await reopened.close();
});

test('a ledger written by the previous version (no record numbers) loads and is rewritten with them', async (t) => {
  const dir = await tempDir(t);
  const line = (value: unknown) => {
    const json = JSON.stringify(value);
    return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
  };
  const claim = { target: T, address: '192.0.2.60', jail: 'sshd', origin: 'jail', bannedAt: 1, expiresAt: null, endedAt: null, banCount: 1 };
  await writeFile(path.join(dir, SNAPSHOT_FILE), line({ format: 'edgeban-ledger', version: 1, claims: 1 }) + line(claim));
  await writeFile(
    path.join(dir, JOURNAL_FILE),
    line({ op: 'ban', claim: { ...claim, address: '198.51.100.60' } }) + line({ op: 'end', target: T, address: '192.0.2.60', jail: null, at: 5 }),
  );
  const clock = new ManualClock();
  const ledger = await openLedger(dir, clock);
  assert.deepEqual([...ledger.activeAddresses(T)], ['198.51.100.60']);
  assert.equal(ledger.isKnown(T, '192.0.2.60'), true);
  assert.equal(ledger.damage(), null);
  await ledger.close();
  assert.match(await readFile(path.join(dir, SNAPSHOT_FILE), 'utf8'), /"version":2/);
  const reopened = await openLedger(dir, clock);
  assert.deepEqual([...reopened.activeAddresses(T)], ['198.51.100.60']);
  assert.equal(reopened.damage(), null);
  await reopened.close();
});

test('a failed write that cannot be cut off at once is cut off before the next append', async (t) => {
  const dir = await tempDir(t);
  let failing = false;
  let truncateFailures = 0;
  const io: LedgerFileIo = {
    async write(handle, data, position) {
      if (!failing) return (await handle.write(data, 0, data.length, position)).bytesWritten;
      failing = false;
      // Part of the batch reaches the file, then the disk is full.
      await handle.write(data, 0, data.length >> 1, position);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    },
    datasync: (handle) => handle.datasync(),
    async truncate(handle, length) {
      if (truncateFailures > 0) {
        truncateFailures--;
        throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' });
      }
      await handle.truncate(length);
    },
  };
  const clock = new ManualClock();
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir, logger: silentLogger(), io }), clock, logger: silentLogger() });
  await ledger.ban({ target: T, address: '192.0.2.1', jail: 'sshd', origin: 'jail', durationMs: null });
  failing = true;
  truncateFailures = 2; // the cut right after the failure, and the first attempt before the next append
  await assert.rejects(ledger.ban({ target: T, address: '192.0.2.2', jail: 'sshd', origin: 'jail', durationMs: null }), /ENOSPC/);
  const partial = await readFile(path.join(dir, JOURNAL_FILE), 'utf8');
  assert.ok(!partial.endsWith('\n'), 'the partial record is still there');
  await assert.rejects(
    ledger.ban({ target: T, address: '192.0.2.3', jail: 'sshd', origin: 'jail', durationMs: null }),
    /EIO/,
    'no record is written after a partial one',
  );
  await ledger.ban({ target: T, address: '192.0.2.4', jail: 'sshd', origin: 'jail', durationMs: null });
  await ledger.close();
  const reopened = await openLedger(dir, clock);
  assert.equal(reopened.damage(), null);
  assert.deepEqual([...reopened.activeAddresses(T)].sort(), ['192.0.2.1', '192.0.2.4']);
  await reopened.close();
});
