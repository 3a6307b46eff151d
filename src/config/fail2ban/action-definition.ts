import path from 'node:path';
import { mappableNative, mapParams, isKnownNotRunAction, isLocalFirewallAction, type NativeTarget } from './action-mapping.ts';
import { ConfigFiles, listFiles } from './config-files.ts';
import { MissingOptionError, type ConfigStore } from './config-store.ts';
import { combineDefinition, type Options } from './definition-reader.ts';
import type { ConfigDirs, SourceRef } from './filter-definition.ts';
import { sourced, textOf } from './sourced-text.ts';

/**
 * Resolving a jail's `action = name[params]` entry against action.d (the user's, over edgeban's
 * shipped actions/), as fail2ban's ActionReader does: `[Init]` defaults, the jail's params over
 * them, `<tag>` substitution. Actions whose file declares `edgeban_native` run; so do the user's
 * own OPNsense and ntfy actions (as the native one, parameters mapped: action-mapping.ts). Local
 * firewall actions (iptables-multiport, …) are for the jail to substitute; others (sendmail-whois,
 * a custom shell script) are not run; a name with no file at all is for the jail to refuse.
 */

export const NATIVE_ACTIONS = ['opnsense', 'ntfy', 'webhook'] as const;
export type NativeAction = (typeof NATIVE_ACTIONS)[number];

/** Parameters whose values must never appear in a message. */
export const SECRET_PARAMS: ReadonlySet<string> = new Set([
  'key',
  'secret',
  'ntfytoken',
  'token',
  // Spellings of users' own OPNsense and ntfy actions.
  'oskey',
  'ossecret',
  'apikey',
  'api_key',
  'apisecret',
  'api_secret',
  'ntfy_token',
  'access_token',
  'password',
]);

export interface ActionRef {
  /** As written in the jail ('opnsense'); the native name when mapped or substituted. */
  name: string;
  /** [Init] defaults, overridden by the jail's params, tags substituted (fail2ban's initOpts without known/…). */
  params: Record<string, string>;
  /** Where the entry was written (the `action =` line, or the line a %(…)s reference pulled it from). */
  source: SourceRef;
  /** Which native implementation runs it (the file's `edgeban_native`), or `target`: a backend kind of the target registry (`targetKind`). */
  native: NativeAction | 'target';
  /** For `native: 'target'`: the registry kind (src/targets/registry.ts), e.g. `mikrotik`; params are the jail's as written. */
  targetKind?: string;
  /** The action's main file. */
  file: string;
  /** Set when edgeban runs this instead of a local firewall action the jail names (iptables-multiport, …). */
  substitutedFor?: string;
  /** Set when the user's own action file of another kind (a curl script) is run as this native action. */
  mappedFrom?: string;
}

/**
 * native: runs (as written, or mapped from the user's own OPNsense/ntfy action file: `mapped`
 * says what was renamed, once per file); local: a local firewall action (iptables, …);
 * not-run: an action edgeban neither knows nor maps (mail, custom shell); missing: no file at all.
 */
export type ActionResolution =
  | { kind: 'native'; action: ActionRef; mapped: string | null }
  | { kind: 'local' }
  | { kind: 'not-run'; reason: string }
  | { kind: 'missing'; reason: string };

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
  private readonly shipped: ConfigFiles;
  private readonly loaded = new Map<string, Promise<LoadedAction | null>>();
  private readonly loadedShipped = new Map<string, Promise<LoadedAction | null>>();
  private readonly layers: string[];
  /** Action files whose mapping was already told (once per file). */
  private readonly told = new Set<string>();
  /** Backend kinds of the target registry a jail may name as its action (`mikrotik[url=…]`). */
  private readonly targetKinds: ReadonlySet<string>;

  constructor(dirs: ConfigDirs, targetKinds: readonly string[] = []) {
    this.targetKinds = new Set(targetKinds);
    this.layers = dirs.configDir === undefined ? [dirs.shippedActionDir] : [dirs.shippedActionDir, path.join(dirs.configDir, 'action.d')];
    this.files = new ConfigFiles(this.layers);
    this.shipped = new ConfigFiles([dirs.shippedActionDir]);
  }

  private load(files: ConfigFiles, cache: Map<string, Promise<LoadedAction | null>>, name: string): Promise<LoadedAction | null> {
    let pending = cache.get(name);
    if (!pending) {
      pending = (async () => {
        const list = await files.standardFiles(name);
        if (list.length === 0) return null;
        const { store } = await files.load(list);
        return { store, file: list[0] ?? name };
      })();
      cache.set(name, pending);
    }
    return pending;
  }

  /** The main file of edgeban's own action (for a substituted action). */
  async shippedFile(native: NativeAction): Promise<string> {
    const shipped = await this.load(this.shipped, this.loadedShipped, native);
    if (!shipped) throw new Error(`edgeban's own action ${native}.conf is missing`);
    return shipped.file;
  }

  /** Every action name the layers hold a .conf for (for "did you mean"). */
  async knownNames(): Promise<string[]> {
    const names = new Set<string>();
    for (const dir of this.layers) for (const file of await listFiles(dir, '.conf')) names.add(path.basename(file, '.conf'));
    return [...names];
  }

  async resolve(entry: { name: string; params: Record<string, string> }, jailName: string, jailOptions: Options, source: SourceRef): Promise<ActionResolution> {
    const { name } = entry;
    if (name.includes('/') || name.startsWith('.')) return { kind: 'missing', reason: `"${name}" is not an action name` };
    const loaded = name.endsWith('.py') ? null : await this.load(this.files, this.loaded, name);
    const marker = loaded ? nativeMarker(loaded) : null;
    if (loaded && marker !== null && this.targetKinds.has(marker)) {
      // An action file of a registry backend (`edgeban_native = mikrotik`): its [Init] gives the defaults, the kind's parseOptions judges them.
      const params = this.combine(loaded, name, entry.params, jailName, jailOptions, source);
      // fail2ban's <name>/<actname>, added for every action, are not the backend's unless the jail wrote them.
      for (const generic of ['name', 'actname']) if (entry.params[generic] === undefined) delete params[generic];
      return { kind: 'native', action: { name, params, source, native: 'target', targetKind: marker, file: loaded.file }, mapped: null };
    }
    if (loaded && marker !== null) {
      const native = NATIVE_ACTIONS.find((n) => n === marker);
      if (!native) return { kind: 'missing', reason: `${loaded.file} declares edgeban_native = ${marker}, which is not one of ${NATIVE_ACTIONS.join(', ')}` };
      const params = this.combine(loaded, name, entry.params, jailName, jailOptions, source);
      return { kind: 'native', action: { name, params, source, native, file: loaded.file }, mapped: null };
    }
    if (this.targetKinds.has(name)) {
      // A backend of the target registry: its parseOptions reads the parameters (src/jails/targets.ts); a shell file of that name is never run.
      const params = Object.fromEntries(Object.entries(entry.params).map(([k, v]) => [k, v.trim()]));
      return { kind: 'native', action: { name, params, source, native: 'target', targetKind: name, file: loaded?.file ?? '' }, mapped: null };
    }
    const mappable = mappableNative(name);
    if (mappable) return this.resolveMapped(mappable, loaded, entry, jailName, jailOptions, source);
    if (isLocalFirewallAction(name)) return { kind: 'local' };
    if (loaded) return { kind: 'not-run', reason: `${name} (${loaded.file}) runs shell commands, which edgeban does not run` };
    if (isKnownNotRunAction(name))
      return {
        kind: 'not-run',
        reason: `${name} is a fail2ban ${name.endsWith('.py') ? 'Python ' : ''}action edgeban does not run (and there is no action.d/${name}.conf)`,
      };
    return { kind: 'missing', reason: `no action.d/${name}.conf (looked in ${this.layers.join(', ')})` };
  }

  /** The user's OPNsense or ntfy action (a curl script, PR #2761, linuxserver's), run as the native one. */
  private async resolveMapped(
    native: NativeTarget,
    loaded: LoadedAction | null,
    entry: { name: string; params: Record<string, string> },
    jailName: string,
    jailOptions: Options,
    source: SourceRef,
  ): Promise<ActionResolution> {
    const shipped = await this.load(this.shipped, this.loadedShipped, native);
    if (!shipped) return { kind: 'missing', reason: `edgeban's own action ${native}.conf is missing from ${this.layers[0]}` };
    const written = loaded ? this.combine(loaded, entry.name, entry.params, jailName, jailOptions, source) : { ...entry.params };
    const file = loaded?.file ?? `${entry.name} (no action file)`;
    const { params: mapped, renamed } = mapParams(native, written, { file: source.file, line: source.line, key: source.key });
    const params = this.combine(shipped, native, mapped, jailName, jailOptions, source);
    let note: string | null = null;
    if (!this.told.has(file)) {
      this.told.add(file);
      const what = renamed.length > 0 ? `parameters ${renamed.join(', ')}` : 'its parameter names are the native ones';
      note = `${file}: run as edgeban's native ${native} action (${what}); its shell commands are not run`;
    }
    return { kind: 'native', action: { name: native, params, source, native, file: shipped.file, mappedFrom: file }, mapped: note };
  }

  /** ActionReader.getOptions: [Init] defaults, the entry's params over them, tags substituted. */
  private combine(
    loaded: LoadedAction,
    name: string,
    entryParams: Record<string, string>,
    jailName: string,
    jailOptions: Options,
    source: SourceRef,
  ): Record<string, string> {
    // ActionReader: the jail name is always available as <name>; actname keeps names unique per jail.
    const params: Record<string, string> = { ...entryParams };
    if (params.name === undefined) params.name = jailName;
    if (params.actname === undefined) {
      const n = params.name;
      params.actname = n === jailName ? name : name + (n.startsWith(jailName) ? n.slice(jailName.length) : `-${n}`);
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
    return resolved;
  }
}

function nativeMarker(loaded: LoadedAction): string | null {
  try {
    return textOf(loaded.store.get('Definition', 'edgeban_native')).trim();
  } catch (error) {
    if (!(error instanceof MissingOptionError)) throw error;
    return null;
  }
}
