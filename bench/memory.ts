/**
 * Memory: (1) RSS of a process whose FailureTracker counts N distinct addresses below maxretry
 * (one million by default), measured in a child process so the figure is clean; (2) idle RSS of
 * `edgeban run` with every shipped jail enabled on empty logs, after it settled, beside
 * fail2ban-server with the same jails and Node alone (the floor) — twice: from the sources as a
 * checkout runs it (bin/edgeban.js) and from the esbuild bundle as the image runs it (its ENTRYPOINT's
 * node flags, read from the Dockerfile); (3) RSS of `edgeban run` holding `bans` active bans (ledger
 * filled before start, the simulator's table already holding them). `--idle-only` measures (2) alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fail2banInstalled } from './detection-throughput.ts';
import { fail2banIdleRss } from './fail2ban-server-peer.ts';
import { FileLedgerStore } from '../src/ledger/file-ledger-store.ts';
import { Ledger } from '../src/ledger/ledger.ts';
import { silentLogger } from '../src/logging/logger.ts';
import { toPfSpelling } from '../src/net/address.ts';
import { systemClock } from '../src/util/clock.ts';
import { mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { grouped, type BenchResult, type SummaryRow } from './bench-result.ts';
import { buildBundle } from '../deploy/docker/build.ts';
import { type DaemonLaunch, mib, procMemory, type ProcMemory, REPO, sleep, startDaemonProcess, startSimulatorProcess, stopChild } from './processes.ts';

export interface MemoryOptions {
  addresses: number;
  /** Active bans the daemon holds for the held-bans figure. */
  bans: number;
  /** How long the idle daemon runs before its RSS is read. */
  settleMs: number;
  /** Extra environment of the measured `edgeban run` processes (NODE_OPTIONS, MALLOC_ARENA_MAX…), to try settings. */
  daemonEnv?: Record<string, string>;
  /** Where the held-bans daemon writes a heap snapshot once its RSS is read (none when unset). */
  heapSnapshotDir?: string;
  /** Only the idle figures (sources, bundle, Node alone, fail2ban-server). */
  idleOnly?: boolean;
}

interface TrackerFigures {
  count: number;
  tracked: number;
  rssBefore: number;
  rssAfter: number;
  hwm: number;
  allocatedBytes: number;
  seconds: number;
}

function trackerChild(addresses: number): Promise<TrackerFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(import.meta.dirname, 'memory-tracker-child.ts'), String(addresses)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (err.length < 4000) err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`memory child exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as TrackerFigures);
    });
  });
}

const SHIPPED_JAILS = ['postfix', 'dovecot', 'traefik', 'nginx', 'apache'];
const ALIAS = 'fail2ban_blocklist';

/** The 5 shipped jails on empty logs under `root`: mail jails on mail.log, web jails on access.log. */
async function emptyLogJails(root: string): Promise<Array<{ name: string; logs: string[] }>> {
  const mail = path.join(root, 'mail.log');
  const access = path.join(root, 'access.log');
  await writeFile(mail, '');
  await writeFile(access, '');
  return SHIPPED_JAILS.map((name) => ({ name, logs: [['postfix', 'dovecot'].includes(name) ? mail : access] }));
}

/**
 * `edgeban run` with the 5 shipped jails on empty logs, `settleMs` after start; with `bans` > 0
 * its ledger holds that many active bans (and the simulator's table the same addresses, so the
 * reconciler finds nothing to add), read once the status counts them all.
 */
export async function idleDaemon(
  settleMs: number,
  bans = 0,
  options: { launch?: DaemonLaunch; env?: Record<string, string>; heapSnapshotDir?: string } = {},
): Promise<ProcMemory & { startMs: number; activeBans: number }> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-idle-'));
  const sim = await startSimulatorProcess({ tableEntries: Math.max(200_000, bans * 2) });
  try {
    const jails = await emptyLogJails(root);
    const jailLocal = jails.map((j) => `[${j.name}]\nenabled = true\nlogpath = ${j.logs[0]}\n`).join('\n');
    if (bans > 0) {
      const list = Array.from({ length: bans }, (_, i) => toPfSpelling(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
      const seeded = await sim.admin<{ status?: string; error?: string }>('seed', { table: ALIAS, entries: list });
      if (seeded.status !== 'ok') throw new Error(`simulator refused the seeded table: ${seeded.error ?? JSON.stringify(seeded)}`);
      // Where `edgeban run` keeps its file ledger: EDGEBAN_DATA_DIR/ledger (startDaemonProcess uses root/data).
      const store = await FileLedgerStore.open({ dir: path.join(root, 'data', 'ledger'), logger: silentLogger() });
      const ledger = await Ledger.open({ store, clock: systemClock, logger: silentLogger() });
      await ledger.banMany(list.map((address) => ({ target: ALIAS, address, jail: 'dovecot', origin: 'jail' as const, durationMs: 86_400_000 })));
      await ledger.close();
    }
    const daemonEnv = options.env ?? {};
    const env = options.heapSnapshotDir === undefined ? daemonEnv : withHeapSnapshotSignal(daemonEnv, options.heapSnapshotDir);
    const daemon = await startDaemonProcess(root, sim, jailLocal, env, options.launch);
    try {
      let activeBans = 0;
      const deadline = Date.now() + 120_000;
      while (bans > 0 && activeBans < bans) {
        activeBans = (await daemon.control.call<{ activeBans: number }>('GET', '/status')).activeBans;
        if (Date.now() > deadline) throw new Error(`the daemon counts ${activeBans} of the ${bans} bans in its ledger after 120 s`);
        if (activeBans < bans) await sleep(200);
      }
      await sleep(settleMs);
      const memory = await procMemory(daemon.child.pid);
      if (memory === null) throw new Error('edgeban run exited while idle');
      if (options.heapSnapshotDir !== undefined) await takeHeapSnapshot(daemon.child, options.heapSnapshotDir);
      return { ...memory, startMs: daemon.startMs, activeBans };
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
}

/** `env` with NODE_OPTIONS extended so that SIGUSR2 makes the process write a heap snapshot into `dir`. */
export function withHeapSnapshotSignal(env: Record<string, string>, dir: string): Record<string, string> {
  const options = `${env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`.trim();
  return { ...env, NODE_OPTIONS: options };
}

/** Signals a process started with withHeapSnapshotSignal and waits until its snapshot is written; returns its path. */
export async function takeHeapSnapshot(child: ChildProcess, dir: string): Promise<string> {
  const before = new Set(await readdir(dir));
  child.kill('SIGUSR2');
  const deadline = Date.now() + 120_000;
  let size = -1;
  for (;;) {
    await sleep(500);
    const written = (await readdir(dir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (written !== undefined) {
      // V8 writes it in one go with the process paused: a size that stopped changing is the whole file.
      const now = (await stat(path.join(dir, written))).size;
      if (now > 0 && now === size) return path.join(dir, written);
      size = now;
    }
    if (Date.now() > deadline) throw new Error(`no heap snapshot in ${dir} 120 s after SIGUSR2`);
  }
}

/** Memory of a Node process doing nothing (the same binary, no code loaded), `settleMs` after start. */
async function nodeAlone(settleMs: number): Promise<ProcMemory> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(settleMs);
    const memory = await procMemory(child.pid);
    if (memory === null) throw new Error('node -e exited');
    return memory;
  } finally {
    await stopChild(child);
  }
}

/** The node flags of the image's ENTRYPOINT (between node and the bundle), read from the Dockerfile. */
async function entrypointNodeArgs(): Promise<string[]> {
  const line = /^ENTRYPOINT (\[.*\])$/m.exec(await readFile(path.join(REPO, 'Dockerfile'), 'utf8'))?.[1];
  if (line === undefined) throw new Error('no ENTRYPOINT in the Dockerfile');
  const words = JSON.parse(line) as string[];
  return words.slice(1, -1);
}

/** `idleDaemon` run from the bundle `npm run build` makes, built into a temporary directory beside links to filters/ and actions/. */
async function idleBundledDaemon(settleMs: number): Promise<ProcMemory & { startMs: number }> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-bundle-'));
  try {
    await symlink(path.join(REPO, 'filters'), path.join(root, 'filters'));
    await symlink(path.join(REPO, 'actions'), path.join(root, 'actions'));
    const { entry } = await buildBundle(path.join(root, 'dist'));
    return await idleDaemon(settleMs, 0, { launch: { nodeArgs: await entrypointNodeArgs(), script: entry } });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The idle figures: the daemon from the sources and from the bundle, Node alone, fail2ban-server. */
async function idleFigures(settleMs: number, env: Record<string, string> = {}): Promise<{ idle: ProcMemory; summary: SummaryRow; rows: BenchResult['rows'] }> {
  const idle = await idleDaemon(settleMs, 0, { env });
  const bundled = await idleBundledDaemon(settleMs);
  const node = await nodeAlone(settleMs);
  const f2b = await fail2banIdle(settleMs);
  const summary = {
    figure: 'Memory: idle RSS of the daemon, 5 shipped jails (MiB)',
    edgeban: `${mib(idle.rss)} from the sources, ${mib(bundled.rss)} from the image's bundle (Node alone ${mib(node.rss)})`,
    peer: f2b === null ? 'fail2ban-server not installed' : `fail2ban-server ${mib(f2b.rss)} (edgeban ${(idle.rss / f2b.rss).toFixed(1)}x)`,
  };
  const split = (m: ProcMemory) => ({ 'anon MiB': mib(m.anon), 'file-backed MiB': mib(m.file) });
  const jails = '5 shipped jails (postfix, dovecot, traefik, nginx, apache) on empty logs';
  const rows: BenchResult['rows'] = [
    {
      what: `edgeban run idle from the sources (bin/edgeban.js): ${jails}, ${settleMs / 1000} s after start`,
      'RSS MiB': mib(idle.rss),
      'peak RSS MiB': mib(idle.hwm),
      ...split(idle),
    },
    {
      what: `edgeban run idle from the image's bundle (\`npm run build\`, the Dockerfile's ENTRYPOINT flags): ${jails}, ${settleMs / 1000} s after start`,
      'RSS MiB': mib(bundled.rss),
      'peak RSS MiB': mib(bundled.hwm),
      ...split(bundled),
    },
    {
      what: `Node ${process.version} alone (\`node -e 'setInterval(() => {}, 1000)'\`), ${settleMs / 1000} s after start`,
      'RSS MiB': mib(node.rss),
      'peak RSS MiB': mib(node.hwm),
      ...split(node),
    },
    f2b === null
      ? { what: 'fail2ban-server: not installed' }
      : { what: 'fail2ban-server 1.0.2, the same 5 jails and filter files on empty logs, no-op action', 'RSS MiB': mib(f2b.rss) },
  ];
  return { idle, summary, rows };
}

async function fail2banIdle(settleMs: number): Promise<{ rss: number } | null> {
  if (!(await fail2banInstalled())) return null;
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-idle-f2b-'));
  try {
    return await fail2banIdleRss(await emptyLogJails(root), settleMs);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

export async function runMemoryBenchmark(options: MemoryOptions): Promise<BenchResult> {
  const idleNote =
    'Idle daemon: /proc/PID/status of `edgeban run` (VmRSS; RssAnon: heap, malloc, stacks; RssFile: pages of the node binary and libraries it touched), with the simulator as its firewall (first full pass done).';
  if (options.idleOnly) {
    const idle = await idleFigures(options.settleMs, options.daemonEnv);
    return { summary: [idle.summary], name: 'Memory (idle only)', rows: idle.rows, notes: [idleNote] };
  }
  const tracker = await trackerChild(options.addresses);
  const idle = await idleFigures(options.settleMs, options.daemonEnv);
  const held = await idleDaemon(options.settleMs, options.bans, {
    ...(options.daemonEnv ? { env: options.daemonEnv } : {}),
    ...(options.heapSnapshotDir ? { heapSnapshotDir: options.heapSnapshotDir } : {}),
  });
  const perBan = (held.rss - idle.idle.rss) / options.bans;
  const delta = tracker.rssAfter - tracker.rssBefore;
  return {
    summary: [
      {
        figure: `Memory: RSS while tracking ${grouped(tracker.tracked)} addresses below maxretry (MiB)`,
        edgeban: `${mib(tracker.rssAfter)} (${mib(delta)} for the addresses, ${Math.round(delta / tracker.count)} B each)`,
        peer: 'no peer',
      },
      idle.summary,
      {
        figure: `Memory: RSS of the daemon holding ${grouped(options.bans)} active bans (MiB)`,
        edgeban: `${mib(held.rss)} (${Math.round(perBan)} B per ban over idle)`,
        peer: 'no peer',
      },
    ],
    name: 'Memory',
    rows: [
      {
        what: `FailureTracker counting ${tracker.tracked} distinct addresses below maxretry (own process)`,
        'RSS MiB': mib(tracker.rssAfter),
        'peak RSS MiB': mib(tracker.hwm),
        'RSS before MiB': mib(tracker.rssBefore),
        'added MiB': mib(delta),
        'bytes/address': Math.round(delta / tracker.count),
        'typed arrays MiB': mib(tracker.allocatedBytes),
      },
      ...idle.rows,
      {
        what: `edgeban run from the sources, 5 shipped jails, ledger holding ${held.activeBans} active bans (alias already holding them), ${options.settleMs / 1000} s after they were all counted`,
        'RSS MiB': mib(held.rss),
        'peak RSS MiB': mib(held.hwm),
        'added MiB': mib(held.rss - idle.idle.rss),
        'bytes/ban': Math.round(perBan),
      },
    ],
    notes: [
      `Tracker: ${tracker.count} IPv6 addresses (2001:db8::/32), one failure each at maxretry 5, findtime 10 min, in a Node process started with --expose-gc; RSS read from /proc/self/status before and after (after a full GC); ${tracker.seconds.toFixed(2)} s to add them.`,
      idleNote,
    ],
  };
}

/** `K=V` arguments as an environment. */
export function envArguments(pairs: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new Error(`--env takes NAME=VALUE, not ${JSON.stringify(pair)}`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

if (import.meta.main) {
  // --held-only: just the held-bans daemon (its RSS and peak), to try changes and settings quickly; --idle-only: just
  // the idle figures; --env NAME=VALUE (repeatable) goes to the measured daemons; --heap-snapshot DIR writes one from the held-bans daemon.
  const { values } = parseArgs({
    options: {
      addresses: { type: 'string', default: '1000000' },
      bans: { type: 'string', default: '100000' },
      'held-only': { type: 'boolean', default: false },
      'idle-only': { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      'heap-snapshot': { type: 'string' },
      settle: { type: 'string', default: '10000' },
    },
  });
  const daemonEnv = envArguments(values.env);
  const settleMs = Number(values.settle);
  if (values['held-only']) {
    const heapSnapshotDir = values['heap-snapshot'];
    const held = await idleDaemon(settleMs, Number(values.bans), { env: daemonEnv, ...(heapSnapshotDir ? { heapSnapshotDir } : {}) });
    console.log(
      JSON.stringify({ bans: held.activeBans, 'RSS MiB': mib(held.rss), 'peak RSS MiB': mib(held.hwm), 'start ms': Math.round(held.startMs), env: daemonEnv }),
    );
  } else {
    const options = {
      addresses: Number(values.addresses),
      bans: Number(values.bans),
      settleMs,
      daemonEnv,
      idleOnly: values['idle-only'],
      ...(values['heap-snapshot'] ? { heapSnapshotDir: values['heap-snapshot'] } : {}),
    };
    console.log(JSON.stringify(await runMemoryBenchmark(options), null, 2));
  }
}
