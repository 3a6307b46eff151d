/**
 * The rotation loss seen under CPU load (issue 11, item 12), made deterministic: logrotate's
 * numbered shift (.2 → .3, .1 → .2, current → .1) runs while the follower lists the directory,
 * between reading its names and looking at each of them. The follower then saw a snapshot of no
 * single instant (the file it was draining under no name, another one under two), did not find
 * the file it had been reading, and skipped the rotation written in between.
 */
import assert from 'node:assert/strict';
import { copyFile, rename, truncate } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { Collector, exactness, expectedExact, NumberedWriter, startFollower, waitFor } from './harness.ts';

async function rotate(logPath: string, writer: NumberedWriter): Promise<void> {
  for (let i = 4; i >= 1; i--) await rename(`${logPath}.${i}`, `${logPath}.${i + 1}`).catch(() => undefined);
  await rename(logPath, `${logPath}.1`);
  await writer.reopen();
}

test('a rotation made while the follower lists the directory loses no file (two renames unseen, a third during the listing)', async (t) => {
  const dir = await tempDir(t, 'edgeban-sources-');
  const logPath = path.join(dir, 'logs', 'access.log');
  const writer = new NumberedWriter(logPath);
  await writer.open();
  await writer.write(10);
  const clock = new ManualClock();
  const collector = new Collector();
  let armed = false;
  let struck = 0;
  const follower = await startFollower({
    patterns: [logPath],
    stateFile: path.join(dir, 'state.json'),
    onLines: collector.onLines,
    // No inotify and a clock that moves only when told: the follower looks only when the test says so.
    forcePolling: true,
    clock,
    testHooks: {
      afterReaddir: async () => {
        if (!armed) return;
        armed = false;
        struck++;
        await rotate(logPath, writer);
        await writer.write(10);
      },
    },
  });
  try {
    assert.ok(await waitFor(() => collector.lines.length === 10), 'the first file is read');
    // Two rotations the follower does not see: A → .2, B (10 lines) → .1, C (10 lines) at the path.
    await rotate(logPath, writer);
    await writer.write(10);
    await rotate(logPath, writer);
    await writer.write(10);
    // The third strikes between the follower's readdir and its stats of the names it read.
    armed = true;
    for (let i = 0; i < 20 && collector.lines.length < writer.written; i++) {
      await clock.advance(2000);
      await waitFor(() => collector.lines.length >= writer.written, 200);
    }
    assert.equal(struck, 1, 'the rotation struck during a listing');
  } finally {
    await follower.stop();
    await writer.close();
  }
  assert.deepEqual(exactness(collector.numbers(), writer.written), expectedExact(writer.written));
});

test('copytruncate of a file the follower opened but had not read yet (held by backpressure on the rotated one): its copy is read', async (t) => {
  const dir = await tempDir(t, 'edgeban-sources-');
  const logPath = path.join(dir, 'logs', 'access.log');
  const writer = new NumberedWriter(logPath);
  await writer.open();
  await writer.write(10);
  const clock = new ManualClock();
  const collector = new Collector();
  let gate: Promise<void> | null = null;
  let openGate = () => {};
  let held = false;
  const follower = await startFollower({
    patterns: [logPath],
    stateFile: path.join(dir, 'state.json'),
    forcePolling: true,
    clock,
    onLines: async (lines) => {
      if (gate) {
        held = true;
        await gate;
      }
      await collector.onLines(lines);
    },
  });
  try {
    assert.ok(await waitFor(() => collector.lines.length === 10), 'the first file is read');
    // Unread lines in the file about to be rotated, and a new file with lines of its own.
    await writer.write(5);
    await rotate(logPath, writer);
    await writer.write(10);
    gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    // The follower opens the new file, then is held delivering the rotated file's rest.
    await clock.advance(2000);
    assert.ok(await waitFor(() => held, 10_000), 'held on the rotated file');
    // copytruncate of the new file, which the follower has not read a byte of.
    for (let i = 4; i >= 1; i--) await rename(`${logPath}.${i}`, `${logPath}.${i + 1}`).catch(() => undefined);
    await copyFile(logPath, `${logPath}.1`);
    await truncate(logPath, 0);
    await writer.write(5);
    gate = null;
    openGate();
    for (let i = 0; i < 20 && collector.lines.length < writer.written; i++) {
      await clock.advance(2000);
      await waitFor(() => collector.lines.length >= writer.written, 200);
    }
  } finally {
    gate = null;
    openGate();
    await follower.stop();
    await writer.close();
  }
  assert.deepEqual(exactness(collector.numbers(), writer.written), expectedExact(writer.written));
});
