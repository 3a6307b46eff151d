/**
 * Fault suite: broken configuration. Each case runs the real `edgeban run` as a process against its
 * own OPNsense simulator and asserts: exit code 2, stderr names the file, line and key (or the
 * environment variable), no secret echoed, and the simulator's call log (its /__simulator/calls
 * admin route) shows that not a single API call was made. A control case with a sound
 * configuration proves the same check sees the calls a started daemon makes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, test, type TestContext } from 'node:test';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import type { SimulatorCall } from '../../src/simulator/call-log.ts';
import { EDGEBAN, runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KEY = 'brokenCfgKey0123456789abcdefXYZ';
const SECRET = 'brokenCfgSecret0123456789+/abcdefXYZ=';
const OTHER_SECRET = 'brokenCfgOtherSecret98765+/zyxw=';

interface Where {
  /** Relative to the case's config dir. */
  file: string;
  line: number;
  /** The key named after the location (`[section] key:`), or null for a line without one. */
  key: string | null;
}

interface BrokenCase {
  /** What it breaks. */
  name: string;
  /** Files of the config dir; `{{SIM}}` becomes the simulator's URL, `{{DIR}}` the case's root dir. */
  files: Record<string, string>;
  /** Environment changes ({{SIM}}/{{DIR}} substituted; '' removes the variable). */
  env?: Record<string, string>;
  /** A configuration error located in a file… */
  where?: Where;
  /** …or an environment error naming a variable. */
  variable?: string;
  message: RegExp;
}

const dovecot = (extra = '') => `[dovecot]\nenabled = true\nlogpath = {{DIR}}/logs/mail.log\n${extra}`;

/** The sound configuration every case starts from; each case breaks one thing. */
const GOOD_JAIL = dovecot('maxretry = 3\nbantime = 1h\n');

const CASES: BrokenCase[] = [
  // ── jail.local syntax ──
  {
    name: 'jail.local: a line without "key = value"',
    files: { 'jail.local': '[dovecot]\nenabled = true\nmaxretry 3\n' },
    where: { file: 'jail.local', line: 3, key: null },
    message: /\[dovecot\]: malformed line/,
  },
  {
    name: 'jail.local: a key before any [section]',
    files: { 'jail.local': '# top\nbantime = 1h\n[dovecot]\nenabled = true\n' },
    where: { file: 'jail.local', line: 2, key: null },
    message: /outside any \[section\]/,
  },
  {
    name: 'jail.local: the same key twice in one section',
    files: { 'jail.local': `${GOOD_JAIL}MaxRetry = 5\n` },
    where: { file: 'jail.local', line: 6, key: 'maxretry' },
    message: /appears twice/,
  },
  {
    name: 'jail.local: a bare % (fail2ban needs %%)',
    files: { 'jail.local': dovecot('bantime = 50%\n') },
    where: { file: 'jail.local', line: 4, key: 'bantime' },
    message: /'%' must be followed by '%' or '\('/,
  },
  {
    name: 'jail.local: an unknown %(name)s reference',
    files: { 'jail.local': dovecot('bantime = %(long_ban)s\n') },
    where: { file: 'jail.local', line: 4, key: 'bantime' },
    message: /unknown reference %\(long_ban\)s/,
  },
  {
    name: 'jail.local: %(…)s references that loop',
    files: { 'jail.local': `[DEFAULT]\na = %(b)s\nb = %(a)s\n${dovecot('port = %(a)s\n')}` },
    where: { file: 'jail.local', line: 3, key: 'b' },
    message: /nested more than 10 deep/,
  },
  {
    name: 'jail.local: an opnsense[…] option list without its closing "]"',
    files: { 'jail.local': `[DEFAULT]\nbanaction = opnsense[alias="fail2ban_blocklist"\n${GOOD_JAIL}` },
    where: { file: 'jail.local', line: 2, key: 'banaction' },
    message: /unexpected text after option "alias"/,
  },
  // ── includes ──
  {
    name: 'filter.d: include loop',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^fail <HOST>$\n',
      'filter.d/common.conf': '[INCLUDES]\nbefore = app.conf\n[DEFAULT]\nx = 1\n',
    },
    where: { file: 'filter.d/common.conf', line: 2, key: 'before' },
    message: /include cycle/,
  },
  {
    name: 'filter.d: a missing included file',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[INCLUDES]\nbefore = nosuch-common.conf\n[Definition]\nfailregex = ^fail <HOST>$\n',
    },
    where: { file: 'filter.d/app.conf', line: 2, key: 'before' },
    message: /not found/,
  },
  // ── filters ──
  {
    name: 'jail: an unknown filter',
    files: { 'jail.local': dovecot('filter = nginx-nosuch[mode=aggressive]\n') },
    where: { file: 'jail.local', line: 4, key: 'filter' },
    message: /filter "nginx-nosuch" not found/,
  },
  {
    name: 'filter: a failregex that does not compile',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^fail (<HOST>$\n',
    },
    where: { file: 'filter.d/app.conf', line: 2, key: 'failregex' },
    message: /cannot use regex .*missing \)/,
  },
  {
    name: 'filter: a failregex without <HOST>',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^login failed for somebody$\n',
    },
    where: { file: 'filter.d/app.conf', line: 2, key: 'failregex' },
    message: /no failure-id group \(<HOST>/,
  },
  {
    name: 'filter: no failregex at all',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[INCLUDES]\n\n[Definition]\nignoreregex = ^x$\n',
    },
    where: { file: 'filter.d/app.conf', line: 3, key: 'failregex' },
    message: /no failregex/,
  },
  {
    name: 'filter: an ignoreregex that does not compile',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^fail <HOST>$\nignoreregex = ^[unclosed\n',
    },
    where: { file: 'filter.d/app.conf', line: 3, key: 'ignoreregex' },
    message: /cannot use regex .*unterminated character set/,
  },
  {
    name: 'filter: a bad datepattern',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^fail <HOST>$\ndatepattern = ^%%Y-%%m-(%%d\n',
    },
    where: { file: 'filter.d/app.conf', line: 3, key: 'datepattern' },
    message: /invalid datepattern/,
  },
  {
    name: 'filter: maxlines not a number',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^fail <HOST>$\nmaxlines = zero\n',
    },
    where: { file: 'filter.d/app.conf', line: 3, key: 'maxlines' },
    message: /maxlines must be a whole number/,
  },
  {
    name: 'filter: <tags> that refer back to themselves',
    files: {
      'jail.local': dovecot('filter = app\n'),
      'filter.d/app.conf': '[Definition]\nfailregex = ^<a> <HOST>$\na = x<b>\nb = <a>y\n',
    },
    where: { file: 'filter.d/app.conf', line: 2, key: 'failregex' },
    message: /refers back to itself/,
  },
  // ── jail values ──
  {
    name: 'jail: bantime not a duration',
    files: { 'jail.local': dovecot('bantime = forever-ish\n') },
    where: { file: 'jail.local', line: 4, key: 'bantime' },
    message: /duration/,
  },
  {
    name: 'jail: findtime in [DEFAULT] not a duration',
    files: { 'jail.local': `[DEFAULT]\nfindtime = 10 mins and a bit\n${GOOD_JAIL}` },
    where: { file: 'jail.local', line: 2, key: 'findtime' },
    message: /duration/,
  },
  {
    name: 'jail: maxretry not a number',
    files: { 'jail.d/mail.conf': dovecot('maxretry = five\n') },
    where: { file: 'jail.d/mail.conf', line: 4, key: 'maxretry' },
    message: /whole number.*"five"/,
  },
  {
    name: 'jail: enabled not a boolean',
    files: { 'jail.local': '[dovecot]\n\nenabled = maybe\n' },
    where: { file: 'jail.local', line: 3, key: 'enabled' },
    message: /expected a boolean/,
  },
  {
    name: 'jail: ignoreip holding a host name (never resolved)',
    files: { 'jail.local': dovecot('ignoreip = 127.0.0.1/8 mail.example.org\n') },
    where: { file: 'jail.local', line: 4, key: 'ignoreip' },
    message: /is a host name; edgeban does not resolve/,
  },
  {
    name: 'jail: bantime.factor not a number',
    files: { 'jail.local': dovecot('bantime.increment = true\nbantime.factor = lots\n') },
    where: { file: 'jail.local', line: 5, key: 'bantime.factor' },
    message: /expected a positive number, not "lots"/,
  },
  // ── the opnsense action ──
  {
    name: 'action: opnsense[firewall=…] without key=',
    files: {
      'jail.local': `[DEFAULT]\nbanaction = opnsense[firewall="198.51.100.1", secret="${OTHER_SECRET}"]\n${GOOD_JAIL}`,
    },
    where: { file: 'jail.local', line: 2, key: 'key' },
    message: /needs key=/,
  },
  {
    name: 'action: opnsense alias= not a valid alias name',
    files: {
      'jail.local': `[DEFAULT]\nbanaction = opnsense[alias="block-list!"]\n${GOOD_JAIL}`,
    },
    where: { file: 'jail.local', line: 2, key: 'alias' },
    message: /not a valid OPNsense alias name/,
  },
  {
    name: 'action: opnsense firewall= over plain http to a non-loopback address',
    files: {
      'jail.local': `[DEFAULT]\nbanaction = opnsense[firewall="http://198.51.100.1", key="k1234", secret="${OTHER_SECRET}"]\n${GOOD_JAIL}`,
    },
    where: { file: 'jail.local', line: 2, key: 'firewall' },
    message: /plain http/,
  },
  {
    name: 'action: two jails give one firewall conflicting credentials',
    files: {
      'jail.local': [
        '[dovecot]',
        'enabled = true',
        'logpath = {{DIR}}/logs/mail.log',
        `banaction = opnsense[firewall="198.51.100.1", key="keyA1234", secret="${SECRET}"]`,
        '[postfix]',
        'enabled = true',
        'logpath = {{DIR}}/logs/mail.log',
        `banaction = opnsense[firewall="198.51.100.1", key="keyB1234", secret="${OTHER_SECRET}"]`,
        '',
      ].join('\n'),
    },
    where: { file: 'jail.local', line: 4, key: 'key' },
    message: /other credentials than .*jail\.local:8/,
  },
  // ── the environment ──
  {
    name: 'env: OPNSENSE_URL over plain http to a non-loopback address',
    files: { 'jail.local': GOOD_JAIL },
    env: { OPNSENSE_URL: 'http://198.51.100.1' },
    variable: 'OPNSENSE_URL',
    message: /plain http is accepted only for loopback/,
  },
  {
    name: 'env: EDGEBAN_RECONCILE_INTERVAL not a number',
    files: { 'jail.local': GOOD_JAIL },
    env: { EDGEBAN_RECONCILE_INTERVAL: 'soon' },
    variable: 'EDGEBAN_RECONCILE_INTERVAL',
    message: /whole number/,
  },
  {
    name: 'env: EDGEBAN_API_CONCURRENCY zero',
    files: { 'jail.local': GOOD_JAIL },
    env: { EDGEBAN_API_CONCURRENCY: '0' },
    variable: 'EDGEBAN_API_CONCURRENCY',
    message: /whole number from 1/,
  },
  {
    name: 'env: OPNSENSE_ALIAS not a valid alias name',
    files: { 'jail.local': GOOD_JAIL },
    env: { OPNSENSE_ALIAS: 'my-block-list' },
    variable: 'OPNSENSE_ALIAS',
    message: /not a valid OPNsense alias name/,
  },
  {
    name: 'env: both OPNSENSE_SECRET and OPNSENSE_SECRET_FILE (conflicting credentials)',
    files: { 'jail.local': GOOD_JAIL, 'secret.txt': `${OTHER_SECRET}\n` },
    env: { OPNSENSE_SECRET_FILE: '{{DIR}}/config/secret.txt' },
    variable: 'OPNSENSE_SECRET',
    message: /keep one/,
  },
  {
    name: 'env: EDGEBAN_CONTROL_LISTEN beyond loopback',
    files: { 'jail.local': GOOD_JAIL },
    env: { EDGEBAN_CONTROL_LISTEN: '198.51.100.1:9191', EDGEBAN_CONTROL_TOKEN: 'brokenCfgToken0123456789' },
    variable: 'EDGEBAN_CONTROL_LISTEN',
    message: /loopback/,
  },
  {
    name: 'env: OPNSENSE_TLS_INSECURE not a boolean',
    files: { 'jail.local': GOOD_JAIL },
    env: { OPNSENSE_TLS_INSECURE: 'perhaps' },
    variable: 'OPNSENSE_TLS_INSECURE',
    message: /expected 1 or 0/,
  },
  {
    name: 'env: OPNSENSE_CA_FILE missing',
    files: { 'jail.local': GOOD_JAIL },
    env: { OPNSENSE_CA_FILE: '{{DIR}}/nosuch-ca.pem' },
    variable: 'OPNSENSE_CA_FILE',
    message: /cannot read/,
  },
];

/** Cases run at once: each is a Node process (~0.3 s of CPU) on a 2-core machine. */
const CONCURRENCY = 4;

async function fetchCalls(sim: OpnsenseSimulator): Promise<SimulatorCall[]> {
  const response = await fetch(`${sim.url}/__simulator/calls`);
  return (await response.json()) as SimulatorCall[];
}

async function startSim(t: TestContext): Promise<OpnsenseSimulator> {
  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }],
    authFailDelayMs: 0,
    seed: 11,
  });
  t.after(() => sim.stop());
  return sim;
}

interface Prepared {
  root: string;
  configDir: string;
  env: Record<string, string>;
}

async function prepare(t: TestContext, sim: OpnsenseSimulator, files: Record<string, string>, envChanges: Record<string, string> = {}): Promise<Prepared> {
  const root = await tempDir(t, 'edgeban-broken-');
  const configDir = path.join(root, 'config');
  const fill = (text: string) => text.replaceAll('{{SIM}}', sim.url).replaceAll('{{DIR}}', root);
  await mkdir(path.join(root, 'logs'), { recursive: true });
  await writeFile(path.join(root, 'logs', 'mail.log'), '');
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(configDir, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, fill(text));
  }
  const env: Record<string, string> = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_LOG_LEVEL: 'debug',
  };
  for (const [name, value] of Object.entries(envChanges)) {
    if (value === '') delete env[name];
    else env[name] = fill(value);
  }
  return { root, configDir, env };
}

describe('broken configuration: exit 2, the place named, no API call', { concurrency: CONCURRENCY }, () => {
  for (const c of CASES) {
    it(c.name, async (t) => {
      const sim = await startSim(t);
      const { root, configDir, env } = await prepare(t, sim, c.files, c.env);
      // cwd = the case's root: no .env from the repository can leak in.
      const result = await runCli(['run'], { env, cwd: root, timeoutMs: 30_000 });
      if (process.env.FAULTS_SHOW_STDERR) t.diagnostic(result.stderr);
      const output = `exit ${result.code}\nstderr: ${result.stderr}\nstdout: ${result.stdout}`;
      assert.equal(result.code, 2, output);
      if (c.where) {
        const location = `${path.join(configDir, c.where.file)}:${c.where.line}: `;
        const at = result.stderr.indexOf(location);
        assert.ok(at >= 0, `stderr does not name ${location}\n${output}`);
        const after = result.stderr.slice(at + location.length);
        if (c.where.key !== null) {
          // 'FILE:LINE: [section] key: what' (or 'FILE:LINE: key: what').
          const keyed = new RegExp(`^(?:\\[[^\\]\\n]+\\] )?${c.where.key.replace(/\./g, '\\.')}: `);
          assert.match(after, keyed, `stderr does not name the key ${c.where.key} after ${location}\n${output}`);
        }
      } else {
        assert.ok(c.variable);
        assert.match(result.stderr, new RegExp(`\\b${c.variable}: `), `stderr does not name ${c.variable}\n${output}`);
      }
      assert.match(result.stderr, c.message, output);
      for (const secret of [SECRET, OTHER_SECRET]) assert.ok(!`${result.stdout}${result.stderr}`.includes(secret), `secret echoed\n${output}`);
      assert.deepEqual(await fetchCalls(sim), [], 'an API call was made before the configuration was checked');
    });
  }
});

test('broken configuration: there are 30 or more cases', () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
});

test('control: the same sound configuration starts and the call log shows its API calls (the check above can see them)', async (t) => {
  const sim = await startSim(t);
  const { root, env } = await prepare(t, sim, { 'jail.local': GOOD_JAIL });
  const child = spawn(process.execPath, [EDGEBAN, 'run'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let calls: SimulatorCall[] = [];
  for (let i = 0; i < 600 && child.exitCode === null; i++) {
    calls = await fetchCalls(sim);
    if (calls.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(calls.length > 0, `no API call within 30 s; the daemon said:\n${stderr}`);
  assert.ok(
    calls.some((c) => c.key === KEY),
    'calls carry the configured key',
  );
  // SIGTERM is handled once start-up is over.
  for (let i = 0; i < 600 && !stderr.includes('edgeban running') && child.exitCode === null; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});
