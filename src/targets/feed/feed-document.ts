import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { AddressFamily } from '../../net/address.ts';

/** Which addresses a feed request wants: one family, or both (null). */
export type FeedFamily = AddressFamily | null;

/** One rendering of a feed: what `GET /blocklist/{target}.txt` answers. */
export interface FeedDocument {
  /** One pf-spelled address or CIDR per line, each line ending in `\n`; empty when nothing is banned. */
  body: string;
  /** A strong ETag: the body's hash, so equal content gives the same tag across restarts and replicas. */
  etag: string;
  entries: number;
}

interface Keyed {
  text: string;
  family: AddressFamily;
  key: string;
}

/**
 * A sort key that orders like the numbers: the address as fixed-width hex, then the prefix. IPv4
 * (most of a ledger) is split by hand; ipaddr.js only for IPv6, as it costs several times more.
 */
function keyOf(text: string): Keyed {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  if (!address.includes(':')) {
    const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
    const prefix = slash === -1 ? 32 : Number(text.slice(slash + 1));
    return { text, family: 4, key: `${(((a << 24) >>> 0) + (b << 16) + (c << 8) + d).toString(16).padStart(8, '0')}/${prefix.toString().padStart(3, '0')}` };
  }
  const prefix = slash === -1 ? 128 : Number(text.slice(slash + 1));
  return { text, family: 6, key: `${ipv6Hex(address)}/${prefix.toString().padStart(3, '0')}` };
}

/** 32 hex digits; `::` expanded by hand, ipaddr.js only for a dotted tail (`::ffff:192.0.2.1`). */
function ipv6Hex(address: string): string {
  if (address.includes('.'))
    return ipaddr
      .parse(address)
      .toByteArray()
      .map((x) => x.toString(16).padStart(2, '0'))
      .join('');
  const [head = '', tail] = address.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const middle = Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((g) => g.padStart(4, '0')).join('');
}

function compare(a: Keyed, b: Keyed): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Renders addresses (already in pf spelling, as the ledger holds them) in one deterministic order,
 * IPv4 before IPv6, each numerically: the same set gives the same body and ETag whatever order it
 * was banned in, so a firewall polling with If-None-Match gets 304 until something changes.
 */
export function renderFeed(addresses: Iterable<string>, family: FeedFamily): FeedDocument {
  const keyed: Keyed[] = [];
  for (const text of addresses) {
    const key = keyOf(text);
    if (family === null || key.family === family) keyed.push(key);
  }
  keyed.sort(compare);
  const body = keyed.map((k) => `${k.text}\n`).join('');
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  return { body, etag, entries: keyed.length };
}

/** Whether an If-None-Match header names this ETag (a list, weak forms and `*` included). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}

export type FeedRequest = { target: string; family: FeedFamily };

/**
 * `/blocklist/{target}.txt`, `/blocklist/{target}-v4.txt`, `-v6.txt`, with `?family=4|6`; the
 * target percent-decoded (`opnsense:https://fw/alias` targets need it). Returns null for a path
 * that is not a feed, or a string naming what is wrong with the request.
 */
export function parseFeedRequest(url: URL, isTarget: (id: string) => boolean): FeedRequest | null | string {
  const match = /^\/blocklist\/([^/]+)\.txt$/.exec(url.pathname);
  if (!match) return null;
  let name: string;
  try {
    name = decodeURIComponent(match[1]!);
  } catch {
    return 'the target name is not valid percent-encoding';
  }
  let family: FeedFamily = null;
  const suffix = /-v([46])$/.exec(name);
  // A target whose own name ends in -v4 wins over the suffix (alias names cannot hold `-`, other ids might).
  if (suffix && !isTarget(name)) {
    family = Number(suffix[1]) as AddressFamily;
    name = name.slice(0, -3);
  }
  const query = url.searchParams.get('family');
  if (query !== null) {
    if (query !== '4' && query !== '6') return 'family must be 4 or 6';
    if (family !== null && Number(query) !== family) return `family=${query} contradicts the -v${family} in the path`;
    family = Number(query) as AddressFamily;
  }
  return { target: name, family };
}
