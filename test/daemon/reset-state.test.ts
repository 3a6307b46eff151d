import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KEY = 'resetKey0123456789abcdef';
const SECRET = 'resetSecret0123456789abcdef';

test('edgeban run --reset-state moves the ledger and the failure journals aside (never deletes them) and starts empty', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const dataDir = path.join(root, 'data');
  const configDir = path.join(root, 'config');
  const mailLog = path.join(root, 'mail.log');
  await mkdir(configDir);
  await writeFile(mailLog, '');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const env = { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, EDGEBAN_CONFIG_DIR: configDir };

  const first = await startCliDaemon(t, env);
  assert.equal(await first.stop(), 0);
  const before = await readdir(dataDir);
  assert.ok(before.includes('ledger') && before.includes('failures'), `expected ledger and failures in ${before.join(', ')}`);

  const second = await startCliDaemon(t, env, { args: ['run', '--reset-state'] });
  assert.equal(await second.stop(), 0);
  const after = await readdir(dataDir);
  assert.ok(
    after.some((name) => name.startsWith('ledger.reset-')),
    `the ledger was not moved aside: ${after.join(', ')}`,
  );
  assert.ok(
    after.some((name) => name.startsWith('failures.reset-')),
    `the failure journals were not moved aside: ${after.join(', ')}`,
  );
});
