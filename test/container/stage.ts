// Builds the bundle and lays out what the final image holds, in a directory an unprivileged user
// can read but not write: node, the bundle, filters/, actions/, and no node_modules anywhere.
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BUNDLE_ENTRY } from '../../deploy/docker/build.ts';
import { REPO } from '../helpers/cli.ts';

const run = promisify(execFile);

/** `npm run build`'s script as a process, into `outdir`; returns the entry file. */
export async function buildBundle(outdir: string): Promise<string> {
  await run(process.execPath, [path.join(REPO, 'deploy/docker/build.ts'), '--outdir', outdir], { cwd: REPO, timeout: 120_000 });
  return path.join(outdir, BUNDLE_ENTRY);
}

export interface StagedImage {
  /** The node binary, readable and executable by anyone. */
  node: string;
  /** /app in the image: dist/, filters/, actions/. */
  appDir: string;
  bundle: string;
}

/** Copies node and the image's /app content under `root`, root-owned, dirs 0755 and files 0644. */
export async function stageImage(root: string, bundleDir: string): Promise<StagedImage> {
  const appDir = path.join(root, 'app');
  await mkdir(appDir, { recursive: true });
  await cp(bundleDir, path.join(appDir, 'dist'), { recursive: true });
  for (const dir of ['filters', 'actions']) await cp(path.join(REPO, dir), path.join(appDir, dir), { recursive: true });
  await normalizeModes(appDir);
  const node = path.join(root, 'node');
  await copyFile(process.execPath, node);
  await chmod(node, 0o755);
  await chmod(root, 0o755);
  return { node, appDir, bundle: path.join(appDir, 'dist', BUNDLE_ENTRY) };
}

async function normalizeModes(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await normalizeModes(full);
    else await chmod(full, 0o644);
  }
}

export interface FileFacts {
  mode: number;
  uid: number;
  size: number;
  mtimeMs: number;
}

/** Every path under `dir` (but `except`) with its mode, owner, size and mtime: a before/after witness. */
export async function snapshot(dir: string, except: string[] = []): Promise<Map<string, FileFacts>> {
  const out = new Map<string, FileFacts>();
  const walk = async (current: string): Promise<void> => {
    const facts = await lstat(current);
    out.set(current, { mode: facts.mode, uid: facts.uid, size: facts.size, mtimeMs: facts.mtimeMs });
    if (!facts.isDirectory()) return;
    for (const name of await readdir(current)) {
      const full = path.join(current, name);
      if (!except.includes(full)) await walk(full);
    }
  };
  await walk(dir);
  return out;
}
