import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('edgeban run --reset-state with the shared Redis ledger is refused before anything is touched (exit 2)', async (t) => {
  const root = await tempDir(t);
  const result = await runCli(['run', '--reset-state'], {
    env: {
      OPNSENSE_URL: 'http://127.0.0.1:9',
      OPNSENSE_KEY: 'k'.repeat(20),
      OPNSENSE_SECRET: 's'.repeat(20),
      EDGEBAN_DATA_DIR: path.join(root, 'data'),
      EDGEBAN_LEDGER: 'redis',
      EDGEBAN_REDIS_URL: 'redis://127.0.0.1:9',
    },
    cwd: root,
  });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--reset-state applies to the file ledger only/);
});
