import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const EDGEBAN = path.join(REPO, 'bin/edgeban.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a process (the Node running the tests is Node 24). */
export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [EDGEBAN, ...args],
      {
        cwd: options.cwd ?? REPO,
        // A clean environment: nothing from the developer's shell or a .env leaks in.
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Starts `edgeban simulate` as a process and resolves with its URL once it listens. */
export async function startCliSimulator(t: TestContext, args: string[]): Promise<{ url: string; admin: (path: string, body?: unknown) => Promise<unknown> }> {
  const child = spawn(process.execPath, [EDGEBAN, 'simulate', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('simulator did not start within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /listening on (\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  const admin = async (adminPath: string, body?: unknown) => {
    const response = await fetch(
      `${url}/__simulator/${adminPath}`,
      body === undefined
        ? {}
        : {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          },
    );
    return response.json();
  };
  return { url, admin };
}

/** `edgeban run` as a process, with everything it printed kept. */
export interface CliDaemon {
  child: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
  stop: (graceMs?: number) => Promise<number | null>;
}

/**
 * Starts `edgeban run` (or `args`) in a clean environment and resolves once it logged
 * "edgeban running"; rejects with its output if it exits or is not up within `readyTimeoutMs`.
 * Killed when the test ends.
 */
export async function startCliDaemon(
  t: TestContext,
  env: Record<string, string>,
  options: { cwd?: string; args?: string[]; readyTimeoutMs?: number } = {},
): Promise<CliDaemon> {
  const child = spawn(process.execPath, [EDGEBAN, ...(options.args ?? ['run'])], {
    cwd: options.cwd ?? REPO,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  createInterface({ input: child.stdout! }).on('line', (line) => stdout.push(line));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`daemon not up within ${options.readyTimeoutMs ?? 30_000} ms:\n${stderr.join('\n')}`)),
      options.readyTimeoutMs ?? 30_000,
    );
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code}:\n${stderr.join('\n')}`));
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (line.includes('edgeban running')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const stop = async (graceMs = 10_000): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  return { child, pid: child.pid ?? -1, stdout, stderr, exited, stop };
}
