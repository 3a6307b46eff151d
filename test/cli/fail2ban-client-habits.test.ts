// fail2ban-client habits on the real CLI as a process: --help on every command, version, the
// human status views, `banned IP`, `unban IP…`, `reload JAIL`, a log line for every ban and unban,
// EDGEBAN_LOG_FORMAT, and output written in full when stdout is a pipe.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { EDGEBAN, REPO, runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailure } from '../helpers/log-lines.ts';
import { mailSetup } from '../helpers/mail-setup.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const KEY = 'habitsTestKey0123456789abcdef';
const SECRET = 'habitsTestSecret0123456789abcdef+/=';
const ALIAS = 'fail2ban_blocklist';
const SHIM = path.join(REPO, 'bin/fail2ban-client.js');

function runShim(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SHIM, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

test("--help works for every command of the command table, and version prints package.json's version", async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0, top.stderr);
  const commands = [...top.stdout.matchAll(/^ {2}(\S+)\s/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 15, `the command table lists ${commands.join(', ')}`);
  for (const command of ['run', 'status', 'ban', 'unban', 'banned', 'reload', 'set', 'test-filter', 'version']) assert.ok(commands.includes(command), command);
  for (const command of commands) {
    for (const flag of ['--help', '-h']) {
      const help = await runCli([command, flag]);
      assert.equal(help.code, 0, `${command} ${flag}: ${help.stderr}`);
      // The shim's help is written as the fail2ban-client it stands in for.
      assert.match(help.stdout, new RegExp(`^usage: ${command === 'fail2ban-client' ? '' : 'edgeban '}${command}\\b`), `${command} ${flag}`);
      assert.equal(help.stderr, '', `${command} ${flag}`);
    }
  }
  const { version } = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  for (const args of [['version'], ['--version'], ['-V']]) {
    const result = await runCli(args);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `edgeban ${version}\n`);
  }
});

test('banned --json is written in full into a pipe (it was cut at 64 KiB, exit 0)', async (t) => {
  const dataDir = await tempDir(t);
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
  for (let i = 0; i < 1_000; i++) {
    await ledger.ban({ target: ALIAS, address: `2001:db8::${i.toString(16)}`, jail: 'dovecot', origin: 'jail', durationMs: 3_600_000 });
  }
  await ledger.close();
  // A shell pipe (a 64 KiB kernel buffer) whose reader starts late, as `edgeban banned --json | jq` on a busy host.
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      '/bin/sh',
      ['-c', '"$0" "$1" banned --json | { sleep 1; cat; }', process.execPath, EDGEBAN],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', EDGEBAN_DATA_DIR: dataDir },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(Buffer.byteLength(result.stdout) > 128 * 1024, `only ${Buffer.byteLength(result.stdout)} bytes`);
  assert.equal((JSON.parse(result.stdout) as { banned: unknown[] }).banned.length, 1_000);
});

test('status like fail2ban-client, status JAIL with its banned list, banned IP, unban of several, reload JAIL, and a log line for every ban and unban (pretty format)', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'maxretry = 2', 'findtime = 10m', 'bantime = 1h', ''].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  await sim.admin('seed', { table: ALIAS, entries: ['203.0.113.90'] }); // put there by hand, not by edgeban
  const daemon = await startCliDaemon(t, { TZ: 'UTC', EDGEBAN_LOG_FORMAT: 'pretty', ...env });
  const logHas = (pattern: RegExp) => daemon.stderr.some((line) => pattern.test(line));

  for (const address of ['192.0.2.61', '198.51.100.62']) {
    for (let i = 0; i < 2; i++) await appendFile(mailLog, dovecotFailure(address));
  }
  await appendFile(mailLog, dovecotFailure('203.0.113.63'));
  await until('both attackers in the alias', async () => (await alias()).length === 3);
  const manual = await runCli(['ban', '203.0.113.64'], { env });
  assert.equal(manual.code, 0, manual.stderr);

  const overview = await runCli(['status'], { env });
  assert.equal(overview.code, 0, overview.stderr);
  assert.match(overview.stdout, /^Status\n\|- Number of jail:\t1\n`- Jail list:\tdovecot\n/);
  assert.match(overview.stdout, /active bans: 3/);
  assert.match(overview.stdout, /target .*fail2ban_blocklist: /);

  const jail = await runCli(['status', 'dovecot'], { env });
  assert.equal(jail.code, 0, jail.stderr);
  assert.match(jail.stdout, /^Status for the jail: dovecot\n\|- Filter\n/);
  assert.match(jail.stdout, /\|- Currently failed:\t1\n/);
  assert.match(jail.stdout, /\|- Total failed:\t5\n/);
  assert.match(jail.stdout, new RegExp(`\`- File list:\\t${mailLog.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\n`));
  assert.match(jail.stdout, /\|- Currently banned:\t2\n/);
  assert.match(jail.stdout, /\|- Total banned:\t2\n/);
  assert.match(jail.stdout, /`- Banned IP list:\t192\.0\.2\.61 198\.51\.100\.62\n/);
  const jailJson = JSON.parse((await runCli(['status', 'dovecot', '--json'], { env })).stdout) as { jails: Array<{ banned: string[] }> };
  assert.deepEqual(jailJson.jails[0]?.banned, ['192.0.2.61', '198.51.100.62']);
  const unknown = await runCli(['status', 'nosuch'], { env });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no jail named nosuch/);

  const which = await runCli(['banned', '192.0.2.61'], { env });
  assert.equal(which.code, 0, which.stderr);
  assert.match(which.stdout, /^192\.0\.2\.61 is banned by dovecot \(fail2ban_blocklist, until /);
  assert.match((await runCli(['banned', '203.0.113.99'], { env })).stdout, /203\.0\.113\.99 is not banned/);
  const two = await runCli(['banned', '203.0.113.64', '192.0.2.61', '--json'], { env });
  assert.deepEqual(JSON.parse(two.stdout).addresses, [
    { address: '203.0.113.64', jails: ['manual'] },
    { address: '192.0.2.61', jails: ['dovecot'] },
  ]);

  const unban = await runCli(['unban', '192.0.2.61', '203.0.113.64'], { env });
  assert.equal(unban.code, 0, unban.stderr);
  assert.equal(unban.stdout, '192.0.2.61: 1 ban ended\n203.0.113.64: 1 ban ended\n');
  await until('both unbanned addresses out of the alias', async () => (await alias()).join() === '198.51.100.62,203.0.113.90');

  // An address in the alias that edgeban never banned: said so, with the two ways to remove it.
  const foreign = await runCli(['unban', '203.0.113.90'], { env });
  assert.equal(foreign.code, 1, foreign.stderr);
  assert.match(
    foreign.stdout,
    /^0 bans ended; 203\.0\.113\.90 is in .*fail2ban_blocklist but edgeban never banned it, so it stays blocked\. Remove it with `edgeban unban --foreign 203\.0\.113\.90`, or .*EDGEBAN_FOREIGN_ENTRIES=exclusive\n$/,
  );
  assert.ok((await alias()).includes('203.0.113.90'), 'nothing removed without --foreign');
  const removed = await runCli(['unban', '--foreign', '203.0.113.90'], { env });
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /^removed from .*fail2ban_blocklist \(an entry edgeban never banned\)\n$/);
  assert.deepEqual(await alias(), ['198.51.100.62']);

  const reload = await runCli(['reload', 'dovecot'], { env });
  assert.equal(reload.code, 0, reload.stderr);
  assert.match(reload.stdout, /jail dovecot is running/);
  const reloadUnknown = await runCli(['reload', 'nosuch'], { env });
  assert.equal(reloadUnknown.code, 1);
  assert.match(reloadUnknown.stderr, /no jail named nosuch in the reloaded configuration/);

  // The fail2ban-client shim, as `docker exec edgeban fail2ban-client …` runs it.
  const shimStatus = await runShim(['status', 'dovecot'], env);
  assert.equal(shimStatus.code, 0, shimStatus.stderr);
  assert.match(shimStatus.stdout, /^Status for the jail: dovecot\n/);
  assert.match(shimStatus.stdout, /`- Banned IP list:\t198\.51\.100\.62\n/);
  assert.match((await runShim(['-q', 'status'], env)).stdout, /`- Jail list:\tdovecot\n/);
  assert.equal((await runShim(['ping'], env)).stdout, 'Server replied: pong\n');
  const shimBan = await runShim(['set', 'dovecot', 'banip', '203.0.113.65', '203.0.113.66'], env);
  assert.equal(shimBan.code, 0, shimBan.stderr);
  await until('shim bans in the alias', async () => (await alias()).includes('203.0.113.66'));
  assert.match((await runShim(['banned', '203.0.113.65'], env)).stdout, /203\.0\.113\.65 is banned by dovecot/);
  assert.equal((await runShim(['set', 'dovecot', 'unbanip', '--report-absence', '203.0.113.65'], env)).code, 0);
  assert.equal((await runShim(['unban', '203.0.113.66'], env)).stdout, '1 ban ended\n');
  assert.equal((await runShim(['reload', 'dovecot'], env)).code, 0);
  const unmapped = await runShim(['get', 'dovecot', 'bantime'], env);
  assert.equal(unmapped.code, 2);
  assert.match(unmapped.stderr, /"get dovecot bantime" is not mapped by edgeban's fail2ban-client shim/);
  await until('shim unbans out of the alias', async () => (await alias()).join() === '198.51.100.62');

  await until(
    'ban and unban lines in the log',
    () =>
      logHas(/ INFO +\[dovecot\] Ban 192\.0\.2\.61 /) &&
      logHas(/ INFO +\[manual\] Ban 203\.0\.113\.64 \(manual, until /) &&
      logHas(/ INFO +\[dovecot\] Unban 192\.0\.2\.61(?: |$)/) &&
      logHas(/ INFO +\[manual\] Unban 203\.0\.113\.64(?: |$)/),
  );
  assert.ok(
    daemon.stderr.every((line) => !line.startsWith('{')),
    'EDGEBAN_LOG_FORMAT=pretty: no JSON line',
  );
  assert.ok(
    daemon.stderr.every((line) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) /.test(line)),
    daemon.stderr.join('\n'),
  );
  assert.equal(await daemon.stop(), 0);
});

test('an expiring ban logs its Unban line (JSON format by default when stderr is not a terminal)', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'maxretry = 1', 'findtime = 10m', 'bantime = 3', ''].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
  };
  const daemon = await startCliDaemon(t, { TZ: 'UTC', ...env });
  await appendFile(mailLog, dovecotFailure('198.51.100.71'));
  const messages = () => daemon.stderr.map((line) => (JSON.parse(line) as { msg: string }).msg);
  await until(
    'the ban and its expiry logged',
    () => messages().some((m) => m.startsWith('[dovecot] Ban 198.51.100.71')) && messages().includes('[dovecot] Unban 198.51.100.71'),
  );
  assert.equal(messages().filter((m) => m === '[dovecot] Unban 198.51.100.71').length, 1, 'one Unban line');
  assert.equal(await daemon.stop(), 0);
});

test("test-filter takes fail2ban-regex's order (LOG FILTER), a raw regex and a single line", async (t) => {
  const dir = await tempDir(t);
  const line =
    'Jan  1 00:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a>, method=PLAIN, rip=198.51.100.4, lip=10.0.0.2, TLS, session=<x>';
  const log = path.join(dir, 'mail.log');
  await writeFile(log, `${line}\nJan  1 00:00:01 mail dovecot: imap-login: Login: user=<bob>, rip=198.51.100.9\n`);
  const env = { TZ: 'UTC' };
  const expected = '{"line":1,"match":true,"host":"198.51.100.4","time":1767225600,"user":"a"}\n{"line":2,"match":false,"host":null,"time":1767225601}\n';
  for (const args of [
    ['dovecot', log],
    [log, 'dovecot'],
  ]) {
    const r = await runCli(['test-filter', ...args, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, expected, args.join(' '));
  }
  for (const args of [
    ['dovecot', line],
    [line, 'dovecot'],
  ]) {
    const r = await runCli(['test-filter', ...args, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"line":1,"match":true,"host":"198.51.100.4","time":1767225600,"user":"a"}\n', 'a single line');
  }
  const raw = await runCli(['test-filter', log, 'rip=<HOST>, lip='], { env });
  assert.equal(raw.code, 0, raw.stderr);
  assert.match(raw.stdout, /lines read: 2, matched: 1,/);
  assert.match(raw.stdout, /#1 +1 +rip=<HOST>, lip=/);
  const rawLine = await runCli(['test-filter', 'user=<F-USER>\\S+</F-USER>, method', line, '--json'], { env });
  assert.equal(rawLine.code, 2, "a raw regex is checked as a filter's would be");
  assert.match(rawLine.stderr, /<command line>:0: failregex: .*has no failure-id group/);
  const rawOnLine = await runCli(['test-filter', line, 'user=<F-USER>\\S+</F-USER>, method=PLAIN, rip=<ADDR>,', '--json'], { env });
  assert.equal(rawOnLine.stdout, '{"line":1,"match":true,"host":"198.51.100.4","time":1767225600,"user":"<a>"}\n');
  const missing = await runCli(['test-filter', path.join(dir, 'missing.log'), 'dovecot'], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read log .*missing\.log/);
  const unknown = await runCli(['test-filter', log, 'no-such-filter'], { env });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /filter "no-such-filter" not found/);
});
