import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHIPPED_ACTIONS = path.join(REPO, 'actions');
export const DEBIAN_DIR = '/etc/fail2ban';

/** A temp dir with the given files (relative path → content); removed by the returned cleanup. */
export async function tempConfig(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-config-'));
  await writeFiles(dir, files);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** A copy of Debian's /etc/fail2ban in a temp dir. */
export async function copyOfDebianConfig(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'edgeban-f2b-'));
  await cp(DEBIAN_DIR, dir, { recursive: true });
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The Python that runs fail2ban (from fail2ban-client's #! line), or null if fail2ban is absent. */
export function fail2banPython(): string | null {
  for (const candidate of ['/usr/bin/fail2ban-client', '/usr/local/bin/fail2ban-client']) {
    if (!existsSync(candidate)) continue;
    const shebang = readFileSync(candidate, 'utf8').split('\n')[0] ?? '';
    const match = /^#!\s*(\S+)/.exec(shebang);
    if (match?.[1]) return match[1];
  }
  return null;
}

export const HAVE_FAIL2BAN = fail2banPython() !== null && existsSync(path.join(DEBIAN_DIR, 'jail.conf'));

/** Runs a Python snippet with fail2ban importable; returns its stdout parsed as JSON. */
export function runFail2banPython(script: string, args: string[]): unknown {
  const python = fail2banPython();
  if (python === null) throw new Error('fail2ban is not installed');
  return JSON.parse(execFileSync(python, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }));
}

/** Copies edgeban's shipped actions into DIR/action.d, so fail2ban itself can read a jail using them. */
export async function copyShippedActions(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'action.d'), { recursive: true });
  for (const name of await readdir(SHIPPED_ACTIONS)) await copyFile(path.join(SHIPPED_ACTIONS, name), path.join(dir, 'action.d', name));
}
