// 2,000 matched log files under Docker's default of 1,024 descriptors once killed the control API
// and stopped offsets being saved. The daemon here runs with 1,024 descriptors (prlimit) while
// 2,000 log files appear under its jail's glob: the control socket answers, every file is read,
// a failure written late to one of them is banned, and the offsets of all of them are saved.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'manyLogsKey0123456789abcdef';
const SECRET = 'manyLogsSecret0123456789+/=';
const FILES = 2000;

interface JailStatus {
  jail: string;
  lines: number;
  follower: { files: unknown[] } | null;
}

test('2,000 log files under a 1,024-descriptor limit: control API alive, every file read, a late failure banned, offsets saved', {
  timeout: 240_000,
}, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, logDir } = await mailSetup(t);
  const dataDir = path.join(root, 'data');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${logDir}/*.log\nmaxretry = 3\n`);
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    TZ: 'UTC',
  };
  const daemon = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  execFileSync('prlimit', ['--pid', String(daemon.pid), '--nofile=1024:1024']);
  for (let i = 0; i < FILES; i++) await writeFile(path.join(logDir, `app${i}.log`), `app ${i} started\n`);

  const jail = async (): Promise<JailStatus | undefined> => {
    const status = await runCli(['status', '--json'], { env });
    assert.equal(status.code, 0, `status over the control socket: ${status.stderr}`);
    return (JSON.parse(status.stdout) as { jails: JailStatus[] }).jails[0];
  };
  await until('every file read', async () => ((await jail())?.lines ?? 0) >= FILES, 120_000, 1000);
  assert.equal((await jail())?.follower?.files.length, FILES + 1);

  await appendFile(path.join(logDir, 'app7.log'), dovecotFailure('203.0.113.77').repeat(3));
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables.fail2ban_blocklist ?? [];
  await until('the late failure banned', async () => (await alias()).includes('203.0.113.77'), 60_000);

  const offsets = path.join(dataDir, 'offsets', 'dovecot.json');
  await until(
    'the offsets of every file saved',
    async () => {
      const saved = await readFile(offsets, 'utf8').then(
        (text) => JSON.parse(text) as { files: unknown[] },
        () => null,
      );
      return (saved?.files.length ?? 0) >= FILES + 1;
    },
    60_000,
    500,
  );
  assert.ok(!daemon.stderr.some((l) => l.includes('EMFILE')), 'no descriptor exhaustion');
  assert.equal(await daemon.stop(), 0);
});
