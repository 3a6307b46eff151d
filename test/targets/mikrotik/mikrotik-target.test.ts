import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import { createLogger } from '../../../src/logging/logger.ts';
import { TargetError, type TargetCallRecord, type TargetErrorKind } from '../../../src/targets/edge-target.ts';
import { MikrotikClient, routerTimeMs } from '../../../src/targets/mikrotik/client.ts';
import { mikrotikKind } from '../../../src/targets/mikrotik/index.ts';
import { routerTimeout, type MikrotikTarget } from '../../../src/targets/mikrotik/mikrotik-target.ts';
import { freePort } from '../../helpers/free-port.ts';
import { runCli, startCliSimulator } from '../../helpers/cli.ts';
import { tempDir } from '../../helpers/temp-dir.ts';
import { until } from '../../helpers/until.ts';
import { selfSignedCertificate } from '../../helpers/self-signed-certificate.ts';

const PASSWORD = 'Rtr-pw-0123456789-secret';
const LIST = 'edgeban';
const HOUR = 3_600_000;

interface Row {
  '.id': string;
  address: string;
  comment?: string;
  timeout?: string;
  dynamic: string;
  disabled: string;
}
interface State {
  ip: Row[];
  ipv6: Row[];
  calls: Array<{ method: string; path: string; status: number }>;
}

/** `edgeban simulate --kind mikrotik` as a process, and what its admin interface offers. */
async function startRouter(t: TestContext, args: string[] = []) {
  const sim = await startCliSimulator(t, ['--kind', 'mikrotik', '--password', PASSWORD, '--list', LIST, ...args]);
  return {
    url: sim.url,
    admin: sim.admin,
    state: async () => (await sim.admin('state')) as State,
  };
}

function targetFor(t: TestContext, url: string, params: Record<string, string> = {}, now = Date.now()) {
  const lines: string[] = [];
  const calls: TargetCallRecord[] = [];
  const logger = createLogger({
    level: 'trace',
    destination: {
      write: (line: string) => {
        lines.push(line);
      },
    },
  });
  const options = mikrotikKind.parseOptions({ url, user: 'edgeban', password: PASSWORD, list: LIST, api_timeout: '5', ...params });
  const target = mikrotikKind.create(options, { clock: { now: () => now }, logger, onCall: (c) => calls.push(c) }) as MikrotikTarget;
  t.after(() => target.close());
  return { target, lines, calls, now };
}

function isTargetError(kind: TargetErrorKind, pattern?: RegExp) {
  return (error: unknown) => error instanceof TargetError && error.kind === kind && (pattern === undefined || pattern.test(error.message));
}

/** Address and ownership, sorted (the entries' ends are checked on their own: the router prints whole seconds left). */
const sorted = (entries: Array<{ address: string; owned: boolean | null }>) =>
  entries.map(({ address, owned }) => ({ address, owned })).sort((a, b) => (a.address < b.address ? -1 : 1));

test('add, list and delete IPv4 and IPv6 hosts and networks: each in its menu, read back in the spelling it was added in', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  for (const address of ['192.0.2.1', '198.51.100.0/24', '2001:db8::1', '2001:db8:1::/64']) {
    await target.add({ address, expiresAt: now + HOUR, comment: 'jail=sshd' });
  }
  const state = await router.state();
  // What RouterOS echoes: IPv4 hosts bare, IPv6 hosts with /128.
  assert.deepEqual(
    state.ip.map((r) => r.address),
    ['192.0.2.1', '198.51.100.0/24'],
  );
  assert.deepEqual(
    state.ipv6.map((r) => r.address),
    ['2001:db8::1/128', '2001:db8:1::/64'],
  );
  const listed = await target.list();
  assert.deepEqual(sorted(listed), [
    { address: '192.0.2.1', owned: true },
    { address: '198.51.100.0/24', owned: true },
    { address: '2001:db8:1::/64', owned: true },
    { address: '2001:db8::1', owned: true },
  ]);
  // Each entry's end, read back from the timeout the router prints (whole seconds left, counting down meanwhile).
  for (const entry of listed)
    assert.ok(
      entry.expiresAt !== undefined && entry.expiresAt !== null && Math.abs(entry.expiresAt - (now + HOUR)) <= 5_000,
      `${entry.address} ends at ${entry.expiresAt}`,
    );
  assert.equal(target.canonical('2001:DB8:0::1/128'), '2001:db8::1');
  assert.equal(target.canonical('not an address'), null);

  await target.delete('2001:db8::1');
  await target.delete('192.0.2.1');
  const after = await router.state();
  assert.deepEqual(
    after.ip.map((r) => r.address),
    ['198.51.100.0/24'],
  );
  assert.deepEqual(
    after.ipv6.map((r) => r.address),
    ['2001:db8:1::/64'],
  );
  // The ids came from the list and add replies: the deletes needed no lookup.
  assert.equal(after.calls.filter((c) => c.method === 'GET' && c.path.endsWith('/address-list')).length, 2, 'only the one list() read both menus');
  assert.deepEqual(
    after.calls.filter((c) => c.method === 'DELETE').map((c) => c.status),
    [204, 204],
  );
  // Deleting what is not there (expired, removed by hand) is done, not an error.
  await target.delete('2001:db8::1');
  await target.delete('203.0.113.9');
});

test('a delete with a stale id (the entry expired and came back with a new id) finds the entry by address', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '2001:db8::7', expiresAt: now + HOUR, comment: 'jail=sshd' });
  await router.admin('clock', { advanceMs: HOUR + 1000 });
  await router.admin('entries', { menu: 'ipv6', list: LIST, address: '2001:db8::7', comment: 'edgeban jail=sshd' });
  await target.delete('2001:db8::7');
  assert.deepEqual((await router.state()).ipv6, []);
});

test('"already have such entry" is success; edgeban\'s own entry gets the new timeout, a foreign one is left, a disabled one is reported', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '192.0.2.10', expiresAt: now + HOUR, comment: 'jail=sshd' });
  await target.add({ address: '192.0.2.10', expiresAt: now + 5 * HOUR, comment: 'jail=recidive' });
  let rows = (await router.state()).ip;
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.timeout, '5h', 'the re-ban extends the router-side timeout');
  assert.equal(rows[0]!.comment, 'edgeban jail=recidive');
  await target.add({ address: '192.0.2.10', expiresAt: null, comment: 'jail=recidive' });
  rows = (await router.state()).ip;
  assert.deepEqual(
    rows.map((r) => [r.address, r.dynamic, r.timeout ?? null]),
    [['192.0.2.10', 'false', null]],
    'a ban made permanent becomes a static entry',
  );

  await router.admin('entries', { menu: 'ip', list: LIST, address: '192.0.2.11', comment: 'office block' });
  await target.add({ address: '192.0.2.11', expiresAt: now + HOUR, comment: 'jail=sshd' });
  rows = (await router.state()).ip;
  assert.equal(rows.find((r) => r.address === '192.0.2.11')?.comment, 'office block');
  assert.equal(rows.find((r) => r.address === '192.0.2.11')?.dynamic, 'false');

  await router.admin('entries', { menu: 'ipv6', list: LIST, address: '2001:db8::11', disabled: true });
  await assert.rejects(target.add({ address: '2001:db8::11', expiresAt: now + HOUR, comment: 'jail=sshd' }), isTargetError('rejected', /disabled/));
  assert.ok(!(await target.list()).some((e) => e.address === '2001:db8::11'), 'a disabled entry blocks nothing, so it is not listed as present');
});

test("the router's timeout is the ban's remaining time: the entry is dynamic and gone when it runs out; permanent bans are static and survive a reboot", async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '203.0.113.5', expiresAt: now + 90_500, comment: 'jail=sshd' });
  await target.add({ address: '203.0.113.6', expiresAt: null, comment: 'jail=recidive' });
  await target.add({ address: '2001:db8::5', expiresAt: now + 2 * HOUR, comment: 'jail=sshd' });
  const rows = (await router.state()).ip;
  assert.deepEqual(
    rows.map((r) => [r.address, r.dynamic, r.timeout ?? null]),
    [
      ['203.0.113.5', 'true', '1m31s'],
      ['203.0.113.6', 'false', null],
    ],
  );

  await router.admin('clock', { advanceMs: 92_000 });
  assert.deepEqual(
    sorted(await target.list()).map((e) => e.address),
    ['2001:db8::5', '203.0.113.6'],
  );

  await router.admin('reboot', {});
  assert.deepEqual(
    (await target.list()).map((e) => e.address),
    ['203.0.113.6'],
    'a reboot keeps static entries and drops dynamic ones',
  );
});

test('routerTimeout: RouterOS notation, rounded up, at least 1s, capped at 35w3d13h13m56s', () => {
  assert.equal(routerTimeout(1), '1s');
  assert.equal(routerTimeout(-5000), '1s');
  assert.equal(routerTimeout(3_600_000 + 61_001), '1h1m2s');
  assert.equal(routerTimeout(8 * 86_400_000), '1w1d');
  assert.equal(routerTimeout(10 * 365 * 86_400_000), '35w3d13h13m56s');
});

test('ownership is the comment tag: entries edgeban added are owned, others (no comment, other comments) are not', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '192.0.2.20', expiresAt: now + HOUR, comment: 'jail=sshd until=2026-12-08T10:00Z' });
  await router.admin('entries', { menu: 'ip', list: LIST, address: '192.0.2.21' });
  await router.admin('entries', { menu: 'ip', list: LIST, address: '192.0.2.22', comment: 'edgebanned by hand' });
  await router.admin('entries', { menu: 'ipv6', list: LIST, address: '2001:db8::22', comment: 'edgeban jail=old' });
  await router.admin('entries', { menu: 'ip', list: 'other', address: '192.0.2.23', comment: 'edgeban jail=sshd' });
  assert.deepEqual(sorted(await target.list()), [
    { address: '192.0.2.20', owned: true },
    { address: '192.0.2.21', owned: false },
    { address: '192.0.2.22', owned: false },
    { address: '2001:db8::22', owned: true },
  ]);
  assert.equal((await router.state()).ip[0]!.comment, 'edgeban jail=sshd until=2026-12-08T10:00Z');
});

test('401 is an operator error naming the policies; a user without rest-api cannot log in; one without write cannot add', async (t) => {
  const router = await startRouter(t);
  const wrong = targetFor(t, router.url, { password: `${PASSWORD}x` }).target;
  await assert.rejects(wrong.list(), isTargetError('operator', /user\/password wrong or the user lacks the api\/rest-api policy/));
  await router.admin('users', { name: 'norest', password: PASSWORD, policies: ['read', 'write', 'api'] });
  await assert.rejects(targetFor(t, router.url, { user: 'norest' }).target.list(), isTargetError('operator', /rest-api/));
  await router.admin('users', { name: 'reader', password: PASSWORD, policies: ['read', 'api', 'rest-api'] });
  const reader = targetFor(t, router.url, { user: 'reader' }).target;
  assert.deepEqual(await reader.list(), []);
  await assert.rejects(reader.add({ address: '192.0.2.1', expiresAt: null, comment: 'x' }), isTargetError('operator', /write policy/));
});

test('down, 5xx and hanging routers are retry errors; calls are reported for metrics', async (t) => {
  const closed = targetFor(t, `http://127.0.0.1:${await freePort()}`).target;
  await assert.rejects(closed.list(), isTargetError('retry', /cannot reach the router/));
  const router = await startRouter(t);
  const { target, calls, now } = targetFor(t, router.url, { api_timeout: '1' });
  await router.admin('faults', { errorRate: 1 });
  await assert.rejects(target.add({ address: '192.0.2.1', expiresAt: now + HOUR, comment: '' }), isTargetError('retry', /HTTP 500/));
  await router.admin('faults', { errorRate: 0, hangRate: 1 });
  await assert.rejects(target.list(), isTargetError('retry', /no answer within 1000 ms/));
  await router.admin('faults', { hangRate: 0 });
  await target.add({ address: '192.0.2.1', expiresAt: now + HOUR, comment: '' });
  assert.deepEqual(
    calls.map((c) => [c.endpoint, c.outcome]),
    [
      ['PUT ip/firewall/address-list', 'retry'],
      ['GET ip/firewall/address-list', 'retry'],
      ['GET ipv6/firewall/address-list', 'retry'],
      ['PUT ip/firewall/address-list', 'ok'],
    ],
  );
  assert.ok(calls.every((c) => c.kind === 'mikrotik' && c.target === `${router.url} ${LIST}`));
});

test('TLS is verified by default: a self-signed router is refused unless its CA is given (ca_file) or tls_insecure=1', async (t) => {
  const { cert: certFile, key: keyFile } = selfSignedCertificate(await tempDir(t));
  const router = await startRouter(t, ['--tls-cert', certFile, '--tls-key', keyFile]);
  assert.match(router.url, /^https:/);
  await assert.rejects(targetFor(t, router.url).target.list(), isTargetError('operator', /TLS verification failed.*ca_file/));
  assert.deepEqual(await targetFor(t, router.url, { ca_file: certFile }).target.list(), []);
  assert.deepEqual(await targetFor(t, router.url, { tls_insecure: '1' }).target.list(), []);
  assert.ok((await readFile(certFile, 'utf8')).includes('BEGIN CERTIFICATE'));
});

test('the password never appears in error messages, logs or the target id', async (t) => {
  const router = await startRouter(t);
  const { target, lines } = targetFor(t, router.url, { password: `${PASSWORD}-wrong` });
  const messages: string[] = [target.id];
  for (const attempt of [() => target.list(), () => target.add({ address: '192.0.2.1', expiresAt: null, comment: '' }), () => target.check()]) {
    try {
      messages.push(JSON.stringify(await attempt()));
    } catch (error) {
      messages.push(String((error as Error).message), String((error as Error).stack));
    }
  }
  const down = targetFor(t, `http://127.0.0.1:${await freePort()}`);
  try {
    await down.target.list();
  } catch (error) {
    messages.push(String((error as Error).message));
  }
  assert.ok(messages.length >= 5);
  for (const text of [...messages, ...lines, ...down.lines]) {
    assert.ok(!text.includes(PASSWORD), `password leaked: ${text}`);
    assert.ok(!text.includes(Buffer.from(`edgeban:${PASSWORD}`).toString('base64').slice(0, 16)), `authorization leaked: ${text}`);
  }
});

test('check(): version and counts as facts; a list no enabled drop rule uses is an error for IPv4, a warning for IPv6', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '192.0.2.30', expiresAt: now + HOUR, comment: 'jail=sshd' });
  const healthy = await target.check();
  assert.deepEqual(healthy.errors, []);
  assert.deepEqual(healthy.warnings, []);
  assert.equal(healthy.facts.version, '7.16.2 (stable)');
  assert.equal(healthy.facts.entries, '1');
  assert.equal(healthy.facts.kill_connections, 'on');

  const bare = await startRouter(t, ['--no-rules']);
  const unprotected = await targetFor(t, bare.url).target.check();
  assert.equal(unprotected.errors.length, 1);
  assert.match(unprotected.errors[0]!, /no enabled drop rule in \/ip\/firewall\/filter or raw matches src-address-list=edgeban/);
  assert.match(unprotected.warnings[0]!, /IPv6 bans block nothing/);
  await bare.admin('rules', { path: 'ip/firewall/filter', rules: [{ chain: 'input', action: 'drop', 'src-address-list': LIST, disabled: 'true' }] });
  assert.equal((await targetFor(t, bare.url).target.check()).errors.length, 1, 'a disabled rule protects nothing');

  const denied = await targetFor(t, router.url, { password: 'nope' }).target.check();
  assert.match(denied.errors[0] ?? '', /HTTP 401/);
});

test('parseOptions: errors name the key, secrets never quoted; identity is url and list without the password', () => {
  const parse = mikrotikKind.parseOptions;
  const base = { url: 'https://192.0.2.1', user: 'edgeban', password: 'hunter2-long-secret' };
  const options = parse(base);
  assert.equal(options.list, 'edgeban');
  assert.equal(options.tlsInsecure, false);
  assert.equal(options.timeoutMs, 30_000);
  assert.equal(parse({ ...base, url: 'https://router.example:8443/rest/' }).url, 'https://router.example:8443');
  assert.equal(mikrotikKind.identity(options), 'https://192.0.2.1 edgeban');
  const fails = (params: Record<string, string>, key: RegExp) =>
    assert.throws(
      () => parse(params),
      (e: Error) => key.test(e.message) && !e.message.includes('hunter2'),
    );
  fails({ user: 'u', password: 'hunter2-long-secret' }, /^url: required/);
  fails({ ...base, url: 'http://192.0.2.1' }, /^url: .*plain http/);
  fails({ ...base, url: 'https://u:hunter2@192.0.2.1' }, /^url: put credentials/);
  fails({ ...base, password: '' }, /^password: required/);
  fails({ ...base, user: undefined as unknown as string }, /^user: required/);
  fails({ ...base, list: 'bad list' }, /^list: /);
  fails({ ...base, ca_file: '/nonexistent/ca.pem' }, /^ca_file: cannot read/);
  fails({ ...base, tls_insecure: 'maybe' }, /^tls_insecure: /);
  fails({ ...base, api_timeout: '0' }, /^api_timeout: /);
  fails({ ...base, pasword: 'x' }, /^pasword: unknown parameter/);
  // What jail.conf's action_ passes to every action, and an action file's empty defaults, are fine.
  const fromJail = parse({ ...base, name: 'sshd', actname: 'mikrotik', port: 'ssh', protocol: 'tcp', chain: 'INPUT', ca_file: '', tls_insecure: '', list: '' });
  assert.deepEqual(fromJail, options);
  fails({ ...base, alias: 'x' }, /^alias: unknown parameter/);
  assert.deepEqual(mikrotikKind.secretParams, ['password']);
  assert.equal(mikrotikKind.env.MIKROTIK_URL, 'url');
  assert.equal(mikrotikKind.env.MIKROTIK_LIST, 'list');
});

test('edgeban simulate refuses an unknown --kind', async () => {
  const result = await runCli(['simulate', '--kind', 'fortigate', '--port', '0']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--kind must be opnsense, mikrotik or cloudflare/);
});

test('a reply past the size cap is abandoned as an operator error, not read into memory', async (t) => {
  const router = await startRouter(t);
  for (let i = 0; i < 20; i++) await router.admin('entries', { menu: 'ip', list: LIST, address: `198.51.100.${i}`, comment: 'x'.repeat(100) });
  const options = mikrotikKind.parseOptions({ url: router.url, user: 'edgeban', password: PASSWORD, list: LIST });
  const logger = createLogger({ level: 'silent' });
  const small = new MikrotikClient({ options, logger, target: 'test', maxReplyBytes: 1000 });
  const usual = new MikrotikClient({ options, logger, target: 'test' });
  t.after(async () => {
    await small.close();
    await usual.close();
  });
  await assert.rejects(small.listEntries(4, LIST), isTargetError('operator', /reply larger than 1000 bytes, abandoned/));
  assert.equal((await usual.listEntries(4, LIST)).length, 20);
});

test('a router that goes down and comes back: retry errors meanwhile, then the same target works again', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url, { api_timeout: '2' });
  await target.add({ address: '192.0.2.40', expiresAt: now + HOUR, comment: 'jail=sshd' });
  await router.admin('faults', { refuseForMs: 1500 });
  await assert.rejects(target.list(), isTargetError('retry'));
  await until('the router is back', async () => {
    try {
      return (await target.list()).length === 1;
    } catch {
      return false;
    }
  });
});

test('one address on the list twice (a restored export): listed once, and a delete removes every row', async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  await target.add({ address: '2001:db8::9', expiresAt: now + HOUR, comment: 'jail=sshd' });
  await router.admin('entries', { menu: 'ipv6', list: LIST, address: '2001:db8::9', comment: 'from an old export', restored: true });
  assert.deepEqual(sorted(await target.list()), [{ address: '2001:db8::9', owned: true }]);
  await target.delete('2001:db8::9');
  assert.deepEqual((await router.state()).ipv6, []);
});

interface ConnectionRow {
  '.id': string;
  'src-address': string;
  'dst-address': string;
}

test("killConnections removes the tracked connections from and to a banned address, IPv4 and IPv6, and no neighbour's", async (t) => {
  const router = await startRouter(t);
  const { target, now } = targetFor(t, router.url);
  assert.equal(target.capabilities.killConnections, true);
  const connect = (menu: 'ip' | 'ipv6', protocol: string, srcAddress: string, srcPort: number | undefined, dstAddress: string, dstPort: number | undefined) =>
    router.admin('connections', {
      menu,
      protocol,
      srcAddress,
      dstAddress,
      ...(srcPort === undefined ? {} : { srcPort }),
      ...(dstPort === undefined ? {} : { dstPort }),
    });
  // The attacker's IMAP session (one login connection, many guesses), a second one, a ping, and a
  // connection the mail server opened to it; beside them neighbours whose printed address starts
  // with the attacker's (`198.51.100.70:…` begins with `198.51.100.7`).
  await connect('ip', 'tcp', '198.51.100.7', 40_000, '192.0.2.25', 993);
  await connect('ip', 'tcp', '198.51.100.7', 40_001, '192.0.2.25', 993);
  await connect('ip', 'icmp', '198.51.100.7', undefined, '192.0.2.25', undefined);
  await connect('ip', 'tcp', '192.0.2.25', 51_000, '198.51.100.7', 25);
  await connect('ip', 'tcp', '198.51.100.70', 40_002, '192.0.2.25', 993);
  await connect('ip', 'udp', '192.0.2.53', 53, '198.51.100.71', 5353);
  await connect('ipv6', 'tcp', '2001:db8::7', 40_000, '2001:db8:ffff::25', 993);
  await connect('ipv6', 'tcp', '2001:db8::70', 40_001, '2001:db8:ffff::25', 993);
  await connect('ipv6', 'tcp', '2001:db8:1::5', 40_002, '2001:db8:ffff::25', 993);
  await connect('ipv6', 'tcp', '2001:db8:1::6', 40_003, '2001:db8:ffff::25', 993);

  await target.add({ address: '198.51.100.7', expiresAt: now + HOUR, comment: 'jail=dovecot' });
  assert.equal(await target.killConnections('198.51.100.7'), 4);
  assert.equal(await target.killConnections('2001:db8::7'), 1);
  assert.equal(await target.killConnections('2001:db8:1::/64'), 2, 'a network ban cuts every host inside it');
  const state = (await router.state()) as State & { connections: { ip: ConnectionRow[]; ipv6: ConnectionRow[] } };
  assert.deepEqual(
    state.connections.ip.map((c) => `${c['src-address']} ${c['dst-address']}`),
    ['198.51.100.70:40002 192.0.2.25:993', '192.0.2.53:53 198.51.100.71:5353'],
  );
  assert.deepEqual(
    state.connections.ipv6.map((c) => c['src-address']),
    ['2001:db8::70'],
  );
  // One DELETE per connection cut, none for the neighbours.
  assert.equal(state.calls.filter((c) => c.method === 'DELETE' && c.path.includes('/firewall/connection/')).length, 7);
  assert.equal(await target.killConnections('198.51.100.7'), 0, 'nothing left to cut');
});

test('killConnections without the write policy: one operator error naming the fix, then the capability is off and no call is made', async (t) => {
  const router = await startRouter(t);
  await router.admin('users', { name: 'reader', password: PASSWORD, policies: ['read', 'api', 'rest-api'] });
  await router.admin('connections', { menu: 'ip', protocol: 'tcp', srcAddress: '203.0.113.9', srcPort: 40_000, dstAddress: '192.0.2.25', dstPort: 993 });
  const { target } = targetFor(t, router.url, { user: 'reader' });
  const kills = await Promise.allSettled([target.killConnections('203.0.113.9'), target.killConnections('203.0.113.9')]);
  const refused = kills.filter((k) => k.status === 'rejected').map((k) => (k as PromiseRejectedResult).reason as unknown);
  assert.equal(refused.length, 1, 'two kills refused at once give one error');
  assert.ok(isTargetError('operator', /DELETE \/rest\/ip\/firewall\/connection.*write policy.*no longer cut/)(refused[0]), String(refused[0]));
  assert.equal(target.capabilities.killConnections, false);
  assert.equal((await target.check()).facts.kill_connections, 'off (refused by the router)');
  const callsBefore = (await router.state()).calls.length;
  assert.equal(await target.killConnections('203.0.113.9'), 0);
  assert.equal((await router.state()).calls.length, callsBefore, 'a capability turned off makes no call');
  assert.equal(((await router.state()) as State & { connections: { ip: ConnectionRow[] } }).connections.ip.length, 1);
});

test("routerTimeMs reads the timeouts RouterOS prints (the entry's end after a restart), and refuses anything else", () => {
  assert.equal(routerTimeMs('59m57s'), (59 * 60 + 57) * 1000);
  assert.equal(routerTimeMs('1w2d3h4m5s'), ((7 + 2) * 86_400 + 3 * 3600 + 4 * 60 + 5) * 1000);
  assert.equal(routerTimeMs('1d02:03:04'), (86_400 + 2 * 3600 + 3 * 60 + 4) * 1000);
  assert.equal(routerTimeMs('4s250ms'), 4250);
  assert.equal(routerTimeMs(routerTimeout(3_600_000)), 3_600_000);
  for (const bad of ['', 'soon', '5x', '-1s']) assert.equal(routerTimeMs(bad), null, bad);
});
