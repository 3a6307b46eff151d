import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from './config-error.ts';
import { ConfigStore } from './config-store.ts';
import { parseIni, type ParsedIni } from './ini-parser.ts';
import { splitLines } from './sourced-text.ts';

/**
 * Finding and reading the files of one configuration (a jail set, a filter, an action) in
 * fail2ban's order: `[INCLUDES] before` files, the file, its `after` files, every file followed by
 * its `.local` sibling (configparserinc.py `_getIncludes`), all merged into one ConfigStore.
 *
 * Layering: a lookup may span several directories (edgeban's shipped filters/ or actions/, then the
 * user's filter.d/ or action.d/). A `.conf` comes from the highest layer that has it; `.local` files
 * of every layer apply, lowest first. Includes written relative to a layered file are looked up the
 * same way, so a user's filter can include a common.conf that only edgeban ships.
 */

/** Virtual files (edgeban's built-in jail.conf) by their display path. */
export type VirtualFiles = ReadonlyMap<string, string>;

export async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Files in dir whose name ends with ext, sorted as Python's sorted() sorts them. */
export async function listFiles(dir: string, ext: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.filter((n) => n.endsWith(ext)).sort()) {
    if (await isFile(path.join(dir, name))) out.push(path.join(dir, name));
  }
  return out;
}

function stripExt(file: string): string {
  const ext = path.extname(file);
  return ext === '' ? file : file.slice(0, -ext.length);
}

export class ConfigFiles {
  private readonly parsed = new Map<string, ParsedIni | null>();
  private readonly layers: readonly string[];
  private readonly virtual: VirtualFiles;

  /** layers: directories lowest priority first; may be empty. */
  constructor(layers: readonly string[], virtual: VirtualFiles = new Map()) {
    this.layers = layers.map((dir) => path.resolve(dir));
    this.virtual = virtual;
  }

  /** Reads the given files (and their includes and .local siblings) in order into a new store. */
  async load(files: readonly string[]): Promise<{ store: ConfigStore; files: string[] }> {
    const order = await this.includes(files, []);
    const store = new ConfigStore();
    for (const file of order) {
      const parsed = await this.parse(file);
      if (parsed) store.merge(parsed);
    }
    return { store, files: order };
  }

  /** The file for a name relative to the layers (e.g. 'dovecot.conf'): the highest layer's, or null. */
  async find(relative: string): Promise<string | null> {
    for (const dir of [...this.layers].reverse()) {
      const candidate = path.join(dir, relative);
      if (await isFile(candidate)) return candidate;
    }
    return null;
  }

  /** Every layer's copy of a relative name, lowest layer first (for `.local` files). */
  async findAll(relative: string): Promise<string[]> {
    const out: string[] = [];
    for (const dir of this.layers) {
      const candidate = path.join(dir, relative);
      if (await isFile(candidate)) out.push(candidate);
    }
    return out;
  }

  /** fail2ban's ConfigReaderUnshared.read file list for a base name, across layers. */
  async standardFiles(base: string): Promise<string[]> {
    const byName = async (sub: string, ext: string): Promise<string[]> => {
      const winner = new Map<string, string>();
      for (const dir of this.layers) for (const file of await listFiles(path.join(dir, sub), ext)) winner.set(path.basename(file), file);
      return [...winner.keys()].sort().map((name) => winner.get(name) ?? name);
    };
    const conf = await this.find(`${base}.conf`);
    return [
      ...(conf ? [conf] : []),
      ...(await byName(`${base}.d`, '.conf')),
      ...(await this.findAll(`${base}.local`)),
      ...(await byName(`${base}.d`, '.local')),
    ];
  }

  async exists(file: string): Promise<boolean> {
    return this.virtual.has(file) || (await isFile(file));
  }

  private layerOf(file: string): { dir: string; relative: string } | null {
    const absolute = path.resolve(file);
    for (const dir of this.layers) {
      const relative = path.relative(dir, absolute);
      if (relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative)) return { dir, relative };
    }
    return null;
  }

  /** The file plus the `.local` siblings fail2ban reads after it. */
  private async withLocals(file: string, listed: readonly string[]): Promise<string[]> {
    const localName = `${stripExt(file)}.local`;
    if (localName === file) return [file];
    const inLayer = this.layerOf(file);
    const candidates = inLayer ? await this.findAll(`${stripExt(inLayer.relative)}.local`) : (await isFile(localName)) ? [localName] : [];
    return [file, ...candidates.filter((c) => c !== file && !listed.includes(c))];
  }

  private async resolveInclude(from: string, name: string): Promise<string> {
    if (path.isAbsolute(name)) return name;
    const inLayer = this.layerOf(from);
    if (inLayer) {
      const found = await this.find(path.join(path.dirname(inLayer.relative), name));
      if (found) return found;
    }
    const beside = path.join(path.dirname(from), name);
    // A filter file given by path may include common.conf that only the layers hold.
    if (!inLayer && !(await this.exists(beside))) return (await this.find(name)) ?? beside;
    return beside;
  }

  private async includes(files: readonly string[], seen: readonly string[]): Promise<string[]> {
    const expanded: string[] = [];
    for (const file of files) {
      for (const f of await this.withLocals(file, files)) if (!expanded.includes(f)) expanded.push(f);
    }
    const out: string[] = [];
    for (const file of expanded) out.push(...(await this.includesOf(file, seen)));
    return out;
  }

  private async includesOf(file: string, seen: readonly string[]): Promise<string[]> {
    const parsed = await this.parse(file);
    if (!parsed) return [];
    const section = parsed.sections.get('INCLUDES');
    if (!section) return [file];
    // The include list is read from this file alone, interpolated as fail2ban does (own DEFAULT).
    const single = new ConfigStore();
    single.merge(parsed);
    const lists: Record<'before' | 'after', string[]> = { before: [], after: [] };
    for (const which of ['before', 'after'] as const) {
      if (!single.allOptions('INCLUDES').includes(which)) continue;
      for (const line of splitLines(single.get('INCLUDES', which))) {
        const name = line.text.trim();
        if (name === '') continue;
        const where = { file: line.origin?.file ?? file, line: line.origin?.line ?? null, section: 'INCLUDES', key: which };
        const target = await this.resolveInclude(file, name);
        if (target === file || seen.includes(target)) {
          const chain = [...seen, file, target].map((f) => path.basename(f)).join(' → ');
          throw new ConfigError(`include cycle: ${chain}`, where);
        }
        if (!(await this.exists(target))) {
          // fail2ban's own files name optional overrides (`after = common.local`); only those may be absent.
          if (target.endsWith('.local')) continue;
          throw new ConfigError(`included file ${name} not found (looked for ${target})`, where);
        }
        lists[which].push(...(await this.includes([target], [...seen, file])));
      }
    }
    return [...lists.before, file, ...lists.after];
  }

  private async parse(file: string): Promise<ParsedIni | null> {
    if (this.parsed.has(file)) return this.parsed.get(file) ?? null;
    let content = this.virtual.get(file);
    if (content === undefined) {
      if (!(await isFile(file))) {
        this.parsed.set(file, null);
        return null;
      }
      try {
        content = await readFile(file, 'utf8');
      } catch (error) {
        throw new ConfigError(`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { file });
      }
    }
    const result = parseIni(content, file);
    this.parsed.set(file, result);
    return result;
  }
}
