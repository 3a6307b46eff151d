// Saving log offsets creates their directory only when it is missing (not on every save), so a
// directory removed while the daemon runs is made again at the next save, and a path that cannot
// be a directory still gets the message naming it, not a bare ENOTDIR.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { saveResumeRecords } from '../../src/sources/resume-state.ts';

test('offsets: a missing directory is created at the save, also after it was removed', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-offsets-save-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const stateFile = path.join(root, 'data', 'offsets', 'dovecot.json');
  await saveResumeRecords(stateFile, []);
  assert.match(await readFile(stateFile, 'utf8'), /"files": \[\]/);
  await rm(path.join(root, 'data'), { recursive: true });
  await saveResumeRecords(stateFile, []);
  assert.match(await readFile(stateFile, 'utf8'), /"files": \[\]/);
});

test('offsets: a file where the directory should be is named in the error', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-offsets-save-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(path.join(root, 'offsets'), 'not a directory');
  await assert.rejects(
    saveResumeRecords(path.join(root, 'offsets', 'dovecot.json'), []),
    /cannot create the log offsets directory .*offsets: .*offsets exists and is not a directory/,
  );
});
