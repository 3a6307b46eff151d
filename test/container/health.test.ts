// `edgeban health`, the image's HEALTHCHECK, against real daemons and sockets.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { EDGEBAN, runCli, startCliSimulator } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const KEY = 'healthTestKey0123456789abcdef';
const SECRET = 'healthTestSecret0123456789abcd+/=';

test('edgeban health: healthy while the target is in sync; a target degraded by a refused key is unhealthy, except for --live; nothing running is unhealthy', {
  timeout: 240_000,
}, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  await mkdir(configDir);
  const mailLog = path.join(root, 'mail.log');
  await writeFile(mailLog, '');
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const env = (secret: string, dataDir: string) => ({
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: secret,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  });

  const none = await runCli(['health'], { env: { EDGEBAN_DATA_DIR: path.join(root, 'nothing-here') } });
  assert.equal(none.code, 1);
  assert.match(none.stdout, /^unhealthy: edgeban is not running \(nothing answers on .*nothing-here\/edgeban\.sock\)\n$/);

  for (const [secret, expected] of [
    [SECRET, 'in-sync'],
    ['wrongSecret0123456789abcdefghij', 'degraded'],
  ] as const) {
    const dataDir = path.join(root, `data-${expected}`);
    const daemon = spawn(process.execPath, [EDGEBAN, 'run'], {
      env: { PATH: process.env.PATH ?? '', ...env(secret, dataDir) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    t.after(() => {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    });
    const log: string[] = [];
    createInterface({ input: daemon.stderr }).on('line', (line) => log.push(line));
    await until(
      `the target ${expected}`,
      async () => {
        if (daemon.exitCode !== null) throw new Error(`the daemon exited: ${log.join('\n')}`);
        const status = await runCli(['status', '--json'], { env: env(secret, dataDir) });
        return status.stdout !== '' && (JSON.parse(status.stdout) as { targets: Array<{ state: string }> }).targets[0]?.state === expected;
      },
      60_000,
    );
    const health = await runCli(['health'], { env: env(secret, dataDir) });
    const live = await runCli(['health', '--live'], { env: env(secret, dataDir) });
    if (expected === 'in-sync') {
      assert.equal(health.code, 0, health.stdout + health.stderr);
      assert.match(health.stdout, /^healthy: daemon answers; target http:\/\/127\.0\.0\.1:\d+ fail2ban_blocklist: in-sync; 0 active bans\n$/);
    } else {
      assert.equal(health.code, 1, health.stdout + health.stderr);
      assert.match(health.stdout, /^unhealthy: target http:\/\/127\.0\.0\.1:\d+ fail2ban_blocklist: degraded, bans do not reach it: .+\n$/);
      assert.ok(!health.stdout.includes('wrongSecret'), 'the secret stays out of the health line');
      assert.equal(live.code, 0, `--live only asks whether the daemon answers: ${live.stdout}`);
      assert.match(live.stdout, /^healthy: daemon answers; target [^;]+: degraded; 0 active bans\n$/);
    }
    daemon.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});

test("edgeban health: a daemon that accepts but never answers is unhealthy within --timeout, not after the control client's 30 s", {
  timeout: 120_000,
}, async (t) => {
  const root = await tempDir(t);
  const socketPath = path.join(root, 'edgeban.sock');
  const held: Socket[] = [];
  const server = createServer((socket) => {
    held.push(socket);
  }); // reads the request, never replies
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of held) s.destroy();
        server.close(() => resolve());
      }),
  );

  const started = Date.now();
  const hung = await runCli(['health', '--timeout', '2'], { env: { EDGEBAN_DATA_DIR: root }, timeoutMs: 25_000 });
  assert.equal(hung.code, 1, hung.stdout + hung.stderr);
  assert.match(hung.stdout, /^unhealthy: the daemon did not answer on .*edgeban\.sock within 2 s\n$/);
  assert.ok(held.length >= 1, 'the check did reach the socket');
  // Bounded only loosely (a noisy machine), but well below the control client's 30 s request timeout.
  assert.ok(Date.now() - started < 25_000);

  const bad = await runCli(['health', '--timeout', 'soon'], { env: { EDGEBAN_DATA_DIR: root } });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timeout: expected seconds/);
});
