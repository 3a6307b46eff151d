import { readFileSync } from 'node:fs';
import type { ParseArgsOptionsConfig } from 'node:util';
import { z } from 'zod';
import { isLoopbackHost } from '../simulator/http-util.ts';
import { UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

/** What every `edgeban simulate --kind …` shares: flags, TLS files, start-up errors and running until a signal. */

export const wholeNumber = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `--${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `--${name} must be between ${min} and ${max}`);

export const LISTEN_SCHEMAS = {
  port: wholeNumber('port', 0, 65535),
  host: z.string().refine(isLoopbackHost, '--host must be a loopback address (127.0.0.1 or ::1)').default('127.0.0.1'),
};

export const ERROR_RATE_SCHEMA = z
  .string()
  .regex(/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/, '--error-rate must be a number from 0 to 1')
  .transform(Number)
  .optional();

export const TLS_FLAGS = { 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' } } as const;
export const TLS_SCHEMAS = { 'tls-cert': z.string().min(1).optional(), 'tls-key': z.string().min(1).optional() };

export function checkTlsPair(o: { 'tls-cert'?: string | undefined; 'tls-key'?: string | undefined }, ctx: z.RefinementCtx): void {
  if ((o['tls-cert'] === undefined) !== (o['tls-key'] === undefined))
    ctx.addIssue({ code: 'custom', path: ['tls-cert'], message: '--tls-cert and --tls-key go together' });
}

/** The certificate and key files --tls-cert/--tls-key name, read; undefined for plain HTTP. */
export function readTlsFlags(o: { 'tls-cert'?: string | undefined; 'tls-key'?: string | undefined }): { cert: string; key: string } | undefined {
  if (o['tls-cert'] === undefined || o['tls-key'] === undefined) return undefined;
  return { cert: readPem(o['tls-cert'], '--tls-cert'), key: readPem(o['tls-key'], '--tls-key') };
}

function readPem(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserFacingError(`${option}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/**
 * A simulate command's flags parsed (with --port and --host added), --port required, then checked
 * by `schema`; its first issue becomes the error. Null when --help printed the usage.
 */
export function parseSimulateFlags<S extends z.ZodType>(argv: string[], flags: ParseArgsOptionsConfig, usage: string, schema: S): z.output<S> | null {
  const values = parseCommandFlags(argv, { port: { type: 'string' }, host: { type: 'string' }, ...flags }, usage);
  if (values === null) return null;
  const { help: _help, ...given } = values;
  if (given.port === undefined) throw new UserFacingError(`--port is required (0 picks a free port)\n${usage}`);
  const parsed = schema.safeParse(given);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const option = issue?.path[0] !== undefined ? `--${String(issue.path[0])}` : 'options';
    const message = issue?.message ?? 'invalid options';
    throw new UserFacingError(message.startsWith('--') ? message : `${option}: ${message}`);
  }
  return parsed.data;
}

/** Starts a simulator; a failed listen is an error naming the address (exit 1). */
export async function startSimulator<T>(host: string, port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    if (error instanceof UserFacingError) throw error;
    throw new UserFacingError(`cannot listen on ${host}:${port}: ${(error as Error).message}`, 1);
  }
}

/** Serves until SIGINT or SIGTERM, then stops the simulator; the command's exit code. */
export async function serveUntilSignal(simulator: { stop(): Promise<void> }): Promise<number> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`edgeban simulate: ${signal}, stopping\n`);
  await simulator.stop();
  return 0;
}
