import type { Ledger, LedgerChange } from '../../ledger/ledger.ts';
import type { FeedDocument, FeedFamily } from './feed-document.ts';
import { FeedTarget } from './feed-target.ts';

/**
 * One FeedTarget per ledger target, kept equal to the ledger's active bans: filled from the
 * ledger when first asked for, then moved by each change the ledger announces (bans, unbans,
 * expiries, other replicas' writes). A feed cannot fail, so no reconcile pass is needed to repair it.
 */
export class LedgerFeeds {
  private readonly ledger: Ledger;
  private readonly targets: () => readonly string[];
  private readonly feeds = new Map<string, FeedTarget>();
  private readonly unsubscribe: () => void;

  /** `targets`: the ledger targets a feed may be asked for (those enforced now, and any the ledger holds). */
  constructor(ledger: Ledger, targets: () => readonly string[]) {
    this.ledger = ledger;
    this.targets = targets;
    this.unsubscribe = ledger.onChange((changes) => this.apply(changes));
  }

  isTarget(id: string): boolean {
    return this.feeds.has(id) || this.targets().includes(id) || this.ledger.targets().includes(id);
  }

  /** The feed of a target, or null when there is no such target. */
  feed(id: string): FeedTarget | null {
    let feed = this.feeds.get(id);
    if (feed) return feed;
    if (!this.isTarget(id)) return null;
    feed = new FeedTarget(id);
    // The ledger holds pf spelling already (parsePfAddress on every ban).
    feed.holdCanonical(this.ledger.activeAddresses(id));
    this.feeds.set(id, feed);
    return feed;
  }

  document(id: string, family: FeedFamily): FeedDocument | null {
    return this.feed(id)?.document(family) ?? null;
  }

  close(): void {
    this.unsubscribe();
  }

  private apply(changes: readonly LedgerChange[]): void {
    for (const { target, address } of changes) {
      const feed = this.feeds.get(target);
      if (!feed) continue;
      if (this.ledger.isActive(target, address)) feed.holdCanonical([address]);
      else feed.dropCanonical([address]);
    }
  }
}
