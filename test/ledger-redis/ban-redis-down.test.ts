import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { RedisServer } from './redis-server.ts';

test('edgeban ban with the Redis ledger down fails within seconds, naming Redis (it waited a minute)', async (t) => {
  const root = await tempDir(t);
  const redis = await RedisServer.start(t);
  const url = redis.url;
  await redis.stop();
  const started = Date.now();
  const result = await runCli(['ban', '192.0.2.44'], {
    env: {
      OPNSENSE_URL: 'http://127.0.0.1:9',
      OPNSENSE_KEY: 'k'.repeat(20),
      OPNSENSE_SECRET: 's'.repeat(20),
      EDGEBAN_DATA_DIR: path.join(root, 'data'),
      EDGEBAN_LEDGER: 'redis',
      EDGEBAN_REDIS_URL: url,
    },
    cwd: root,
  });
  const elapsed = Date.now() - started;
  assert.notEqual(result.code, 0, result.stderr);
  assert.match(result.stderr, /cannot reach Redis for the shared ledger \(EDGEBAN_REDIS_URL\)/);
  assert.match(result.stderr, /ECONNREFUSED/, 'the cause is named');
  // 5 s connect timeout, plus the CLI's start-up on a loaded machine.
  assert.ok(elapsed < 20_000, `failed after ${elapsed} ms`);
});
