// 1,100 idle connections to the TCP control listener once used up the daemon's descriptors: the
// control API died and offsets could no longer be saved. Here the daemon runs with 128
// descriptors (prlimit) and 400 connections that never send a byte are opened to its TCP listener:
// the unix socket still answers, a ban still lands, and the idle connections are closed, after
// which the TCP listener answers again.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { freePort } from '../helpers/free-port.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'limitsKey0123456789abcdef';
const SECRET = 'limitsSecret0123456789+/=';
const TOKEN = 'a-long-control-token-0123456789';
const IDLE = 400;

test("idle connections to the TCP control listener cannot use up the daemon's descriptors", { timeout: 180_000 }, async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const port = await freePort();
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_CONTROL_LISTEN: `127.0.0.1:${port}`,
    EDGEBAN_CONTROL_TOKEN: TOKEN,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    TZ: 'UTC',
  };
  const daemon = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  execFileSync('prlimit', ['--pid', String(daemon.pid), '--nofile=128:128']);

  const sockets: Socket[] = [];
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  let closedByDaemon = 0;
  for (let i = 0; i < IDLE; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closedByDaemon++;
    });
    sockets.push(socket);
  }
  await until('the idle connections made or refused', () => sockets.every((s) => !s.connecting), 30_000);

  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, `status over the unix socket: ${status.stderr}`);
  const ban = await runCli(['ban', '198.51.100.44'], { env });
  assert.equal(ban.code, 0, ban.stderr);
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables.fail2ban_blocklist ?? [];
  await until('the ban in the alias', async () => (await alias()).includes('198.51.100.44'), 30_000);

  await until('every idle connection closed by the daemon', () => closedByDaemon === IDLE, 60_000);
  const tcp = await runCli(['banned', '--tcp'], { env });
  assert.equal(tcp.code, 0, `the TCP listener answers again: ${tcp.stderr}`);
  assert.match(tcp.stdout, /198\.51\.100\.44/);
  assert.ok(
    daemon.stderr.some((l) => l.includes('too many connections')),
    'the refusals are logged',
  );
  assert.equal(await daemon.stop(), 0);
});
