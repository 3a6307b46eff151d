import { mkdir, open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { UserFacingError } from './errors.ts';

/** fsyncs a directory, which makes a rename or a new file in it durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * `mkdir -p` that names the real problem. Node's recursive mkdir reports ENOENT when a parent is
 * read-only or not writable, even though the parent exists; creating one level at a time surfaces
 * EROFS or EACCES on the directory that refused.
 */
export async function ensureDirectory(dir: string, what: string): Promise<void> {
  const absolute = path.resolve(dir);
  const levels: string[] = [];
  for (let at = absolute; at !== path.dirname(at); at = path.dirname(at)) levels.unshift(at);
  for (const level of levels) {
    try {
      await mkdir(level, { mode: 0o700 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await stat(level)).isDirectory()) continue;
      const reason =
        code === 'EROFS'
          ? `${path.dirname(level)} is on a read-only file system (EROFS)`
          : code === 'EACCES' || code === 'EPERM'
            ? `edgeban (uid ${process.getuid?.() ?? '?'}) may not write in ${path.dirname(level)} (${code})`
            : code === 'EEXIST'
              ? `${level} exists and is not a directory`
              : (error as Error).message;
      throw new UserFacingError(`cannot create ${what} ${absolute}: ${reason}; the data dir (EDGEBAN_DATA_DIR) must be writable by edgeban`);
    }
  }
}

/** Renames a directory to `<dir>.reset-<time>` (never deletes it); returns where it went, or null when absent. */
export async function moveAside(dir: string, now: number): Promise<string | null> {
  try {
    await stat(dir);
  } catch {
    return null;
  }
  const aside = `${dir}.reset-${new Date(now).toISOString().replace(/[:.]/g, '-')}`;
  await rename(dir, aside);
  return aside;
}
