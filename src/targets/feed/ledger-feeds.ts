import type { Ledger, LedgerChange } from '../../ledger/ledger.ts';
import type { FeedDocument, FeedFamily } from './feed-document.ts';
import { feedKind, feedLedgerTarget, type FeedBoard } from './feed-kind.ts';
import { FeedTarget } from './feed-target.ts';
import { parseLedgerTarget } from '../target-ids.ts';

/**
 * One FeedTarget per ledger target, kept equal to the ledger's active bans: filled from the
 * ledger when first asked for, then moved by each change the ledger announces (bans, unbans,
 * expiries, other replicas' writes).
 *
 * A `feed[name=…]` target's feed lives on the feed kind's board: it is the very
 * FeedTarget its reconciler drives (status, health and metrics report it like any backend). The
 * ledger moves it too, because a reconciler alone would serve an empty or partial list before its
 * first pass and for ever on a replica that does not enforce, and a firewall that fetches a URL
 * table takes an empty list as "unban everything" until its next refresh.
 */
export class LedgerFeeds {
  private readonly ledger: Ledger;
  private readonly targets: () => readonly string[];
  private readonly board: FeedBoard;
  /** The feeds of other ledger targets (an OPNsense alias's, for durable mode): this object's alone. */
  private readonly own = new Map<string, FeedTarget>();
  /** Ledger targets whose feed was filled from the ledger and follows its changes. */
  private readonly followed = new Set<string>();
  private readonly unsubscribe: () => void;

  /** `targets`: the ledger targets a feed may be asked for (those enforced now, and any the ledger holds). */
  constructor(ledger: Ledger, targets: () => readonly string[], board: FeedBoard = feedKind.board) {
    this.ledger = ledger;
    this.targets = targets;
    this.board = board;
    this.unsubscribe = ledger.onChange((changes) => this.apply(changes));
  }

  isTarget(id: string): boolean {
    return this.resolve(id) !== null;
  }

  /** The feed of a target, or null when there is no such target. */
  feed(id: string): FeedTarget | null {
    const target = this.resolve(id);
    if (target === null) return null;
    const feed = this.feedOf(target);
    if (!this.followed.has(target)) {
      // The ledger holds pf spelling already (parsePfAddress on every ban).
      feed.holdOnlyCanonical(this.ledger.activeAddresses(target));
      this.followed.add(target);
    }
    return feed;
  }

  document(id: string, family: FeedFamily): FeedDocument | null {
    return this.feed(id)?.document(family) ?? null;
  }

  close(): void {
    this.unsubscribe();
  }

  /** A ledger target by its name, or a `feed[name=NAME]` target by NAME alone (`/blocklist/pfsense.txt`). */
  private resolve(id: string): string | null {
    const known = (target: string) => this.followed.has(target) || this.targets().includes(target) || this.ledger.targets().includes(target);
    if (known(id)) return id;
    const feed = feedLedgerTarget(id);
    return known(feed) ? feed : null;
  }

  private feedOf(target: string): FeedTarget {
    if (parseLedgerTarget(target)?.kind === 'feed') return this.board.target(target);
    let feed = this.own.get(target);
    if (!feed) this.own.set(target, (feed = new FeedTarget(target)));
    return feed;
  }

  private apply(changes: readonly LedgerChange[]): void {
    for (const { target, address } of changes) {
      if (!this.followed.has(target)) continue;
      const feed = this.feedOf(target);
      if (this.ledger.isActive(target, address)) feed.holdCanonical([address]);
      else feed.dropCanonical([address]);
    }
  }
}
