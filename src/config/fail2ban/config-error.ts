import { UserFacingError } from '../../util/errors.ts';

/**
 * A configuration mistake, located: 'FILE:LINE: [section] key: what is wrong'. Exit code 2, so the
 * daemon stops before anything touches the network. Callers must never put secret values
 * (API keys, tokens) into `what`: name the key, not its value.
 */
export class ConfigError extends UserFacingError {
  readonly file: string;
  readonly line: number | null;
  readonly key: string | null;
  readonly section: string | null;

  constructor(what: string, where: { file: string; line?: number | null; section?: string | null; key?: string | null }) {
    const line = where.line ?? null;
    const section = where.section ?? null;
    const key = where.key ?? null;
    const location = line === null ? where.file : `${where.file}:${line}`;
    const subject = [section === null ? null : `[${section}]`, key].filter((part) => part !== null).join(' ');
    super(subject === '' ? `${location}: ${what}` : `${location}: ${subject}: ${what}`, 2);
    this.name = 'ConfigError';
    this.file = where.file;
    this.line = line;
    this.key = key;
    this.section = section;
  }
}

/**
 * The value as an error may quote it (`not "many"`), or null. Only short, plain values are
 * quoted: a key or secret typed into the wrong field (API keys are 80 characters, tokens 32+)
 * must never reach a log or a terminal through an error message.
 */
export function quotable(text: string): string | null {
  const value = text.trim();
  return value.length <= 12 && /^[\w .:+\-*/()]*$/.test(value) ? value : null;
}
