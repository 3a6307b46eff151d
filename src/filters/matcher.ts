/**
 * Runs a compiled filter over log lines with fail2ban's semantics (filter.py processLine /
 * findFailure, server mode: first matching failregex wins): the date is found and cut out of the
 * line, prefregex and <F-CONTENT> narrow it, failregex and ignoreregex decide, multi-line filters
 * buffer `maxlines` lines, and <F-MLFID> / <F-NOFAIL> / <F-MLFFORGET> tie lines of one session.
 */
import { AddressSpeller } from './address-spelling.ts';
import { isAsciiText } from './ascii.ts';
import { mayMatch, type RequiredText } from './literals.ts';
import type { CompiledFilter, CompiledRegex } from './compile.ts';
import { DateDetector } from './dates/detector.ts';
import { JsonLineProjector, looksLikeJson } from './json-line.ts';

export interface LineResult {
  /** A failure: the line (with its buffered predecessors) matched a failregex and no ignoreregex. */
  match: boolean;
  /** The attacker address in pf spelling; null when the match gave a host name or nothing usable. */
  host: string | null;
  /** Epoch seconds (float) of the line's time stamp; null when it has none. */
  time: number | null;
  /** Index of the failregex that matched, else null. */
  failregexIndex: number | null;
  /** Captured tags: user, id, port and any custom <F-…> tag. */
  tags: Record<string, string>;
  /** A failregex matched but an ignoreregex (or <F-NOFAIL>) cancelled it. */
  ignored: boolean;
  /** A <HOST> matched a host name: never resolved, reported here. */
  hostname?: string;
  /** An address-shaped capture that is not a valid address (e.g. 300.1.2.3). */
  invalidHost?: string;
}

export interface MatcherStats {
  lines: number;
  matched: number;
  ignored: number;
  missed: number;
  perFailregex: number[];
  hostnames: number;
  invalidHosts: number;
  noTime: number;
}

export interface MatcherOptions {
  /** Reference time, epoch seconds, for stamps without a year (and {NONE} dates). */
  now: number;
}

type Groups = Record<string, string | undefined>;

interface TupleLine {
  pre: string;
  date: string;
  post: string;
}

// Groups that carry the address or engine state rather than a user-visible tag.
const INTERNAL = new Set(['ip4', 'ip6', 'dns', 'cidr', 'content', 'mlfid', 'nofail', 'mlfforget', 'mlfgained', 'mlfpending']);
const TAG_RENAME: Record<string, string> = { fid: 'id', fport: 'port' };
const MLFID_CACHE_SIZE = 100;
/** Shared by every result without tags (most lines): one object fewer per line. */
const NO_TAGS: Record<string, string> = Object.freeze({}) as Record<string, string>;

interface MlfidEntry {
  groups: Groups;
  users: Set<string> | null;
}

export class FilterMatcher {
  readonly stats: MatcherStats;
  private readonly filter: CompiledFilter;
  private readonly dates: DateDetector;
  private now: number;
  private lastDate: number | null = null;
  private lastTimeText = '';
  private lineBuffer: TupleLine[] = [];
  private readonly mlfidCache = new Map<string, MlfidEntry>();
  private readonly speller = new AddressSpeller();
  /** The groups reported as tags, and the name each is reported under. */
  private readonly tagKeys: Array<[string, string]>;
  private readonly json: JsonLineProjector | null;
  /**
   * The literal gate, when it may be run on the whole line: single-line filters whose key
   * literals hold no newline (the line the regexes see ends in one the log line lacks).
   */
  private readonly wholeLineGate: RegExp | null;

  constructor(filter: CompiledFilter, options: MatcherOptions) {
    this.filter = filter;
    const gate = filter.gateRegex;
    this.wholeLineGate = filter.maxlines === 1 && gate !== null && !/\n|\\n/.test(gate.source) ? gate : null;
    this.json = filter.jsonline === null ? null : new JsonLineProjector(filter.jsonline);
    this.now = options.now;
    this.tagKeys = [...filter.tagNames].filter((k) => !INTERNAL.has(k) && !k.startsWith('alt_')).map((k) => [k, TAG_RENAME[k] ?? k]);
    this.dates = new DateDetector({ datepattern: filter.datepattern, logtimezone: filter.logtimezone, now: options.now });
    this.stats = { lines: 0, matched: 0, ignored: 0, missed: 0, perFailregex: filter.failregex.map(() => 0), hostnames: 0, invalidHosts: 0, noTime: 0 };
  }

  /**
   * Moves the reference time: year-less stamps are inferred against it and a line without a stamp
   * borrows the last one only if that is under a minute old. A daemon calls this as time passes.
   */
  setNow(now: number): void {
    this.now = now;
    this.dates.setNow(now);
  }

  /**
   * Processes one line (without its newline). The result is a fresh object the caller may keep.
   * `ascii` may pass on what the caller knows (a whole chunk of the log was pure ASCII).
   */
  processLine(line: string, ascii: boolean = isAsciiText(line)): LineResult {
    const result: LineResult = { match: false, host: null, time: null, failregexIndex: null, tags: NO_TAGS, ignored: false };
    this.stats.lines++;
    // A jsonline filter sees a JSON line as its fields' values; a line that is not one JSON object matches nothing.
    if (this.json !== null && looksLikeJson(line)) {
      const projected = this.json.project(line);
      if (projected === null) {
        this.stats.missed++;
        return result;
      }
      line = projected;
      ascii = isAsciiText(line);
    }
    // Date: found, cut out of the line (fail2ban's tupleLine), or borrowed from the last line.
    let pre = '';
    let date = '';
    let post = line;
    let time: number | null = null;
    const dates = this.dates;
    if (dates.find(line, ascii)) {
      pre = line.slice(0, dates.start);
      date = line.slice(dates.start, dates.end);
      post = line.slice(dates.end);
      if (date !== '') {
        time = dates.time;
        if (time !== null) {
          this.lastTimeText = date;
          this.lastDate = time;
        }
      } else if (this.lastDate !== null && this.lastDate > this.now - 60) {
        // An optional (empty) date: the last known one if recent, else now.
        pre = '';
        date = this.lastTimeText;
        post = line;
        time = this.lastDate;
      } else {
        time = this.now;
      }
    }
    if (time === null && this.lastDate !== null && this.lastDate > this.now - 60) {
      pre = '';
      date = this.lastTimeText;
      post = line;
      time = this.lastDate;
    }
    result.time = time;
    if (time === null) this.stats.noTime++;
    if (this.filter.maxlines > 1) this.find(result, { pre, date, post }, ascii);
    // With nothing before the date, the text the regexes see (less its newline) is a suffix of
    // the line: a line holding none of the key literals cannot match, and most lines are such
    // lines, so they are rejected without building that text.
    else if (pre === '' && this.wholeLineGate !== null && !this.wholeLineGate.test(line)) {
      /* no match */
    } else this.findSingle(result, `${pre}${post}\n`, ascii);
    if (result.match) {
      this.stats.matched++;
      if (result.failregexIndex !== null) this.stats.perFailregex[result.failregexIndex] = (this.stats.perFailregex[result.failregexIndex] ?? 0) + 1;
      if (result.hostname !== undefined) this.stats.hostnames++;
      if (result.invalidHost !== undefined) this.stats.invalidHosts++;
    } else if (result.ignored) {
      this.stats.ignored++;
    } else {
      this.stats.missed++;
    }
    return result;
  }

  /** The single-line case (maxlines = 1) without fail2ban's line-buffer bookkeeping. */
  private findSingle(result: LineResult, line: string, ascii: boolean): void {
    // One scan for any failregex's key literal rules out most lines before any regex runs.
    const gate = this.filter.gateRegex;
    if (gate !== null && !gate.test(line)) return;
    this.decide(result, line, ascii, -1, null);
  }

  /** The multi-line case: the line joins the last `maxlines` lines, matched as one text. */
  private find(result: LineResult, tuple: TupleLine, ascii: boolean): void {
    const f = this.filter;
    this.lineBuffer.push(tuple);
    if (this.lineBuffer.length > f.maxlines) this.lineBuffer = this.lineBuffer.slice(-f.maxlines);
    const orgBuffer = this.lineBuffer;
    // Multi-line buffers may hold non-ASCII text from earlier lines.
    if (ascii) ascii = !orgBuffer.some((t) => !isAsciiText(t.pre) || !isAsciiText(t.post));
    const buf = tupleBuf(orgBuffer);
    // Cheap gate: which failregexes could match at all, judged by their required literals.
    let possible = -1;
    const gate = f.literalGate;
    if (gate !== null) {
      possible = 0;
      for (let i = 0; i < gate.length; i++) if (mayMatch(gate[i] as RequiredText, buf)) possible |= 1 << i;
      if (possible === 0) return;
    }
    this.decide(result, buf, ascii, possible, orgBuffer);
  }

  /**
   * fail2ban's findFailure on one text, for both paths: the prefregex narrows it (to its
   * <F-CONTENT>), the first failregex that matches wins, an ignoreregex over the text it matched
   * cancels it, and the prefregex's groups are merged under the failregex's. `possible` has bit i
   * set where failregex i may match (-1: all); `lines` is the multi-line buffer `buf` was built
   * from (null for one line), split after a match into the lines used and the ones kept.
   */
  private decide(result: LineResult, buf: string, ascii: boolean, possible: number, lines: TupleLine[] | null): void {
    const f = this.filter;
    let preGroups: Groups | null = null;
    if (f.prefregex) {
      const m = search(f.prefregex, buf, ascii);
      if (!m) return;
      preGroups = groupDict(f.prefregex, m);
      const content = preGroups.content;
      preGroups.content = undefined;
      if (content) {
        buf = `${content}\n`;
        if (lines) this.lineBuffer = [{ pre: '', date: '', post: content }];
      }
    }
    const failregex = f.failregex;
    for (let index = 0; index < failregex.length; index++) {
      if (possible !== -1 && !((possible >>> index) & 1)) continue;
      const regex = failregex[index] as CompiledRegex;
      const m = search(regex, buf, ascii);
      if (!m) continue;
      let fail = groupDict(regex, m);
      let ignoreBuf = buf;
      if (lines) {
        const split = splitMatch(regex, m, buf, lines);
        this.lineBuffer = split.unmatched;
        if (f.ignoreregex.length > 0) ignoreBuf = tupleBuf(split.matched);
      }
      for (const ignore of f.ignoreregex) {
        if (search(ignore, ignoreBuf, ascii) !== null) {
          result.ignored = true;
          return;
        }
      }
      if (preGroups) fail = mergeGroups(preGroups, fail, regex);
      this.finishFailure(result, index, fail);
      return;
    }
  }

  /** Session merging, <F-NOFAIL>, then the result fields. */
  private finishFailure(result: LineResult, index: number, failGroups: Groups): void {
    const mlfid = failGroups.mlfid;
    const fail = mlfid !== undefined ? this.mergeFailure(mlfid, failGroups) : failGroups;
    if (fail.nofail) {
      // Not a failure (yet): a session waiting for one, or fail2ban-regex's "ignored".
      result.ignored = true;
      return;
    }
    this.fillResult(result, index, fail);
  }

  private fillResult(result: LineResult, index: number, fail: Groups): void {
    let address: string | undefined;
    let cidr: string | undefined;
    const fid = fail.fid;
    if (fail.ip4 !== undefined) {
      address = fail.ip4;
      cidr = fail.cidr;
    } else if (fail.ip6 !== undefined) {
      address = fail.ip6;
      cidr = fail.cidr;
    } else if (fail.dns !== undefined) {
      result.hostname = fail.dns;
    } else if (fid !== undefined) {
      address = fid;
    } else {
      // <F-MLFID> without an address yet: pending, not a failure (fail2ban's ignorePending).
      if (fail.mlfid !== undefined) fail.mlfpending = '1';
      return;
    }
    result.match = true;
    result.failregexIndex = index;
    if (address !== undefined) {
      const text = cidr ? `${address}/${cidr}` : address;
      const host = this.speller.spell(text);
      if (host !== null) result.host = host;
      // An F-ID that is not an address (a user name, a session) stays a tag; anything else is reported.
      else if (!(address === fid && fail.ip4 === undefined && fail.ip6 === undefined)) result.invalidHost = address;
    }
    const tags: Record<string, string> = {};
    result.tags = tags;
    const keys = this.tagKeys;
    for (let i = 0; i < keys.length; i++) {
      const [key, name] = keys[i] as [string, string];
      const value = fail[key];
      if (value !== undefined) tags[name] = value;
    }
  }

  /** fail2ban's _mergeFailure: joins the lines of one session (<F-MLFID>) into one failure. */
  private mergeFailure(mlfid: string, fail: Groups): Groups {
    const cached = this.mlfidCache.get(mlfid);
    let users: Set<string> | undefined;
    let nfflgs = 0;
    if (fail.mlfgained) {
      nfflgs |= 8 | 1;
      if (!fail.nofail) fail.nofail = fail.mlfgained;
    } else if (fail.nofail) nfflgs |= 1;
    if (fail.mlfforget) nfflgs |= 2;
    delete fail.mlfforget;
    if (cached) {
      const g = cached.groups;
      users = updateUsers(cached, fail.user);
      if (g.nofail) nfflgs |= 4;
      delete g.nofail;
      if (g.mlfgained) nfflgs |= 4;
      delete g.mlfgained;
      if (nfflgs & 8) delete g.mlfpending;
      for (const key in fail) if (fail[key] !== undefined) g[key] = fail[key];
      fail = g;
      if (nfflgs & 2) this.mlfidCache.delete(mlfid);
    } else if (!(nfflgs & 2)) {
      const entry: MlfidEntry = { groups: fail, users: null };
      users = updateUsers(entry, fail.user);
      if (this.mlfidCache.size >= MLFID_CACHE_SIZE) {
        const oldest = this.mlfidCache.keys().next();
        if (!oldest.done) this.mlfidCache.delete(oldest.value);
      }
      this.mlfidCache.set(mlfid, entry);
    }
    const pending = fail.mlfpending;
    delete fail.mlfpending;
    if (pending || (users !== undefined && users.size > 1)) {
      delete fail.nofail;
      delete fail.mlfgained;
    }
    // The returned object is the cached one (fail2ban mutates it too: mlfpending is set on it).
    return fail;
  }
}

function updateUsers(entry: MlfidEntry, user: string | undefined): Set<string> | undefined {
  if (user) {
    entry.users ??= new Set();
    entry.users.add(user);
  }
  return entry.users ?? undefined;
}

function search(regex: CompiledRegex, buf: string, ascii: boolean): RegExpExecArray | null {
  if (regex.required !== null && !mayMatch(regex.required, buf)) return null;
  return exec(regex, buf, ascii);
}

function exec(regex: CompiledRegex, buf: string, ascii: boolean): RegExpExecArray | null {
  const m = (ascii ? regex.ascii : regex.unicode).exec(buf);
  if (m !== null || regex.alternates.length === 0) return m;
  for (const alt of regex.alternates) {
    const am = (ascii ? alt.ascii : alt.unicode).exec(buf);
    if (am !== null) return am;
  }
  return null;
}

/** The groups that make up one address: they come from the prefregex or the failregex, never mixed. */
const ADDRESS_GROUPS = ['ip4', 'ip6', 'dns', 'cidr'];

/**
 * prefregex groups updated by the failregex's, as fail2ban 1.1.1 does (38c2537e): a failregex
 * group that did not take part (an optional `(?: via <ADDR>)?`) leaves the prefregex's value, so
 * it cannot erase an address the prefregex captured. An address the failregex did capture
 * replaces the prefregex's whole, so an IPv4 from one is never paired with an IPv6 from the other.
 */
function mergeGroups(pre: Groups, fail: Groups, regex: CompiledRegex): Groups {
  // Cleared by undefined, never delete (which turns the object into a slow dictionary): every
  // reader of groups treats undefined as absent.
  if (fail.ip4 !== undefined || fail.ip6 !== undefined || fail.dns !== undefined || fail.cidr !== undefined) {
    for (let i = 0; i < ADDRESS_GROUPS.length; i++) pre[ADDRESS_GROUPS[i] as string] = undefined;
  }
  // The failregex's groups and the ALT_ bases groupDict filled: every key `fail` can hold.
  const names = regex.groupNames;
  for (let i = 0; i < names.length; i++) {
    const value = fail[names[i] as string];
    if (value !== undefined) pre[names[i] as string] = value;
  }
  const alts = regex.altGroups;
  for (let i = 0; i < alts.length; i++) {
    const base = (alts[i] as readonly [string, string])[1];
    const value = fail[base];
    if (value !== undefined) pre[base] = value;
  }
  return pre;
}

/** The match's named groups (a fresh object per match, so it is used as it is). */
function groupDict(regex: CompiledRegex, m: RegExpExecArray): Groups {
  const groups: Groups = m.groups ?? {};
  // ALT_ names fill their base tag when it is empty (fail2ban's _getGroupsWithAlt).
  const alts = regex.altGroups;
  for (let i = 0; i < alts.length; i++) {
    const [alt, base] = alts[i] as readonly [string, string];
    const v = groups[alt];
    if (v && !groups[base]) groups[base] = v;
  }
  return groups;
}

function tupleBuf(lines: readonly TupleLine[]): string {
  let s = '';
  for (const t of lines) s += `${t.pre}${t.post}\n`;
  return s;
}

/** fail2ban's Regex.search bookkeeping: which buffered lines the match used; <SKIPLINES> lines stay. */
function splitMatch(regex: CompiledRegex, m: RegExpExecArray, buf: string, orgLines: TupleLine[]): { matched: TupleLine[]; unmatched: TupleLine[] } {
  if (orgLines.length <= 1) return { matched: orgLines.slice(), unmatched: [] };
  const start = m.index;
  const end = m.index + m[0].length;
  const lineStart = buf.lastIndexOf('\n', start) + 1;
  let lineEnd = buf.indexOf('\n', Math.max(0, end - 1));
  lineEnd = lineEnd === -1 ? buf.length : lineEnd + 1;
  const count = (to: number): number => {
    let n = 0;
    for (let i = buf.indexOf('\n'); i !== -1 && i < to; i = buf.indexOf('\n', i + 1)) n++;
    return n;
  };
  const c1 = count(lineStart);
  const c2 = count(lineEnd);
  const matched = orgLines.slice(c1, c2);
  const unmatched = orgLines.slice(0, c1);
  let skipped = '';
  for (const g of regex.skipLineGroups) skipped += m.groups?.[g] ?? '';
  let n = 0;
  for (const skippedLine of skipped.split('\n').filter((_, i, a) => i < a.length - 1 || a[i] !== '')) {
    for (let k = n; k < matched.length; k++) {
      const t = matched[k] as TupleLine;
      if (t.pre + t.post === skippedLine) {
        unmatched.push(t);
        matched.splice(k, 1);
        n = k;
        break;
      }
    }
  }
  unmatched.push(...orgLines.slice(c2));
  return { matched, unmatched };
}
