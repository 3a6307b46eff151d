import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { loadFilter, type ConfigDirs } from '../../src/config/fail2ban/filter-definition.ts';
import { loadJailFilter, loadJails, type JailDefinition } from '../../src/config/fail2ban/jail-definition.ts';
import {
  copyOfDebianConfig,
  copyShippedActions,
  DEBIAN_DIR,
  HAVE_FAIL2BAN,
  REPO,
  runFail2banPython,
  SHIPPED_ACTIONS,
  tempConfig,
  writeFiles,
} from './fixtures.ts';

// Never skipped: .ci/run installs Debian's fail2ban, the reference these tests compare against.
test('fail2ban (Debian package) is installed', () => {
  assert.ok(HAVE_FAIL2BAN, 'fail2ban-regex and /etc/fail2ban are missing: apt-get install fail2ban');
});
const NO_FILTERS = path.join(REPO, 'test/config/no-such-dir');
const dirsFor = (configDir?: string): ConfigDirs => ({
  ...(configDir === undefined ? {} : { configDir }),
  shippedFilterDir: NO_FILTERS,
  shippedActionDir: SHIPPED_ACTIONS,
});

// fail2ban's own reading of a config dir (what `fail2ban-client -c DIR -d` prints), as JSON.
const FAIL2BAN_JAILS = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from fail2ban.client.jailsreader import JailsReader
from fail2ban.server.mytime import MyTime
r = JailsReader(basedir=sys.argv[1])
r.read()
r.getOptions()
out = {}
for cmd in r.convert(allow_no_files=True):
    if cmd[0] == 'add':
        out[cmd[1]] = {'actions': {}, 'failregex': [], 'ignoreip': []}
        continue
    if cmd[0] not in ('set', 'multi-set') or cmd[1] not in out: continue
    j = out[cmd[1]]
    if cmd[2] == 'action':
        j['actions'][cmd[3]] = dict(cmd[4]) if cmd[0] == 'multi-set' else {cmd[4]: cmd[5]}
    elif cmd[2] == 'addfailregex':
        j['failregex'] += cmd[3] if cmd[0] == 'multi-set' else [cmd[3]]
    elif cmd[2] in ('bantime', 'findtime'):
        j[cmd[2]] = MyTime.str2seconds(cmd[3])
    elif cmd[2] in ('maxretry', 'prefregex', 'datepattern'):
        j[cmd[2]] = cmd[3]
    elif cmd[2] == 'addignoreip':
        j['ignoreip'] += cmd[3:]
print(json.dumps(out))
`;

const SECRET_KEY = 'k3y-ABCDEF';
const SECRET = 's3cret-GHIJKL';
const NTFY_TOKEN = 'tk_MNOPQR';
const JAIL_LOCAL = `
[DEFAULT]
banaction = opnsense[firewall="192.168.123.1", key="${SECRET_KEY}", secret="${SECRET}", alias="fail2ban_blocklist"]
bantime = 1h30m
ignoreip = 127.0.0.1/8 ::1, 192.0.2.0/24

[sshd]
enabled = true
mode = aggressive

[dovecot]
enabled = true
action = %(action_)s
         ntfy[ntfyurl=https://ntfy.example.org, ntfytopic=bans, ntfytoken=${NTFY_TOKEN}, ntfypriority=max]

[postfix]
enabled = true
mode = more
bantime = -1
`;

function byName(jails: JailDefinition[], name: string): JailDefinition {
  const jail = jails.find((j) => j.name === name);
  assert.ok(jail, `jail ${name}`);
  return jail;
}

test("Debian's /etc/fail2ban loads as it is; its iptables jails ban at the edge instead, one warning per jail", async () => {
  const { jails, unsupported } = await loadJails(dirsFor(DEBIAN_DIR));
  const sshd = byName(jails, 'sshd');
  assert.equal(sshd.enabled, true, 'Debian enables sshd in jail.d/defaults-debian.conf');
  assert.equal(sshd.supported, true);
  // No firewall, no alias: the environment's (OPNSENSE_URL, OPNSENSE_ALIAS).
  assert.deepEqual(
    sshd.actions.map((a) => [a.native, a.substitutedFor, a.params]),
    [['opnsense', 'iptables-multiport', {}]],
  );
  assert.deepEqual(unsupported, []);
  assert.deepEqual(
    sshd.notes.map((n) => [n.kind, n.subject, n.file]),
    [['substituted', 'iptables-multiport', path.join(DEBIAN_DIR, 'jail.conf')]],
  );
  assert.match(sshd.notes[0]?.message ?? '', /jail\.conf:\d+\) replaced by an edge ban/);
  const skipped = await loadJails(dirsFor(DEBIAN_DIR), { localActions: 'skip' });
  assert.equal(byName(skipped.jails, 'sshd').supported, false);
  assert.match(byName(skipped.jails, 'sshd').skipReason ?? '', /localactions = skip/);
  await assert.rejects(loadJails(dirsFor(DEBIAN_DIR), { localActions: 'error' }), /jail\.conf:\d+: .*local firewall action iptables-multiport/);
  assert.equal(sshd.filter, 'sshd[mode=normal]');
  assert.deepEqual(sshd.logpath, ['/var/log/auth.log']);
  assert.equal(sshd.sources.enabled?.file, path.join(DEBIAN_DIR, 'jail.d/defaults-debian.conf'));
  // Every jail of jail.conf is there (disabled), plus edgeban's built-in ones.
  const names = jails.map((j) => j.name);
  for (const name of ['apache-auth', 'nginx-http-auth', 'postfix', 'dovecot', 'traefik-auth', 'recidive', 'traefik', 'nginx', 'apache'])
    assert.ok(names.includes(name), name);
  assert.ok(jails.length > 90);
});

test('a jail.local setting banaction = opnsense[…] makes the jails supported, params resolved as fail2ban resolves them', async () => {
  const { dir, cleanup } = await copyOfDebianConfig();
  try {
    await writeFiles(dir, { 'jail.local': JAIL_LOCAL });
    // fail2ban must be able to read edgeban's action files too (they are valid action.d files).
    await copyShippedActions(dir);
    const { jails, unsupported } = await loadJails(dirsFor(dir));
    assert.deepEqual(unsupported, []);
    const enabled = jails.filter((j) => j.enabled);
    assert.deepEqual(enabled.map((j) => j.name).sort(), ['dovecot', 'postfix', 'sshd']);
    assert.ok(enabled.every((j) => j.supported));

    const expected = runFail2banPython(FAIL2BAN_JAILS, [dir]) as Record<string, Record<string, unknown>>;
    for (const jail of enabled) {
      const ref = expected[jail.name];
      assert.ok(ref, jail.name);
      assert.deepEqual(Object.fromEntries(jail.actions.map((a) => [a.name, a.params])), ref.actions, `${jail.name} actions`);
      assert.equal(jail.bantime, (ref.bantime as number) < 0 ? -1 : ref.bantime, `${jail.name} bantime`);
      assert.equal(jail.findtime, ref.findtime);
      assert.equal(jail.maxretry, ref.maxretry);
      assert.deepEqual(jail.ignoreip, ref.ignoreip);
      const filter = await loadJailFilter(jail, dirsFor(dir));
      assert.deepEqual(
        filter.failregex.map((r) => r.pattern),
        ref.failregex,
        `${jail.name} failregex`,
      );
      assert.equal(filter.prefregex?.pattern, ref.prefregex, `${jail.name} prefregex`);
    }
    const sshd = byName(jails, 'sshd');
    assert.equal(sshd.filter, 'sshd[mode=aggressive]');
    assert.deepEqual(sshd.actions[0]?.params, {
      firewall: '192.168.123.1',
      key: SECRET_KEY,
      secret: SECRET,
      alias: 'fail2ban_blocklist',
      port: 'ssh',
      protocol: 'tcp',
      chain: '<known/chain>',
      name: 'sshd',
      actname: 'opnsense',
    });
    assert.deepEqual(sshd.actions[0]?.source, { file: path.join(dir, 'jail.local'), line: 3, key: 'banaction' });
    const dovecot = byName(jails, 'dovecot');
    assert.deepEqual(
      dovecot.actions.map((a) => a.native),
      ['opnsense', 'ntfy'],
    );
    assert.deepEqual(dovecot.actions[1]?.source, { file: path.join(dir, 'jail.local'), line: 14, key: 'action' });
    assert.equal(byName(jails, 'postfix').bantime, -1);
    assert.equal(byName(jails, 'postfix').options.bantime, '-1');
  } finally {
    await cleanup();
  }
});

test("a config dir with only jail.local gets edgeban's built-in defaults: %(action_)s, %(action_mw)s, the stock jails", async () => {
  const { dir, cleanup } = await tempConfig({
    'jail.local': [
      '[DEFAULT]',
      'banaction = opnsense[firewall="198.51.100.1", key="K", secret="S"]',
      '',
      '[dovecot]',
      'enabled = true',
      '',
      '[postfix]',
      'enabled = yes',
      'mode = aggressive',
      'action = %(action_mw)s',
      '',
      '[myapp]',
      'enabled = true',
      'filter = myapp[mode=strict]',
      'logpath = /var/log/myapp/*.log tail',
      '          /var/log/myapp.log',
      'maxretry = 3',
      'findtime = 1d',
      'bantime = 1w',
      'bantime.increment = true',
      'action = %(action_)s',
      '         webhook[url="https://hooks.example.org/x", token="T0K"]',
    ].join('\n'),
  });
  try {
    const { jails, unsupported } = await loadJails(dirsFor(dir));
    const dovecot = byName(jails, 'dovecot');
    assert.equal(dovecot.supported, true);
    assert.equal(dovecot.filter, 'dovecot[mode=normal]');
    assert.deepEqual(dovecot.logpath, ['/var/log/mail.log']);
    assert.deepEqual(dovecot.actions[0]?.params, {
      firewall: '198.51.100.1',
      key: 'K',
      secret: 'S',
      alias: 'fail2ban_blocklist',
      port: 'pop3,pop3s,imap,imaps,submission,465,sieve',
      protocol: 'tcp',
      chain: '<known/chain>',
      name: 'dovecot',
      actname: 'opnsense',
    });
    assert.equal(dovecot.actions[0]?.file, path.join(SHIPPED_ACTIONS, 'opnsense.conf'));
    assert.equal(dovecot.sources.banaction?.file, path.join(dir, 'jail.local'));
    assert.equal(dovecot.sources.action?.file, '<edgeban>/jail.conf');

    // sendmail-whois (from %(action_mw)s) is not run, and said so; the jail still bans.
    const postfix = byName(jails, 'postfix');
    assert.equal(postfix.supported, true);
    assert.equal(postfix.filter, 'postfix[mode=aggressive]');
    assert.deepEqual(
      postfix.actions.map((a) => a.name),
      ['opnsense'],
    );
    assert.deepEqual(
      unsupported.map((u) => [u.jail, u.action]),
      [['postfix', 'sendmail-whois']],
    );
    assert.match(unsupported[0]?.reason ?? '', /sendmail-whois is a fail2ban action edgeban does not run/);
    assert.deepEqual(
      postfix.notes.map((n) => [n.kind, n.subject]),
      [['not-run', 'sendmail-whois']],
    );

    const myapp = byName(jails, 'myapp');
    assert.equal(myapp.supported, true);
    assert.deepEqual(myapp.logpath, ['/var/log/myapp/*.log', '/var/log/myapp.log']);
    assert.deepEqual([myapp.maxretry, myapp.findtime, myapp.bantime], [3, 86400, 604800]);
    assert.equal(myapp.options['bantime.increment'], 'true');
    assert.deepEqual(
      myapp.actions.map((a) => [a.native, a.params.url ?? a.params.alias]),
      [
        ['opnsense', 'fail2ban_blocklist'],
        ['webhook', 'https://hooks.example.org/x'],
      ],
    );
    // The stock jails stay off.
    for (const name of ['traefik', 'nginx', 'apache']) assert.equal(byName(jails, name).enabled, false);
  } finally {
    await cleanup();
  }
});

test('without any config dir the built-in jails load, all disabled', async () => {
  const { jails, unsupported } = await loadJails(dirsFor());
  assert.deepEqual(
    jails.map((j) => [j.name, j.enabled]),
    [
      ['postfix', false],
      ['dovecot', false],
      ['postfix-sasl', false],
      ['traefik', false],
      ['nginx', false],
      ['apache', false],
    ],
  );
  assert.deepEqual(unsupported, []);
});

test('a user action.d file of the same name overrides the shipped action (its [Init] defaults apply)', async () => {
  const { dir, cleanup } = await tempConfig({
    'action.d/opnsense.conf': '[INCLUDES]\nbefore = opnsense-base.conf\n[Init]\nalias = edge_block\n',
    'action.d/opnsense-base.conf': '[Definition]\nedgeban_native = opnsense\n[Init]\nfirewall = 203.0.113.1\nkey =\nsecret =\n',
    'jail.local': '[dovecot]\nenabled = true\n',
  });
  try {
    const { jails } = await loadJails(dirsFor(dir));
    const params = byName(jails, 'dovecot').actions[0]?.params;
    assert.equal(params?.alias, 'edge_block');
    assert.equal(params?.firewall, '203.0.113.1');
  } finally {
    await cleanup();
  }
});

test("a jail's filter is read as JailReader reads it: [Init] values and the jail's filter options win", async () => {
  const { dir, cleanup } = await tempConfig({
    'filter.d/initvar.conf': '[Definition]\nfailregex = ^%(word)s <HOST> <tail>$\ntail = end\n[Init]\nword = hello\n[DEFAULT]\nword = dflt\n',
    'jail.local': '[DEFAULT]\nbanaction = opnsense[firewall="192.0.2.1"]\n[initvar]\nenabled = true\nlogpath = /dev/null\nfilter = initvar[tail=fin]\n',
  });
  try {
    await copyShippedActions(dir);
    const dirs = dirsFor(dir);
    const jail = byName((await loadJails(dirs)).jails, 'initvar');
    const expected = runFail2banPython(FAIL2BAN_JAILS, [dir]) as Record<string, Record<string, unknown>>;
    const forJail = await loadJailFilter(jail, dirs);
    assert.deepEqual(
      forJail.failregex.map((r) => r.pattern),
      expected.initvar?.failregex,
    );
    assert.deepEqual(
      forJail.failregex.map((r) => r.pattern),
      ['^hello <HOST> fin$'],
    );
    // fail2ban-regex (no jail) does not see [Init] values as %(…)s vars: `fail2ban-regex -c DIR x initvar -v`.
    assert.deepEqual(
      (await loadFilter('initvar', dirs)).failregex.map((r) => r.pattern),
      ['^dflt <HOST> end$'],
    );
  } finally {
    await cleanup();
  }
});
