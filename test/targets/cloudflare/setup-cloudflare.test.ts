import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli, startCliSimulator } from '../../helpers/cli.ts';
import { silentLogger } from '../../../src/logging/logger.ts';
import { cloudflareKind } from '../../../src/targets/cloudflare/cloudflare-kind.ts';

const ACCOUNT = '0123456789abcdef0123456789abcdef';
const ZONE_A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const ZONE_B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const TOKEN = 'cf-daemon-token-Qw3Er5Ty7Ui9Op1As2';
const SETUP_TOKEN = 'cf-setup-token-Zx4Cv6Bn8Mm0Lk2Jh3';

interface State {
  accounts: Record<string, Array<{ name: string; kind: string }>>;
  zones: Record<string, Array<{ expression: string; action: string; enabled: boolean }> | null>;
}

test('setup-cloudflare creates the list and one block rule per zone, changes nothing on a second run, and tells a token without Zone WAF Edit', async (t) => {
  const sim = await startCliSimulator(t, [
    '--kind',
    'cloudflare',
    '--account',
    ACCOUNT,
    '--zone',
    ZONE_A,
    '--zone',
    ZONE_B,
    '--token',
    TOKEN,
    '--setup-token',
    SETUP_TOKEN,
  ]);
  const state = async () => (await sim.admin('state')) as State;
  const env = { CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_URL: sim.url, CLOUDFLARE_SETUP_TOKEN: SETUP_TOKEN, CLOUDFLARE_API_TOKEN: TOKEN };

  const dry = await runCli(['setup-cloudflare', '--zone', ZONE_A, '--dry-run'], { env });
  assert.equal(dry.code, 0, dry.stderr + dry.stdout);
  assert.match(dry.stdout, /list: would create edgeban_blocklist \(kind ip\)/);
  assert.match(dry.stdout, /zone a{32}: would add WAF custom rule "\(ip\.src in \$edgeban_blocklist\)" → block/);
  assert.deepEqual((await state()).accounts[ACCOUNT], [], '--dry-run changed nothing');

  const first = await runCli(['setup-cloudflare', '--zone', ZONE_A], { env });
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, /list: created edgeban_blocklist/);
  assert.match(first.stdout, /done: 2 change\(s\)/);
  let s = await state();
  assert.deepEqual(
    s.accounts[ACCOUNT]!.map((l) => [l.name, l.kind]),
    [['edgeban_blocklist', 'ip']],
  );
  assert.deepEqual(
    s.zones[ZONE_A]!.map((r) => [r.expression, r.action, r.enabled]),
    [['(ip.src in $edgeban_blocklist)', 'block', true]],
  );
  assert.equal(s.zones[ZONE_B], null);

  const second = await runCli(['setup-cloudflare', '--zone', ZONE_A, '--zone', ZONE_B], { env });
  assert.equal(second.code, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /list: edgeban_blocklist exists .*kept/);
  assert.match(second.stdout, /zone a{32}: rule \w+ already blocks ip\.src in \$edgeban_blocklist, kept/);
  assert.match(second.stdout, /done: 1 change\(s\)/);
  s = await state();
  assert.equal(s.zones[ZONE_A]!.length, 1, 'no second rule in zone A');
  assert.equal(s.zones[ZONE_B]!.length, 1);

  const third = await runCli(['setup-cloudflare', '--zone', ZONE_A, '--zone', ZONE_B], { env });
  assert.equal(third.code, 0);
  assert.match(third.stdout, /nothing to change/);

  // The daemon's target now finds its list in use.
  const target = cloudflareKind.create(cloudflareKind.parseOptions({ account: ACCOUNT, list: 'edgeban_blocklist', token: TOKEN, api: sim.url }), {
    clock: { now: () => Date.now() },
    logger: silentLogger(),
  });
  const check = await target.check();
  assert.deepEqual([check.errors, check.warnings], [[], []]);

  const daemonToken = await runCli(['setup-cloudflare', '--zone', ZONE_A], { env: { ...env, CLOUDFLARE_SETUP_TOKEN: TOKEN } });
  assert.equal(daemonToken.code, 1);
  assert.match(daemonToken.stdout, /FAILED: .*403.*Zone WAF Edit/);
  for (const output of [dry, first, second, third, daemonToken]) {
    assert.ok(!output.stdout.includes(SETUP_TOKEN) && !output.stderr.includes(SETUP_TOKEN) && !output.stdout.includes(TOKEN), 'a token printed');
  }
});
