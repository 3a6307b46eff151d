/**
 * Finds the time stamp of a log line the way fail2ban's DateDetector does: its default templates
 * (line-anchored variants first), or the filter's `datepattern` list; the template that matched
 * last is tried first, so a log in one format costs one regex search per line.
 */
import { zoneOffsetMinutes } from './timezone.ts';
import { isAsciiText } from '../ascii.ts';
import { groupsToEpoch, timeContext, type TimeContext } from './strptime.ts';
import {
  epochTemplate,
  LINE_BEGIN,
  LINE_END,
  patternTemplate,
  RE_EPOCH_PATTERN,
  tai64nTemplate,
  templateTime,
  unboundPattern,
  dateSpan,
  checkTemplate,
  type DateTemplate,
} from './templates.ts';

/** fail2ban's DEFAULT_TEMPLATES, in its order. */
const DEFAULT_PATTERNS = [
  String.raw`%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`,
  String.raw`(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
  String.raw`(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?`,
  String.raw`%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S`,
  String.raw`%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`,
  String.raw`%m/%d/%ExY:%H:%M:%S`,
  String.raw`%m-%d-%ExY %k:%M:%S(?:\.%f)?`,
  'EPOCH',
  String.raw`{^LN-BEG}%H:%M:%S`,
  String.raw`^<%m/%d/%Exy@%H:%M:%S>`,
  String.raw`%Exy%Exm%Exd  ?%H:%M:%S`,
  String.raw`%b %d, %ExY %I:%M:%S %p`,
  String.raw`^%b-%d-%Exy %k:%M:%S`,
  String.raw`%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?`,
  String.raw`(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
  String.raw`(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
  'TAI64N',
];

const ISO8601 = DEFAULT_PATTERNS[0] as string;

/** One template from a datepattern key, as _getPatternTemplate resolves it. */
function keyTemplate(pattern: string, nowYear: number): DateTemplate {
  const key = pattern.includes('%') ? pattern : pattern.toUpperCase();
  if (key.includes('EPOCH')) {
    if (RE_EPOCH_PATTERN.test(pattern)) return epochTemplate({ pattern, longForm: key.includes('LEPOCH') });
    if (key === 'EPOCH' || key === '{^LN-BEG}EPOCH' || key === '^EPOCH') return epochTemplate({ lineBeginOnly: key !== 'EPOCH' });
    if (key === 'LEPOCH' || key === '{^LN-BEG}LEPOCH' || key === '^LEPOCH') return epochTemplate({ lineBeginOnly: key !== 'LEPOCH', longForm: true });
  }
  if (key === 'TAI64N' || key === '{^LN-BEG}TAI64N' || key === '^TAI64N') return tai64nTemplate(key !== 'TAI64N');
  // "ISO8601" is edgeban's name for fail2ban's first default template (ISO 8601 with fraction and zone).
  if (key === 'ISO8601' || key === '{^LN-BEG}ISO8601' || key === '^ISO8601') {
    return patternTemplate(key === 'ISO8601' ? ISO8601 : `{^LN-BEG}${ISO8601}`, nowYear);
  }
  return patternTemplate(pattern, nowYear);
}

interface DefaultSet {
  bases: DateTemplate[];
  all: DateTemplate[];
}
const defaultSets = new Map<number, DefaultSet>();

/** fail2ban's default list: anchored copies (weight 100) first, then the templates themselves. Memoised per year: templates are immutable. */
function defaultTemplates(nowYear: number): DefaultSet {
  const cached = defaultSets.get(nowYear);
  if (cached) return cached;
  const bases = DEFAULT_PATTERNS.map((p) => keyTemplate(p, nowYear));
  const anchored: DateTemplate[] = [];
  for (const [i, t] of bases.entries()) {
    if (t.name.startsWith('{^LN-BEG}') || t.name.startsWith('^')) continue;
    const p = DEFAULT_PATTERNS[i] as string;
    anchored.push(keyTemplate(t.kind === 'pattern' ? `{^LN-BEG}${p}` : `{^LN-BEG}${p}`, nowYear));
  }
  const set = { bases, all: [...anchored, ...bases] };
  defaultSets.set(nowYear, set);
  return set;
}

/** The templates a `datepattern` value selects (one pattern per line), or the defaults for null. */
export function buildTemplates(datepattern: string | null, nowYear: number): DateTemplate[] {
  const defaults = defaultTemplates(nowYear);
  if (datepattern === null) return defaults.all;
  const out: DateTemplate[] = [];
  const names = new Set<string>();
  const add = (t: DateTemplate, ignoreDup: boolean): void => {
    if (names.has(t.name)) {
      if (ignoreDup) return;
      throw new Error(`there is already a date template named ${t.name}`);
    }
    names.add(t.name);
    out.push(t);
  };
  const lines = datepattern
    .split(/\n+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const pattern of lines) {
    const key = pattern.includes('%') ? pattern : pattern.toUpperCase();
    const ignoreDup = out.length > 0;
    if (key === '{^LN-BEG}' || key === '{DEFAULT}') {
      for (const t of defaults.all) if (key === '{DEFAULT}' || t.flags & LINE_BEGIN) add(t, ignoreDup);
    } else if (key.includes('{DATE}')) {
      for (const [i, t] of defaults.bases.entries()) {
        const inner = unboundPattern(t.kind === 'pattern' ? (DEFAULT_PATTERNS[i] as string) : t.regex);
        add(
          checkTemplate(
            patternTemplate(
              pattern.replace(/(?<!\\)\{DATE\}/gi, () => inner),
              nowYear,
            ),
          ),
          ignoreDup,
        );
      }
    } else if (key === '{NONE}') {
      add(patternTemplate('{UNB}^', nowYear), ignoreDup);
    } else {
      add(checkTemplate(keyTemplate(pattern, nowYear)), false);
    }
  }
  return out;
}

export interface DateMatch {
  /** Span of the date text in the line (fail2ban removes it before the failregex). */
  start: number;
  end: number;
  /** Epoch seconds; null when the text matched a template but is not a valid date. */
  time: number | null;
}

function codeAt(line: string, index: number): number {
  return index >= 0 && index < line.length ? line.charCodeAt(index) : -1;
}

export interface DateDetectorOptions {
  datepattern: string | null;
  /** `logtimezone`; null = the process's local zone, as fail2ban. */
  logtimezone: string | null;
  /** Reference time (epoch seconds) for stamps without a year or a date. */
  now: number;
}

export class DateDetector {
  private readonly templates: DateTemplate[];
  private ctx: TimeContext;
  private readonly offsetMinutes: number | null;
  private last = -1;
  // Char codes around the last date (-1: line edge), for the same-place check.
  private lastBefore = -1;
  private lastAfter = -1;
  // The last template's regexes, resolved once rather than per line.
  private lastLocator: { ascii: RegExp; unicode: RegExp } | null = null;

  constructor(options: DateDetectorOptions) {
    // fail2ban builds %ExY's year range once from the real clock (strptime._updateTimeRE), not from
    // the reference time, which only places year-less stamps: a --now in 2005 still reads 2026.
    this.templates = buildTemplates(options.datepattern, new Date().getUTCFullYear());
    this.offsetMinutes = options.logtimezone === null ? null : zoneOffsetMinutes(options.logtimezone);
    this.ctx = timeContext(options.now, this.offsetMinutes);
  }

  /** Moves the reference time (a long-running reader calls this as time passes). */
  setNow(now: number): void {
    if (now === this.ctx.now) return;
    this.ctx = timeContext(now, this.offsetMinutes);
    // Cached conversions depend on now (year inference): forget them.
    this.lastTemplate = null;
    this.minuteTemplate = null;
  }

  get templateNames(): string[] {
    return this.templates.map((t) => t.name);
  }

  /** Span and time of the date found by the last find() that returned true. */
  start = 0;
  end = 0;
  time: number | null = null;

  /** Finds the date in `line`; `ascii` says the line has no non-ASCII characters (caller may know it). */
  match(line: string, ascii = isAsciiText(line)): DateMatch | null {
    return this.find(line, ascii) ? { start: this.start, end: this.end, time: this.time } : null;
  }

  /** Allocation-free form of match(): the result is in start, end and time. */
  find(line: string, ascii: boolean): boolean {
    const templates = this.templates;
    if (this.last >= 0) {
      const t = templates[this.last] as DateTemplate;
      const locator = this.lastLocator;
      let m = locator !== null ? (ascii ? locator.ascii : locator.unicode).exec(line) : (ascii ? t.ascii : t.unicode).exec(line);
      let located = locator !== null;
      let start = 0;
      let end = 0;
      if (m && t.groupAtEnd) {
        end = m.index + m[0].length;
        start = end - (m[1] ?? '').length;
      } else if (m && located) {
        // No indices: the date's place in the match is where its text is, if it occurs there once.
        const text = m[1] ?? '';
        const at = text === '' ? -1 : m[0].indexOf(text);
        if (at !== -1 && m[0].indexOf(text, at + 1) === -1) {
          start = m.index + at;
          end = start + text.length;
        } else {
          m = (ascii ? t.ascii : t.unicode).exec(line);
          located = false;
          if (m) [start, end] = dateSpan(t, m);
        }
      } else if (m) {
        [start, end] = dateSpan(t, m);
      }
      if (m) {
        // Same surroundings as last time: the same format in the same place (fail2ban's shortcut,
        // without its fixed-column restriction, which access logs with varying hosts defeat).
        if (t.flags & (LINE_BEGIN | LINE_END) || (codeAt(line, start - 1) === this.lastBefore && codeAt(line, end) === this.lastAfter)) {
          const text = m[1] ?? '';
          if (located && end > start && (t !== this.lastTemplate || text !== this.lastText)) {
            const sameMinute = this.secondOfMinute(t, text);
            if (sameMinute >= 0) return this.finishAt(t, text, (this.minuteBase as number) + sameMinute, start, end, line);
            // A new stamp: run the full regex for its fields (same match, captures included).
            const full = (ascii ? t.ascii : t.unicode).exec(line);
            if (full) return this.finish(t, full, start, end, line);
          }
          return this.finish(t, m, start, end, line);
        }
      }
    }
    // Full search: a line-anchored template wins at once; otherwise the earliest match.
    let best: RegExpExecArray | null = null;
    let bestIndex = -1;
    let bestStart = Number.MAX_SAFE_INTEGER;
    for (let i = 0; i < templates.length; i++) {
      const t = templates[i] as DateTemplate;
      const m = (ascii ? t.ascii : t.unicode).exec(line);
      if (!m) continue;
      if (t.flags & (LINE_BEGIN | LINE_END)) {
        best = m;
        bestIndex = i;
        break;
      }
      const start = dateSpan(t, m)[0];
      if (start < bestStart) {
        best = m;
        bestIndex = i;
        bestStart = start;
        if (start <= 1) break;
      }
    }
    if (!best) return false;
    const t = templates[bestIndex] as DateTemplate;
    this.last = bestIndex;
    this.lastLocator = t.locator;
    const [start, end] = dateSpan(t, best);
    return this.finish(t, best, start, end, line);
  }

  private finish(t: DateTemplate, m: RegExpExecArray, start: number, end: number, line: string): true {
    this.lastBefore = codeAt(line, start - 1);
    this.lastAfter = codeAt(line, end);
    this.start = start;
    this.end = end;
    if (end <= start) {
      this.time = null;
      return true;
    }
    // Consecutive lines often carry the same stamp: skip the conversion then.
    const text = m[1] ?? '';
    if (t !== this.lastTemplate || text !== this.lastText) {
      this.lastTemplate = t;
      this.lastText = text;
      this.lastTime = templateTime(t, m, this.ctx);
      this.learnMinute(t, m, start, text);
    }
    this.time = this.lastTime;
    return true;
  }

  private finishAt(t: DateTemplate, text: string, time: number, start: number, end: number, line: string): true {
    this.lastBefore = codeAt(line, start - 1);
    this.lastAfter = codeAt(line, end);
    this.start = start;
    this.end = end;
    this.lastTemplate = t;
    this.lastText = text;
    this.lastTime = time;
    this.time = time;
    return true;
  }

  // The last minute converted: its text around the two seconds digits, and its epoch at :00.
  private minuteTemplate: DateTemplate | null = null;
  private minutePrefix = '';
  private minuteSuffix = '';
  private minuteBase: number | null = null;

  /** Remembers a stamp's minute when every second of it converts linearly (no year or day rollover inside). */
  private learnMinute(t: DateTemplate, m: RegExpExecArray, start: number, text: string): void {
    this.minuteTemplate = null;
    const span = m.indices?.groups?.S;
    if (t.kind !== 'pattern' || span === undefined || span[1] - span[0] !== 2) return;
    const fields = t.fieldsOf(m);
    const t0 = groupsToEpoch({ ...fields, S: '00' }, this.ctx);
    const t59 = groupsToEpoch({ ...fields, S: '59' }, this.ctx);
    if (t0 === null || t59 !== t0 + 59) return;
    const at = span[0] - start;
    this.minuteTemplate = t;
    this.minutePrefix = text.slice(0, at);
    this.minuteSuffix = text.slice(at + 2);
    this.minuteBase = t0;
  }

  /** The seconds of `text` when it is the remembered minute with other seconds, else -1. */
  private secondOfMinute(t: DateTemplate, text: string): number {
    if (t !== this.minuteTemplate) return -1;
    const at = this.minutePrefix.length;
    if (text.length !== at + 2 + this.minuteSuffix.length || !text.startsWith(this.minutePrefix) || !text.endsWith(this.minuteSuffix)) return -1;
    const tens = text.charCodeAt(at) - 48;
    const ones = text.charCodeAt(at + 1) - 48;
    if (tens < 0 || tens > 5 || ones < 0 || ones > 9) return -1;
    return tens * 10 + ones;
  }

  private lastTemplate: DateTemplate | null = null;
  private lastText = '';
  private lastTime: number | null = null;
}
