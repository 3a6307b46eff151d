/**
 * More matched log files than descriptors: 600 files followed by a process limited to 200
 * descriptors (prlimit, as Docker's default of 1,024 is to 2,000 files). The follower keeps at most
 * maxOpenFiles open, closing the quietest and reopening them by path (device + inode checked) when
 * they change: every line is delivered once, rotations made while a file was closed are found by
 * inode, and the offsets are still saved.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { tempDir } from '../helpers/temp-dir.ts';
import { waitFor } from './harness.ts';

const fixture = path.join(import.meta.dirname, 'fixtures', 'follow-child.ts');
const FILES = 600;

test('600 files under a 200-descriptor limit: every line once, rotations of closed files found, offsets saved', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const stateFile = path.join(dir, 'state', 'offsets.json');
  const name = (i: number) => path.join(dir, `f${i}.log`);
  for (let i = 0; i < FILES; i++) await writeFile(name(i), `f${i} a\n`);
  const proc = spawn('prlimit', ['--nofile=200:200', process.execPath, fixture, stateFile, path.join(dir, '*.log')], { stdio: 'pipe' });
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  const lines: string[] = [];
  let stopped = false;
  let exitCode: number | null = null;
  let stderr = '';
  createInterface({ input: proc.stdout }).on('line', (text) => {
    const msg = JSON.parse(text) as { line?: string; stopped?: boolean };
    if (msg.line !== undefined) lines.push(msg.line);
    if (msg.stopped) stopped = true;
  });
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  proc.on('exit', (code) => {
    exitCode = code ?? -1;
  });

  assert.ok(await waitFor(() => lines.length >= FILES, 60_000), `first lines: ${lines.length} of ${FILES}\n${stderr}`);
  for (let i = 0; i < FILES; i++) await appendFile(name(i), `f${i} b\n`);
  // Rotated while (most likely) closed: found again by inode among the siblings.
  for (let i = 0; i < 20; i++) {
    await appendFile(name(i), `f${i} c\n`);
    await rename(name(i), `${name(i)}.1`);
    await writeFile(name(i), `f${i} d\n`);
  }
  const total = 2 * FILES + 40;
  assert.ok(await waitFor(() => lines.length >= total, 60_000), `all lines: ${lines.length} of ${total}\n${stderr}`);
  proc.stdin.write('stop\n');
  assert.ok(await waitFor(() => exitCode !== null, 20_000), 'stopped');
  assert.equal(exitCode, 0, stderr);
  assert.ok(stopped);

  const expected = new Set<string>();
  for (let i = 0; i < FILES; i++) for (const k of ['a', 'b']) expected.add(`f${i} ${k}`);
  for (let i = 0; i < 20; i++) for (const k of ['c', 'd']) expected.add(`f${i} ${k}`);
  assert.equal(lines.length, expected.size, 'no line twice');
  assert.deepEqual(new Set(lines), expected);
  const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { files: Array<{ path: string; offset: number }> };
  const current = saved.files.filter((f) => f.path.endsWith('.log'));
  assert.ok(current.length >= FILES, `a record per file: ${current.length}`);
});
