import { ConfigError } from './config-error.ts';
import { MissingOptionError, type ConfigStore } from './config-store.ts';
import { textOf, type SourcedText } from './sourced-text.ts';
import { substituteRecursiveTags, TagRecursionError } from './tags.ts';

/**
 * fail2ban's DefinitionInitConfigReader (configreader.py getOptions + getCombined), the common part
 * of filters and actions: `[Definition]` options interpolated with the caller's options as vars,
 * `[Init]` values (and their `known/` copies) unless the caller set them, then `<tag>` substitution
 * over the combination, falling back to any `[Definition]` (or `section/key`) option for a tag.
 */

export type Options = ReadonlyMap<string, SourcedText>;

export interface CombineInput {
  store: ConfigStore;
  /** The file named in errors about the definition as a whole. */
  file: string;
  /** Option names read from [Definition] (fail2ban's _configOpts). */
  definitionOptions: readonly string[];
  /** Options from `name[opt=val]` (fail2ban's initOpts); win over [Init]. */
  initOptions: Options;
  /** Options of the caller (the jail); vars for %(…)s interpolation of [Definition]. */
  callerOptions: Options;
  /** Also take every other [Definition] option (fail2ban's all=True). */
  all: boolean;
  /**
   * [Init] values are vars for [Definition] too. True for a jail's filter: JailReader reads the
   * filter twice and the second read sees the [Init] values the first one collected.
   */
  initAsVars?: boolean;
  /** Tags never substituted (fail2ban keeps these for run time). */
  ignore: ReadonlySet<string>;
}

export interface Combined {
  /** Every option after substitution; `known/…` entries included. */
  options: Map<string, SourcedText>;
  /** The [Init] + caller-given options (fail2ban's _initOpts), after substitution. */
  initNames: Set<string>;
}

const CONDITIONAL_RE = /^(\w+)(\?.+)$/;

function optional(get: () => SourcedText): SourcedText | null {
  try {
    return get();
  } catch (error) {
    if (error instanceof MissingOptionError) return null;
    throw error;
  }
}

export function combineDefinition(input: CombineInput): Combined {
  const { store } = input;
  const initOpts = new Map(input.initOptions);
  const addInit = (): void => {
    if (!store.hasSection('Init')) return;
    for (const name of store.ownOptions('Init')) {
      if (!name.startsWith('known/')) initOpts.set(`known/${name}`, store.get('Init', name));
      if (!initOpts.has(name)) initOpts.set(name, store.get('Init', name));
    }
  };
  if (input.initAsVars) addInit();
  const vars = new Map([...input.callerOptions, ...initOpts]);

  const opts = new Map<string, SourcedText>();
  for (const name of input.definitionOptions) {
    if (vars.has(name)) continue;
    const value = optional(() => store.get('Definition', name, vars));
    if (value !== null) opts.set(name, value);
  }
  addInit();
  if (input.all && store.hasSection('Definition')) {
    for (const name of store.allOptions('Definition')) {
      if (!opts.has(name)) opts.set(name, store.get('Definition', name));
    }
  }

  const combined = new Map([...opts, ...initOpts]);
  const ignore = new Set(input.ignore);
  for (const name of combined.keys()) {
    const cond = CONDITIONAL_RE.exec(name);
    if (cond?.[1]) ignore.add(cond[1]);
  }
  const cache = new Map<string, SourcedText | null>();
  const fromDefinition = (tag: string): SourcedText | null => {
    if (!cache.has(tag))
      cache.set(
        tag,
        optional(() => store.getEx('Definition', tag, vars)),
      );
    return cache.get(tag) ?? null;
  };
  try {
    return { options: substituteRecursiveTags(combined, ignore, fromDefinition), initNames: new Set(initOpts.keys()) };
  } catch (error) {
    if (!(error instanceof TagRecursionError)) throw error;
    const raw = store.rawValue('Definition', error.tag) ?? store.rawValue('Init', error.tag);
    throw new ConfigError(error.message, {
      file: raw?.file ?? input.file,
      line: raw?.line ?? null,
      section: store.rawValue('Definition', error.tag) ? 'Definition' : 'Init',
      key: error.tag,
    });
  }
}

/** The option as a string, or null when unset. */
export function optionText(options: Options, name: string): string | null {
  const value = options.get(name);
  return value === undefined ? null : textOf(value);
}
