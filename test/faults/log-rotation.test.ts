/**
 * Fault suite: log rotation of every kind during one 100,000-line stream of mixed Dovecot failures
 * and noise, through the daemon's own chain — the jail's configuration read from a jail.local, the
 * shipped dovecot filter, the log follower, the jail pipeline and the jail engine's counting. Each
 * rotation kind strikes in the middle of its own phase of the stream, and each phase fails with
 * its own attacker addresses, so a lost or doubled failure is pinned on the rotation that caused it.
 * The check is exact: every failure line counted exactly once.
 */
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import { test } from 'node:test';
import { loadEnv } from '../../src/config/env.ts';
import { loadDaemonConfig } from '../../src/daemon/daemon-config.ts';
import { JailPipeline } from '../../src/daemon/jail-pipeline.ts';
import { JailEngine, type FailureMatch, type MatchOutcome } from '../../src/jails/jail-engine.ts';
import { NO_NETWORK_FACTS } from '../../src/jails/network-facts.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { systemClock } from '../../src/util/clock.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until as pollUntil } from '../helpers/until.ts';
import { AppendWriter } from '../sources/harness.ts';

const TOTAL_LINES = 100_000;
const BURST = 250;
/** Lines written at once just before each rotation, so the rotated file still holds unread lines. */
const BACKLOG = 2000;
/** Share of lines that are failures; the rest is noise, some of it naming the same addresses. */
const FAILURE_SHARE = 0.3;

/** A JailEngine that also tallies, per address, the failures it counted (the real counting, observed). */
class ObservedEngine extends JailEngine {
  readonly counted = new Map<string, number>();
  /** While set, counting waits: the follower, held by backpressure, stops reading mid-file. */
  private gate: { promise: Promise<void>; open: () => void } | null = null;
  waiting = false;

  hold(): void {
    let open = () => {};
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.gate = { promise, open };
    this.waiting = false;
  }

  release(): void {
    this.gate?.open();
    this.gate = null;
    this.waiting = false;
  }

  override async onMatch(jailName: string, match: FailureMatch): Promise<MatchOutcome> {
    if (this.gate) {
      this.waiting = true;
      await this.gate.promise;
    }
    const outcome = await super.onMatch(jailName, match);
    if (outcome.kind === 'counted') this.counted.set(outcome.address, (this.counted.get(outcome.address) ?? 0) + 1);
    return outcome;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function syslogStamp(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** Generates the stream: a seeded mix of failures by the phase's attackers and noise. */
class LineSource {
  private readonly random = seededRandom(6_2026);
  private serial = 0;
  failures = 0;
  lines = 0;

  next(attackers: readonly string[]): string {
    this.serial++;
    this.lines++;
    const stamp = `${syslogStamp(new Date())} mail`;
    const pick = <T>(list: readonly T[]): T => list[Math.floor(this.random() * list.length)]!;
    const address = pick(attackers);
    if (this.random() < FAILURE_SHARE) {
      this.failures++;
      const user = `user${this.serial}`;
      return pick([
        `${stamp} dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<${user}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<s${this.serial}>`,
        `${stamp} dovecot[812]: pop3-login: Aborted login (auth failed, 3 attempts in 12 secs): user=<${user}@example.org>, method=LOGIN, rip=${address}, lip=10.0.0.2, mpid=0, TLS, session=<p${this.serial}>`,
        `${stamp} dovecot: auth: passwd-file(${user},${address},<a${this.serial}>): unknown user`,
      ]);
    }
    return pick([
      // Noise naming the same addresses: a filter that counted these would show up as doubles.
      `${stamp} dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=${address}, lip=10.0.0.2, mpid=${this.serial}, TLS, session=<n${this.serial}>`,
      `${stamp} dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=${address}, lip=10.0.0.2, session=<q${this.serial}>`,
      `${stamp} postfix/smtpd[${this.serial % 9000}]: connect from unknown[${address}]`,
      `${stamp} dovecot: imap(alice)<${this.serial}><x>: Disconnected: Logged out in=${this.serial} out=1`,
      `${stamp} kernel: [${this.serial}.000] noise line ${'z'.repeat(this.serial % 61)}`,
    ]);
  }
}

interface Phase {
  /** The rotation kind, which the phase is named after. */
  name: string;
  rotate: (c: Ctx) => Promise<void>;
  /** Whether the rotation may strike while the follower is held mid-file (not for a plain truncate: it destroys unread lines). */
  whileBehind: boolean;
}

interface Ctx {
  logDir: string;
  logPath: string;
  writer: AppendWriter;
  /** Writes `count` lines of the current phase in bursts. */
  write: (count: number) => Promise<void>;
  /** Until the follower holds the file now at logPath open: its unread rest then survives deletion. */
  followerHoldsCurrent: () => Promise<void>;
  /** Until every line written so far was delivered: what a plain truncate destroys was read first. */
  caughtUp: () => Promise<void>;
}

async function shiftRotations(logPath: string): Promise<void> {
  for (let i = 4; i >= 1; i--) {
    for (const ext of ['', '.gz']) await rename(`${logPath}.${i}${ext}`, `${logPath}.${i + 1}${ext}`).catch(() => undefined);
  }
}

const PHASES: Phase[] = [
  {
    name: 'rename + create, writer reopens at once',
    whileBehind: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await rename(c.logPath, `${c.logPath}.1`);
      await c.writer.reopen();
    },
  },
  {
    name: 'rename + create, writer keeps writing the renamed file until its postrotate signal',
    whileBehind: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await rename(c.logPath, `${c.logPath}.1`);
      await writeFile(c.logPath, '', { flag: 'wx' }); // logrotate `create`
      await c.write(1000); // the old descriptor, until the HUP
      await c.writer.reopen();
    },
  },
  {
    name: 'copytruncate',
    whileBehind: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await copyFile(c.logPath, `${c.logPath}.1`);
      await truncate(c.logPath, 0); // the writer's O_APPEND descriptor goes on at the new end
    },
  },
  {
    name: 'delete + recreate',
    whileBehind: true,
    rotate: async (c) => {
      await c.followerHoldsCurrent();
      await unlink(c.logPath);
      await c.writer.reopen();
    },
  },
  {
    name: 'rename without create, the file created late',
    whileBehind: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await rename(c.logPath, `${c.logPath}.1`); // logrotate `nocreate`
      await c.write(1000); // still the renamed file; nothing at the path
      await sleep(700);
      await c.write(500);
      await c.writer.reopen(); // the application creates the file when it reopens
    },
  },
  {
    name: 'rename + create, the rotated file compressed and removed at once',
    whileBehind: true,
    rotate: async (c) => {
      await c.followerHoldsCurrent();
      await shiftRotations(c.logPath);
      await rename(c.logPath, `${c.logPath}.1`);
      await c.writer.reopen();
      // logrotate `compress` without `delaycompress`: .1 → .1.gz, then .1 is gone.
      await streamPipeline(createReadStream(`${c.logPath}.1`), createGzip(), createWriteStream(`${c.logPath}.1.gz`));
      await unlink(`${c.logPath}.1`);
    },
  },
  {
    name: 'truncate in place',
    whileBehind: false,
    rotate: async (c) => {
      await c.caughtUp();
      await truncate(c.logPath, 0);
    },
  },
  {
    name: 'directory removed and recreated',
    whileBehind: true,
    rotate: async (c) => {
      await c.followerHoldsCurrent();
      await c.writer.close();
      await rm(c.logDir, { recursive: true, force: true });
      await sleep(300);
      await c.writer.open();
    },
  },
];

/** Polled every 20 ms: the follower's states under test are short. */
const until = (what: string, condition: () => boolean | Promise<boolean>, limitMs: number): Promise<void> => pollUntil(what, condition, limitMs, 20);

test('log rotation of every kind during a 100,000-line stream: every failure counted exactly once', { timeout: 240_000 }, async (t) => {
  // Registered first, so it runs before the temp dir is removed (after hooks run in registration order).
  let stopPipeline: () => Promise<void> = async () => undefined;
  t.after(() => stopPipeline());
  const root = await tempDir(t, 'edgeban-rotation-');
  const logDir = path.join(root, 'logs');
  const logPath = path.join(logDir, 'mail.log');
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  await mkdir(configDir, { recursive: true });
  // maxretry beyond the stream: nothing is banned, every failure is counted (and shows up once).
  await writeFile(path.join(configDir, 'jail.local'), `[dovecot]\nenabled = true\nlogpath = ${logPath}\nmaxretry = 1000000\nfindtime = 1d\nbantime = 1h\n`);
  const writer = new AppendWriter(logPath);
  await writer.open();

  const env = loadEnv({
    env: {
      OPNSENSE_URL: 'http://127.0.0.1:9',
      OPNSENSE_KEY: 'rotationKey1234',
      OPNSENSE_SECRET: 'rotationSecret1234',
      EDGEBAN_DATA_DIR: dataDir,
      EDGEBAN_CONFIG_DIR: configDir,
    },
    envFile: path.join(root, 'none.env'),
  });
  const config = await loadDaemonConfig(env);
  const plan = config.jails.find((j) => j.definition.name === 'dovecot');
  assert.ok(plan, 'the dovecot jail is configured');
  const engine = new ObservedEngine({
    jails: [plan.settings],
    facts: NO_NETWORK_FACTS,
    history: { claimsOf: () => [], targets: () => [] },
    ban: async () => undefined,
    clock: systemClock,
    random: seededRandom(1),
    logger: silentLogger(),
  });
  const pipeline = new JailPipeline(plan, systemClock);
  await pipeline.start({ engine, dataDir, logger: silentLogger(), clock: systemClock, pollIntervalMs: 100 });
  stopPipeline = async () => {
    engine.release();
    // Bounded: a stuck stop must fail this test, not hold the test process open.
    await Promise.race([pipeline.stop(), sleep(10_000)]);
  };

  const source = new LineSource();
  const perPhase = Math.floor(TOTAL_LINES / PHASES.length);
  /** Expected failures per address; each phase has its own attackers. */
  const expected = new Map<string, number>();
  const attackersOf = (phase: number): string[] => [`198.51.100.${10 + phase}`, `203.0.113.${10 + phase}`, `2001:db8::${(0xa0 + phase).toString(16)}`];
  let current: string[] = [];
  const write = async (count: number, burst = BURST): Promise<void> => {
    for (let done = 0; done < count; done += burst) {
      let text = '';
      for (let i = 0; i < Math.min(burst, count - done); i++) {
        const before = source.failures;
        const line = source.next(current);
        if (source.failures > before) {
          const address = /rip=([0-9a-f.:]+)|passwd-file\([^,]+,([^,]+),/.exec(line);
          const hit = address?.[1] ?? address?.[2];
          assert.ok(hit);
          expected.set(hit, (expected.get(hit) ?? 0) + 1);
        }
        text += `${line}\n`;
      }
      await writer.append(text);
      await sleep(2); // reads interleave with writes
    }
  };
  const delivered = () => pipeline.stats().lines;
  const ctx: Ctx = {
    logDir,
    logPath,
    writer,
    write,
    followerHoldsCurrent: async () => {
      const ino = (await stat(logPath)).ino;
      await until('the follower to open the current file', () => pipeline.stats().follower?.files.some((f) => f.inode === ino) ?? false, 20_000);
    },
    caughtUp: async () => {
      const { ino, size } = await stat(logPath);
      await until(
        'the follower to read the file to its end',
        () => pipeline.stats().follower?.files.some((f) => f.inode === ino && f.offset === size) ?? false,
        30_000,
      );
    },
  };

  for (const [index, phase] of PHASES.entries()) {
    current = attackersOf(index);
    const startLines = source.lines;
    await write(Math.floor(perPhase / 2) - BACKLOG);
    // One large write right before the rotation, the follower held by backpressure in the middle of
    // it: the rotated file still holds unread lines when the rotation strikes.
    try {
      // The follower reads the file now at the path before it is held: held while still draining an
      // older rotation, it could not open that file, and the rotations that need it open (deletion)
      // would wait for it for ever.
      if (phase.whileBehind) await ctx.followerHoldsCurrent();
      if (phase.whileBehind) engine.hold();
      await write(BACKLOG / 2, BACKLOG / 2);
      if (phase.whileBehind) await until('the follower to be held mid-file', () => engine.waiting, 30_000);
      await write(BACKLOG / 2, BACKLOG / 2); // beyond the size the follower saw when it started this read
      await phase.rotate(ctx);
    } catch (error) {
      throw new Error(`${phase.name}: ${(error as Error).message}; follower ${JSON.stringify(pipeline.stats().follower)}`);
    } finally {
      engine.release();
    }
    await write(perPhase - (source.lines - startLines));
  }
  assert.equal(source.lines, perPhase * PHASES.length);
  // Until every line is in, or nothing more arrives for 5 s (then the checks below say which rotation lost lines).
  let last = -1;
  let lastChange = Date.now();
  await until(
    `all ${source.lines} lines delivered`,
    () => {
      const now = delivered();
      if (now !== last) [last, lastChange] = [now, Date.now()];
      return now >= source.lines || Date.now() - lastChange > 5000;
    },
    120_000,
  );
  await sleep(500); // a doubled line would arrive in this time
  await writer.close();

  for (const [index, phase] of PHASES.entries()) {
    await t.test(`${phase.name}: exact failure counts`, () => {
      const got = Object.fromEntries(attackersOf(index).map((a) => [a, engine.counted.get(a) ?? 0]));
      const want = Object.fromEntries(attackersOf(index).map((a) => [a, expected.get(a) ?? 0]));
      assert.deepEqual(got, want);
    });
  }
  await t.test('the whole stream: every line delivered once, every failure counted once', () => {
    const stats = engine.stats('dovecot')[0];
    assert.ok(stats);
    assert.deepEqual(
      { lines: delivered(), failures: stats.failures, truncated: pipeline.stats().follower?.linesTruncated },
      { lines: source.lines, failures: source.failures, truncated: 0 },
    );
    assert.ok(source.failures > TOTAL_LINES * FAILURE_SHARE * 0.9, 'the stream holds failures');
  });
});
