import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { markdownTable, type BenchResult } from './bench-result.ts';
import { runBanLatencyBenchmark } from './ban-latency.ts';
import { runDetectionBenchmark } from './detection-throughput.ts';
import { runRestoreBenchmark } from './restore.ts';

// `npm run bench`: every benchmark, side by side with its peer where one exists, into
// bench/results/results.{md,json}. Benchmarks report; they never fail on noise.
const { values } = parseArgs({
  options: {
    'restore-bans': { type: 'string', default: '20000' },
    'detection-lines': { type: 'string', default: '1000000' },
    'latency-bans': { type: 'string', default: '300' },
    only: { type: 'string' },
  },
});
const here = import.meta.dirname;
const resultsDir = path.join(here, 'results');
const dataDir = path.join(here, 'data');
await mkdir(resultsDir, { recursive: true });
await mkdir(dataDir, { recursive: true });

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.availableParallelism(),
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  os: `${os.type()} ${os.release()}`,
  node: process.version,
  date: new Date().toISOString(),
};

const results: BenchResult[] = [];
const wanted = (name: string) => values.only === undefined || values.only.split(',').includes(name);

if (wanted('restore')) {
  console.error('restore benchmark…');
  results.push(await runRestoreBenchmark({ bans: Number(values['restore-bans']), latencyMs: 20, lockMs: 2, concurrency: 16 }));
}
if (wanted('latency')) {
  console.error('ban latency benchmark…');
  results.push(await runBanLatencyBenchmark({ bans: Number(values['latency-bans']), paceMs: 20 }));
}
if (wanted('detection')) {
  console.error('detection throughput benchmark (fail2ban-regex takes minutes)…');
  results.push(await runDetectionBenchmark({ lines: Number(values['detection-lines']), dataDir }));
}

const markdown = [
  '# edgeban benchmarks',
  '',
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; ${machine.date}.`,
  '',
  ...results.flatMap((r) => [`## ${r.name}`, '', markdownTable(r.rows), '', ...r.notes.map((n) => `- ${n}`), '']),
].join('\n');
await writeFile(path.join(resultsDir, 'results.md'), markdown);
await writeFile(path.join(resultsDir, 'results.json'), `${JSON.stringify({ machine, results }, null, 2)}\n`);
process.stdout.write(`${markdown}\n`);
