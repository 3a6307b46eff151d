/**
 * Literal text a regex match must contain, collected while translating: plain required strings
 * and "one of these" sets from alternations (`(?:Disconnected|Aborted login)`). A line holding
 * none of a set, or missing a required string, cannot match, and String.includes is far cheaper
 * than running the regex. Only case-sensitive literals count; lookarounds and anything optional
 * contribute nothing.
 */

export interface RequiredText {
  /** Every one of these appears in any match. */
  all: string[];
  /** For each set, at least one member appears in any match. */
  anyOf: string[][];
}

const MIN_LENGTH = 3;

interface Branch {
  all: string[];
  anyOf: string[][];
}

interface Frame {
  branch: Branch;
  done: Branch[];
  run: string;
  lastWasLiteral: boolean;
  /** Lookarounds assert rather than consume: nothing inside is known to be in the match text. */
  counts: boolean;
}

function newFrame(counts: boolean): Frame {
  return { branch: { all: [], anyOf: [] }, done: [], run: '', lastWasLiteral: false, counts };
}

function longest(values: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const v of values) if (best === undefined || v.length > best.length) best = v;
  return best;
}

export class LiteralTracker {
  private readonly frames: Frame[] = [newFrame(true)];
  /** What the last closed group added to its parent, so an optional quantifier can take it back. */
  private lastGroup: { frame: Frame; all: number; anyOf: number } | null = null;

  private get top(): Frame {
    return this.frames[this.frames.length - 1] as Frame;
  }

  private endRun(frame: Frame): void {
    if (frame.run.length >= MIN_LENGTH) frame.branch.all.push(frame.run);
    frame.run = '';
    frame.lastWasLiteral = false;
  }

  literal(ch: string, caseInsensitive: boolean): void {
    const f = this.top;
    this.lastGroup = null;
    if (caseInsensitive) {
      this.endRun(f);
      return;
    }
    f.run += ch;
    f.lastWasLiteral = true;
  }

  /** Any non-literal atom (class, escape class, dot, anchor, backreference). */
  atom(): void {
    this.lastGroup = null;
    this.endRun(this.top);
  }

  quantifier(minZero: boolean): void {
    const f = this.top;
    if (f.lastWasLiteral) {
      // The quantified char is no longer a fixed part of the run.
      f.run = f.run.slice(0, -1);
      this.endRun(f);
    } else if (this.lastGroup !== null && minZero) {
      const g = this.lastGroup;
      g.frame.branch.all.length = g.all;
      g.frame.branch.anyOf.length = g.anyOf;
    }
    this.lastGroup = null;
  }

  alternation(): void {
    const f = this.top;
    this.endRun(f);
    f.done.push(f.branch);
    f.branch = { all: [], anyOf: [] };
    this.lastGroup = null;
  }

  open(lookaround: boolean): void {
    this.endRun(this.top);
    this.frames.push(newFrame(!lookaround));
    this.lastGroup = null;
  }

  close(): void {
    const f = this.frames.pop();
    if (!f) return;
    this.endRun(f);
    const parent = this.top;
    const mark = { frame: parent, all: parent.branch.all.length, anyOf: parent.branch.anyOf.length };
    if (f.counts) {
      const result = summarize(f);
      parent.branch.all.push(...result.all);
      parent.branch.anyOf.push(...result.anyOf);
    }
    this.lastGroup = mark;
  }

  finish(): RequiredText {
    const f = this.frames[0] as Frame;
    this.endRun(f);
    return summarize(f);
  }
}

function summarize(f: Frame): RequiredText {
  if (f.done.length === 0) return { all: [...f.branch.all], anyOf: f.branch.anyOf.map((s) => [...s]) };
  // An alternation: one literal per branch (its longest); a branch without one means no constraint.
  const set: string[] = [];
  for (const b of [...f.done, f.branch]) {
    const best = longest(b.all) ?? (b.anyOf.length > 0 ? undefined : undefined);
    if (best === undefined) {
      // A branch whose only requirement is itself a set: use that set's members.
      const nested = b.anyOf[0];
      if (nested === undefined) return { all: [], anyOf: [] };
      set.push(...nested);
      continue;
    }
    set.push(best);
  }
  return { all: [], anyOf: [[...new Set(set)]] };
}

/** Whether `text` could hold a match, judged by its required literals. */
export function mayMatch(required: RequiredText, text: string): boolean {
  const all = required.all;
  for (let i = 0; i < all.length; i++) if (!text.includes(all[i] as string)) return false;
  const anyOf = required.anyOf;
  for (let i = 0; i < anyOf.length; i++) {
    const set = anyOf[i] as string[];
    let found = false;
    for (let k = 0; k < set.length; k++)
      if (text.includes(set[k] as string)) {
        found = true;
        break;
      }
    if (!found) return false;
  }
  return true;
}

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** The most selective single requirement of a regex: one literal, or one "one of" set. */
function keySet(required: RequiredText): string[] {
  let best: string[] = [];
  let score = -1;
  const consider = (set: string[]): void => {
    const s = Math.min(...set.map((l) => l.length));
    if (s > score) {
      best = set;
      score = s;
    }
  };
  for (const l of required.all) consider([l]);
  for (const set of required.anyOf) consider(set);
  return best;
}

/**
 * One regex that finds any regex's key literal: a single scan rejects most lines, and only the
 * lines it accepts pay for the per-regex checks. Null when some regex requires nothing.
 */
export function gateRegex(requirements: ReadonlyArray<RequiredText | null>): RegExp | null {
  const keys = new Set<string>();
  for (const r of requirements) {
    if (r === null) return null;
    const set = keySet(r);
    if (set.length === 0) return null;
    for (const l of set) keys.add(l);
  }
  if (keys.size === 0) return null;
  return new RegExp(
    [...keys]
      .sort((a, b) => b.length - a.length)
      .map(escapeRegex)
      .join('|'),
  );
}
