import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { BanClaim } from '../../src/ledger/ban-claim.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { ALIAS, KEY, SECRET, startSimulator } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import {
  activeAddresses, documentationAddresses, dovecotFailure, killHard, readLedgerClaims, startDaemonProcess, until,
} from './enforcement-fault-helpers.ts';

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
  for (let i = 0; i < lines.length;) {
    const size = pick(1, 8);
    batches.push(lines.slice(i, i + size));
    i += size;
  }
  return { batches, crossing, killAfterBatch: pick(1, batches.length - 1), killDelayMs: pick(0, 80) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Where the killed daemon's persisted offset says reading resumes (0 when it never saved one). */
async function persistedOffset(dataDir: string, mailLog: string): Promise<number> {
  const text = await readFile(path.join(dataDir, 'offsets', 'dovecot.json'), 'utf8').catch(() => null);
  if (text === null) return 0;
  const files = (JSON.parse(text) as { files: Array<{ path: string; role: string; offset: number }> }).files;
  return files.find((f) => f.path === mailLog && f.role === 'current')?.offset ?? 0;
}

/** Failures per attacker in the log from byte `offset` on: what the restarted daemon reads. */
async function failuresFrom(mailLog: string, offset: number): Promise<Map<string, number>> {
  const text = (await readFile(mailLog)).subarray(offset).toString('utf8');
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/rip=(\S+?),/g)) counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + 1);
  return counts;
}

/** Attackers that crossed maxretry in the log but were not banned, per seed (see the todo test below). */
const lostToUnpersistedCounts = new Map<number, string[]>();

async function floodKillRestart(t: TestContext, seed: number): Promise<void> {
  const flood = planFlood(seed);
  const sim = await startSimulator(t);
  const root = await tempDir(t);
  const dataDir = path.join(root, 'data');
  const configDir = path.join(root, 'config');
  await mkdir(configDir);
  const mailLog = path.join(root, 'mail.log');
  await writeFile(mailLog, '');
  await writeFile(path.join(configDir, 'jail.local'),
    `[dovecot]\nenabled = true\nlogpath = ${mailLog}\nmaxretry = ${MAXRETRY}\nfindtime = 10m\nbantime = 1h\n`);
  const env = {
    OPNSENSE_URL: sim.url, OPNSENSE_KEY: KEY, OPNSENSE_SECRET: SECRET, EDGEBAN_DATA_DIR: dataDir, EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2', EDGEBAN_LOG_LEVEL: 'info',
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
  const resumeAt = await persistedOffset(dataDir, mailLog);
  // The log keeps growing while edgeban is down.
  for (const batch of flood.batches.slice(flood.killAfterBatch)) await write(batch);
  // What must be banned once it is back: every ban recorded before the kill, and every attacker
  // whose failures in the lines not yet acknowledged (re-read after the restart) reach maxretry.
  const expected = activeAddresses(beforeKill, ALIAS);
  for (const [address, failures] of await failuresFrom(mailLog, resumeAt)) if (failures >= MAXRETRY) expected.add(address);

  const second = await startDaemonProcess(t, env);
  let ledgerActive = new Set<string>();
  await until(`seed ${seed}: ${expected.size} attackers banned and the alias equal to the ledger`, async () => {
    ledgerActive = activeAddresses(await readLedgerClaims(dataDir), ALIAS);
    return sameSet(ledgerActive, expected) && sameSet(alias(), ledgerActive);
  }, 20_000, 100).catch((error: Error) => {
    const missing = [...expected].filter((a) => !ledgerActive.has(a));
    throw new Error(`${error.message}\n  killed after batch ${flood.killAfterBatch}/${flood.batches.length} +${flood.killDelayMs} ms; `
      + `in the ledger at the kill: ${beforeKill.length}, in the alias at the kill: ${aliasAtKill.size}\n  not banned: ${missing.join(' ')}\n`
      + `  alias minus ledger: ${[...alias()].filter((a) => !ledgerActive.has(a)).join(' ')}\n  daemon log: ${second.stderr.slice(-5).join('\n')}`);
  });
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0, second.stderr.join('\n'));

  // Settled: judged on the files and the simulator with no daemon running.
  const after = await readLedgerClaims(dataDir);
  const active = activeAddresses(after, ALIAS);
  assert.deepEqual(sorted(active), sorted(expected), 'no lost bans: every ban made before the kill and every attacker crossing maxretry in the unacknowledged lines');
  for (const address of active) assert.ok(flood.crossing.has(address), `${address} never crossed maxretry but was banned`);
  const lost = [...flood.crossing].filter((a) => !active.has(a));
  if (lost.length > 0) lostToUnpersistedCounts.set(seed, lost);
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

test(`SIGKILL of edgeban run at a seeded moment of a flood, ${RUNS} runs: after restart alias == ledger, no lost or zombie bans, expiries unchanged`, { timeout: 600_000 }, async (t) => {
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

// Known gap, kept visible: failures counted before the kill but below maxretry live only in
// memory, and their lines are not re-read (offsets were saved), so an attacker whose failures
// straddle the kill escapes. Turns green once counts survive a crash.
test('SIGKILL mid-flood: attackers whose failures straddle the kill are banned too', { todo: 'failure counts below maxretry are lost on a crash (offsets persisted past them)' }, () => {
  const lost = [...lostToUnpersistedCounts].map(([seed, addresses]) => `seed ${seed}: ${addresses.join(' ')}`);
  assert.deepEqual(lost, [], `crossed maxretry in the log but never banned:\n${lost.join('\n')}`);
});
