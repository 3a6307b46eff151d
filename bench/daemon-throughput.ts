/**
 * The daemon's detection throughput: `edgeban run` with every shipped mail and web jail enabled at
 * once reads the generated logs from their first line to their last, and we time it until its
 * status counts every line in every jail. The mail jails (postfix, dovecot) read both mail logs,
 * as they would read one mail.log; the web jails (traefik, nginx, apache) read the access log.
 *
 * findtime and bantime are set long enough to cover the logs' fixed 2025 stamps, so every match
 * goes through the jail engine (counting, bans, ledger, the alias at the simulator) rather than
 * being dropped as "older than findtime".
 *
 * Peer: fail2ban-regex with the same shipped filter files over the same logs (their first
 * `peerLines` lines), one run per (jail, log), times summed. fail2ban-regex does no counting,
 * banning or alias work, so its throughput is an upper bound for fail2ban-server's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { grouped, type BenchResult } from './bench-result.ts';
import { fail2banInstalled, runProcess } from './detection-throughput.ts';
import { generatedLog, type LogKind } from './log-generators.ts';
import { mib, procMemory, REPO, sleep, startDaemonProcess, startSimulatorProcess } from './processes.ts';

interface JailStatus { jail: string; lines: number; matches?: number; failures?: number; bans?: number; tracked?: number }
interface Status { activeBans: number; jails: JailStatus[] }

export interface DaemonThroughputOptions {
  lines: number;
  dataDir: string;
  /**
   * Lines of each log fail2ban-regex reads for the peer figure (0: no peer). The generators are
   * deterministic, so a shorter log is exactly the first lines of the longer one; fail2ban-regex
   * over every (jail, log) pair of a million-line run alone would take minutes.
   */
  peerLines: number;
}

export async function runDaemonThroughputBenchmark(options: DaemonThroughputOptions): Promise<BenchResult> {
  const { lines, dataDir } = options;
  const mailKinds: LogKind[] = ['dovecot', 'postfix'];
  const webKinds: LogKind[] = ['access'];
  const jailKinds = [
    { name: 'postfix', kinds: mailKinds },
    { name: 'dovecot', kinds: mailKinds },
    { name: 'traefik', kinds: webKinds },
    { name: 'nginx', kinds: webKinds },
    { name: 'apache', kinds: webKinds },
  ];
  const mail = await Promise.all(mailKinds.map((kind) => generatedLog(dataDir, kind, lines)));
  const web = await Promise.all(webKinds.map((kind) => generatedLog(dataDir, kind, lines)));
  const jails = await Promise.all(jailKinds.map(async (j) => ({ name: j.name, logs: await Promise.all(j.kinds.map((kind) => generatedLog(dataDir, kind, lines))) })));
  const jailLines = jails.reduce((sum, j) => sum + j.logs.length * lines, 0);
  const distinctLines = (mail.length + web.length) * lines;
  const jailLocal = [
    '[DEFAULT]', 'findtime = 3650d', 'bantime = 3650d', '',
    ...jails.flatMap((j) => [`[${j.name}]`, 'enabled = true', `logpath = ${j.logs.join('\n          ')}`, '']),
  ].join('\n');

  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-daemon-'));
  const sim = await startSimulatorProcess();
  let status: Status | null = null;
  let seconds = NaN;
  let startMs = NaN;
  let peakRss = NaN;
  try {
    const started = performance.now();
    const daemon = await startDaemonProcess(root, sim, jailLocal);
    startMs = daemon.startMs;
    try {
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        status = await daemon.control.call<Status>('GET', '/status');
        if (status.jails.reduce((sum, j) => sum + j.lines, 0) >= jailLines) break;
        if (Date.now() > deadline) throw new Error(`daemon counted ${status.jails.reduce((s, j) => s + j.lines, 0)} of ${jailLines} jail-lines in 15 minutes`);
        await sleep(100);
      }
      seconds = (performance.now() - started) / 1000;
      peakRss = (await procMemory(daemon.child.pid))?.hwm ?? NaN;
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
  const total = (field: 'matches' | 'failures' | 'bans') => status?.jails.reduce((sum, j) => sum + (j[field] ?? 0), 0) ?? 0;

  let peer: { seconds: number; runs: number; lines: number; jailLines: number } | null = null;
  const peerMissing = options.peerLines > 0 && !(await fail2banInstalled());
  if (options.peerLines > 0 && !peerMissing) {
    const peerLines = Math.min(lines, options.peerLines);
    let sum = 0;
    let runs = 0;
    for (const jail of jailKinds) {
      for (const kind of jail.kinds) {
        const log = await generatedLog(dataDir, kind, peerLines);
        const run = await runProcess('fail2ban-regex', ['-o', 'ip', log, path.join(REPO, 'filters', `${jail.name}.conf`)], () => undefined);
        sum += run.seconds;
        runs++;
      }
    }
    peer = { seconds: sum, runs, lines: (mail.length + web.length) * peerLines, jailLines: runs * peerLines };
  }
  const peerLinesPerSecond = peer === null ? NaN : peer.lines / peer.seconds;
  const peerJailLinesPerSecond = peer === null ? NaN : peer.jailLines / peer.seconds;
  const edgeLinesPerSecond = distinctLines / seconds;

  const summary = [{
    figure: `Detection, daemon with 5 shipped jails (lines/s over ${grouped(distinctLines)} lines = ${grouped(jailLines)} jail-lines)`,
    edgeban: `${grouped(edgeLinesPerSecond)} (${grouped(jailLines / seconds)} jail-lines/s)`,
    peer: peer === null ? (peerMissing ? 'fail2ban-regex not installed' : 'not run (--daemon-peer-lines 0)')
      : `fail2ban-regex per (filter, log), summed: ${grouped(peerLinesPerSecond)} (edgeban ${(edgeLinesPerSecond / peerLinesPerSecond).toFixed(1)}x; first ${grouped(peer.lines / (mail.length + web.length))} lines of each log)`,
  }];
  return {
    summary,
    name: 'Detection throughput of the daemon (all shipped mail and web jails at once)',
    rows: [
      {
        tool: 'edgeban run (5 jails: postfix, dovecot, traefik, nginx, apache)', 'log lines': distinctLines, 'jail-lines': jailLines, seconds: round2(seconds),
        'lines/s': Math.round(distinctLines / seconds), 'jail-lines/s': Math.round(jailLines / seconds),
        'start-up s': round2(startMs / 1000), 'peak RSS MiB': mib(peakRss), failures: total('failures'), bans: total('bans'),
      },
      peer === null
        ? { tool: 'fail2ban-regex (same filters and logs)', 'log lines': '', 'jail-lines': '', seconds: peerMissing ? 'not installed' : 'not run (--daemon-peer-lines 0)', 'lines/s': '', 'jail-lines/s': '' }
        : {
          tool: `fail2ban-regex -o ip, ${peer.runs} runs (one per jail and log), summed`, 'log lines': peer.lines, 'jail-lines': peer.jailLines, seconds: round2(peer.seconds),
          'lines/s': Math.round(peerLinesPerSecond), 'jail-lines/s': Math.round(peerJailLinesPerSecond),
        },
    ],
    notes: [
      `Generated logs: ${mail.length} mail logs and ${web.length} access log of ${lines} lines each; the mail jails read both mail logs, the web jails the access log, so ${distinctLines} lines are ${jailLines} jail-lines (a line read by two jails counts twice).`,
      'Timed from spawning `edgeban run` (start-up included) until its status counts every line in every jail (polled every 100 ms over the control socket); peak RSS is the daemon\'s VmHWM.',
      'findtime = bantime = 3650d so the 2025 stamps count: every match goes through the jail engine, bans through the ledger to the simulator (no added latency).',
      peer === null
        ? (peerMissing ? 'Peer not run: fail2ban-regex is not installed (apt-get install fail2ban).' : 'Peer not run (--daemon-peer-lines 0).')
        : `Peer: fail2ban-regex with the same shipped filter files, one run per (jail, log), over the first ${grouped(peer.lines / (mail.length + web.length))} lines of each log (the same generator and seed, so the same lines the daemon read first; the whole logs would add minutes to the suite). It only matches (no counting, banning or firewall calls), so it is an upper bound on what fail2ban-server achieves on the same work.`,
    ],
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
