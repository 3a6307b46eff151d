import assert from 'node:assert/strict';
import { appendFile, copyFile, mkdir, readFile, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { copyFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/logging/logger.ts';
import type { LogLine } from '../../src/sources/log-follower.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { Collector, exactness, expectedExact, NumberedWriter, sleep, startFollower, waitFor } from './harness.ts';

function captureLogger(): { logger: ReturnType<typeof createLogger>; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (line: string) => {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  return { logger, records };
}

test('a 16 MiB line is cut at maxLineBytes in linear time and bounded memory; the next line is whole', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'big.log');
  await writeFile(log, Buffer.concat([Buffer.from('head\n'), Buffer.alloc(16 * 1024 * 1024, 0x61), Buffer.from('\nafter\n')]));
  const collector = new Collector();
  const rssBefore = process.memoryUsage().rss;
  const started = Date.now();
  const follower = await startFollower({ patterns: [log], stateFile: path.join(dir, 'state.json'), onLines: collector.onLines, maxLineBytes: 65_536 });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 3));
    t.diagnostic(`16 MiB line: ${Date.now() - started} ms, RSS growth ${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)} MiB`);
    const [head, big, after] = collector.lines;
    assert.equal(head?.text, 'head');
    assert.equal(big?.truncated, true);
    assert.equal(big?.text, 'a'.repeat(65_536));
    assert.equal(big?.endOffset, 5 + 16 * 1024 * 1024 + 1);
    assert.deepEqual([after?.text, after?.truncated], ['after', false]);
    assert.equal(follower.stats().linesTruncated, 1);
    // Not a timing bound: the whole 16 MiB line must never be held (tail-file reached 307 MiB).
    assert.ok(process.memoryUsage().rss - rssBefore < 96 * 2 ** 20, 'RSS grew by less than 96 MiB');
  } finally {
    await follower.stop();
  }
});

test('invalid UTF-8 never crashes and is counted; NUL bytes are kept', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'bin.log');
  await writeFile(log, Buffer.from([0x66, 0x6f, 0xff, 0x6f, 0x0a, 0x00, 0x01, 0x00, 0x0a, 0xed, 0xa0, 0x80, 0x0a, 0x6f, 0x6b, 0x0a]));
  const collector = new Collector();
  const follower = await startFollower({ patterns: [log], stateFile: path.join(dir, 'state.json'), onLines: collector.onLines });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 4));
    assert.deepEqual(
      collector.lines.map((l) => l.text),
      ['fo\ufffdo', '\u0000\u0001\u0000', '\ufffd\ufffd\ufffd', 'ok'],
    );
    assert.equal(follower.stats().invalidUtf8Lines, 2);
  } finally {
    await follower.stop();
  }
});

test('a partial last line is held until its newline, not delivered on stop, and re-read after a restart', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  const stateFile = path.join(dir, 'state.json');
  await writeFile(log, 'first\nsecond-par');
  const collector = new Collector();
  let follower = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines });
  assert.ok(await waitFor(() => collector.lines.length >= 1));
  await appendFile(log, 'tial-but-still');
  await sleep(200);
  await follower.stop();
  assert.deepEqual(
    collector.lines.map((l) => l.text),
    ['first'],
  );
  const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { files: Array<{ offset: number; role: string }> };
  assert.deepEqual(
    saved.files.map((f) => [f.role, f.offset]),
    [['current', 6]],
  );
  await appendFile(log, '-unfinished\nthird\n');
  follower = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 3));
    await sleep(100);
    assert.deepEqual(
      collector.lines.map((l) => [l.text, l.endOffset]),
      [
        ['first', 6],
        ['second-partial-but-still-unfinished', 42],
        ['third', 48],
      ],
    );
  } finally {
    await follower.stop();
  }
});

test('backpressure: while onLines is pending nothing more is read, and offsets stay at acknowledged lines', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'busy.log');
  const stateFile = path.join(dir, 'state.json');
  const writer = new NumberedWriter(log);
  await writer.open();
  for (let i = 0; i < 20; i++) await writer.write(5000); // ~4 MiB of backlog
  const delivered: LogLine[] = [];
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let maxBatchBytes = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const follower = await startFollower({
    patterns: [log],
    stateFile,
    onLines: async (lines) => {
      calls++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      maxBatchBytes = Math.max(
        maxBatchBytes,
        lines.reduce((n, l) => n + Buffer.byteLength(l.text) + 1, 0),
      );
      try {
        if (calls === 1) await gate;
        delivered.push(...lines);
      } finally {
        inFlight--;
      }
    },
  });
  try {
    assert.ok(await waitFor(() => calls === 1));
    await sleep(400); // several poll intervals: a follower that read ahead would call again or grow
    assert.equal(calls, 1, 'no second batch while the first is pending');
    assert.equal(follower.stats().files[0]?.offset, 0, 'nothing acknowledged yet');
    await follower.checkpoint();
    const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { files: Array<{ offset: number }> };
    assert.equal(saved.files[0]?.offset, 0);
    release();
    assert.ok(await waitFor(() => delivered.length >= writer.written));
    const numbers = delivered.map((l) => Number(/^line (\d+)/.exec(l.text)?.[1]));
    assert.deepEqual(exactness(numbers, writer.written), expectedExact(writer.written));
    assert.equal(maxInFlight, 1);
    // One read chunk (64 KiB) plus the start of its first line, held from the chunk before.
    assert.ok(maxBatchBytes <= 64 * 1024 + 100, `a batch is at most one read chunk (${maxBatchBytes} bytes)`);
  } finally {
    release();
    await follower.stop();
    await writer.close();
  }
});

test('stop() returns promptly while onLines hangs; the unacknowledged lines are delivered again after a restart', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  const stateFile = path.join(dir, 'state.json');
  await writeFile(log, 'one\ntwo\n');
  let hung = 0;
  const first = await startFollower({
    patterns: [log],
    stateFile,
    onLines: () => {
      hung++;
      return new Promise<void>(() => undefined);
    },
  });
  assert.ok(await waitFor(() => hung === 1));
  const stopped = await Promise.race([first.stop().then(() => true), sleep(5000).then(() => false)]);
  assert.ok(stopped, 'stop() resolved');
  const collector = new Collector();
  const second = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 2));
    assert.deepEqual(
      collector.lines.map((l) => l.text),
      ['one', 'two'],
    );
  } finally {
    await second.stop();
  }
});

test('a rejected onLines is retried with the same lines, none skipped', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  const writer = new NumberedWriter(log);
  await writer.open();
  await writer.write(300);
  const acknowledged: number[] = [];
  let failures = 0;
  const follower = await startFollower({
    patterns: [log],
    stateFile: path.join(dir, 'state.json'),
    onLines: async (lines) => {
      if (failures < 2) {
        failures++;
        throw new Error('jail busy');
      }
      acknowledged.push(...lines.map((l) => Number(/^line (\d+)/.exec(l.text)?.[1])));
    },
  });
  try {
    await writer.write(300);
    assert.ok(await waitFor(() => acknowledged.length >= writer.written));
    assert.deepEqual(exactness(acknowledged, writer.written), expectedExact(writer.written));
    assert.equal(follower.stats().errors, 2);
  } finally {
    await follower.stop();
    await writer.close();
  }
});

test('globs pick up files and directories that appear after start; other files are ignored', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'remotelogs', 'site1'), { recursive: true });
  await writeFile(path.join(dir, 'remotelogs', 'site1', 'access.log'), 'site1 a\n');
  const collector = new Collector();
  const follower = await startFollower({
    patterns: [path.join(dir, 'remotelogs', '*', 'access.log'), path.join(dir, 'mail', '*.log')],
    stateFile: path.join(dir, 'state.json'),
    onLines: collector.onLines,
    pollIntervalMs: 2000,
  });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 1));
    await mkdir(path.join(dir, 'remotelogs', 'site2'));
    await writeFile(path.join(dir, 'remotelogs', 'site2', 'access.log'), 'site2 a\n');
    await writeFile(path.join(dir, 'remotelogs', 'site2', 'error.log'), 'ignored\n');
    await mkdir(path.join(dir, 'mail'));
    await writeFile(path.join(dir, 'mail', 'dovecot.log'), 'dovecot a\n');
    // Within one slow (2 s) supervisor interval or two: the directory watches trigger the rescan.
    assert.ok(await waitFor(() => collector.lines.length >= 3, 10_000));
    await appendFile(path.join(dir, 'remotelogs', 'site2', 'access.log'), 'site2 b\n');
    assert.ok(await waitFor(() => collector.lines.length >= 4, 10_000));
    const byText = Object.fromEntries(collector.lines.map((l) => [l.text, path.relative(dir, l.path)]));
    assert.deepEqual(byText, {
      'site1 a': 'remotelogs/site1/access.log',
      'site2 a': 'remotelogs/site2/access.log',
      'site2 b': 'remotelogs/site2/access.log',
      'dovecot a': 'mail/dovecot.log',
    });
  } finally {
    await follower.stop();
  }
});

for (const [name, content] of [
  ['not JSON', '{"format": "edgeban-log-of'],
  ['the wrong shape', '{"format":"edgeban-log-offsets","version":1,"files":[{"path":"/x","offset":-5}]}'],
] as const) {
  test(`a damaged offsets file (${name}) is reported with its path and every file is read from its beginning`, async (t) => {
    const dir = await tempDir(t);
    const log = path.join(dir, 'app.log');
    const stateFile = path.join(dir, 'data', 'offsets.json');
    await mkdir(path.dirname(stateFile));
    await writeFile(stateFile, content);
    await writeFile(log, 'one\ntwo\n');
    const { logger, records } = captureLogger();
    const collector = new Collector();
    const follower = await startFollower({ patterns: [log], stateFile, onLines: collector.onLines, logger });
    try {
      assert.ok(await waitFor(() => collector.lines.length >= 2));
      assert.deepEqual(
        collector.lines.map((l) => l.text),
        ['one', 'two'],
      );
      const warning = records.find((r) => r.level === 40 && r.stateFile === stateFile);
      assert.ok(warning, 'a warning names the offsets file');
      assert.match(String(warning.msg), /damaged.*from its beginning/);
      assert.equal(await readFile(`${stateFile}.damaged`, 'utf8'), content);
    } finally {
      await follower.stop();
    }
    const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { files: Array<{ offset: number }> };
    assert.equal(saved.files[0]?.offset, 8, 'a sound file is written again');
  });
}

test('stats report each file, its offset, inode and last line time from the injected clock', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  await writeFile(log, 'one\n');
  const collector = new Collector();
  const clock = {
    now: () => 1_700_000_000_000,
    setTimer: (ms: number, fn: () => void) => {
      const h = setTimeout(fn, ms);
      return { cancel: () => clearTimeout(h) };
    },
    sleep: (ms: number) => sleep(ms),
  };
  const follower = await startFollower({
    patterns: [log, path.join(dir, 'missing.log')],
    stateFile: path.join(dir, 's.json'),
    onLines: collector.onLines,
    clock,
  });
  try {
    assert.ok(await waitFor(() => collector.lines.length >= 1));
    const stats = follower.stats();
    assert.deepEqual(stats.files, [
      { path: log, offset: 4, inode: (await stat(log)).ino, lastLineAt: 1_700_000_000_000, error: null },
      { path: path.join(dir, 'missing.log'), offset: 0, inode: null, lastLineAt: null, error: null },
    ]);
    assert.equal(stats.linesDelivered, 1);
  } finally {
    await follower.stop();
  }
});

/** Rotations while the consumer is far behind (the follower has read only the first chunk). */
const LAGGING: Array<[string, (log: string, writer: NumberedWriter) => Promise<void>]> = [
  [
    'rename + create',
    async (log, writer) => {
      await rename(log, `${log}.1`);
      await writer.reopen();
    },
  ],
  [
    'copytruncate',
    async (log) => {
      await copyFile(log, `${log}.1`);
      await truncate(log, 0);
    },
  ],
  [
    'copytruncate twice',
    async (log, writer) => {
      await copyFile(log, `${log}.1`);
      await truncate(log, 0);
      await writer.write(3000);
      await rename(`${log}.1`, `${log}.2`);
      await copyFile(log, `${log}.1`);
      await truncate(log, 0);
    },
  ],
  [
    'delete + recreate',
    async (log, writer) => {
      await unlink(log);
      await writer.reopen();
    },
  ],
  [
    'two renames',
    async (log, writer) => {
      await rename(log, `${log}.1`);
      await writer.reopen();
      await writer.write(3000);
      await rename(`${log}.1`, `${log}.2`);
      await rename(log, `${log}.1`);
      await writer.reopen();
    },
  ],
];

for (const [name, rotate] of LAGGING) {
  test(`${name} while the consumer lags megabytes behind: exact delivery`, async (t) => {
    const dir = await tempDir(t);
    const log = path.join(dir, 'app.log');
    const writer = new NumberedWriter(log);
    await writer.open();
    await writer.write(30_000); // ~1.6 MiB
    const delivered: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const follower = await startFollower({
      patterns: [log],
      stateFile: path.join(dir, 'state.json'),
      onLines: async (lines) => {
        await gate;
        delivered.push(...lines.map((l) => Number(/^line (\d+)/.exec(l.text)?.[1])));
      },
    });
    try {
      await rotate(log, writer);
      await writer.write(3000);
      release();
      await waitFor(() => delivered.length >= writer.written);
      await sleep(200);
      assert.deepEqual(exactness(delivered, writer.written), expectedExact(writer.written));
    } finally {
      release();
      await follower.stop();
      await writer.close();
    }
  });
}

test('copytruncate right after start, before the first read: what the file held at start is read from the copy', async (t) => {
  const dir = await tempDir(t);
  const log = path.join(dir, 'app.log');
  const writer = new NumberedWriter(log);
  await writer.open();
  await writer.write(2000);
  const delivered: number[] = [];
  const follower = await startFollower({
    patterns: [log],
    stateFile: path.join(dir, 'state.json'),
    onLines: async (lines) => {
      delivered.push(...lines.map((l) => Number(/^line (\d+)/.exec(l.text)?.[1])));
    },
  });
  try {
    // Synchronously, so it lands before the follower's first (asynchronous) read.
    copyFileSync(log, `${log}.1`);
    truncateSync(log, 0);
    await writer.write(100);
    assert.ok(await waitFor(() => delivered.length >= writer.written));
    await sleep(100);
    assert.deepEqual(exactness(delivered, writer.written), expectedExact(writer.written));
  } finally {
    await follower.stop();
    await writer.close();
  }
});
