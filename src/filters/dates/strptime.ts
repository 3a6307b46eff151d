/**
 * fail2ban's strptime subset (strptime.py): `%` directives expand to named-group regexes (Python
 * syntax, translated later), and the matched groups become an epoch time with fail2ban's rules
 * (two-digit years in this century, missing year inferred against now, fractions dropped).
 */
import { daysFromCivil, daysInMonth, LocalTime, zoneOffsetMinutes } from './timezone.ts';

/** The reference-time fields of a TimeContext. */
export function timeContext(now: number, defaultOffsetMinutes: number | null): TimeContext {
  const nowNaive = LocalTime.naiveOf(now);
  const d = new Date(nowNaive * 1000);
  return { now, nowNaive, nowYear: d.getUTCFullYear(), nowMonth: d.getUTCMonth() + 1, nowDay: d.getUTCDate(), defaultOffsetMinutes, local: new LocalTime() };
}

const TZ_ABBR_RE = '[A-Z](?:[A-Z]{2,4})?';

const BASE_TIME_RE: Record<string, string> = {
  d: String.raw`(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])`,
  f: String.raw`(?P<f>[0-9]{1,6})`,
  H: String.raw`(?P<H>[0-1]?\d|2[0-3])`,
  I: String.raw`(?P<I>1[0-2]|0[1-9]|[1-9])`,
  G: String.raw`(?P<G>\d\d\d\d)`,
  j: String.raw`(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`,
  m: String.raw`(?P<m>0?[1-9]|1[0-2])`,
  M: String.raw`(?P<M>[0-5]?\d)`,
  S: String.raw`(?P<S>[0-5]?\d|6[0-1])`,
  U: String.raw`(?P<U>5[0-3]|[0-4]\d|\d)`,
  w: String.raw`(?P<w>[0-6])`,
  u: String.raw`(?P<u>[1-7])`,
  V: String.raw`(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)`,
  y: String.raw`(?P<y>\d\d)`,
  Y: String.raw`(?P<Y>\d{4})`,
  z: String.raw`(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)`,
  A: '(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)',
  a: '(?P<a>mon|tue|wed|thu|fri|sat|sun)',
  B: '(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)',
  b: '(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)',
  p: '(?P<p>am|pm)',
  Z: '(?P<Z>Z|[A-Z]{3,5})',
  '%': '%',
  W: String.raw`(?P<W>5[0-3]|[0-4]\d|\d)`,
  c: String.raw`(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)`,
  x: String.raw`(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)`,
  X: String.raw`(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)`,
  k: String.raw` ?(?P<H>[0-2]?\d)`,
  l: String.raw` ?(?P<I>1?\d)`,
  ExZ: `(?P<Z>${TZ_ABBR_RE})`,
  Exz: String.raw`(?P<z>(?:${TZ_ABBR_RE})?[+-][01]\d(?::?\d{2})?|${TZ_ABBR_RE})`,
  Exd: String.raw`(?P<d>[1-2]\d|0[1-9]|3[0-1])`,
  Exm: String.raw`(?P<m>0[1-9]|1[0-2])`,
  ExH: String.raw`(?P<H>[0-1]\d|2[0-3])`,
  Exk: String.raw` ?(?P<H>[0-1]?\d|2[0-3])`,
  Exl: String.raw` ?(?P<I>1[0-2]|\d)`,
  ExM: String.raw`(?P<M>[0-5]\d)`,
  ExS: String.raw`(?P<S>[0-5]\d|6[0-1])`,
  Exy: String.raw`(?P<y>\d{2})`,
};

const DIRECTIVE_RE = /%(%|ExZ|Exz|Exd|Exm|ExH|Exk|Exl|ExM|ExS|ExY|Exy|[dfHIGjmMSUwuVyYzAaBbpZWcxXkl])/g;

/**
 * `%ExY`: four-digit years of this century from 2000 up to three years ahead, like fail2ban-regex
 * (which widens the range back to 2001 so old sample logs still parse).
 */
export function exYearRegex(nowYear: number): string {
  const prefixes = new Set<string>();
  for (let y = 2000; y <= nowYear + 3; y += 10) prefixes.add(String(y).slice(0, 3));
  prefixes.add(String(nowYear + 3).slice(0, 3));
  return `(?P<Y>(?:${[...prefixes].sort().join('|')})\\d)`;
}

export class DatePatternError extends Error {
  constructor(pattern: string, reason: string) {
    super(`invalid datepattern ${JSON.stringify(pattern)}: ${reason}`);
    this.name = 'DatePatternError';
  }
}

/** Replaces `%X` directives with fail2ban's regexes (Python syntax). */
export function expandDirectives(pattern: string, nowYear: number): string {
  const out = pattern.replace(DIRECTIVE_RE, (_m, key: string) => {
    if (key === 'ExY') return exYearRegex(nowYear);
    return BASE_TIME_RE[key] ?? '';
  });
  // Python formats the pattern with `%`, so any percent not part of a directive is an error.
  const stray = pattern.replace(DIRECTIVE_RE, '').indexOf('%');
  if (stray !== -1) throw new DatePatternError(pattern, 'unescaped percent sign (write %% for a literal %)');
  return out;
}

const MONTHS_ABBR = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTHS_FULL = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];

/** The strptime fields a date match produced (undefined: not in the pattern or did not take part). */
export interface DateGroups {
  y?: string | undefined;
  Y?: string | undefined;
  m?: string | undefined;
  B?: string | undefined;
  b?: string | undefined;
  d?: string | undefined;
  H?: string | undefined;
  I?: string | undefined;
  M?: string | undefined;
  S?: string | undefined;
  j?: string | undefined;
  z?: string | undefined;
  Z?: string | undefined;
  p?: string | undefined;
}

/** The fields groupsToEpoch reads. */
export const DATE_FIELDS = ['y', 'Y', 'm', 'B', 'b', 'd', 'H', 'I', 'M', 'S', 'j', 'z', 'Z', 'p'] as const;

export interface TimeContext {
  /** Reference time, epoch seconds: a year-less stamp is never more than a day ahead of it. */
  now: number;
  /** `now` as naive local wall-clock seconds, and its civil date (fail2ban compares in local time). */
  nowNaive: number;
  nowYear: number;
  nowMonth: number;
  nowDay: number;
  /** Offset in minutes for stamps without a zone (`logtimezone`); null = the process's local time. */
  defaultOffsetMinutes: number | null;
  local: LocalTime;
}

/**
 * Epoch seconds for the groups of a date match, as fail2ban's reGroupDictStrptime computes them;
 * null when the fields do not form a valid date (fail2ban logs and drops the time).
 */
export function groupsToEpoch(g: DateGroups, ctx: TimeContext): number | null {
  let year: number | null = null;
  let month: number | null = null;
  let day: number | null = null;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let tzoffset: number | null = null;
  let julian: number | null = null;
  if (g.y !== undefined) {
    year = Number(g.y);
    if (year <= 2000) year += 2000;
  }
  if (g.Y !== undefined) year = Number(g.Y);
  if (g.m !== undefined) month = Number(g.m);
  if (g.B !== undefined) month = MONTHS_FULL.indexOf(g.B.toLowerCase()) + 1;
  if (g.b !== undefined) month = MONTHS_ABBR.indexOf(g.b.toLowerCase()) + 1;
  if (g.d !== undefined) day = Number(g.d);
  if (g.H !== undefined) hour = Number(g.H);
  if (g.I !== undefined) {
    hour = Number(g.I);
    const ampm = (g.p ?? '').toLowerCase();
    if (ampm === '' || ampm === 'am') {
      if (hour === 12) hour = 0;
    } else if (ampm === 'pm' && hour !== 12) hour += 12;
  }
  if (g.M !== undefined) minute = Number(g.M);
  if (g.S !== undefined) second = Number(g.S);
  if (g.j !== undefined) julian = Number(g.j);
  const zone = g.z ?? g.Z;
  if (zone !== undefined) {
    try {
      tzoffset = zoneOffsetMinutes(zone);
    } catch {
      return null;
    }
  }
  if (month === 0 || month === -1) return null;
  const nowNaive = ctx.nowNaive;
  let assumeYear = false;
  if (year === null) {
    year = ctx.nowYear;
    assumeYear = true;
  }
  if ((month === null || day === null) && julian !== null) {
    const date = new Date(Date.UTC(year, 0, julian));
    year = date.getUTCFullYear();
    month = date.getUTCMonth() + 1;
    day = date.getUTCDate();
  }
  let assumeToday = false;
  if (month === null && day === null) {
    month = ctx.nowMonth;
    day = ctx.nowDay;
    assumeToday = true;
  }
  // datetime() rejects a partial date (a day without month or the reverse) and invalid fields.
  if (month === null || day === null) return null;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return null;
  let naive = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  if (tzoffset === null && ctx.defaultOffsetMinutes !== null) tzoffset = ctx.defaultOffsetMinutes;
  if (tzoffset !== null) naive -= tzoffset * 60;
  // fail2ban compares these naive values with naive local now, whatever the zone; so do we.
  if (assumeToday && naive > nowNaive) naive -= 86400;
  if (assumeYear && naive > nowNaive + 86400) {
    const prev = year - 1;
    if (day > daysInMonth(prev, month)) return null;
    naive = daysFromCivil(prev, month, day) * 86400 + hour * 3600 + minute * 60 + second - (tzoffset ?? 0) * 60;
  }
  return tzoffset !== null ? naive : ctx.local.toEpoch(naive);
}
