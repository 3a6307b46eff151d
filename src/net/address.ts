import ipaddr from 'ipaddr.js';

export type AddressFamily = 4 | 6;

/** An address or network in the spelling pf prints and matches (`pfctl -T show`). */
export interface PfAddress {
  /** `192.0.2.1`, `198.51.100.0/24`, `2001:db8::1`, `2001:db8:1::/64`: no /32 or /128, host bits masked, lowercase compressed IPv6. */
  readonly text: string;
  readonly family: AddressFamily;
  /** Prefix length; 32 or 128 for a single host. */
  readonly prefix: number;
}

export class InvalidAddressError extends Error {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid address ${JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input)}: ${reason}`);
    this.name = 'InvalidAddressError';
    this.input = input;
  }
}

/**
 * An offender's address or network in pf spelling. Strict on purpose: legacy IPv4 forms (`127.1`,
 * `0x7f.0.0.1`), zone ids and host names are rejected, because OPNsense answers `done` for
 * whatever pfctl silently fails to add. An IPv4-mapped IPv6 host (`::ffff:a.b.c.d`, as a
 * dual-stack socket logs an IPv4 client) is the IPv4 attacker, so it becomes `a.b.c.d`: an IPv6
 * entry would never match IPv4 traffic. Every way a ban enters the ledger goes through this.
 */
export function parsePfAddress(input: string): PfAddress {
  const { address, prefix } = parseParts(input);
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && prefix >= 96) {
    return spell(address.toIPv4Address(), prefix - 96);
  }
  return spell(address, prefix);
}

/**
 * A pf table entry in the one canonical spelling edgeban compares entries in: what `pfctl -T show`
 * prints (no /32 or /128, host bits masked, IPv6 lower case and compressed as FreeBSD's inet_ntop
 * does, an IPv4-mapped or -compatible entry in mixed notation). Unlike parsePfAddress it keeps the
 * family: `::ffff:192.0.2.1` in a table is an IPv6 entry, not the IPv4 ban `192.0.2.1`, so a
 * delete of the one must never be sent as the other. List rows, the client's add/delete spelling
 * and foreign-entry handling all use this; ledger addresses (parsePfAddress) are already in it.
 */
export function parsePfEntry(input: string): PfAddress {
  const { address, prefix } = parseParts(input);
  return spell(address, prefix);
}

/** parsePfEntry's spelling, or null when the input is no address or CIDR. */
export function pfEntryOrNull(input: string): string | null {
  try {
    return parsePfEntry(input).text;
  } catch {
    return null;
  }
}

/** The canonical spelling of a list row, or the row itself (trimmed) when it is no address at all. */
export function canonicalEntry(row: string): string {
  try {
    return parsePfEntry(row).text;
  } catch {
    return row.trim();
  }
}

function parseParts(input: string): { address: ipaddr.IPv4 | ipaddr.IPv6; prefix: number } {
  const raw = input.trim();
  if (raw === '') throw new InvalidAddressError(input, 'empty');
  if (raw.includes('%')) throw new InvalidAddressError(input, 'zone ids are not addresses pf can block');
  const slash = raw.indexOf('/');
  const addressPart = slash === -1 ? raw : raw.slice(0, slash);
  const prefixPart = slash === -1 ? null : raw.slice(slash + 1);
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  // An IPv6 address never passes as IPv4, and ipaddr.js's IPv4 check throws and catches inside.
  const colon = addressPart.includes(':');
  if (!colon && ipaddr.IPv4.isValidFourPartDecimal(addressPart)) {
    address = ipaddr.IPv4.parse(addressPart);
  } else if (colon && ipaddr.IPv6.isValid(addressPart)) {
    address = ipaddr.IPv6.parse(dottedTailToHex(addressPart));
  } else {
    throw new InvalidAddressError(input, 'not an IPv4 or IPv6 address');
  }
  let prefix: number;
  if (prefixPart === null) {
    prefix = address.kind() === 'ipv4' ? 32 : 128;
  } else {
    if (!/^\d{1,3}$/.test(prefixPart)) throw new InvalidAddressError(input, 'prefix length must be a number');
    prefix = Number(prefixPart);
  }
  const max = address.kind() === 'ipv4' ? 32 : 128;
  if (prefix > max) throw new InvalidAddressError(input, `prefix length ${prefix} exceeds ${max}`);
  return { address, prefix };
}

/**
 * `::192.0.2.1` → `::c000:201`. ipaddr.js reads any dotted tail as IPv4-mapped (`::ffff:…`), which
 * would turn an IPv4-compatible entry into a different address.
 */
function dottedTailToHex(text: string): string {
  const match = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!match) return text;
  const [a, b, c, d] = match.slice(2).map(Number) as [number, number, number, number];
  return `${match[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

function spell(address: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): PfAddress {
  const family: AddressFamily = address.kind() === 'ipv4' ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  const bytes = maskHostBits(address.toByteArray(), prefix);
  const spelled = family === 4 ? bytes.join('.') : inetNtop6(bytes);
  return { text: prefix === max ? spelled : `${spelled}/${prefix}`, family, prefix };
}

/** pf spelling of `input`; throws InvalidAddressError. */
export function toPfSpelling(input: string): string {
  return parsePfAddress(input).text;
}

export function isValidAddress(input: string): boolean {
  try {
    parsePfAddress(input);
    return true;
  } catch {
    return false;
  }
}

function maskHostBits(bytes: number[], prefix: number): number[] {
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return bytes;
}

/**
 * FreeBSD libc's inet_ntop for IPv6, which pfctl prints table entries with: the first longest run
 * of two or more zero groups compressed, lower-case hex, and the last 32 bits in dotted form for
 * IPv4-compatible (`::a.b.c.d`) and IPv4-mapped (`::ffff:a.b.c.d`) addresses.
 */
function inetNtop6(bytes: readonly number[]): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
      if (best.base === -1 || cur.len > best.len) best = cur;
    } else {
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 7 && words[7] !== 1) || (best.len === 5 && words[5] === 0xffff))) {
      out += bytes.slice(12).join('.');
      return out;
    }
    out += (words[i] ?? 0).toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}
