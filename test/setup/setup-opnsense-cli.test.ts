import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { runCli, startCliSimulator } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const DAEMON_KEY = 'setupDaemonKey0123456789';
const DAEMON_SECRET = 'setupDaemonSecret0123456789+/=';
const ADMIN_KEY = 'setupAdminKey0123456789';
const ADMIN_SECRET = 'setupAdminSecret0123456789+/=';
const ALIAS = 'fail2ban_blocklist';

interface SimState {
  aliases: Array<{ name: string; type: string }>;
  configRevisions: number;
  calls: number;
  filter: { rules: Array<Record<string, string>>; applied: boolean; rollbacks: number; rollbackPending: boolean };
}

async function setup(t: TestContext, simArgs: string[]) {
  const sim = await startCliSimulator(t, [
    '--key',
    DAEMON_KEY,
    '--secret',
    DAEMON_SECRET,
    '--admin-key',
    ADMIN_KEY,
    '--admin-secret',
    ADMIN_SECRET,
    '--auth-fail-delay',
    '0',
    '--no-alias',
    ...simArgs,
  ]);
  const dir = await tempDir(t, 'edgeban-setup-');
  const base = { OPNSENSE_URL: sim.url, OPNSENSE_KEY: DAEMON_KEY, OPNSENSE_SECRET: DAEMON_SECRET, EDGEBAN_DATA_DIR: dir };
  const adminEnv = { ...base, OPNSENSE_SETUP_KEY: ADMIN_KEY, OPNSENSE_SETUP_SECRET: ADMIN_SECRET };
  return {
    url: sim.url,
    admin: sim.admin,
    state: async () => (await sim.admin('state')) as SimState,
    asAdmin: (args: string[] = []) => runCli(['setup-opnsense', ...args], { env: adminEnv, cwd: dir }),
    asDaemon: (args: string[] = []) => runCli(['setup-opnsense', ...args], { env: base, cwd: dir }),
  };
}

const BLOCK = { enabled: '1', action: 'block', quick: '1', interface: 'wan', direction: 'in', source_net: ALIAS, destination_net: 'any', protocol: 'any' };

test('fresh 26.7 firewall: --dry-run changes nothing; then one External alias and one inet46 WAN block rule, applied; a second run changes nothing', async (t) => {
  const s = await setup(t, []);
  const dry = await s.asAdmin(['--dry-run']);
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  assert.match(dry.stdout, /OPNsense 26\.7\.2/);
  assert.match(dry.stdout, /alias: would create fail2ban_blocklist as External \(advanced\)/);
  assert.match(dry.stdout, /rule: would add "block in quick on wan from <fail2ban_blocklist> to any" for IPv4\+IPv6/);
  let state = await s.state();
  assert.deepEqual([state.aliases, state.filter.rules, state.configRevisions], [[], [], 0], 'a dry run changes nothing');

  const first = await s.asAdmin();
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /done: 2 change\(s\); filter applied/);
  state = await s.state();
  assert.deepEqual(
    state.aliases.map((a) => [a.name, a.type]),
    [[ALIAS, 'external']],
  );
  assert.equal(state.filter.rules.length, 1);
  const rule = state.filter.rules[0]!;
  for (const [field, value] of Object.entries({ ...BLOCK, ipprotocol: 'inet46' })) assert.equal(rule[field], value, field);
  assert.equal(state.filter.applied, true, 'the rule is live');
  const revisions = state.configRevisions;

  const second = await s.asAdmin();
  assert.equal(second.code, 0, second.stdout + second.stderr);
  assert.match(second.stdout, /alias: fail2ban_blocklist exists \(external\), kept/);
  assert.match(second.stdout, /already blocks IPv4\+IPv6 from the alias on wan, kept/);
  assert.match(second.stdout, /nothing to change/);
  state = await s.state();
  assert.equal(state.filter.rules.length, 1);
  assert.equal(state.aliases.length, 1);
  assert.equal(state.configRevisions, revisions, 'no config write on the second run');

  const json = await s.asAdmin(['--json']);
  assert.equal(json.code, 0);
  const report = JSON.parse(json.stdout) as { firewalls: Array<{ ok: boolean; changes: number }> };
  assert.deepEqual(
    report.firewalls.map((f) => [f.ok, f.changes]),
    [[true, 0]],
  );
});

test('24.7: two rules (inet and inet6), applied against a savepoint whose rollback is cancelled', async (t) => {
  const s = await setup(t, ['--opnsense-version', '24.7.12']);
  const result = await s.asAdmin();
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /OPNsense 24\.7\.12/);
  assert.match(result.stdout, /for IPv4 \(log on\)\n.*for IPv6 \(log on\)/);
  assert.match(result.stdout, /filter: savepoint, apply with 60 s rollback, confirm/);
  assert.match(result.stdout, /with a savepoint, rollback cancelled/);
  const state = await s.state();
  assert.deepEqual(state.filter.rules.map((r) => r.ipprotocol).sort(), ['inet', 'inet6']);
  assert.equal(state.filter.applied, true);
  assert.equal(state.filter.rollbackPending, false, 'the rollback was cancelled');
  const again = await s.asAdmin();
  assert.match(again.stdout, /nothing to change/);
  assert.equal((await s.state()).filter.rules.length, 2);
});

test('an existing Host alias is kept with a loud warning; only the missing IPv6 rule is added next to an inet rule', async (t) => {
  const s = await setup(t, ['--opnsense-version', '25.1.3']);
  await s.admin('aliases', { create: [{ name: ALIAS, type: 'host' }] });
  const added = await fetch(`${s.url}/api/firewall/filter/add_rule`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${ADMIN_KEY}:${ADMIN_SECRET}`).toString('base64')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rule: { ...BLOCK, ipprotocol: 'inet', description: 'made by hand' } }),
  });
  assert.equal(((await added.json()) as { result: string }).result, 'saved');
  const result = await s.asAdmin();
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /WARNING: alias fail2ban_blocklist exists as type host, not External: .*config\.xml.*backup revision \(opnsense\/plugins#3397\)/);
  assert.match(result.stdout, /already blocks IPv4 from the alias on wan, kept/);
  assert.match(result.stdout, /rule: add .* for IPv6 \(log on\)/);
  const state = await s.state();
  assert.deepEqual(
    state.aliases.map((a) => [a.name, a.type]),
    [[ALIAS, 'host']],
    'the alias is not touched',
  );
  assert.deepEqual(
    state.filter.rules.map((r) => r.ipprotocol),
    ['inet', 'inet6'],
  );
  assert.equal(state.filter.applied, true);
});

test("the daemon's least-privilege key gets a 403 with the privileges setup needs, and nothing changes", async (t) => {
  const s = await setup(t, []);
  const result = await s.asDaemon();
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /FAILED: .*forbidden/);
  assert.match(result.stdout, /setup-opnsense needs a key with more privileges than the daemon's/);
  assert.match(result.stdout, /Firewall: Alias: Edit \(page-firewall-alias-edit\)/);
  assert.match(result.stdout, /page-filter-api/);
  const state = await s.state();
  assert.deepEqual([state.aliases, state.filter.rules], [[], []]);
  assert.ok(!(result.stdout + result.stderr).includes(DAEMON_SECRET));
});
