/**
 * pf spelling of matched addresses on the per-line path. parsePfAddress is the authority; the
 * fast paths below give byte-identical output for the common forms (a canonical dotted quad,
 * a plain hex IPv6 address) without its exception-driven parsing, and a bounded memo covers the rest.
 */
import { InvalidAddressError, parsePfAddress } from '../net/address.ts';

const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const PLAIN_IPV6 = /^[0-9a-fA-F:]+$/;
const CACHE_MAX = 4096;

/** RFC 5952 text of a hex-only IPv6 address; null when it is malformed or IPv4-mapped (pf spells those as IPv4). */
export function canonicalIpv6(text: string): string | null {
  if (!PLAIN_IPV6.test(text)) return null;
  const double = text.indexOf('::');
  if (double !== -1 && text.indexOf('::', double + 1) !== -1) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const h of part.split(':')) {
      if (h.length < 1 || h.length > 4) return null;
      out.push(parseInt(h, 16));
    }
    return out;
  };
  let words: number[];
  if (double === -1) {
    const all = parse(text);
    if (all === null || all.length !== 8) return null;
    words = all;
  } else {
    const head = parse(text.slice(0, double));
    const tail = parse(text.slice(double + 2));
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) return null;
  // Longest run of zero words (length >= 2, first on ties) becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export class AddressSpeller {
  private readonly cache = new Map<string, string | null>();

  /** pf spelling of an address or CIDR; null if it is not a valid one. */
  spell(text: string): string | null {
    if (CANONICAL_IPV4.test(text)) return text;
    const v6 = canonicalIpv6(text);
    if (v6 !== null) return v6;
    const cached = this.cache.get(text);
    if (cached !== undefined) return cached;
    let value: string | null;
    try {
      value = parsePfAddress(text).text;
    } catch (error) {
      if (!(error instanceof InvalidAddressError)) throw error;
      value = null;
    }
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(text, value);
    return value;
  }
}
