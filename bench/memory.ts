/**
 * Memory: (1) RSS of a process whose FailureTracker counts N distinct addresses below maxretry
 * (one million by default), measured in a child process so the figure is clean; (2) idle RSS of
 * `edgeban run` with every shipped jail enabled on empty logs, after it settled.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { grouped, type BenchResult } from './bench-result.ts';
import { mib, procMemory, sleep, startDaemonProcess, startSimulatorProcess } from './processes.ts';

export interface MemoryOptions {
  addresses: number;
  /** How long the idle daemon runs before its RSS is read. */
  settleMs: number;
}

interface TrackerFigures { count: number; tracked: number; rssBefore: number; rssAfter: number; hwm: number; allocatedBytes: number; seconds: number }

function trackerChild(addresses: number): Promise<TrackerFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(import.meta.dirname, 'memory-tracker-child.ts'), String(addresses)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4000) err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`memory child exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as TrackerFigures);
    });
  });
}

async function idleDaemon(settleMs: number): Promise<{ rss: number; hwm: number; startMs: number }> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-idle-'));
  const sim = await startSimulatorProcess();
  try {
    const mail = path.join(root, 'mail.log');
    const access = path.join(root, 'access.log');
    await writeFile(mail, '');
    await writeFile(access, '');
    const jailLocal = ['postfix', 'dovecot', 'traefik', 'nginx', 'apache']
      .map((jail) => `[${jail}]\nenabled = true\nlogpath = ${['postfix', 'dovecot'].includes(jail) ? mail : access}\n`).join('\n');
    const daemon = await startDaemonProcess(root, sim, jailLocal);
    try {
      await sleep(settleMs);
      const memory = await procMemory(daemon.child.pid);
      return { rss: memory?.rss ?? NaN, hwm: memory?.hwm ?? NaN, startMs: daemon.startMs };
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
}

export async function runMemoryBenchmark(options: MemoryOptions): Promise<BenchResult> {
  const tracker = await trackerChild(options.addresses);
  const idle = await idleDaemon(options.settleMs);
  const delta = tracker.rssAfter - tracker.rssBefore;
  return {
    summary: [
      { figure: `Memory: RSS while tracking ${grouped(tracker.tracked)} addresses below maxretry (MiB)`, edgeban: `${mib(tracker.rssAfter)} (${mib(delta)} for the addresses, ${Math.round(delta / tracker.count)} B each)`, peer: 'no peer' },
      { figure: 'Memory: idle RSS of the daemon, 5 shipped jails (MiB)', edgeban: String(mib(idle.rss)), peer: 'no peer' },
    ],
    name: 'Memory',
    rows: [
      {
        what: `FailureTracker counting ${tracker.tracked} distinct addresses below maxretry (own process)`,
        'RSS MiB': mib(tracker.rssAfter), 'peak RSS MiB': mib(tracker.hwm), 'RSS before MiB': mib(tracker.rssBefore),
        'added MiB': mib(delta), 'bytes/address': Math.round(delta / tracker.count), 'typed arrays MiB': mib(tracker.allocatedBytes),
      },
      {
        what: `edgeban run idle: 5 shipped jails (postfix, dovecot, traefik, nginx, apache) on empty logs, ${options.settleMs / 1000} s after start`,
        'RSS MiB': mib(idle.rss), 'peak RSS MiB': mib(idle.hwm),
      },
    ],
    notes: [
      `Tracker: ${tracker.count} IPv6 addresses (2001:db8::/32), one failure each at maxretry 5, findtime 10 min, in a Node process started with --expose-gc; RSS read from /proc/self/status before and after (after a full GC); ${tracker.seconds.toFixed(2)} s to add them.`,
      'Idle daemon: VmRSS of `edgeban run` from /proc/PID/status, with the simulator as its firewall (first full pass done).',
    ],
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { addresses: { type: 'string', default: '1000000' } } });
  console.log(JSON.stringify(await runMemoryBenchmark({ addresses: Number(values.addresses), settleMs: 10_000 }), null, 2));
}
