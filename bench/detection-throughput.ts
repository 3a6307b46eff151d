/**
 * Detection throughput: `edgeban test-filter` against Debian's `fail2ban-regex` on the same
 * filter files and the same generated logs, side by side. Logs are generated from a fixed seed
 * into dataDir (a temporary directory, outside the repository), so every run measures the same input. Both tools run as processes,
 * start-up included; matches (count and hosts, in order) must be identical.
 *
 *   node_modules/.bin/node bench/detection-throughput.ts [--lines 1000000] [--data-dir DIR]
 */
import { spawn } from 'node:child_process';
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { grouped, type BenchResult, type SummaryRow } from './bench-result.ts';
import { DEFAULT_DATA_DIR, generatedLog, SEED, type LogKind } from './log-generators.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const NODE = process.execPath;
const EDGEBAN = path.join(REPO, 'bin', 'edgeban.js');
const FAIL2BAN_REGEX = 'fail2ban-regex';

interface RunResult {
  seconds: number;
  hosts: string[];
}

/** Whether Debian's fail2ban (fail2ban-regex and /etc/fail2ban) is installed: the peer and its filter files. */
export async function fail2banInstalled(): Promise<boolean> {
  const filters = await access('/etc/fail2ban/filter.d/common.conf').then(
    () => true,
    () => false,
  );
  const regex = await new Promise<boolean>((resolve) => {
    const child = spawn(FAIL2BAN_REGEX, ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
  return filters && regex;
}

/** Runs a command to its end, timing it (start-up included) and handing each stdout line to `collect`. */
export function runProcess(
  command: string,
  args: string[],
  collect: (line: string, hosts: string[]) => void,
  env: Record<string, string> = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC', ...env } });
    const hosts: string[] = [];
    let rest = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => {
      const text = rest + data;
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) collect(line, hosts);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4000) stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (rest !== '') collect(rest, hosts);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ seconds, hosts });
    });
  });
}

const HTTPD_FORBIDDEN = `# The widely copied httpd-forbidden filter (403 responses in an access log).
[Definition]
failregex = ^<HOST> - - .*HTTP/[0-9]+(.[0-9]+)?" 403
ignoreregex =
`;

export async function runDetectionBenchmark(options: { lines: number; dataDir: string }): Promise<BenchResult> {
  const { lines, dataDir } = options;
  if (!(await fail2banInstalled())) {
    throw new Error("needs Debian's fail2ban (fail2ban-regex and the filters in /etc/fail2ban): apt-get install fail2ban");
  }
  await mkdir(dataDir, { recursive: true });
  const forbidden = path.join(dataDir, 'httpd-forbidden.conf');
  await writeFile(forbidden, HTTPD_FORBIDDEN);
  const cases: Array<{ name: string; filter: string; kind: LogKind; goal: number }> = [
    { name: 'dovecot', filter: '/etc/fail2ban/filter.d/dovecot.conf', kind: 'dovecot', goal: 20 },
    { name: 'postfix', filter: '/etc/fail2ban/filter.d/postfix.conf', kind: 'postfix', goal: 20 },
    { name: 'httpd-forbidden', filter: forbidden, kind: 'access', goal: 50 },
  ];
  const rows: Array<Record<string, string | number>> = [];
  const notes: string[] = [];
  const summary: SummaryRow[] = [];
  for (const spec of cases) {
    const c = { ...spec, log: await generatedLog(dataDir, spec.kind, lines) };
    // Same filter file for both; fail2ban-regex reads its includes (common.conf) from /etc/fail2ban.
    // Timed: edgeban's summary run (fail2ban-regex's default job) against fail2ban-regex -o ip
    // (its fastest mode, no statistics). Compared: edgeban's --json run against that output.
    const base = [EDGEBAN, 'test-filter', c.filter, c.log, '--config-dir', '/etc/fail2ban'];
    // Node's compile cache keeps the type-stripped, compiled modules between runs, as Python keeps
    // fail2ban's .pyc files; the --json run (first) fills it.
    const env = { NODE_COMPILE_CACHE: path.join(dataDir, 'node-compile-cache') };
    const edgeJson = await runProcess(
      NODE,
      [...base, '--json'],
      (line, hosts) => {
        if (line.includes('"match":true')) {
          const host = (JSON.parse(line) as { host: string | null }).host;
          hosts.push(host ?? '');
        }
      },
      env,
    );
    const edge = await runProcess(NODE, base, () => undefined, env);
    const f2b = await runProcess(FAIL2BAN_REGEX, ['-o', 'ip', c.log, c.filter], (line, hosts) => {
      if (line.trim() !== '') hosts.push(line.trim());
    });
    edge.hosts = edgeJson.hosts;
    const identical = edge.hosts.length === f2b.hosts.length && edge.hosts.every((h, i) => h === f2b.hosts[i]);
    if (!identical) {
      const at = edge.hosts.findIndex((h, i) => h !== f2b.hosts[i]);
      notes.push(
        `${c.name}: MATCHES DIFFER: edgeban ${edge.hosts.length}, fail2ban-regex ${f2b.hosts.length}; first difference at match #${at + 1}: ${edge.hosts[at]} vs ${f2b.hosts[at]}`,
      );
    }
    const ratio = f2b.seconds / edge.seconds;
    rows.push({
      filter: c.name,
      lines,
      matches: edge.hosts.length,
      identical: identical ? 'yes' : 'NO',
      'edgeban lines/s': Math.round(lines / edge.seconds),
      'fail2ban-regex lines/s': Math.round(lines / f2b.seconds),
      'edgeban s': Number(edge.seconds.toFixed(2)),
      'edgeban --json s': Number(edgeJson.seconds.toFixed(2)),
      'fail2ban-regex s': Number(f2b.seconds.toFixed(2)),
      speedup: Number(ratio.toFixed(1)),
      goal: `${c.goal}x ${ratio >= c.goal ? 'met' : 'NOT met'}`,
    });
    summary.push({
      figure: `Detection, ${c.name} filter (lines/s, ${grouped(lines)} lines${identical ? '' : ', MATCHES DIFFER'})`,
      edgeban: grouped(lines / edge.seconds),
      peer: `fail2ban-regex ${grouped(lines / f2b.seconds)} (edgeban ${ratio.toFixed(1)}x)`,
    });
  }
  notes.push(
    'Both tools run as processes on the same filter file and log, start-up included. Timed: edgeban test-filter (summary) and fail2ban-regex -o ip; matches compared between edgeban test-filter --json and that fail2ban-regex output, in order.',
  );
  notes.push(
    "edgeban runs with NODE_COMPILE_CACHE (Node's cache of compiled modules, the counterpart of the .pyc files fail2ban-regex loads); it saves about 0.15 s of start-up per run.",
  );
  notes.push(`Logs: ${lines} lines each, generated from seed ${SEED} into ${dataDir}; attacker addresses from documentation ranges.`);
  return { name: 'Detection throughput per filter (edgeban test-filter vs fail2ban-regex)', rows, notes, summary };
}

if (import.meta.main) {
  // 1M lines: start-up (about 0.2 s for edgeban) stays small; fail2ban-regex needs about 3 minutes in all.
  const { values } = parseArgs({ options: { lines: { type: 'string', default: '1000000' }, 'data-dir': { type: 'string', default: DEFAULT_DATA_DIR } } });
  const lines = Number(values.lines);
  if (!Number.isInteger(lines) || lines <= 0) throw new Error('--lines must be a positive integer');
  const result = await runDetectionBenchmark({ lines, dataDir: path.resolve(values['data-dir']) });
  console.log(result.name);
  console.table(result.rows);
  for (const note of result.notes) console.log(`- ${note}`);
}
