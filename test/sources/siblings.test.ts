import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/logging/logger.ts';
import { newerRotations, type Sibling } from '../../src/sources/siblings.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { Collector, startFollower, waitFor } from './harness.ts';

const sib = (name: string, ino: number, mtimeMs: number): Sibling => ({ name, path: `/l/${name}`, dev: 1, ino, size: 10, mtimeMs });

test('newer rotations: by number for numbered names (smaller is newer), by mtime otherwise; other files never', () => {
  const numbered = [
    sib('access.log.3', 3, 100),
    sib('access.log.2', 2, 300),
    sib('access.log.1', 1, 300),
    sib('error.log.1', 9, 400),
    sib('access.log.bak', 8, 50),
  ];
  assert.deepEqual(
    newerRotations(numbered, 'access.log', sib('access.log.3', 3, 100), new Set()).map((s) => s.name),
    ['access.log.2', 'access.log.1'],
  );
  assert.deepEqual(
    newerRotations(numbered, 'access.log', sib('access.log.1', 1, 300), new Set()).map((s) => s.name),
    [],
  );
  assert.deepEqual(
    newerRotations(numbered, 'access.log', sib('access.log.3', 3, 100), new Set([2])).map((s) => s.name),
    ['access.log.1'],
  );
  const dated = [sib('access.log-20250101', 1, 100), sib('access.log-20250102', 2, 200), sib('access.log-20250103', 3, 300)];
  assert.deepEqual(
    newerRotations(dated, 'access.log', sib('access.log-20250101', 1, 100), new Set()).map((s) => s.name),
    ['access.log-20250102', 'access.log-20250103'],
  );
});

test('a file rotated away and compressed during downtime is reported; the new file is read from its beginning', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  const stateFile = path.join(dir, 'state.json');
  await writeFile(log, 'old 1\n');
  const collector = new Collector();
  let follower = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines });
  assert.ok(await waitFor(() => collector.lines.length >= 1));
  await follower.stop();
  await rename(log, `${log}.1.gz`); // stands for logrotate's compress: the inode is gone from uncompressed siblings
  await writeFile(log, 'new 1\n');
  const records: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'warn',
    destination: {
      write: (line: string) => {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  follower = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines, logger });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 2));
    assert.deepEqual(
      collector.lines.map((l) => l.text),
      ['old 1', 'new 1'],
    );
    assert.ok(records.some((r) => r.path === log && /rotated away/.test(String(r.msg))));
  } finally {
    await follower.stop();
  }
});
