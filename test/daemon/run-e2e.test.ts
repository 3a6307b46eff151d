import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const KEY = 'runTestKey0123456789abcdef';
const SECRET = 'runTestSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

test('edgeban run: failures cross maxretry -> in the alias; the ban ends -> out; ignored and private never sent; CLI control; SIGTERM leaves the alias alone', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  const dataDir = path.join(root, 'data');
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[DEFAULT]',
      'ignoreip = 127.0.0.1/8 ::1 198.51.100.77',
      '',
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 4',
      '',
    ].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });

  for (const address of ['192.0.2.50', '198.51.100.77', '10.1.2.3']) {
    for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure(address));
  }
  await until('192.0.2.50 in the alias', async () => (await alias()).includes('192.0.2.50'));
  await until('the 4 s ban to end', async () => !(await alias()).includes('192.0.2.50'));
  const calls = (await sim.admin('calls')) as Array<{ path: string; requestBody: string }>;
  const sent = calls.filter((c) => /alias_util\/(add|delete)/.test(c.path)).map((c) => JSON.parse(c.requestBody).address as string);
  assert.ok(!sent.includes('198.51.100.77'), 'an ignoreip address was sent');
  assert.ok(!sent.includes('10.1.2.3'), 'a private address was sent');

  const ban = await runCli(['ban', '203.0.113.9', '--bantime', '1h'], { env });
  assert.equal(ban.code, 0, ban.stderr);
  await until('manual ban in the alias', async () => (await alias()).includes('203.0.113.9'));
  const status = await runCli(['status', 'dovecot', '--json'], { env });
  assert.equal(status.code, 0, status.stderr);
  const jails = (JSON.parse(status.stdout) as { jails: Array<{ jail: string; bans: number; ignored: Record<string, number> }> }).jails;
  assert.equal(jails[0]?.jail, 'dovecot');
  assert.equal(jails[0]?.bans, 1);
  assert.equal(jails[0]?.ignored.ignoreip, 3);
  assert.equal(jails[0]?.ignored.private, 3);

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
  assert.deepEqual(await alias(), ['203.0.113.9'], 'stopping unbans nothing');
  assert.ok(
    daemon.stderr.every((line) => !line.includes(SECRET)),
    'secret in the daemon log',
  );
});

test('edgeban run: the gateway is never banned; rotation mid-attack loses no failure; SIGKILL and restart keep the ban and its expiry; CLI unban', async (t) => {
  const { parseIpv4Routes } = await import('../../src/jails/network-facts.ts');
  const { readFile, rename } = await import('node:fs/promises');
  const gateway = parseIpv4Routes(await readFile('/proc/net/route', 'utf8').catch(() => ''))[0] ?? null;
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = 4\nfindtime = 10m\nbantime = 1h\n`);
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const first = await startCliDaemon(t, { TZ: 'UTC', ...env });

  if (gateway) for (let i = 0; i < 6; i++) await appendFile(mailLog, dovecotFailure(gateway));
  // Two failures, logrotate renames the file and the writer reopens a new one, two more: exactly four.
  await appendFile(mailLog, dovecotFailure('198.51.100.60'));
  await appendFile(mailLog, dovecotFailure('198.51.100.60'));
  await rename(mailLog, `${mailLog}.1`);
  await writeFile(mailLog, '');
  await appendFile(mailLog, dovecotFailure('198.51.100.60'));
  await until('three failures counted', async () => {
    const s = await runCli(['status', 'dovecot', '--json'], { env });
    return s.code === 0 && (JSON.parse(s.stdout) as { jails: Array<{ failures: number }> }).jails[0]?.failures === 3;
  });
  assert.deepEqual(await alias(), [], 'three of four failures: no ban yet');
  await appendFile(mailLog, dovecotFailure('198.51.100.60'));
  await until('198.51.100.60 in the alias', async () => (await alias()).includes('198.51.100.60'));

  const before = JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ address: string; expiresAt: string }> };
  const { stat } = await import('node:fs/promises');
  const offsetsFile = path.join(root, 'data', 'offsets', 'dovecot.json');
  const size = (await stat(mailLog)).size;
  const persistedOffset = async () => {
    const text = await readFile(offsetsFile, 'utf8').catch(() => '{"files":[]}');
    return (JSON.parse(text) as { files: Array<{ path: string; role: string; offset: number }> }).files.find((f) => f.path === mailLog && f.role === 'current')
      ?.offset;
  };
  await until('offsets persisted', async () => (await persistedOffset()) === size, 5000);
  first.child.kill('SIGKILL');
  await first.exited;
  await sim.admin('reboot'); // and the firewall lost its tables meanwhile
  const second = await startCliDaemon(t, { TZ: 'UTC', ...env });
  await until('restored after restart', async () => (await alias()).includes('198.51.100.60'));
  const after = JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ address: string; expiresAt: string }> };
  assert.deepEqual(
    after.banned.map((b) => [b.address, b.expiresAt]),
    before.banned.map((b) => [b.address, b.expiresAt]),
    'original expiry kept',
  );
  const status = JSON.parse((await runCli(['status', 'dovecot', '--json'], { env })).stdout) as { jails: Array<{ lines: number }> };
  assert.equal(status.jails[0]?.lines ?? 0, 0, 'no line read twice after the restart');

  const unban = await runCli(['unban', '198.51.100.60'], { env });
  assert.equal(unban.code, 0, unban.stderr);
  await until('unbanned', async () => !(await alias()).includes('198.51.100.60'));
  if (gateway) {
    const calls = (await sim.admin('calls')) as Array<{ path: string; requestBody: string }>;
    assert.ok(!calls.some((c) => c.path.includes('/add/') && c.requestBody.includes(`"${gateway}"`)), 'the gateway was sent');
  }
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});

test('edgeban reload: a broken configuration is refused and the running one stays; a good one applies and keeps counters', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  await mkdir(configDir);
  const mailLog = path.join(root, 'mail.log');
  await writeFile(mailLog, '');
  const jailLocal = path.join(configDir, 'jail.local');
  const jail = (maxretry: string) => `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = ${maxretry}\nbantime = 1h\n`;
  await writeFile(jailLocal, jail('10'));
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const failures = async () =>
    (JSON.parse((await runCli(['status', 'dovecot', '--json'], { env })).stdout) as { jails: Array<{ failures: number }> }).jails[0]?.failures;
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('203.0.113.77'));
  await until('three failures counted', async () => (await failures()) === 3);

  await writeFile(jailLocal, jail('many'));
  const refused = await runCli(['reload'], { env });
  assert.equal(refused.code, 2);
  assert.match(refused.stdout, /reload failed, configuration unchanged: .*jail\.local:4: \[dovecot\] maxretry/);
  assert.equal(await failures(), 3, 'still running on the old configuration');

  await writeFile(jailLocal, jail('4'));
  const applied = await runCli(['reload'], { env });
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  await appendFile(mailLog, dovecotFailure('203.0.113.77'));
  await until('the fourth failure bans: the first three were kept', async () => (await alias()).includes('203.0.113.77'));
  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
});
