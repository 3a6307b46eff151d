import { parsePfAddress } from '../../net/address.ts';
import type { DesiredEntry, EdgeTarget, ListedEntry, TargetCapabilities, TargetCheckResult } from '../edge-target.ts';
import { renderFeed, type FeedDocument, type FeedFamily } from './feed-document.ts';

/**
 * A pull feed as an edge target: what it holds is exactly what `GET /blocklist/{target}.txt`
 * serves, and firewalls (OPNsense or pfSense URL Table, FortiGate threat feed) fetch it. Every
 * entry is edgeban's (the feed is its own), nothing expires by itself, and add/delete cannot fail:
 * the only way a feed goes wrong is a firewall not fetching it, which it cannot see.
 */
export class FeedTarget implements EdgeTarget {
  readonly kind = 'feed';
  readonly id: string;
  readonly capabilities: TargetCapabilities = { nativeExpiry: false, bulk: true, killConnections: false, comments: false };
  private readonly entries = new Set<string>();
  private rendered: { family: FeedFamily; document: FeedDocument }[] = [];

  /** `target`: the ledger target served, e.g. `fail2ban_blocklist`. */
  constructor(target: string) {
    this.id = `feed ${target}`;
  }

  canonical(address: string): string | null {
    try {
      return parsePfAddress(address).text;
    } catch {
      return null;
    }
  }

  check(): Promise<TargetCheckResult> {
    return Promise.resolve({ errors: [], warnings: [], facts: { entries: String(this.entries.size) } });
  }

  list(): Promise<ListedEntry[]> {
    return Promise.resolve([...this.entries].map((address) => ({ address, owned: true })));
  }

  add(entry: DesiredEntry): Promise<void> {
    return this.addMany([entry]);
  }

  delete(address: string): Promise<void> {
    return this.deleteMany([address]);
  }

  addMany(entries: readonly DesiredEntry[]): Promise<void> {
    this.hold(entries.map((e) => e.address));
    return Promise.resolve();
  }

  deleteMany(addresses: readonly string[]): Promise<void> {
    this.drop(addresses);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Synchronous forms, for a caller that keeps the feed equal to the ledger as changes arrive. */
  hold(addresses: Iterable<string>): void {
    this.holdCanonical(this.canonicalAll(addresses));
  }

  drop(addresses: Iterable<string>): void {
    this.dropCanonical(this.canonicalAll(addresses));
  }

  /** Addresses already in pf spelling (the ledger's keys): not parsed again, their strings shared. */
  holdCanonical(addresses: Iterable<string>): void {
    for (const address of addresses) {
      if (this.entries.has(address)) continue;
      this.entries.add(address);
      this.rendered = [];
    }
  }

  /** Exactly these addresses (pf spelling) from now on. */
  holdOnlyCanonical(addresses: Iterable<string>): void {
    const wanted = new Set(addresses);
    this.dropCanonical([...this.entries].filter((address) => !wanted.has(address)));
    this.holdCanonical(wanted);
  }

  dropCanonical(addresses: Iterable<string>): void {
    for (const address of addresses) if (this.entries.delete(address)) this.rendered = [];
  }

  private canonicalAll(addresses: Iterable<string>): string[] {
    const out: string[] = [];
    for (const address of addresses) {
      const canonical = this.canonical(address);
      if (canonical !== null) out.push(canonical);
    }
    return out;
  }

  /** The feed body for a family (or both), rendered once per change however often firewalls poll. */
  document(family: FeedFamily): FeedDocument {
    const cached = this.rendered.find((r) => r.family === family);
    if (cached) return cached.document;
    const document = renderFeed(this.entries, family);
    this.rendered.push({ family, document });
    return document;
  }
}
