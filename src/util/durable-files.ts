import { open, rename, stat } from 'node:fs/promises';

/** fsyncs a directory, which makes a rename or a new file in it durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
