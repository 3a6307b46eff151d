import ipaddr from 'ipaddr.js';
import { parsePfEntry } from '../net/address.ts';

/** Tables every OPNsense ruleset declares; they share the global table-entries limit. */
export const BUILTIN_TABLES = ['bogons', 'bogonsv6', 'virusprot', 'sshlockout'] as const;

export type PfAddResult = 'added' | 'duplicate' | 'invalid' | 'enomem';

/**
 * Sort key giving pf's `-T show` order: IPv4 before IPv6, then ascending address, then prefix.
 * Fixed-width hex so that plain string comparison orders correctly.
 */
function orderKey(text: string, family: 4 | 6, prefix: number): string {
  const slash = text.indexOf('/');
  const bytes = ipaddr.parse(slash === -1 ? text : text.slice(0, slash)).toByteArray();
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return `${family}${hex}${prefix.toString().padStart(3, '0')}`;
}

function byKey(a: [string, string], b: [string, string]): number {
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/**
 * One pf table. Entries are kept in a Map (O(1) add/delete); the ordered view that `list`
 * needs is cached and patched by merging the pending changes, so paging a 100k-entry table
 * costs O(n) after a few changes and O(page) when nothing changed, never a full re-sort per call.
 */
export class PfTable {
  /** pf spelling → order key */
  private readonly entries = new Map<string, string>();
  private ordered: [string, string][] | null = [];
  private pendingAdds = new Map<string, string>();
  private pendingDeletes = new Set<string>();
  private lexical: string[] | null = null;
  updatedAt: number;

  constructor(now: number) {
    this.updatedAt = now;
  }

  get size(): number {
    return this.entries.size;
  }

  has(text: string): boolean {
    return this.entries.has(text);
  }

  /** Caller has checked the limit. Returns false for a duplicate. */
  insert(text: string, key: string, now: number): boolean {
    if (this.entries.has(text)) return false;
    this.entries.set(text, key);
    if (this.ordered !== null) {
      if (this.pendingDeletes.has(text)) this.pendingDeletes.delete(text);
      else this.pendingAdds.set(text, key);
      this.dropOrderIfStale();
    }
    this.lexical = null;
    this.updatedAt = now;
    return true;
  }

  remove(text: string, now: number): boolean {
    if (!this.entries.delete(text)) return false;
    if (this.ordered !== null) {
      if (this.pendingAdds.has(text)) this.pendingAdds.delete(text);
      else this.pendingDeletes.add(text);
      this.dropOrderIfStale();
    }
    this.lexical = null;
    this.updatedAt = now;
    return true;
  }

  clear(now: number): number {
    const count = this.entries.size;
    this.entries.clear();
    this.ordered = [];
    this.pendingAdds.clear();
    this.pendingDeletes.clear();
    this.lexical = null;
    this.updatedAt = now;
    return count;
  }

  /** Entries in pf order (IPv4 then IPv6, ascending). The returned array must not be modified. */
  inPfOrder(): readonly string[] {
    return this.materialize().map((e) => e[0]);
  }

  /** The cached ordered view, for paging without copying. */
  orderedView(): readonly (readonly [string, string])[] {
    return this.materialize();
  }

  /** Entries sorted as plain strings, which is what a `sort[ip]` request gets (PHP compares strings). */
  inLexicalOrder(): readonly string[] {
    if (this.lexical === null) this.lexical = [...this.entries.keys()].sort();
    return this.lexical;
  }

  private dropOrderIfStale(): void {
    // Past a quarter of the table, one full sort is cheaper than merging.
    if (this.pendingAdds.size + this.pendingDeletes.size > Math.max(64, this.entries.size / 4)) {
      this.ordered = null;
      this.pendingAdds.clear();
      this.pendingDeletes.clear();
    }
  }

  private materialize(): [string, string][] {
    if (this.ordered === null) {
      this.ordered = [...this.entries.entries()].sort(byKey);
      return this.ordered;
    }
    if (this.pendingAdds.size === 0 && this.pendingDeletes.size === 0) return this.ordered;
    const base = this.pendingDeletes.size === 0 ? this.ordered : this.ordered.filter((e) => !this.pendingDeletes.has(e[0]));
    const adds = [...this.pendingAdds.entries()].sort(byKey);
    const merged: [string, string][] = new Array(base.length + adds.length);
    let i = 0,
      j = 0,
      k = 0;
    while (i < base.length && j < adds.length) {
      const a = base[i]!,
        b = adds[j]!;
      if (a[1] <= b[1]) {
        merged[k++] = a;
        i++;
      } else {
        merged[k++] = b;
        j++;
      }
    }
    while (i < base.length) merged[k++] = base[i++]!;
    while (j < adds.length) merged[k++] = adds[j++]!;
    this.ordered = merged;
    this.pendingAdds.clear();
    this.pendingDeletes.clear();
    return merged;
  }
}

/** What pfctl makes of one address argument; null when it cannot parse it (hostnames, words). */
export function pfctlParse(input: string): { text: string; key: string } | null {
  // pfctl would try a word as a host name; the simulator has no DNS, so it fails like an unknown name.
  try {
    // An IPv4-mapped argument stays an IPv6 entry (`::ffff:a.b.c.d`), as pfctl stores it.
    const parsed = parsePfEntry(input);
    // parsePfEntry tolerates surrounding spaces; pfctl gets the argument verbatim.
    if (input !== input.trim()) return null;
    return { text: parsed.text, key: orderKey(parsed.text, parsed.family, parsed.prefix) };
  } catch {
    return null;
  }
}

/** Does pf entry `entry` (pf spelling, maybe a network) contain the host or network `address`? */
export function entryContains(entry: string, address: string): boolean {
  try {
    const [net, bitsText] = entry.includes('/') ? entry.split('/') : [entry, undefined];
    const netAddr = ipaddr.parse(net ?? '');
    const bits = bitsText === undefined ? (netAddr.kind() === 'ipv4' ? 32 : 128) : Number(bitsText);
    const slash = address.indexOf('/');
    const target = ipaddr.parse(slash === -1 ? address : address.slice(0, slash));
    if (target.kind() !== netAddr.kind()) return false;
    return target.match(netAddr, bits);
  } catch {
    return false;
  }
}

/**
 * The kernel's pf tables: named tables, one global table-entries limit shared by all of them
 * (`set limit table-entries`), pfctl's silent failure modes.
 */
export class PfTableStore {
  private readonly tables = new Map<string, PfTable>();
  private used = 0;
  limit: number;
  private readonly now: () => number;

  constructor(limit: number, now: () => number) {
    this.limit = limit;
    this.now = now;
  }

  /** `table <name> persist` in the ruleset: the table exists, contents kept. */
  declare(name: string): PfTable {
    let table = this.tables.get(name);
    if (!table) {
      table = new PfTable(this.now());
      this.tables.set(name, table);
    }
    return table;
  }

  get(name: string): PfTable | undefined {
    return this.tables.get(name);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }

  usedEntries(): number {
    return this.used;
  }

  /**
   * `pfctl -t name -T add address`: parse first (a parse failure creates nothing), then create
   * the table, then the kernel add, which fails as a whole with ENOMEM at the global limit.
   */
  add(name: string, address: string): PfAddResult {
    const parsed = pfctlParse(address);
    if (parsed === null) return 'invalid';
    const table = this.declare(name);
    if (table.has(parsed.text)) return 'duplicate';
    if (this.used >= this.limit) return 'enomem';
    table.insert(parsed.text, parsed.key, this.now());
    this.used++;
    return 'added';
  }

  /**
   * An admin's `pfctl -t name -T add a b c`: every address is parsed first and the kernel batch
   * is atomic, so a bad address or the limit rejects the whole batch. Unlike the API path, the
   * admin sees the error: it is thrown. Returns how many were new.
   */
  addBatch(name: string, addresses: readonly string[]): number {
    const parsed = new Map<string, string>();
    for (const address of addresses) {
      const p = pfctlParse(address);
      if (p === null) throw new RangeError(`pfctl: cannot parse ${JSON.stringify(address)} as an address`);
      parsed.set(p.text, p.key);
    }
    const table = this.declare(name);
    const fresh = [...parsed].filter(([text]) => !table.has(text));
    if (this.used + fresh.length > this.limit) {
      throw new RangeError(`pfctl: Cannot allocate memory (table-entries limit ${this.limit}, ${this.used} used, ${fresh.length} new)`);
    }
    for (const [text, key] of fresh) table.insert(text, key, this.now());
    this.used += fresh.length;
    return fresh.length;
  }

  /** pf spellings of the parseable addresses among `addresses` (what a load would store). */
  spellAll(addresses: readonly string[]): string[] {
    const out: string[] = [];
    for (const address of addresses) {
      const p = pfctlParse(address);
      if (p) out.push(p.text);
    }
    return out;
  }

  /** Deletes the entry spelled exactly `text` (delete_table.py compares pfctl's output lines). */
  deleteExact(name: string, text: string): boolean {
    const table = this.tables.get(name);
    if (!table?.remove(text, this.now())) return false;
    this.used--;
    return true;
  }

  flush(name: string): number {
    const table = this.tables.get(name);
    if (!table) return 0;
    const count = table.clear(this.now());
    this.used -= count;
    return count;
  }

  /** Drops a table entirely (reboot: tables nobody declares are gone). */
  destroy(name: string): void {
    const table = this.tables.get(name);
    if (!table) return;
    this.used -= table.size;
    this.tables.delete(name);
  }

  /**
   * `pfctl -T replace` (update_tables.py): the new contents must fit in the limit as a whole,
   * else nothing changes and the caller reports ENOMEM.
   */
  replace(name: string, addresses: readonly string[]): { ok: boolean; currentSize: number; newSize: number } {
    const table = this.declare(name);
    const parsed = new Map<string, string>();
    for (const address of addresses) {
      const p = pfctlParse(address);
      if (p) parsed.set(p.text, p.key);
    }
    const currentSize = table.size;
    if (this.used - currentSize + parsed.size > this.limit) return { ok: false, currentSize, newSize: parsed.size };
    this.flush(name);
    for (const [text, key] of parsed) {
      table.insert(text, key, this.now());
      this.used++;
    }
    return { ok: true, currentSize, newSize: parsed.size };
  }
}
