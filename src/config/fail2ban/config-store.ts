import { ConfigError } from './config-error.ts';
import { DEFAULT_SECTION, type ParsedIni, type RawSection, type RawValue } from './ini-parser.ts';
import { nested, textOf, sliceText, originAt, type Piece, type SourcedText } from './sourced-text.ts';

/**
 * The merged view of several INI files with fail2ban's semantics (configparserinc.py): later files
 * override earlier ones key by key, the overridden values are kept in `KNOWN/<section>` for
 * `%(known/key)s`, `[name?cond]` sections become `key?cond` keys of `[name]`, and `get` does
 * ConfigParser's BasicInterpolation plus fail2ban's `%(__name__)s` and `%(section/key)s`.
 */

export type Vars = ReadonlyMap<string, SourcedText>;

/** Raised for a missing section/option; callers turn it into a default or a ConfigError. */
export class MissingOptionError extends Error {
  constructor(section: string, option: string) {
    super(`no option ${option} in [${section}]`);
    this.name = 'MissingOptionError';
  }
}

const CONDITIONAL_RE = /^(\w+)(\?.+)$/;
const SECTION_OPTION_REF_RE = /%\(([\w-]+\/([^)]+))\)s/g;
const SECTION_OPTION_NAME_RE = /^([\w-]+)\/([^\s>]+)$/;
const KEY_RE = /^%\(([^)]+)\)s/;
// ConfigParser's MAX_INTERPOLATION_DEPTH: a deeper chain is taken for a reference cycle.
const MAX_DEPTH = 10;

interface MapEntry {
  value: SourcedText;
  section: string;
  key: string;
}

export class ConfigStore {
  readonly defaults: RawSection = new Map();
  readonly sections = new Map<string, RawSection>();
  /** Where each section was last declared (file and header line). */
  readonly sectionOrigins = new Map<string, { file: string; line: number }>();

  merge(parsed: ParsedIni): void {
    for (const [key, value] of parsed.defaults) this.defaults.set(key, value);
    for (const [name, line] of parsed.sectionLines) this.sectionOrigins.set(name.replace(CONDITIONAL_RE, '$1'), { file: parsed.file, line });
    for (const [rawName, rawSection] of parsed.sections) {
      let name = rawName;
      let section: RawSection = rawSection;
      const cond = CONDITIONAL_RE.exec(rawName);
      if (cond) {
        name = cond[1] ?? rawName;
        const suffix = cond[2] ?? '';
        section = new Map([...rawSection].map(([k, v]) => [k + suffix, v]));
      }
      const existing = this.sections.get(name);
      if (existing) {
        let known = this.sections.get(`KNOWN/${name}`);
        if (!known) {
          known = new Map();
          this.sections.set(`KNOWN/${name}`, known);
        }
        for (const key of section.keys()) {
          const previous = existing.get(key);
          if (previous) known.set(key, previous);
        }
        for (const [key, value] of section) existing.set(key, value);
      } else {
        this.sections.set(name, new Map(section));
      }
    }
  }

  /** Set by the reader, not by any file (fail2ban's merge_defaults). */
  setDefault(key: string, value: RawValue): void {
    this.defaults.set(key, value);
  }

  /** Section names as fail2ban lists them: not DEFAULT, not the KNOWN/ bookkeeping. */
  sectionNames(): string[] {
    return [...this.sections.keys()].filter((name) => !name.startsWith('KNOWN/'));
  }

  hasSection(section: string): boolean {
    return this.sections.has(section);
  }

  /** Keys set in the section itself (not inherited from DEFAULT). */
  ownOptions(section: string): string[] {
    return [...(this.sections.get(section)?.keys() ?? [])];
  }

  /** Keys visible in the section: its own and DEFAULT's. */
  allOptions(section: string): string[] {
    return [...new Set([...this.ownOptions(section), ...this.defaults.keys()])];
  }

  /** The raw (uninterpolated) value as the section sees it, with where it was set. */
  rawValue(section: string, option: string): RawValue | undefined {
    const key = option.toLowerCase();
    return this.sections.get(section)?.get(key) ?? this.defaults.get(key);
  }

  /** ConfigParser.get(section, option, vars=vars): vars win over the section, the section over DEFAULT. */
  get(section: string, option: string, vars: Vars = new Map()): SourcedText {
    const own = section === DEFAULT_SECTION ? this.defaults : this.sections.get(section);
    if (!own) throw new MissingOptionError(section, option);
    const key = option.toLowerCase();
    const map = this.lookupMap(section, own, vars);
    const entry = map.get(key);
    if (!entry) throw new MissingOptionError(section, option);
    const out: Piece[] = [];
    this.interpolate(out, entry.value, map, { section, key }, entry, 1);
    return out;
  }

  /** fail2ban's get_ex: like get, but `sec/opt` and `known/opt` names address other sections. */
  getEx(section: string, option: string, vars: Vars = new Map()): SourcedText {
    const named = option.includes('/') ? SECTION_OPTION_NAME_RE.exec(option) : null;
    if (named) {
      const sec = named[1] ?? '';
      const opt = named[2] ?? '';
      const lower = sec.toLowerCase();
      const candidates = lower === 'known' ? [`KNOWN/${section}`, section] : [lower === 'default' ? DEFAULT_SECTION : sec];
      for (const candidate of candidates) {
        try {
          return this.get(candidate, opt);
        } catch (error) {
          if (!(error instanceof MissingOptionError)) throw error;
        }
      }
    }
    return this.get(section, option, vars);
  }

  private lookupMap(section: string, own: RawSection, vars: Vars): Map<string, MapEntry> {
    const map = new Map<string, MapEntry>();
    for (const [key, value] of this.defaults) map.set(key, { value: value.text, section: DEFAULT_SECTION, key });
    if (own !== this.defaults) for (const [key, value] of own) map.set(key, { value: value.text, section, key });
    for (const [key, value] of vars) map.set(key.toLowerCase(), { value, section, key: key.toLowerCase() });
    return map;
  }

  /** fail2ban's _map_section_options: make `%(sec/opt)s` and `%(known/opt)s` resolvable. */
  private mapSectionOptions(section: string, rest: string, map: Map<string, MapEntry>): void {
    if (!rest.includes('/') || !rest.includes('%(')) return;
    for (const match of rest.matchAll(SECTION_OPTION_REF_RE)) {
      const sopt = match[1] ?? '';
      const opt = match[2] ?? '';
      if (map.has(sopt)) continue;
      const sec = sopt.slice(0, sopt.length - opt.length - 1);
      const lower = sec.toLowerCase();
      let found: RawValue | undefined;
      let foundSection = DEFAULT_SECTION;
      if (lower === 'known') {
        found = this.sections.get(`KNOWN/${section}`)?.get(opt);
        foundSection = `KNOWN/${section}`;
      } else if (lower !== 'default') {
        const other = this.sections.get(sec);
        if (!other) continue; // fail2ban ignores an unknown section here; the reference then fails as missing
        found = other.get(opt);
        foundSection = sec;
      }
      if (!found) {
        found = this.defaults.get(opt);
        foundSection = DEFAULT_SECTION;
      }
      if (found) map.set(sopt, { value: found.text, section: foundSection, key: opt });
    }
  }

  private interpolate(
    out: Piece[],
    value: SourcedText,
    parentMap: Map<string, MapEntry>,
    target: { section: string; key: string },
    holder: { section: string; key: string },
    depth: number,
  ): void {
    const fail = (what: string, offset: number): never => {
      const origin = originAt(value, offset);
      const via = holder.section === target.section && holder.key === target.key ? '' : ` (resolving [${target.section}] ${target.key})`;
      throw new ConfigError(`${what}${via}`, {
        file: origin?.file ?? '<unknown>',
        line: origin?.line ?? null,
        section: holder.section,
        key: holder.key,
      });
    };
    if (depth > MAX_DEPTH) fail('%(…)s references nested more than 10 deep (a reference cycle?)', 0);
    const text = textOf(value);
    const map = new Map(parentMap);
    map.set('__name__', {
      value: [{ text: target.section, origin: originAt(value, 0) ?? { file: '<edgeban>', line: 0 } }],
      section: target.section,
      key: '__name__',
    });
    this.mapSectionOptions(target.section, text, map);
    let pos = 0;
    while (pos < text.length) {
      const p = text.indexOf('%', pos);
      if (p < 0) {
        out.push(...sliceText(value, pos));
        return;
      }
      out.push(...sliceText(value, pos, p));
      const next = text[p + 1];
      if (next === '%') {
        out.push(...sliceText(value, p, p + 1));
        pos = p + 2;
      } else if (next === '(') {
        const m = KEY_RE.exec(text.slice(p));
        if (!m) fail('malformed %(…)s reference (write %% for a literal %)', p);
        const name = (m?.[1] ?? '').toLowerCase();
        pos = p + (m?.[0].length ?? 0);
        const entry = map.get(name);
        if (!entry) {
          const slash = name.indexOf('/');
          const sec = slash < 0 ? '' : name.slice(0, slash);
          const why =
            slash < 0 || sec === 'known' || sec === 'default'
              ? `no key ${slash < 0 ? name : name.slice(slash + 1)} in [${target.section}] or [DEFAULT]`
              : [...this.sections.keys()].some((s) => s.toLowerCase() === sec)
                ? `no key ${name.slice(slash + 1)} in [${sec}] or [DEFAULT]`
                : `there is no section [${sec}]`;
          fail(`unknown reference %(${name})s: ${why}`, p);
        } else if (textOf(entry.value).includes('%')) {
          const inner: Piece[] = [];
          this.interpolate(inner, entry.value, map, target, { section: entry.section, key: entry.key }, depth + 1);
          out.push(...nested(inner));
        } else {
          out.push(...nested(entry.value));
        }
      } else {
        fail("'%' must be followed by '%' or '(' (write %% for a literal %)", p);
      }
    }
  }
}
