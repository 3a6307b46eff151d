import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadFilter } from '../../src/config/fail2ban/filter-definition.ts';
import { loadJails, type JailDefinition } from '../../src/config/fail2ban/jail-definition.ts';
import { configDirs } from '../../src/config/shipped-dirs.ts';
import { compileFilter } from '../../src/filters/compile.ts';
import { tempConfig } from './fixtures.ts';

function byName(jails: JailDefinition[], name: string): JailDefinition {
  const jail = jails.find((j) => j.name === name);
  assert.ok(jail, `jail ${name}`);
  return jail;
}

test("users' OPNsense actions map to the native params {firewall, key, secret, alias, allow_insecure}; the mapping is told once per file", async () => {
  const { dir, cleanup } = await tempConfig({
    'action.d/opnsense-alias.conf': '[Definition]\nactionban = curl "<osaddress>/<osalias>/<ip>"\n[Init]\nosaddress =\noskey =\nossecret =\nosalias = f2b\n',
    'action.d/opnsense.conf':
      '[Definition]\nactionban = curl "<firewall>"\n[Init]\nalias = fail2ban_blocklist\nfirewall =\nkey =\nsecret =\nallow_insecure = false\n',
    'jail.local': [
      '[dovecot]',
      'enabled = true',
      'banaction = opnsense-alias[osaddress="198.51.100.1", oskey="K1", ossecret="S1"]',
      '',
      '[postfix]',
      'enabled = true',
      'banaction = opnsense-alias[osaddress="198.51.100.1", oskey="K1", ossecret="S1"]',
      '',
      '[traefik]',
      'enabled = true',
      'action = opnsense[firewall="198.51.100.2", key="K2", secret="S2", allow_insecure=yes]',
      '',
    ].join('\n'),
  });
  try {
    const loaded = await loadJails(configDirs(dir));
    const pick = (j: JailDefinition) =>
      j.actions.map((a) => [a.native, a.params.firewall, a.params.key, a.params.secret, a.params.alias, a.params.allow_insecure]);
    assert.deepEqual(pick(byName(loaded.jails, 'dovecot')), [['opnsense', '198.51.100.1', 'K1', 'S1', 'f2b', 'false']]);
    assert.deepEqual(pick(byName(loaded.jails, 'traefik')), [['opnsense', '198.51.100.2', 'K2', 'S2', 'fail2ban_blocklist', 'true']]);
    assert.equal(byName(loaded.jails, 'dovecot').actions[0]?.mappedFrom, path.join(dir, 'action.d', 'opnsense-alias.conf'));
    assert.equal(loaded.mapped.filter((l) => l.includes('opnsense-alias.conf')).length, 1, loaded.mapped.join('\n'));
    assert.ok(
      loaded.mapped.every((l) => !/K1|S1|K2|S2/.test(l)),
      'a key or secret in the mapping line',
    );
  } finally {
    await cleanup();
  }
});

test('allow_insecure that is not a boolean is a config error at the line, without echoing a long value', async () => {
  const { dir, cleanup } = await tempConfig({
    'jail.local': '[dovecot]\nenabled = true\naction = opnsense[firewall="198.51.100.2", key="K", secret="S", allow_insecure="Zm9vYmFyYmF6cXV4cXV1eA"]\n',
    'action.d/opnsense.conf': '[Definition]\nactionban = curl\n[Init]\nallow_insecure = false\n',
  });
  try {
    await assert.rejects(loadJails(configDirs(dir)), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.line, 3);
      assert.match(error.message, /allow_insecure: expected true or false/);
      assert.ok(!error.message.includes('Zm9vYmFy'));
      return true;
    });
  } finally {
    await cleanup();
  }
});

test('an action edgeban does not run is noted and the jail still bans; a jail left with no action that runs is not run, with the reason', async () => {
  const { dir, cleanup } = await tempConfig({
    'jail.local': [
      '[DEFAULT]',
      'bantime_note = unused by anything',
      '',
      '[dovecot]',
      'enabled = true',
      'action = %(action_)s',
      '         abuseipdb[abuseipdb_apikey="x"]',
      '         badips.py',
      '',
      '[postfix]',
      'enabled = true',
      'action = sendmail-whois[dest="root@localhost"]',
      '',
    ].join('\n'),
  });
  try {
    const loaded = await loadJails(configDirs(dir));
    const dovecot = byName(loaded.jails, 'dovecot');
    assert.equal(dovecot.supported, true);
    assert.deepEqual(
      dovecot.notes.map((n) => [n.kind, n.subject]),
      [
        ['not-run', 'abuseipdb'],
        ['not-run', 'badips.py'],
      ],
    );
    const postfix = byName(loaded.jails, 'postfix');
    assert.equal(postfix.supported, false);
    assert.match(postfix.skipReason ?? '', /none of its actions runs in edgeban \(sendmail-whois\)/);
    // A [DEFAULT] key nothing reads: said once, with the closest known key.
    assert.deepEqual(
      loaded.warnings.map((w) => [w.subject, w.line]),
      [['bantime_note', 2]],
    );
    assert.match(loaded.warnings[0]?.message ?? '', /did you mean bantime\?/);
  } finally {
    await cleanup();
  }
});

test("fail2ban's postfix mode names are all there (each with fail2ban's meaning: the yardstick test checks each against fail2ban's own mode); extra is normal; dovecot's unknown modes are named", async () => {
  const dirs = configDirs();
  const patterns = async (mode: string) => (await loadFilter(`postfix[mode=${mode}]`, dirs)).failregex.map((r) => r.pattern);
  const normal = await patterns('normal');
  for (const mode of ['auth', 'more', 'extra', 'errors', 'ddos', 'rbl', 'aggressive']) assert.ok((await patterns(mode)).length > 0, mode);
  assert.deepEqual(await patterns('extra'), normal, 'extra = auth + more = normal');
  for (const mode of ['auth', 'more', 'extra', 'errors', 'ddos', 'rbl'])
    assert.ok((await loadFilter(`dovecot[mode=${mode}]`, dirs)).failregex.length > 0, `dovecot ${mode}`);
  await assert.rejects(loadFilter('dovecot[mode=verbose]', dirs), /dovecot has no mode verbose; modes: normal, aggressive/);
});

test("a regex error shows the user's regex with the position in it, not the expanded <HOST>", async () => {
  const { dir, cleanup } = await tempConfig({ 'filter.d/app.conf': '[Definition]\nfailregex = ^login from <HOST> user (\\w+$\n' });
  try {
    const definition = await loadFilter('app', configDirs(dir));
    assert.throws(
      () => compileFilter(definition),
      (error: unknown) => {
        const message = (error as Error).message;
        assert.match(
          message,
          /app\.conf:2: failregex: filter app: cannot use regex "\^login from <HOST> user \(\\\\w\+\$": missing \), unterminated subpattern at position \d+: "/,
        );
        assert.ok(!message.includes('ip4'), `the expansion of <HOST> is shown: ${message}`);
        return true;
      },
    );
  } finally {
    await cleanup();
  }
});
