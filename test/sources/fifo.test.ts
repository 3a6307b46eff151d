// A FIFO at a log path (swapped in between the follower's stat and its open, or there from the
// start) never blocks: it is opened without blocking, recognised as not a regular file, reported
// on that path, and the follower's other files, its checkpoints and stop() go on.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/temp-dir.ts';
import { Collector, startFollower, waitFor } from './harness.ts';

test('a FIFO swapped in between stat and open is reported, not opened for ever; the other file goes on and stop() returns', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const swapped = path.join(dir, 'swapped.log');
  const other = path.join(dir, 'other.log');
  await writeFile(swapped, '');
  await writeFile(other, 'o1\n');
  const fifo = path.join(dir, 'fifo.tmp');
  execFileSync('mkfifo', [fifo]);
  let armed = false;
  const collector = new Collector();
  const follower = await startFollower({
    patterns: [swapped, other],
    stateFile: path.join(dir, 'state.json'),
    onLines: collector.onLines,
    testHooks: {
      beforeOpen: async (file) => {
        if (!armed || file !== swapped) return;
        armed = false;
        await rename(fifo, swapped); // the follower saw a regular file; it opens a FIFO
      },
    },
  });
  try {
    assert.ok(await waitFor(() => collector.lines.length === 1, 10_000));
    armed = true;
    await unlink(swapped);
    await writeFile(swapped, 'replaced\n'); // a new file: the follower stats it, then opens the path
    assert.ok(await waitFor(() => !armed, 10_000), 'the swap happened');
    assert.ok(
      await waitFor(() => /not a regular file/.test(follower.stats().files.find((f) => f.path === swapped)?.error ?? ''), 10_000),
      `the FIFO is reported: ${JSON.stringify(follower.stats().files)}`,
    );
    await appendFile(other, 'o2\n');
    assert.ok(await waitFor(() => collector.lines.some((l) => l.text === 'o2'), 10_000), 'the other file is still read');
    await follower.checkpoint();
  } finally {
    await follower.stop();
  }
});
