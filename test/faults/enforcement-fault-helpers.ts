import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { isClaimActive, type BanClaim } from '../../src/ledger/ban-claim.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import type { ManualClock } from '../../src/util/clock.ts';
import { EDGEBAN } from '../helpers/cli.ts';
import { until as pollUntil } from '../helpers/until.ts';

export { dovecotFailure, syslogNow } from '../helpers/log-lines.ts';

/**
 * `count` distinct attacker addresses in documentation space only (198.51.100.0/24,
 * 203.0.113.0/24, then 2001:db8::/32), in pf's spelling. Never 192.0.2.x: on this machine
 * those are the host's own address and gateway, which the ban guards rightly refuse.
 */
export function documentationAddresses(count: number, offset = 0): string[] {
  const out: string[] = [];
  for (let i = offset; i < offset + count; i++) {
    if (i < 254) out.push(`198.51.100.${i + 1}`);
    else if (i < 508) out.push(`203.0.113.${i - 254 + 1}`);
    else out.push(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`);
  }
  return out;
}

/** The shared poller, every 50 ms unless told. */
export function until(what: string, predicate: () => Promise<boolean> | boolean, limitMs = 30_000, everyMs = 50): Promise<void> {
  return pollUntil(what, predicate, limitMs, everyMs);
}

/**
 * Advances the injected clock in steps until `predicate` holds; bounded in steps. `afterStep` lets
 * real work started by a step finish (HTTP is real even when time is not).
 */
export async function advanceUntil(
  clock: ManualClock,
  what: string,
  predicate: () => boolean,
  stepMs: number,
  maxSteps: number,
  afterStep: () => Promise<void>,
): Promise<number> {
  for (let step = 0; step < maxSteps; step++) {
    if (predicate()) return step;
    await clock.advance(stepMs);
    await afterStep();
  }
  if (predicate()) return maxSteps;
  throw new Error(`${what}: not reached after ${maxSteps} steps of ${stepMs} ms of injected time`);
}

/** The claims the ledger files hold right now, read without the writer lock (as `edgeban banned` does beside a daemon). */
export async function readLedgerClaims(dataDir: string): Promise<BanClaim[]> {
  const store = await FileLedgerStore.open({ dir: path.join(dataDir, 'ledger'), logger: silentLogger(), readOnly: true });
  try {
    return await store.load();
  } finally {
    await store.close();
  }
}

/** Addresses with at least one active claim in `target` at `now`. */
export function activeAddresses(claims: readonly BanClaim[], target: string, now = Date.now()): Set<string> {
  return new Set(claims.filter((c) => c.target === target && isClaimActive(c, now)).map((c) => c.address));
}

export interface DaemonProcess {
  child: ChildProcess;
  /** Every log line so far (pino JSON on stderr). */
  stderr: string[];
  exited: Promise<number | null>;
}

/** Spawns `edgeban run` as a process and resolves once it logs `edgeban running`. */
export async function startDaemonProcess(t: TestContext, env: Record<string, string>): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [EDGEBAN, 'run'], { env: { PATH: process.env.PATH ?? '', TZ: 'UTC', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  await until(
    'edgeban running',
    () => {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${stderr.join('\n')}`);
      return stderr.some((line) => line.includes('edgeban running'));
    },
    60_000,
    20,
  );
  return { child, stderr, exited };
}

/** SIGKILL: no handler runs, nothing is flushed or saved by the process. */
export async function killHard(daemon: DaemonProcess): Promise<void> {
  daemon.child.kill('SIGKILL');
  await daemon.exited;
}
