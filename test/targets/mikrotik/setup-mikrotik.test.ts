// `edgeban setup-mikrotik` as a process against `edgeban simulate --kind mikrotik --no-rules`: the raw
// drop rules are added once, a dry run and a second run change nothing, and doctor then passes the rule check.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { runCli, startCliSimulator } from '../../helpers/cli.ts';
import { mailSetup } from '../../helpers/mail-setup.ts';

const PASSWORD = 'setup-password-0123';
const ADMIN_PASSWORD = 'setup-admin-password-0123';
const LIST = 'edgeban';

type Sim = Awaited<ReturnType<typeof startCliSimulator>>;

/** The simulator with the daemon's user (from --user) and an admin user with write. */
async function router(t: TestContext): Promise<Sim> {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--user', 'edgeban', '--password', PASSWORD, '--policies', 'read,api,rest-api', '--no-rules']);
  await sim.admin('users', { name: 'admin', password: ADMIN_PASSWORD, policies: ['read', 'write', 'api', 'rest-api', 'policy'] });
  return sim;
}

function env(sim: Sim, extra: Record<string, string> = {}): Record<string, string> {
  return { MIKROTIK_URL: sim.url, MIKROTIK_USER: 'edgeban', MIKROTIK_PASSWORD: PASSWORD, MIKROTIK_LIST: LIST, ...extra };
}

const ADMIN = { MIKROTIK_SETUP_USER: 'admin', MIKROTIK_SETUP_PASSWORD: ADMIN_PASSWORD };

/** The rules as the router prints them, read through its REST API with the admin user. */
async function rawRules(sim: Sim, menu: 'ip' | 'ipv6'): Promise<Array<Record<string, string>>> {
  const response = await fetch(`${sim.url}/rest/${menu}/firewall/raw`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` },
  });
  assert.equal(response.status, 200);
  return (await response.json()) as Array<Record<string, string>>;
}

async function doctor(t: TestContext, sim: Sim): Promise<{ code: number; stdout: string }> {
  const { root, configDir, mailLog } = await mailSetup(t);
  await writeFile(
    path.join(configDir, 'jail.local'),
    ['[dovecot]', 'enabled = true', `logpath = ${mailLog}`, 'maxretry = 3', 'findtime = 10m', 'bantime = 1h', 'banaction = mikrotik', ''].join('\n'),
  );
  return runCli(['doctor'], { env: { TZ: 'UTC', EDGEBAN_DATA_DIR: path.join(root, 'data'), EDGEBAN_CONFIG_DIR: configDir, ...env(sim) }, cwd: root });
}

test('setup-mikrotik: a dry run changes nothing, a run adds the two raw drop rules, a second run changes nothing, doctor passes', async (t) => {
  const sim = await router(t);
  const before = await doctor(t, sim);
  assert.equal(before.code, 2, before.stdout);
  assert.match(before.stdout, /FAIL.*no enabled drop rule in \/ip\/firewall/);

  const dry = await runCli(['setup-mikrotik', '--dry-run'], { env: env(sim, ADMIN) });
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, /\/ip\/firewall\/raw: would add chain=prerouting src-address-list=edgeban action=drop comment="edgeban bans"/);
  assert.match(dry.stdout, /\/ipv6\/firewall\/raw: would add /);
  assert.match(dry.stdout, /\/user\/group\/add name=edgeban policy=read,write,api,rest-api/);
  assert.deepEqual(await rawRules(sim, 'ip'), []);
  assert.deepEqual(await rawRules(sim, 'ipv6'), []);

  const run = await runCli(['setup-mikrotik'], { env: env(sim, ADMIN) });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /\/ip\/firewall\/raw: added rule \*1/);
  assert.match(run.stdout, /done: 2 change\(s\)/);
  assert.doesNotMatch(run.stdout + run.stderr, new RegExp(ADMIN_PASSWORD));
  for (const menu of ['ip', 'ipv6'] as const) {
    const rules = await rawRules(sim, menu);
    assert.equal(rules.length, 1, menu);
    assert.deepEqual(
      { chain: rules[0]!.chain, list: rules[0]!['src-address-list'], action: rules[0]!.action, comment: rules[0]!.comment, disabled: rules[0]!.disabled },
      { chain: 'prerouting', list: LIST, action: 'drop', comment: 'edgeban bans', disabled: 'false' },
    );
  }

  const again = await runCli(['setup-mikrotik'], { env: env(sim, ADMIN) });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /\/ip\/firewall\/raw: rule \*1 already drops src-address-list=edgeban, kept/);
  assert.match(again.stdout, /nothing to change/);
  assert.equal((await rawRules(sim, 'ip')).length, 1);
  assert.equal((await rawRules(sim, 'ipv6')).length, 1);

  const after = await doctor(t, sim);
  assert.doesNotMatch(after.stdout, /^FAIL/m, after.stdout);
  assert.doesNotMatch(after.stdout, /no enabled drop rule/, after.stdout);
});

test('setup-mikrotik: a disabled matching rule is reported and an enabled one added', async (t) => {
  const sim = await router(t);
  await sim.admin('rules', { path: 'ip/firewall/raw', rules: [{ chain: 'prerouting', action: 'drop', 'src-address-list': LIST, disabled: 'true' }] });
  const run = await runCli(['setup-mikrotik'], { env: env(sim, ADMIN) });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /WARNING: \/ip\/firewall\/raw: rule \*1 drops src-address-list=edgeban but is disabled/);
  assert.match(run.stdout, /\/ip\/firewall\/raw: added rule \*2/);
  assert.deepEqual(
    (await rawRules(sim, 'ip')).map((r) => r.disabled),
    ['true', 'false'],
  );
});

test('setup-mikrotik with a user without the write policy: a clear error naming the policy (exit 2), nothing added', async (t) => {
  const sim = await router(t);
  // No MIKROTIK_SETUP_*: the daemon's read-only user is used.
  const run = await runCli(['setup-mikrotik'], { env: env(sim) });
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.match(run.stdout, /FAILED: PUT \/rest\/ip\/firewall\/raw: HTTP 403 .*lacks the read or write policy/);
  assert.deepEqual(await rawRules(sim, 'ip'), []);
});
