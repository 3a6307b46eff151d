/**
 * EACCES recovery (tail-file deadlocks here). Tests run as root, where mode bits never deny a
 * read, so the follower runs in a child process that stays uid 0 but has every capability
 * dropped by setpriv(1) (no CAP_DAC_OVERRIDE): mode bits then apply to it, while it can still
 * read the repository wherever it is checked out. The test flips the log files' modes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { FollowerStats } from '../../src/sources/log-follower.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitFor } from './harness.ts';

const fixture = path.join(import.meta.dirname, 'fixtures', 'follow-child.ts');
const canDropPrivileges = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');

interface Child {
  proc: ChildProcessWithoutNullStreams;
  lines: string[];
  stats: FollowerStats | null;
  stopped: boolean;
  exitCode: number | null;
}

function startChild(stateFile: string, log: string): Child {
  const proc = spawn('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--no-new-privs', process.execPath, fixture, stateFile, log], { stdio: 'pipe' });
  const child: Child = { proc, lines: [], stats: null, stopped: false, exitCode: null };
  createInterface({ input: proc.stdout }).on('line', (text) => {
    const msg = JSON.parse(text) as { line?: string; stats?: FollowerStats; stopped?: boolean };
    if (msg.line !== undefined) child.lines.push(msg.line);
    if (msg.stats) child.stats = msg.stats;
    if (msg.stopped) child.stopped = true;
  });
  proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
  proc.on('exit', (code) => {
    child.exitCode = code ?? -1;
  });
  return child;
}

async function stopChild(child: Child): Promise<void> {
  child.proc.stdin.write('stop\n');
  const exited = await waitFor(() => child.exitCode !== null, 10_000);
  if (!exited) child.proc.kill('SIGKILL');
  assert.ok(exited, 'the follower stopped (no deadlock)');
  assert.equal(child.exitCode, 0);
  assert.ok(child.stopped);
}

const eaccesShown = (child: Child): boolean => /EACCES/.test(child.stats?.files[0]?.error ?? '');

test('a file that is unreadable (EACCES) is followed once it becomes readable, also after rotation to an unreadable file', {
  skip: canDropPrivileges ? false : 'needs root and setpriv to run the follower without CAP_DAC_OVERRIDE',
}, async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o755);
  const logDir = path.join(dir, 'logs');
  await mkdir(logDir, { mode: 0o755 });
  const stateDir = path.join(dir, 'state');
  await mkdir(stateDir);
  const stateFile = path.join(stateDir, 'offsets.json');
  const log = path.join(logDir, 'app.log');
  await writeFile(log, 'a1\n', { mode: 0o000 }); // unreadable for a process without CAP_DAC_OVERRIDE

  // Stopping while the file is unreadable must not hang.
  const first = startChild(stateFile, log);
  t.after(() => {
    first.proc.kill('SIGKILL');
  });
  assert.ok(await waitFor(() => eaccesShown(first), 15_000), 'the error is reported in stats');
  await stopChild(first);

  const child = startChild(stateFile, log);
  t.after(() => {
    child.proc.kill('SIGKILL');
  });
  assert.ok(await waitFor(() => eaccesShown(child), 15_000));
  await chmod(log, 0o644);
  assert.ok(await waitFor(() => child.lines.length >= 1, 15_000), 'read once readable');
  assert.ok(await waitFor(() => child.stats?.files[0]?.error === null, 5000), 'the error is cleared');

  // Rotated to a file created unreadable (logrotate `create 0600 root`); the writer still writes the old one.
  await rename(log, `${log}.1`);
  await writeFile(log, 'b1\n', { mode: 0o000 });
  await appendFile(`${log}.1`, 'a2\n');
  assert.ok(await waitFor(() => child.lines.length >= 2 && eaccesShown(child), 15_000));
  await chmod(log, 0o644);
  await appendFile(log, 'b2\n');
  assert.ok(await waitFor(() => child.lines.length >= 4, 15_000));
  await stopChild(child);
  assert.deepEqual(child.lines, ['a1', 'a2', 'b1', 'b2']);
  assert.ok((child.stats?.errors ?? 0) >= 2);
});
