import path from 'node:path';
import { setTimeout as realDelay } from 'node:timers/promises';
import type { Logger } from '../logging/logger.ts';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { DirectoryWatch } from './directory-watch.ts';
import { FollowedFiles, type FollowerCounters, type FollowerTestHooks, openHandle, type Source, type Track } from './followed-files.ts';
import { readAt } from './open-regular.ts';
import { ANCHOR_BYTES, type AssembledLine } from './line-assembler.ts';
import { expandPatterns, matchesAnyPattern } from './patterns.ts';
import { loadResumeRecords, resumeRecord, saveResumeRecords, type ResumeRecord } from './resume-state.ts';
import { Rotation } from './rotation.ts';

export type { FollowerTestHooks } from './followed-files.ts';

export interface LogLine {
  /** The file's path as matched (for a rotated file being drained: the path it had). */
  path: string;
  /** The line without its newline (LF or CRLF), decoded as UTF-8 (invalid bytes become U+FFFD, counted). */
  text: string;
  /** Byte offset just past this line's newline in its file. */
  endOffset: number;
  /** The line was longer than maxLineBytes; text holds its first maxLineBytes bytes (less a cut character). */
  truncated: boolean;
  /** Every character is ASCII (known from the bytes read); false when not known. */
  ascii: boolean;
}

export interface LogFollowerOptions {
  /** Absolute file paths or globs (fail2ban logpath); files that appear later are picked up. */
  patterns: string[];
  /** Where resume records are persisted (JSON, atomic write: tmp + fsync + rename). */
  stateFile: string;
  /** The records of stateFile when the caller has loaded them already (loadResumeRecords); else loaded at start. */
  resumeRecords?: readonly ResumeRecord[];
  logger: Logger;
  clock?: Clock;
  /** Default 65536; never buffer a line without bound. */
  maxLineBytes?: number;
  /** Supervisor/polling interval, default 2000. */
  pollIntervalMs?: number;
  /** For filesystems that give no inotify events (NFS, some bind mounts). */
  forcePolling?: boolean;
  /**
   * How long a rotated file is still read after it last grew (a writer reopens only after
   * logrotate's postrotate signal). Default max(10 s, 3 poll intervals).
   */
  rotationGraceMs?: number;
  /** Awaited: backpressure — no further lines are delivered until it resolves. */
  onLines: (lines: LogLine[]) => Promise<void>;
  /**
   * Files held open at most (default 128). Beyond it the followed files quiet the longest are
   * closed and reopened by path when they change, their identity (device + inode) checked, so
   * thousands of matched logs cannot use up the process's descriptors (1,024 in Docker).
   */
  maxOpenFiles?: number;
  /**
   * Bytes read at a time, and so the most one onLines batch holds (default 64 KiB). A consumer
   * that pays a fixed cost per batch (an fsync) reads a backlog faster with more.
   */
  readChunkBytes?: number;
  /** Tests only: pause points where a test makes a race happen deterministically. */
  testHooks?: FollowerTestHooks;
}

export interface FollowerStats {
  files: Array<{ path: string; offset: number; inode: number | null; lastLineAt: number | null; error: string | null }>;
  linesDelivered: number;
  linesTruncated: number;
  invalidUtf8Lines: number;
  rotations: number;
  errors: number;
}

/** One read at a time for the whole follower, of at most this many bytes (by default): bounds memory whatever the backlog. */
const READ_CHUNK = 64 * 1024;
/** Chunks read from one file before the others get a turn. */
const CHUNKS_PER_TURN = 16;
/** How long stop() waits for an onLines call in flight before persisting without it. */
const STOP_WAIT_MS = 900;
type ReadResult = 'eof' | 'limit' | 'more' | 'stalled' | 'truncated';

/**
 * Follows log files across every kind of rotation and resumes exactly after a restart.
 *
 * Our own tailer on fs.watch + positional reads rather than the `tail-file` package: that package
 * keeps only character positions (no exact byte offset to resume from, and none at all once invalid
 * UTF-8 is replaced), buffers a whole line with a quadratic rescan (16 MiB line: 24 s, 307 MiB RSS)
 * with no cap we could impose from outside, has no backpressure, and deadlocks after EACCES.
 *
 * Design: one pump reads one chunk at a time and awaits onLines before reading on (backpressure and
 * bounded memory). fs.watch on each directory only says "look now" (DirectoryWatch); a supervisor every
 * pollIntervalMs re-expands the patterns, re-arms dead directory watches, and makes every file be
 * looked at, so a missed event costs latency, never lines. A rotated file stays open and is read to
 * its end before the file now at its path (Rotation), which is read only up to the size it had before that
 * drain started (so a writer that reopens late cannot get its new lines ahead of its old ones).
 * This class holds the pump, the supervisor and the resume records; FollowedFiles the tracks and descriptors.
 */
export class LogFollower {
  private readonly patterns: string[];
  private readonly stateFile: string;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly forcePolling: boolean;
  private readonly rotationGraceMs: number;
  private readonly onLines: (lines: LogLine[]) => Promise<void>;
  private readonly counters: FollowerCounters = { linesDelivered: 0, linesTruncated: 0, invalidUtf8Lines: 0, rotations: 0, errors: 0 };
  private readonly files: FollowedFiles;
  private readonly rotation: Rotation;
  private readonly watch: DirectoryWatch;

  private readonly buf: Buffer;
  private timer: TimerHandle | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private rescanWanted = false;
  /** Set after onLines rejected: wait for the next supervisor tick before retrying. */
  private stalled = false;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private saving: Promise<void> = Promise.resolve();
  private lastSaved = '';
  private saveFailing = false;

  private constructor(options: LogFollowerOptions) {
    this.patterns = options.patterns.map((p) => path.resolve(p));
    this.stateFile = options.stateFile;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    const maxLineBytes = options.maxLineBytes ?? 65_536;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.forcePolling = options.forcePolling ?? false;
    this.rotationGraceMs = options.rotationGraceMs ?? Math.max(10_000, 3 * this.pollIntervalMs);
    this.onLines = options.onLines;
    this.buf = Buffer.allocUnsafe(options.readChunkBytes ?? READ_CHUNK);
    const maxOpenFiles = options.maxOpenFiles ?? 128;
    if (!(maxOpenFiles >= 1)) throw new Error('maxOpenFiles must be at least 1');
    if (!(maxLineBytes >= 1)) throw new Error('maxLineBytes must be at least 1');
    if (!(this.pollIntervalMs > 0)) throw new Error('pollIntervalMs must be positive');
    const { logger, clock, counters } = this;
    this.files = new FollowedFiles({ logger, clock, maxLineBytes, maxOpenFiles, testHooks: options.testHooks ?? {}, counters });
    this.rotation = new Rotation({ files: this.files, logger, clock, counters });
    this.watch = new DirectoryWatch({
      patterns: this.patterns,
      forcePolling: this.forcePolling,
      logger,
      files: this.files,
      wakeups: {
        wake: (rescan) => {
          if (rescan) this.rescanWanted = true;
          this.kick();
        },
        goAgain: () => {
          this.again = true;
        },
      },
    });
  }

  static async start(options: LogFollowerOptions): Promise<LogFollower> {
    const follower = new LogFollower(options);
    await follower.init(options.resumeRecords ?? (await loadResumeRecords(options.stateFile, options.logger)));
    return follower;
  }

  stats(): FollowerStats {
    return {
      files: [...this.files.tracks.values()].map((t) => {
        const s = t.current ?? t.draining.at(-1) ?? null;
        return {
          path: t.path,
          offset: s?.committed.offset ?? t.pendingCurrent?.offset ?? 0,
          inode: s?.ino ?? null,
          lastLineAt: t.lastLineAt,
          error: t.error,
        };
      }),
      linesDelivered: this.counters.linesDelivered,
      linesTruncated: this.counters.linesTruncated,
      invalidUtf8Lines: this.counters.invalidUtf8Lines,
      rotations: this.counters.rotations,
      errors: this.counters.errors,
    };
  }

  /** Persists the resume record now (also done periodically and on stop). */
  checkpoint(): Promise<void> {
    const run = this.saving.then(() => this.writeState());
    this.saving = run.catch(() => undefined);
    return run;
  }

  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.timer?.cancel();
    this.timer = null;
    this.watch.close();
    if (this.pumping) {
      // A wall-clock bound, not the injected clock: a slow onLines must not hold up shutdown.
      const ac = new AbortController();
      await Promise.race([this.pumping, realDelay(STOP_WAIT_MS, undefined, { signal: ac.signal }).catch(() => undefined)]);
      ac.abort();
    }
    try {
      await this.checkpoint();
    } finally {
      const handles = [...this.files.tracks.values()].flatMap((t) => [...t.draining, ...(t.current ? [t.current] : [])]);
      await Promise.allSettled(handles.map((s) => this.files.closeHandle(s)));
    }
  }

  // ---- setup -------------------------------------------------------------------------------

  private async init(records: readonly ResumeRecord[]): Promise<void> {
    const byPath = new Map<string, ResumeRecord[]>();
    for (const r of records) {
      if (!matchesAnyPattern(r.path, this.patterns)) continue; // no longer configured
      byPath.set(r.path, [...(byPath.get(r.path) ?? []), r]);
    }
    const paths = new Set(await expandPatterns(this.patterns));
    // A saved path that matches no file now may still have a rotated remainder to drain.
    for (const p of byPath.keys()) paths.add(p);
    for (const p of [...paths].sort()) {
      const track = this.files.add(p);
      const saved = byPath.get(p);
      try {
        if (saved) await this.rotation.resume(track, saved);
        // Open now, so that once start() resolves a rotation or deletion cannot take the file from us
        // (beyond maxOpenFiles, closed again: then found by inode if it is rotated before we read it).
        await this.rotation.refreshIdentity(track);
      } catch (error) {
        this.files.setError(track, error);
      }
      await this.files.parkIdle(null);
    }
    await this.watch.sync();
    this.logger.info({ files: [...this.files.tracks.keys()], polling: this.forcePolling, resumed: records.length }, 'following log files');
    this.kick();
    this.scheduleTick();
  }

  // ---- supervisor --------------------------------------------------------------------------

  private scheduleTick(): void {
    if (this.stopping) return;
    this.timer = this.clock.setTimer(this.pollIntervalMs, () => void this.tick());
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (this.stopping) return;
    this.stalled = false;
    this.rescanWanted = true;
    for (const t of this.files.tracks.values()) t.dirty = true;
    this.kick();
    try {
      await this.checkpoint();
      this.saveFailing = false;
    } catch (error) {
      this.counters.errors++;
      // Once per outage, not every interval.
      if (!this.saveFailing) this.logger.warn({ stateFile: this.stateFile, err: errorMessage(error) }, 'cannot save log offsets; will keep trying');
      this.saveFailing = true;
    }
    this.scheduleTick();
  }

  // ---- the pump ----------------------------------------------------------------------------

  private kick(): void {
    if (this.stopping || this.stalled) return;
    this.again = true;
    if (this.pumping) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.again) this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.again && !this.stopping && !this.stalled) {
      this.again = false;
      if (this.rescanWanted) {
        this.rescanWanted = false;
        try {
          await this.watch.rescan();
        } catch (error) {
          this.counters.errors++;
          this.logger.warn({ err: errorMessage(error) }, 'cannot expand log file patterns');
        }
      }
      for (const t of [...this.files.tracks.values()]) {
        if (this.stopping || this.stalled) return;
        if (!t.dirty) continue;
        t.dirty = false;
        try {
          await this.processTrack(t);
        } catch (error) {
          if (!this.stopping) this.files.setError(t, error);
        }
        if (t.dirty) this.again = true;
        await this.files.parkIdle(t);
      }
    }
  }

  private async processTrack(t: Track): Promise<void> {
    const atPath = await this.rotation.refreshIdentity(t);
    let cur = t.current;
    let limit = 0;
    // Closed to save descriptors and unchanged at its path: nothing to read.
    if (cur && !cur.handle && atPath && atPath.size === cur.asm.pos && atPath.size >= cur.seenSize) cur = null;
    if (cur && (await this.files.reopen(t, cur)) !== 'open') return;
    if (cur) {
      const handle = openHandle(cur);
      let size = (await handle.stat()).size;
      if (size < cur.asm.pos || size < cur.seenSize || !(await contentIntact(cur))) {
        await this.rotation.onTruncated(t, cur);
        size = (await handle.stat()).size;
      }
      cur.seenSize = Math.max(cur.seenSize, size);
      if (cur.head.length === 0) await this.rotation.drainCopiesSinceEmpty(t, cur, size);
      // Before the rotated files are drained (backpressure may hold us there a long time): if this
      // file is copytruncated meanwhile, its head is what finds the copy of what we never read.
      if (cur.head.length < Math.min(ANCHOR_BYTES, size)) cur.head = await readAt(handle, 0, Math.min(ANCHOR_BYTES, size));
      // Taken before draining: what reaches the new file after this is read only on the next turn,
      // after the rotated file's latest lines.
      limit = size;
    }
    for (const d of [...t.draining]) {
      const reopened = await this.files.reopen(t, d);
      if (reopened === 'retry') return;
      if (reopened === 'gone') {
        t.draining.splice(t.draining.indexOf(d), 1);
        continue;
      }
      const r = await this.readSource(t, d, Number.POSITIVE_INFINITY);
      if (r === 'stalled') return;
      if (r === 'more') {
        t.dirty = true;
        return;
      }
      if (d.closeAtEof || this.clock.now() - d.lastGrowthAt >= this.rotationGraceMs) {
        if (!(await this.closeDrained(t, d))) return;
      }
    }
    if (cur && t.current === cur) {
      if ((await this.files.reopen(t, cur)) !== 'open') return;
      const r = await this.readSource(t, cur, limit, true);
      if (r === 'truncated') await this.rotation.onTruncated(t, cur);
      if (r === 'more' || r === 'truncated') t.dirty = true;
    }
  }

  /** A rotated file read to its end and quiet for the grace period: its last unfinished line is final. */
  private async closeDrained(t: Track, d: Source): Promise<boolean> {
    const partial = d.asm.flushPartial();
    if (partial && !(await this.deliver(t, d, [partial], false))) return false;
    t.draining.splice(t.draining.indexOf(d), 1);
    await this.files.closeHandle(d);
    this.logger.debug({ path: t.path, file: d.file, offset: d.committed.offset }, 'finished reading rotated file');
    return true;
  }

  /**
   * Reads and delivers up to CHUNKS_PER_TURN chunks. For the file at the path (`verify`), each read
   * is checked afterwards against the bytes just before it: if they changed, the file was truncated
   * (and maybe rewritten past our position) before the read, and what was read is not ours.
   */
  private async readSource(t: Track, s: Source, limit: number, verify = false): Promise<ReadResult> {
    for (let i = 0; i < CHUNKS_PER_TURN; i++) {
      if (this.stopping || this.stalled) return 'stalled';
      const want = Math.min(this.buf.length, limit - s.asm.pos);
      if (want <= 0) return 'limit';
      const { bytesRead } = await openHandle(s).read(this.buf, 0, want, s.asm.pos);
      if (bytesRead === 0) return 'eof';
      if (verify && !(await contentIntact(s))) return 'truncated';
      s.lastGrowthAt = this.clock.now();
      const lines: AssembledLine[] = [];
      s.asm.push(this.buf.subarray(0, bytesRead), lines);
      if (lines.length > 0 && !(await this.deliver(t, s, lines, s.asm.linesAscii))) return 'stalled';
    }
    return 'more';
  }

  private async deliver(t: Track, s: Source, lines: AssembledLine[], ascii: boolean): Promise<boolean> {
    const offset = s.asm.lineStart;
    const anchor = s.asm.anchor;
    const batch: LogLine[] = lines.map((l) => ({ path: s.label, text: l.text, endOffset: l.endOffset, truncated: l.truncated, ascii }));
    try {
      await this.onLines(batch);
    } catch (error) {
      // Not acknowledged: read these lines again after a pause rather than skip them.
      this.counters.errors++;
      this.logger.error({ path: s.label, err: errorMessage(error) }, 'processing log lines failed; retrying them shortly');
      s.asm.reset(s.committed.offset, s.committed.anchor);
      this.stalled = true;
      return false;
    }
    s.committed = { offset, anchor };
    this.counters.linesDelivered += lines.length;
    for (const l of lines) {
      if (l.truncated) this.counters.linesTruncated++;
      if (l.invalidUtf8) this.counters.invalidUtf8Lines++;
    }
    t.lastLineAt = this.clock.now();
    return true;
  }

  // ---- resume records ----------------------------------------------------------------------

  private async writeState(): Promise<void> {
    const records: ResumeRecord[] = [];
    for (const t of this.files.tracks.values()) {
      for (const d of t.draining) records.push(resumeRecord(t.path, 'draining', d));
      if (t.pendingCurrent) records.push(t.pendingCurrent);
      if (t.current) records.push(resumeRecord(t.path, 'current', t.current));
    }
    const json = JSON.stringify(records);
    if (json === this.lastSaved) return;
    await saveResumeRecords(this.stateFile, records);
    this.lastSaved = json;
  }
}

/**
 * False when the bytes just before our position changed (or, with nothing read yet, the file's
 * first bytes): truncated, and perhaps rewritten past it.
 */
async function contentIntact(s: Source): Promise<boolean> {
  const tail = s.asm.tail;
  const [at, expected] = tail.length > 0 ? [s.asm.pos - tail.length, tail] : [0, s.head];
  if (expected.length === 0) return true;
  const now = await readAt(openHandle(s), at, expected.length);
  return now.equals(expected);
}
