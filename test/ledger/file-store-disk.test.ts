import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { processStartTime } from '../../src/ledger/process-start-time.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';

/** A real tmpfs of `size` bytes (root only: CI runs the suite as root), unmounted when the test ends. */
async function smallFilesystem(t: TestContext, options: string): Promise<string> {
  if (process.getuid?.() !== 0) throw new Error('these tests mount a small tmpfs: run them as root (CI does)');
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-fs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  t.after(async () => {
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the file system to its last free page; returns the filler's path. */
async function fill(dir: string): Promise<string> {
  const filler = path.join(dir, 'filler');
  const free = Number(execFileSync('df', ['--output=avail', '-B1', dir], { encoding: 'utf8' }).trim().split('\n')[1]);
  await writeFile(filler, Buffer.alloc(Math.max(0, free - 4096)));
  return filler;
}

test('disk full: the ban is refused with ENOSPC, not enforced; once space returns the ledger opens with every saved ban', async (t) => {
  const fs = await smallFilesystem(t, 'size=256k');
  const dir = path.join(fs, 'ledger');
  const clock = new ManualClock();
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir, logger: silentLogger() }), clock, logger: silentLogger() });
  await ledger.ban({ target: T, address: '192.0.2.1', jail: 'sshd', origin: 'jail', durationMs: null });
  const filler = await fill(fs);
  // The journal fills the last page: a record goes in part (a short write), then ENOSPC.
  let refused = 0;
  for (let i = 2; i < 200 && refused === 0; i++) {
    try {
      await ledger.ban({ target: T, address: `198.51.100.${i}`, jail: 'sshd', origin: 'jail', durationMs: null });
    } catch (error) {
      assert.match((error as Error).message, /ENOSPC/);
      assert.equal(ledger.isActive(T, `198.51.100.${i}`), false, 'the ban that was not saved is not enforced');
      refused = i;
    }
  }
  assert.ok(refused > 0, 'the disk filled up');
  const saved = [...ledger.activeAddresses(T)];
  await rm(filler);
  await ledger.ban({ target: T, address: '203.0.113.1', jail: 'sshd', origin: 'jail', durationMs: null });
  await ledger.close();

  const reopened = await Ledger.open({ store: await FileLedgerStore.open({ dir, logger: silentLogger() }), clock, logger: silentLogger() });
  t.after(() => reopened.close());
  assert.equal(reopened.damage(), null, 'the partial record was cut off: nothing to recover');
  assert.deepEqual([...reopened.activeAddresses(T)].sort(), [...saved, '203.0.113.1'].sort());
  assert.equal(reopened.isKnown(T, `198.51.100.${refused}`), false);
});

test('a data dir on a read-only file system is named as such (EROFS), not ENOENT', async (t) => {
  const fs = await smallFilesystem(t, 'size=64k');
  await mkdir(path.join(fs, 'data'));
  await mkdir(path.join(fs, 'existing', 'ledger'), { recursive: true });
  execFileSync('mount', ['-o', 'remount,ro', fs]);
  // The ledger directory still to be made (Node's recursive mkdir said ENOENT), and one that exists (its lock cannot be written).
  for (const dir of [path.join(fs, 'data', 'ledger'), path.join(fs, 'existing', 'ledger')]) {
    await assert.rejects(
      FileLedgerStore.open({ dir, logger: silentLogger() }),
      (error: Error) => /read-only[^;]*\(EROFS\)/.test(error.message) && !/ENOENT/.test(error.message) && /EDGEBAN_DATA_DIR/.test(error.message),
    );
  }
});

test('a stale lock whose PID now belongs to another process does not block start-up; the live holder still does', async (t) => {
  const dir = await tempDir(t);
  // Another live process, started after the "crashed" holder: same PID, other start time.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => {
    other.kill();
  });
  const pid = other.pid!;
  await writeFile(path.join(dir, 'lock'), `${pid} 1`);
  const store = await FileLedgerStore.open({ dir, logger: silentLogger() });
  const lock = await readFile(path.join(dir, 'lock'), 'utf8');
  assert.equal(lock, `${process.pid} ${await processStartTime(process.pid)}`, 'the lock names this process and its start time');
  await store.close();

  await writeFile(path.join(dir, 'lock'), `${pid} ${await processStartTime(pid)}`);
  await assert.rejects(FileLedgerStore.open({ dir, logger: silentLogger() }), new RegExp(`in use by process ${pid}`));
});
