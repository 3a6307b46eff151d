import { open, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { CompiledFilter } from '../filters/compile.ts';
import { FilterMatcher } from '../filters/matcher.ts';
import { isInternal } from '../jails/ban-guard.ts';
import { cidrContains, parseCidr, type Cidr } from '../jails/cidr.ts';
import { ProxyDetector } from '../jails/proxy-detector.ts';
import { ContainerLogUnwrapper, type LogFormat, type UnwrappedLine } from '../sources/container-log-format.ts';
import { expandPatterns, isGlob } from '../sources/patterns.ts';
import { fail, pass, warn, type CheckResult } from './check-result.ts';

export interface LogCheckOptions {
  nowMs: number;
  /** A file not written for this long is stale (warn). */
  staleAfterSec: number;
  /** How many of the last lines are parsed for time stamps and failures. */
  tailLines: number;
  /** Gateways and own addresses: a proxy in front looks like one of these (as for the daemon's detector). */
  proxyCandidates: readonly Cidr[];
}

export interface JailLogInput {
  name: string;
  logpath: readonly string[];
  filter: CompiledFilter;
  findtimeSec: number;
  /** How a container runtime wraps the lines (the jail's `logformat`). */
  logformat: LogFormat;
}

/** Time stamps within this of the file's last write are fine (buffered writers, slow rotation). */
const SKEW_TOLERANCE_SEC = 300;
/** An offset this close to whole hours is a time-zone mistake. */
const WHOLE_HOUR_SLACK_SEC = 180;
const TAIL_BYTES = 256 * 1024;

/** Every check of one jail's logs: files exist, are readable, recently written, stamped in the right zone, not behind a proxy. */
export async function checkJailLogs(jail: JailLogInput, options: LogCheckOptions): Promise<CheckResult[]> {
  const scope = `jail ${jail.name}`;
  if (jail.logpath.length === 0) {
    return [
      fail('log.paths', scope, 'no logpath set', 'set logpath in the jail (a file or a glob under the read-only log mount, e.g. /remotelogs/mail/*.log)'),
    ];
  }
  const results: CheckResult[] = [];
  const files: string[] = [];
  for (const pattern of jail.logpath) {
    if (isGlob(pattern)) {
      const matches = await expandPatterns([pattern]);
      if (matches.length === 0) {
        results.push(
          fail(
            'log.paths',
            `${scope} ${pattern}`,
            'the glob matches no file',
            'mount the log folder (not single files, so rotation works) and check the pattern; files that appear later are picked up',
          ),
        );
      } else {
        results.push(pass('log.paths', `${scope} ${pattern}`, `matches ${matches.length} file(s)`));
        files.push(...matches);
      }
      continue;
    }
    files.push(pattern);
  }
  const proxy = new ProxyDetector();
  let failures = 0;
  for (const file of files) {
    const fileScope = `${scope} ${file}`;
    const access = await readability(file);
    if (access.problem !== null) {
      results.push(access.problem(fileScope));
      continue;
    }
    results.push(pass('log.readable', fileScope, 'exists and is readable'));
    results.push(freshness(access.stats, options, fileScope));
    const records = await tailLines(file, options.tailLines);
    // Container logs are judged by the lines the program wrote, as the daemon reads them.
    const unwrapper = new ContainerLogUnwrapper(jail.logformat);
    const lines: UnwrappedLine[] = [];
    for (const record of records) unwrapper.push(file, record, lines);
    const matcher = new FilterMatcher(jail.filter, { now: options.nowMs / 1000 });
    let newest: number | null = null;
    for (const line of lines) {
      const result = matcher.processLine(line.text);
      if (result.time !== null && (newest === null || result.time > newest)) newest = result.time;
      if (result.match && result.host !== null) {
        failures++;
        proxy.observe(proxyCandidate(result.host, options.proxyCandidates), options.nowMs);
      }
    }
    results.push(timestampResult(newest, access.stats.mtimeMs / 1000, lines.length, jail, file, fileScope));
  }
  const suspicion = proxy.suspicion;
  if (suspicion !== null) {
    results.push(
      warn(
        'log.proxy',
        scope,
        `${Math.round(suspicion.share * 100)}% of ${suspicion.window} recent failures come from ${suspicion.address}, a private address: the jail sees a proxy, not the clients`,
        'make the proxy pass client addresses on and log those: PROXY protocol (Postfix smtpd_upstream_proxy_protocol = haproxy, Dovecot haproxy = yes) or X-Forwarded-For / real_ip for web servers',
      ),
    );
  } else if (failures > 0) {
    results.push(pass('log.proxy', scope, `${failures} recent failure(s), not dominated by one private address`));
  }
  return results;
}

type Readability = { problem: null; stats: Stats } | { problem: (scope: string) => CheckResult };

/** Opens and reads one byte, as the follower will: only that proves readability (root, ACLs, mounts). */
export async function readability(file: string): Promise<Readability> {
  let stats: Stats;
  try {
    stats = await stat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return {
        problem: (scope) =>
          fail(
            'log.paths',
            scope,
            'does not exist',
            'mount the log folder into the container (read-only) and point logpath at the file inside it; the daemon starts following it when it appears',
          ),
      };
    }
    return { problem: (scope) => unreadable(scope, code) };
  }
  if (stats.isDirectory()) {
    return {
      problem: (scope) =>
        fail('log.readable', scope, 'is a directory, not a log file', `point logpath at the files inside it, e.g. ${file.replace(/\/+$/, '')}/*.log`),
    };
  }
  try {
    const handle = await open(file, 'r');
    try {
      await handle.read(Buffer.alloc(1), 0, 1, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { problem: (scope) => unreadable(scope, code) };
  }
  return { problem: null, stats };
}

function unreadable(scope: string, code: string | undefined): CheckResult {
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  return fail(
    'log.readable',
    scope,
    `cannot be read (${code ?? 'error'})${uid === null ? '' : ` by uid ${uid}`}`,
    "give edgeban's user read access to the file and search access to its folders (e.g. group adm, chmod g+r, or mount the folder read-only with readable permissions)",
  );
}

function freshness(stats: Stats, options: LogCheckOptions, scope: string): CheckResult {
  const ageSec = Math.round((options.nowMs - stats.mtimeMs) / 1000);
  if (ageSec > options.staleAfterSec) {
    return warn(
      'log.fresh',
      scope,
      `last written ${describeAge(ageSec)} ago`,
      'check that the service still logs to this file (a new file name after rotation, logging switched to stdout/journald, the mount pointing at an old copy)',
    );
  }
  return pass('log.fresh', scope, `last written ${describeAge(Math.max(0, ageSec))} ago`);
}

/**
 * Compares the newest line's time stamp with the moment the file was last written (which the
 * kernel stamps correctly whatever zone the writer uses): a difference of whole hours means the
 * stamps are in a zone edgeban does not assume.
 */
function timestampResult(newest: number | null, mtimeSec: number, lineCount: number, jail: JailLogInput, file: string, scope: string): CheckResult {
  if (lineCount === 0) return pass('log.timestamps', scope, 'empty: no time stamps to check yet');
  if (newest === null) {
    return warn(
      'log.timestamps',
      scope,
      `no time stamp recognised in the last ${lineCount} lines: the filter's date detection does not fit this log, so lines get no time`,
      `check the filter's datepattern against the log with \`edgeban test-filter ${jail.filter.name} ${file}\``,
    );
  }
  const skew = newest - mtimeSec;
  if (Math.abs(skew) <= SKEW_TOLERANCE_SEC)
    return pass('log.timestamps', scope, `the newest line's time stamp matches the file's last write (${Math.round(skew)} s)`);
  const hours = Math.round(skew / 3600);
  const direction = skew < 0 ? 'behind' : 'ahead of';
  const consequence =
    skew < -jail.findtimeSec
      ? `; lines older than findtime (${jail.findtimeSec} s) are ignored, so this jail bans nothing`
      : skew > 0
        ? "; lines from the future are ignored by fail2ban's rules"
        : '';
  if (hours !== 0 && Math.abs(skew - hours * 3600) <= WHOLE_HOUR_SLACK_SEC) {
    const zone = `UTC${hours > 0 ? '+' : '-'}${String(Math.abs(hours)).padStart(2, '0')}00`;
    return warn(
      'log.timestamps',
      scope,
      `time stamps are ${Math.abs(hours)} hour(s) ${direction} the file's last write: a time-zone mistake (the log is written in local time without a zone)${consequence}`,
      `set \`logtimezone = ${zone}\` in the jail (or the filter's [Init]), or make the service log in UTC (TZ=UTC in its container)`,
    );
  }
  return warn(
    'log.timestamps',
    scope,
    `time stamps are ${describeAge(Math.round(Math.abs(skew)))} ${direction} the file's last write${consequence}`,
    'check the clocks of the log writer and of this host (NTP), and that the file is the live log and not a copy',
  );
}

function proxyCandidate(host: string, candidates: readonly Cidr[]): string | null {
  let cidr: Cidr;
  try {
    cidr = parseCidr(host);
  } catch {
    return null;
  }
  return isInternal(cidr) || candidates.some((c) => cidrContains(c, cidr)) ? host : null;
}

/** The last `count` complete lines of a file (reads at most its last 256 KiB). */
export async function tailLines(file: string, count: number): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    // The first piece may be a cut line; the last one after the final newline is empty or unfinished.
    if (length < size) lines.shift();
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-count).map((l) => l.replace(/\r$/, ''));
  } finally {
    await handle.close();
  }
}

function describeAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}
