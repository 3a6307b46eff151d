import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import { type FollowedFiles, type FollowerCounters, heldInodes, openQuiet, type Source, type Track } from './followed-files.ts';
import { ANCHOR_BYTES } from './line-assembler.ts';
import { NotRegularFileError, type Opened, readAt } from './open-regular.ts';
import { anchorHash, bytesBeforeResume, type ResumeRecord } from './resume-state.ts';
import { findCopy, isRotationOf, newerRotations, olderFirst, type Sibling } from './siblings.ts';

export interface RotationOptions {
  files: FollowedFiles;
  logger: Logger;
  clock: Clock;
  counters: FollowerCounters;
}

/**
 * Which file a track reads, and in what order: the file at the path, rotated ones (renamed away,
 * or copied before a truncation) drained first, found again by inode or by content after a restart.
 */
export class Rotation {
  private readonly files: FollowedFiles;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly counters: FollowerCounters;

  constructor(options: RotationOptions) {
    this.files = options.files;
    this.logger = options.logger;
    this.clock = options.clock;
    this.counters = options.counters;
  }

  /**
   * Applies saved records: the file still at the path resumes at its offset if it still holds
   * what was read there; a file rotated away meanwhile is found by inode among its siblings and its
   * remainder drained first, followed by any rotation made after it (two renames during downtime);
   * a file truncated meanwhile (copytruncate) has its remainder read from the copy if one is found.
   */
  async resume(t: Track, saved: ResumeRecord[]): Promise<void> {
    const ordered = [...saved.filter((r) => r.role === 'draining'), ...saved.filter((r) => r.role === 'current')];
    const atPath = await stat(t.path).catch(() => null);
    let siblings: Sibling[] | null = null;
    let newestRotated: Sibling | null = null;
    for (const rec of ordered) {
      if (atPath?.isFile() && atPath.ino === rec.ino) {
        const opened = await this.files.tryOpen(t, t.path);
        if (!opened) {
          t.pendingCurrent = rec;
          continue;
        }
        await this.adoptCurrent(t, opened, rec);
        continue;
      }
      siblings ??= await this.files.siblingsOf(t);
      const sib = siblings.find((s) => s.ino === rec.ino);
      if (!sib) {
        this.logger.warn(
          { path: t.path, inode: rec.ino, offset: rec.offset },
          'a file followed before the restart was rotated away and is not beside its path any more (deleted, compressed or moved): lines written to it after the saved offset were not read',
        );
        continue;
      }
      const opened = await openQuiet(sib.path);
      const anchor = opened && opened.st.ino === rec.ino ? await bytesBeforeResume(opened, rec) : null;
      if (!opened || !anchor) {
        await opened?.handle.close();
        this.logger.warn(
          { path: t.path, candidate: sib.path, inode: rec.ino },
          'a rotated file with the saved inode no longer holds the content read before the restart; skipping it',
        );
        continue;
      }
      t.draining.push(this.files.makeSource(t.path, sib.path, opened, rec.offset, anchor, false));
      newestRotated = sib;
      this.logger.info({ path: t.path, rotatedTo: sib.path, offset: rec.offset }, 'rotated during the restart: reading the rest of the old file first');
    }
    if (t.current === null && t.pendingCurrent === null && newestRotated && siblings) {
      await this.drainNewerRotations(t, siblings, newestRotated, atPath ? [atPath.ino] : []);
    }
  }

  /**
   * Notices a different file (or none) at the path and opens it; the old one is kept for draining.
   * Returns what is at the path when it is the current file.
   */
  async refreshIdentity(t: Track): Promise<Stats | null> {
    let st: Stats;
    try {
      st = await stat(t.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (t.current) this.retire(t, 'removed or renamed');
        this.files.clearError(t);
      } else {
        this.files.setError(t, error);
      }
      return null;
    }
    if (!st.isFile()) {
      this.files.setError(t, new NotRegularFileError(t.path, st));
      return null;
    }
    if (t.current && t.current.ino === st.ino && t.current.dev === st.dev) {
      this.files.clearError(t);
      return st;
    }
    const opened = await this.files.tryOpen(t, t.path);
    if (!opened) return null; // unreadable for now: the old file (if any) stays current until it is
    if (t.current && t.current.ino === opened.st.ino && t.current.dev === opened.st.dev) {
      await opened.handle.close();
      return opened.st;
    }
    this.files.clearError(t);
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
      const siblings = await this.files.siblingsOf(t);
      const old = siblings.find((s) => s.ino === newest.ino);
      if (old) await this.drainNewerRotations(t, siblings, old, [opened.st.ino]);
    }
    t.current = await this.startOfFile(t, opened);
    return opened.st;
  }

  /**
   * The file at the path was truncated under `cur` (copytruncate): the copy holding what we had
   * not read yet is drained first, and the file is read again from its beginning.
   */
  async onTruncated(t: Track, cur: Source): Promise<void> {
    this.counters.rotations++;
    const offset = cur.asm.lineStart;
    const anchor = cur.asm.anchor;
    const listedAtMs = Date.now();
    const dirMtimeMs = await directoryMtime(t);
    const siblings = await this.files.siblingsOf(t);
    // The copy holds the bytes before our offset; with nothing read yet, it begins with our head.
    const [idOffset, id] = offset > 0 && anchor.length > 0 ? [offset, anchor] : [cur.head.length, cur.head];
    const copy = await findCopy(siblings, t.base, { offset: idOffset, anchorLength: id.length, anchorSha256: anchorHash(id) }, heldInodes(t, []));
    const opened = copy ? await openQuiet(copy.path) : null;
    if (copy && opened) {
      t.draining.push(this.files.makeSource(t.path, copy.path, opened, offset, anchor, true));
      // Copies made by later copytruncates before we looked hold the lines after it.
      await this.drainNewerRotations(t, siblings, copy, [], true);
    }
    this.logger.info({ path: t.path, offset, copy: copy?.path ?? null }, 'log file truncated (copytruncate): reading it again from its beginning');
    cur.asm.reset(0);
    cur.committed = { offset: 0, anchor: Buffer.alloc(0) };
    cur.seenSize = 0;
    cur.head = Buffer.alloc(0);
    cur.rotationsWhenEmpty = { inodes: new Set(siblings.map((s) => s.ino)), dirMtimeMs, listedAtMs };
  }

  /**
   * `cur` was seen empty (just truncated, or new) and nothing of it is known. If it was written,
   * copied and truncated again before it was looked at, the lines in between are only in that copy,
   * and no head can find it: a rotation that appeared since it was seen empty is such a copy, to be
   * drained (oldest first) before `cur`, unless `cur` still begins as it does (copied, not truncated yet).
   * Once `cur` has a head, the head finds its copies and this ends.
   */
  async drainCopiesSinceEmpty(t: Track, cur: Source, size: number): Promise<void> {
    const seen = cur.rotationsWhenEmpty;
    if (seen === null) return;
    // A copy or a rename beside the file changes the directory's mtime: while it stays as it was well
    // after it last changed (so a coarse file-time clock cannot hide a later change), nothing new
    // is there, and the directory is not listed again on every poll.
    const listedAtMs = Date.now();
    const dirMtimeMs = await directoryMtime(t);
    if (dirMtimeMs === seen.dirMtimeMs && seen.listedAtMs - dirMtimeMs > COARSE_FILE_TIME_MS) {
      if (size > 0) cur.rotationsWhenEmpty = null;
      return;
    }
    const siblings = await this.files.siblingsOf(t);
    const held = heldInodes(t, []);
    const fresh = siblings.filter((s) => !seen.inodes.has(s.ino) && !held.has(s.ino) && isRotationOf(s.name, t.base) && s.size > 0);
    const head = size > 0 && cur.handle ? await readAt(cur.handle, 0, Math.min(ANCHOR_BYTES, size)) : Buffer.alloc(0);
    for (const s of olderFirst(fresh, t.base)) {
      const opened = await openQuiet(s.path);
      if (!opened || opened.st.ino !== s.ino) {
        await opened?.handle.close();
        continue;
      }
      if (head.length > 0 && (await readAt(opened.handle, 0, head.length)).equals(head)) {
        await opened.handle.close();
        continue;
      }
      this.counters.rotations++;
      t.draining.push(this.files.makeSource(t.path, s.path, opened, 0, Buffer.alloc(0), true));
      this.logger.info({ path: t.path, copy: s.path }, 'copied and truncated again before it was read: reading the copy first');
    }
    cur.rotationsWhenEmpty = head.length > 0 ? null : { inodes: new Set([...seen.inodes, ...fresh.map((s) => s.ino)]), dirMtimeMs, listedAtMs };
  }

  /** Takes the file at the path as current, at the record's offset if its content there is intact. */
  private async adoptCurrent(t: Track, opened: Opened, rec: ResumeRecord): Promise<void> {
    const anchor = await bytesBeforeResume(opened, rec);
    if (anchor) {
      t.current = this.files.makeSource(t.path, t.path, opened, rec.offset, anchor, false);
      return;
    }
    this.counters.rotations++;
    const siblings = await this.files.siblingsOf(t);
    const copy = await findCopy(siblings, t.base, rec, heldInodes(t, [opened.st.ino]));
    const copied = copy ? await openQuiet(copy.path) : null;
    const copyAnchor = copied ? await bytesBeforeResume(copied, rec) : null;
    if (copied && copyAnchor && copy) {
      t.draining.push(this.files.makeSource(t.path, copy.path, copied, rec.offset, copyAnchor, true));
      await this.drainNewerRotations(t, siblings, copy, [opened.st.ino], true);
      this.logger.info(
        { path: t.path, copy: copy.path, offset: rec.offset },
        'truncated during the restart (copytruncate): reading the rest from its copy, then the file from its beginning',
      );
    } else {
      await copied?.handle.close();
      this.logger.warn(
        { path: t.path, offset: rec.offset },
        'the file no longer holds what was read before the restart (truncated or replaced, no copy found): reading it from its beginning',
      );
    }
    t.current = await this.startOfFile(t, opened);
  }

  /**
   * The file at the path, to be read from its beginning. Its head is taken at once: if it is
   * copytruncated before our first read, the head is what finds the copy holding those lines.
   */
  private async startOfFile(t: Track, opened: Opened): Promise<Source> {
    const source = this.files.makeSource(t.path, t.path, opened, 0, Buffer.alloc(0), false);
    source.head = await readAt(opened.handle, 0, Math.min(ANCHOR_BYTES, opened.st.size));
    if (source.head.length === 0) {
      const listedAtMs = Date.now();
      const dirMtimeMs = await directoryMtime(t);
      source.rotationsWhenEmpty = { inodes: new Set((await this.files.siblingsOf(t)).map((s) => s.ino)), dirMtimeMs, listedAtMs };
    }
    return source;
  }

  private retire(t: Track, why: string): void {
    const old = t.current;
    if (!old) return;
    t.current = null;
    old.lastGrowthAt = this.clock.now();
    t.draining.push(old);
    this.counters.rotations++;
    this.logger.info({ path: t.path, inode: old.ino, why }, 'log file rotated: reading the rest of the old file first');
  }

  /** Rotations made after `older` that were never seen at the path (renamed again before we looked). */
  private async drainNewerRotations(t: Track, siblings: Sibling[], older: Sibling, skip: number[], copies = false): Promise<void> {
    for (const s of newerRotations(siblings, t.base, older, heldInodes(t, skip))) {
      const opened = await openQuiet(s.path);
      if (!opened || opened.st.ino !== s.ino) {
        await opened?.handle.close();
        continue;
      }
      t.draining.push(this.files.makeSource(t.path, s.path, opened, 0, Buffer.alloc(0), copies));
      this.logger.info({ path: t.path, rotated: s.path }, 'reading a rotation made before the previous one was seen');
    }
  }
}

/** File times may be whole seconds (or 2 s): a directory changed within this of a listing may change again unseen. */
const COARSE_FILE_TIME_MS = 2_000;

async function directoryMtime(t: Track): Promise<number> {
  return (await stat(t.dir).catch(() => null))?.mtimeMs ?? Number.NaN;
}
