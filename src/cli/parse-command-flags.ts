import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { UserFacingError } from '../util/errors.ts';

const HELP = { help: { type: 'boolean', short: 'h', default: false } } as const;

/**
 * A subcommand's flags, parsed strictly (no positionals; -h/--help added): a wrong flag is a
 * UserFacingError that carries the usage. Null when --help asked for the usage, now printed.
 */
export function parseCommandFlags<const T extends ParseArgsOptionsConfig>(argv: string[], options: T, usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, ...HELP }, strict: true, allowPositionals: false });
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\n${usage}`);
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(`${usage}\n`);
    return null;
  }
  return parsed.values;
}
