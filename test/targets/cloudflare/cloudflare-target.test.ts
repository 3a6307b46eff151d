import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { startCliSimulator } from '../../helpers/cli.ts';
import { silentLogger } from '../../../src/logging/logger.ts';
import { TargetError, type TargetCallRecord, type TargetDeps } from '../../../src/targets/edge-target.ts';
import { AccountLocks, CloudflareTarget, DEFAULT_TUNING, type CloudflareTuning } from '../../../src/targets/cloudflare/cloudflare-target.ts';
import { cloudflareKind, createCloudflareKind } from '../../../src/targets/cloudflare/cloudflare-kind.ts';
import { cloudflareIpv6PrefixError } from '../../../src/targets/cloudflare/cloudflare-address.ts';

const ACCOUNT = '0123456789abcdef0123456789abcdef';
const TOKEN = 'cf-test-token-Zq8Xv3Lm9Rt2Wy7Kp4Nd';
const READ_TOKEN = 'cf-read-token-Hs5Jb1Gc6Fe0Ua3Io8Yx';
const FAST: CloudflareTuning = { ...DEFAULT_TUNING, pollIntervalMs: 30, maxRetryAfterMs: 1000, timeoutMs: 10_000 };

interface SimState {
  accounts: Record<string, Array<{ id: string; name: string; items: Array<{ id: string; ip: string; comment: string }> }>>;
  submitted: number;
  conflicts: number;
  calls: Record<string, number>;
}

async function simulator(t: TestContext, extra: string[] = []) {
  const sim = await startCliSimulator(t, [
    '--kind',
    'cloudflare',
    '--account',
    ACCOUNT,
    '--list',
    'edgeban_blocklist',
    '--list',
    'other_list',
    '--token',
    TOKEN,
    '--read-token',
    READ_TOKEN,
    '--operation-delay-ms',
    '80',
    ...extra,
  ]);
  return { ...sim, state: async () => (await sim.admin('state')) as SimState };
}

function deps(calls: TargetCallRecord[] = []): TargetDeps {
  return { clock: { now: () => Date.now() }, logger: silentLogger(), onCall: (call) => calls.push(call) };
}

function target(url: string, options: { list?: string; token?: string; tuning?: Partial<CloudflareTuning>; calls?: TargetCallRecord[] } = {}) {
  return new CloudflareTarget(
    { account: ACCOUNT, list: options.list ?? 'edgeban_blocklist', token: options.token ?? TOKEN, api: url },
    deps(options.calls),
    new AccountLocks(),
    { ...FAST, ...options.tuning },
  );
}

const entry = (address: string) => ({ address, expiresAt: null, comment: 'jail=sshd until=2026-12-08T12:00:00Z' });

/** 256 IPv4 hosts and `v6` IPv6 /64s, all documentation ranges. */
function addresses(v6: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 256; i++) out.push(`192.0.2.${i}`);
  for (let i = 0; i < v6; i++) out.push(`2001:db8:0:${i.toString(16)}::/64`);
  return out;
}

async function rejects(promise: Promise<unknown>, kind: TargetError['kind'], reason: string): Promise<TargetError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TargetError, `not a TargetError: ${String(error)}`);
    assert.equal(error.kind, kind, error.message);
    assert.equal(error.reason, reason, error.message);
    for (const secret of [TOKEN, READ_TOKEN, 'wrong-token-Aa1Bb2Cc3Dd4Ee5Ff6'])
      assert.ok(!error.message.includes(secret) && !error.call.includes(secret), 'a token in the error');
    return error;
  }
  assert.fail(`resolved; expected a ${kind} TargetError`);
}

test('adds in batches, one bulk operation at a time, each polled to its end; lists every page; deletes by id', async (t) => {
  const sim = await simulator(t);
  const calls: TargetCallRecord[] = [];
  const cf = target(sim.url, { calls, tuning: { batchSize: 1000, pageSize: 200 } });
  const all = addresses(2044); // 2300 entries
  await cf.addMany(all.map(entry));
  let state = await sim.state();
  assert.equal(state.submitted, 3, '2300 entries in batches of 1000');
  assert.equal(state.conflicts, 0, 'never a second operation while one is pending');
  const held = state.accounts[ACCOUNT]!.find((l) => l.name === 'edgeban_blocklist')!.items;
  assert.equal(held.length, 2300, 'each batch was applied before the call returned');
  assert.match(held[0]!.comment, /^edgeban jail=sshd until=2026-12-08T12:00:00Z$/);

  const listed = await cf.list();
  assert.equal(listed.length, 2300);
  assert.deepEqual(new Set(listed.map((e) => e.address)), new Set(all.map((a) => cf.canonical(a))));
  assert.ok(listed.every((e) => e.owned === true));
  assert.equal((await sim.state()).calls['GET items'], 12, '2300 items in 12 pages of 200');

  await cf.deleteMany(all.slice(0, 1000));
  await cf.delete('2001:db8:0:7fb:1::/64');
  state = await sim.state();
  assert.equal(state.submitted, 5);
  assert.equal((await cf.list()).length, 1299);
  await cf.delete('198.51.100.9'); // not listed: nothing to do
  assert.equal((await sim.state()).submitted, 5);
  assert.ok(calls.some((c) => c.endpoint === 'rules/lists/bulk_operations/get' && c.outcome === 'ok'));
});

test('a pending operation of another writer on the account is waited out (429 and Retry-After), then the add lands', async (t) => {
  const sim = await simulator(t);
  const calls: TargetCallRecord[] = [];
  const cf = target(sim.url, { calls });
  await cf.list(); // resolves the list id before the account is busy
  await sim.admin('hold', { account: ACCOUNT, ms: 1500 });
  await cf.add(entry('203.0.113.7'));
  const state = await sim.state();
  assert.ok(state.conflicts >= 1, 'the first submit met the pending operation');
  assert.ok(calls.some((c) => c.endpoint === 'rules/lists/items/create' && c.outcome === 'retry'));
  assert.deepEqual(
    (await cf.list()).map((e) => e.address),
    ['203.0.113.7'],
  );
});

test('targets of one kind on the same account never have two operations pending at once', async (t) => {
  const sim = await simulator(t);
  const kind = createCloudflareKind();
  const a = kind.create(kind.parseOptions({ account: ACCOUNT, list: 'edgeban_blocklist', token: TOKEN, api: sim.url }), deps());
  const b = kind.create(kind.parseOptions({ account: ACCOUNT, list: 'other_list', token: TOKEN, api: sim.url }), deps());
  await Promise.all([a.add(entry('192.0.2.1')), b.add(entry('192.0.2.2')), a.add(entry('192.0.2.3')), b.add(entry('192.0.2.4'))]);
  const state = await sim.state();
  assert.equal(state.submitted, 4);
  assert.equal(state.conflicts, 0);
  assert.equal((await a.list()).length, 2);
  assert.equal((await b.list()).length, 2);
});

test('a burst of single bans and unbans becomes one bulk operation each while the first is in flight', async (t) => {
  const sim = await simulator(t);
  const cf = target(sim.url);
  const burst = Array.from({ length: 50 }, (_, i) => `198.51.100.${i}`);
  await Promise.all(burst.map((address) => cf.add(entry(address))));
  let state = await sim.state();
  assert.equal(state.submitted, 2, 'the first add alone, the 49 that came meanwhile together');
  assert.equal(state.conflicts, 0);
  assert.equal((await cf.list()).length, 50);
  await Promise.all(burst.slice(0, 40).map((address) => cf.delete(address)));
  state = await sim.state();
  assert.equal(state.submitted, 4);
  assert.deepEqual((await cf.list()).map((e) => e.address).sort(), burst.slice(40).sort());
});

test('IPv6: /64 or wider only; a finer entry is rejected, the others of the batch land; a foreign /128 is listed as foreign', async (t) => {
  const cf = target('http://127.0.0.1:1/client/v4');
  assert.equal(cf.canonical('192.0.2.5/32'), '192.0.2.5');
  assert.equal(cf.canonical('198.51.100.77/24'), '198.51.100.0/24');
  assert.equal(cf.canonical('10.0.0.0/7'), null, 'IPv4 wider than /8');
  assert.equal(cf.canonical('2001:DB8:0:1:2::/64'), '2001:db8:0:1::/64');
  assert.equal(cf.canonical('2001:db8::/48'), '2001:db8::/48');
  assert.equal(cf.canonical('2001:db8::1'), null, 'a single IPv6 host');
  assert.equal(cf.canonical('2001:db8::/65'), null);
  assert.equal(cf.canonical('2000::/8'), null, 'IPv6 wider than /12');
  assert.equal(cf.canonical('not an address'), null);

  const sim = await simulator(t, ['--ipv6-finest-prefix', '64']);
  const live = target(sim.url);
  await rejects(live.addMany([entry('2001:db8::1'), entry('2001:db8:1::/64'), entry('192.0.2.8')]), 'rejected', 'unsupported-address');
  assert.deepEqual(new Set((await live.list()).map((e) => e.address)), new Set(['2001:db8:1::/64', '192.0.2.8']));

  const today = await simulator(t); // Cloudflare's current rule: single IPv6 addresses too
  await today.admin('items', { account: ACCOUNT, list: 'edgeban_blocklist', items: [{ ip: '2001:DB8::1', comment: 'added by hand' }, { ip: '198.51.100.1' }] });
  const foreign = await target(today.url).list();
  assert.deepEqual(
    foreign.sort((x, y) => x.address.localeCompare(y.address)),
    [
      { address: '198.51.100.1', owned: false },
      { address: '2001:db8::1', owned: false },
    ],
  );
});

test('401 and 403 are operator errors naming the token and its permission; 429 and 5xx are retry; no token in any message', async (t) => {
  const sim = await simulator(t);
  const wrong = await rejects(target(sim.url, { token: 'wrong-token-Aa1Bb2Cc3Dd4Ee5Ff6' }).list(), 'operator', 'unauthorized');
  assert.match(wrong.message, /CLOUDFLARE_API_TOKEN/);
  const reader = target(sim.url, { token: READ_TOKEN });
  assert.equal((await reader.list()).length, 0, 'a read token may list');
  const denied = await rejects(reader.add(entry('192.0.2.9')), 'operator', 'forbidden');
  assert.match(denied.message, /Account Filter Lists Edit/);

  const cf = target(sim.url, { tuning: { rateLimitRetries: 2 } });
  await cf.list();
  await sim.admin('faults', { status: 429, count: 3, retryAfter: 0 });
  const limited = await rejects(cf.list(), 'retry', 'rate-limited');
  assert.match(limited.message, /429/);
  await sim.admin('faults', { status: 429, count: 2, retryAfter: 0 });
  assert.deepEqual(await cf.list(), [], 'two 429s waited out within the retries');
  await sim.admin('faults', { status: 503, count: 1 });
  await rejects(cf.add(entry('192.0.2.10')), 'retry', 'server');
  await rejects(target('http://127.0.0.1:1/client/v4').list(), 'retry', 'network');
});

test('check: facts of the list, a warning when no rule uses it, a missing list names setup-cloudflare; a full account fails the operation', async (t) => {
  const sim = await simulator(t, ['--max-items', '5']);
  const result = await target(sim.url).check();
  assert.deepEqual(result.errors, []);
  assert.equal(result.facts.list, 'edgeban_blocklist');
  assert.match(result.warnings.join('\n'), /no rule uses Cloudflare list edgeban_blocklist.*setup-cloudflare/);
  const missing = await rejects(target(sim.url, { list: 'no_such_list' }).check(), 'operator', 'list-missing');
  assert.match(missing.message, /setup-cloudflare/);
  const full = await rejects(
    target(sim.url).addMany(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5', '192.0.2.6'].map(entry)),
    'rejected',
    'operation-failed',
  );
  assert.match(full.message, /limit of 5/);
});

test('the registry entry: options name the failing key and never echo the token; identity is account/list without the token', () => {
  const base = { account: ACCOUNT, list: 'edgeban_blocklist', token: TOKEN };
  const options = cloudflareKind.parseOptions(base);
  assert.equal(options.api, 'https://api.cloudflare.com/client/v4');
  assert.equal(cloudflareKind.identity(options), `${ACCOUNT}/edgeban_blocklist`);
  assert.deepEqual(cloudflareKind.secretParams, ['token']);
  assert.deepEqual(Object.keys(cloudflareKind.env).sort(), ['CLOUDFLARE_ACCOUNT_ID', 'CLOUDFLARE_API_TOKEN', 'CLOUDFLARE_API_URL', 'CLOUDFLARE_LIST']);
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ...base, account: 'abc' }, /^cloudflare\[account=\]: .*32-hex/],
    [{ list: 'x', token: TOKEN }, /^cloudflare\[account=\]: is required/],
    [{ ...base, list: 'Bad-Name' }, /^cloudflare\[list=\]/],
    [{ ...base, token: 'short' }, /^cloudflare\[token=\]/],
    [{ ...base, token: `${TOKEN} x` }, /^cloudflare\[token=\]/],
    [{ ...base, api: 'http://api.example.com/client/v4' }, /^cloudflare\[api=\]: must be an https/],
    [{ ...base, zone: 'x' }, /^cloudflare\[zone=\]: unknown parameter/],
  ];
  for (const [params, expected] of cases) {
    assert.throws(
      () => cloudflareKind.parseOptions(params),
      (error: Error) => {
        assert.match(error.message, expected);
        assert.ok(!error.message.includes(TOKEN), 'the token echoed');
        return true;
      },
    );
  }
  assert.equal(
    cloudflareKind.parseOptions({ ...base, list: 'fedcba9876543210fedcba9876543210', api: 'http://127.0.0.1:9/client/v4' }).list,
    'fedcba9876543210fedcba9876543210',
  );
});

test('a jail banning IPv6 finer than /64 into Cloudflare is a config error naming file, line, jail and the fix', () => {
  const error = cloudflareIpv6PrefixError('sshd', 128, { file: '/etc/edgeban/jail.local', line: 12 });
  assert.ok(error !== null);
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /^\/etc\/edgeban\/jail\.local:12: \[sshd\] ipv6prefix: is 128, .*Cloudflare.*set ipv6prefix = 64/);
  assert.equal(cloudflareIpv6PrefixError('sshd', 64, { file: 'jail.local' }), null);
  assert.equal(cloudflareIpv6PrefixError('sshd', 48, { file: 'jail.local' }), null);
});
