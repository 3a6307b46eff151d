import { isLoopbackHost } from '../config/env.ts';
import type { UrlTableSource } from '../targets/opnsense/admin-client.ts';

/** The URL table setup-opnsense --durable points the alias at: edgeban's feed, fetched with the feed token as a bearer token. */
export function durableSource(feedUrl: string, token: string, refreshHours: number): UrlTableSource {
  // updatefreq is in days; six decimals keep a 1-minute refresh distinct (the cron runs every minute).
  return { url: feedUrl, updatefreq: String(Number((refreshHours / 24).toFixed(6))), authtype: 'Bearer', username: '', password: token };
}

/** Problems with --feed-url that make it useless to a firewall, or null. */
export function feedUrlProblem(feedUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(feedUrl);
  } catch {
    return 'not a URL (expected e.g. https://edgeban.example.org/blocklist/fail2ban_blocklist.txt)';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `expected http:// or https://, got ${url.protocol}//`;
  if (url.username !== '' || url.password !== '') return 'no credentials in the URL: the feed token (EDGEBAN_FEED_TOKEN) is sent as a bearer token';
  if (!/^\/blocklist\/[^/]+\.txt$/.test(url.pathname)) return `the path must be /blocklist/TARGET.txt (or -v4.txt, -v6.txt), got ${url.pathname}`;
  return null;
}

/** A warning when the token would cross a network in clear text. */
export function feedUrlWarning(feedUrl: string): string | null {
  const url = new URL(feedUrl);
  if (url.protocol === 'https:' || isLoopbackHost(url.hostname)) return null;
  return `--feed-url is plain http: the feed token crosses the network in clear text. Put the feed behind a TLS proxy (deploy/opnsense-durable.md), or keep it on a network only the firewall reaches`;
}

/**
 * Fetches the feed as the firewall will, before anything is changed: a wrong URL, a wrong token or
 * a feed that is off would otherwise leave a URL table that silently holds nothing after a reboot.
 */
export async function checkFeed(feedUrl: string, token: string, timeoutMs = 10_000): Promise<{ entries: number }> {
  let response: Response;
  try {
    response = await fetch(feedUrl, {
      headers: { authorization: `Bearer ${token}`, 'user-agent': 'edgeban setup-opnsense' },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new Error(
      `the feed ${feedUrl} does not answer (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}): is edgeban running with EDGEBAN_METRICS_LISTEN and EDGEBAN_FEED_TOKEN, and is the URL reachable?`,
    );
  }
  const body = await response.text();
  if (response.status === 401) throw new Error(`the feed ${feedUrl} refused the token (401): EDGEBAN_FEED_TOKEN here must be the daemon's`);
  if (response.status === 404) throw new Error(`the feed ${feedUrl} answered 404: the feed is off (no EDGEBAN_FEED_TOKEN in the daemon) or no such target`);
  if (response.status !== 200) throw new Error(`the feed ${feedUrl} answered HTTP ${response.status}`);
  return { entries: body.split('\n').filter((line) => line !== '').length };
}
