/**
 * fail2ban's regex tags (failregex.py `Regex._resolveHostTag`): `<HOST>`, `<ADDR>`, `<IP4>`,
 * `<IP6>`, `<CIDR>`, `<SUBNET>`, `<DNS>`, `<F-ID/>`, `<SKIPLINES>` and the custom
 * `<F-NAME>…</F-NAME>` capture tags. The output is still Python syntax; python-regex.ts
 * translates it.
 */

const IP_4_RE = String.raw`(?:\d{1,3}\.){3}\d{1,3}`;
const IP_6_RE = String.raw`(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)`;

const R_IPV4 = String.raw`(?:::f{4,6}:)?(?P<ip4>${IP_4_RE})`;
const R_IPV6 = String.raw`(?P<ip6>${IP_6_RE})`;
const R_DNS = String.raw`(?P<dns>[\w\-.^_]*\w)`;
const R_ADDR = String.raw`\[?(?:${R_IPV4}|${R_IPV6})\]?`;
const R_HOST = `(?:${R_ADDR}|${R_DNS})`;
const R_CIDR = String.raw`(?P<cidr>\d+)`;
const R_SUBNET = String.raw`\[?(?:${R_IPV4}|${R_IPV6})(?:/${R_CIDR})?\]?`;

const STATIC_TAGS: Record<string, string> = {
  IP4: R_IPV4,
  'F-IP4/': R_IPV4,
  IP6: R_IPV6,
  'F-IP6/': R_IPV6,
  ADDR: R_ADDR,
  'F-ADDR/': R_ADDR,
  CIDR: R_CIDR,
  'F-CIDR/': R_CIDR,
  SUBNET: R_SUBNET,
  'F-SUBNET/': R_SUBNET,
  DNS: R_DNS,
  'F-DNS/': R_DNS,
  'F-ID/': String.raw`(?P<fid>\S+)`,
  'F-PORT/': String.raw`(?P<fport>\w+)`,
};

const TAG_RE = /<\/?[\w-]+\/?>/g;
const CUSTOM_RE = /^(\/?)F-([A-Z0-9_-]+)$/;
const GROUP_MAP: Record<string, string> = { id: 'fid', port: 'fport' };

/** Group name a custom tag maps to (`F-USER` → `user`, `F-ID` → `fid`). */
export function tagGroupName(tag: string): string {
  const lower = tag.toLowerCase();
  return GROUP_MAP[lower] ?? lower;
}

export type UseDns = 'yes' | 'warn' | 'no' | 'raw';

/** Replaces fail2ban tags with their regexes, exactly where fail2ban would. */
export function expandTags(regex: string, useDns: UseDns = 'warn'): string {
  return expandTagsWithNames(regex, useDns).regex;
}

/** expandTags, also naming the groups that custom `<F-NAME>` tags opened (the captured tags). */
export function expandTagsWithNames(regex: string, useDns: UseDns = 'warn'): { regex: string; tagNames: Set<string>; sourcePosition: (at: number) => number } {
  const open = new Set<string>();
  const tagNames = new Set<string>();
  let skipLines = 0;
  // Each replaced tag: where it was and how long its expansion is, to map an error position back.
  const spans: Array<{ at: number; length: number; expanded: number }> = [];
  const expand = (tag: string): string => {
    const name = tag.slice(1, -1);
    if (name === 'HOST') return useDns === 'no' ? R_ADDR : R_HOST;
    if (name === 'SKIPLINES') return String.raw`\n(?P<skiplines${skipLines++}>(?:(?:.*\n)*?))`;
    const fixed = STATIC_TAGS[name];
    if (fixed !== undefined) return fixed;
    const m = CUSTOM_RE.exec(name);
    if (!m) return tag;
    const tn = m[2] as string;
    if (m[1] === '/') return open.has(tn) ? ')' : tag;
    open.add(tn);
    tagNames.add(tagGroupName(tn));
    return `(?P<${tagGroupName(tn)}>`;
  };
  const out = regex.replace(TAG_RE, (tag: string, offset: number) => {
    const replacement = expand(tag);
    spans.push({ at: offset, length: tag.length, expanded: replacement.length });
    return replacement;
  });
  /** Position `at` of the expansion in the regex as written: inside a tag's expansion, the tag's start. */
  const sourcePosition = (at: number): number => {
    let shift = 0;
    for (const span of spans) {
      const start = span.at + shift;
      if (at < start) break;
      if (at < start + span.expanded) return span.at;
      shift += span.expanded - span.length;
    }
    return Math.max(0, at - shift);
  };
  if (/(?:^|[^\\])\(\?P<fid>/.test(out)) tagNames.add('fid');
  if (/(?:^|[^\\])\(\?P<fport>/.test(out)) tagNames.add('fport');
  return { regex: out, tagNames, sourcePosition };
}
