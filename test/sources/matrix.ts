/**
 * The scenario matrix of docs/tailing.md: every rotation kind, each run with the follower
 * running throughout and with a stop and restart in the middle. A writer appends numbered lines
 * through an O_APPEND descriptor; the check is exact delivery (every number once, in order).
 */
import assert from 'node:assert/strict';
import { copyFile, rename, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { LogFollower } from '../../src/sources/log-follower.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { Collector, exactness, expectedExact, NumberedWriter, sleep, startFollower, waitFor } from './harness.ts';

interface Ctx {
  logDir: string;
  logPath: string;
  writer: NumberedWriter;
}

interface Row {
  name: string;
  rotate: (ctx: Ctx, round: number) => Promise<void>;
  /**
   * Whether the rotation itself may happen while the follower is down. Not for deletions: lines of
   * a deleted file that were not read before the stop exist nowhere any more (the running follower
   * keeps its descriptor and reads them; a stopped one cannot).
   */
  rotateWhileDown: boolean;
  /** The round in which the follower is stopped (restart variant). */
  downRound?: number;
  appearsLater?: boolean;
}

/** logrotate's numbered shift: access.log.2 → .3, .1 → .2 (the oldest beyond 4 is dropped). */
async function shiftRotations(logPath: string): Promise<void> {
  for (let i = 4; i >= 1; i--) await rename(`${logPath}.${i}`, `${logPath}.${i + 1}`).catch(() => undefined);
}

async function renameAndReopen(c: Ctx): Promise<void> {
  await shiftRotations(c.logPath);
  await rename(c.logPath, `${c.logPath}.1`);
  await c.writer.reopen();
}

const ROWS: Row[] = [
  { name: 'no rotation', rotateWhileDown: true, rotate: async () => undefined },
  { name: 'rename + create, writer reopens at once', rotateWhileDown: true, rotate: renameAndReopen },
  {
    name: 'rename + create, writer keeps writing the old file 300 ms',
    rotateWhileDown: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await rename(c.logPath, `${c.logPath}.1`);
      await writeFile(c.logPath, '', { flag: 'wx' }); // logrotate `create`
      const until = Date.now() + 300;
      for (let i = 0; i < 100 && Date.now() < until; i++) {
        await c.writer.write(20); // still the old descriptor, until the postrotate HUP
        await sleep(15);
      }
      await c.writer.reopen();
    },
  },
  {
    name: 'two renames 30 ms apart',
    rotateWhileDown: true,
    rotate: async (c) => {
      await renameAndReopen(c);
      await c.writer.write(50);
      await sleep(30);
      await renameAndReopen(c);
    },
  },
  {
    name: 'copytruncate',
    rotateWhileDown: true,
    rotate: async (c) => {
      await shiftRotations(c.logPath);
      await copyFile(c.logPath, `${c.logPath}.1`);
      await truncate(c.logPath, 0);
    },
  },
  {
    name: 'delete + immediate recreate',
    rotateWhileDown: false,
    rotate: async (c) => {
      await unlink(c.logPath);
      await c.writer.reopen();
    },
  },
  {
    name: 'delete, recreate 1.5 s later',
    rotateWhileDown: false,
    rotate: async (c) => {
      await unlink(c.logPath);
      await c.writer.close();
      await sleep(1500);
      await c.writer.open();
    },
  },
  {
    name: 'file appears after start',
    rotateWhileDown: true,
    downRound: 0,
    appearsLater: true,
    rotate: async (c, round) => {
      if (round !== 0) return;
      await sleep(300);
      await c.writer.open();
    },
  },
  {
    name: 'directory removed and recreated',
    rotateWhileDown: false,
    rotate: async (c) => {
      await c.writer.close();
      await rm(c.logDir, { recursive: true, force: true });
      await sleep(300);
      await c.writer.open();
    },
  },
];

const ROUNDS = 3;
const BURST = 150;

async function runRow(t: TestContext, row: Row, restart: boolean, forcePolling: boolean): Promise<void> {
  const dir = await tempDir(t, 'edgeban-sources-');
  const logDir = path.join(dir, 'logs');
  const logPath = path.join(logDir, 'access.log');
  const stateFile = path.join(dir, 'state', 'offsets.json');
  const writer = new NumberedWriter(logPath);
  const ctx: Ctx = { logDir, logPath, writer };
  const collector = new Collector();
  const options = { patterns: [logPath], stateFile, onLines: collector.onLines, forcePolling };
  if (!row.appearsLater) {
    await writer.open();
    await writer.burst(BURST);
  } else {
    await writeFile(path.join(dir, 'placeholder'), ''); // the directory exists, the file does not
  }
  let follower: LogFollower | null = await startFollower(options);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const down = restart && round === (row.downRound ?? 1);
      if (down) {
        await waitFor(() => collector.lines.length > 0 || row.appearsLater === true, 10_000);
        await follower.stop();
        follower = null;
        await writer.burst(BURST).catch(() => undefined); // the file may not exist yet
        if (!row.rotateWhileDown) follower = await startFollower(options);
      }
      if (!row.rotateWhileDown && follower) {
        // A deleted file's unread lines survive only in the follower's descriptor: it must have
        // opened the file before (it does so within milliseconds; this wait keeps the test exact).
        const f = follower;
        const ino = (await stat(logPath)).ino;
        await waitFor(() => f.stats().files.some((s) => s.inode === ino), 10_000);
      }
      await row.rotate(ctx, round);
      await writer.burst(BURST);
      if (!follower) follower = await startFollower(options);
      await writer.burst(BURST);
    }
    // Not asserted here: the exactness check below says which lines are missing.
    await waitFor(() => collector.lines.length >= writer.written, 10_000);
    await sleep(250); // a duplicate would arrive in this time
  } finally {
    await follower?.stop();
    await writer.close();
  }
  assert.deepEqual(exactness(collector.numbers(), writer.written), expectedExact(writer.written));
  assert.ok(collector.lines.every((l) => l.path === logPath && !l.truncated));
}

export function defineMatrix(forcePolling: boolean): void {
  for (const row of ROWS) {
    for (const restart of [false, true]) {
      test(`${forcePolling ? 'polling' : 'inotify'}: ${row.name}${restart ? ', restart in the middle' : ''}: exact delivery`, (t) =>
        runRow(t, row, restart, forcePolling));
    }
  }
}
