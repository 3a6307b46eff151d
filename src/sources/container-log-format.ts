/**
 * Unwraps the lines container runtimes write around what a container printed, so filters see the
 * line the program wrote (what they would see in a plain log file):
 *
 * - Docker's json-file driver: `{"log":"<line>\n","stream":"stdout","time":"<RFC3339Nano>"}`;
 *   a line longer than 16 KiB comes as several records, all but the last without the `\n`.
 * - CRI (containerd, CRI-O; /var/log/pods): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <line>`;
 *   `P` records are continued by the next record(s) of the same stream up to an `F`.
 *
 * Pure: no I/O, no clock. Exactly one layer is unwrapped (an inner line that looks like a record
 * stays text), the wrapper's fields are read before the inner text so nothing inside it can set
 * them, Docker's JSON escapes are decoded by JSON.parse, and a reassembled line is capped like the
 * follower caps a plain one. A record that is not in the expected form is counted and skipped.
 */
import { z } from 'zod';
import { completeUtf8Length } from './line-assembler.ts';

export const LOG_FORMATS = ['plain', 'docker', 'cri', 'auto'] as const;
/** A jail's `logformat`: how its log lines are wrapped; `auto` decides per line. */
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogStream = 'stdout' | 'stderr';

/** One record of a container log, its wrapper read. */
export interface WrappedRecord {
  format: 'docker' | 'cri';
  /** What the program wrote (Docker: JSON-decoded), without the record's terminating newline. */
  text: string;
  stream: LogStream;
  /** The runtime's time stamp, epoch seconds (float). */
  time: number;
  /** The line continues in the next record of the same stream. */
  partial: boolean;
}

/** A line as a filter should see it. */
export interface UnwrappedLine {
  format: 'plain' | 'docker' | 'cri';
  text: string;
  /** The runtime's time stamp of the line's first record; null for a plain line. */
  time: number | null;
  stream: LogStream | null;
  /** Longer than the cap: `text` holds its first maxLineBytes bytes. */
  truncated: boolean;
}

export interface UnwrapStats {
  /** Records read (lines of the file). */
  records: number;
  /** Lines handed on (a long line split over several records counts once). */
  lines: number;
  /** Records that continued or were continued by another one. */
  partialRecords: number;
  /** Records in neither the expected nor (for auto) the plain form; skipped. */
  malformed: number;
  /** Reassembled lines cut at maxLineBytes. */
  truncated: number;
  /** Unfinished lines forgotten because too many streams had one pending. */
  evicted: number;
  /** Ends of lines whose start was read before a restart: skipped, never matched on their own. */
  orphanTails: number;
}

/** The follower's default cap on one line (LogFollower maxLineBytes). */
export const DEFAULT_MAX_LINE_BYTES = 65_536;
/**
 * What the follower must accept as one record so a Docker record is never cut: Docker splits at
 * 16 KiB of raw bytes, and JSON escaping grows a byte to at most 6 (`\u00XX`, `\ufffd`).
 */
export const CONTAINER_RECORD_BYTES = 128 * 1024;
const DEFAULT_MAX_PENDING = 1024;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|z|[+-]\d{2}:\d{2})$/;

/** RFC 3339 (with up to nanoseconds) as epoch seconds; null when not one. */
export function parseRfc3339(text: string): number | null {
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let offsetMinutes = 0;
  const zone = m[8] as string;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const whole = Date.UTC(year, month - 1, day, hour, minute, second) / 1000 - offsetMinutes * 60;
  return whole + (m[7] ? Number(`0${m[7]}`) : 0);
}

// Docker writes more keys with some options (attrs for labels/env); they are allowed and unused.
const dockerRecordSchema = z.object({
  log: z.string(),
  stream: z.enum(['stdout', 'stderr']),
  time: z.string(),
});

/** One json-file record, or null when it is not one. */
export function parseDockerRecord(record: string): WrappedRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(record);
  } catch {
    return null;
  }
  const parsed = dockerRecordSchema.safeParse(value);
  if (!parsed.success) return null;
  const time = parseRfc3339(parsed.data.time);
  if (time === null) return null;
  const { log, stream } = parsed.data;
  const partial = !log.endsWith('\n');
  return { format: 'docker', text: partial ? log : log.slice(0, -1), stream, time, partial };
}

// Tags are `P` or `F`, possibly followed by more `:`-separated tags; one space before the content.
const CRI_RECORD = /^(\S+) (stdout|stderr) ([PF])(?::\S*)?(?: ([\s\S]*))?$/;

/** One CRI record, or null when it is not one. */
export function parseCriRecord(record: string): WrappedRecord | null {
  const m = CRI_RECORD.exec(record);
  if (!m) return null;
  const time = parseRfc3339(m[1] as string);
  if (time === null) return null;
  return { format: 'cri', text: m[4] ?? '', stream: m[2] as LogStream, time, partial: m[3] === 'P' };
}

/** A record's wrapper read per `format`: a wrapped record, a plain line, or null (malformed). */
export function readRecord(format: LogFormat, record: string): WrappedRecord | { format: 'plain'; text: string } | null {
  switch (format) {
    case 'plain':
      return { format: 'plain', text: record };
    case 'docker':
      return parseDockerRecord(record);
    case 'cri':
      return parseCriRecord(record);
    case 'auto': {
      if (record.startsWith('{')) {
        const docker = parseDockerRecord(record);
        if (docker) return docker;
        // A Docker record cut or damaged: never hand its raw JSON to a filter as text.
        if (/^\{\s*"log"\s*:/.test(record)) return null;
        return { format: 'plain', text: record };
      }
      if (/^\d{4}-\d{2}-\d{2}[Tt]\S* std(?:out|err) [PF]/.test(record)) return parseCriRecord(record);
      return { format: 'plain', text: record };
    }
  }
}

/** How far before a resume offset to look for each stream's last record (stdout and stderr interleave). */
export const RESUME_LOOKBACK_BYTES = 2 * CONTAINER_RECORD_BYTES;

/**
 * Given the bytes just before a resume offset (ending with the newline of the last record read),
 * the streams whose last record there left its line unfinished. Records are read from the end
 * back; a stream whose last record is not in view counts as finished.
 */
export function continuedStreams(format: LogFormat, before: Buffer): LogStream[] {
  if (before.length === 0 || before[before.length - 1] !== 0x0a) return [];
  const decided = new Set<LogStream>();
  const continued: LogStream[] = [];
  let end = before.length - 1;
  while (end > 0 && decided.size < 2) {
    const start = before.lastIndexOf(0x0a, end - 1) + 1;
    // A record cut by the window's start is not read (the window may begin mid-record).
    if (start === 0 && before.length >= RESUME_LOOKBACK_BYTES) break;
    const read = readRecord(format, before.subarray(start, end).toString('utf8'));
    if (read !== null && read.format !== 'plain' && !decided.has(read.stream)) {
      decided.add(read.stream);
      if (read.partial) continued.push(read.stream);
    }
    end = start - 1;
  }
  return continued;
}

/**
 * The time a matched line counts at: the filter's own date when it found one (as in a plain log,
 * with the filter's datepattern and logtimezone), else the runtime's stamp.
 */
export function lineTime(matcherTime: number | null, line: Pick<UnwrappedLine, 'time'>): number | null {
  return matcherTime ?? line.time;
}

interface Pending {
  text: string;
  bytes: number;
  time: number;
  truncated: boolean;
  /** The line's start is not here (read before a restart): skip it to its end. */
  orphan?: boolean;
}

export interface UnwrapperOptions {
  /** Cap on one reassembled line, in UTF-8 bytes (default: the follower's 65536). */
  maxLineBytes?: number;
  /** Cap on streams with an unfinished line at once (default 1024); the oldest is forgotten. */
  maxPending?: number;
}

/**
 * Reads the records of one or more files (each a `source`) and returns the lines they complete.
 * Unfinished lines are kept per source and stream (stdout and stderr interleave).
 */
export class ContainerLogUnwrapper {
  readonly format: LogFormat;
  readonly stats: UnwrapStats = { records: 0, lines: 0, partialRecords: 0, malformed: 0, truncated: 0, evicted: 0, orphanTails: 0 };
  private readonly maxLineBytes: number;
  private readonly maxPending: number;
  private readonly pending = new Map<string, Pending>();

  constructor(format: LogFormat, options: UnwrapperOptions = {}) {
    this.format = format;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  /** Takes one record (a line of `source`, without its newline); appends the lines it completes to `out`. */
  push(source: string, record: string, out: UnwrappedLine[]): void {
    this.stats.records++;
    const read = readRecord(this.format, record);
    if (read === null) {
      this.stats.malformed++;
      return;
    }
    if (read.format === 'plain') {
      this.stats.lines++;
      out.push({ format: 'plain', text: read.text, time: null, stream: null, truncated: false });
      return;
    }
    const key = `${source}\u0000${read.stream}`;
    let held = this.pending.get(key);
    if (held || read.partial) this.stats.partialRecords++;
    // Docker never writes a newline inside "log"; if one is there, it ends a line as in a plain file.
    const segments = read.text.includes('\n') ? read.text.split('\n') : [read.text];
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i] as string;
      const last = i === segments.length - 1;
      if (last && read.partial) {
        if (!held) {
          held = { text: '', bytes: 0, time: read.time, truncated: false };
          this.hold(key, held);
        }
        this.append(held, segment);
        continue;
      }
      let line: Pending;
      if (held) {
        this.append(held, segment);
        line = held;
        this.pending.delete(key);
        held = undefined;
      } else {
        line = { text: '', bytes: 0, time: read.time, truncated: false };
        this.append(line, segment);
      }
      this.emit(line, read.format, read.stream, out);
    }
  }

  /**
   * The next line completed on `stream` of `source` began before what this reader sees (edgeban
   * resumed between its records): skip it, since its tail alone is not what the program wrote and
   * could read like a line of its own (a client-chosen end of a long line).
   */
  skipContinuation(source: string, stream: LogStream): void {
    this.hold(`${source}\u0000${stream}`, { text: '', bytes: this.maxLineBytes, time: 0, truncated: true, orphan: true });
  }

  /** Unfinished lines held (for status). */
  get pendingLines(): number {
    return this.pending.size;
  }

  private hold(key: string, held: Pending): void {
    if (this.pending.size >= this.maxPending) {
      const oldest = this.pending.keys().next().value;
      if (oldest !== undefined) {
        this.pending.delete(oldest);
        this.stats.evicted++;
      }
    }
    this.pending.set(key, held);
  }

  /** Adds a part, keeping at most maxLineBytes: the rest of an over-long line is skipped as it streams past. */
  private append(line: Pending, part: string): void {
    if (line.truncated || part === '') return;
    const room = this.maxLineBytes - line.bytes;
    const bytes = Buffer.byteLength(part, 'utf8');
    if (bytes <= room) {
      line.text += part;
      line.bytes += bytes;
      return;
    }
    const encoded = Buffer.from(part, 'utf8');
    const cut = encoded.subarray(0, room);
    line.text += cut.subarray(0, completeUtf8Length(cut)).toString('utf8');
    line.bytes = this.maxLineBytes;
    line.truncated = true;
  }

  private emit(line: Pending, format: 'docker' | 'cri', stream: LogStream, out: UnwrappedLine[]): void {
    if (line.orphan) {
      this.stats.orphanTails++;
      return;
    }
    // CRLF ends a line in a plain file too.
    const text = line.text.endsWith('\r') && !line.truncated ? line.text.slice(0, -1) : line.text;
    this.stats.lines++;
    if (line.truncated) this.stats.truncated++;
    out.push({ format, text, time: line.time, stream, truncated: line.truncated });
  }
}
