// A backend added through the registry alone runs end to end: a jail's mikrotik[…] action, the
// daemon as a process, the RouterOS simulator as a process; a log failure reaches the router's list.
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const PASSWORD = 'registry-password-0123';
const LIST = 'edgeban';

test('a jail banning through mikrotik[…] (a registry backend): the ban reaches the router; status and reconcile (beside the daemon and without it) name the kind and the list; the password is in no log', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--list', LIST]);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      `banaction = mikrotik[url="${sim.url}", user=edgeban, list=${LIST}]`,
      '',
    ].join('\n'),
  );
  // The password from the env default, as a user would keep it out of jail.local. The default
  // reconcile interval: a periodic pass while status is read would show `syncing`.
  const env = { MIKROTIK_PASSWORD: PASSWORD, EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  const listed = async () =>
    ((await sim.admin('state')) as { ip: Array<{ list: string; address: string }> }).ip.filter((r) => r.list === LIST).map((r) => r.address);

  for (let i = 0; i < 3; i++) await appendFile(mailLog, dovecotFailure('192.0.2.60'));
  await until("the jail's ban in the router's address list", async () => (await listed()).includes('192.0.2.60'));
  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, status.stdout + status.stderr);
  const targets = (JSON.parse(status.stdout) as { targets: Array<{ id: string; kind: string; ledgerTarget: string; state: string }> }).targets;
  assert.deepEqual(
    targets.map((x) => [x.kind, x.ledgerTarget]),
    [['mikrotik', `mikrotik:${sim.url} ${LIST}`]],
  );
  await until(
    'the target in sync',
    async () => (JSON.parse((await runCli(['status', '--json'], { env })).stdout) as { targets: Array<{ state: string }> }).targets[0]?.state === 'in-sync',
  );
  const human = await runCli(['status'], { env });
  assert.match(human.stdout, new RegExp(`^target mikrotik ${sim.url} ${LIST}: in-sync; 1 in the list, 0 pending`, 'm'));
  // Beside the daemon, reconcile asks it: the plan names the kind and the list.
  const dry = await runCli(['reconcile', '--dry-run'], { env });
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, new RegExp(`^mikrotik ${sim.url} ${LIST}: 1 in the list, 1 banned in the ledger\\n\\s+nothing to add or remove`, 'm'));
  assert.equal(await daemon.stop(), 0);
  assert.ok(![...daemon.stdout, ...daemon.stderr].some((line) => line.includes(PASSWORD)), 'the password is never logged');

  // Without the daemon, reconcile builds the target itself: a router reboot dropped the (dynamic) entry; it comes back.
  await sim.admin('reboot', {});
  assert.deepEqual(await listed(), []);
  const offline = await runCli(['reconcile'], { env });
  assert.equal(offline.code, 0, offline.stdout + offline.stderr);
  assert.match(
    offline.stdout,
    new RegExp(`^mikrotik ${sim.url} ${LIST}: 0 in the list, 1 banned in the ledger\\n\\s+add: 1\\n\\s+192\\.0\\.2\\.60\\n\\s+converged`, 'm'),
  );
  assert.deepEqual(await listed(), ['192.0.2.60']);
  assert.ok(!(human.stdout + dry.stdout + offline.stdout + offline.stderr).includes(PASSWORD), 'the password is never printed');
});

test('reconcile --dry-run needs no write access: a read-only RouterOS user gets the plan; the real pass is refused and says so', async (t) => {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'reader', '--password', PASSWORD, '--list', LIST, '--policies', 'read,api,rest-api']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      `banaction = mikrotik[url="${sim.url}", user=reader, list=${LIST}]`,
      '',
    ].join('\n'),
  );
  const env = { MIKROTIK_PASSWORD: PASSWORD, EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, TZ: 'UTC' };
  const ban = await runCli(['ban', '192.0.2.70', '--jail', 'dovecot', '--bantime', '1h'], { env });
  assert.equal(ban.code, 0, ban.stdout + ban.stderr);
  const dry = await runCli(['reconcile', '--dry-run'], { env });
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, new RegExp(`^mikrotik ${sim.url} ${LIST}: 0 in the list, 1 banned in the ledger\\n\\s+would add: 1\\n\\s+192\\.0\\.2\\.70`, 'm'));
  const calls = (await sim.admin('state')) as { ip: unknown[]; calls: Array<{ method: string }> };
  assert.deepEqual(calls.ip, [], 'a dry run changes nothing');
  assert.deepEqual([...new Set(calls.calls.map((c) => c.method))], ['GET'], 'a dry run only reads');
  const real = await runCli(['reconcile'], { env });
  assert.equal(real.code, 1, real.stdout + real.stderr);
  assert.match(real.stdout, /FAILED: .*write/i);
});

test('a cloudflare[…] target through the CLI: reconcile --dry-run, then reconcile, name the kind and the list; the item reaches the list; the token is never printed', async (t) => {
  const account = '0123456789abcdef0123456789abcdef';
  const token = 'registry-cloudflare-token-0123456789';
  const sim = await startCliSimulator(t, [
    '--kind',
    'cloudflare',
    '--account',
    account,
    '--list',
    'edgeban_blocklist',
    '--token',
    token,
    '--operation-delay-ms',
    '0',
  ]);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      `banaction = cloudflare[account=${account}, list=edgeban_blocklist, api="${sim.url}"]`,
      '',
    ].join('\n'),
  );
  const env = { CLOUDFLARE_API_TOKEN: token, EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, TZ: 'UTC' };
  assert.equal((await runCli(['ban', '203.0.113.70', '--jail', 'dovecot', '--bantime', '1h'], { env })).code, 0);
  const label = `cloudflare ${account}/edgeban_blocklist`;
  const dry = await runCli(['reconcile', '--dry-run'], { env });
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, new RegExp(`^${label}: 0 in the list, 1 banned in the ledger\\n\\s+would add: 1\\n\\s+203\\.0\\.113\\.70`, 'm'));
  const real = await runCli(['reconcile'], { env });
  assert.equal(real.code, 0, real.stdout + real.stderr);
  assert.match(real.stdout, new RegExp(`^${label}: 0 in the list, 1 banned in the ledger\\n\\s+add: 1\\n\\s+203\\.0\\.113\\.70\\n\\s+converged`, 'm'));
  const again = await runCli(['reconcile', '--dry-run'], { env });
  assert.match(again.stdout, new RegExp(`^${label}: 1 in the list, 1 banned in the ledger\\n\\s+nothing to add or remove`, 'm'));
  assert.ok(!(dry.stdout + dry.stderr + real.stdout + real.stderr).includes(token), 'the token is never printed');
});
