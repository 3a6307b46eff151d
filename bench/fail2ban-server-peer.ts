/**
 * fail2ban-server (Debian's fail2ban 1.0.2) as a peer: its own process with the same jails and the
 * same filter files as the edgeban run it stands beside, a no-op ban action, an in-memory
 * database (so it reads each log from its first line, as edgeban does with no saved offsets) and
 * its default log level. It has no "lines read" counter, so a run is timed from spawn until its
 * CPU time stops growing (every line read and matched), sampled from /proc every 100 ms.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cpuSeconds, procMemory, REPO, sleep, stopChild } from './processes.ts';

export interface Fail2banJail {
  name: string;
  logs: string[];
}

export interface Fail2banServer {
  child: ChildProcess;
  /** Total failed and total banned, summed over the jails (fail2ban-client status JAIL). */
  totals: () => Promise<{ failed: number; banned: number }>;
  stop: () => Promise<void>;
}

function client(root: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('fail2ban-client', ['-c', path.join(root, 'etc'), '-s', path.join(root, 'f2b.sock'), ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`fail2ban-client ${args.join(' ')}: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Starts fail2ban-server in the foreground with `jails`; resolves once every jail runs. */
export async function startFail2banServer(jails: Fail2banJail[]): Promise<Fail2banServer & { root: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-bench-fail2ban-'));
  const etc = path.join(root, 'etc');
  await mkdir(path.join(etc, 'filter.d'), { recursive: true });
  await mkdir(path.join(etc, 'action.d'), { recursive: true });
  for (const jail of jails) await copyFile(path.join(REPO, 'filters', `${jail.name}.conf`), path.join(etc, 'filter.d', `${jail.name}.conf`));
  await writeFile(path.join(etc, 'action.d', 'noop.conf'), '[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban =\nactionunban =\n');
  await writeFile(
    path.join(etc, 'fail2ban.conf'),
    [
      '[Definition]',
      'loglevel = INFO',
      `logtarget = ${path.join(root, 'fail2ban.log')}`,
      `socket = ${path.join(root, 'f2b.sock')}`,
      `pidfile = ${path.join(root, 'f2b.pid')}`,
      'dbfile = :memory:',
      '',
    ].join('\n'),
  );
  await writeFile(
    path.join(etc, 'jail.conf'),
    [
      '[DEFAULT]',
      'findtime = 3650d',
      'bantime = 3650d',
      'maxretry = 5',
      'backend = auto',
      'usedns = no',
      'banaction = noop',
      'action = noop',
      '',
      ...jails.flatMap((j) => [`[${j.name}]`, 'enabled = true', `filter = ${j.name}`, `logpath = ${j.logs.join('\n          ')}`, '']),
    ].join('\n'),
  );
  const child = spawn('fail2ban-server', ['-c', etc, '-s', path.join(root, 'f2b.sock'), '-p', path.join(root, 'f2b.pid'), '-f', '-x', 'start'], {
    stdio: 'ignore',
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`fail2ban-server exited with ${code} (log ${root}/fail2ban.log)`))),
  );
  exited.catch(() => undefined);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await Promise.race([client(root, ['status']).catch(() => ''), exited]);
    const count = Number(/Number of jail:\s*(\d+)/.exec(status)?.[1] ?? -1);
    if (count === jails.length) break;
    if (Date.now() > deadline) throw new Error(`fail2ban-server did not start its ${jails.length} jails within 120 s`);
    await sleep(100);
  }
  const totals = async (): Promise<{ failed: number; banned: number }> => {
    let failed = 0;
    let banned = 0;
    for (const jail of jails) {
      const status = await client(root, ['status', jail.name]);
      failed += Number(/Total failed:\s*(\d+)/.exec(status)?.[1] ?? NaN);
      banned += Number(/Total banned:\s*(\d+)/.exec(status)?.[1] ?? NaN);
    }
    return { failed, banned };
  };
  return {
    child,
    root,
    totals,
    stop: async () => {
      await stopChild(child);
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface Fail2banRun {
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
  failed: number;
  banned: number;
}

/**
 * fail2ban-server over logs already written in full: from spawn until its CPU time has not grown
 * for `quietMs` (then `seconds` ends at the last sample that still grew).
 */
export async function runFail2banServer(jails: Fail2banJail[], quietMs = 3000): Promise<Fail2banRun> {
  const started = performance.now();
  const server = await startFail2banServer(jails);
  try {
    let lastCpu = await cpuSeconds(server.child.pid);
    let lastBusy = performance.now();
    const deadline = Date.now() + 30 * 60_000;
    while (performance.now() - lastBusy < quietMs) {
      if (Date.now() > deadline) throw new Error('fail2ban-server still busy after 30 minutes');
      await sleep(100);
      const cpu = await cpuSeconds(server.child.pid);
      // Idle, it wakes for a few ms a second (polling); reading lines keeps it busy the whole tick.
      if (cpu - lastCpu > 0.02) lastBusy = performance.now();
      lastCpu = cpu;
    }
    const seconds = (lastBusy - started) / 1000;
    const peakRss = (await procMemory(server.child.pid))?.hwm ?? NaN;
    return { seconds, cpuSeconds: lastCpu, peakRss, ...(await server.totals()) };
  } finally {
    await server.stop();
  }
}

/** RSS of fail2ban-server with `jails` on empty logs, `settleMs` after every jail started. */
export async function fail2banIdleRss(jails: Fail2banJail[], settleMs: number): Promise<{ rss: number; hwm: number }> {
  const server = await startFail2banServer(jails);
  try {
    await sleep(settleMs);
    const memory = await procMemory(server.child.pid);
    return { rss: memory?.rss ?? NaN, hwm: memory?.hwm ?? NaN };
  } finally {
    await server.stop();
  }
}

if (import.meta.main) {
  const [mail1, mail2, access] = process.argv.slice(2);
  console.log(
    JSON.stringify(
      await runFail2banServer([
        { name: 'postfix', logs: [mail1!, mail2!] },
        { name: 'dovecot', logs: [mail1!, mail2!] },
      ]),
    ),
  );
  console.log(
    JSON.stringify(
      await runFail2banServer([
        { name: 'traefik', logs: [access!] },
        { name: 'nginx', logs: [access!] },
        { name: 'apache', logs: [access!] },
      ]),
    ),
  );
}
