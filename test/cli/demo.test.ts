import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/cli.ts';

test('edgeban demo (npm run demo): the demo runs to the end and exits 0', async () => {
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, [path.join(REPO, 'bin/edgeban.js'), 'demo'], { cwd: REPO, timeout: 120_000 }, (error, out) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out });
    });
  });
  assert.equal(code, 0, stdout);
  assert.match(stdout, /BANNED {3}192\.0\.2\.10 /);
  assert.match(stdout, /BANNED {3}2001:db8:bad::7 /);
  assert.match(stdout, /UNBANNED 198\.51\.100\.99 /);
  assert.match(stdout, /WARNING {2}\[traefik\] .*172\.18\.0\.1/);
  assert.match(stdout, /injected address banned: false; proxy address banned: false; flushes: 0/);
});
