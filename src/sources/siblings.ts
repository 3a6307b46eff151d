import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { openRegularFile } from './open-regular.ts';
import { bytesBeforeResume, type ResumeAnchor } from './resume-state.ts';

/** A file beside a followed log, where rotation may have put (or copied) its older content. */
export interface Sibling {
  name: string;
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** Compressed rotations cannot be resumed at a byte offset of the plain file. */
const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|lzma|Z|zip)$/;

/** Listings taken until two in a row agree; rotations are seconds apart, so two suffice in practice. */
const MAX_LISTINGS = 6;

/**
 * Regular, uncompressed files in `dir` other than `exceptName`, as of one instant. A listing is a
 * readdir and then a stat per name: a rotation in between (logrotate's shift .1 → .2 → .3) makes
 * it a mix of two instants, where a file can go missing or appear under two names, and a rotated
 * file the follower never saw was then skipped. So the directory is listed again until two
 * listings in a row name the same files under the same names.
 */
export async function listSiblings(dir: string, exceptName: string, afterReaddir?: (dir: string) => Promise<void>): Promise<Sibling[]> {
  let previous = await listOnce(dir, exceptName, afterReaddir);
  for (let i = 1; i < MAX_LISTINGS; i++) {
    const next = await listOnce(dir, exceptName, afterReaddir);
    if (sameFiles(previous, next)) return next;
    previous = next;
  }
  return previous;
}

function sameFiles(a: readonly Sibling[], b: readonly Sibling[]): boolean {
  const key = (list: readonly Sibling[]) =>
    list
      .map((s) => `${s.dev}:${s.ino}:${s.name}`)
      .sort()
      .join('/');
  return a.length === b.length && key(a) === key(b);
}

async function listOnce(dir: string, exceptName: string, afterReaddir?: (dir: string) => Promise<void>): Promise<Sibling[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  await afterReaddir?.(dir);
  const out: Sibling[] = [];
  for (const name of names) {
    if (name === exceptName || COMPRESSED.test(name)) continue;
    const full = path.join(dir, name);
    try {
      const st = await stat(full);
      if (st.isFile()) out.push({ name, path: full, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // Vanished or unreadable meanwhile: not a candidate.
    }
  }
  return out;
}

/** Names logrotate gives a rotated `base`: base.1, base-20250101, base.old ... */
export function isRotationOf(name: string, base: string): boolean {
  return name.length > base.length && name.startsWith(base) && '.-_'.includes(name[base.length] ?? '');
}

function rotationNumber(name: string, base: string): number | null {
  const m = /^\.(\d+)$/.exec(name.slice(base.length));
  return m ? Number(m[1]) : null;
}

/**
 * Rotated files newer than `older` (which once was `base`), oldest first: what two quick renames
 * leave behind (access.log.1 between access.log.2 and the new access.log). Numbered rotations are
 * ordered by number (a smaller number is newer); other names by modification time.
 */
export function newerRotations(siblings: readonly Sibling[], base: string, older: Sibling, skipInodes: ReadonlySet<number>): Sibling[] {
  const olderNumber = rotationNumber(older.name, base);
  const picked = siblings.filter((s) => {
    if (s.ino === older.ino || skipInodes.has(s.ino) || !isRotationOf(s.name, base)) return false;
    const n = rotationNumber(s.name, base);
    if (olderNumber !== null && n !== null) return n < olderNumber;
    return s.mtimeMs > older.mtimeMs;
  });
  return olderFirst(picked, base);
}

/** Rotations oldest first: the highest number first (.2 before .1), else by modification time. */
export function olderFirst(rotations: readonly Sibling[], base: string): Sibling[] {
  return [...rotations].sort((a, b) => {
    const na = rotationNumber(a.name, base);
    const nb = rotationNumber(b.name, base);
    if (na !== null && nb !== null) return nb - na;
    return a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name);
  });
}

/**
 * The copy a copytruncate rotation made of a file that was read up to `anchor.offset`: a rotated
 * sibling at least that long whose bytes before that offset are the ones read there (compared by
 * hash). Without an anchor (offset 0) a copy cannot be told apart from any other file, so none is returned.
 */
export async function findCopy(siblings: readonly Sibling[], base: string, anchor: ResumeAnchor, skipInodes: ReadonlySet<number>): Promise<Sibling | null> {
  if (anchor.offset === 0 || anchor.anchorLength === 0) return null;
  const candidates = siblings
    .filter((s) => isRotationOf(s.name, base) && s.size >= anchor.offset && !skipInodes.has(s.ino))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const s of candidates) {
    const opened = await openRegularFile(s.path).catch(() => null);
    if (!opened) continue; // unreadable: cannot be the copy we can use
    try {
      if (await bytesBeforeResume(opened, anchor).catch(() => null)) return s;
    } finally {
      await opened.handle.close();
    }
  }
  return null;
}
