import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ActionResolver, NATIVE_ACTIONS, SECRET_PARAMS, type ActionRef } from './action-definition.ts';
import { closest } from './action-mapping.ts';
import { referencedNames, unknownKeys } from './unknown-keys.ts';
import { BUILTIN_JAIL_CONF, BUILTIN_JAIL_CONF_PATH } from './builtin-jail-conf.ts';
import { ConfigError, quotable } from './config-error.ts';
import { ConfigFiles } from './config-files.ts';
import { MissingOptionError, type ConfigStore } from './config-store.ts';
import { parseDuration } from './duration.ts';
import { loadFilter, type ConfigDirs, type FilterDefinition, type SourceRef } from './filter-definition.ts';
import { DEFAULT_SECTION } from './ini-parser.ts';
import { extractOptions, OptionSyntaxError, splitWithOptions } from './option-list.ts';
import { originAt, sourced, textOf, type SourcedText } from './sourced-text.ts';

/**
 * Jails as fail2ban reads them (jailreader.py): edgeban's built-in jail.conf, then the user's
 * jail.conf → jail.d/*.conf → jail.local → jail.d/*.local, every section but INCLUDES a jail.
 */

export type { ActionRef } from './action-definition.ts';

export interface JailDefinition {
  name: string;
  enabled: boolean;
  /** Filter spec including options: 'sshd[mode=normal]'. */
  filter: string;
  logpath: string[];
  maxretry: number;
  /** Seconds. */
  findtime: number;
  /** Seconds; -1 = permanent. */
  bantime: number;
  ignoreip: string[];
  /** The actions edgeban runs (native ones); the others are in LoadedJails.unsupported. */
  actions: ActionRef[];
  /** Every resolved key (own and [DEFAULT]), for later use: bantime.increment etc. */
  options: Record<string, string>;
  sources: Record<string, SourceRef>;
  /** Enabled and runnable: not skipped (`localactions = skip`, no action edgeban runs). */
  supported: boolean;
  /** Why an enabled jail does not run, with the fix; null when it runs. */
  skipReason: string | null;
  /** What edgeban runs differently from fail2ban for this jail (substituted, not run, unknown keys). */
  notes: JailNote[];
}

/** One thing a user migrating from fail2ban must know about a jail, with where and the fix. */
export interface JailNote {
  kind: 'substituted' | 'not-run' | 'unknown-key';
  /** The action or key concerned, as written. */
  subject: string;
  file: string;
  line: number;
  message: string;
  fix: string;
}

/** An action of an enabled jail that edgeban does not run (the jail runs and bans without it). */
export interface UnsupportedAction {
  jail: string;
  action: string;
  reason: string;
}

export interface LoadedJails {
  jails: JailDefinition[];
  unsupported: UnsupportedAction[];
  /** Info lines: each user action file run as a native action (once per file). */
  mapped: string[];
  /** Warnings not tied to one jail: unknown keys in [DEFAULT]. */
  warnings: JailNote[];
}

export const LOCAL_ACTION_MODES = ['edge', 'skip', 'error'] as const;
export type LocalActionsMode = (typeof LOCAL_ACTION_MODES)[number];

export interface LoadJailsOptions {
  /** What to do with local firewall actions when no `localactions` key says (EDGEBAN_LOCAL_ACTIONS). */
  localActions?: LocalActionsMode;
  /** Backend kinds of the target registry a jail may name as an action (src/targets/registry.ts GENERIC_TARGET_KINDS). */
  targetKinds?: readonly string[];
}

// fail2ban 1.0.2 version string, for %(fail2ban_version)s in user files.
const FAIL2BAN_COMPAT_VERSION = '1.0.2';

// JailReader._configOpts (with FilterReader's): the keys fail2ban reads; errors in them are fatal.
export const JAIL_OPTIONS = [
  'enabled',
  'backend',
  'maxretry',
  'maxmatches',
  'findtime',
  'bantime',
  'bantime.increment',
  'bantime.factor',
  'bantime.formula',
  'bantime.multipliers',
  'bantime.maxtime',
  'bantime.rndtime',
  'bantime.overalljails',
  'ignorecommand',
  'ignoreself',
  'ignoreip',
  'ignorecache',
  'filter',
  'logtimezone',
  'logencoding',
  'logpath',
  'action',
  'usedns',
  'prefregex',
  'ignoreregex',
  'failregex',
  'maxlines',
  'datepattern',
  'journalmatch',
];

const intText = z
  .string()
  .trim()
  .regex(/^[+-]?\d+$/)
  .transform(Number);
/** fail2ban's booleans, strictly: anything else is an error rather than false. */
export const boolText = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off']))
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));
const durationText = z.string().transform((v, ctx) => {
  const seconds = parseDuration(v);
  if (seconds === null) {
    ctx.addIssue({ code: 'custom', message: 'not a duration' });
    return z.NEVER;
  }
  return seconds;
});

interface JailContext {
  store: ConfigStore;
  name: string;
  actions: ActionResolver;
  localActions: LocalActionsMode;
  /** Option names some value refers to with %(name)s: defined for a reason, so never "unknown". */
  referenced: ReadonlySet<string>;
  mapped: string[];
}

function where(ctx: JailContext, key: string): { file: string; line: number | null; section: string; key: string } {
  const raw = ctx.store.rawValue(ctx.name, key);
  const own = ctx.store.sections.get(ctx.name)?.has(key.toLowerCase()) ?? false;
  return { file: raw?.file ?? '<unknown>', line: raw?.line ?? null, section: own ? ctx.name : DEFAULT_SECTION, key };
}

function sourceOf(ctx: JailContext, key: string): SourceRef {
  const raw = ctx.store.rawValue(ctx.name, key);
  return { file: raw?.file ?? '<unknown>', line: raw?.line ?? 0, key };
}

function convert<T>(ctx: JailContext, key: string, text: string, schema: z.ZodType<T>, expected: string): T {
  const result = schema.safeParse(text);
  if (result.success) return result.data;
  // Echo only what looks like a number, duration or boolean: never text that could carry a secret.
  const quoted = SECRET_PARAMS.has(key) ? null : quotable(text);
  const shown = quoted === null ? '' : ` not "${quoted}"`;
  const place = where(ctx, key);
  const forJail = place.section === ctx.name ? '' : ` (jail ${ctx.name})`;
  throw new ConfigError(`expected ${expected},${shown}${forJail}`, place);
}

function optionalGet(ctx: JailContext, key: string): SourcedText | null {
  try {
    return ctx.store.get(ctx.name, key);
  } catch (error) {
    if (error instanceof MissingOptionError) return null;
    throw error;
  }
}

/** fail2ban's splitwords: split on spaces, commas and new lines. */
function splitWords(text: string): string[] {
  return text
    .split(/[ ,\n]+/)
    .map((w) => w.trim())
    .filter((w) => w !== '');
}

async function resolveJail(ctx: JailContext, unsupported: UnsupportedAction[]): Promise<JailDefinition> {
  const { store, name } = ctx;
  const resolved = new Map<string, SourcedText>();
  for (const key of JAIL_OPTIONS) {
    const value = optionalGet(ctx, key);
    if (value !== null) resolved.set(key, value);
  }
  const options: Record<string, string> = {};
  const sources: Record<string, SourceRef> = {};
  const ownKeys = new Set(store.ownOptions(name));
  for (const key of store.allOptions(name)) {
    let value = resolved.get(key);
    if (value === undefined) {
      try {
        value = store.get(name, key);
      } catch (error) {
        // A [DEFAULT] key the jail never uses may refer to keys only some jails define
        // (action_cf_mwl → %(cfemail)s): fail2ban never evaluates it, neither do we.
        if (ownKeys.has(key) || !(error instanceof ConfigError)) throw error;
        continue;
      }
    }
    options[key] = textOf(value);
    sources[key] = sourceOf(ctx, key);
  }
  const text = (key: string): string | null => (resolved.has(key) ? textOf(resolved.get(key) ?? []) : null);

  const enabled = convert(ctx, 'enabled', text('enabled') ?? 'false', boolText, 'a boolean (true/false, yes/no, on/off, 1/0)');
  const maxretry = convert(ctx, 'maxretry', text('maxretry') ?? '3', intText.pipe(z.number().int().min(1)), 'a whole number of at least 1');
  const findtime = convert(ctx, 'findtime', text('findtime') ?? '600', durationText.pipe(z.number().positive()), 'a positive duration such as 600, 10m, 1h30m');
  const bantimeRaw = convert(ctx, 'bantime', text('bantime') ?? '600', durationText, 'a duration such as 600, 10m, 1h, 1d, or -1 for permanent');
  for (const key of ['ignoreself', 'bantime.increment', 'bantime.overalljails']) {
    const value = text(key);
    if (value !== null) convert(ctx, key, value, boolText, 'a boolean (true/false, yes/no, on/off, 1/0)');
  }
  for (const key of ['bantime.maxtime', 'bantime.rndtime']) {
    const value = text(key);
    if (value !== null && value.trim() !== '') convert(ctx, key, value, durationText, 'a duration such as 600, 10m, 1h');
  }

  const logpath = (text('logpath') ?? '')
    .split('\n')
    .map((line) => line.trim())
    // fail2ban: `path head|tail` says where to start reading; edgeban keeps the path.
    .map((line) => line.replace(/\s+(head|tail)$/, ''))
    .filter((line) => line !== '');

  const notes: JailNote[] = [];
  const { actions, skipReason } = await resolveActions(ctx, resolved, enabled, unsupported, notes);
  // Disabled jails too: `enabeld = true` leaves the jail disabled, and the typo is the reason.
  notes.push(...unknownKeys(ctx.store, ctx.name, { referenced: ctx.referenced, actionParams: actions.flatMap((a) => Object.keys(a.params)) }));

  return {
    name,
    enabled,
    filter: (text('filter') ?? '').trim(),
    logpath,
    maxretry,
    findtime,
    bantime: bantimeRaw < 0 ? -1 : bantimeRaw,
    ignoreip: splitWords(text('ignoreip') ?? ''),
    actions,
    options,
    sources,
    supported: enabled && skipReason === null,
    skipReason: enabled ? skipReason : null,
    notes,
  };
}

/**
 * The jail's `action` entries: native ones run; the user's own OPNsense/ntfy files run as the
 * native action; local firewall actions become one edge ban (localactions = edge), skip the jail
 * or are an error; actions edgeban does not run are noted; a name that resolves to no file is an
 * error (a typo must not leave a jail without its ban).
 */
async function resolveActions(
  ctx: JailContext,
  resolved: Map<string, SourcedText>,
  enabled: boolean,
  unsupported: UnsupportedAction[],
  notes: JailNote[],
): Promise<{ actions: ActionRef[]; skipReason: string | null }> {
  const { name } = ctx;
  const actions: ActionRef[] = [];
  const local: Array<{ action: string; source: SourceRef }> = [];
  const actionValue = resolved.get('action') ?? [];
  const actionText = textOf(actionValue);
  for (const item of splitWithOptions(actionText)) {
    const entryText = item.text.trim();
    if (entryText === '') continue;
    const offset = item.index + (item.text.length - item.text.trimStart().length);
    const origin = originAt(actionValue, offset);
    // Where the entry was written: often banaction in jail.local, pulled in through %(action_)s.
    const source: SourceRef = { file: origin?.file ?? sourceOf(ctx, 'action').file, line: origin?.line ?? 0, key: origin?.key ?? 'action' };
    let entry;
    try {
      entry = extractOptions(entryText);
    } catch (error) {
      if (!(error instanceof OptionSyntaxError)) throw error;
      throw new ConfigError(`${error.message} (jail ${name})`, { file: source.file, line: source.line, key: source.key });
    }
    // ActionReader.getOptions gets the jail's options as vars for the action's [Definition].
    const result = await ctx.actions.resolve({ name: entry.name, params: entry.options }, name, resolved, source);
    const at = `${source.file}:${source.line}`;
    switch (result.kind) {
      case 'native':
        actions.push(result.action);
        if (result.mapped !== null) ctx.mapped.push(result.mapped);
        break;
      case 'local':
        local.push({ action: entry.name, source });
        break;
      case 'not-run':
        if (!enabled) break;
        unsupported.push({ jail: name, action: entry.name, reason: result.reason });
        notes.push({
          kind: 'not-run',
          subject: entry.name,
          file: source.file,
          line: source.line,
          message: `[${name}] action ${entry.name} (${at}) is not run: ${result.reason}; the jail still bans`,
          fix: `remove ${entry.name} from the jail's action, or use ntfy[…] or webhook[…] for notifications`,
        });
        break;
      case 'missing': {
        if (!enabled) break;
        const suggestion = closest(entry.name, [...NATIVE_ACTIONS, ...(await ctx.actions.knownNames())]);
        const hint = suggestion === null ? '' : `; did you mean ${suggestion}?`;
        throw new ConfigError(`action "${entry.name}" of jail ${name} resolves to nothing: ${result.reason}${hint}`, {
          file: source.file,
          line: source.line,
          key: source.key,
        });
      }
    }
  }
  const first = local[0];
  if (first === undefined || !enabled) return { actions, skipReason: enabled ? nothingRuns(actions, notes, sourceOf(ctx, 'action')) : null };
  const names = [...new Set(local.map((l) => l.action))].join(', ');
  const at = `${first.source.file}:${first.source.line}`;
  const mode = localActionsMode(ctx);
  if (mode === 'error') {
    throw new ConfigError(`jail ${name} uses the local firewall action ${names}, which edgeban cannot run (localactions = error); use banaction = opnsense`, {
      file: first.source.file,
      line: first.source.line,
      key: first.source.key,
    });
  }
  if (mode === 'skip') {
    return {
      actions,
      skipReason: `local firewall action ${names} (${at}) and localactions = skip: set banaction = opnsense, or localactions = edge to ban at the edge instead`,
    };
  }
  // edge: the user wanted the address blocked; edgeban blocks it at the edge, once per jail.
  const atEdge = actions.some((a) => a.native === 'opnsense' || a.native === 'target');
  if (!atEdge) {
    // No firewall and no alias: the environment's firewalls and alias (OPNSENSE_URL, OPNSENSE_ALIAS).
    actions.push({
      name: 'opnsense',
      params: {},
      source: first.source,
      native: 'opnsense',
      file: await ctx.actions.shippedFile('opnsense'),
      substitutedFor: names,
    });
  }
  notes.push({
    kind: 'substituted',
    subject: names,
    file: first.source.file,
    line: first.source.line,
    message: atEdge
      ? `[${name}] local firewall action ${names} (${at}) is not run; the jail's ${actions.find((a) => a.native === 'opnsense' || a.native === 'target')?.name ?? 'opnsense'} action bans at the edge`
      : `[${name}] local firewall action ${names} (${at}) replaced by an edge ban: edgeban's opnsense action with the environment's firewall and alias`,
    fix: `set banaction = opnsense in jail.local to say so (or localactions = skip | error)`,
  });
  return { actions, skipReason: null };
}

/** A jail none of whose actions runs (only mail, say) detects and does nothing: it does not run, and says why. */
function nothingRuns(actions: readonly ActionRef[], notes: readonly JailNote[], at: SourceRef): string | null {
  if (actions.length > 0) return null;
  const notRun = notes.filter((n) => n.kind === 'not-run').map((n) => n.subject);
  const reason =
    notRun.length > 0
      ? `none of its actions runs in edgeban (${notRun.join(', ')}): add banaction = opnsense (or ntfy/webhook to only notify)`
      : 'it has no action: set action = %(action_)s with banaction = opnsense';
  return `${at.file}:${at.line}: ${reason}`;
}

function localActionsMode(ctx: JailContext): LocalActionsMode {
  const value = optionalGet(ctx, 'localactions');
  if (value === null) return ctx.localActions;
  const text = textOf(value).trim().toLowerCase();
  const mode = LOCAL_ACTION_MODES.find((m) => m === text);
  if (mode === undefined) {
    throw new ConfigError(
      `expected one of ${LOCAL_ACTION_MODES.join(', ')}${quotable(text) === null ? '' : `, not "${quotable(text)}"`}`,
      where(ctx, 'localactions'),
    );
  }
  return mode;
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Loads every jail. Errors in an enabled jail are fatal (ConfigError, file:line:key); a disabled
 * jail that does not resolve is left out, as fail2ban never reads past its `enabled`. Actions
 * edgeban cannot run go to `unsupported` (for enabled jails).
 */
export async function loadJails(dirs: ConfigDirs, options: LoadJailsOptions = {}): Promise<LoadedJails> {
  if (dirs.configDir !== undefined && !(await isDirectory(dirs.configDir))) {
    throw new ConfigError('the configuration directory does not exist (or is not a directory)', { file: path.resolve(dirs.configDir) });
  }
  const layers = dirs.configDir === undefined ? [] : [dirs.configDir];
  const files = new ConfigFiles(layers, new Map([[BUILTIN_JAIL_CONF_PATH, BUILTIN_JAIL_CONF]]));
  const userFiles = dirs.configDir === undefined ? [] : await files.standardFiles('jail');
  const { store } = await files.load([BUILTIN_JAIL_CONF_PATH, ...userFiles]);
  const builtin = { file: BUILTIN_JAIL_CONF_PATH, line: 0 };
  // JailReader.getOptions: static defaults, set over whatever the files say.
  store.setDefault('fail2ban_version', { text: sourced(FAIL2BAN_COMPAT_VERSION, builtin), file: builtin.file, line: 0 });
  const confpath = dirs.configDir === undefined ? '' : path.resolve(dirs.configDir);
  store.setDefault('fail2ban_confpath', { text: sourced(confpath, builtin), file: builtin.file, line: 0 });

  const actions = new ActionResolver(dirs, options.targetKinds ?? []);
  const jails: JailDefinition[] = [];
  const unsupported: UnsupportedAction[] = [];
  const mapped: string[] = [];
  const referenced = referencedNames(store);
  const base = { store, actions, localActions: options.localActions ?? 'edge', referenced, mapped };
  for (const name of store.sectionNames()) {
    if (name === 'INCLUDES') continue;
    const ctx: JailContext = { ...base, name };
    const enabledText = optionalGet(ctx, 'enabled');
    const enabled = convert(ctx, 'enabled', enabledText === null ? 'false' : textOf(enabledText), boolText, 'a boolean (true/false, yes/no, on/off, 1/0)');
    if (enabled) {
      jails.push(await resolveJail(ctx, unsupported));
      continue;
    }
    try {
      jails.push(await resolveJail(ctx, unsupported));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
    }
  }
  const warnings = jails.some((j) => j.enabled) ? unknownKeys(store, DEFAULT_SECTION, { referenced, actionParams: [] }) : [];
  return { jails, unsupported, mapped, warnings };
}

/** The jail's filter as fail2ban builds it for the jail: spec options, backend, jail overrides. */
export function loadJailFilter(jail: JailDefinition, dirs: ConfigDirs, options: { allowEmptyFailregex?: boolean } = {}): Promise<FilterDefinition> {
  const jailOptions: Record<string, string> = {};
  for (const key of JAIL_OPTIONS) {
    const value = jail.options[key];
    if (value !== undefined) jailOptions[key] = value;
  }
  const specMode = /\bmode\s*=\s*"?([^",\]]*)/.exec(jail.filter)?.[1]?.trim();
  const modeSource = specMode !== undefined && specMode === jail.options.mode?.trim() ? jail.sources.mode : undefined;
  return loadFilter(jail.filter, dirs, {
    from: jail.sources.filter ?? { file: '<unknown>', line: 0, key: 'filter' },
    backend: jail.options.backend ?? 'auto',
    jailOptions,
    jailSources: jail.sources,
    ...(options.allowEmptyFailregex ? { allowEmptyFailregex: true } : {}),
    // The mode usually reaches the spec through `filter = %(__name__)s[mode=%(mode)s]`: errors then point at `mode =`.
    ...(modeSource ? { modeSource } : {}),
  });
}
