import assert from 'node:assert/strict';
import { copyFile, rename, truncate, utimes } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/temp-dir.ts';
import { exactness, expectedExact, NumberedWriter, startFollower, waitFor } from './harness.ts';

// The order a loaded machine once produced (a CI flake of "copytruncate twice while the consumer lags"),
// made deterministic: the first truncation is seen while the file is still empty, so nothing of the
// new file is known when the consumer is held inside the first copy and the file is copied and
// truncated again. The lines between the two truncations are only in the second copy.
for (const oldDirectory of [false, true]) {
  test(`copytruncate twice, the first seen while the file was empty and the consumer then held inside the first copy: the second copy is read too, exactly${oldDirectory ? ' (the directory last changed long before: the follower stops listing it until it changes)' : ''}`, async (t) => {
    const dir = await tempDir(t);
    const log = path.join(dir, 'app.log');
    const writer = new NumberedWriter(log);
    await writer.open();
    t.after(() => writer.close());
    await writer.write(30_000);
    const delivered: number[] = [];
    let gate = Promise.withResolvers<void>();
    let held = 0;
    const follower = await startFollower({
      patterns: [log],
      stateFile: path.join(dir, 'state.json'),
      onLines: async (lines) => {
        held++;
        await gate.promise;
        held--;
        delivered.push(...lines.map((l) => Number(/^line (\d+)/.exec(l.text)?.[1])));
      },
    });
    t.after(() => follower.stop());
    const release = () => {
      const open = gate;
      gate = Promise.withResolvers<void>();
      open.resolve();
    };
    assert.ok(await waitFor(() => held === 1), 'the first batch is held');
    await copyFile(log, `${log}.1`);
    await truncate(log, 0);
    // Seen then as unchanged for a minute: only the second copy, which changes it, makes it worth a look.
    if (oldDirectory) await utimes(dir, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const rotationsBefore = follower.stats().rotations;
    release();
    // A batch held after the truncation was seen is a batch of the copy: the follower is inside it.
    assert.ok(await waitFor(() => follower.stats().rotations > rotationsBefore && held === 1), 'held inside the first copy');

    await writer.write(3000);
    await rename(`${log}.1`, `${log}.2`);
    await copyFile(log, `${log}.1`);
    await truncate(log, 0);
    await writer.write(3000);
    gate.resolve();
    await waitFor(() => delivered.length >= writer.written, 20_000);
    assert.deepEqual(exactness(delivered, writer.written), expectedExact(writer.written));
  });
}
