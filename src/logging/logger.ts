import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths pino censors wherever they appear in a log object. */
export const REDACTED_PATHS = [
  'secret', 'key', 'apiKey', 'apiSecret', 'token', 'password', 'authorization',
  '*.secret', '*.key', '*.apiKey', '*.apiSecret', '*.token', '*.password', '*.authorization',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; stderr by default so stdout stays for command output. */
  destination?: DestinationStream;
  /**
   * Exact secret strings to scrub from every line, whatever field or message holds them. Read at
   * every write, so secrets found later (keys and tokens written in jail.local) can be appended.
   */
  secrets?: readonly string[];
}

/**
 * JSON logger with two layers against leaked credentials: field redaction by path, and a
 * final scrub of the serialized line for the configured secret values (a secret may hide in a
 * message or an error text, where path redaction cannot see it).
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = options.secrets ?? [];
  const sink = options.destination ?? pino.destination({ fd: 2, sync: true });
  const destination: DestinationStream = {
    write(line: string) {
      sink.write(secrets.length === 0 ? line : scrubSecrets(line, secrets));
    },
  };
  return pino({
    level: options.level ?? process.env.EDGEBAN_LOG_LEVEL ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: undefined,
  }, destination);
}

export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4 && out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out;
}

/**
 * The logger of a one-shot command (reconcile, doctor, setup-opnsense): its report goes to stdout,
 * so the default `info` chatter is lowered to warnings; an explicit debug level is kept.
 */
export function createCommandLogger(env: { logLevel: string; secrets: readonly string[] }): Logger {
  return createLogger({ level: env.logLevel === 'info' ? 'warn' : env.logLevel, secrets: env.secrets });
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
