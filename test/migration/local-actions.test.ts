import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { until } from '../helpers/until.ts';
import { aliasContent, apacheDenied, KEY, mountFixture, SECRET, statusJson } from './harness.ts';

test('PR #2761 opnsense-alias (oskey, ossecret, osaddress, osalias) runs as the native opnsense action into its own alias', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0', '--alias', 'fail2ban_blocklist', '--alias', 'f2b_edge']);
  const mounted = await mountFixture(t, 'pr2761', { FIREWALL: sim.url });
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
  assert.match(
    daemon.stderr.join('\n'),
    /opnsense-alias\.conf: run as edgeban's native opnsense action \(parameters osaddress → firewall, oskey → key, ossecret → secret, osalias → alias\); its shell commands are not run/,
  );
  for (let i = 0; i < 3; i++) await appendFile(mounted.mailLog, dovecotFailure('198.51.100.61'));
  await until('198.51.100.61 in f2b_edge', async () => (await aliasContent(sim, 'f2b_edge')).includes('198.51.100.61'));
  assert.deepEqual(await aliasContent(sim, 'fail2ban_blocklist'), [], 'the osalias was ignored');
  const doctor = await runCli(['doctor'], { env });
  assert.match(doctor.stdout, /^PASS {2}config\.action .*opnsense-alias\.conf: run as edgeban's native opnsense action/m);
  assert.ok(!doctor.stdout.includes(SECRET));
  assert.equal(await daemon.stop(), 0);
});

test('the httpd-forbidden jail (banaction and action iptables-multiport[name=apache, port="http,https"]) bans at the edge; status and doctor say what replaced it; localactions = skip and error', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const mounted = await mountFixture(t, 'httpd-forbidden');
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
  const warnings = daemon.stderr.filter((l) => l.includes('local firewall action'));
  assert.equal(warnings.length, 1, `one warning per jail:\n${warnings.join('\n')}`);
  assert.match(warnings[0] ?? '', /\[httpd-forbidden\] local firewall action iptables-multiport \(.*jail\.local:8\) replaced by an edge ban/);

  for (let i = 0; i < 3; i++) await appendFile(mounted.webLog, apacheDenied('192.0.2.88'));
  await until('192.0.2.88 in the alias', async () => (await aliasContent(sim)).includes('192.0.2.88'));
  const jail = (await statusJson(env)).jails.find((j) => j.jail === 'httpd-forbidden');
  assert.equal(jail?.running, true);
  assert.deepEqual(
    jail?.notes?.map((n) => [n.kind, n.subject]),
    [['substituted', 'iptables-multiport']],
  );
  const doctor = await runCli(['doctor'], { env });
  assert.match(
    doctor.stdout,
    /^WARN {2}config\.substituted +jail httpd-forbidden: .*iptables-multiport .*replaced by an edge ban.* — fix: set banaction = opnsense/m,
  );
  assert.equal(doctor.code, 1, doctor.stdout);
  assert.equal(await daemon.stop(), 0);

  // localactions = skip: the jail does not run, and with it none does: exit 2, naming the jail and why.
  const skip = await runCli(['run'], { env: { ...env, EDGEBAN_LOCAL_ACTIONS: 'skip' } });
  assert.equal(skip.code, 2, skip.stderr);
  assert.match(skip.stderr, /\[httpd-forbidden\] not running: local firewall action iptables-multiport \(.*jail\.local:8\) and localactions = skip/);
  const error = await runCli(['run'], { env: { ...env, EDGEBAN_LOCAL_ACTIONS: 'error' } });
  assert.equal(error.code, 2, error.stderr);
  assert.match(error.stderr, /jail\.local:8: action: jail httpd-forbidden uses the local firewall action iptables-multiport/);
});
