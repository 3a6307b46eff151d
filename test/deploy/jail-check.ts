import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadJails, type LoadedJails } from '../../src/config/fail2ban/jail-definition.ts';
import { configDirs } from '../../src/config/shipped-dirs.ts';

/** Loads a jail.local with edgeban's own reader (built-in jail.conf + shipped filters and actions). */
export async function loadJailLocal(text: string): Promise<LoadedJails> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-deploy-jail-'));
  try {
    await writeFile(path.join(dir, 'jail.local'), text);
    return await loadJails(configDirs(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
