import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { EdgebanEnv, FirewallEndpoint } from '../../src/config/env.ts';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadJails, type JailDefinition } from '../../src/config/fail2ban/jail-definition.ts';
import { jailSettings } from '../../src/jails/settings.ts';
import { planTargets, renamedTarget, targetsInUse } from '../../src/jails/targets.ts';
import { tempConfig, SHIPPED_ACTIONS, REPO } from '../config/fixtures.ts';

const KEY = 'k3y-ABCDEFGH';
const SECRET = 's3cret-IJKLMNOP';
const ENV_FIREWALL: FirewallEndpoint = {
  url: 'https://192.0.2.254',
  key: 'envkey-1234',
  secret: 'envsecret-5678',
  ca: null,
  tlsInsecure: false,
  timeoutMs: 30_000,
};
type TargetEnv = Pick<EdgebanEnv, 'firewalls' | 'alias'>;
const env = (over: Partial<TargetEnv> = {}): TargetEnv => ({ firewalls: [ENV_FIREWALL], alias: 'edge_block', ...over });

async function jails(t: TestContext, jailLocal: string): Promise<{ dir: string; jails: JailDefinition[] }> {
  const { dir, cleanup } = await tempConfig({ 'jail.local': jailLocal });
  t.after(cleanup);
  const loaded = await loadJails({ configDir: dir, shippedFilterDir: path.join(REPO, 'test/config/no-such-dir'), shippedActionDir: SHIPPED_ACTIONS });
  return { dir, jails: loaded.jails.filter((j) => j.enabled) };
}

function byName(list: JailDefinition[], name: string): JailDefinition {
  const jail = list.find((j) => j.name === name);
  assert.ok(jail, name);
  return jail;
}

test('defaults: fail2ban values, ignoreip 127.0.0.1/8 ::1, /128, target = the environment alias', async (t) => {
  const { jails: list } = await jails(t, '[dovecot]\nenabled = true\n');
  const s = jailSettings(byName(list, 'dovecot'), env());
  assert.equal(s.maxretry, 5);
  assert.equal(s.findtimeSec, 600);
  assert.equal(s.bantimeSec, 600);
  assert.deepEqual(
    s.ignoreip.map((c) => c.text),
    ['127.0.0.0/8', '::1'],
  );
  assert.equal(s.ignoreself, true);
  assert.equal(s.ipv6prefix, 128);
  assert.equal(s.banprivate, false);
  assert.equal(s.increment.enabled, false);
  assert.deepEqual(
    s.targets.map((x) => x.id),
    ['edge_block'],
    'no alias written: OPNSENSE_ALIAS wins over the action file default',
  );
});

test('every bantime.* option, ignoreip CIDRs and masks, ipv6prefix', async (t) => {
  const { jails: list } = await jails(
    t,
    `
[postfix]
enabled = true
maxretry = 3
findtime = 1h
bantime = 2h
bantime.increment = true
bantime.factor = 1.5
bantime.multipliers = 1 2 4 8
bantime.maxtime = 1w
bantime.rndtime = 10m
bantime.overalljails = yes
ignoreip = 192.0.2.0/24, 2001:db8:1::/48
           198.51.100.0/255.255.255.0 203.0.113.9
ignoreself = false
ipv6prefix = 64
banprivate = true
`,
  );
  const s = jailSettings(byName(list, 'postfix'), env());
  assert.deepEqual(
    {
      maxretry: s.maxretry,
      findtime: s.findtimeSec,
      bantime: s.bantimeSec,
      increment: s.increment,
      ignoreself: s.ignoreself,
      ipv6prefix: s.ipv6prefix,
      banprivate: s.banprivate,
    },
    {
      maxretry: 3,
      findtime: 3600,
      bantime: 7200,
      increment: { enabled: true, factor: 1.5, formula: 'default', multipliers: [1, 2, 4, 8], maxtimeSec: 604800, rndtimeSec: 600, overalljails: true },
      ignoreself: false,
      ipv6prefix: 64,
      banprivate: true,
    },
  );
  assert.deepEqual(
    s.ignoreip.map((c) => c.text),
    ['192.0.2.0/24', '2001:db8:1::/48', '198.51.100.0/24', '203.0.113.9'],
  );
});

test("the exponential formula from fail2ban's jail.conf is accepted; other Python is a ConfigError", async (t) => {
  const { jails: ok } = await jails(
    t,
    '[dovecot]\nenabled = true\nbantime.formula = ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)\n',
  );
  assert.equal(jailSettings(byName(ok, 'dovecot'), env()).increment.formula, 'exponential');
  const { dir, jails: bad } = await jails(t, '[dovecot]\nenabled = true\n\nbantime.formula = ban.Time * __import__("os").getpid()\n');
  assert.throws(
    () => jailSettings(byName(bad, 'dovecot'), env()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.file, path.join(dir, 'jail.local'));
      assert.equal(error.line, 4);
      assert.equal(error.key, 'bantime.formula');
      assert.match(error.message, /does not evaluate Python/);
      return true;
    },
  );
});

test('bad values are ConfigErrors naming file, line and key', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['bantime.factor = lots', 'bantime.factor', /positive number, not "lots"/],
    ['bantime.multipliers = 1 2 x', 'bantime.multipliers', /whole numbers/],
    ['bantime.maxtime = forever', 'bantime.maxtime', /duration/],
    ['bantime.increment = perhaps', 'bantime.increment', /boolean/],
    ['ipv6prefix = 16', 'ipv6prefix', /from 32 to 128/],
    ['ignoreip = 192.0.2.0/24 mail.example.org', 'ignoreip', /host name; edgeban does not resolve/],
    ['ignoreip = 192.0.2.300', 'ignoreip', /not an address or network/],
    ['banprivate = sometimes', 'banprivate', /boolean/],
  ];
  for (const [line, key, message] of cases) {
    // Some of these loadJails already rejects; either way the error must point at the line.
    let caught: unknown = null;
    const { dir, cleanup } = await tempConfig({ 'jail.local': `[dovecot]\nenabled = true\n${line}\n` });
    t.after(cleanup);
    try {
      const loaded = await loadJails({ configDir: dir, shippedFilterDir: path.join(REPO, 'test/config/no-such-dir'), shippedActionDir: SHIPPED_ACTIONS });
      jailSettings(byName(loaded.jails, 'dovecot'), env());
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof ConfigError, line);
    assert.equal(`${caught.file}:${caught.line}:${caught.key}`, `${path.join(dir, 'jail.local')}:3:${key}`, line);
    assert.match(caught.message, message, line);
  }
});

test("targets: environment firewalls by alias; a jail's own firewall is its own target and endpoint", async (t) => {
  const { jails: list } = await jails(
    t,
    `
[dovecot]
enabled = true

[postfix]
enabled = true
banaction = opnsense[alias="mail_block"]

[traefik]
enabled = true
banaction = opnsense[firewall="198.51.100.1", key="${KEY}", secret="${SECRET}", alias="fail2ban_blocklist"]

[nginx]
enabled = true
banaction = opnsense[firewall="198.51.100.1:8443", key="${KEY}", secret="${SECRET}"]
action = %(action_)s
         opnsense[firewall="2001:db8::1", key="${KEY}", secret="${SECRET}", alias="v6_block"]
`,
  );
  const e = env();
  const ids = (name: string) => jailSettings(byName(list, name), e).targets.map((x) => x.id);
  assert.deepEqual(ids('dovecot'), ['edge_block']);
  assert.deepEqual(ids('postfix'), ['mail_block']);
  assert.deepEqual(ids('traefik'), ['opnsense:198.51.100.1/fail2ban_blocklist'], 'an alias written explicitly is kept even when it equals the default');
  assert.deepEqual(ids('nginx'), ['opnsense:198.51.100.1:8443/edge_block', 'opnsense:2001:db8::1/v6_block']);

  const { targets, manual } = planTargets(list, e);
  assert.ok(manual !== null && targets.includes(manual), 'OPNSENSE_ALIAS (edge_block) is a jail target here: the manual one is that object');
  const summary = targets
    .map((x) => ({ id: x.id, alias: x.alias, urls: x.endpoints.map((p) => p.url), jails: x.jails }))
    .sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(summary, [
    { id: 'edge_block', alias: 'edge_block', urls: ['https://192.0.2.254'], jails: ['dovecot'] },
    { id: 'mail_block', alias: 'mail_block', urls: ['https://192.0.2.254'], jails: ['postfix'] },
    { id: 'opnsense:198.51.100.1:8443/edge_block', alias: 'edge_block', urls: ['https://198.51.100.1:8443'], jails: ['nginx'] },
    { id: 'opnsense:198.51.100.1/fail2ban_blocklist', alias: 'fail2ban_blocklist', urls: ['https://198.51.100.1'], jails: ['traefik'] },
    { id: 'opnsense:2001:db8::1/v6_block', alias: 'v6_block', urls: ['https://[2001:db8::1]'], jails: ['nginx'] },
  ]);
  const own = targets.find((x) => x.id === 'opnsense:198.51.100.1/fail2ban_blocklist')!;
  assert.equal(own.endpoints[0]!.key, KEY);
  assert.equal(own.endpoints[0]!.secret, SECRET);
  assert.equal(targets.find((x) => x.id === 'edge_block')!.endpoints[0], ENV_FIREWALL);
});

test('target errors: missing credentials, conflicting credentials, no environment firewall; secrets never in messages', async (t) => {
  const { dir, jails: noSecret } = await jails(t, `[dovecot]\nenabled = true\nbanaction = opnsense[firewall="198.51.100.1", key="${KEY}"]\n`);
  assert.throws(
    () => planTargets(noSecret, env()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(`${error.file}:${error.line}:${error.key}`, `${path.join(dir, 'jail.local')}:3:secret`);
      assert.ok(!error.message.includes(KEY));
      return true;
    },
  );
  const { jails: conflict } = await jails(
    t,
    `
[dovecot]
enabled = true
banaction = opnsense[firewall="198.51.100.1", key="${KEY}", secret="${SECRET}"]
[postfix]
enabled = true
banaction = opnsense[firewall="198.51.100.1", key="${KEY}", secret="other-secret-value"]
`,
  );
  assert.throws(
    () => planTargets(conflict, env()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /other credentials/);
      assert.ok(!error.message.includes(SECRET) && !error.message.includes('other-secret-value'));
      return true;
    },
  );
  const { jails: plain } = await jails(t, '[dovecot]\nenabled = true\n');
  assert.throws(() => planTargets(plain, env({ firewalls: [] })), /OPNSENSE_URL is not set/);
  const { dir: sameDir, jails: sameFirewall } = await jails(
    t,
    `[dovecot]\nenabled = true\nbanaction = opnsense[firewall="192.0.2.254", key="${KEY}", secret="${SECRET}"]\n`,
  );
  assert.throws(
    () => planTargets(sameFirewall, env()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(`${error.file}:${error.line}:${error.key}`, `${path.join(sameDir, 'jail.local')}:3:key`);
      assert.match(error.message, /OPNSENSE_URL's, but this key= differs from OPNSENSE_KEY/);
      assert.ok(!error.message.includes(KEY) && !error.message.includes(ENV_FIREWALL.key));
      return true;
    },
  );
  const { jails: badAlias } = await jails(t, '[dovecot]\nenabled = true\nbanaction = opnsense[alias="not-valid"]\n');
  assert.throws(() => jailSettings(byName(badAlias, 'dovecot'), env()), /not a valid OPNsense alias name/);
});

test("one target per firewall and alias: the environment's firewall named by a jail (any spelling) is the environment's target; the manual target only when used", async (t) => {
  const { jails: list } = await jails(
    t,
    `
[dovecot]
enabled = true
banaction = opnsense[firewall="https://192.0.2.254:443/", key="envkey-1234", secret="envsecret-5678", alias="edge_block"]

[postfix]
enabled = true
banaction = opnsense[firewall="192.0.2.254", alias="mail_block"]

[traefik]
enabled = true
banaction = opnsense[firewall="198.51.100.1", key="${KEY}", secret="${SECRET}", alias="web_block", allow_insecure="true"]

[nginx]
enabled = true
banaction = opnsense[firewall="https://198.51.100.1/", key="${KEY}", secret="${SECRET}", alias="web_block"]
`,
  );
  const e = env();
  const plan = planTargets(list, e);
  const summary = plan.targets
    .map((x) => ({ id: x.id, urls: x.endpoints.map((p) => p.url), insecure: x.endpoints.map((p) => p.tlsInsecure), jails: x.jails.sort() }))
    .sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(summary, [
    { id: 'edge_block', urls: ['https://192.0.2.254'], insecure: [false], jails: ['dovecot'] },
    { id: 'mail_block', urls: ['https://192.0.2.254'], insecure: [false], jails: ['postfix'] },
    { id: 'opnsense:198.51.100.1/web_block', urls: ['https://198.51.100.1'], insecure: [true], jails: ['nginx', 'traefik'] },
  ]);
  assert.equal(
    plan.manual,
    plan.targets.find((x) => x.id === 'edge_block'),
    'OPNSENSE_ALIAS used by a jail: one target, also for manual bans',
  );

  const { jails: other } = await jails(t, `[postfix]\nenabled = true\nbanaction = opnsense[alias="mail_block"]\n`);
  const otherPlan = planTargets(other, e);
  assert.deepEqual(
    otherPlan.targets.map((x) => x.id),
    ['mail_block'],
  );
  assert.equal(otherPlan.manual?.id, 'edge_block');
  assert.deepEqual(
    targetsInUse(otherPlan, []).map((x) => x.id),
    ['mail_block'],
    'an unused OPNSENSE_ALIAS gets no target',
  );
  assert.deepEqual(
    targetsInUse(otherPlan, ['mail_block', 'edge_block']).map((x) => x.id),
    ['mail_block', 'edge_block'],
    'a ledger claim in it does',
  );
  assert.equal(planTargets([], env({ firewalls: [] })).manual, null, 'no OPNSENSE_URL, no manual target');
});

test('ledger target names an older edgeban wrote map to the one target of their firewall and alias', () => {
  const e = env();
  assert.equal(renamedTarget('opnsense:192.0.2.254/edge_block', e), 'edge_block', "the environment's firewall");
  assert.equal(renamedTarget('opnsense:https://192.0.2.254:443//mail_block', e), 'mail_block');
  assert.equal(renamedTarget('opnsense:https://198.51.100.1:443//web_block', e), 'opnsense:198.51.100.1/web_block', 'another spelling of a jail-only firewall');
  assert.equal(renamedTarget('opnsense:198.51.100.1/web_block', e), null, 'already the current name');
  assert.equal(renamedTarget('opnsense:2001:db8::1/v6_block', e), null);
  assert.equal(renamedTarget('edge_block', e), null);
  assert.equal(renamedTarget('opnsense:not a url/x', e), null);
});
