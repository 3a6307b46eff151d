import type { TargetKind } from '../edge-target.ts';
import { ledgerTargetOf } from '../target-ids.ts';
import { requiredParam, TargetOptionError } from '../target-options.ts';
import { FeedTarget } from './feed-target.ts';

export interface FeedOptions {
  /** The feed's name: ledger target `feed:NAME`, served at `/blocklist/NAME.txt`. */
  name: string;
}

/** The ledger target a feed's bans are recorded under (the registry's `kind:identity`). */
export function feedLedgerTarget(name: string): string {
  return ledgerTargetOf('feed', name);
}

/**
 * The feeds of one process by ledger target: what the reconcilers of the feed kind drive and what
 * `GET /blocklist/…` serves (src/targets/feed/ledger-feeds.ts). The same FeedTarget lives on across
 * reloads, which rebuild reconcilers, so a reload never serves an empty feed.
 */
export class FeedBoard {
  private readonly feeds = new Map<string, FeedTarget>();

  target(ledgerTarget: string): FeedTarget {
    let feed = this.feeds.get(ledgerTarget);
    // Named `feed pfsense` in status and metrics, not `feed feed:pfsense`.
    if (!feed) this.feeds.set(ledgerTarget, (feed = new FeedTarget(ledgerTarget.replace(/^feed:/, ''))));
    return feed;
  }

  get(ledgerTarget: string): FeedTarget | null {
    return this.feeds.get(ledgerTarget) ?? null;
  }
}

export interface FeedKind extends TargetKind<FeedOptions> {
  readonly board: FeedBoard;
}

/**
 * `feed[name=pfsense]` (or EDGEBAN_FEED_NAME): bans that go only into a pull feed, for firewalls
 * that fetch a URL table (pfSense, FortiGate) and have no per-entry API. The kind owns its board,
 * as the Cloudflare kind owns its account locks.
 */
export function createFeedKind(board = new FeedBoard()): FeedKind {
  return {
    kind: 'feed',
    board,
    // The token is read only to refuse a feed that would never be served; the route reads it from the env itself.
    env: { EDGEBAN_FEED_NAME: 'name', EDGEBAN_FEED_TOKEN: 'token' },
    secretParams: ['token'],
    // The route reads the token from the env: one written in a jail file would pass this check and serve nothing.
    envOnlyParams: ['token'],
    parseOptions(params) {
      for (const key of Object.keys(params))
        if (key !== 'name' && key !== 'token') throw new TargetOptionError(key, `${key}: unknown parameter; feed takes name`);
      const name = requiredParam(params, 'name', "the feed's name, served at /blocklist/NAME.txt; or EDGEBAN_FEED_NAME");
      // Bans into a feed nobody may fetch reach no firewall: refused at start, not found by a user later.
      if ((params.token ?? '').trim() === '') {
        throw new TargetOptionError(
          'token',
          'EDGEBAN_FEED_TOKEN is not set: a feed is served only with EDGEBAN_FEED_TOKEN (or EDGEBAN_FEED_TOKEN_FILE) and EDGEBAN_METRICS_LISTEN; without them these bans reach no firewall',
        );
      }
      // Letters, digits, _ . -: a path segment that needs no encoding, in a firewall's URL field too.
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new TargetOptionError('name', 'name: letters, digits, _, . or -, at most 64');
      return { name };
    },
    identity: (options) => options.name,
    create: (options) => board.target(feedLedgerTarget(options.name)),
  };
}

export const feedKind: FeedKind = createFeedKind();
