import path from 'node:path';
import { ConfigFiles } from './config-files.ts';
import { MissingOptionError, type ConfigStore } from './config-store.ts';
import { combineDefinition, type Options } from './definition-reader.ts';
import type { ConfigDirs, SourceRef } from './filter-definition.ts';
import { sourced, textOf } from './sourced-text.ts';

/**
 * Resolving a jail's `action = name[params]` entry against action.d (the user's, over edgeban's
 * shipped actions/), as fail2ban's ActionReader does: `[Init]` defaults, the jail's params over
 * them, `<tag>` substitution. Only actions whose file declares `edgeban_native` can run; any other
 * action (iptables-multiport, sendmail-whois, …) is reported, not run.
 */

export const NATIVE_ACTIONS = ['opnsense', 'ntfy', 'webhook'] as const;
export type NativeAction = (typeof NATIVE_ACTIONS)[number];

/** Parameters whose values must never appear in a message. */
export const SECRET_PARAMS: ReadonlySet<string> = new Set(['key', 'secret', 'ntfytoken', 'token']);

export interface ActionRef {
  /** As written in the jail: 'opnsense'. */
  name: string;
  /** [Init] defaults, overridden by the jail's params, tags substituted (fail2ban's initOpts without known/…). */
  params: Record<string, string>;
  /** Where the entry was written (the `action =` line, or the line a %(…)s reference pulled it from). */
  source: SourceRef;
  /** Which native implementation runs it (the file's `edgeban_native`). */
  native: NativeAction;
  /** The action's main file. */
  file: string;
}

export type ActionResolution = { ok: true; action: ActionRef } | { ok: false; reason: string };

// ActionReader._configOpts.
const ACTION_OPTIONS = [
  'actionstart',
  'actionstart_on_demand',
  'actionstop',
  'actionflush',
  'actionreload',
  'actioncheck',
  'actionrepair',
  'actionrepair_on_unban',
  'actionban',
  'actionprolong',
  'actionreban',
  'actionunban',
  'norestored',
];
// CommandAction._escapedTags plus what ActionReader.convert leaves for run time.
const IGNORED_TAGS = new Set(['matches', 'ipmatches', 'ipjailmatches', 'timeout', 'bantime']);

interface LoadedAction {
  store: ConfigStore;
  file: string;
}

/** Reads action files once per name for all jails of one load. */
export class ActionResolver {
  private readonly files: ConfigFiles;
  private readonly loaded = new Map<string, Promise<LoadedAction | null>>();
  private readonly layers: string[];

  constructor(dirs: ConfigDirs) {
    this.layers = dirs.configDir === undefined ? [dirs.shippedActionDir] : [dirs.shippedActionDir, path.join(dirs.configDir, 'action.d')];
    this.files = new ConfigFiles(this.layers);
  }

  private load(name: string): Promise<LoadedAction | null> {
    let pending = this.loaded.get(name);
    if (!pending) {
      pending = (async () => {
        const list = await this.files.standardFiles(name);
        if (list.length === 0) return null;
        const { store } = await this.files.load(list);
        return { store, file: list[0] ?? name };
      })();
      this.loaded.set(name, pending);
    }
    return pending;
  }

  async resolve(entry: { name: string; params: Record<string, string> }, jailName: string, jailOptions: Options, source: SourceRef): Promise<ActionResolution> {
    const { name } = entry;
    if (name.endsWith('.py')) return { ok: false, reason: `${name} is a Python action; edgeban runs only ${NATIVE_ACTIONS.join(', ')}` };
    if (name.includes('/') || name.startsWith('.')) return { ok: false, reason: `"${name}" is not an action name` };
    const loaded = await this.load(name);
    if (!loaded) {
      return { ok: false, reason: `no action.d/${name}.conf (looked in ${this.layers.join(', ')}); edgeban runs only ${NATIVE_ACTIONS.join(', ')}` };
    }
    let marker: string | null = null;
    try {
      marker = textOf(loaded.store.get('Definition', 'edgeban_native')).trim();
    } catch (error) {
      if (!(error instanceof MissingOptionError)) throw error;
    }
    if (marker === null) return { ok: false, reason: `${name} runs shell commands; edgeban runs only its native actions ${NATIVE_ACTIONS.join(', ')}` };
    const native = NATIVE_ACTIONS.find((n) => n === marker);
    if (!native) return { ok: false, reason: `${loaded.file} declares edgeban_native = ${marker}, which is not one of ${NATIVE_ACTIONS.join(', ')}` };

    // ActionReader: the jail name is always available as <name>; actname keeps names unique per jail.
    const params: Record<string, string> = { ...entry.params };
    if (params['name'] === undefined) params['name'] = jailName;
    if (params['actname'] === undefined) {
      const n = params['name'];
      params['actname'] = n === jailName ? name : name + (n.startsWith(jailName) ? n.slice(jailName.length) : `-${n}`);
    }
    const origin = { file: source.file, line: source.line };
    const { options, initNames } = combineDefinition({
      store: loaded.store,
      file: loaded.file,
      definitionOptions: ACTION_OPTIONS,
      initOptions: new Map(Object.entries(params).map(([k, v]) => [k, sourced(v, origin)])),
      callerOptions: jailOptions,
      all: false,
      ignore: IGNORED_TAGS,
    });
    const resolved: Record<string, string> = {};
    for (const key of initNames) {
      if (key.startsWith('known/') || ACTION_OPTIONS.includes(key)) continue;
      resolved[key] = textOf(options.get(key) ?? []);
    }
    return { ok: true, action: { name, params: resolved, source, native, file: loaded.file } };
  }
}
