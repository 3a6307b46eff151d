import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FailureTracker, pythonRound, type AddResult } from '../../src/jails/failure-tracker.ts';
import { FAIL2BAN_PYTHON, ip, runPython, seeded } from './helpers.ts';

const A = ip('192.0.2.1');
const B = ip('198.51.100.7');

test('maxretry failures within findtime ban, and the counter starts again after the ban', () => {
  const t = new FailureTracker({ maxretry: 3, findtimeSec: 600 });
  assert.deepEqual(t.add(A, 1000, 1000), { kind: 'counted', retry: 1 });
  assert.deepEqual(t.add(A, 1010, 1010), { kind: 'counted', retry: 2 });
  assert.deepEqual(t.add(A, 1020, 1020), { kind: 'ban', retry: 3, firstTime: 1000, lastTime: 1020 });
  assert.equal(t.tracked, 0, 'the ticket is dropped at the ban');
  assert.deepEqual(t.add(A, 1030, 1030), { kind: 'counted', retry: 1 });
});

test('addresses are counted separately; IPv4 and IPv6 keys and prefixes never collide', () => {
  const t = new FailureTracker({ maxretry: 10, findtimeSec: 600 });
  t.add(A, 1000, 1000);
  t.add(A, 1000, 1000);
  t.add(B, 1000, 1000);
  t.add(ip('::ffff:c000:201/128'), 1000, 1000); // parsePfAddress makes this 192.0.2.1
  t.add(ip('2001:db8::/64'), 1000, 1000);
  t.add(ip('2001:db8::'), 1000, 1000);
  assert.equal(t.retryOf(A), 3);
  assert.equal(t.retryOf(B), 1);
  assert.equal(t.retryOf(ip('2001:db8::/64')), 1);
  assert.equal(t.retryOf(ip('2001:db8::')), 1);
  assert.equal(t.tracked, 4);
});

test('a line older than findtime is ignored; a line from the future counts as now', () => {
  const t = new FailureTracker({ maxretry: 2, findtimeSec: 600 });
  assert.deepEqual(t.add(A, 399, 1000), { kind: 'old' });
  assert.deepEqual(t.add(A, 400, 1000), { kind: 'counted', retry: 1 }, 'exactly findtime old still counts (fail2ban: date < now - findtime)');
  const r = t.add(B, 5000, 1000);
  assert.deepEqual(r, { kind: 'counted', retry: 1 });
  assert.deepEqual(t.add(B, 1000, 1000), { kind: 'ban', retry: 2, firstTime: 1000, lastTime: 1000 });
});

test('out-of-order lines within findtime count; the ticket time is the latest failure', () => {
  const t = new FailureTracker({ maxretry: 3, findtimeSec: 600 });
  t.add(A, 1500, 1600);
  t.add(A, 1100, 1600);
  assert.deepEqual(t.add(A, 1300, 1600), { kind: 'ban', retry: 3, firstTime: 1500, lastTime: 1500 });
});

test('a ticket whose last failure is findtime old is forgotten', () => {
  const t = new FailureTracker({ maxretry: 3, findtimeSec: 600 });
  t.add(A, 1000, 1000);
  t.add(A, 1100, 1100);
  assert.deepEqual(t.add(A, 1700, 1700), { kind: 'counted', retry: 1 }, 'last failure 1100 <= 1700 - 600');
  t.add(B, 1750, 1750);
  assert.equal(t.sweep(2400), 2);
  assert.equal(t.tracked, 0);
  assert.equal(t.stats().evictedByFindtime, 3);
});

test("slow failures spread over more than findtime are scaled by fail2ban's rate estimate", () => {
  const t = new FailureTracker({ maxretry: 3, findtimeSec: 600 });
  t.add(A, 1000, 1000);
  t.add(A, 1500, 1500);
  // round(2 / (2000 - 1000) * 600) = 1, then +1.
  assert.deepEqual(t.add(A, 2000, 2000), { kind: 'counted', retry: 2 });
  // first is now 1400: round(2 / 700 * 600) = 2, then +1 = 3.
  assert.deepEqual(t.add(A, 2100, 2100), { kind: 'ban', retry: 3, firstTime: 1500, lastTime: 2100 });
});

test('the hard cap evicts the least recently failing address and says so', () => {
  const t = new FailureTracker({ maxretry: 5, findtimeSec: 600, cap: 3, initialCapacity: 2 });
  t.add(ip('192.0.2.1'), 1000, 1000);
  t.add(ip('192.0.2.2'), 1001, 1001);
  t.add(ip('192.0.2.3'), 1002, 1002);
  t.add(ip('192.0.2.1'), 1003, 1003); // .1 touched again: .2 is now the oldest
  assert.equal(t.stats().capReached, false);
  t.add(ip('192.0.2.4'), 1004, 1004);
  assert.equal(t.tracked, 3);
  assert.equal(t.retryOf(ip('192.0.2.2')), 0, 'evicted');
  assert.equal(t.retryOf(ip('192.0.2.1')), 2);
  assert.deepEqual(t.stats(), { tracked: 3, capReached: true, evictedByCap: 1, evictedByFindtime: 0 });
});

test('many addresses: growth, deletion and re-insertion keep every count (hash table integrity)', () => {
  const t = new FailureTracker({ maxretry: 1000, findtimeSec: 1e9, initialCapacity: 16 });
  const n = 5000;
  const addr = (i: number) => ip(`2001:db8:${(i >> 8).toString(16)}::${(i & 0xff).toString(16)}`);
  for (let round = 1; round <= 3; round++) for (let i = 0; i < n; i++) t.add(addr(i), 1000, 1000);
  for (let i = 0; i < n; i += 2) assert.equal(t.delete(addr(i)), true);
  for (let i = 0; i < n; i++) assert.equal(t.retryOf(addr(i)), i % 2 === 0 ? 0 : 3, `address ${i}`);
  for (let i = 0; i < n; i += 2) t.add(addr(i), 1000, 1000);
  for (let i = 0; i < n; i++) assert.equal(t.retryOf(addr(i)), i % 2 === 0 ? 1 : 3, `address ${i} after re-insertion`);
  assert.equal(t.tracked, n);
});

test('pythonRound rounds halves to even, as Python 3', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.4, 2.6, 3.5].map(pythonRound), [0, 2, 2, 2, 3, 4]);
});

const FAIL_MANAGER = `
import json, sys
from fail2ban.server.failmanager import FailManager
from fail2ban.server.ticket import FailTicket
cfg = json.loads(sys.argv[1])
fm = FailManager(); fm.setMaxRetry(cfg['maxretry']); fm.setMaxTime(cfg['findtime'])
out = []
for host, t, now in cfg['events']:
    # Filter.processLine / processLineAndAdd around FailManager.
    if t < now - cfg['findtime']:
        out.append({'kind': 'old'}); continue
    if t > now: t = now
    fm.cleanup(now)
    n = fm.addFailure(FailTicket(host, t))
    if n >= cfg['maxretry']:
        tk = fm.toBan(host)
        out.append({'kind': 'ban', 'retry': n, 'lastTime': tk.getTime()})
    else:
        out.append({'kind': 'counted', 'retry': n})
print(json.dumps(out))
`;

test("same counts and bans as fail2ban's FailManager on a random sequence with out-of-order and old lines", {
  skip: FAIL2BAN_PYTHON === null && 'fail2ban not installed',
}, () => {
  for (const [maxretry, findtime, seed] of [
    [3, 600, 1],
    [5, 120, 2],
    [2, 60, 3],
    [10, 3600, 4],
  ] as const) {
    const random = seeded(seed);
    const hosts = ['192.0.2.1', '192.0.2.2', '198.51.100.9', '2001:db8::5'];
    const events: [string, number, number][] = [];
    let now = 100_000;
    for (let i = 0; i < 3000; i++) {
      now += Math.floor((random() * findtime) / maxretry);
      // Mostly current lines, some late, some older than findtime, a few from the future.
      const r = random();
      const time = r < 0.6 ? now : r < 0.85 ? now - Math.floor(random() * findtime) : r < 0.95 ? now - findtime - 1 - Math.floor(random() * 100) : now + 30;
      events.push([hosts[Math.floor(random() * hosts.length)]!, time, now]);
    }
    const expected = runPython(FAIL_MANAGER, { maxretry, findtime, events }) as Record<string, unknown>[];
    const tracker = new FailureTracker({ maxretry, findtimeSec: findtime });
    const actual = events.map(([host, time, at]) => {
      const r: AddResult = tracker.add(ip(host), time, at);
      return r.kind === 'ban' ? { kind: 'ban', retry: r.retry, lastTime: r.lastTime } : r;
    });
    assert.deepEqual(actual, expected, `maxretry ${maxretry}, findtime ${findtime}`);
    assert.ok(actual.filter((r) => r.kind === 'ban').length > 10, `the sequence exercises bans: ${actual.filter((r) => r.kind === 'ban').length}`);
  }
});

test('reconfigure: a lower cap evicts the oldest at once, a higher one grows past the first reservation', () => {
  const t = new FailureTracker({ maxretry: 100, findtimeSec: 600, cap: 4, initialCapacity: 2 });
  const hosts = Array.from({ length: 12 }, (_, i) => ip(`192.0.2.${i + 1}`));
  for (const h of hosts.slice(0, 4)) t.add(h, 1000, 1000);
  t.reconfigure({ maxretry: 100, findtimeSec: 600, cap: 2 });
  assert.deepEqual(
    hosts.slice(0, 4).map((h) => t.retryOf(h)),
    [0, 0, 1, 1],
  );
  assert.equal(t.stats().capReached, true);
  t.reconfigure({ maxretry: 2, findtimeSec: 600, cap: 12 });
  for (const h of hosts) t.add(h, 1001, 1001);
  assert.equal(t.tracked, 10, 'the two surviving ones reached the new maxretry of 2 and were banned');
  // .1 and .2 were evicted and start again; .3 and .4 were banned.
  assert.deepEqual(
    hosts.map((h) => t.retryOf(h)),
    [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
  );
});

test('forEachTicket and restoreTicket carry tickets into a new tracker: counts, times and eviction order kept, findtime-old ones dropped', () => {
  const t = new FailureTracker({ maxretry: 5, findtimeSec: 600 });
  t.add(A, 1000, 1000);
  t.add(ip('2001:db8::/64'), 1100, 1100);
  t.add(A, 1200, 1200);
  t.add(B, 1300, 1300);
  const tickets: Array<[string, number, number, number, number]> = [];
  t.forEachTicket((address, first, last, retry) =>
    tickets.push([
      `${address.family}:${Buffer.from(address.bytes.subarray(0, address.family === 4 ? 4 : 16)).toString('hex')}/${address.prefix}`,
      address.family,
      first,
      last,
      retry,
    ]),
  );
  assert.deepEqual(
    tickets,
    [
      ['6:20010db8000000000000000000000000/64', 6, 1100, 1100, 1],
      ['4:c0000201/32', 4, 1000, 1200, 2],
      ['4:c6336407/32', 4, 1300, 1300, 1],
    ],
    'least recently failing first',
  );

  const copy = new FailureTracker({ maxretry: 5, findtimeSec: 600, cap: 2 });
  const restored: boolean[] = [];
  t.forEachTicket((address, first, last, retry) => restored.push(copy.restoreTicket(address, first, last, retry, 1750)));
  assert.deepEqual(restored, [false, true, true], 'the IPv6 ticket is findtime old at 1750');
  assert.equal(copy.retryOf(A), 2);
  assert.equal(copy.retryOf(B), 1);
  assert.deepEqual(copy.add(A, 1760, 1760), { kind: 'counted', retry: 3 });
  copy.add(ip('203.0.113.5'), 1770, 1770);
  assert.equal(copy.retryOf(B), 0, 'at the cap the least recently failing ticket goes, as before the copy');
});
