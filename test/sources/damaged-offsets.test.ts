// A damaged log offsets file (cut short, not JSON) must not stop the daemon with a bare JSON parse
// error naming no file. Chosen behaviour: protection goes on; the error names the file and says
// what happens (every log of that jail read from its beginning: lines older than findtime are
// ignored, failures already counted are recognised by the failure journal), and the damaged file
// is kept beside it for inspection.
import assert from 'node:assert/strict';
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'offsetsKey0123456789abcdef';
const SECRET = 'offsetsSecret0123456789+/=';

test('a damaged offsets file: the daemon starts, names the file and what it does, keeps the damaged copy, and reads the log from its beginning', {
  timeout: 120_000,
}, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  const dataDir = path.join(root, 'data');
  await writeFile(mailLog, dovecotFailure('198.51.100.5'));
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 3\n`);
  const offsets = path.join(dataDir, 'offsets', 'dovecot.json');
  await mkdir(path.dirname(offsets), { recursive: true });
  await writeFile(offsets, '{"format":"edgeban-log-offsets","version":1,"files":[{"pa\u0000\u0000');
  const env = { OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, EDGEBAN_CONFIG_DIR: configDir, TZ: 'UTC' };
  const daemon = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  const named = daemon.stderr.filter((l) => l.includes(offsets) && l.includes('damaged'));
  assert.equal(named.length, 1, `one message names the file:\n${daemon.stderr.join('\n')}`);
  assert.match(named[0] ?? '', /from its beginning/);
  await access(`${offsets}.damaged`);
  await until(
    'the log read from its beginning',
    async () => {
      const status = await runCli(['status', '--json'], { env });
      return (JSON.parse(status.stdout) as { jails: Array<{ lines: number }> }).jails[0]?.lines === 1;
    },
    30_000,
  );
  assert.equal(await daemon.stop(), 0);
});
