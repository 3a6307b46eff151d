import path from 'node:path';
import { ConfigError, quotable } from './config-error.ts';
import { ConfigFiles } from './config-files.ts';
import type { ConfigStore } from './config-store.ts';
import { combineDefinition, optionText } from './definition-reader.ts';
import { extractOptions, OptionSyntaxError } from './option-list.ts';
import { sourced, splitLines, textOf, type SourcedText } from './sourced-text.ts';

/** Where a value was written: file, line, and the key it belongs to. */
export interface SourceRef {
  file: string;
  line: number;
  key: string;
}

/** One regex (one line of a multi-line failregex/ignoreregex); config substitution done, engine tags (<HOST>, <F-…>) left in. */
export interface RegexSpec {
  pattern: string;
  source: SourceRef;
}

export interface FilterDefinition {
  /** 'dovecot' */
  name: string;
  /** From 'dovecot[mode=aggressive]'. */
  options: Record<string, string>;
  /** Main .conf path (or the path given). */
  file: string;
  prefregex: RegexSpec | null;
  failregex: RegexSpec[];
  ignoreregex: RegexSpec[];
  /** Default 1. */
  maxlines: number;
  /** Raw value; may hold several lines. */
  datepattern: RegexSpec | null;
  logtimezone: string | null;
  journalmatch: string | null;
  /** `jsonline`: JSON lines are matched by these fields' values (src/filters/json-line.ts); null: lines as written. */
  jsonline: { fields: string[]; source: SourceRef } | null;
}

export interface ConfigDirs {
  /** The user's fail2ban-style dir (jail.conf, jail.d, filter.d, action.d); overlays the shipped dirs. */
  configDir?: string;
  shippedFilterDir: string;
  shippedActionDir: string;
}

export interface LoadFilterOptions {
  /** Where the spec was written (a jail's `filter =` line), for errors; default: the command line. */
  from?: SourceRef;
  /** The jail's backend: fail2ban sets `logtype = journal` for systemd backends, else `file`. */
  backend?: string;
  /**
   * The jail's resolved options (fail2ban's jail _configOpts). They are vars for the filter's
   * %(…)s, and a jail's own failregex, ignoreregex, maxlines, datepattern … replace the filter's.
   */
  jailOptions?: Readonly<Record<string, string>>;
  jailSources?: Readonly<Record<string, SourceRef>>;
  /** An explicitly empty failregex makes a manual-ban jail (docker-mailserver's [custom]) instead of an error. */
  allowEmptyFailregex?: boolean;
  /** Where the spec's mode was written, when not in the spec itself (the jail's `mode =`). */
  modeSource?: SourceRef;
}

/** The filter file does not exist: for a jail, a per-jail reason rather than a fatal error. */
export class FilterNotFoundError extends ConfigError {
  readonly filter: string;
  /** The message without the location. */
  readonly what: string;
  constructor(what: string, where: { file: string; line: number | null; key: string }, filter: string) {
    super(what, where);
    this.name = 'FilterNotFoundError';
    this.filter = filter;
    this.what = what;
  }
}

// FilterReader._configOpts, plus logtimezone (a jail option in fail2ban; accepted in filters too).
// jsonline is edgeban's own (JSON lines matched by parsed fields).
const FILTER_OPTIONS = ['usedns', 'prefregex', 'ignoreregex', 'failregex', 'maxlines', 'datepattern', 'journalmatch', 'logtimezone', 'jsonline'];

function filterLayers(dirs: ConfigDirs): string[] {
  return dirs.configDir === undefined ? [dirs.shippedFilterDir] : [dirs.shippedFilterDir, path.join(dirs.configDir, 'filter.d')];
}

interface Located {
  files: ConfigFiles;
  list: string[];
  /** The main file, or null when only .local files exist. */
  main: string | null;
  name: string;
}

async function locate(name: string, dirs: ConfigDirs, layers: string[]): Promise<Located | null> {
  // As fail2ban-regex: a name with a slash is a file; 'x' and 'x.conf' are looked up in filter.d.
  if (name.includes('/')) {
    const file = path.resolve(name);
    const dir = path.dirname(file);
    const base = path.basename(file).replace(/\.(conf|local)$/, '');
    // Inside one of the layered dirs: load it the standard way, .local and all.
    if (layers.some((layer) => path.resolve(layer) === dir)) return locate(base, dirs, layers);
    const files = new ConfigFiles(layers);
    return (await files.exists(file)) ? { files, list: [file], main: file, name: base } : null;
  }
  const base = name.replace(/\.(conf|local)$/, '');
  const files = new ConfigFiles(layers);
  const list = await files.standardFiles(base);
  if (list.length === 0) return null;
  return { files, list, main: list.find((f) => path.basename(f) === `${base}.conf`) ?? list[0] ?? null, name: base };
}

function toSourceRef(origin: { file: string; line: number } | null, key: string, fallback: string): SourceRef {
  return { file: origin?.file ?? fallback, line: origin?.line ?? 0, key };
}

function regexLines(value: SourcedText | undefined, key: string, fallback: string): RegexSpec[] {
  if (value === undefined) return [];
  return splitLines(value)
    .filter((line) => line.text !== '')
    .map((line) => ({ pattern: line.text, source: toSourceRef(line.origin, key, fallback) }));
}

function single(value: SourcedText | undefined, key: string, fallback: string): RegexSpec | null {
  if (value === undefined) return null;
  const text = textOf(value);
  if (text === '') return null;
  return { pattern: text, source: toSourceRef(splitLines(value)[0]?.origin ?? null, key, fallback) };
}

/**
 * A filter with modes (`failregex = <mdre-<mode>>`) given a mode it lacks: say which modes exist,
 * at the line the user wrote the mode on, rather than a regex error in the shipped file.
 */
function checkMode(store: ConfigStore, options: ReadonlyMap<string, SourcedText>, filter: string, modeSource: SourceRef): void {
  const mode = optionText(options, 'mode')?.trim();
  if (mode === undefined || mode === '' || !store.hasSection('Definition')) return;
  const modes = store
    .allOptions('Definition')
    .filter((k) => k.startsWith('mdre-'))
    .map((k) => k.slice('mdre-'.length));
  if (modes.length === 0 || modes.includes(mode.toLowerCase())) return;
  const shown = quotable(mode) ?? '(not shown)';
  throw new ConfigError(`${filter} has no mode ${shown}; modes: ${modes.join(', ')}`, {
    file: modeSource.file,
    line: modeSource.line === 0 ? null : modeSource.line,
    key: 'mode',
  });
}

/**
 * Loads filter `spec` ('dovecot', 'dovecot[mode=aggressive]', or a path to a .conf with optional
 * options) as fail2ban does for a jail or fail2ban-regex: the user's filter.d overlays edgeban's
 * shipped filters/, .local files layer on top.
 */
export async function loadFilter(spec: string, dirs: ConfigDirs, opts: LoadFilterOptions = {}): Promise<FilterDefinition> {
  const from: SourceRef = opts.from ?? { file: '<command line>', line: 0, key: 'filter' };
  const where = { file: from.file, line: from.line === 0 ? null : from.line, key: from.key };
  let extracted;
  try {
    extracted = extractOptions(spec.trim());
  } catch (error) {
    if (error instanceof OptionSyntaxError) throw new ConfigError(error.message, where);
    throw error;
  }
  const layers = filterLayers(dirs);
  const located = await locate(extracted.name, dirs, layers);
  if (!located) {
    const looked = extracted.name.includes('/') ? path.resolve(extracted.name) : layers.map((dir) => path.join(dir, `${extracted.name}.conf`)).join(', ');
    throw new FilterNotFoundError(`filter "${extracted.name}" not found (looked for ${looked})`, where, extracted.name);
  }
  const { store } = await located.files.load(located.list);
  const mainFile = located.main ?? located.list[0] ?? extracted.name;

  const origin = { file: from.file, line: from.line };
  const initOptions = new Map<string, SourcedText>(Object.entries(extracted.options).map(([k, v]) => [k, sourced(v, origin)]));
  // fail2ban's applyAutoOptions: logtype follows the backend unless the filter or the spec sets it.
  if (!initOptions.has('logtype') && !store.ownOptions('Definition').includes('logtype')) {
    initOptions.set('logtype', sourced(opts.backend?.startsWith('systemd') ? 'journal' : 'file', origin));
  }
  const jailVars = new Map<string, SourcedText>(
    Object.entries(opts.jailOptions ?? {}).map(([key, value]) => {
      const src = opts.jailSources?.[key];
      return [key, sourced(value, { file: src?.file ?? from.file, line: src?.line ?? from.line })];
    }),
  );
  const forJail = opts.jailOptions !== undefined;
  const combineInput = { store, file: mainFile, definitionOptions: FILTER_OPTIONS, initOptions, callerOptions: jailVars, ignore: new Set<string>() };
  // JailReader reads a jail's filter twice: first every option (errors surface here, as in
  // fail2ban), then again with the [Init] values as vars; the second read is what the jail uses.
  if (forJail) combineDefinition({ ...combineInput, all: true });
  const { options: combined } = combineDefinition({ ...combineInput, all: false, initAsVars: forJail });
  // fail2ban skips a filter option the jail sets and sends the jail's value instead.
  const options = new Map(combined);
  for (const key of FILTER_OPTIONS) {
    const fromJail = jailVars.get(key);
    if (fromJail !== undefined && !initOptions.has(key)) options.set(key, fromJail);
  }

  checkMode(store, options, extracted.name, opts.modeSource ?? from);
  const failregex = regexLines(options.get('failregex'), 'failregex', mainFile);
  const explicitlyEmpty = failregex.length === 0 && store.rawValue('Definition', 'failregex') !== undefined;
  if (failregex.length === 0 && !(opts.allowEmptyFailregex && explicitlyEmpty)) {
    const raw = store.rawValue('Definition', 'failregex');
    const section = store.sectionOrigins.get('Definition');
    throw new ConfigError(raw ? 'failregex is empty: the filter would never match' : 'the filter has no failregex', {
      file: raw?.file ?? section?.file ?? mainFile,
      line: raw?.line ?? section?.line ?? null,
      section: 'Definition',
      key: 'failregex',
    });
  }
  let maxlines = 1;
  const maxlinesText = optionText(options, 'maxlines');
  if (maxlinesText !== null && maxlinesText.trim() !== '') {
    const raw = store.rawValue('Definition', 'maxlines');
    if (!/^\s*[+-]?\d+\s*$/.test(maxlinesText) || Number(maxlinesText) < 1) {
      throw new ConfigError(`maxlines must be a whole number of at least 1${quotable(maxlinesText) === null ? '' : `, not "${quotable(maxlinesText)}"`}`, {
        file: raw?.file ?? mainFile,
        line: raw?.line ?? null,
        section: 'Definition',
        key: 'maxlines',
      });
    }
    maxlines = Number(maxlinesText);
  }
  const jsonline = jsonFields(options.get('jsonline'), mainFile);
  const nonEmpty = (name: string): string | null => {
    const text = optionText(options, name);
    return text === null || text.trim() === '' ? null : text;
  };
  return {
    name: located.name,
    options: extracted.options,
    file: mainFile,
    prefregex: single(options.get('prefregex'), 'prefregex', mainFile),
    failregex,
    ignoreregex: regexLines(options.get('ignoreregex'), 'ignoreregex', mainFile),
    maxlines,
    datepattern: single(options.get('datepattern'), 'datepattern', mainFile),
    logtimezone: nonEmpty('logtimezone'),
    journalmatch: nonEmpty('journalmatch'),
    jsonline,
  };
}

/** `jsonline = StartUTC ClientHost DownstreamStatus`: field paths separated by white space. */
function jsonFields(value: SourcedText | undefined, fallback: string): FilterDefinition['jsonline'] {
  if (value === undefined) return null;
  const fields = textOf(value)
    .split(/\s+/)
    .filter((f) => f !== '');
  if (fields.length === 0) return null;
  const source = toSourceRef(splitLines(value)[0]?.origin ?? null, 'jsonline', fallback);
  // Names separated by dots; a number indexes an array (request.headers.User-Agent.0).
  const bad = fields.find((f) => !/^[^\s.]+(?:\.[^\s.]+)*$/.test(f));
  if (bad !== undefined) {
    throw new ConfigError(`jsonline: "${bad}" is not a field path (names separated by dots)`, {
      file: source.file,
      line: source.line === 0 ? null : source.line,
      section: 'Definition',
      key: 'jsonline',
    });
  }
  return { fields, source };
}
