// `edgeban reload` re-reads the .env file and the secret files (*_FILE), not only jail.local: a
// rotated API secret or a corrected .env applies without a restart.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { until } from '../helpers/until.ts';

const KEY = 'reloadEnvKey0123456789abcdef';
const SECRET = 'reloadEnvSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';

test('reload re-reads the secret file and the .env file: a wrong secret fixed in either applies without a restart', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${mailLog}\n`);
  const secretA = path.join(root, 'secret-a');
  const secretB = path.join(root, 'secret-b');
  await writeFile(secretA, 'not-the-secret-0123456789\n');
  await writeFile(secretB, 'also-not-the-secret-0123456789\n');
  const dotenv = (secretFile: string) =>
    writeFile(path.join(root, '.env'), `OPNSENSE_URL=${sim.url}\nOPNSENSE_KEY=${KEY}\nOPNSENSE_SECRET_FILE=${secretFile}\n`);
  await dotenv(secretA);
  // The CLI runs elsewhere: only the daemon reads this .env (from its working directory).
  const env = { EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, EDGEBAN_RECONCILE_INTERVAL: '2' };
  // Pretty lines: the secret check below covers the human format too.
  const daemon = await startCliDaemon(t, { TZ: 'UTC', EDGEBAN_LOG_FORMAT: 'pretty', ...env }, { cwd: root });
  const targetState = async () =>
    (JSON.parse((await runCli(['status', '--json'], { env, cwd: configDir })).stdout) as { targets: Array<{ state: string }> }).targets[0]?.state;
  await until('bad credentials: the target is degraded', async () => (await targetState()) === 'degraded');
  const ban = await runCli(['ban', '203.0.113.81'], { env, cwd: configDir });
  assert.equal(ban.code, 0, ban.stderr);

  // The secret file the .env names is fixed: reload reads it again.
  await writeFile(secretA, `${SECRET}\n`);
  const first = await runCli(['reload'], { env, cwd: configDir });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  await until(
    'the ban reaches the alias with the new secret',
    async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS]?.includes('203.0.113.81') ?? false,
  );
  assert.equal(await targetState(), 'in-sync');

  // The .env file now names another (wrong) secret file: reload reads the .env again.
  await dotenv(secretB);
  const second = await runCli(['reload'], { env, cwd: configDir });
  assert.equal(second.code, 0, second.stdout + second.stderr);
  await until('the .env change applies: degraded again', async () => (await targetState()) === 'degraded');

  // An unreadable secret file is a reload error; the running configuration stays.
  await dotenv(path.join(root, 'missing-secret'));
  const broken = await runCli(['reload'], { env, cwd: configDir });
  assert.equal(broken.code, 2);
  assert.match(broken.stdout, /reload failed, configuration unchanged: invalid environment:\n {2}OPNSENSE_SECRET_FILE: cannot read .*missing-secret/);
  for (const secret of [SECRET, 'not-the-secret-0123456789', 'also-not-the-secret-0123456789']) {
    assert.ok(
      daemon.stderr.every((line) => !line.includes(secret)),
      'a secret in the daemon log',
    );
  }
  assert.equal(await daemon.stop(), 0);
});
