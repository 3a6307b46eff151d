/**
 * Compiles a filter definition once: tags expanded, Python regexes translated to JavaScript,
 * prefilter literals extracted. Errors name the filter, the file:line of the key and the regex.
 */
import { UserFacingError } from '../util/errors.ts';
import { ConditionalError, expandConditionals } from './conditionals.ts';
import { RegexTranslationError, translatePythonRegex, type TranslatedRegex } from './python-regex.ts';
import { expandTagsWithNames, type UseDns } from './tags.ts';
import { gateRegex, type RequiredText } from './literals.ts';
import type { EngineFilterDefinition, RegexSpec, SourceRef } from './types.ts';
import { buildTemplates } from './dates/detector.ts';
import { zoneOffsetMinutes } from './dates/timezone.ts';

export interface CompiledRegex {
  readonly source: SourceRef;
  /** The regex as written (tags unexpanded), for reports. */
  readonly pattern: string;
  readonly ascii: RegExp;
  readonly unicode: RegExp;
  /** Further variants to try in order when the regex had (?(name)…) conditionals. */
  readonly alternates: ReadonlyArray<{ readonly ascii: RegExp; readonly unicode: RegExp }>;
  readonly groupNames: readonly string[];
  /** Text every match contains; checked with includes() before the regex runs. Null: nothing known. */
  readonly required: RequiredText | null;
  /** `alt_user1` → `user` style merges (fail2ban ALT_ names). */
  readonly altGroups: ReadonlyArray<readonly [string, string]>;
  readonly skipLineGroups: readonly string[];
  /** Groups opened by <F-…> tags: the captured tags a result reports. */
  readonly tagNames: ReadonlySet<string>;
}

export interface CompiledFilter {
  readonly name: string;
  readonly file: string;
  readonly prefregex: CompiledRegex | null;
  readonly failregex: readonly CompiledRegex[];
  readonly ignoreregex: readonly CompiledRegex[];
  readonly maxlines: number;
  readonly datepattern: string | null;
  readonly logtimezone: string | null;
  /**
   * Per failregex, text its match must contain; null when some failregex requires nothing (then
   * no line can be ruled out cheaply). A line that no failregex could match skips every regex,
   * prefregex included, since <F-CONTENT> is part of the line.
   */
  readonly literalGate: ReadonlyArray<RequiredText> | null;
  /** A single scan for any failregex's most selective literal; lines it rejects skip everything. */
  readonly gateRegex: RegExp | null;
  /** Union of the regexes' <F-…> tag groups. */
  readonly tagNames: ReadonlySet<string>;
  /** `jsonline` fields: JSON lines are matched by these values (json-line.ts); null: lines as written. */
  readonly jsonline: readonly string[] | null;
}

/** A filter that cannot run: exit code 2, message `FILE:LINE: key: …`. */
export class FilterCompileError extends UserFacingError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'FilterCompileError';
  }
}

const FAILURE_ID_GROUPS = ['fid', 'ip4', 'ip6', 'dns', 'mlfid'];
const ALT_RE = /^alt_(.*?)(?:_\d+)?$/;

function where(filter: EngineFilterDefinition, source: SourceRef): string {
  return `${source.file}:${source.line}: ${source.key}: filter ${filter.name}`;
}

/** The regex with a ⟨here⟩ mark at a position, for error messages. */
function markAt(pattern: string, at: number): string {
  return JSON.stringify(`${pattern.slice(0, at)}⟨here⟩${pattern.slice(at)}`);
}

function compileOne(filter: EngineFilterDefinition, spec: RegexSpec, multiline: boolean, useDns: UseDns): CompiledRegex {
  const { regex: expanded, tagNames, sourcePosition } = expandTagsWithNames(spec.pattern, useDns);
  if (expanded.trim() === '') throw new FilterCompileError(`${where(filter, spec.source)}: empty regex`);
  let variants: TranslatedRegex[];
  try {
    variants = expandConditionals(expanded).map((v) => translatePythonRegex(v, { multiline }));
  } catch (error) {
    // The user's regex with the position in it, not the expanded <HOST> they never wrote.
    const reason =
      error instanceof RegexTranslationError && error.pattern === expanded
        ? `${error.reason} at position ${sourcePosition(error.position)}: ${markAt(spec.pattern, sourcePosition(error.position))}`
        : error instanceof RegexTranslationError || error instanceof ConditionalError
          ? error.message
          : String(error);
    throw new FilterCompileError(`${where(filter, spec.source)}: cannot use regex ${JSON.stringify(spec.pattern)}: ${reason}`);
  }
  const t = variants[0] as TranslatedRegex;
  const groupNames = [...new Set(variants.flatMap((v) => v.groupNames))];
  const altGroups: Array<[string, string]> = [];
  for (const name of groupNames) {
    const m = ALT_RE.exec(name);
    if (m?.[1] !== undefined && name.length > 4) altGroups.push([name, m[1] === 'id' ? 'fid' : m[1] === 'port' ? 'fport' : m[1]]);
  }
  altGroups.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    source: spec.source,
    pattern: spec.pattern,
    ascii: t.ascii,
    unicode: t.unicode,
    alternates: variants.slice(1).map((v) => ({ ascii: v.ascii, unicode: v.unicode })),
    groupNames,
    // Variants may differ in what they require: no prefilter then.
    required: variants.length > 1 ? null : usable(t.required),
    altGroups,
    skipLineGroups: groupNames.filter((n) => /^skiplines\d+$/.test(n)).sort(),
    tagNames: new Set([...tagNames, ...altGroups.map(([, base]) => base)]),
  };
}

/** Longest literals first (most selective); null when nothing is required. */
function usable(required: RequiredText): RequiredText | null {
  const all = [...required.all].sort((a, b) => b.length - a.length);
  const anyOf = required.anyOf.filter((set) => set.length > 0);
  return all.length === 0 && anyOf.length === 0 ? null : { all, anyOf };
}

/** The same, without literals holding a newline (those may span the end of <F-CONTENT>). */
function withoutNewlines(required: RequiredText | null): RequiredText | null {
  if (required === null) return null;
  return usable({ all: required.all.filter((l) => !l.includes('\n')), anyOf: required.anyOf.filter((set) => set.every((l) => !l.includes('\n'))) });
}

export interface CompileOptions {
  /** fail2ban's usedns; edgeban never resolves, so only 'no' changes anything (<HOST> matches addresses only). */
  useDns?: UseDns;
}

export function compileFilter(def: EngineFilterDefinition, options: CompileOptions = {}): CompiledFilter {
  const useDns = options.useDns ?? 'warn';
  const maxlines = Number.isInteger(def.maxlines) && def.maxlines > 0 ? def.maxlines : 1;
  const prefregex = def.prefregex && def.prefregex.pattern.trim() !== '' ? compileOne(def, def.prefregex, false, useDns) : null;
  const failregex = def.failregex.filter((r) => r.pattern.trim() !== '').map((r) => compileOne(def, r, maxlines > 1, useDns));
  const ignoreregex = def.ignoreregex.filter((r) => r.pattern.trim() !== '').map((r) => compileOne(def, r, false, useDns));
  const preHasId = prefregex?.groupNames.some((g) => FAILURE_ID_GROUPS.includes(g));
  for (const r of failregex) {
    if (!preHasId && !r.groupNames.some((g) => FAILURE_ID_GROUPS.includes(g))) {
      throw new FilterCompileError(`${where(def, r.source)}: regex ${JSON.stringify(r.pattern)} has no failure-id group (<HOST>, <ADDR>, <F-ID>, <F-MLFID>…)`);
    }
  }
  const datepattern = def.datepattern && def.datepattern.pattern.trim() !== '' ? def.datepattern.pattern : null;
  if (def.datepattern && datepattern !== null) {
    try {
      buildTemplates(datepattern, new Date().getUTCFullYear());
    } catch (error) {
      throw new FilterCompileError(`${where(def, def.datepattern.source)}: ${(error as Error).message}`);
    }
  }
  if (def.logtimezone !== null) {
    try {
      zoneOffsetMinutes(def.logtimezone);
    } catch (error) {
      throw new FilterCompileError(`${def.file}: logtimezone: filter ${def.name}: ${(error as Error).message}`);
    }
  }
  const gate = failregex.map((r) => withoutNewlines(r.required));
  const literalGate = maxlines === 1 && failregex.length > 0 && failregex.length <= 30 && gate.every((g) => g !== null) ? (gate as RequiredText[]) : null;
  const tagNames = new Set([...(prefregex?.tagNames ?? []), ...failregex.flatMap((r) => [...r.tagNames])]);
  const gateRe = literalGate === null ? null : gateRegex(literalGate);
  return {
    name: def.name,
    file: def.file,
    prefregex,
    failregex,
    ignoreregex,
    maxlines,
    datepattern,
    logtimezone: def.logtimezone,
    literalGate,
    gateRegex: gateRe,
    tagNames,
    jsonline: def.jsonline?.fields ?? null,
  };
}
