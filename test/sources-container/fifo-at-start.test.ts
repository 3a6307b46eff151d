// A container log replaced by a FIFO while edgeban was down: with a saved offset, the logformat
// jail looked at the file at start-up by opening it, and that open blocked for ever (start-up and
// SIGTERM hung). Now the daemon comes up, names the file, and stops on SIGTERM.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailureBody } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { dockerRecord } from './wrap.ts';

const KEY = 'fifoKey0123456789abcdef';
const SECRET = 'fifoSecret0123456789+/=';

interface JailStatus {
  jail: string;
  lines: number;
  follower: { files: Array<{ path: string; error: string | null }> } | null;
}

test('logformat=docker: a FIFO at the log path at start-up (after a saved offset) is reported; start-up and SIGTERM do not hang', {
  timeout: 120_000,
}, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  const log = path.join(root, 'containers', 'c0ffee-json.log');
  await mkdir(configDir);
  await mkdir(path.dirname(log));
  await writeFile(log, `${dockerRecord(dovecotFailureBody('198.51.100.7'), { time: Date.now() / 1000 })}\n`);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogformat = docker\nlogpath = ${log}\n`);
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    TZ: 'UTC',
  };
  const jails = async (): Promise<JailStatus[]> => {
    const status = await runCli(['status', '--json'], { env });
    assert.equal(status.code, 0, status.stderr);
    return (JSON.parse(status.stdout) as { jails: JailStatus[] }).jails;
  };
  const first = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  await until('the record read', async () => (await jails())[0]?.lines === 1, 30_000);
  assert.equal(await first.stop(), 0);

  await unlink(log);
  execFileSync('mkfifo', [log]);
  const second = await startCliDaemon(t, env, { readyTimeoutMs: 30_000 });
  await until('the FIFO reported', async () => /not a regular file/.test((await jails())[0]?.follower?.files.find((f) => f.path === log)?.error ?? ''), 30_000);
  assert.ok(
    second.stderr.some((l) => l.includes(log) && l.includes('not a regular file')),
    'the log names the file',
  );
  assert.equal(await second.stop(5000), 0, 'SIGTERM stops it');
});
