import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { LineAssembler } from './line-assembler.ts';
import { NotRegularFileError, type Opened, openRegularFile } from './open-regular.ts';
import type { ResumeRecord } from './resume-state.ts';
import { listSiblings, type Sibling } from './siblings.ts';

export interface FollowerTestHooks {
  /** Between reading a log directory's names and looking at each of them. */
  afterReaddir?: (dir: string) => Promise<void>;
  /** Just before a file is opened (after the follower looked at its path). */
  beforeOpen?: (file: string) => Promise<void>;
}

/** The follower's counters, shared by its parts and reported by stats(). */
export interface FollowerCounters {
  linesDelivered: number;
  linesTruncated: number;
  invalidUtf8Lines: number;
  rotations: number;
  errors: number;
}

/** An open file being read: the file now at a path, or a rotated one still being drained. */
export interface Source {
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
  /**
   * While it was seen empty and has no head yet: the rotations beside it then. A copy made later
   * holds lines it had before a copytruncate that no head can find (see Rotation.drainCopiesSinceEmpty).
   */
  rotationsWhenEmpty: RotationsSeen | null;
}

/** The rotations beside a path at one listing, and the directory's modification time just before it. */
export interface RotationsSeen {
  inodes: ReadonlySet<number>;
  /** The directory's mtime read before the listing (NaN when it could not be read). */
  dirMtimeMs: number;
  /** When the look began, before the directory's mtime was read (wall clock, as file times are). */
  listedAtMs: number;
}

/** Everything followed under one path: the file there now, and rotated ones whose rest comes first. */
export interface Track {
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

export interface FollowedFilesOptions {
  logger: Logger;
  clock: Clock;
  maxLineBytes: number;
  maxOpenFiles: number;
  testHooks: FollowerTestHooks;
  counters: FollowerCounters;
}

/**
 * The tracks a follower holds, their descriptors and their errors: every Source is opened through
 * here, so that at most maxOpenFiles descriptors stay open however many logs are matched.
 */
export class FollowedFiles {
  readonly tracks = new Map<string, Track>();
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly maxLineBytes: number;
  private readonly maxOpenFiles: number;
  private readonly testHooks: FollowerTestHooks;
  private readonly counters: FollowerCounters;
  private openFiles = 0;

  constructor(options: FollowedFilesOptions) {
    this.logger = options.logger;
    this.clock = options.clock;
    this.maxLineBytes = options.maxLineBytes;
    this.maxOpenFiles = options.maxOpenFiles;
    this.testHooks = options.testHooks;
    this.counters = options.counters;
  }

  add(file: string): Track {
    const track: Track = {
      path: file,
      dir: path.dirname(file),
      base: path.basename(file),
      current: null,
      draining: [],
      pendingCurrent: null,
      error: null,
      lastLineAt: null,
      dirty: true,
    };
    this.tracks.set(file, track);
    return track;
  }

  /** A Source on a file just opened, counted as an open descriptor. */
  makeSource(label: string, file: string, opened: Opened, offset: number, anchor: Buffer, closeAtEof: boolean): Source {
    this.openFiles++;
    return {
      label,
      file,
      handle: opened.handle,
      dev: opened.st.dev,
      ino: opened.st.ino,
      asm: new LineAssembler(this.maxLineBytes, offset, anchor),
      committed: { offset, anchor },
      lastGrowthAt: this.clock.now(),
      closeAtEof,
      seenSize: opened.st.size,
      head: Buffer.alloc(0),
      rotationsWhenEmpty: null,
    };
  }

  /**
   * Makes sure `s` has a descriptor: the file at its path if that is still it (device + inode),
   * else the sibling with its inode (rotated while closed). 'gone' when it is nowhere any more:
   * lines written to it after it was closed and before it went were not read, and that is said.
   * 'retry' when it could not be opened now (reported on the track).
   */
  async reopen(t: Track, s: Source): Promise<'open' | 'gone' | 'retry'> {
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
          this.counters.errors++;
          this.logger.warn(
            { path: t.path, inode: s.ino, offset: s.committed.offset },
            'a log file closed while quiet (descriptor limit) was rotated away and removed before it was read again: lines written to it after that offset were not read',
          );
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
  async parkIdle(keep: Track | null): Promise<void> {
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

  async closeHandle(s: Source): Promise<void> {
    const handle = s.handle;
    if (!handle) return;
    s.handle = null;
    this.openFiles--;
    await handle.close().catch(() => undefined);
  }

  siblingsOf(t: Track): Promise<Sibling[]> {
    return listSiblings(t.dir, t.base, this.testHooks.afterReaddir);
  }

  /** Opens the file at a track's path; null when it is not there, or cannot be opened now (reported on the track). */
  async tryOpen(t: Track, file: string): Promise<Opened | null> {
    try {
      await this.testHooks.beforeOpen?.(file);
      return await openRegularFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.setError(t, error);
      return null;
    }
  }

  setError(t: Track, error: unknown): void {
    const code = (error as NodeJS.ErrnoException).code;
    const message = code ? `${code}: ${errorMessage(error)}` : errorMessage(error);
    if (t.error === message) return;
    t.error = message;
    this.counters.errors++;
    if (error instanceof NotRegularFileError) {
      // Not a passing condition like a permission being fixed: this path is not read until it is a file again.
      this.logger.error({ path: t.path, err: message }, `cannot read log file ${t.path}: ${errorMessage(error)}`);
      return;
    }
    this.logger.warn({ path: t.path, err: message }, 'cannot read log file; retrying every poll interval');
  }

  clearError(t: Track): void {
    if (t.error === null) return;
    this.logger.info({ path: t.path, was: t.error }, 'log file readable again');
    t.error = null;
  }
}

/** The inodes a track holds open (plus `extra`): never taken again as a rotation or a copy. */
export function heldInodes(t: Track, extra: number[]): Set<number> {
  const held = new Set(extra);
  if (t.current) held.add(t.current.ino);
  for (const d of t.draining) held.add(d.ino);
  return held;
}

/** Opens a file whose failure to open only means it is not the one looked for. */
export async function openQuiet(file: string): Promise<Opened | null> {
  try {
    return await openRegularFile(file);
  } catch {
    return null;
  }
}

export function openHandle(s: Source): FileHandle {
  if (!s.handle) throw new Error(`internal: ${s.file} read while closed`);
  return s.handle;
}
