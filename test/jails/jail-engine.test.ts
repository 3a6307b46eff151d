import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger, type BanRequest } from '../../src/ledger/ledger.ts';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { DEFAULT_INCREMENT } from '../../src/jails/ban-time.ts';
import { cidrList } from '../../src/jails/cidr.ts';
import { JailEngine, type BanHistory, type BanSink } from '../../src/jails/jail-engine.ts';
import { NO_NETWORK_FACTS, type NetworkFacts } from '../../src/jails/network-facts.ts';
import type { JailSettings } from '../../src/jails/settings.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const TARGET = 'fail2ban_blocklist';

function jail(name: string, over: Partial<JailSettings> = {}): JailSettings {
  return {
    name,
    maxretry: 3,
    findtimeSec: 600,
    bantimeSec: 600,
    increment: DEFAULT_INCREMENT,
    ignoreip: cidrList(['127.0.0.1/8', '::1']),
    ignoreself: true,
    ipv6prefix: 128,
    banprivate: false,
    maxtracked: 1_000_000,
    targets: [{ id: TARGET, alias: TARGET, firewall: null, source: { file: 'jail.local', line: 1, key: 'action' } }],
    ...over,
  };
}

const EMPTY_HISTORY: BanHistory = { claimsOf: () => [], targets: () => [] };

interface Setup {
  engine: JailEngine;
  clock: ManualClock;
  bans: BanRequest[];
  logs: Record<string, unknown>[];
  now: () => number;
}

function setup(
  jails: JailSettings[],
  options: { facts?: NetworkFacts; history?: BanHistory; sink?: BanSink; clock?: ManualClock; random?: () => number } = {},
): Setup {
  const clock = options.clock ?? new ManualClock();
  const bans: BanRequest[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  const engine = new JailEngine({
    jails,
    facts: options.facts ?? NO_NETWORK_FACTS,
    history: options.history ?? EMPTY_HISTORY,
    ban:
      options.sink ??
      (async (request) => {
        bans.push(request);
      }),
    clock,
    random: options.random ?? (() => 0),
    logger,
  });
  return { engine, clock, bans, logs, now: () => clock.now() / 1000 };
}

async function openLedger(t: TestContext, clock: ManualClock): Promise<Ledger> {
  const store = await FileLedgerStore.open({ dir: await tempDir(t), logger: silentLogger() });
  const ledger = await Ledger.open({ store, clock, logger: silentLogger() });
  t.after(() => ledger.close());
  return ledger;
}

test('maxretry failures ban through the sink; the counter starts again after the ban', async () => {
  const { engine, bans, now } = setup([jail('dovecot')]);
  assert.deepEqual(await engine.onMatch('dovecot', { host: '192.0.2.10', time: now() }), { kind: 'counted', address: '192.0.2.10', retry: 1 });
  await engine.onMatch('dovecot', { host: '192.0.2.10', time: now() });
  const outcome = await engine.onMatch('dovecot', { host: '192.0.2.10', time: now(), user: 'admin' });
  assert.deepEqual(outcome, { kind: 'banned', address: '192.0.2.10', durationMs: 600_000, previousBans: 0, targets: [TARGET] });
  assert.deepEqual(bans, [{ target: TARGET, address: '192.0.2.10', jail: 'dovecot', origin: 'jail', durationMs: 600_000 }]);
  assert.deepEqual(await engine.onMatch('dovecot', { host: '192.0.2.10', time: now() }), { kind: 'counted', address: '192.0.2.10', retry: 1 });
  const [stats] = engine.stats('dovecot');
  assert.equal(stats?.bans, 1);
  assert.equal(stats?.failures, 4);
  assert.equal(stats?.tracked, 1);
  assert.equal(await engine.onMatch('nope', { host: '192.0.2.10', time: now() }).then((o) => o.kind), 'unknown-jail');
});

test("the ban runs from the failure's time, as in fail2ban; a ban that would be over is not made", async () => {
  const { engine, bans, now } = setup([jail('dovecot', { maxretry: 2, findtimeSec: 3600, bantimeSec: 600 })]);
  await engine.onMatch('dovecot', { host: '192.0.2.11', time: now() - 200 });
  const banned = await engine.onMatch('dovecot', { host: '192.0.2.11', time: now() - 100 });
  assert.equal(banned.kind === 'banned' && banned.durationMs, 500_000);
  await engine.onMatch('dovecot', { host: '192.0.2.12', time: now() - 900 });
  assert.deepEqual(await engine.onMatch('dovecot', { host: '192.0.2.12', time: now() - 700 }), { kind: 'expired', address: '192.0.2.12' });
  assert.equal(bans.length, 1);
  assert.equal(engine.stats()[0]?.expired, 1);
});

test('lines older than findtime are not counted', async () => {
  const { engine, now } = setup([jail('dovecot')]);
  assert.deepEqual(await engine.onMatch('dovecot', { host: '192.0.2.13', time: now() - 601 }), { kind: 'old' });
  assert.equal(engine.stats()[0]?.old, 1);
  assert.equal(engine.stats()[0]?.tracked, 0);
});

test("repeat offenders get fail2ban's increasing bantime from the ledger's ban counts; an active ban is not re-made", async (t) => {
  const clock = new ManualClock();
  const ledger = await openLedger(t, clock);
  const increment = { ...DEFAULT_INCREMENT, enabled: true, maxtimeSec: 3000 };
  const { engine, now } = setup([jail('dovecot', { increment })], { clock, history: ledger, sink: (r) => ledger.ban(r) });
  const attack = async () => {
    let last;
    for (let i = 0; i < 3; i++) last = await engine.onMatch('dovecot', { host: '203.0.113.20', time: now() });
    return last;
  };
  const durations: (number | null)[] = [];
  for (let round = 0; round < 4; round++) {
    const outcome = await attack();
    assert.equal(outcome?.kind, 'banned', `round ${round}`);
    durations.push(outcome?.kind === 'banned' ? outcome.durationMs : -1);
    // While the ban is active, reaching maxretry again changes nothing (fail2ban: "already banned").
    assert.deepEqual(await attack(), { kind: 'already-banned', address: '203.0.113.20' });
    await clock.advance((durations.at(-1) ?? 0) + 1000);
  }
  assert.deepEqual(durations, [600_000, 1_200_000, 2_400_000, 3_000_000]);
  assert.equal(ledger.claimsOf(TARGET, '203.0.113.20')[0]?.banCount, 4);
  assert.equal(engine.stats()[0]?.alreadyBanned, 4);
});

test('bantime.overalljails counts the bans of every jail', async (t) => {
  const clock = new ManualClock();
  const ledger = await openLedger(t, clock);
  await ledger.ban({ target: TARGET, address: '198.51.100.30', jail: 'postfix', origin: 'jail', durationMs: 1000 });
  await ledger.ban({ target: TARGET, address: '198.51.100.30', jail: 'sshd', origin: 'jail', durationMs: 1000 });
  await ledger.ban({ target: TARGET, address: '198.51.100.30', jail: 'sshd', origin: 'jail', durationMs: 1000 });
  await ledger.ban({ target: TARGET, address: '198.51.100.30', jail: 'adopted', origin: 'adopted', durationMs: 1000 });
  await clock.advance(2000);
  const increment = { ...DEFAULT_INCREMENT, enabled: true };
  const { engine, now } = setup([jail('own', { maxretry: 1, increment }), jail('all', { maxretry: 1, increment: { ...increment, overalljails: true } })], {
    clock,
    history: ledger,
    sink: (r) => ledger.ban(r),
  });
  const own = await engine.onMatch('own', { host: '198.51.100.30', time: now() });
  const all = await engine.onMatch('all', { host: '198.51.100.30', time: now() });
  assert.deepEqual([own.kind === 'banned' && own.previousBans, own.kind === 'banned' && own.durationMs], [0, 600_000]);
  // postfix 1 + sshd 2 + own 1 (just now); adopted entries are not offences.
  assert.deepEqual([all.kind === 'banned' && all.previousBans, all.kind === 'banned' && all.durationMs], [4, 600_000 * 16]);
});

test('IPv6 offenders are counted and banned by their covering prefix', async () => {
  const { engine, bans, now } = setup([jail('web', { ipv6prefix: 64 }), jail('host', { ipv6prefix: 128 })]);
  await engine.onMatch('web', { host: '2001:db8:1:2::a', time: now() });
  await engine.onMatch('web', { host: '2001:db8:1:2:ffff::b', time: now() });
  const outcome = await engine.onMatch('web', { host: '2001:db8:1:2:1:2:3:4', time: now() });
  assert.equal(outcome.kind === 'banned' && outcome.address, '2001:db8:1:2::/64');
  await engine.onMatch('host', { host: '2001:db8:1:2::a', time: now() });
  assert.deepEqual(await engine.onMatch('host', { host: '2001:db8:1:2::b', time: now() }), { kind: 'counted', address: '2001:db8:1:2::b', retry: 1 });
  assert.deepEqual(
    bans.map((b) => b.address),
    ['2001:db8:1:2::/64'],
  );
});

test('guards refuse before counting, by reason; a private address is reported once; documentation and shared space are banned', async () => {
  const facts: NetworkFacts = { selfAddresses: ['172.17.0.5'], gateways: ['172.17.0.1'], firewallAddresses: ['203.0.113.1'] };
  const { engine, bans, logs, now } = setup([jail('mail', { maxretry: 1, ignoreip: cidrList(['127.0.0.1/8', '::1', '198.51.100.0/24']) })], { facts });
  const hosts: [string, string][] = [
    ['not-an-ip', 'invalid'],
    ['198.51.100.0/24', 'invalid'],
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['203.0.113.1', 'firewall'],
    ['172.17.0.5', 'self'],
    ['172.17.0.1', 'gateway'],
    ['198.51.100.77', 'ignoreip'],
    ['10.0.0.8', 'private'],
    ['192.168.1.9', 'private'],
  ];
  for (const [host, reason] of hosts) {
    const outcome = await engine.onMatch('mail', { host, time: now() });
    assert.equal(outcome.kind === 'ignored' && outcome.reason, reason, host);
  }
  for (const host of ['192.0.2.40', '2001:db8::40', '100.64.7.7']) assert.equal((await engine.onMatch('mail', { host, time: now() })).kind, 'banned', host);
  assert.deepEqual(
    bans.map((b) => b.address),
    ['192.0.2.40', '2001:db8::40', '100.64.7.7'],
  );
  const stats = engine.stats('mail')[0]!;
  assert.deepEqual(stats.ignored, {
    invalid: 2,
    'too-wide': 0,
    unspecified: 1,
    loopback: 1,
    'link-local': 1,
    multicast: 1,
    broadcast: 1,
    firewall: 1,
    self: 1,
    gateway: 1,
    ignoreip: 1,
    private: 2,
  });
  assert.equal(stats.tracked, 0, 'refused addresses use no counter');
  const privateLogs = logs.filter((l) => typeof l.msg === 'string' && (l.msg as string).includes('private address: not banned'));
  assert.equal(privateLogs.length, 1);
});

test('one warning, naming the jail, when a private address causes most failures (a proxy hides client IPs)', async () => {
  const facts: NetworkFacts = { selfAddresses: [], gateways: ['172.18.0.1'], firewallAddresses: [] };
  const { engine, logs, now } = setup([jail('traefik', { maxretry: 1000 }), jail('quiet', { maxretry: 1000 })], { facts });
  const warnings = () => logs.filter((l) => l.level === 40);
  // 19 failures, 10 from the proxy: not enough failures seen yet.
  for (let i = 0; i < 19; i++) await engine.onMatch('traefik', { host: i % 2 === 0 ? '172.18.0.1' : `192.0.2.${i}`, time: now() });
  assert.equal(warnings().length, 0);
  await engine.onMatch('traefik', { host: '192.0.2.99', time: now() });
  assert.equal(warnings().length, 1);
  const [warning] = warnings();
  assert.equal(warning?.jail, 'traefik');
  assert.match(String(warning?.msg), /traefik.*172\.18\.0\.1.*real client IPs.*PROXY protocol.*X-Forwarded-For/s);
  for (let i = 0; i < 100; i++) await engine.onMatch('traefik', { host: '172.18.0.1', time: now() });
  assert.equal(warnings().length, 1, 'once');
  assert.deepEqual(
    engine.stats('traefik')[0]?.proxyWarning && {
      address: engine.stats('traefik')[0]!.proxyWarning!.address,
      share: engine.stats('traefik')[0]!.proxyWarning!.share,
    },
    { address: '172.18.0.1', share: 0.5 },
  );
  // A jail with public attackers and a few private ones is not flagged.
  for (let i = 0; i < 100; i++) await engine.onMatch('quiet', { host: i % 5 === 0 ? '10.0.0.1' : `198.51.100.${i % 50}`, time: now() });
  assert.equal(engine.stats('quiet')[0]?.proxyWarning, null);
});

test('reload keeps the counters of jails that still exist and applies new settings', async () => {
  const { engine, bans, now } = setup([jail('a', { maxretry: 5 }), jail('b')]);
  await engine.onMatch('a', { host: '192.0.2.50', time: now() });
  await engine.onMatch('a', { host: '192.0.2.50', time: now() });
  await engine.onMatch('b', { host: '192.0.2.51', time: now() });
  engine.reload([jail('a', { maxretry: 3, bantimeSec: 60 }), jail('c')]);
  assert.deepEqual(engine.jailNames(), ['a', 'c']);
  const outcome = await engine.onMatch('a', { host: '192.0.2.50', time: now() });
  assert.equal(outcome.kind === 'banned' && outcome.durationMs, 60_000);
  assert.equal(engine.stats('a')[0]?.failures, 3, 'stats kept too');
  assert.equal((await engine.onMatch('b', { host: '192.0.2.51', time: now() })).kind, 'unknown-jail');
  assert.equal(bans.length, 1);
});

test('the tracking cap shows in stats; sweep drops counters past findtime', async () => {
  const { engine, clock, now } = setup([jail('a', { maxtracked: 2 })]);
  for (const host of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) await engine.onMatch('a', { host, time: now() });
  assert.deepEqual([engine.stats()[0]?.tracked, engine.stats()[0]?.capReached, engine.stats()[0]?.evictedByCap], [2, true, 1]);
  await clock.advance(601_000);
  assert.equal(engine.sweep(), 2);
  assert.equal(engine.stats()[0]?.tracked, 0);
});

test('several targets each get the ban; a failing sink is reported, not thrown; a ban in flight is not repeated', async () => {
  const targets = ['t1', 't2'].map((id) => ({ id, alias: id, firewall: null, source: { file: 'x', line: 1, key: 'action' } }));
  const seen: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { engine, now } = setup([jail('a', { maxretry: 1, targets }), jail('broken', { maxretry: 1 })], {
    sink: async (r) => {
      if (r.jail === 'broken') throw new Error('disk full');
      seen.push(`${r.target} ${r.address}`);
      await gate;
    },
  });
  const first = engine.onMatch('a', { host: '192.0.2.60', time: now() });
  assert.deepEqual(await engine.onMatch('a', { host: '192.0.2.60', time: now() }), { kind: 'already-banned', address: '192.0.2.60' });
  release();
  assert.deepEqual(await first, { kind: 'banned', address: '192.0.2.60', durationMs: 600_000, previousBans: 0, targets: ['t1', 't2'] });
  assert.deepEqual(seen, ['t1 192.0.2.60', 't2 192.0.2.60']);
  assert.deepEqual(await engine.onMatch('broken', { host: '192.0.2.61', time: now() }), { kind: 'ban-failed', address: '192.0.2.61' });
  assert.equal(engine.stats('broken')[0]?.banErrors, 1);
});
