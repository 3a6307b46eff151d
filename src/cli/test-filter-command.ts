/**
 * `edgeban test-filter FILTER LOG [--config-dir DIR] [--now EPOCH] [--logformat F] [--json]`:
 * edgeban's fail2ban-regex. Streams the log (any size, any bytes), runs the filter over every line
 * and prints a summary, or with --json exactly one JSON object per input line. As fail2ban-regex,
 * it also takes LOG FILTER, a raw regex (with <HOST>) for FILTER and a single line for LOG. With --logformat
 * docker, cri or auto the container runtime's wrapper is removed first, as the daemon does for a
 * jail with that logformat: one JSON object per unwrapped line, numbered by the record completing it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadFilter, type ConfigDirs, type FilterDefinition } from '../config/fail2ban/filter-definition.ts';
import { compileFilter } from '../filters/compile.ts';
import { FilterMatcher, type LineResult } from '../filters/matcher.ts';
import { readFileChunks, readLineBatches } from '../filters/line-reader.ts';
import { ContainerLogUnwrapper, LOG_FORMATS, lineTime, type UnwrappedLine, type UnwrapStats } from '../sources/container-log-format.ts';
import { UserFacingError } from '../util/errors.ts';
import { PACKAGE_ROOT } from '../config/shipped-dirs.ts';

const USAGE = `usage: edgeban test-filter FILTER LOG [--config-dir DIR] [--now EPOCH] [--logformat ${LOG_FORMATS.join('|')}] [--json]
       edgeban test-filter LOG FILTER …   (fail2ban-regex's order)

FILTER: a filter name (dovecot, dovecot[mode=aggressive]), a filter file, or a raw failregex with <HOST>.
LOG: a log file, or a single log line (text with spaces that is not a file).`;
const SAMPLE_MATCHES = 5;

const argsSchema = z.object({
  first: z.string().min(1),
  second: z.string().min(1),
  configDir: z.string().min(1).optional(),
  now: z.number().finite().optional(),
  logformat: z.enum(LOG_FORMATS),
  json: z.boolean(),
});
type TestFilterArgs = z.infer<typeof argsSchema>;

function parse(argv: string[]): TestFilterArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'config-dir': { type: 'string' },
        now: { type: 'string' },
        logformat: { type: 'string', default: 'plain' },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\n${USAGE}`);
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 2) throw new UserFacingError(USAGE);
  const nowText = values.now;
  if (nowText !== undefined && !/^\d+(?:\.\d+)?$/.test(nowText)) throw new UserFacingError(`--now: expected epoch seconds, got ${JSON.stringify(nowText)}`);
  const result = argsSchema.safeParse({
    first: positionals[0],
    second: positionals[1],
    configDir: values['config-dir'] ?? (process.env.EDGEBAN_CONFIG_DIR || undefined),
    now: nowText === undefined ? undefined : Number(nowText),
    logformat: values.logformat,
    json: values.json === true,
  });
  if (!result.success) throw new UserFacingError(`${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n${USAGE}`);
  return result.data;
}

/** One JSON line per input line; tags join the fixed keys (a tag named like one is prefixed). */
export function jsonLine(lineNumber: number, r: LineResult): string {
  let s = `{"line":${lineNumber},"match":${r.match},"host":${r.host === null ? 'null' : JSON.stringify(r.host)},"time":${r.time === null ? 'null' : String(r.time)}`;
  for (const key in r.tags) {
    const name = key === 'line' || key === 'match' || key === 'host' || key === 'time' || key === 'hostname' ? `tag_${key}` : key;
    s += `,${JSON.stringify(name)}:${JSON.stringify(r.tags[key])}`;
  }
  if (r.hostname !== undefined) s += `,"hostname":${JSON.stringify(r.hostname)}`;
  return `${s}}\n`;
}

/** Buffers output and respects back-pressure, so a million JSON lines stay fast and bounded. */
class Output {
  private chunk = '';
  async write(text: string): Promise<void> {
    this.chunk += text;
    if (this.chunk.length >= 1 << 16) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.chunk === '') return;
    const data = this.chunk;
    this.chunk = '';
    if (!process.stdout.write(data)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }
}

export async function runTestFilterCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const args = parse(argv);
  const dirs = {
    ...(args.configDir === undefined ? {} : { configDir: path.resolve(args.configDir) }),
    shippedFilterDir: path.join(PACKAGE_ROOT, 'filters'),
    shippedActionDir: path.join(PACKAGE_ROOT, 'actions'),
  };
  const { filterArg, logArg } = await arrange(args.first, args.second, dirs);
  const definition = filterArg.kind === 'regex' ? rawRegexFilter(filterArg.text) : await loadFilter(filterArg.text, dirs);
  const filter = compileFilter(definition);
  if (logArg.kind === 'file') {
    try {
      const info = await stat(logArg.text);
      if (!info.isFile() && !info.isFIFO()) throw new Error('not a file');
    } catch (error) {
      throw new UserFacingError(`cannot read log ${logArg.text}: ${(error as Error).message}`);
    }
  }
  const matcher = new FilterMatcher(filter, { now: args.now ?? Date.now() / 1000 });
  const out = new Output();
  const samples: Array<{ n: number; line: string; r: LineResult }> = [];
  const unwrapper = args.logformat === 'plain' ? null : new ContainerLogUnwrapper(args.logformat);
  const inner: UnwrappedLine[] = [];
  let n = 0;
  const log = logArg.kind === 'file' ? logArg.text : '<command line>';
  const chunks = logArg.kind === 'file' ? readFileChunks(logArg.text) : oneLine(logArg.text);
  for await (const batch of readLineBatches(chunks)) {
    let text = '';
    for (const line of batch.lines) {
      n++;
      if (unwrapper === null) {
        const r = matcher.processLine(line, batch.ascii ? true : undefined);
        if (args.json) text += jsonLine(n, r);
        else if (r.match && samples.length < SAMPLE_MATCHES) samples.push({ n, line, r });
        continue;
      }
      inner.length = 0;
      unwrapper.push(log, line, inner);
      for (const unwrapped of inner) {
        const matched = matcher.processLine(unwrapped.text);
        // As the daemon counts it: the filter's own date, else the runtime's time stamp.
        const r = { ...matched, time: lineTime(matched.time, unwrapped) };
        if (args.json) text += jsonLine(n, r);
        else if (r.match && samples.length < SAMPLE_MATCHES) samples.push({ n, line: unwrapped.text, r });
      }
    }
    if (text !== '') await out.write(text);
  }
  if (!args.json) {
    await out.write(
      summary(
        filter.name,
        definition.file,
        filter.failregex.map((f) => f.pattern),
        matcher,
        samples,
      ),
    );
    if (unwrapper !== null) await out.write(containerSummary(args.logformat, unwrapper.stats, unwrapper.pendingLines, matcher.stats.noTime));
  }
  await out.flush();
  return 0;
}

type Argument = { kind: 'filter' | 'regex' | 'file' | 'line' | 'unknown'; text: string };

/** fail2ban's tags a raw failregex carries (fail2ban-regex requires a host group in a failregex). */
const REGEX_TAG = /<(?:HOST|ADDR|IP4|IP6|CIDR|SUBNET|F-[A-Z0-9_-]+)>/;

/** What one command-line argument is: a filter by name, a filter file, a raw regex, a log file or a log line. */
async function classify(text: string, dirs: ConfigDirs): Promise<Argument> {
  if (REGEX_TAG.test(text)) return { kind: 'regex', text };
  const name = text.replace(/\[.*\]$/s, '').replace(/\.(?:conf|local)$/, '');
  if (!name.includes('/')) {
    const layers = [dirs.shippedFilterDir, ...(dirs.configDir === undefined ? [] : [path.join(dirs.configDir, 'filter.d')])];
    const candidates = layers.flatMap((dir) => [path.join(dir, `${name}.conf`), path.join(dir, `${name}.local`)]);
    if ((await Promise.all(candidates.map(isReadableFile))).some(Boolean)) return { kind: 'filter', text };
  }
  if (await isReadableFile(text.replace(/\[.*\]$/s, ''))) return { kind: /\.(?:conf|local)(?:\[.*\])?$/s.test(text) ? 'filter' : 'file', text };
  // As fail2ban-regex: a LOG that is not a file is a log line. Only text with spaces counts as a
  // line, so a mistyped path is reported as missing rather than tested as text.
  if (/\s/.test(text)) return { kind: 'line', text };
  return { kind: 'unknown', text };
}

async function* oneLine(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(`${text}\n`);
}

async function isReadableFile(file: string): Promise<boolean> {
  try {
    const info = await stat(file);
    return info.isFile() || info.isFIFO();
  } catch {
    return false;
  }
}

/** Which argument is the filter and which the log: FILTER LOG (edgeban) or LOG FILTER (fail2ban-regex). */
async function arrange(first: string, second: string, dirs: ConfigDirs): Promise<{ filterArg: Argument; logArg: Argument }> {
  const [a, b] = await Promise.all([classify(first, dirs), classify(second, dirs)]);
  const isFilter = (x: Argument) => x.kind === 'filter' || x.kind === 'regex';
  const isLog = (x: Argument) => x.kind === 'file' || x.kind === 'line';
  const swapped = (!isFilter(a) && isFilter(b)) || (isLog(a) && !isLog(b));
  const filterArg = swapped ? b : a;
  const logArg = swapped ? a : b;
  // An unresolved filter is looked up by name (its error lists where); an unresolved log is a file that cannot be read.
  return {
    filterArg: filterArg.kind === 'regex' ? filterArg : { kind: 'filter', text: filterArg.text },
    logArg: logArg.kind === 'line' ? logArg : { kind: 'file', text: logArg.text },
  };
}

/** A raw failregex from the command line, as fail2ban-regex takes one: no prefregex, no date pattern of its own. */
function rawRegexFilter(pattern: string): FilterDefinition {
  const source = { file: '<command line>', line: 0, key: 'failregex' };
  return {
    name: 'regex',
    options: {},
    file: '<command line>',
    prefregex: null,
    failregex: [{ pattern, source }],
    ignoreregex: [],
    maxlines: 1,
    datepattern: null,
    logtimezone: null,
    journalmatch: null,
    jsonline: null,
  };
}

function summary(name: string, file: string, failregex: string[], matcher: FilterMatcher, samples: Array<{ n: number; line: string; r: LineResult }>): string {
  const s = matcher.stats;
  const lines = [
    `filter: ${name} (${file})`,
    `lines read: ${s.lines}, matched: ${s.matched}, ignored: ${s.ignored}, missed: ${s.missed}`,
    '',
    'matches per failregex:',
    ...failregex.map((p, i) => `  #${i + 1} ${String(s.perFailregex[i] ?? 0).padStart(8)}  ${p}`),
  ];
  if (s.hostnames > 0) lines.push('', `host names matched by <HOST> (never resolved, not banned): ${s.hostnames}`);
  if (s.invalidHosts > 0) lines.push('', `matches whose address is invalid (not banned): ${s.invalidHosts}`);
  if (s.noTime > 0) lines.push('', `lines without a recognised time stamp: ${s.noTime}`);
  if (samples.length > 0) {
    lines.push('', 'sample matches:');
    for (const { n, line, r } of samples) {
      const when = r.time === null ? 'no time' : new Date(r.time * 1000).toISOString();
      lines.push(`  line ${n}: ${r.host ?? r.hostname ?? '-'} at ${when}`, `    ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function containerSummary(format: string, s: UnwrapStats, pending: number, noTime: number): string {
  const lines = [
    '',
    `container log (${format}): records: ${s.records}, lines: ${s.lines}, records of split lines: ${s.partialRecords}, malformed records (skipped): ${s.malformed}`,
  ];
  if (s.truncated > 0) lines.push(`lines longer than the cap (matched on their start): ${s.truncated}`);
  if (pending > 0) lines.push(`lines left unfinished at the end (a partial record without its last part, not matched): ${pending}`);
  if (noTime > 0) lines.push(`lines without a recognised time stamp (${noTime}) count at the runtime's time stamp, as in the daemon`);
  return `${lines.join('\n')}\n`;
}
