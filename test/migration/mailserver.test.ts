import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
import { aliasContent, KEY, mountFixture, postfixSaslFailure, SECRET, statusJson } from './harness.ts';

test('a docker-mailserver jail.local (1w, maxretry 6, nftables-allports, postfix mode = extra, postfix-sasl, custom): postfix and postfix-sasl ban at the edge; custom is reported until its manual-ban filter exists', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const mounted = await mountFixture(t, 'mailserver');
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: mounted.dataDir,
    EDGEBAN_CONFIG_DIR: mounted.configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const daemon = await startCliDaemon(t, env);
  const log = daemon.stderr.join('\n');
  assert.match(
    log,
    /\[custom\] not running: [^"]*jail\.local:24: \[custom\] filter: filter \\"custom\\" not found .*an empty failregex makes a manual-ban jail/,
  );

  // Five failures: below maxretry = 6 from [DEFAULT]; the sixth bans (postfix in mode extra, and postfix-sasl).
  for (let i = 0; i < 5; i++) await appendFile(mounted.mailLog, postfixSaslFailure('203.0.113.66'));
  await until('five failures counted', async () => (await statusJson(env)).jails.find((j) => j.jail === 'postfix-sasl')?.['failures' as never] === 5);
  assert.deepEqual(await aliasContent(sim), []);
  await appendFile(mounted.mailLog, postfixSaslFailure('203.0.113.66'));
  await until('203.0.113.66 in the alias', async () => (await aliasContent(sim)).includes('203.0.113.66'));
  const banned = JSON.parse((await runCli(['banned', '--json'], { env })).stdout) as { banned: Array<{ jail: string; bannedAt: string; expiresAt: string }> };
  const byJail = banned.banned.map((b) => b.jail).sort();
  assert.deepEqual(byJail, ['postfix', 'postfix-sasl']);
  const week = (Date.parse(banned.banned[0]!.expiresAt) - Date.parse(banned.banned[0]!.bannedAt)) / 1000;
  // Counted from the failure's (whole-second) log stamp.
  assert.ok(Math.abs(week - 7 * 86400) < 2, `bantime = 1w, got ${week} s`);

  const status = await statusJson(env);
  const jails = Object.fromEntries(status.jails.map((j) => [j.jail, j]));
  assert.deepEqual(Object.keys(jails).sort(), ['custom', 'dovecot', 'postfix', 'postfix-sasl'], 'every enabled jail is listed');
  assert.equal(jails.custom?.running, false);
  assert.match(jails.custom?.reason ?? '', /filter "custom" not found/);
  for (const name of ['dovecot', 'postfix', 'postfix-sasl']) {
    assert.equal(jails[name]?.running, true, name);
    assert.deepEqual(
      jails[name]?.notes?.map((n) => [n.kind, n.subject]),
      [['substituted', 'nftables-allports']],
      name,
    );
  }
  const one = await runCli(['status', 'custom', '--json'], { env });
  assert.equal(one.code, 0, `status of an enabled jail that does not run answers: ${one.stderr}`);
  assert.equal((JSON.parse(one.stdout) as { jails: Array<{ running: boolean }> }).jails[0]?.running, false);
  const refused = await runCli(['ban', '198.51.100.23', '--jail', 'custom'], { env });
  assert.notEqual(refused.code, 0, 'a manual ban into a jail that does not run is refused');
  assert.match(
    refused.stderr + refused.stdout,
    /jail custom is enabled but not running: .*filter "custom" not found/,
    'naming why, not "no jail named custom"',
  );
  const health = await runCli(['health'], { env });
  assert.equal(health.code, 1, 'an enabled jail not running is unhealthy');
  assert.match(health.stdout, /unhealthy: jail custom is enabled but not running/);
  const doctor = await runCli(['doctor'], { env });
  assert.match(
    doctor.stdout,
    /^WARN {2}config\.jail_not_running +jail custom: enabled but not running: \S+jail\.local:24: \[custom\] filter: filter "custom" not found/m,
  );
  assert.match(doctor.stdout, /^WARN {2}config\.substituted +jail postfix: .*nftables-allports \(.*jail\.local:7\) replaced by an edge ban/m);

  // docker-mailserver's image has an empty custom filter: with it, custom is a manual-ban jail.
  await mkdir(path.join(mounted.configDir, 'filter.d'), { recursive: true });
  await writeFile(path.join(mounted.configDir, 'filter.d', 'custom.conf'), '[Definition]\nfailregex =\nignoreregex =\n');
  const reload = await runCli(['reload'], { env });
  assert.equal(reload.code, 0, reload.stdout);
  const custom = (await statusJson(env)).jails.find((j) => j.jail === 'custom');
  assert.deepEqual([custom?.running, custom?.manualOnly], [true, true]);
  const ban = await runCli(['ban', '198.51.100.23', '--jail', 'custom'], { env });
  assert.equal(ban.code, 0, ban.stderr);
  await until('the manual ban in the alias', async () => (await aliasContent(sim)).includes('198.51.100.23'));
  assert.equal((await runCli(['health'], { env })).code, 0);
  assert.equal(await daemon.stop(), 0);
});

test("postfix and dovecot modes: fail2ban's names map to the shipped modes; an unknown one names the modes at the user's line", async (t) => {
  const mounted = await mountFixture(t, 'mailserver');
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: 'http://127.0.0.1:9',
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: mounted.dataDir,
    EDGEBAN_CONFIG_DIR: mounted.configDir,
  };
  await writeFile(path.join(mounted.configDir, 'jail.local'), `[postfix]\nenabled = true\nlogpath = ${mounted.mailLog}\nmode = bogus\n`);
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /jail\.local:4: mode: postfix has no mode bogus; modes: auth, more, extra, normal, rbl, errors, ddos, aggressive/);
});
