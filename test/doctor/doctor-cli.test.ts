import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, chmod, mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { EDGEBAN } from '../helpers/cli.ts';
import { ALIAS, KEY, SECRET, doctorSetup, freshFailures, linesWith } from './helpers.ts';

const publicAddress = (i: number) => `198.51.100.${10 + (i % 5)}`;

interface JsonReport {
  worst: string;
  exitCode: number;
  checks: Array<{ id: string; scope: string; status: string; message: string; fix?: string }>;
}

test('all pass: reachable, credentials, privileges, External alias, headroom, fresh log in UTC; --json agrees; no secret printed', async (t) => {
  const s = await doctorSetup(t, [], freshFailures(5, publicAddress));
  const result = await s.run();
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(linesWith(result.stdout, 'FAIL'), []);
  assert.deepEqual(linesWith(result.stdout, 'WARN'), []);
  for (const id of [
    'opnsense.reachable',
    'opnsense.credentials',
    'privilege.alias_util',
    'privilege.kill_states',
    'alias.exists',
    'alias.type',
    'opnsense.table_entries',
    'log.readable',
    'log.fresh',
    'log.timestamps',
    'log.proxy',
  ]) {
    assert.match(result.stdout, new RegExp(`^PASS  ${id.replace('.', '\\.')} `, 'm'), `${id} passes`);
  }
  assert.match(result.stdout, /^SKIP {2}opnsense\.block_rule/m, 'the daemon key cannot read rules: skipped, not failed');
  assert.match(result.stdout, /0 failed, 0 warning\(s\)/);
  const json = await s.run(['--json']);
  assert.equal(json.code, 0);
  const report = JSON.parse(json.stdout) as JsonReport;
  assert.equal(report.worst, 'pass');
  assert.ok(report.checks.length >= 12);
  const everything = result.stdout + result.stderr + json.stdout + json.stderr;
  assert.ok(!everything.includes(SECRET) && !everything.includes(KEY), 'credentials never printed');
});

test('a Host-type alias: loud warning about config.xml rewrites and backup revisions, exit 1', async (t) => {
  const s = await doctorSetup(t, ['--alias', `${ALIAS}:host`], freshFailures(5, publicAddress));
  const result = await s.run();
  assert.equal(result.code, 1, result.stdout);
  const [warning, ...others] = linesWith(result.stdout, 'WARN');
  assert.deepEqual(others, []);
  assert.match(
    warning ?? '',
    /alias\.type .*Host\(s\), not External: EVERY ban and unban rewrites config\.xml and adds a backup revision \(opnsense\/plugins#3397\)/,
  );
  assert.match(warning ?? '', /fix: recreate the alias as "External \(advanced\)"/);
  assert.deepEqual(linesWith(result.stdout, 'FAIL'), []);
});

test('a missing alias fails (exit 2) and says how to create it', async (t) => {
  const s = await doctorSetup(t, ['--alias', 'someone_elses'], freshFailures(5, publicAddress));
  const result = await s.run();
  assert.equal(result.code, 2, result.stdout);
  const fails = linesWith(result.stdout, 'FAIL');
  assert.equal(fails.length, 1, result.stdout);
  assert.match(
    fails[0]!,
    /alias\.exists .*alias fail2ban_blocklist: no alias of that name.*fix: create it in Firewall ▸ Aliases .*External \(advanced\).*edgeban setup-opnsense/,
  );
});

test('a key lacking privileges: alias_util 403 fails with the privilege to add; kill_states 403 only warns', async (t) => {
  const noTables = await doctorSetup(t, ['--privileges', 'page-firewall-aliases,page-diagnostics-showstates'], freshFailures(5, publicAddress));
  const result = await noTables.run();
  assert.equal(result.code, 2, result.stdout);
  assert.match(result.stdout, /^FAIL {2}privilege\.alias_util .*HTTP 403.*fix: .*"Diagnostics: PF Table IP addresses" \(page-diagnostics-tables\)/m);
  assert.match(result.stdout, /^PASS {2}opnsense\.credentials/m, 'a 403 proves the credentials are fine');

  const noStates = await doctorSetup(t, ['--privileges', 'page-diagnostics-tables,page-firewall-aliases'], freshFailures(5, publicAddress));
  const partial = await noStates.run(['--json']);
  assert.equal(partial.code, 1, partial.stdout);
  const report = JSON.parse(partial.stdout) as JsonReport;
  const warned = report.checks.filter((c) => c.status === 'warn');
  assert.deepEqual(
    warned.map((c) => c.id),
    ['privilege.kill_states'],
  );
  assert.match(warned[0]!.fix ?? '', /Diagnostics: Show States.*EDGEBAN_KILL_STATES=0/);
});

test('table-entries near the limit warns with the setting to raise', async (t) => {
  const s = await doctorSetup(t, ['--table-entries', '100'], freshFailures(5, publicAddress));
  const entries = Array.from({ length: 90 }, (_, i) => `203.0.113.${i + 1}`);
  await s.admin('seed', { table: ALIAS, entries });
  const result = await s.run();
  assert.equal(result.code, 1, result.stdout);
  assert.match(result.stdout, /^WARN {2}opnsense\.table_entries .*90 of 100 table entries in use \(90\.0%.*fix: raise Firewall ▸ Settings ▸ Advanced/m);
  await s.admin('seed', { table: 'bogons', entries: Array.from({ length: 10 }, (_, i) => `198.51.100.${i + 1}`) });
  const full = await s.run();
  assert.equal(full.code, 2);
  assert.match(full.stdout, /^FAIL {2}opnsense\.table_entries .*the limit is reached, pf silently drops new bans/m);
});

test('an unreadable log: a directory as logpath fails', async (t) => {
  const s = await doctorSetup(t, [], freshFailures(5, publicAddress));
  const dir = path.join(s.root, 'logs', 'mail.d');
  await mkdir(dir);
  await writeFile(path.join(s.env.EDGEBAN_CONFIG_DIR!, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${dir}\n`);
  const result = await s.run();
  assert.equal(result.code, 2, result.stdout);
  assert.match(
    result.stdout,
    new RegExp(`^FAIL  log\\.readable .*${dir}: is a directory, not a log file.*fix: point logpath at the files inside it, e\\.g\\. ${dir}/\\*\\.log`, 'm'),
  );
});

test('an unreadable log: chmod 000, doctor run as uid 65534 with setpriv, fails with EACCES', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test switches to uid 65534 with setpriv: run the suite as root (CI does)');
  const s = await doctorSetup(t, [], freshFailures(5, publicAddress));
  await chmod(s.mailLog, 0o000);
  // As nobody, with no capability (root would read it anyway: CAP_DAC_OVERRIDE).
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      'setpriv',
      [
        '--reuid',
        '65534',
        '--regid',
        '65534',
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--no-new-privs',
        process.execPath,
        EDGEBAN,
        'doctor',
      ],
      { env: { PATH: process.env.PATH ?? '', ...s.env, HOME: '/tmp' }, cwd: s.root, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(result.stdout, /^FAIL {2}log\.readable .*mail\.log: cannot be read \(EACCES\) by uid 65534 — fix: give edgeban's user read access/m);
  assert.match(result.stdout, /^PASS {2}opnsense\.credentials/m, 'the rest still ran');
});

test('a stale log warns with its age', async (t) => {
  const threeDaysAgo = Date.now() - 3 * 86_400_000;
  const s = await doctorSetup(t, [], freshFailures(5, publicAddress, threeDaysAgo));
  await utimes(s.mailLog, threeDaysAgo / 1000, threeDaysAgo / 1000);
  const result = await s.run();
  assert.equal(result.code, 1, result.stdout);
  assert.deepEqual(
    linesWith(result.stdout, 'WARN').map((l) => l.split(/\s+/)[1]),
    ['log.fresh'],
  );
  assert.match(result.stdout, /^WARN {2}log\.fresh .*last written 3 days ago — fix: check that the service still logs to this file/m);
  assert.match(result.stdout, /^PASS {2}log\.timestamps/m, 'old but consistent stamps are no time-zone mistake');
});

test('time stamps whole hours off the file time: a time-zone mistake, with the logtimezone to set', async (t) => {
  const twoHoursAgo = Date.now() - 2 * 3_600_000;
  const s = await doctorSetup(t, [], freshFailures(5, publicAddress, twoHoursAgo));
  const result = await s.run();
  assert.equal(result.code, 1, result.stdout);
  assert.match(
    result.stdout,
    /^WARN {2}log\.timestamps .*time stamps are 2 hour\(s\) behind the file's last write: a time-zone mistake.*ignored, so this jail bans nothing — fix: set `logtimezone = UTC-0200`/m,
  );

  const ahead = await doctorSetup(t, [], freshFailures(5, publicAddress, Date.now() + 3 * 3_600_000 + 20_000));
  const aheadResult = await ahead.run();
  assert.equal(aheadResult.code, 1, aheadResult.stdout);
  assert.match(aheadResult.stdout, /^WARN {2}log\.timestamps .*3 hour\(s\) ahead of the file's last write.*logtimezone = UTC\+0300/m);
});

test('failures dominated by one private address: the proxy warning', async (t) => {
  const lines = freshFailures(25, (i) => (i % 5 === 0 ? publicAddress(i) : '10.0.0.5'));
  const s = await doctorSetup(t, [], lines);
  const result = await s.run();
  assert.equal(result.code, 1, result.stdout);
  assert.match(result.stdout, /^WARN {2}log\.proxy .*jail dovecot: 80% of 20 recent failures come from 10\.0\.0\.5, a private address.*fix: .*PROXY protocol/m);
});

test('a container log (logformat = cri): time stamps and failures are read from the lines the program wrote', async (t) => {
  const twoHoursAgo = Date.now() - 2 * 3_600_000;
  const plainLines = freshFailures(5, publicAddress, twoHoursAgo)
    .split('\n')
    .filter((l) => l !== '');
  const cri = plainLines.map((l) => `${new Date().toISOString()} stdout F ${l}\n`).join('');
  const s = await doctorSetup(t, [], cri);
  await appendFile(path.join(s.root, 'config', 'jail.local'), 'logformat = cri\n');
  const result = await s.run();
  // Unwrapped, the dovecot stamps are found and are 2 hours behind: without unwrapping no stamp would be recognised.
  assert.match(result.stdout, /^WARN {2}log\.timestamps .*2 hour\(s\) behind/m, result.stdout);
});

test("doctor checks the targets the daemon enforces: a jail naming the environment's firewall is checked once; an unused OPNSENSE_ALIAS is not", async (t) => {
  const s = await doctorSetup(t, ['--alias', 'mail_block'], freshFailures(5, publicAddress));
  const url = s.env.OPNSENSE_URL!;
  await writeFile(
    path.join(s.env.EDGEBAN_CONFIG_DIR!, 'jail.local'),
    `[dovecot]\nenabled = true\nlogpath = ${s.mailLog}\nbanaction = opnsense[firewall="${url}/", alias="mail_block"]\n`,
  );
  const result = await s.run(['--json']);
  const report = JSON.parse(result.stdout) as JsonReport;
  const aliasChecks = report.checks.filter((c) => c.id === 'alias.exists');
  assert.deepEqual(
    aliasChecks.map((c) => [c.status, /alias (\w+)/.exec(c.scope)?.[1]]),
    [['pass', 'mail_block']],
    result.stdout,
  );
  assert.equal(report.checks.filter((c) => c.id === 'opnsense.reachable').length, 1, 'one firewall, checked once');
  assert.equal(result.code, 0, result.stdout);
});
