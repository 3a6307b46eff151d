import { watch, type FSWatcher, type Stats } from 'node:fs';
import { stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as realDelay } from 'node:timers/promises';
import type { Logger } from '../logging/logger.ts';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { ANCHOR_BYTES, LineAssembler, type AssembledLine } from './line-assembler.ts';
import { NotRegularFileError, openRegularFile } from './open-regular.ts';
import { expandPatterns, globRoot, isGlob, matchesAnyPattern } from './patterns.ts';
import { anchorHash, loadResumeRecords, saveResumeRecords, type ResumeRecord } from './resume-state.ts';
import { findCopy, listSiblings, newerRotations, type Sibling } from './siblings.ts';

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
  /** Tests only: pause points where a test makes a race happen deterministically. */
  testHooks?: FollowerTestHooks;
}

export interface FollowerTestHooks {
  /** Between reading a log directory's names and looking at each of them. */
  afterReaddir?: (dir: string) => Promise<void>;
  /** Just before a file is opened (after the follower looked at its path). */
  beforeOpen?: (file: string) => Promise<void>;
}

export interface FollowerStats {
  files: Array<{ path: string; offset: number; inode: number | null; lastLineAt: number | null; error: string | null }>;
  linesDelivered: number;
  linesTruncated: number;
  invalidUtf8Lines: number;
  rotations: number;
  errors: number;
}

/** One read at a time for the whole follower, of at most this many bytes: bounds memory whatever the backlog. */
const READ_CHUNK = 64 * 1024;
/** Chunks read from one file before the others get a turn. */
const CHUNKS_PER_TURN = 16;
/** How long stop() waits for an onLines call in flight before persisting without it. */
const STOP_WAIT_MS = 900;

interface Opened {
  handle: FileHandle;
  st: Stats;
}

/** An open file being read: the file now at a path, or a rotated one still being drained. */
interface Source {
  label: string;
  /** The path it was opened under (a rotated file may have been renamed again since). */
  file: string;
  /** Null while closed to save descriptors: reopened by path (or found by inode) when needed. */
  handle: FileHandle | null;
  dev: number;
  ino: number;
  asm: LineAssembler;
  /** Just past the last line whose onLines call resolved, and the bytes before it. */
  committed: { offset: number; anchor: Buffer };
  lastGrowthAt: number;
  /** A copytruncate copy: it never grows, so it is closed as soon as it is read to its end. */
  closeAtEof: boolean;
  /** The largest size seen: a log only grows, so a smaller one means truncated, even before a byte was read. */
  seenSize: number;
  /** Its first bytes (up to ANCHOR_BYTES) as first seen: what tells its copy, and a rewrite, when nothing was read yet. */
  head: Buffer;
}

/** Everything followed under one path: the file there now, and rotated ones whose rest comes first. */
interface Track {
  path: string;
  dir: string;
  base: string;
  current: Source | null;
  draining: Source[];
  /** The resume record of the file at the path, kept while that file cannot be opened yet. */
  pendingCurrent: ResumeRecord | null;
  error: string | null;
  lastLineAt: number | null;
  dirty: boolean;
}

interface DirWatch {
  watcher: FSWatcher;
  ino: number;
  birthtimeMs: number;
  dead: boolean;
}

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
 * bounded memory). fs.watch on each directory only says "look now"; a supervisor every
 * pollIntervalMs re-expands the patterns, re-arms dead directory watches, and makes every file be
 * looked at, so a missed event costs latency, never lines. A rotated file stays open and is read to
 * its end before the file now at its path, which is read only up to the size it had before that
 * drain started (so a writer that reopens late cannot get its new lines ahead of its old ones).
 */
export class LogFollower {
  private readonly patterns: string[];
  private readonly stateFile: string;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly maxLineBytes: number;
  private readonly pollIntervalMs: number;
  private readonly forcePolling: boolean;
  private readonly rotationGraceMs: number;
  private readonly onLines: (lines: LogLine[]) => Promise<void>;
  private readonly testHooks: FollowerTestHooks;
  private readonly maxOpenFiles: number;
  private openFiles = 0;

  private readonly tracks = new Map<string, Track>();
  private readonly watchers = new Map<string, DirWatch>();
  private readonly buf = Buffer.allocUnsafe(READ_CHUNK);
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

  private linesDelivered = 0;
  private linesTruncated = 0;
  private invalidUtf8Lines = 0;
  private rotations = 0;
  private errors = 0;

  private constructor(options: LogFollowerOptions) {
    this.patterns = options.patterns.map((p) => path.resolve(p));
    this.stateFile = options.stateFile;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.maxLineBytes = options.maxLineBytes ?? 65_536;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.forcePolling = options.forcePolling ?? false;
    this.rotationGraceMs = options.rotationGraceMs ?? Math.max(10_000, 3 * this.pollIntervalMs);
    this.onLines = options.onLines;
    this.testHooks = options.testHooks ?? {};
    this.maxOpenFiles = options.maxOpenFiles ?? 128;
    if (!(this.maxOpenFiles >= 1)) throw new Error('maxOpenFiles must be at least 1');
    if (!(this.maxLineBytes >= 1)) throw new Error('maxLineBytes must be at least 1');
    if (!(this.pollIntervalMs > 0)) throw new Error('pollIntervalMs must be positive');
  }

  static async start(options: LogFollowerOptions): Promise<LogFollower> {
    const follower = new LogFollower(options);
    await follower.init();
    return follower;
  }

  stats(): FollowerStats {
    return {
      files: [...this.tracks.values()].map((t) => {
        const s = t.current ?? t.draining.at(-1) ?? null;
        return {
          path: t.path,
          offset: s?.committed.offset ?? t.pendingCurrent?.offset ?? 0,
          inode: s?.ino ?? null,
          lastLineAt: t.lastLineAt,
          error: t.error,
        };
      }),
      linesDelivered: this.linesDelivered,
      linesTruncated: this.linesTruncated,
      invalidUtf8Lines: this.invalidUtf8Lines,
      rotations: this.rotations,
      errors: this.errors,
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
    for (const w of this.watchers.values()) w.watcher.close();
    this.watchers.clear();
    if (this.pumping) {
      // A wall-clock bound, not the injected clock: a slow onLines must not hold up shutdown.
      const ac = new AbortController();
      await Promise.race([this.pumping, realDelay(STOP_WAIT_MS, undefined, { signal: ac.signal }).catch(() => undefined)]);
      ac.abort();
    }
    try {
      await this.checkpoint();
    } finally {
      const handles = [...this.tracks.values()].flatMap((t) => [...t.draining, ...(t.current ? [t.current] : [])]);
      await Promise.allSettled(handles.map((s) => this.closeHandle(s)));
    }
  }

  // ---- setup -------------------------------------------------------------------------------

  private async init(): Promise<void> {
    const records = await loadResumeRecords(this.stateFile, this.logger);
    const byPath = new Map<string, ResumeRecord[]>();
    for (const r of records) {
      if (!matchesAnyPattern(r.path, this.patterns)) continue; // no longer configured
      byPath.set(r.path, [...(byPath.get(r.path) ?? []), r]);
    }
    const paths = new Set(await expandPatterns(this.patterns));
    // A saved path that matches no file now may still have a rotated remainder to drain.
    for (const p of byPath.keys()) paths.add(p);
    for (const p of [...paths].sort()) {
      const track = this.addTrack(p);
      const saved = byPath.get(p);
      try {
        if (saved) await this.resume(track, saved);
        // Open now, so that once start() resolves a rotation or deletion cannot take the file from us
        // (beyond maxOpenFiles, closed again: then found by inode if it is rotated before we read it).
        await this.refreshIdentity(track);
      } catch (error) {
        this.noteError(track, error);
      }
      await this.parkIdle(null);
    }
    await this.syncWatchers();
    this.logger.info({ files: [...this.tracks.keys()], polling: this.forcePolling, resumed: records.length },
      'following log files');
    this.kick();
    this.scheduleTick();
  }

  private addTrack(file: string): Track {
    const track: Track = {
      path: file, dir: path.dirname(file), base: path.basename(file), current: null, draining: [],
      pendingCurrent: null, error: null, lastLineAt: null, dirty: true,
    };
    this.tracks.set(file, track);
    return track;
  }

  /**
   * Applies saved records: the file still at the path resumes at its offset if it still holds
   * what was read there; a file rotated away meanwhile is found by inode among its siblings and its
   * remainder drained first, followed by any rotation made after it (two renames during downtime);
   * a file truncated meanwhile (copytruncate) has its remainder read from the copy if one is found.
   */
  private async resume(t: Track, saved: ResumeRecord[]): Promise<void> {
    const ordered = [...saved.filter((r) => r.role === 'draining'), ...saved.filter((r) => r.role === 'current')];
    const atPath = await stat(t.path).catch(() => null);
    let siblings: Sibling[] | null = null;
    let newestRotated: Sibling | null = null;
    for (const rec of ordered) {
      if (atPath?.isFile() && atPath.ino === rec.ino) {
        const opened = await this.tryOpen(t, t.path);
        if (!opened) {
          t.pendingCurrent = rec;
          continue;
        }
        await this.adoptCurrent(t, opened, rec);
        continue;
      }
      siblings ??= await this.siblingsOf(t);
      const sib = siblings.find((s) => s.ino === rec.ino);
      if (!sib) {
        this.logger.warn({ path: t.path, inode: rec.ino, offset: rec.offset },
          'a file followed before the restart was rotated away and is not beside its path any more (deleted, compressed or moved): lines written to it after the saved offset were not read');
        continue;
      }
      const opened = await this.openQuiet(sib.path);
      const anchor = opened && opened.st.ino === rec.ino ? await verifiedAnchor(opened, rec) : null;
      if (!opened || !anchor) {
        await opened?.handle.close();
        this.logger.warn({ path: t.path, candidate: sib.path, inode: rec.ino },
          'a rotated file with the saved inode no longer holds the content read before the restart; skipping it');
        continue;
      }
      t.draining.push(this.makeSource(t.path, sib.path, opened, rec.offset, anchor, false));
      newestRotated = sib;
      this.logger.info({ path: t.path, rotatedTo: sib.path, offset: rec.offset },
        'rotated during the restart: reading the rest of the old file first');
    }
    if (t.current === null && t.pendingCurrent === null && newestRotated && siblings) {
      await this.drainNewerRotations(t, siblings, newestRotated, atPath ? [atPath.ino] : []);
    }
  }

  /** Takes the file at the path as current, at the record's offset if its content there is intact. */
  private async adoptCurrent(t: Track, opened: Opened, rec: ResumeRecord): Promise<void> {
    const anchor = await verifiedAnchor(opened, rec);
    if (anchor) {
      t.current = this.makeSource(t.path, t.path, opened, rec.offset, anchor, false);
      return;
    }
    this.rotations++;
    const siblings = await this.siblingsOf(t);
    const copy = await findCopy(siblings, t.base, rec.offset, rec.anchorLength, rec.anchorSha256, this.heldInodes(t, [opened.st.ino]));
    const copied = copy ? await this.openQuiet(copy.path) : null;
    const copyAnchor = copied ? await verifiedAnchor(copied, rec) : null;
    if (copied && copyAnchor && copy) {
      t.draining.push(this.makeSource(t.path, copy.path, copied, rec.offset, copyAnchor, true));
      await this.drainNewerRotations(t, siblings, copy, [opened.st.ino], true);
      this.logger.info({ path: t.path, copy: copy.path, offset: rec.offset },
        'truncated during the restart (copytruncate): reading the rest from its copy, then the file from its beginning');
    } else {
      await copied?.handle.close();
      this.logger.warn({ path: t.path, offset: rec.offset },
        'the file no longer holds what was read before the restart (truncated or replaced, no copy found): reading it from its beginning');
    }
    t.current = await this.startOfFile(t, opened);
  }

  /**
   * The file at the path, to be read from its beginning. Its head is taken at once: if it is
   * copytruncated before our first read, the head is what finds the copy holding those lines.
   */
  private async startOfFile(t: Track, opened: Opened): Promise<Source> {
    const source = this.makeSource(t.path, t.path, opened, 0, Buffer.alloc(0), false);
    source.head = await readAt(opened.handle, 0, Math.min(ANCHOR_BYTES, opened.st.size));
    return source;
  }

  private makeSource(label: string, file: string, opened: Opened, offset: number, anchor: Buffer, closeAtEof: boolean): Source {
    this.openFiles++;
    return {
      label, file, handle: opened.handle, dev: opened.st.dev, ino: opened.st.ino,
      asm: new LineAssembler(this.maxLineBytes, offset, anchor),
      committed: { offset, anchor },
      lastGrowthAt: this.clock.now(),
      closeAtEof,
      seenSize: opened.st.size,
      head: Buffer.alloc(0),
    };
  }

  // ---- supervisor and watches --------------------------------------------------------------

  private scheduleTick(): void {
    if (this.stopping) return;
    this.timer = this.clock.setTimer(this.pollIntervalMs, () => void this.tick());
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (this.stopping) return;
    this.stalled = false;
    this.rescanWanted = true;
    for (const t of this.tracks.values()) t.dirty = true;
    this.kick();
    try {
      await this.checkpoint();
      this.saveFailing = false;
    } catch (error) {
      this.errors++;
      // Once per outage, not every interval.
      if (!this.saveFailing) this.logger.warn({ stateFile: this.stateFile, err: errorMessage(error) }, 'cannot save log offsets; will keep trying');
      this.saveFailing = true;
    }
    this.scheduleTick();
  }

  private async rescan(): Promise<void> {
    const paths = await expandPatterns(this.patterns);
    const wanted = new Set(paths);
    for (const p of paths) if (!this.tracks.has(p)) this.addTrack(p);
    for (const t of [...this.tracks.values()]) {
      if (!wanted.has(t.path) && !t.current && t.draining.length === 0 && !t.pendingCurrent) this.tracks.delete(t.path);
    }
    await this.syncWatchers();
  }

  private async syncWatchers(): Promise<void> {
    if (this.forcePolling || this.stopping) return;
    const dirs = new Set([...this.tracks.values()].map((t) => t.dir));
    for (const p of this.patterns) if (isGlob(p)) dirs.add(globRoot(p));
    // The parents too: a log directory removed and recreated is seen (and re-watched) at once.
    for (const d of [...dirs]) dirs.add(path.dirname(d));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) await this.ensureWatch(dir);
  }

  /** (Re)arms the watch of a directory; a removed and recreated directory needs a new one. */
  private async ensureWatch(dir: string): Promise<void> {
    const existing = this.watchers.get(dir);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) {
      if (existing) {
        existing.watcher.close();
        this.watchers.delete(dir);
      }
      return;
    }
    if (existing && !existing.dead && existing.ino === st.ino && existing.birthtimeMs === st.birthtimeMs) return;
    if (this.stopping) return;
    try {
      const watcher = watch(dir, { persistent: false }, (event, name) => this.onDirEvent(dir, event, name));
      const entry: DirWatch = { watcher, ino: st.ino, birthtimeMs: st.birthtimeMs, dead: false };
      watcher.on('error', () => {
        entry.dead = true;
        this.rescanWanted = true;
        this.kick();
      });
      this.watchers.set(dir, entry);
      // Anything may have happened in the directory while it was not watched.
      for (const t of this.tracks.values()) if (t.dir === dir) t.dirty = true;
      this.again = true;
    } catch (error) {
      // No inotify here (or out of watches): the supervisor's polling still finds every line.
      this.logger.debug({ dir, err: errorMessage(error) }, 'cannot watch directory; polling it');
    }
    existing?.watcher.close();
  }

  private onDirEvent(dir: string, event: string, name: string | null): void {
    if (this.stopping) return;
    const entry = this.watchers.get(dir);
    // inotify reports the watched directory's own removal under its name; the watch is dead then.
    if (event === 'rename' && name === path.basename(dir) && entry) {
      entry.dead = true;
      this.rescanWanted = true;
    }
    for (const t of this.tracks.values()) {
      if (t.dir === dir && (name === null || name === t.base || event === 'rename' || t.draining.length > 0)) t.dirty = true;
    }
    if (event === 'rename') this.rescanWanted = true;
    this.kick();
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
          await this.rescan();
        } catch (error) {
          this.errors++;
          this.logger.warn({ err: errorMessage(error) }, 'cannot expand log file patterns');
        }
      }
      for (const t of [...this.tracks.values()]) {
        if (this.stopping || this.stalled) return;
        if (!t.dirty) continue;
        t.dirty = false;
        try {
          await this.processTrack(t);
        } catch (error) {
          if (!this.stopping) this.noteError(t, error);
        }
        if (t.dirty) this.again = true;
        await this.parkIdle(t);
      }
    }
  }

  private async processTrack(t: Track): Promise<void> {
    const atPath = await this.refreshIdentity(t);
    let cur = t.current;
    let limit = 0;
    // Closed to save descriptors and unchanged at its path: nothing to read.
    if (cur && !cur.handle && atPath && atPath.size === cur.asm.pos && atPath.size >= cur.seenSize) cur = null;
    if (cur && (await this.reopen(t, cur)) !== 'open') return;
    if (cur) {
      const handle = openHandle(cur);
      let size = (await handle.stat()).size;
      if (size < cur.asm.pos || size < cur.seenSize || !(await contentIntact(cur))) {
        await this.onTruncated(t, cur);
        size = (await handle.stat()).size;
      }
      cur.seenSize = Math.max(cur.seenSize, size);
      // Before the rotated files are drained (backpressure may hold us there a long time): if this
      // file is copytruncated meanwhile, its head is what finds the copy of what we never read.
      if (cur.head.length < Math.min(ANCHOR_BYTES, size)) cur.head = await readAt(handle, 0, Math.min(ANCHOR_BYTES, size));
      // Taken before draining: what reaches the new file after this is read only on the next turn,
      // after the rotated file's latest lines.
      limit = size;
    }
    for (const d of [...t.draining]) {
      const reopened = await this.reopen(t, d);
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
      if ((await this.reopen(t, cur)) !== 'open') return;
      const r = await this.readSource(t, cur, limit, true);
      if (r === 'truncated') await this.onTruncated(t, cur);
      if (r === 'more' || r === 'truncated') t.dirty = true;
    }
  }

  /**
   * Notices a different file (or none) at the path and opens it; the old one is kept for draining.
   * Returns what is at the path when it is the current file.
   */
  private async refreshIdentity(t: Track): Promise<Stats | null> {
    let st: Stats;
    try {
      st = await stat(t.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (t.current) this.retire(t, 'removed or renamed');
        this.clearError(t);
      } else {
        this.setError(t, error);
      }
      return null;
    }
    if (!st.isFile()) {
      this.setError(t, new NotRegularFileError(t.path, st));
      return null;
    }
    if (t.current && t.current.ino === st.ino && t.current.dev === st.dev) {
      this.clearError(t);
      return st;
    }
    const opened = await this.tryOpen(t, t.path);
    if (!opened) return null; // unreadable for now: the old file (if any) stays current until it is
    if (t.current && t.current.ino === opened.st.ino && t.current.dev === opened.st.dev) {
      await opened.handle.close();
      return opened.st;
    }
    this.clearError(t);
    if (t.pendingCurrent) {
      const rec = t.pendingCurrent;
      t.pendingCurrent = null;
      if (rec.ino === opened.st.ino) {
        await this.adoptCurrent(t, opened, rec);
        return opened.st;
      }
    }
    if (t.current) this.retire(t, 'replaced');
    const newest = t.draining.at(-1);
    if (newest && !newest.closeAtEof) {
      const siblings = await this.siblingsOf(t);
      const old = siblings.find((s) => s.ino === newest.ino);
      if (old) await this.drainNewerRotations(t, siblings, old, [opened.st.ino]);
    }
    t.current = await this.startOfFile(t, opened);
    return opened.st;
  }

  private retire(t: Track, why: string): void {
    const old = t.current;
    if (!old) return;
    t.current = null;
    old.lastGrowthAt = this.clock.now();
    t.draining.push(old);
    this.rotations++;
    this.logger.info({ path: t.path, inode: old.ino, why }, 'log file rotated: reading the rest of the old file first');
  }

  /** Rotations made after `older` that were never seen at the path (renamed again before we looked). */
  private async drainNewerRotations(t: Track, siblings: Sibling[], older: Sibling, skip: number[], copies = false): Promise<void> {
    for (const s of newerRotations(siblings, t.base, older, this.heldInodes(t, skip))) {
      const opened = await this.openQuiet(s.path);
      if (!opened || opened.st.ino !== s.ino) {
        await opened?.handle.close();
        continue;
      }
      t.draining.push(this.makeSource(t.path, s.path, opened, 0, Buffer.alloc(0), copies));
      this.logger.info({ path: t.path, rotated: s.path }, 'reading a rotation made before the previous one was seen');
    }
  }

  private async onTruncated(t: Track, cur: Source): Promise<void> {
    this.rotations++;
    const offset = cur.asm.lineStart;
    const anchor = cur.asm.anchor;
    const siblings = await this.siblingsOf(t);
    // The copy holds the bytes before our offset; with nothing read yet, it begins with our head.
    const [idOffset, id] = offset > 0 && anchor.length > 0 ? [offset, anchor] : [cur.head.length, cur.head];
    const copy = await findCopy(siblings, t.base, idOffset, id.length, anchorHash(id), this.heldInodes(t, []));
    const opened = copy ? await this.openQuiet(copy.path) : null;
    if (copy && opened) {
      t.draining.push(this.makeSource(t.path, copy.path, opened, offset, anchor, true));
      // Copies made by later copytruncates before we looked hold the lines after it.
      await this.drainNewerRotations(t, siblings, copy, [], true);
    }
    this.logger.info({ path: t.path, offset, copy: copy?.path ?? null },
      'log file truncated (copytruncate): reading it again from its beginning');
    cur.asm.reset(0);
    cur.committed = { offset: 0, anchor: Buffer.alloc(0) };
    cur.seenSize = 0;
    cur.head = Buffer.alloc(0);
  }

  /** A rotated file read to its end and quiet for the grace period: its last unfinished line is final. */
  private async closeDrained(t: Track, d: Source): Promise<boolean> {
    const partial = d.asm.flushPartial();
    if (partial && !(await this.deliver(t, d, [partial], false))) return false;
    t.draining.splice(t.draining.indexOf(d), 1);
    await this.closeHandle(d);
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
      const want = Math.min(READ_CHUNK, limit - s.asm.pos);
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
      this.errors++;
      this.logger.error({ path: s.label, err: errorMessage(error) }, 'processing log lines failed; retrying them shortly');
      s.asm.reset(s.committed.offset, s.committed.anchor);
      this.stalled = true;
      return false;
    }
    s.committed = { offset, anchor };
    this.linesDelivered += lines.length;
    for (const l of lines) {
      if (l.truncated) this.linesTruncated++;
      if (l.invalidUtf8) this.invalidUtf8Lines++;
    }
    t.lastLineAt = this.clock.now();
    return true;
  }

  // ---- helpers -----------------------------------------------------------------------------

  /**
   * Makes sure `s` has a descriptor: the file at its path if that is still it (device + inode),
   * else the sibling with its inode (rotated while closed). False when it is nowhere any more:
   * lines written to it after it was closed and before it went were not read, and that is said.
   */
  /** Opens a file closed to save descriptors again: 'gone' when it no longer exists, 'retry' when it could not be opened now (reported on the track). */
  private async reopen(t: Track, s: Source): Promise<'open' | 'gone' | 'retry'> {
    if (s.handle) return 'open';
    let failed = false;
    const openIfSame = async (file: string): Promise<Opened | null> => {
      let o: Opened;
      try {
        o = await openRegularFile(file);
      } catch (error) {
        // A descriptor limit or a permission is no reason to give the file up: reported, tried again next poll.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          failed = true;
          this.setError(t, error);
        }
        return null;
      }
      if (o.st.ino === s.ino && o.st.dev === s.dev) return o;
      await o.handle.close();
      return null;
    };
    let opened = await openIfSame(s.file);
    if (!opened) {
      const sib = (await this.siblingsOf(t)).find((x) => x.ino === s.ino && x.dev === s.dev);
      opened = sib ? await openIfSame(sib.path) : null;
      if (!opened) {
        if (failed) return 'retry';
        if (s !== t.current) {
          this.errors++;
          this.logger.warn({ path: t.path, inode: s.ino, offset: s.committed.offset },
            'a log file closed while quiet (descriptor limit) was rotated away and removed before it was read again: lines written to it after that offset were not read');
        }
        return 'gone';
      }
      if (sib) s.file = sib.path;
    }
    s.handle = opened.handle;
    this.openFiles++;
    return 'open';
  }

  /**
   * Keeps at most maxOpenFiles descriptors: closes the current files quiet the longest, except the
   * track being worked on. Rotated files being drained are closed when read (they are few).
   */
  private async parkIdle(keep: Track | null): Promise<void> {
    if (this.openFiles <= this.maxOpenFiles) return;
    // Down to three quarters, so that the next reopens do not each sort every track again.
    const target = Math.floor(this.maxOpenFiles * 0.75);
    const open = [...this.tracks.values()]
      .filter((t) => t !== keep && t.current?.handle)
      .map((t) => t.current as Source)
      .sort((a, b) => a.lastGrowthAt - b.lastGrowthAt);
    for (const s of open) {
      if (this.openFiles <= target) return;
      await this.closeHandle(s);
    }
  }

  private async closeHandle(s: Source): Promise<void> {
    const handle = s.handle;
    if (!handle) return;
    s.handle = null;
    this.openFiles--;
    await handle.close().catch(() => undefined);
  }

  private siblingsOf(t: Track): Promise<Sibling[]> {
    return listSiblings(t.dir, t.base, this.testHooks.afterReaddir);
  }

  private heldInodes(t: Track, extra: number[]): Set<number> {
    const held = new Set(extra);
    if (t.current) held.add(t.current.ino);
    for (const d of t.draining) held.add(d.ino);
    return held;
  }

  private async tryOpen(t: Track, file: string): Promise<Opened | null> {
    try {
      await this.testHooks.beforeOpen?.(file);
      return await openRegularFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.setError(t, error);
      return null;
    }
  }

  private async openQuiet(file: string): Promise<Opened | null> {
    try {
      return await openRegularFile(file);
    } catch {
      return null;
    }
  }

  private setError(t: Track, error: unknown): void {
    const code = (error as NodeJS.ErrnoException).code;
    const message = code ? `${code}: ${errorMessage(error)}` : errorMessage(error);
    if (t.error === message) return;
    t.error = message;
    this.errors++;
    if (error instanceof NotRegularFileError) {
      // Not a passing condition like a permission being fixed: this path is not read until it is a file again.
      this.logger.error({ path: t.path, err: message }, `cannot read log file ${t.path}: ${errorMessage(error)}`);
      return;
    }
    this.logger.warn({ path: t.path, err: message }, 'cannot read log file; retrying every poll interval');
  }

  private noteError(t: Track, error: unknown): void {
    this.setError(t, error);
  }

  private clearError(t: Track): void {
    if (t.error === null) return;
    this.logger.info({ path: t.path, was: t.error }, 'log file readable again');
    t.error = null;
  }

  private async writeState(): Promise<void> {
    const records: ResumeRecord[] = [];
    for (const t of this.tracks.values()) {
      for (const d of t.draining) records.push(toRecord(t.path, 'draining', d));
      if (t.pendingCurrent) records.push(t.pendingCurrent);
      if (t.current) records.push(toRecord(t.path, 'current', t.current));
    }
    const json = JSON.stringify(records);
    if (json === this.lastSaved) return;
    await saveResumeRecords(this.stateFile, records);
    this.lastSaved = json;
  }
}

function toRecord(file: string, role: ResumeRecord['role'], s: Source): ResumeRecord {
  return {
    path: file, role, dev: s.dev, ino: s.ino, offset: s.committed.offset,
    anchorLength: s.committed.anchor.length, anchorSha256: anchorHash(s.committed.anchor),
  };
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

/** The bytes before the record's offset if they are still the ones read there, else null. */
async function verifiedAnchor(opened: Opened, rec: ResumeRecord): Promise<Buffer | null> {
  if (rec.anchorLength > rec.offset || opened.st.size < rec.offset) return null;
  const anchor = await readAt(opened.handle, rec.offset - rec.anchorLength, rec.anchorLength);
  return anchor.length === rec.anchorLength && anchorHash(anchor) === rec.anchorSha256 ? anchor : null;
}

function openHandle(s: Source): FileHandle {
  if (!s.handle) throw new Error(`internal: ${s.file} read while closed`);
  return s.handle;
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
