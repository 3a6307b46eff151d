/**
 * Date templates as fail2ban builds them (datetemplate.py, datedetector.py): a regex whose group
 * 1 is the date text, word or line-begin boundaries added around it, and a way to turn the match
 * into epoch seconds.
 */
import { translatePythonRegex } from '../python-regex.ts';
import { DATE_FIELDS, DatePatternError, expandDirectives, groupsToEpoch, type DateGroups, type TimeContext } from './strptime.ts';

export const LINE_BEGIN = 8;
export const LINE_END = 4;
export const WORD_BEGIN = 2;
export const WORD_END = 1;

export type TemplateKind = 'pattern' | 'epoch' | 'tai64n';

export interface DateTemplate {
  readonly name: string;
  readonly flags: number;
  readonly kind: TemplateKind;
  /** Epoch in milli/microseconds (LEPOCH). */
  readonly longForm: boolean;
  /** The group holding the number (epoch templates). */
  readonly valueGroup: number;
  /**
   * Group 1 is the date text fail2ban removes from the line. When it is the last thing the regex
   * consumes (`groupAtEnd`), its span follows from the match without the costly `d` flag.
   */
  readonly groupAtEnd: boolean;
  readonly ascii: RegExp;
  readonly unicode: RegExp;
  /**
   * The same regex without the field captures (only group 1 and backreferenced groups stay):
   * finding where the date is costs no groups object; the fields are read only when the text
   * differs from the last line's; without the `d` flag, so where the date is in the match is found
   * from its text when that occurs once in it. Null when it would be the full regex again.
   */
  readonly locator: { ascii: RegExp; unicode: RegExp } | null;
  /** The Python regex, for messages and for {DATE} wrapping. */
  readonly regex: string;
  /** The strptime pattern it came from (pattern templates only). */
  readonly pattern: string | null;
  fieldsOf(m: RegExpExecArray): DateGroups;
}

// Meta-regexes of datetemplate.py, applied to the Python source of a date regex.
const RE_EXLINE_NO_BOUNDS = /^\{UNB\}/;
const RE_EXLINE_BOUND_BEG = /^\{\^LN-BEG\}/;
const RE_EXSANC_BOUND_BEG = /^\((?:\?:)?\^\|\\b\|\\W\)/;
const RE_EXEANC_BOUND_BEG = /\(\?=\\b\|\\W\|\$\)$/;
const RE_NO_WRD_BOUND_BEG = /^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)/;
const RE_NO_WRD_BOUND_END = /(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$/;
const RE_DEL_WRD_BOUNDS = /^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$/g;
const RE_LINE_BOUND_BEG = /^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))/;
const RE_LINE_BOUND_END = /(?<![\\|])(?:\$\)?)$/;
const RE_ALPHA_PATTERN = /(?<!%)%[aAbBpc]/;
const RE_GROUPED = /(?<!\(\?)(?<!\\)\((?!\?)/;
const RE_GROUP = /^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$/;
const RE_GLOBALFLAGS = /((?:^|(?!<\\))\(\?[a-z]+\))/;
export const RE_EPOCH_PATTERN = /(?<!\\)\{L?EPOCH\}/i;

type WordBound = boolean | 'start';

interface BuiltRegex {
  regex: string;
  flags: number;
  lineBeginName: boolean;
  wrapped: boolean;
}

/** Port of DateTemplate.setRegex: adds boundaries and the date group. */
function buildRegex(input: string, wordBegin: WordBound, wordEnd: boolean): BuiltRegex {
  let regex = input.trim();
  const gf = RE_GLOBALFLAGS.exec(regex);
  if (gf) regex = regex.replace(RE_GLOBALFLAGS, '');
  const boundBegin = wordBegin !== false && !RE_NO_WRD_BOUND_BEG.test(regex);
  const boundEnd = wordEnd && !RE_NO_WRD_BOUND_END.test(regex);
  const wrapped = !RE_GROUPED.test(regex);
  if (wrapped) regex = regex.replace(RE_GROUP, '$1($2)$3');
  let flags = 0;
  let lineBeginName = false;
  if (boundBegin) {
    flags |= wordBegin !== 'start' ? WORD_BEGIN : LINE_BEGIN;
    if (wordBegin !== 'start') {
      regex = String.raw`(?=^|\b|\W)` + regex;
    } else {
      regex = String.raw`^(?:\W{0,2})?` + regex;
      lineBeginName = true;
    }
  }
  if (boundEnd) {
    flags |= WORD_END;
    regex += String.raw`(?=\b|\W|$)`;
  }
  if (!(flags & LINE_BEGIN) && RE_LINE_BOUND_BEG.test(regex)) flags |= LINE_BEGIN;
  if (!(flags & LINE_END) && RE_LINE_BOUND_END.test(regex)) flags |= LINE_END;
  regex = regex.replace(RE_DEL_WRD_BOUNDS, (m) => m.replaceAll('**', ''));
  if (gf?.[1] !== undefined) regex = gf[1] + regex;
  return { regex, flags, lineBeginName, wrapped };
}

/** Compiles its regexes on first use: most of the 31 default templates never run on a given log. */
class LazyTemplate implements DateTemplate {
  readonly name: string;
  readonly flags: number;
  readonly kind: TemplateKind;
  readonly longForm: boolean;
  readonly valueGroup: number;
  readonly groupAtEnd: boolean;
  readonly regex: string;
  readonly pattern: string | null;
  private compiled: { ascii: RegExp; unicode: RegExp; fields: Array<[keyof DateGroups, number]> } | null = null;
  private locatorCompiled: { ascii: RegExp; unicode: RegExp } | null | undefined = undefined;

  constructor(name: string, built: BuiltRegex, kind: TemplateKind, longForm: boolean, pattern: string | null, valueGroup: number, groupAtEnd: boolean) {
    this.name = name;
    this.flags = built.flags;
    this.kind = kind;
    this.longForm = longForm;
    this.valueGroup = valueGroup;
    this.groupAtEnd = groupAtEnd;
    this.regex = built.regex;
    this.pattern = pattern;
  }

  private get regexes(): { ascii: RegExp; unicode: RegExp; fields: Array<[keyof DateGroups, number]> } {
    if (this.compiled === null) {
      // Pattern templates keep indices: the seconds' position lets the detector reuse a minute's conversion.
      const t = translatePythonRegex(this.regex, { indices: !this.groupAtEnd || this.kind === 'pattern' });
      const fields: Array<[keyof DateGroups, number]> = [];
      for (const f of DATE_FIELDS) {
        const index = t.groupIndex[f];
        if (index !== undefined) fields.push([f, index]);
      }
      this.compiled = { ascii: t.ascii, unicode: t.unicode, fields };
    }
    return this.compiled;
  }

  /** The strptime fields of a match of this template's full regex, read by capture index. */
  fieldsOf(m: RegExpExecArray): DateGroups {
    const g: DateGroups = {};
    for (const [name, index] of this.regexes.fields) g[name] = m[index];
    return g;
  }

  get ascii(): RegExp {
    return this.regexes.ascii;
  }
  get unicode(): RegExp {
    return this.regexes.unicode;
  }

  get locator(): { ascii: RegExp; unicode: RegExp } | null {
    if (this.locatorCompiled === undefined) {
      if (this.groupAtEnd && !this.regex.includes('(?P<')) {
        this.locatorCompiled = null;
      } else {
        // Named groups become plain ones where that leaves group 1 where it was: always when
        // edgeban wrapped the date (groupAtEnd), else when the date's own group comes first.
        const strip = this.groupAtEnd || firstGroupIsPlain(this.regex);
        const source = strip ? this.regex.replace(/\(\?P<(\w+)>/g, (whole, name: string) => (this.regex.includes(`(?P=${name})`) ? whole : '(?:')) : this.regex;
        const t = translatePythonRegex(source);
        this.locatorCompiled = { ascii: t.ascii, unicode: t.unicode };
      }
    }
    return this.locatorCompiled;
  }
}

/** Whether the first capturing group of a Python regex is an unnamed one (escapes and classes skipped). */
function firstGroupIsPlain(regex: string): boolean {
  let inClass = false;
  for (let i = 0; i < regex.length; i++) {
    const c = regex[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') {
      inClass = true;
      if (regex[i + 1] === '^') i++;
      if (regex[i + 1] === ']') i++;
    } else if (c === '(') {
      if (regex[i + 1] !== '?') return true;
      if (regex.startsWith('(?P<', i)) return false;
    }
  }
  return false;
}

function compile(
  name: string,
  built: BuiltRegex,
  kind: TemplateKind,
  longForm: boolean,
  pattern: string | null,
  valueGroup = 1,
  groupAtEnd = built.wrapped,
): DateTemplate {
  return new LazyTemplate(name, built, kind, longForm, pattern, valueGroup, groupAtEnd);
}

/** Compiles a template now, so a bad user datepattern fails when the filter loads. */
export function checkTemplate(template: DateTemplate): DateTemplate {
  try {
    void template.unicode;
  } catch (error) {
    throw new DatePatternError(template.pattern ?? template.name, (error as Error).message);
  }
  return template;
}

/** A strptime-style datepattern (`%Y-%m-%d %H:%M:%S`, `{^LN-BEG}%b %d …`, `{UNB}…`). */
export function patternTemplate(pattern: string, nowYear: number): DateTemplate {
  let p = pattern;
  let wordBegin: WordBound = true;
  let wordEnd = true;
  if (RE_EXLINE_NO_BOUNDS.test(p)) {
    p = p.replace(RE_EXLINE_NO_BOUNDS, '');
    wordBegin = wordEnd = false;
  }
  if (wordBegin !== false && RE_EXLINE_BOUND_BEG.test(p)) {
    p = p.replace(RE_EXLINE_BOUND_BEG, '');
    wordBegin = 'start';
  }
  let regex = expandDirectives(p, nowYear);
  if (RE_ALPHA_PATTERN.test(p)) regex = `(?iu)${regex}`;
  const built = buildRegex(regex, wordBegin, wordEnd);
  const name = (built.lineBeginName ? '{^LN-BEG}' : '') + p;
  return compile(name, built, 'pattern', false, pattern);
}

const EPOCH_RE = String.raw`\d{10,11}\b(?:\.\d{3,6})?`;
const LONG_EPOCH_RE = String.raw`\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`;

/**
 * Unix timestamps. fail2ban's own regex carries `(?(square)…)` conditionals inside an
 * alternation that always has an empty branch, so they never constrain the match: omitted here.
 */
export function epochTemplate(mode: { lineBeginOnly?: boolean; longForm?: boolean; pattern?: string }): DateTemplate {
  const longForm = mode.longForm === true;
  const num = longForm ? LONG_EPOCH_RE : EPOCH_RE;
  if (mode.pattern !== undefined) {
    const regex = `(${mode.pattern.replace(new RegExp(RE_EPOCH_PATTERN.source, 'gi'), () => `(${num})`)})`;
    const built = buildRegex(regex, true, true);
    return compile(mode.pattern, built, 'epoch', longForm, null, 2, false);
  }
  if (mode.lineBeginOnly !== true) {
    const built = buildRegex(String.raw`((?:^|(?<=^\[)|(?<=\baudit\())${num})`, false, true);
    return compile(longForm ? 'LongEpoch' : 'Epoch', built, 'epoch', longForm, null, 1, true);
  }
  const built = buildRegex(`(${num})`, 'start', true);
  return compile(`{^LN-BEG}${longForm ? 'LongEpoch' : 'Epoch'}`, built, 'epoch', longForm, null, 1, true);
}

export function tai64nTemplate(lineBegin: boolean): DateTemplate {
  const built = buildRegex('@[0-9a-f]{24}', lineBegin ? 'start' : false, true);
  return compile(lineBegin ? '{^LN-BEG}TAI64N' : 'TAI64N', built, 'tai64n', false, null);
}

/** Removes the boundaries a template adds, for {DATE} substitution (DateTemplate.unboundPattern). */
export function unboundPattern(pattern: string): string {
  return pattern.replace(RE_EXLINE_NO_BOUNDS, '').replace(RE_EXLINE_BOUND_BEG, '').replace(RE_EXSANC_BOUND_BEG, '').replace(RE_EXEANC_BOUND_BEG, '');
}

/** Epoch seconds of a template's match (the match must come from this template's regex). */
/** Span of the date text (group 1) in the line. */
export function dateSpan(template: DateTemplate, m: RegExpExecArray): [number, number] {
  if (template.groupAtEnd) {
    const end = m.index + m[0].length;
    return [end - (m[1] ?? '').length, end];
  }
  return m.indices?.[1] ?? [m.index, m.index + m[0].length];
}

export function templateTime(template: DateTemplate, match: RegExpExecArray, ctx: TimeContext): number | null {
  if (template.kind === 'pattern') return groupsToEpoch(template.fieldsOf(match), ctx);
  const text = match[template.valueGroup];
  if (text === undefined) return null;
  if (template.kind === 'tai64n') return parseInt(text.slice(2, 17), 16);
  let v = Number(text);
  if (template.longForm && text.length >= 13) v = text.length >= 16 && !text.includes('.') ? v / 1e6 : v / 1e3;
  return v;
}
