import { pino, type Logger, type DestinationStream } from 'pino';
import type { SecretScrubber } from './secret-scrubber.ts';

export type { Logger };

/** Paths pino censors wherever they appear in a log object. */
export const REDACTED_PATHS = [
  'secret',
  'key',
  'apiKey',
  'apiSecret',
  'token',
  'password',
  'authorization',
  '*.secret',
  '*.key',
  '*.apiKey',
  '*.apiSecret',
  '*.token',
  '*.password',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; stderr by default so stdout stays for command output. */
  destination?: DestinationStream;
  /** Scrubs every line; secrets added to it later (keys and tokens written in jail.local) are hidden from then on. */
  scrubber?: SecretScrubber;
  /**
   * `json` (one pino object per line, for log collectors) or `pretty` (one human line per event,
   * fail2ban-style). Default: pretty when stderr is a terminal and no destination is given.
   */
  format?: 'pretty' | 'json' | null;
}

/**
 * JSON logger with two layers against leaked credentials: field redaction by path, and a
 * final scrub of the serialized line for the configured secret values (a secret may hide in a
 * message or an error text, where path redaction cannot see it).
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const scrubber = options.scrubber;
  const sink = options.destination ?? pino.destination({ fd: 2, sync: true });
  const pretty = (options.format ?? (options.destination === undefined && process.stderr.isTTY ? 'pretty' : 'json')) === 'pretty';
  const destination: DestinationStream = {
    write(line: string) {
      // Scrubbed after formatting: a secret JSON escapes in the object would be plain in a pretty line.
      const text = pretty ? prettyLine(line) : line;
      sink.write(scrubber ? scrubber.scrub(text) : text);
    },
  };
  return pino(
    {
      level: options.level ?? process.env.EDGEBAN_LOG_LEVEL ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: undefined,
    },
    destination,
  );
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * One pino JSON line as `2026-01-31 14:05:09.123 INFO  [dovecot] Ban 203.0.113.5 key=value…`:
 * local time (the container's TZ), level, message, then the other fields; an error by its message.
 */
export function prettyLine(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const { level, time, msg, ...fields } = record;
  const d = new Date(typeof time === 'number' ? time : Date.now());
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  const name = (typeof level === 'number' ? LEVEL_NAMES[level] : undefined) ?? String(level);
  let out = `${stamp} ${name.padEnd(5)} ${typeof msg === 'string' ? msg : ''}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const shown = isErrorObject(value) ? value.message : value;
    out += ` ${key}=${typeof shown === 'string' && /^[^\s"=]+$/.test(shown) ? shown : JSON.stringify(shown)}`;
  }
  return `${out}\n`;
}

function isErrorObject(value: unknown): value is { message: string } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string' && 'stack' in value;
}

/**
 * The logger of a one-shot command (reconcile, doctor, setup-opnsense): its report goes to stdout,
 * so the default `info` chatter is lowered to warnings; an explicit debug level is kept.
 */
export function createCommandLogger(env: { logLevel: string; logFormat: 'pretty' | 'json' | null }, scrubber: SecretScrubber): Logger {
  return createLogger({ level: env.logLevel === 'info' ? 'warn' : env.logLevel, scrubber, format: env.logFormat });
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
