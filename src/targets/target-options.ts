/**
 * A jail action parameter a backend's `parseOptions` refuses. Jail parsing turns it into a
 * ConfigError with the action's file and line and this key. (Any error with a string `key` is
 * read the same way, so backends need not import this.)
 */
export class TargetOptionError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.name = 'TargetOptionError';
    this.key = key;
  }
}

/**
 * What jail.conf's `action_` family and fail2ban's action machinery pass to every action
 * (`%(banaction)s[port=…, protocol=…, chain=…]`): meaningful to local firewall actions, not to a
 * backend list that blocks the address as a whole. The registry drops them before a kind's
 * `parseOptions`, which then refuses any other unknown key (a misspelt `pasword=` is not dropped).
 */
export const FAIL2BAN_ACTION_PARAMS: ReadonlySet<string> = new Set([
  'actname',
  'port',
  'protocol',
  'chain',
  'bantime',
  'timeout',
  'family',
  'blocktype',
  'returntype',
  'banaction',
  'banaction_allports',
]);

/** `true`/`false` as fail2ban spells flags (1, yes, on…); an empty value is `fallback`. */
export function flagParam(params: Readonly<Record<string, string>>, key: string, fallback: boolean): boolean {
  const value = (params[key] ?? '').trim();
  if (value === '') return fallback;
  if (/^(?:1|true|yes|on)$/i.test(value)) return true;
  if (/^(?:0|false|no|off)$/i.test(value)) return false;
  throw new TargetOptionError(key, `${key}: expected true or false`);
}

/** A positive integer parameter within bounds; an empty value is `fallback`. */
export function intParam(params: Readonly<Record<string, string>>, key: string, fallback: number, max: number): number {
  const value = (params[key] ?? '').trim();
  if (value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > max)
    throw new TargetOptionError(key, `${key}: expected a whole number from 1 to ${max}, not "${value.slice(0, 20)}"`);
  return parsed;
}

/** A required parameter, trimmed. */
export function requiredParam(params: Readonly<Record<string, string>>, key: string, what: string): string {
  const value = (params[key] ?? '').trim();
  if (value === '') throw new TargetOptionError(key, `${key}= is missing (${what})`);
  return value;
}
