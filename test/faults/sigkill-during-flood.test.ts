import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { BanClaim } from '../../src/ledger/ban-claim.ts';
import { anchorHash } from '../../src/sources/resume-state.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { ALIAS, KEY, SECRET, startSimulator } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { activeAddresses, documentationAddresses, dovecotFailure, killHard, readLedgerClaims, startDaemonProcess, until } from './enforcement-fault-helpers.ts';

const RUNS = Number(process.env.FAULT_RUNS ?? 20);
const MAXRETRY = 3;

interface Flood {
  /** Lines to append, in write batches (one appendFile each), attackers interleaved. */
  batches: string[][];
  /** Attackers whose failures reach maxretry somewhere in the log: each must end up banned. */
  crossing: Set<string>;
  /** The daemon is killed after this many batches were written, plus killDelayMs. */
  killAfterBatch: number;
  killDelayMs: number;
  /**
   * Even seeds: the saved offset is moved back by this share of the lines read before the kill, as
   * a crash leaves it when offsets were last saved a few batches before the failures were journaled
   * (the window between the two writes). Those lines are read again: counted once, not twice.
   */
  rewind: number | null;
}

/** A seeded flood: which attackers, how many failures each, how lines interleave, when the kill lands. */
function planFlood(seed: number): Flood {
  const random = seededRandom(seed);
  const pick = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  // Mostly IPv4 (198.51.100.0/24, 203.0.113.0/24), a few IPv6 (2001:db8::/32: offsets from 508 on).
  const attackers = [...documentationAddresses(pick(15, 35), pick(0, 470)), ...documentationAddresses(pick(2, 10), pick(508, 2000))];
  const crossing = new Set<string>();
  const lines: string[] = [];
  for (const address of attackers) {
    const failures = random() < 0.8 ? pick(MAXRETRY, MAXRETRY + 2) : pick(1, MAXRETRY - 1);
    if (failures >= MAXRETRY) crossing.add(address);
    for (let i = 0; i < failures; i++) lines.push(address);
  }
  for (let i = lines.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
  }
  const batches: string[][] = [];
  for (let i = 0; i < lines.length; ) {
    const size = pick(1, 8);
    batches.push(lines.slice(i, i + size));
    i += size;
  }
  return { batches, crossing, killAfterBatch: pick(1, batches.length - 1), killDelayMs: pick(0, 80), rewind: seed % 2 === 0 ? 0.2 + 0.6 * random() : null };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Where the killed daemon's persisted offset says reading resumes (0 when it never saved one). */
async function persistedOffset(dataDir: string, mailLog: string): Promise<number> {
  const text = await readFile(path.join(dataDir, 'offsets', 'dovecot.json'), 'utf8').catch(() => null);
  if (text === null) return 0;
  const files = (JSON.parse(text) as { files: Array<{ path: string; role: string; offset: number }> }).files;
  return files.find((f) => f.path === mailLog && f.role === 'current')?.offset ?? 0;
}

/**
 * Moves the saved offset of `mailLog` back to the start of the line `share` of the way back from
 * `offset` (anchor recomputed, so the follower accepts it); returns the new offset.
 */
async function rewindOffset(dataDir: string, mailLog: string, offset: number, share: number): Promise<number> {
  const content = await readFile(mailLog);
  const starts = [0];
  for (let i = content.indexOf(10); i !== -1 && i < offset; i = content.indexOf(10, i + 1)) if (i + 1 < offset) starts.push(i + 1);
  const to = starts[Math.floor(starts.length * (1 - share))] ?? 0;
  const stateFile = path.join(dataDir, 'offsets', 'dovecot.json');
  const state = JSON.parse(await readFile(stateFile, 'utf8')) as { files: Array<Record<string, unknown>> };
  const anchorLength = Math.min(64, to);
  for (const record of state.files) {
    if (record.path !== mailLog || record.role !== 'current') continue;
    Object.assign(record, { offset: to, anchorLength, anchorSha256: anchorHash(content.subarray(to - anchorLength, to)) });
  }
  await writeFile(stateFile, JSON.stringify(state));
  return to;
}

/** Failures per attacker in the log from byte `offset` on: what the restarted daemon reads. */
async function failuresFrom(mailLog: string, offset: number): Promise<Map<string, number>> {
  const text = (await readFile(mailLog)).subarray(offset).toString('utf8');
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/rip=(\S+?),/g)) counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + 1);
  return counts;
}

/** Per rewound seed, the failure lines read before the kill and read again after it. */
const rereadPerSeed = new Map<number, number>();

/**
 * Per seed, the attackers whose failures straddle the kill: some were read (and acknowledged: before
 * the saved offset) before it, too few follow for a ban on their own. Only failure counts that
 * survive the crash ban them (the failure journal); a restart that forgets counts loses them.
 */
const straddlersPerSeed = new Map<number, string[]>();

async function floodKillRestart(t: TestContext, seed: number): Promise<void> {
  const flood = planFlood(seed);
  const sim = await startSimulator(t);
  const root = await tempDir(t);
  const dataDir = path.join(root, 'data');
  const configDir = path.join(root, 'config');
  await mkdir(configDir);
  const mailLog = path.join(root, 'mail.log');
  await writeFile(mailLog, '');
  await writeFile(
    path.join(configDir, 'jail.local'),
    `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = ${MAXRETRY}\nfindtime = 10m\nbantime = 1h\n`,
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    EDGEBAN_LOG_LEVEL: 'info',
  };
  const alias = () => new Set(sim.tableEntries(ALIAS));
  const write = (batch: readonly string[]) => appendFile(mailLog, batch.map((address) => dovecotFailure(address)).join(''));

  const first = await startDaemonProcess(t, env);
  for (const batch of flood.batches.slice(0, flood.killAfterBatch)) {
    await write(batch);
    await sleep(10);
  }
  await sleep(flood.killDelayMs);
  await killHard(first);
  const beforeKill: BanClaim[] = await readLedgerClaims(dataDir);
  const aliasAtKill = alias();
  const savedAt = await persistedOffset(dataDir, mailLog);
  const resumeAt = flood.rewind === null || savedAt === 0 ? savedAt : await rewindOffset(dataDir, mailLog, savedAt, flood.rewind);
  if (flood.rewind !== null) {
    const before = (await readFile(mailLog)).subarray(resumeAt, savedAt).toString('utf8');
    rereadPerSeed.set(seed, [...before.matchAll(/rip=/g)].length);
  }
  // The log keeps growing while edgeban is down.
  for (const batch of flood.batches.slice(flood.killAfterBatch)) await write(batch);
  // What must be banned once it is back: every attacker whose failures in the whole log reach
  // maxretry (no lost bans), and no other (no failure counted twice: lines past the saved offset
  // are read again, and their failures were already counted before the kill).
  const expected = new Set(flood.crossing);
  const bannedAtKill = activeAddresses(beforeKill, ALIAS);
  for (const address of bannedAtKill) assert.ok(expected.has(address), `${address} was banned before the kill without crossing maxretry`);
  const reread = await failuresFrom(mailLog, resumeAt);
  const total = await failuresFrom(mailLog, 0);
  const straddlers = [...expected].filter((a) => !bannedAtKill.has(a) && (reread.get(a) ?? 0) < MAXRETRY && (total.get(a) ?? 0) > (reread.get(a) ?? 0));
  straddlersPerSeed.set(seed, straddlers);

  const second = await startDaemonProcess(t, env);
  let ledgerActive = new Set<string>();
  await until(
    `seed ${seed}: ${expected.size} attackers banned and the alias equal to the ledger`,
    async () => {
      ledgerActive = activeAddresses(await readLedgerClaims(dataDir), ALIAS);
      return sameSet(ledgerActive, expected) && sameSet(alias(), ledgerActive);
    },
    20_000,
    100,
  ).catch((error: Error) => {
    const missing = [...expected].filter((a) => !ledgerActive.has(a));
    const straddling = missing.filter((a) => straddlers.includes(a));
    throw new Error(
      `${error.message}\n  killed after batch ${flood.killAfterBatch}/${flood.batches.length} +${flood.killDelayMs} ms; ` +
        `in the ledger at the kill: ${beforeKill.length}, in the alias at the kill: ${aliasAtKill.size}\n  not banned: ${missing.join(' ')}\n` +
        `  of them, failures straddling the kill (counts lost in the crash): ${straddling.join(' ')}\n` +
        `  banned but never crossing maxretry (counted twice): ${[...ledgerActive].filter((a) => !expected.has(a)).join(' ')}\n` +
        `  alias minus ledger: ${[...alias()].filter((a) => !ledgerActive.has(a)).join(' ')}\n  daemon log: ${second.stderr.slice(-5).join('\n')}`,
    );
  });
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0, second.stderr.join('\n'));

  // Settled: judged on the files and the simulator with no daemon running.
  const after = await readLedgerClaims(dataDir);
  const active = activeAddresses(after, ALIAS);
  assert.deepEqual(
    sorted(active),
    sorted(expected),
    'no lost bans: every attacker crossing maxretry in the log, its failures before the kill, after it or both',
  );
  for (const address of active) assert.ok(flood.crossing.has(address), `${address} never crossed maxretry but was banned`);
  for (const address of straddlers) assert.ok(active.has(address), `${address}: failures straddling the kill were not added up`);
  assert.deepEqual(sorted(alias()), sorted(active), 'alias == ledger active set: nothing missing, no zombie entry');
  for (const address of aliasAtKill) assert.ok(active.has(address), `${address} was in the alias at the kill but is not banned after the restart`);
  const afterByKey = new Map(after.map((c) => [`${c.address} ${c.jail}`, c]));
  for (const claim of beforeKill) {
    const now = afterByKey.get(`${claim.address} ${claim.jail}`);
    assert.ok(now, `the ban of ${claim.address} recorded before the kill is gone`);
    assert.equal(now.expiresAt, claim.expiresAt, `${claim.address}: expiry changed across the restart`);
    assert.equal(now.bannedAt, claim.bannedAt, `${claim.address}: banned again after the restart`);
  }
  for (const claim of after) assert.equal(claim.banCount, 1, `${claim.address} was banned ${claim.banCount} times (lines read twice?)`);
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

test(`SIGKILL of edgeban run at a seeded moment of a flood, ${RUNS} runs: after restart alias == ledger, no lost or zombie bans, expiries unchanged`, {
  timeout: 600_000,
}, async (t) => {
  let failedSeed: number | null = null;
  for (let run = 1; run <= RUNS; run++) {
    // One failure is enough to report: skip the rest rather than wait out every seed's timeout.
    const skip = failedSeed === null ? false : `seed ${failedSeed} failed`;
    await t.test(`seed ${run}`, { timeout: 90_000, skip }, async (t2) => {
      try {
        await floodKillRestart(t2, run);
      } catch (error) {
        failedSeed = run;
        throw error;
      }
    });
  }
});

// The runs above ban every straddling attacker; this makes sure they had some to ban (the kill
// lands mid-attack in most seeds), so a passing run is not one that never tested the crash case.
test("SIGKILL mid-flood: the seeded kills split attackers' failures across the restart, and those attackers are banned", (t) => {
  const seeds = [...straddlersPerSeed].filter(([, addresses]) => addresses.length > 0);
  const straddlers = seeds.reduce((sum, [, addresses]) => sum + addresses.length, 0);
  t.diagnostic(
    `${straddlers} attackers in ${seeds.length} of ${RUNS} seeds banned only by adding up failures from both sides of the kill; ` +
      `${[...rereadPerSeed.values()].reduce((a, b) => a + b, 0)} counted failure lines read again in ${rereadPerSeed.size} rewound seeds`,
  );
  assert.equal(straddlersPerSeed.size, RUNS, 'every seed ran');
  assert.ok(seeds.length >= Math.ceil(RUNS / 2), `only ${seeds.length} of ${RUNS} seeds killed edgeban between an attacker's failures`);
  const rewound = [...rereadPerSeed.values()].filter((lines) => lines > 0);
  assert.ok(rewound.length >= Math.floor(RUNS / 4), `only ${rewound.length} seeds read counted failure lines again after the restart`);
});
