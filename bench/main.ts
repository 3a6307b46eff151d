import { mkdir, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runBanLatencyBenchmark } from './ban-latency.ts';
import { runClusterFillBenchmark } from './cluster-fill.ts';
import { markdownTable, type BenchResult, type SummaryRow } from './bench-result.ts';
import { runDaemonThroughputBenchmark } from './daemon-throughput.ts';
import { runDetectionBenchmark } from './detection-throughput.ts';
import { runFloodBenchmark } from './flood.ts';
import { DEFAULT_DATA_DIR } from './log-generators.ts';
import { describeMachine, loadAverages, loadText, machineLine, type LoadAverages } from './machine.ts';
import { runMemoryBenchmark } from './memory.ts';
import { runRestoreBenchmark } from './restore.ts';

// `npm run bench`: every benchmark, side by side with its peer where one exists, into
// bench/results/results.{md,json}. Benchmarks report; they never fail on noise (the exit code is
// non-zero only when a benchmark could not run at all).
const USAGE = `usage: npm run bench -- [--only SECTION,...] [--quick] [size flags]
sections: detection, daemon, latency, flood, restore, memory, cluster (default: all)
  --quick                   small sizes for a check in about two minutes (writes results-partial.*)
  --detection-lines N       lines per generated log (1000000)
  --daemon-peer-lines N     lines of each log fail2ban-server reads as the daemon's peer, 0 = none (200000)
  --crowdsec-mail-lines N   lines of each mail log CrowdSec replays, 0 = none (200000)
  --crowdsec-access-lines N lines of the access log CrowdSec replays, 0 = none (10000)
  --latency-bans N          attackers in the ban latency run (300)
  --flood-attackers N       distinct attackers in the flood (10000)
  --flood-window S          seconds over which they cross maxretry (60)
  --restore-bans N          bans restored into the emptied alias (100000)
  --restore-ideal-bans N    adds the ideal client makes for its rate (25000)
  --memory-addresses N      addresses the FailureTracker counts (1000000)
  --memory-bans N           active bans the daemon holds for the held-bans figure (100000)
  --cluster-bans N          bans the Redis-ledger replicas put into an empty alias (50000)
  --cluster-rss-bans N      active bans held by the replica whose memory is measured (100000)
  --data-dir DIR            where generated logs are cached (${DEFAULT_DATA_DIR})
  --out DIR                 where results go (bench/results)`;

const SECTIONS = ['detection', 'daemon', 'latency', 'flood', 'restore', 'memory', 'cluster'] as const;
type Section = (typeof SECTIONS)[number];

const QUICK: Record<string, string> = {
  'detection-lines': '50000',
  'daemon-peer-lines': '50000',
  'crowdsec-mail-lines': '5000',
  'crowdsec-access-lines': '500',
  'latency-bans': '50',
  'flood-attackers': '1000',
  'flood-window': '10',
  'restore-bans': '2000',
  'restore-ideal-bans': '2000',
  'memory-addresses': '100000',
  'memory-bans': '5000',
  'cluster-bans': '2000',
  'cluster-rss-bans': '10000',
};
const DEFAULTS: Record<string, string> = {
  'detection-lines': '1000000',
  'daemon-peer-lines': '200000',
  'crowdsec-mail-lines': '200000',
  'crowdsec-access-lines': '10000',
  'latency-bans': '300',
  'flood-attackers': '10000',
  'flood-window': '60',
  'restore-bans': '100000',
  'restore-ideal-bans': '25000',
  'memory-addresses': '1000000',
  'memory-bans': '100000',
  'cluster-bans': '50000',
  'cluster-rss-bans': '100000',
};

let parsed;
try {
  parsed = parseArgs({
    strict: true,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
      out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
      help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' as const }])),
    },
  });
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const only = values.only
  ?.split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
const unknown = only?.filter((s) => !(SECTIONS as readonly string[]).includes(s)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(`--only: unknown section ${unknown.join(', ')}\n${USAGE}\n`);
  process.exit(2);
}
const sizes: Record<string, number> = {};
for (const key of Object.keys(DEFAULTS)) {
  const text = ((values as Record<string, unknown>)[key] as string | undefined) ?? (values.quick ? QUICK[key] : DEFAULTS[key])!;
  const n = Number(text);
  const zeroAllowed = key === 'daemon-peer-lines' || key.startsWith('crowdsec-');
  if (!Number.isInteger(n) || n < (zeroAllowed ? 0 : 1)) {
    process.stderr.write(`--${key} must be a ${zeroAllowed ? 'non-negative' : 'positive'} whole number\n`);
    process.exit(2);
  }
  sizes[key] = n;
}
const size = (key: string): number => sizes[key]!;
// Only a full default run writes results.*; anything smaller must not overwrite the latest table.
const partial = only !== undefined || values.quick || Object.keys(DEFAULTS).some((k) => sizes[k] !== Number(DEFAULTS[k]));
const dataDir = path.resolve(values['data-dir']);
const resultsDir = path.resolve(values.out);
await mkdir(resultsDir, { recursive: true });
await mkdir(dataDir, { recursive: true });

const runners: Record<Section, () => Promise<BenchResult>> = {
  detection: () => runDetectionBenchmark({ lines: size('detection-lines'), dataDir }),
  daemon: () =>
    runDaemonThroughputBenchmark({
      lines: size('detection-lines'),
      dataDir,
      peerLines: size('daemon-peer-lines'),
      crowdsecMailLines: size('crowdsec-mail-lines'),
      crowdsecAccessLines: size('crowdsec-access-lines'),
    }),
  latency: () => runBanLatencyBenchmark({ bans: size('latency-bans'), paceMs: 20 }),
  flood: () => runFloodBenchmark({ attackers: size('flood-attackers'), windowMs: size('flood-window') * 1000, maxretry: 5, latencyMs: 20 }),
  restore: () => runRestoreBenchmark({ bans: size('restore-bans'), idealBans: size('restore-ideal-bans'), latencyMs: 20, lockMs: 2, concurrency: 16 }),
  memory: () => runMemoryBenchmark({ addresses: size('memory-addresses'), bans: size('memory-bans'), settleMs: values.quick ? 3000 : 10_000 }),
  cluster: () => runClusterFillBenchmark({ bans: size('cluster-bans'), rssBans: size('cluster-rss-bans'), latencyMs: 20, lockMs: 2 }),
};

// The peers (fail2ban-server, CrowdSec) from Debian when missing, before the machine is described.
if (only === undefined || only.includes('daemon') || only.includes('memory')) {
  spawnSync('bash', [path.join(import.meta.dirname, 'install-peers.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
}
const machine = await describeMachine();
process.stderr.write(`machine: ${machineLine(machine)}\n`);
const results: BenchResult[] = [];
const durations: Record<string, number> = {};
const sectionLoads: Record<string, { start: LoadAverages; end: LoadAverages }> = {};
const suiteStarted = performance.now();
let failed = false;
for (const section of SECTIONS) {
  if (only !== undefined && !only.includes(section)) continue;
  process.stderr.write(`${section}… `);
  const started = performance.now();
  const loadAtSectionStart = loadAverages();
  try {
    results.push(await runners[section]());
  } catch (error) {
    failed = true;
    results.push({ name: `${section}: FAILED`, rows: [], notes: [`The benchmark could not run: ${(error as Error).stack ?? String(error)}`] });
  }
  durations[section] = Math.round((performance.now() - started) / 100) / 10;
  sectionLoads[section] = { start: loadAtSectionStart, end: loadAverages() };
  process.stderr.write(`${durations[section]} s\n`);
}
const totalSeconds = Math.round((performance.now() - suiteStarted) / 1000);
const loadAtEnd = loadAverages();

const summary: SummaryRow[] = results.flatMap((r) => r.summary ?? []);
const markdown = [
  '# edgeban benchmarks',
  '',
  `Machine: ${machineLine(machine)} Load average ${loadText(loadAtEnd)} at the end; the suite took ${totalSeconds} s (${Object.entries(durations)
    .map(([k, v]) => `${k} ${v} s, 1-min load ${sectionLoads[k]!.start[0]} → ${sectionLoads[k]!.end[0]}`)
    .join('; ')}).`,
  '',
  'Reproduce: `npm ci && npm run bench` (a check at small sizes: `npm run bench -- --quick`; one section: `npm run bench -- --only flood`).',
  '',
  markdownTable(summary.map((s) => ({ figure: s.figure, edgeban: s.edgeban, 'peer (same run unless said)': s.peer }))),
  '',
  ...results.flatMap((r) => [`## ${r.name}`, '', markdownTable(r.rows), '', ...r.notes.map((n) => `- ${n}`), '']),
].join('\n');
const stem = partial ? 'results-partial' : 'results';
await writeFile(path.join(resultsDir, `${stem}.md`), markdown);
await writeFile(
  path.join(resultsDir, `${stem}.json`),
  `${JSON.stringify({ machine, loadAtEnd, totalSeconds, durations, sectionLoads, sizes, summary, results }, null, 2)}\n`,
);
process.stdout.write(`${markdown}\n`);
process.stderr.write(`wrote ${path.join(resultsDir, `${stem}.md`)} and .json\n`);
if (failed) process.exitCode = 1;
