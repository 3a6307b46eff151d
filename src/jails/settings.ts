import { z } from 'zod';
import type { EdgebanEnv } from '../config/env.ts';
import { ConfigError, quotable } from '../config/fail2ban/config-error.ts';
import { parseDuration } from '../config/fail2ban/duration.ts';
import type { SourceRef } from '../config/fail2ban/filter-definition.ts';
import { boolText, type JailDefinition } from '../config/fail2ban/jail-definition.ts';
import { InvalidAddressError } from '../net/address.ts';
import { LOG_FORMATS, type LogFormat } from '../sources/container-log-format.ts';
import { DEFAULT_INCREMENT, type BanTimeFormula, type BanTimeIncrement } from './ban-time.ts';
import { parseCidr, type Cidr } from './cidr.ts';
import { DEFAULT_TRACKER_CAP } from './failure-tracker.ts';
import { jailTargets, type JailTarget } from './targets.ts';

/** What the jail runtime needs of a jail, validated; built from a JailDefinition. */
export interface JailSettings {
  name: string;
  maxretry: number;
  findtimeSec: number;
  /** Seconds; -1 = permanent. */
  bantimeSec: number;
  increment: BanTimeIncrement;
  ignoreip: readonly Cidr[];
  ignoreself: boolean;
  /** edgeban: IPv6 offenders are banned (and counted) by their covering /ipv6prefix. */
  ipv6prefix: number;
  /** edgeban: send private (RFC 1918, ULA) offenders to the edge too; off by default. */
  banprivate: boolean;
  /** edgeban: cap on addresses counted at once. */
  maxtracked: number;
  /**
   * edgeban: how the jail's log lines are wrapped: plain files, Docker's json-file driver, CRI
   * (containerd, CRI-O) or auto (per line). Absent means plain.
   */
  logformat?: LogFormat;
  /** Ledger targets (one per opnsense action; none for a jail that only notifies). */
  targets: readonly JailTarget[];
}

/** fail2ban's jail.conf suggestion, used when ignoreip is not set. */
export const DEFAULT_IGNOREIP = ['127.0.0.1/8', '::1'];

// Whitespace-free forms of the two formulas fail2ban's jail.conf documents.
const FORMULAS: Record<string, BanTimeFormula> = {
  'ban.Time*(1<<(ban.Countifban.Count<20else20))*banFactor': 'default',
  'ban.Time*math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)': 'exponential',
};

const logFormatText = z.string().trim().toLowerCase().pipe(z.enum(LOG_FORMATS));
const intText = z
  .string()
  .trim()
  .regex(/^\+?\d+$/)
  .transform(Number);
const numberText = z
  .string()
  .trim()
  .regex(/^[+]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i)
  .transform(Number)
  .pipe(z.number().finite().positive());
const durationText = z.string().transform((v, ctx) => {
  const seconds = parseDuration(v);
  if (seconds === null || seconds < 0) {
    ctx.addIssue({ code: 'custom', message: 'not a duration' });
    return z.NEVER;
  }
  return seconds;
});
const multipliersText = z
  .string()
  .trim()
  .transform((v, ctx) => {
    const words = v === '' ? [] : v.split(/\s+/);
    if (!words.every((w) => /^\d+$/.test(w))) {
      ctx.addIssue({ code: 'custom', message: 'not whole numbers' });
      return z.NEVER;
    }
    return words.map(Number);
  });

/**
 * Reads the runtime options of a jail. Bad values are ConfigErrors at the line that set them;
 * a value is echoed only when it looks like a number or duration (never a possible secret).
 */
export function jailSettings(jail: JailDefinition, env: Pick<EdgebanEnv, 'alias' | 'firewalls'>): JailSettings {
  const read = <T>(key: string, fallback: string, schema: z.ZodType<T>, expected: string): T => {
    const text = jail.options[key] ?? fallback;
    const result = schema.safeParse(text);
    if (result.success) return result.data;
    throw configError(jail, key, text, `expected ${expected}`);
  };
  const optional = <T>(key: string, schema: z.ZodType<T>, expected: string): T | null => {
    const text = jail.options[key];
    return text === undefined || text.trim() === '' ? null : read(key, '', schema, expected);
  };

  const formulaText = jail.options['bantime.formula'];
  let formula: BanTimeFormula = 'default';
  if (formulaText !== undefined && formulaText.trim() !== '') {
    const known = FORMULAS[formulaText.replace(/\s+/g, '')];
    if (known === undefined) {
      throw configError(
        jail,
        'bantime.formula',
        '',
        "edgeban does not evaluate Python; use fail2ban's default formula (leave it unset), its exponential one (ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)), or bantime.multipliers",
      );
    }
    formula = known;
  }
  const increment: BanTimeIncrement = {
    ...DEFAULT_INCREMENT,
    enabled: read('bantime.increment', 'false', boolText, 'a boolean (true/false, yes/no, on/off, 1/0)'),
    factor: read('bantime.factor', '1', numberText, 'a positive number'),
    formula,
    multipliers: optional('bantime.multipliers', multipliersText, 'whole numbers separated by spaces, such as 1 2 4 8 16') ?? [],
    maxtimeSec: optional('bantime.maxtime', durationText, 'a duration such as 1w, 5d, 86400'),
    rndtimeSec: optional('bantime.rndtime', durationText, 'a duration such as 30m, 600'),
    overalljails: read('bantime.overalljails', 'false', boolText, 'a boolean (true/false, yes/no, on/off, 1/0)'),
  };

  const ignoreip = 'ignoreip' in jail.options ? jail.ignoreip : DEFAULT_IGNOREIP;
  const ignoreNets = ignoreip.map((entry) => {
    try {
      return parseCidr(entry);
    } catch (error) {
      if (!(error instanceof InvalidAddressError)) throw error;
      const looksLikeName = /^[a-z0-9.-]+$/i.test(entry) && /[a-z]/i.test(entry);
      throw configError(
        jail,
        'ignoreip',
        '',
        looksLikeName
          ? `"${entry.slice(0, 80)}" is a host name; edgeban does not resolve names in ignoreip (a name can change to any address): give its addresses or networks`
          : `"${entry.slice(0, 80)}" is not an address or network (such as 192.0.2.7, 198.51.100.0/24, 2001:db8::/48)`,
      );
    }
  });

  return {
    name: jail.name,
    maxretry: jail.maxretry,
    findtimeSec: jail.findtime,
    bantimeSec: jail.bantime,
    increment,
    ignoreip: ignoreNets,
    ignoreself: read('ignoreself', 'true', boolText, 'a boolean (true/false, yes/no, on/off, 1/0)'),
    ipv6prefix: read('ipv6prefix', '128', intText.pipe(z.number().int().min(32).max(128)), 'a prefix length from 32 to 128 (64 bans the covering /64)'),
    banprivate: read('banprivate', 'false', boolText, 'a boolean (true/false, yes/no, on/off, 1/0)'),
    maxtracked: read(
      'maxtracked',
      String(DEFAULT_TRACKER_CAP),
      intText.pipe(z.number().int().min(1).max(100_000_000)),
      'a whole number of addresses from 1 to 100000000',
    ),
    logformat: read(
      'logformat',
      'plain',
      logFormatText,
      `one of ${LOG_FORMATS.join(', ')} (docker: json-file logs in /var/lib/docker/containers; cri: containerd and CRI-O logs in /var/log/pods)`,
    ),
    targets: jailTargets(jail, env),
  };
}

function configError(jail: JailDefinition, key: string, text: string, what: string): ConfigError {
  const source: SourceRef = jail.sources[key] ?? { file: '<unknown>', line: 0, key };
  const quoted = text === '' ? null : quotable(text);
  const shown = quoted === null ? '' : `, not "${quoted}"`;
  return new ConfigError(`${what}${shown} (jail ${jail.name})`, { file: source.file, line: source.line, key });
}
