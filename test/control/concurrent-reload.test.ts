// Reloads requested close together (SIGHUPs and `edgeban reload` at once) run one at a time and
// leave one log pipeline per jail: a failure is counted once, so addresses with maxretry-1
// failures are not banned, and the daemon stays up (two followers of one jail once collided on
// their offsets file and killed it).
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'reloadKey0123456789abcdef';
const SECRET = 'reloadSecret0123456789+/=';
const ADDRESSES = 100;

/** POST /reload on the control socket: many of these reach the daemon within a millisecond. */
function reloadOverSocket(socketPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: '/reload' }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (chunk: string) => {
          body += chunk;
        })
        .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

interface JailStatus {
  jail: string;
  failures: number;
  bans: number;
}

test('several reloads at once: one pipeline per jail, failures counted once, nobody banned below maxretry, daemon alive', { timeout: 180_000 }, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  const dataDir = path.join(root, 'data');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 3\nfindtime = 1h\nbantime = 1h\n`);
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

  // Signals of one kind do not queue: at least one of these is received.
  for (let i = 0; i < 3; i++) process.kill(daemon.pid, 'SIGHUP');
  await until('a SIGHUP received', () => daemon.stderr.some((l) => l.includes('reloading the configuration')), 20_000);
  const socketPath = path.join(dataDir, 'edgeban.sock');
  const reloads = await Promise.all(Array.from({ length: 8 }, () => reloadOverSocket(socketPath)));
  for (const r of reloads) assert.equal(r.status, 200, r.body);

  // maxretry - 1 failures per address, while reloads may still be running.
  process.kill(daemon.pid, 'SIGHUP');
  let text = '';
  for (let i = 0; i < ADDRESSES; i++) text += dovecotFailure(`198.51.100.${i + 1}`).repeat(2);
  await appendFile(mailLog, text);
  process.kill(daemon.pid, 'SIGHUP');
  const more = await Promise.all(Array.from({ length: 4 }, () => reloadOverSocket(socketPath)));
  for (const r of more) assert.equal(r.status, 200, r.body);

  const jails = async (): Promise<JailStatus[]> => {
    const status = await runCli(['status', '--json'], { env });
    assert.equal(status.code, 0, status.stderr);
    return (JSON.parse(status.stdout) as { jails: JailStatus[] }).jails;
  };
  await until('every failure counted', async () => (await jails()).reduce((n, j) => n + j.failures, 0) >= 2 * ADDRESSES, 60_000);
  const status = await jails();
  assert.deepEqual(
    status.map((j) => j.jail),
    ['dovecot'],
    'one pipeline per jail',
  );
  assert.equal(status[0]?.failures, 2 * ADDRESSES, 'each failure counted once');
  assert.equal(status[0]?.bans, 0);
  const banned = await runCli(['banned', '--json'], { env });
  assert.deepEqual((JSON.parse(banned.stdout) as { banned: unknown[] }).banned, []);
  assert.equal(daemon.child.exitCode, null, `the daemon is alive:\n${daemon.stderr.join('\n')}`);
  assert.equal(await daemon.stop(), 0);
});
