/**
 * The processes a benchmark runs: `edgeban simulate` and `edgeban run` as their own processes
 * (as the firewall and the daemon would be), and what /proc tells about their memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ControlClient } from '../src/control/control-client.ts';

export const REPO = path.resolve(import.meta.dirname, '..');
export const EDGEBAN = path.join(REPO, 'bin', 'edgeban.js');

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the first capture (or the line) of the first line matching `pattern`. */
export function waitForLine(stream: NodeJS.ReadableStream, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stream });
    const timer = setTimeout(() => {
      lines.close();
      reject(new Error(`timed out waiting for ${pattern}`));
    }, timeoutMs);
    timer.unref(); // a process that died first must not hold the bench open until the timeout
    lines.on('line', (line) => {
      const match = pattern.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] ?? line);
      }
    });
  });
}

export interface SimulatorProcess {
  child: ChildProcess;
  url: string;
  key: string;
  secret: string;
  /** GET /__simulator/PATH, or POST it with `body`. */
  admin: <T = unknown>(adminPath: string, body?: unknown) => Promise<T>;
  stop: () => Promise<void>;
}

export interface SimulatorProcessOptions {
  latencyMs?: number;
  lockMs?: number;
  tableEntries?: number;
}

export async function startSimulatorProcess(options: SimulatorProcessOptions = {}): Promise<SimulatorProcess> {
  const key = 'benchKey0123456789abcdefghijklmnop';
  const secret = 'benchSecret0123456789abcdefghijklmnop';
  const args = [EDGEBAN, 'simulate', '--port', '0', '--key', key, '--secret', secret];
  if (options.latencyMs) args.push('--latency', String(options.latencyMs));
  if (options.lockMs) args.push('--lock-ms', String(options.lockMs));
  if (options.tableEntries) args.push('--table-entries', String(options.tableEntries));
  // Its stderr (start and stop notices) is not wanted in the bench's output.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`))));
  exited.catch(() => undefined);
  const url = await Promise.race([waitForLine(child.stdout!, /listening on (\S+)/, 30_000), exited]);
  const admin = async <T>(adminPath: string, body?: unknown): Promise<T> => {
    const init: RequestInit = body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    const response = await fetch(`${url}/__simulator/${adminPath}`, init);
    return (await response.json()) as T;
  };
  return { child, url, key, secret, admin, stop: () => stopChild(child) };
}

/** How `edgeban run` is started: `node [nodeArgs] script run` (bin/edgeban.js by default, as from a checkout). */
export interface DaemonLaunch {
  nodeArgs: string[];
  script: string;
}

export interface DaemonProcess {
  child: ChildProcess;
  root: string;
  control: ControlClient;
  /** Milliseconds from spawn to "edgeban running". */
  startMs: number;
  stop: () => Promise<void>;
}

/**
 * `edgeban run` with `jailLocal` as its jail.local, data and config under `root`, against the
 * simulator. Resolves once it logs "edgeban running" (its log goes to root/daemon.log).
 */
export async function startDaemonProcess(
  root: string,
  sim: SimulatorProcess,
  jailLocal: string,
  extraEnv: Record<string, string> = {},
  launch: DaemonLaunch = { nodeArgs: [], script: EDGEBAN },
): Promise<DaemonProcess> {
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  await mkdir(configDir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await writeFile(path.join(configDir, 'jail.local'), jailLocal);
  const started = performance.now();
  const child = spawn(process.execPath, [...launch.nodeArgs, launch.script, 'run'], {
    env: {
      PATH: process.env.PATH ?? '',
      TZ: 'UTC',
      OPNSENSE_URL: sim.url,
      OPNSENSE_KEY: sim.key,
      OPNSENSE_SECRET: sim.secret,
      EDGEBAN_DATA_DIR: dataDir,
      EDGEBAN_CONFIG_DIR: configDir,
      EDGEBAN_KILL_STATES: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logLines: string[] = [];
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`edgeban run exited with ${code}: ${logLines.slice(-5).join('\n')}`))),
  );
  exited.catch(() => undefined);
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (logLines.length < 2000) logLines.push(line);
  });
  await Promise.race([waitForLine(child.stderr!, /edgeban running/, 120_000), exited]);
  const startMs = performance.now() - started;
  const control = new ControlClient({ socketPath: path.join(dataDir, 'edgeban.sock') });
  return {
    child,
    root,
    control,
    startMs,
    stop: async () => {
      await control.close().catch(() => undefined);
      await stopChild(child);
      await writeFile(path.join(root, 'daemon.log'), logLines.join('\n')).catch(() => undefined);
    },
  };
}

/** SIGTERM, then SIGKILL if it has not exited within 10 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

export interface ProcMemory {
  /** Resident set now, bytes. */
  rss: number;
  /** Peak resident set (VmHWM), bytes. */
  hwm: number;
  /** Of rss: anonymous memory (heap, malloc, stacks) and file-backed pages (mostly the node binary's code and data). */
  anon: number;
  file: number;
}

/** VmRSS, VmHWM, RssAnon and RssFile of a process from /proc/PID/status; null when it has exited. */
export async function procMemory(pid: number | undefined): Promise<ProcMemory | null> {
  if (pid === undefined) return null;
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM'), anon: kib('RssAnon'), file: kib('RssFile') };
}

const CLOCK_TICK = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a running process has used, from /proc/PID/stat; NaN once it exited. */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // its name may hold spaces
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICK;
}

export const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
