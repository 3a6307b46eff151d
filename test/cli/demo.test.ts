import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/cli.ts';

test('npm run demo: the demo runs to the end and exits 0', async () => {
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, [path.join(REPO, 'src/demo/main.ts')], { cwd: REPO, timeout: 120_000 }, (error, out) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out });
    });
  });
  assert.equal(code, 0, stdout);
  assert.match(stdout, /the next reconcile pass put them back/);
  assert.match(stdout, /0 flushes; the admin's entry survived: true/);
});
