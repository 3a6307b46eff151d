import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banDurationMs, banTimeSec, DEFAULT_INCREMENT, type BanTimeIncrement, type BanTimeSettings } from '../../src/jails/ban-time.ts';
import { FAIL2BAN_PYTHON, runPython } from './helpers.ts';

const settings = (bantimeSec: number, increment: Partial<BanTimeIncrement> = {}): BanTimeSettings => ({
  bantimeSec,
  increment: { ...DEFAULT_INCREMENT, enabled: true, ...increment },
});
const noRandom = () => 0;

test('without bantime.increment every ban is bantime; -1 is permanent', () => {
  const s: BanTimeSettings = { bantimeSec: 600, increment: DEFAULT_INCREMENT };
  assert.deepEqual(
    [0, 1, 5].map((n) => banDurationMs(s, n, noRandom)),
    [600_000, 600_000, 600_000],
  );
  assert.equal(banDurationMs({ bantimeSec: -1, increment: { ...DEFAULT_INCREMENT, enabled: true } }, 3, noRandom), null);
});

test('default formula doubles per previous ban, capped at 2^20, then by maxtime', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((n) => banTimeSec(settings(600), n, noRandom)),
    [600, 1200, 2400, 4800, 9600],
  );
  assert.equal(banTimeSec(settings(1), 25, noRandom), 2 ** 20);
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => banTimeSec(settings(600, { maxtimeSec: 2000 }), n, noRandom)),
    [600, 1200, 2000, 2000],
  );
  // The first ban is never capped or randomised (the formula only runs for repeat offenders).
  assert.equal(
    banTimeSec(settings(600, { maxtimeSec: 300, rndtimeSec: 100 }), 0, () => 0.5),
    600,
  );
  assert.equal(
    banTimeSec(settings(600, { rndtimeSec: 100 }), 1, () => 0.5),
    1250,
  );
});

test('multipliers replace the formula; the last one repeats', () => {
  const s = settings(60, { multipliers: [1, 5, 30], factor: 2 });
  assert.deepEqual(
    [0, 1, 2, 3, 9].map((n) => banTimeSec(s, n, noRandom)),
    [60, 600, 3600, 3600, 3600],
  );
});

// fail2ban's own code: Jail.setBanTimeExtra builds the formula, ObserverThread.incrBanTime applies
// it with the previous ban count a (fake) database returns; random.random is pinned.
const FAIL2BAN_BANTIME = `
import json, sys, random, logging
logging.disable(logging.CRITICAL)
from fail2ban.server.jail import Jail
from fail2ban.server.observer import ObserverThread
from fail2ban.server.ticket import FailTicket
cfg = json.loads(sys.argv[1])
class DB:
    count = 0
    def getBan(self, ip, jail, overalljails=False):
        return [(self.count, 0, 0)] if self.count > 0 else []
class FakeJail:
    name = 'j'
    def __init__(self): self._banExtra = {}; self.database = DB()
    def isAlive(self): return True
    setBanTimeExtra = Jail.setBanTimeExtra
    getBanTimeExtra = Jail.getBanTimeExtra
random.random = lambda: cfg['random']
obs = ObserverThread()
out = []
for case in cfg['cases']:
    jail = FakeJail()
    for k, v in case['extra'].items(): jail.setBanTimeExtra(k, v)
    row = []
    for count in range(case['n']):
        jail.database.count = count
        row.append(obs.incrBanTime(jail, case['bantime'], FailTicket('192.0.2.1', 1000)))
    out.append(row)
print(json.dumps(out))
`;

test("repeat-ban sequences match fail2ban's own bantime.increment", { skip: FAIL2BAN_PYTHON === null && 'fail2ban not installed' }, () => {
  const random = 0.37;
  const cases: { bantime: number; extra: Record<string, string>; ours: BanTimeIncrement }[] = [
    { bantime: 600, extra: { increment: 'true' }, ours: { ...DEFAULT_INCREMENT, enabled: true } },
    { bantime: 600, extra: { increment: 'true', factor: '3', maxtime: '1w' }, ours: { ...DEFAULT_INCREMENT, enabled: true, factor: 3, maxtimeSec: 604800 } },
    {
      bantime: 3600,
      extra: { increment: 'true', maxtime: '5d', rndtime: '30m' },
      ours: { ...DEFAULT_INCREMENT, enabled: true, maxtimeSec: 432000, rndtimeSec: 1800 },
    },
    {
      bantime: 60,
      extra: { increment: 'true', multipliers: '1 5 30 60 300 720 1440 2880' },
      ours: { ...DEFAULT_INCREMENT, enabled: true, multipliers: [1, 5, 30, 60, 300, 720, 1440, 2880] },
    },
    {
      bantime: 60,
      extra: { increment: 'true', multipliers: '1 2 4 8 16 32 64', factor: '1.5', maxtime: '3h', rndtime: '10m' },
      ours: { ...DEFAULT_INCREMENT, enabled: true, multipliers: [1, 2, 4, 8, 16, 32, 64], factor: 1.5, maxtimeSec: 10800, rndtimeSec: 600 },
    },
    {
      bantime: 600,
      extra: { increment: 'true', formula: 'ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)', factor: '0.5' },
      ours: { ...DEFAULT_INCREMENT, enabled: true, formula: 'exponential', factor: 0.5 },
    },
    { bantime: 1, extra: { increment: 'true' }, ours: { ...DEFAULT_INCREMENT, enabled: true } },
  ];
  const expected = runPython(FAIL2BAN_BANTIME, { random, cases: cases.map((c) => ({ bantime: c.bantime, extra: c.extra, n: 24 })) }) as number[][];
  cases.forEach((c, i) => {
    const ours = Array.from({ length: 24 }, (_, n) => banTimeSec({ bantimeSec: c.bantime, increment: c.ours }, n, () => random));
    const theirs = expected[i]!;
    ours.forEach((value, n) => {
      assert.ok(Math.abs(value - theirs[n]!) <= 1e-9 * Math.max(1, theirs[n]!), `case ${i} ban #${n + 1}: ${value} vs fail2ban ${theirs[n]}`);
    });
  });
});
