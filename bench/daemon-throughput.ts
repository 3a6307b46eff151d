/**
 * The daemon's detection throughput, beside its peers in the same run on the same generated logs:
 *
 * - edgeban: `edgeban run` reads the logs from their first line to their last, timed from spawn
 *   until its status counts every line in every jail. Two runs: the mail logs (postfix and dovecot
 *   jails, each reading both mail logs, as they would read one mail.log) and the access log
 *   (traefik, nginx and apache jails).
 * - fail2ban-server 1.0.2 with the same jails, the same filter files and a no-op action, over the
 *   first `peerLines` lines of each log (fail2ban-server-peer.ts).
 * - CrowdSec 1.4.6 in replay mode with the postfix, dovecot, nginx and linux collections
 *   (crowdsec-peer.ts), over the first `crowdsecMailLines` / `crowdsecAccessLines` lines: it reads
 *   access logs at a few hundred lines a second, so its web slice is much smaller.
 *
 * findtime and bantime are set long enough to cover the logs' fixed 2025 stamps, so every match
 * goes through the jail engine (counting, bans, ledger, the alias at the simulator) rather than
 * being dropped as "older than findtime"; the same for fail2ban-server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { grouped, type BenchResult, type SummaryRow } from './bench-result.ts';
import { crowdsecInstalled, runCrowdsecPeer, type CrowdsecFigures } from './crowdsec-peer.ts';
import { fail2banInstalled } from './detection-throughput.ts';
import { runFail2banServer, type Fail2banJail, type Fail2banRun } from './fail2ban-server-peer.ts';
import { generatedLog, type LogKind } from './log-generators.ts';
import { cpuSeconds, mib, procMemory, sleep, startDaemonProcess, startSimulatorProcess } from './processes.ts';

interface JailStatus {
  jail: string;
  lines: number;
  matches?: number;
  failures?: number;
  bans?: number;
  tracked?: number;
}
interface Status {
  activeBans: number;
  jails: JailStatus[];
}

export interface DaemonThroughputOptions {
  lines: number;
  dataDir: string;
  /** Lines of each log fail2ban-server reads (0: no fail2ban-server peer). */
  peerLines: number;
  /** Lines of each mail log and of the access log CrowdSec replays (0: no CrowdSec peer). */
  crowdsecMailLines: number;
  crowdsecAccessLines: number;
  /** Run only this workload (mail or web); both when absent. */
  only?: string;
  /** Extra environment for the daemon (NODE_OPTIONS for a profile). */
  daemonEnv?: Record<string, string>;
}

interface EdgebanRun {
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
  startMs: number;
  failures: number;
  bans: number;
}

const MAIL_JAILS = ['postfix', 'dovecot'];
const WEB_JAILS = ['traefik', 'nginx', 'apache'];

async function edgebanRun(jails: Fail2banJail[], linesPerLog: number, env: Record<string, string> = {}): Promise<EdgebanRun> {
  const jailLines = jails.reduce((sum, j) => sum + j.logs.length * linesPerLog, 0);
  const jailLocal = [
    '[DEFAULT]',
    'findtime = 3650d',
    'bantime = 3650d',
    '',
    ...jails.flatMap((j) => [`[${j.name}]`, 'enabled = true', `logpath = ${j.logs.join('\n          ')}`, '']),
  ].join('\n');
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-daemon-'));
  const sim = await startSimulatorProcess();
  try {
    const started = performance.now();
    const daemon = await startDaemonProcess(root, sim, jailLocal, env);
    try {
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        const status = await daemon.control.call<Status>('GET', '/status');
        const counted = status.jails.reduce((sum, j) => sum + j.lines, 0);
        if (counted >= jailLines) {
          const seconds = (performance.now() - started) / 1000;
          const total = (field: 'failures' | 'bans') => status.jails.reduce((sum, j) => sum + (j[field] ?? 0), 0);
          return {
            seconds,
            cpuSeconds: await cpuSeconds(daemon.child.pid),
            peakRss: (await procMemory(daemon.child.pid))?.hwm ?? NaN,
            startMs: daemon.startMs,
            failures: total('failures'),
            bans: total('bans'),
          };
        }
        if (Date.now() > deadline) throw new Error(`daemon counted ${counted} of ${jailLines} jail-lines in 15 minutes`);
        await sleep(100);
      }
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function logsOf(dataDir: string, kinds: LogKind[], lines: number): Promise<string[]> {
  return await Promise.all(kinds.map((kind) => generatedLog(dataDir, kind, lines)));
}

const jailsOn = (names: string[], logs: string[]): Fail2banJail[] => names.map((name) => ({ name, logs }));
const round2 = (n: number): number => Math.round(n * 100) / 100;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(1)}x`;

export async function runDaemonThroughputBenchmark(options: DaemonThroughputOptions): Promise<BenchResult> {
  const { lines, dataDir } = options;
  const mailKinds: LogKind[] = ['dovecot', 'postfix'];
  const all = [
    {
      name: 'mail',
      label: 'mail logs (postfix + dovecot jails)',
      kinds: mailKinds,
      jails: MAIL_JAILS,
      crowdsecType: 'syslog' as const,
      crowdsecLines: options.crowdsecMailLines,
    },
    {
      name: 'web',
      label: 'access log (traefik + nginx + apache jails)',
      kinds: ['access'] as LogKind[],
      jails: WEB_JAILS,
      crowdsecType: 'nginx' as const,
      crowdsecLines: options.crowdsecAccessLines,
    },
  ];
  const workloads = all.filter((w) => options.only === undefined || w.name === options.only);
  const fail2banThere = options.peerLines > 0 && (await fail2banInstalled());
  const crowdsecThere = await crowdsecInstalled();
  const rows: BenchResult['rows'] = [];
  const summary: SummaryRow[] = [];
  const notes: string[] = [];
  let crowdsec: CrowdsecFigures | null = null;
  const crowdsecSlices = workloads.filter((w) => w.crowdsecLines > 0);
  if (crowdsecThere && crowdsecSlices.length > 0) {
    const replays = [];
    for (const w of crowdsecSlices) {
      for (const file of await logsOf(dataDir, w.kinds, Math.min(lines, w.crowdsecLines)))
        replays.push({ file, type: w.crowdsecType, lines: Math.min(lines, w.crowdsecLines) });
    }
    crowdsec = await runCrowdsecPeer(replays);
  }

  for (const w of workloads) {
    const logs = await logsOf(dataDir, w.kinds, lines);
    const jails = jailsOn(w.jails, logs);
    const distinct = logs.length * lines;
    const edge = await edgebanRun(jails, lines, options.daemonEnv);
    const edgeRate = distinct / edge.seconds;
    rows.push({
      workload: w.label,
      tool: 'edgeban run',
      'log lines': distinct,
      seconds: round2(edge.seconds),
      'lines/s': Math.round(edgeRate),
      'CPU s': round2(edge.cpuSeconds),
      'peak RSS MiB': mib(edge.peakRss),
      failures: edge.failures,
      'bans / alerts': edge.bans,
    });
    const peers: string[] = [];

    let f2b: Fail2banRun | null = null;
    if (fail2banThere) {
      const peerLines = Math.min(lines, options.peerLines);
      const peerLogs = await logsOf(dataDir, w.kinds, peerLines);
      f2b = await runFail2banServer(jailsOn(w.jails, peerLogs));
      const rate = (peerLogs.length * peerLines) / f2b.seconds;
      rows.push({
        workload: w.label,
        tool: 'fail2ban-server, no-op action',
        'log lines': peerLogs.length * peerLines,
        seconds: round2(f2b.seconds),
        'lines/s': Math.round(rate),
        'CPU s': round2(f2b.cpuSeconds),
        'peak RSS MiB': mib(f2b.peakRss),
        failures: f2b.failed,
        'bans / alerts': f2b.banned,
      });
      peers.push(`fail2ban-server ${grouped(rate)} (edgeban ${ratio(edgeRate, rate)}); ${mib(f2b.peakRss)} MiB peak`);
    }
    const replays = crowdsec?.runs.filter((r) => r.type === w.crowdsecType) ?? [];
    if (replays.length > 0) {
      const csLines = replays.reduce((s, r) => s + r.lines, 0);
      const csSeconds = replays.reduce((s, r) => s + r.seconds, 0);
      const rate = csLines / csSeconds;
      const peak = Math.max(...replays.map((r) => r.peakRss));
      rows.push({
        workload: w.label,
        tool: `CrowdSec ${crowdsec!.version} replay (-type ${w.crowdsecType}), ${replays.length} run(s)`,
        'log lines': csLines,
        seconds: round2(csSeconds),
        'lines/s': Math.round(rate),
        'CPU s': round2(replays.reduce((s, r) => s + r.cpuSeconds, 0)),
        'peak RSS MiB': mib(peak),
        failures: '',
        'bans / alerts': '',
      });
      peers.push(`CrowdSec ${grouped(rate)} (edgeban ${ratio(edgeRate, rate)}; first ${grouped(replays[0]!.lines)} lines of each log); ${mib(peak)} MiB peak`);
    }
    summary.push({
      figure: `Detection, daemon on the ${w.label} (lines/s over ${grouped(distinct)} lines; peak RSS)`,
      edgeban: `${grouped(edgeRate)}; ${mib(edge.peakRss)} MiB peak`,
      peer: peers.length > 0 ? peers.join('; ') : 'no peer installed',
    });
  }

  notes.push(
    `Generated logs: 2 mail logs and 1 access log of ${grouped(lines)} lines each; the mail jails each read both mail logs, the web jails the access log (lines/s counts each log line once, however many jails read it).`,
    'edgeban: timed from spawning `edgeban run` (start-up included) until its status counts every line in every jail (polled every 100 ms over the control socket); CPU s from /proc/PID/stat then; peak RSS is VmHWM. findtime = bantime = 3650d so the 2025 stamps count: every match goes through the jail engine, bans through the ledger to the simulator.',
  );
  if (fail2banThere) {
    notes.push(
      `fail2ban-server: the same jails with the same filter files (edgeban's shipped filters, which fail2ban reads), findtime = bantime = 3650d, maxretry 5, a no-op action, dbfile :memory:, loglevel INFO (its default), backend auto; over the first ${grouped(Math.min(lines, options.peerLines))} lines of each log (the generators are deterministic: the same lines edgeban read first). It has no lines-read counter: timed from spawn (start-up included) until its CPU time stopped growing (sampled every 100 ms, 3 s quiet). "failures" is its Total failed, "bans" its Total banned.`,
    );
  } else {
    notes.push(
      options.peerLines === 0 ? 'fail2ban-server: not run (--daemon-peer-lines 0).' : 'fail2ban-server: not installed (apt-get install fail2ban); not run.',
    );
  }
  if (crowdsec !== null) {
    notes.push(
      `CrowdSec ${crowdsec.version} (Debian): \`crowdsec -dsn file://LOG -type syslog|nginx -no-api\`, one run per log, against its local API (\`crowdsec -no-cs\`, loopback, fresh SQLite database) in a copy of Debian's config with no Central API; collections postfix, dovecot, nginx, linux (and what they pull in, plus Debian's whitelists parser) linked from Debian's offline hub. Mail: first ${grouped(Math.min(lines, options.crowdsecMailLines))} lines of each mail log; web: first ${grouped(Math.min(lines, options.crowdsecAccessLines))} lines of the access log only — CrowdSec reads access logs at a few hundred lines a second, the whole log would take most of an hour. Timed per run from spawn to exit (start-up and bucket flush included); CPU s and peak RSS from getrusage of the run. Its scenarios are not fail2ban's jails (leaky buckets, their own thresholds), so its alerts are not comparable to bans: ${grouped(crowdsec.alerts)} alerts in its local API after all its runs.`,
    );
  } else {
    notes.push(
      crowdsecThere
        ? 'CrowdSec: not run (its slices are 0).'
        : "CrowdSec: not installed (Debian's crowdsec package; the bench installs it when run as root); not run.",
    );
  }
  return { summary, name: 'Detection throughput of the daemon, beside fail2ban-server and CrowdSec', rows, notes };
}

if (import.meta.main) {
  // One section alone, for measuring a change: `node bench/daemon-throughput.ts --lines 1000000 --peer-lines 0`.
  // --only mail|web runs one workload; --node-options passes NODE_OPTIONS to the daemon (e.g.
  // "--cpu-prof --cpu-prof-dir=/tmp/prof": the profile is written when it exits on SIGTERM).
  const { parseArgs } = await import('node:util');
  const { DEFAULT_DATA_DIR } = await import('./log-generators.ts');
  const { values } = parseArgs({
    options: {
      lines: { type: 'string', default: '1000000' },
      'peer-lines': { type: 'string', default: '200000' },
      'crowdsec-mail-lines': { type: 'string', default: '0' },
      'crowdsec-access-lines': { type: 'string', default: '0' },
      only: { type: 'string' },
      'node-options': { type: 'string' },
      'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
    },
  });
  const result = await runDaemonThroughputBenchmark({
    lines: Number(values.lines),
    dataDir: path.resolve(values['data-dir']),
    peerLines: Number(values['peer-lines']),
    crowdsecMailLines: Number(values['crowdsec-mail-lines']),
    crowdsecAccessLines: Number(values['crowdsec-access-lines']),
    ...(values.only ? { only: values.only } : {}),
    ...(values['node-options'] ? { daemonEnv: { NODE_OPTIONS: values['node-options'] } } : {}),
  });
  console.log(result.name);
  console.table(result.rows);
  for (const note of result.notes) console.log(`- ${note}`);
}
