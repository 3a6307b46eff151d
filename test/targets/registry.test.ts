// Backends chosen by kind from the registry: a jail action named by a kind is parsed by that kind,
// over its env defaults, with bad parameters reported at the action's file, line and key.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { EdgebanEnv } from '../../src/config/env.ts';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { loadJails } from '../../src/config/fail2ban/jail-definition.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { jailTargets, planTargets } from '../../src/jails/targets.ts';
import { buildEnforcement } from '../../src/targets/enforcement.ts';
import { MemoryTarget } from '../../src/targets/memory/target.ts';
import { opnsenseKind } from '../../src/targets/opnsense/kind.ts';
import { findTargetKind, GENERIC_TARGET_KINDS, paramsOverEnv, TARGET_KINDS } from '../../src/targets/registry.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { REPO, SHIPPED_ACTIONS, tempConfig } from '../config/fixtures.ts';

type TargetEnv = Pick<EdgebanEnv, 'firewalls' | 'alias' | 'targetEnv'>;
const noFirewall: TargetEnv = { firewalls: [], alias: 'fail2ban_blocklist', targetEnv: {} };

async function enabledJails(t: TestContext, jailLocal: string, files: Record<string, string> = {}) {
  const { dir, cleanup } = await tempConfig({ 'jail.local': jailLocal, ...files });
  t.after(cleanup);
  const loaded = await loadJails(
    { configDir: dir, shippedFilterDir: path.join(REPO, 'test/config/no-such-dir'), shippedActionDir: SHIPPED_ACTIONS },
    { targetKinds: GENERIC_TARGET_KINDS },
  );
  return { dir, jails: loaded.jails.filter((j) => j.enabled) };
}

test('registry: one entry per kind, found by name; opnsense keeps its own jail path', () => {
  assert.deepEqual(
    TARGET_KINDS.map((k) => k.kind),
    ['opnsense', 'mikrotik', 'cloudflare', 'feed', 'memory'],
  );
  assert.equal(findTargetKind('memory')?.kind, 'memory');
  assert.equal(findTargetKind('nope'), null);
  assert.ok(!GENERIC_TARGET_KINDS.includes('opnsense'));
});

test('a jail action named by a registry kind becomes its own target, shared by jails naming the same list', async (t) => {
  const { jails } = await enabledJails(
    t,
    ['[a]', 'enabled = true', 'filter =', 'action = memory[list=edge1]', '', '[b]', 'enabled = true', 'filter =', 'action = memory[list=edge1]', ''].join('\n'),
  );
  const plan = planTargets(jails, noFirewall);
  assert.equal(plan.targets.length, 1);
  const target = plan.targets[0]!;
  assert.equal(target.id, 'memory:memory edge1');
  assert.deepEqual(target.jails, ['a', 'b']);
  assert.equal(target.spec?.kind, 'memory');
  assert.deepEqual(
    jailTargets(jails[0]!, noFirewall).map((x) => x.id),
    ['memory:memory edge1'],
    'the jail records its bans under that target',
  );
});

test('an action file declaring edgeban_native = <kind> runs as that backend, its [Init] giving the defaults', async (t) => {
  const { jails } = await enabledJails(t, ['[a]', 'enabled = true', 'filter =', 'action = edge-mem', ''].join('\n'), {
    'action.d/edge-mem.conf': ['[Definition]', 'edgeban_native = memory', '', '[Init]', 'list = fromfile', ''].join('\n'),
  });
  const plan = planTargets(jails, noFirewall);
  assert.deepEqual(
    plan.targets.map((x) => [x.id, x.spec?.kind]),
    [['memory:memory fromfile', 'memory']],
  );
});

test('bad parameters of a registry action are ConfigErrors naming file, line and key', async (t) => {
  const { dir, jails } = await enabledJails(t, ['[a]', 'enabled = true', 'filter =', 'action = memory[list="two words"]', ''].join('\n'));
  assert.throws(
    () => planTargets(jails, noFirewall),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.file, path.join(dir, 'jail.local'));
      assert.equal(error.line, 4);
      assert.equal(error.key, 'list');
      return true;
    },
  );
  const missing = await enabledJails(t, ['[a]', 'enabled = true', 'filter =', 'action = memory', ''].join('\n'));
  assert.throws(
    () => planTargets(missing.jails, noFirewall),
    (error: unknown) => error instanceof ConfigError && error.key === 'list' && /list= is missing/.test(error.message),
  );
});

test('opnsense options: the action parameters and their env equivalents; errors name the key', () => {
  const options = opnsenseKind.parseOptions({ firewall: '192.0.2.1', key: 'k-123', secret: 's-456', allow_insecure: 'true' });
  assert.equal(options.endpoint.url, 'https://192.0.2.1');
  assert.equal(options.alias, 'fail2ban_blocklist');
  assert.equal(options.endpoint.tlsInsecure, true);
  assert.equal(opnsenseKind.identity(options), 'https://192.0.2.1 fail2ban_blocklist');
  const fromEnv = opnsenseKind.parseOptions(
    paramsOverEnv(
      opnsenseKind,
      { alias: 'mine' },
      {
        OPNSENSE_URL: 'https://fw.example.net:8443',
        OPNSENSE_KEY: 'envkey',
        OPNSENSE_SECRET: 'envsecret',
        OPNSENSE_ALIAS: 'other',
      },
    ),
  );
  assert.equal(fromEnv.endpoint.url, 'https://fw.example.net:8443');
  assert.equal(fromEnv.endpoint.key, 'envkey');
  assert.equal(fromEnv.alias, 'mine', "the action's own parameter wins over the env default");
  for (const [params, key] of [
    [{ key: 'k', secret: 's' }, 'firewall'],
    [{ firewall: '192.0.2.1', secret: 's' }, 'key'],
    [{ firewall: '192.0.2.1', key: 'k' }, 'secret'],
    [{ firewall: '192.0.2.1', key: 'k', secret: 's', alias: '9bad' }, 'alias'],
    [{ firewall: '192.0.2.1', key: 'k', secret: 's', allow_insecure: 'maybe' }, 'allow_insecure'],
  ] as const) {
    assert.throws(
      () => opnsenseKind.parseOptions(params),
      (error: unknown) => (error as { key?: string }).key === key,
      key,
    );
  }
});

test("buildEnforcement builds a registry target's backend and reconciler from the plan", async (t) => {
  const { jails } = await enabledJails(t, ['[a]', 'enabled = true', 'filter =', 'action = memory[list=edge2]', ''].join('\n'));
  const { targets } = planTargets(jails, noFirewall);
  const log = new CapturedLog('warn');
  const clock = new ManualClock();
  const ledger = await Ledger.open({ store: await FileLedgerStore.open({ dir: await tempDir(t), logger: log.logger }), clock, logger: log.logger });
  const env = {
    reconcileIntervalMs: 60_000,
    apiConcurrency: 4,
    foreignPolicy: 'keep',
    adoptBantimeSec: 600,
    killStates: false,
    listPageSize: 9999,
  } as EdgebanEnv;
  const enforcement = buildEnforcement(env, targets, ledger, clock, log.logger, () => null);
  t.after(async () => {
    await enforcement.close();
    await ledger.close();
  });
  assert.equal(enforcement.backends.length, 1);
  const backend = enforcement.backends[0]!;
  assert.ok(backend instanceof MemoryTarget);
  assert.equal(backend.id, 'memory edge2');
  await ledger.ban({ target: targets[0]!.id, address: '192.0.2.77', jail: 'a', origin: 'jail', durationMs: 60_000 });
  const reconciler = enforcement.reconcilers[0]!;
  const pass = await reconciler.start();
  assert.equal(pass.ok, true, pass.error ?? '');
  assert.deepEqual(backend.addresses(), ['192.0.2.77']);
  assert.equal(reconciler.status().kind, 'memory');
});

test('mikrotik[…] and cloudflare[…] (their registry lines) become targets through the shipped action files and the env defaults', async (t) => {
  const { jails } = await enabledJails(
    t,
    [
      '[DEFAULT]',
      'banaction = mikrotik[url="https://192.0.2.1", user=edgeban, password="pw-0123456789"]',
      '',
      '[a]',
      'enabled = true',
      'filter =',
      'action = %(action_)s',
      '',
      '[b]',
      'enabled = true',
      'filter =',
      'action = cloudflare[list=edgeban]',
      '',
    ].join('\n'),
  );
  const env: TargetEnv = {
    ...noFirewall,
    targetEnv: { CLOUDFLARE_ACCOUNT_ID: '0123456789abcdef0123456789abcdef', CLOUDFLARE_API_TOKEN: 'tok-0123456789abcdefghijkl' },
  };
  const plan = planTargets(jails, env);
  assert.deepEqual(
    plan.targets.map((x) => [x.id, x.spec?.kind, x.jails]),
    [
      ['mikrotik:https://192.0.2.1 edgeban', 'mikrotik', ['a']],
      ['cloudflare:0123456789abcdef0123456789abcdef/edgeban', 'cloudflare', ['b']],
    ],
  );
  assert.deepEqual(
    plan.targets.flatMap((x) => x.spec?.secrets ?? []).sort(),
    ['pw-0123456789', 'tok-0123456789abcdefghijkl'],
    'secrets known for log scrubbing',
  );
  const noToken = { ...noFirewall, targetEnv: { CLOUDFLARE_ACCOUNT_ID: '0123456789abcdef0123456789abcdef' } };
  assert.throws(
    () => planTargets(jails, noToken),
    (error: unknown) => error instanceof ConfigError && error.key === 'token' && error.line === 12,
  );
});

test("every backend kind works as banaction through jail.conf's action_ (port, protocol, chain… are fail2ban's, not the backend's)", async (t) => {
  const params: Record<string, string> = {
    mikrotik: 'url="https://192.0.2.10", user=edgeban, password=pw-0123456789, list=edgeban',
    cloudflare: 'account=0123456789abcdef0123456789abcdef, list=edgeban_blocklist, token=tok-0123456789abcdef',
    feed: 'name=pfsense',
    memory: 'list=edge1',
  };
  for (const kind of GENERIC_TARGET_KINDS) {
    assert.ok(params[kind] !== undefined, `a test case for ${kind}`);
    const { jails } = await enabledJails(
      t,
      [
        '[DEFAULT]',
        `banaction = ${kind}[${params[kind]}]`,
        'port = 0:65535',
        'protocol = tcp',
        'chain = INPUT',
        'action_ = %(banaction)s[port="%(port)s", protocol="%(protocol)s", chain="%(chain)s"]',
        'action = %(action_)s',
        '',
        '[a]',
        'enabled = true',
        'filter =',
        'ipv6prefix = 64',
        '',
      ].join('\n'),
    );
    const plan = planTargets(jails, { ...noFirewall, targetEnv: { EDGEBAN_FEED_TOKEN: 'feed-token-0123456789' } });
    assert.deepEqual(
      plan.targets.map((x) => x.spec?.kind),
      [kind],
      kind,
    );
  }
});

test('a feed token written in a jail file is refused (the route reads it from the env only), naming the key', async (t) => {
  await assert.rejects(
    enabledJails(t, ['[a]', 'enabled = true', 'filter =', 'action = feed[name=pfsense, token=feed-token-0123456789]', ''].join('\n')).then(({ jails }) =>
      planTargets(jails, noFirewall),
    ),
    (error: Error) => /token: set only in the environment \(EDGEBAN_FEED_TOKEN\)/.test(error.message),
  );
});
