import assert from 'node:assert/strict';
import { stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { DEFAULT_INCREMENT } from '../../src/jails/ban-time.ts';
import { cidrList } from '../../src/jails/cidr.ts';
import { RECORD_BYTES } from '../../src/jails/failure-journal.ts';
import { FailurePersistence } from '../../src/jails/failure-persistence.ts';
import { JailEngine, type BanHistory, type MatchOutcome } from '../../src/jails/jail-engine.ts';
import { NO_NETWORK_FACTS } from '../../src/jails/network-facts.ts';
import type { JailSettings } from '../../src/jails/settings.ts';
import type { BanRequest } from '../../src/ledger/ledger.ts';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const LOG = '/var/log/mail.log';
const FINDTIME = 600;

function settings(over: Partial<JailSettings> = {}): JailSettings {
  return {
    name: 'dovecot',
    maxretry: 3,
    findtimeSec: FINDTIME,
    bantimeSec: 3600,
    increment: DEFAULT_INCREMENT,
    ignoreip: cidrList(['127.0.0.1/8']),
    ignoreself: true,
    ipv6prefix: 64,
    banprivate: false,
    maxtracked: 1_000_000,
    targets: [{ id: 'blocklist', alias: 'blocklist', firewall: null, source: { file: 'jail.local', line: 1, key: 'action' } }],
    ...over,
  };
}

const NO_HISTORY: BanHistory = { claimsOf: () => [], targets: () => [] };

/** One edgeban process: an engine with its jail and clock; a restart is a new Process on the same files. */
class Process {
  readonly engine: JailEngine;
  readonly clock: ManualClock;
  readonly bans: BanRequest[] = [];
  constructor(clock: ManualClock, jail: JailSettings = settings()) {
    this.clock = clock;
    this.engine = new JailEngine({
      jails: [jail],
      facts: NO_NETWORK_FACTS,
      history: NO_HISTORY,
      clock,
      random: () => 0,
      logger: silentLogger(),
      ban: async (request) => {
        this.bans.push(request);
      },
    });
  }
}

/** A log line: the attacker and its place in the log (offsets as the follower reports them). */
interface Line {
  host: string;
  endOffset: number;
  text: string;
}

/** `hosts` as consecutive log lines of a mail log starting at byte `from`. */
function logLines(hosts: string[], from = 0): Line[] {
  let offset = from;
  return hosts.map((host, i) => {
    const text = `Nov 21 12:00:00 mail dovecot: auth failed, rip=${host}, n=${from}-${i}`;
    offset += Buffer.byteLength(text) + 1;
    return { host, endOffset: offset, text };
  });
}

/** What the pipeline does per batch: skip lines counted before a restart, count the others, then commit. */
async function feed(p: FailurePersistence, proc: Process, lines: Line[]): Promise<Array<MatchOutcome | 'already counted'>> {
  const outcomes: Array<MatchOutcome | 'already counted'> = [];
  for (const line of lines) {
    const ref = p.lineRef(LOG, line.endOffset, line.text);
    if (p.alreadyCounted(ref)) {
      outcomes.push('already counted');
      continue;
    }
    outcomes.push(await proc.engine.onMatch('dovecot', { host: line.host, time: proc.clock.now() / 1000, line: ref }));
  }
  await p.commit();
  return outcomes;
}

async function open(
  t: TestContext,
  dir: string,
  proc: Process,
  resumeAt: number | null,
  extra: Partial<Parameters<typeof FailurePersistence.open>[0]> = {},
): Promise<FailurePersistence> {
  const p = await FailurePersistence.open({
    jail: 'dovecot',
    file: path.join(dir, 'dovecot.journal'),
    engine: proc.engine,
    resumeOffsets: resumeAt === null ? [] : [{ path: LOG, offset: resumeAt }],
    findtimeSec: FINDTIME,
    clock: proc.clock,
    logger: silentLogger(),
    ...extra,
  });
  t.after(() => p.close());
  return p;
}

const kinds = (outcomes: Array<MatchOutcome | 'already counted'>) =>
  outcomes.map((o) => (typeof o === 'string' ? o : o.kind === 'counted' ? `counted ${o.retry}` : o.kind));

test('failures below maxretry survive a crash: after the restart the count goes on where it stopped (IPv4 and IPv6 /64)', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  const before = logLines(['198.51.100.7', '2001:db8:1:2::10', '198.51.100.7', '2001:db8:1:2::20']);
  assert.deepEqual(kinds(await feed(p1, first, before)), ['counted 1', 'counted 1', 'counted 2', 'counted 2']);
  // SIGKILL: nothing closed; the offsets were saved past these lines.
  await clock.advance(30_000);

  const second = new Process(clock);
  const p2 = await open(t, dir, second, before.at(-1)!.endOffset);
  assert.equal(p2.stats().replayed, 4);
  const after = logLines(['2001:db8:1:2::30', '198.51.100.7'], before.at(-1)!.endOffset);
  assert.deepEqual(kinds(await feed(p2, second, after)), ['banned', 'banned']);
  assert.deepEqual(
    second.bans.map((b) => b.address),
    ['2001:db8:1:2::/64', '198.51.100.7'],
  );

  // The same lines without the restart decide the same.
  const straight = new Process(clock);
  const p3 = await open(t, await tempDir(t), straight, null);
  assert.deepEqual(kinds(await feed(p3, straight, [...before, ...after])), ['counted 1', 'counted 1', 'counted 2', 'counted 2', 'banned', 'banned']);
});

test('lines past the saved offset are read again after the restart and counted once, not twice; a new line at a known place counts', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  const lines = logLines(['198.51.100.7', '198.51.100.8', '198.51.100.7', '198.51.100.8']);
  await feed(p1, first, lines);
  // Killed after the journal was synced, before the offsets of the last three lines were saved.
  const second = new Process(clock);
  const p2 = await open(t, dir, second, lines[0]!.endOffset);
  assert.equal(p2.stats().recountable, 3);
  const next = logLines(['198.51.100.7', '198.51.100.8'], lines.at(-1)!.endOffset);
  assert.deepEqual(kinds(await feed(p2, second, [...lines.slice(1), ...next])), ['already counted', 'already counted', 'already counted', 'banned', 'banned']);
  assert.equal(p2.stats().skippedRereads, 3);
  assert.equal(p2.stats().recountable, 0);
  assert.equal(second.bans.length, 2, 'each banned once, at its third failure');

  // Killed again: the lines skipped are in the journal no more than once.
  const third = new Process(clock);
  const p3 = await open(t, dir, third, lines[0]!.endOffset);
  const other = { ...lines[1]!, text: `${lines[1]!.text} (another file, same offset)` };
  assert.deepEqual(kinds(await feed(p3, third, [other])), ['counted 1'], 'the address 198.51.100.8 was banned: its count started again; this line is new');
});

test('failures older than findtime at the restart do not count', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  await feed(p1, first, logLines(['198.51.100.7']));
  await clock.advance(300_000);
  await feed(p1, first, logLines(['198.51.100.7', '198.51.100.9'], 100));
  await clock.advance(400_000); // the first failure is now 700 s old, the others 400 s

  const second = new Process(clock);
  const p2 = await open(t, dir, second, 1000);
  assert.equal(p2.stats().replayed, 2);
  assert.deepEqual(kinds(await feed(p2, second, logLines(['198.51.100.7', '198.51.100.9'], 1000))), ['counted 2', 'counted 2']);
  await clock.advance(FINDTIME * 1000 + 1000);
  const third = new Process(clock);
  const p3 = await open(t, dir, third, 2000);
  assert.equal(p3.stats().replayed, 0, 'all findtime old');
  assert.deepEqual(kinds(await feed(p3, third, logLines(['198.51.100.7'], 2000))), ['counted 1']);
});

test('a manual unban before the crash still resets the count after it', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  await feed(p1, first, logLines(['198.51.100.7', '198.51.100.7', '198.51.100.8']));
  first.engine.forget('198.51.100.7');
  await p1.commit();
  const second = new Process(clock);
  const p2 = await open(t, dir, second, 1000);
  assert.deepEqual(kinds(await feed(p2, second, logLines(['198.51.100.7', '198.51.100.8'], 1000))), ['counted 1', 'counted 2']);
});

test('a torn journal tail loses only the batch being written, whose lines are read again (offsets were not saved past them)', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  const batch1 = logLines(['198.51.100.7', '198.51.100.8']);
  const batch2 = logLines(['198.51.100.7', '198.51.100.8'], batch1.at(-1)!.endOffset);
  await feed(p1, first, batch1);
  await feed(p1, first, batch2);
  const file = path.join(dir, 'dovecot.journal');
  await truncate(file, (await stat(file)).size - RECORD_BYTES - 10);

  const second = new Process(clock);
  const p2 = await open(t, dir, second, batch1.at(-1)!.endOffset);
  assert.equal(p2.stats().replayed, 2);
  assert.deepEqual(kinds(await feed(p2, second, batch2)), ['counted 2', 'counted 2']);
  assert.deepEqual(kinds(await feed(p2, second, logLines(['198.51.100.7'], 5000))), ['banned']);
});

test('compaction keeps the counts and the lines still to skip; the journal shrinks to the live tickets', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  // 40 failures of 20 attackers, two each, one batch per pair; one more banned (its ticket dropped).
  const lines = logLines([...Array.from({ length: 40 }, (_, i) => `203.0.113.${(i % 20) + 1}`), '198.51.100.99', '198.51.100.99', '198.51.100.99']);
  for (let i = 0; i < lines.length; i += 2) await feed(p1, first, lines.slice(i, i + 2));
  assert.equal(p1.stats().journalRecords, 43);
  let offsetsSaved = 0;
  await p1.compact(async () => {
    offsetsSaved++;
  });
  assert.equal(offsetsSaved, 1, 'the offsets are saved before failures are folded into tickets');
  assert.deepEqual([p1.stats().journalRecords, p1.stats().compactions], [20, 1], 'one ticket per live attacker');
  const more = logLines(['198.51.100.1', '198.51.100.1'], lines.at(-1)!.endOffset);
  assert.deepEqual(kinds(await feed(p1, first, more)), ['counted 1', 'counted 2']);

  // Killed with the offsets saved before `more`: those two lines are to be skipped when read again.
  const second = new Process(clock);
  const p2 = await open(t, dir, second, lines.at(-1)!.endOffset);
  assert.deepEqual([p2.stats().replayed, p2.stats().recountable], [22, 2]);
  await p2.compact(async () => {});
  assert.equal(p2.stats().journalRecords, 23, '21 tickets and the 2 lines still to skip');

  // Killed again before reading them: compaction kept them.
  const third = new Process(clock);
  const p3 = await open(t, dir, third, lines.at(-1)!.endOffset);
  assert.deepEqual([p3.stats().replayed, p3.stats().recountable], [21, 2]);
  const next = logLines(['203.0.113.1', '203.0.113.2', '198.51.100.1'], 100_000);
  assert.deepEqual(kinds(await feed(p3, third, [...more, ...next])), ['already counted', 'already counted', 'banned', 'banned', 'banned']);
});

test('a journal far larger than the live tickets is compacted at start, keeping the lines that will be read again', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  const lines = logLines([...Array.from({ length: 40 }, (_, i) => `203.0.113.${(i % 20) + 1}`), '198.51.100.99', '198.51.100.99', '198.51.100.99']);
  await feed(p1, first, lines);
  const resumeAt = lines[37]!.endOffset;
  const second = new Process(clock);
  const p2 = await open(t, dir, second, resumeAt, { compactAfterRecords: 0 });
  assert.deepEqual([p2.stats().compactions, p2.stats().recountable, p2.stats().journalRecords], [1, 5, 25], '20 tickets and 5 lines to skip');
  const third = new Process(clock);
  const p3 = await open(t, dir, third, resumeAt);
  assert.deepEqual(kinds(await feed(p3, third, [...lines.slice(38), ...logLines(['203.0.113.1', '198.51.100.99'], 100_000)])), [
    'already counted',
    'already counted',
    'already counted',
    'already counted',
    'already counted',
    'banned',
    'counted 1',
  ]);
});

test('a reload restarts the pipeline but does not replay into the counter that kept its counts', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const proc = new Process(clock);
  const p1 = await open(t, dir, proc, null);
  const lines = logLines(['198.51.100.7', '198.51.100.7']);
  await feed(p1, proc, lines);
  await p1.close();
  proc.engine.reload([settings({ maxretry: 4 })]);
  const p2 = await open(t, dir, proc, lines.at(-1)!.endOffset);
  assert.equal(p2.stats().replayed, 0);
  assert.deepEqual(kinds(await feed(p2, proc, logLines(['198.51.100.7', '198.51.100.7'], 1000))), ['counted 3', 'banned']);
});

test('the lines remembered for skipping are bounded; the excess is reported', async (t) => {
  const dir = await tempDir(t);
  const clock = new ManualClock();
  const first = new Process(clock);
  const p1 = await open(t, dir, first, null);
  await feed(p1, first, logLines(Array.from({ length: 10 }, (_, i) => `203.0.113.${i + 1}`)));
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  const second = new Process(clock);
  const p2 = await open(t, dir, second, 0, { maxRecountable: 4, logger });
  assert.equal(p2.stats().recountable, 4);
  assert.ok(
    logs.some((l) => l.forgotten === 6),
    'the 6 lines that may be counted twice are reported',
  );
  assert.ok(logs.some((l) => String(l.msg).includes('restored failure counts: 10 addresses')));
});
