import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadFilter, type ConfigDirs } from '../../src/config/fail2ban/filter-definition.ts';
import { loadJailFilter, loadJails } from '../../src/config/fail2ban/jail-definition.ts';
import { SHIPPED_ACTIONS, tempConfig } from './fixtures.ts';

const SECRETS = ['k3y-SECRET-1', 's3cret-SECRET-2', 'tk-SECRET-3'];
const OPNSENSE = `opnsense[firewall="192.0.2.1", key="${SECRETS[0]}", secret="${SECRETS[1]}"]`;

interface Expected {
  /** Relative to the temp config dir. */
  file: string;
  line: number;
  key: string | null;
  message: RegExp;
}

/** Runs `load` on a temp dir holding `files`; asserts a ConfigError at file:line:key, exit code 2, no secret in the message. */
async function expectError(files: Record<string, string>, load: (dirs: ConfigDirs) => Promise<unknown>, expected: Expected): Promise<void> {
  const { dir, cleanup } = await tempConfig(files);
  try {
    const dirs: ConfigDirs = { configDir: dir, shippedFilterDir: path.join(dir, 'shipped-filters'), shippedActionDir: SHIPPED_ACTIONS };
    await assert.rejects(load(dirs), (error: unknown) => {
      assert.ok(error instanceof ConfigError, `ConfigError, got ${String(error)}`);
      const file = path.join(dir, expected.file);
      assert.equal(error.file, file);
      assert.equal(error.line, expected.line);
      assert.equal(error.key, expected.key);
      assert.equal(error.exitCode, 2);
      assert.ok(error.message.startsWith(`${file}:${expected.line}: `), error.message);
      if (expected.key !== null) assert.ok(error.message.includes(` ${expected.key}: `), error.message);
      assert.match(error.message, expected.message);
      for (const secret of SECRETS) assert.ok(!error.message.includes(secret), `secret leaked: ${error.message}`);
      return true;
    });
  } finally {
    await cleanup();
  }
}

const jails = (dirs: ConfigDirs): Promise<unknown> => loadJails(dirs);
const sshFilter = (dirs: ConfigDirs): Promise<unknown> => loadFilter('app', dirs);

test('unknown %(…)s reference', () =>
  expectError({ 'jail.local': `[DEFAULT]\nbanaction = ${OPNSENSE}\n[dovecot]\nenabled = true\nbantime = %(long_ban)s\n` }, jails, {
    file: 'jail.local',
    line: 5,
    key: 'bantime',
    message: /unknown reference %\(long_ban\)s/,
  }));

test('unknown section in %(section/key)s', () =>
  expectError({ 'filter.d/app.conf': '[Definition]\nfailregex = ^%(nosuch/prefix)s<HOST>$\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 2,
    key: 'failregex',
    message: /there is no section \[nosuch\]/,
  }));

test('include cycle', () =>
  expectError(
    {
      'filter.d/app.conf': '[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^<HOST>$\n',
      'filter.d/common.conf': '[INCLUDES]\n# back to where we came from\nbefore = other.conf\n          app.conf\n[DEFAULT]\nx = 1\n',
      'filter.d/other.conf': '[DEFAULT]\ny = 2\n',
    },
    sshFilter,
    { file: 'filter.d/common.conf', line: 4, key: 'before', message: /include cycle: app\.conf → common\.conf → app\.conf/ },
  ));

test('missing include (a .conf; optional .local overrides may be absent)', () =>
  expectError({ 'filter.d/app.conf': '[INCLUDES]\nbefore = common.conf\nafter = app-extra.local\n[Definition]\nfailregex = ^<HOST>$\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 2,
    key: 'before',
    message: /included file common\.conf not found/,
  }));

test("missing filter, named at the jail's filter line", () =>
  expectError(
    { 'jail.local': `[DEFAULT]\nbanaction = ${OPNSENSE}\n\n[web]\nenabled = true\nfilter = nginx-nosuch[mode=aggressive]\nlogpath = /var/log/x.log\n` },
    async (dirs) => {
      const { jails: all } = await loadJails(dirs);
      const web = all.find((j) => j.name === 'web');
      assert.ok(web);
      return loadJailFilter(web, dirs);
    },
    { file: 'jail.local', line: 6, key: 'filter', message: /filter "nginx-nosuch" not found/ },
  ));

test('filter with no failregex', () =>
  expectError({ 'filter.d/app.conf': '[INCLUDES]\n\n[Definition]\nprefregex = ^<F-CONTENT>.+</F-CONTENT>$\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 3,
    key: 'failregex',
    message: /no failregex/,
  }));

test('bad number', () =>
  expectError({ 'jail.d/mail.conf': '[postfix]\nenabled = true\nmaxretry = five\n', 'jail.local': `[DEFAULT]\nbanaction = ${OPNSENSE}\n` }, jails, {
    file: 'jail.d/mail.conf',
    line: 3,
    key: 'maxretry',
    message: /whole number.*"five"/,
  }));

test('bad duration, set in [DEFAULT] (named as such, with the jail)', () =>
  expectError({ 'jail.local': `[DEFAULT]\nbanaction = ${OPNSENSE}\nfindtime = 10 mins and a bit\n[dovecot]\nenabled = true\n` }, jails, {
    file: 'jail.local',
    line: 3,
    key: 'findtime',
    message: /^.*\[DEFAULT\] findtime: expected a positive duration.*\(jail dovecot\)/,
  }));

test('bad boolean', () =>
  expectError({ 'jail.local': '[dovecot]\n\nenabled = maybe\n' }, jails, { file: 'jail.local', line: 3, key: 'enabled', message: /expected a boolean/ }));

test('malformed line (no key = value)', () =>
  expectError({ 'jail.local': `[DEFAULT]\nbanaction = ${OPNSENSE}\n[dovecot]\nenabled true\n` }, jails, {
    file: 'jail.local',
    line: 4,
    key: null,
    message: /\[dovecot\]: malformed line/,
  }));

test('unterminated name[ option list, without echoing the secrets in it', () =>
  expectError(
    { 'jail.local': `[DEFAULT]\nbanaction = opnsense[firewall="192.0.2.1", key="${SECRETS[0]}", secret="${SECRETS[1]}"\n[dovecot]\nenabled = true\n` },
    jails,
    // action_ appends [port=…] to the banaction, so fail2ban's syntax sees text after `secret`.
    { file: 'jail.local', line: 2, key: 'banaction', message: /"opnsense\[…\]": unexpected text after option "secret" \(a missing "\]"/ },
  ));

test('stray text after a quoted option value, without echoing it', () =>
  expectError(
    { 'jail.local': `[dovecot]\nenabled = true\naction = %(action_)s\n  ntfy[ntfytopic=bans, ntfytoken="${SECRETS[2]}" ntfypriority=max]\n` },
    jails,
    { file: 'jail.local', line: 4, key: 'action', message: /unexpected text after option "ntfytoken"/ },
  ));

test('a bare % in a value (fail2ban needs %%)', () =>
  expectError(
    { 'jail.local': `[DEFAULT]\nbanaction = opnsense[firewall="192.0.2.1", key="${SECRETS[0]}", secret="50%${SECRETS[1]}"]\n[dovecot]\nenabled = true\n` },
    jails,
    { file: 'jail.local', line: 2, key: 'banaction', message: /'%' must be followed by '%' or '\('/ },
  ));

test('the same key twice in one section of one file', () =>
  expectError({ 'filter.d/app.conf': '[Definition]\nfailregex = ^a <HOST>$\nFailRegex = ^b <HOST>$\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 3,
    key: 'failregex',
    message: /appears twice/,
  }));

test('bad maxlines in a filter', () =>
  expectError({ 'filter.d/app.conf': '[Definition]\nfailregex = ^<HOST>$\nmaxlines = zero\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 3,
    key: 'maxlines',
    message: /maxlines must be a whole number/,
  }));

test('self-referencing <tags> in a filter', () =>
  expectError({ 'filter.d/app.conf': '[Definition]\nfailregex = ^<a> <HOST>$\na = x<b>\nb = <a>y\n' }, sshFilter, {
    file: 'filter.d/app.conf',
    line: 2,
    key: 'failregex',
    message: /<a> refers back to itself/,
  }));

test('%(…)s references that loop', () =>
  expectError({ 'jail.local': '[DEFAULT]\na = %(b)s\nb = %(a)s\n[dovecot]\nenabled = true\nport = %(a)s\n' }, jails, {
    file: 'jail.local',
    line: 3,
    key: 'b',
    message: /nested more than 10 deep.*\(resolving \[dovecot\] \w+\)/,
  }));

test('a key before any section header', () =>
  expectError({ 'jail.local': '# comment\nenabled = true\n[dovecot]\n' }, jails, {
    file: 'jail.local',
    line: 2,
    key: null,
    message: /outside any \[section\]/,
  }));

test('a broken disabled jail is left out, as fail2ban never reads it', async () => {
  const { dir, cleanup } = await tempConfig({ 'jail.local': '[old]\nenabled = false\nbantime = forever\n' });
  try {
    const { jails: all } = await loadJails({ configDir: dir, shippedFilterDir: dir, shippedActionDir: SHIPPED_ACTIONS });
    assert.ok(!all.some((j) => j.name === 'old'));
  } finally {
    await cleanup();
  }
});

test('a configuration directory that does not exist', async () => {
  const { dir, cleanup } = await tempConfig({});
  try {
    const missing = path.join(dir, 'nope');
    await assert.rejects(loadJails({ configDir: missing, shippedFilterDir: dir, shippedActionDir: SHIPPED_ACTIONS }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.file, missing);
      assert.match(error.message, /does not exist/);
      return true;
    });
  } finally {
    await cleanup();
  }
});
