import { execFileSync, spawnSync } from 'node:child_process';
import { z } from 'zod';
import { isValidAddress, toPfSpelling } from '../net/address.ts';
import { PfTableStore, pfctlParse, type PfAddResult, type PfTable } from './pf-table-store.ts';

/** Where the real packet filter lives: an nftables table inside a network namespace (never the root one). */
export interface NftEdgeOptions {
  netns: string;
  table: string;
}

/** A command on the edge failed: the firewall could not do what the API was asked. */
export class NftEdgeError extends Error {}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** `nft -j list set` output, only as far as set elements go: a plain address or a prefix. */
const elementSchema = z.union([z.string(), z.object({ prefix: z.object({ addr: z.string(), len: z.number().int() }) })]);
const listSetSchema = z.object({
  nftables: z.array(z.union([z.object({ set: z.object({ name: z.string(), elem: z.array(elementSchema).optional() }) }), z.record(z.string(), z.unknown())])),
});

function elementText(element: z.infer<typeof elementSchema>): string {
  if (typeof element === 'string') return element;
  return `${element.prefix.addr}/${element.prefix.len}`;
}

/**
 * The edge's nftables table, driven with `ip netns exec NS nft`. Each pf table becomes two sets,
 * NAME_v4 and NAME_v6 (nft sets hold one family), each with a forward-hook rule dropping new flows
 * whose source is in it. Synchronous on purpose: the table store's interface is synchronous and a
 * test firewall gains nothing from interleaving requests with a half-applied change.
 */
export class NftEdge {
  private readonly netns: string;
  private readonly table: string;
  private readonly declared = new Set<string>();

  constructor(options: NftEdgeOptions) {
    if (!NAME.test(options.netns)) throw new RangeError(`--nft-netns ${JSON.stringify(options.netns)} is not a namespace name`);
    if (!NAME.test(options.table)) throw new RangeError(`--nft-table ${JSON.stringify(options.table)} is not an nftables table name`);
    this.netns = options.netns;
    this.table = options.table;
    // A fresh kernel: whatever an earlier run left in the table goes, as on a booted firewall.
    this.apply([
      `add table inet ${this.table}`,
      `delete table inet ${this.table}`,
      `add table inet ${this.table}`,
      `add chain inet ${this.table} forward { type filter hook forward priority 0; policy accept; }`,
      // Stateful like pf: a flow set up before its source was listed keeps passing until its state
      // is killed (kill_states → conntrack -D), then its next packet meets the drop rule.
      `add rule inet ${this.table} forward ct state established,related accept`,
    ]);
  }

  private run(command: string, args: string[], input?: string): string {
    try {
      return execFileSync('ip', ['netns', 'exec', this.netns, command, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new NftEdgeError(`${command} in namespace ${this.netns} failed: ${stderr.trim() || (error as Error).message}`);
    }
  }

  /** One nft batch: applied atomically or not at all. */
  private apply(lines: string[]): void {
    if (lines.length > 0) this.run('nft', ['-f', '-'], `${lines.join('\n')}\n`);
  }

  private static setName(name: string, family: 4 | 6): string {
    return `${name}_v${family}`;
  }

  private static family(text: string): 4 | 6 {
    return text.includes(':') ? 6 : 4;
  }

  /** `table <name> persist`: the two sets and their drop rules exist (once per name). */
  declare(name: string): void {
    if (this.declared.has(name)) return;
    const lines: string[] = [];
    for (const family of [4, 6] as const) {
      const set = NftEdge.setName(name, family);
      lines.push(`add set inet ${this.table} ${set} { type ipv${family}_addr; flags interval; }`);
      lines.push(`add rule inet ${this.table} forward ${family === 4 ? 'ip' : 'ip6'} saddr @${set} drop`);
    }
    this.apply(lines);
    this.declared.add(name);
  }

  /** The set's entries in pf spelling (both families). */
  list(name: string): string[] {
    if (!this.declared.has(name)) return [];
    const out: string[] = [];
    for (const family of [4, 6] as const) {
      const raw = this.run('nft', ['-j', 'list', 'set', 'inet', this.table, NftEdge.setName(name, family)]);
      const parsed = listSetSchema.parse(JSON.parse(raw));
      for (const item of parsed.nftables) {
        if (!('set' in item)) continue;
        const set = (item as { set: { elem?: z.infer<typeof elementSchema>[] } }).set;
        for (const element of set.elem ?? []) {
          const text = elementText(element);
          // A single address is stored as /32 or /128 by some nft versions; pf shows it bare.
          const host = text.endsWith(family === 4 ? '/32' : '/128') ? text.slice(0, text.lastIndexOf('/')) : text;
          out.push(pfctlParse(host)?.text ?? host);
        }
      }
    }
    return out;
  }

  add(name: string, entries: readonly string[]): void {
    this.apply(entries.map((e) => `add element inet ${this.table} ${NftEdge.setName(name, NftEdge.family(e))} { ${e} }`));
  }

  delete(name: string, entries: readonly string[]): void {
    this.apply(entries.map((e) => `delete element inet ${this.table} ${NftEdge.setName(name, NftEdge.family(e))} { ${e} }`));
  }

  flush(name: string): void {
    if (!this.declared.has(name)) return;
    this.apply([4, 6].map((f) => `flush set inet ${this.table} ${NftEdge.setName(name, f as 4 | 6)}`));
  }

  /**
   * kill_states for an address filter: `conntrack -D -s ADDR` and `-d ADDR` in the namespace.
   * Returns how many flows were deleted (conntrack exits 1 when there were none).
   */
  killStates(filter: string): number {
    if (!isValidAddress(filter) || filter.includes('/')) return 0;
    const address = toPfSpelling(filter);
    let count = 0;
    for (const direction of ['-s', '-d']) {
      const result = spawnSync('ip', ['netns', 'exec', this.netns, 'conntrack', '-D', direction, address], { encoding: 'utf8' });
      const match = /(\d+) flow entries have been deleted/.exec(result.stderr ?? '');
      if (match === null) throw new NftEdgeError(`conntrack in namespace ${this.netns} failed: ${(result.stderr ?? '').trim() || String(result.error)}`);
      count += Number(match[1]);
    }
    return count;
  }
}

/**
 * pf tables whose contents are a real nftables set: pf's semantics (spelling, the global limit,
 * silent failures) stay with PfTableStore; every change that lands there is applied to the edge,
 * and every read first takes the set's real contents (an admin's nft change or an emptied set
 * shows in the API as it would on the firewall).
 */
export class NftTableStore extends PfTableStore {
  private readonly edge: NftEdge;

  constructor(limit: number, now: () => number, edge: NftEdge) {
    super(limit, now);
    this.edge = edge;
  }

  /** Brings the in-memory table in line with the set (no edge writes). */
  private refresh(name: string): void {
    const table = super.get(name);
    if (!table) return;
    const real = new Set(this.edge.list(name));
    for (const entry of table.inPfOrder().filter((e) => !real.has(e))) super.deleteExact(name, entry);
    for (const entry of real) if (!table.has(entry)) super.add(name, entry);
  }

  override declare(name: string): PfTable {
    const table = super.declare(name);
    this.edge.declare(name);
    return table;
  }

  override get(name: string): PfTable | undefined {
    this.refresh(name);
    return super.get(name);
  }

  override add(name: string, address: string): PfAddResult {
    this.refresh(name);
    const result = super.add(name, address);
    // super.add created the table through this.declare, so the sets exist.
    if (result === 'added') this.edge.add(name, [pfctlParse(address)!.text]);
    return result;
  }

  override addBatch(name: string, addresses: readonly string[]): number {
    this.refresh(name);
    const added = super.addBatch(name, addresses);
    this.edge.add(name, this.spellAll(addresses));
    return added;
  }

  override deleteExact(name: string, text: string): boolean {
    this.refresh(name);
    const removed = super.deleteExact(name, text);
    if (removed) this.edge.delete(name, [text]);
    return removed;
  }

  override flush(name: string): number {
    this.refresh(name);
    const count = super.flush(name);
    this.edge.flush(name);
    return count;
  }

  /** The sets stay (the drop rules reference them), emptied: a table pf no longer has matches nothing. */
  override destroy(name: string): void {
    super.destroy(name);
    this.edge.flush(name);
  }

  override replace(name: string, addresses: readonly string[]): { ok: boolean; currentSize: number; newSize: number } {
    this.refresh(name);
    const result = super.replace(name, addresses);
    if (result.ok) {
      this.edge.flush(name);
      this.edge.add(name, super.get(name)?.inPfOrder() ?? []);
    }
    return result;
  }
}
