/**
 * Python's conditional groups `(?(name)yes|no)` (fail2ban's sshd filter uses them) have no
 * JavaScript equivalent. They are expanded into variants instead: for each group a conditional
 * tests, one variant where the group must take part (condition → yes) and one where it must
 * not (group removed, condition → no). A group can be forced either way when it is optional
 * (`(?P<g>…)?`) or one branch of an alternation. The matcher tries the variants in order, the
 * "takes part" ones first, as Python's greedy engine does. Exact for the anchored regexes
 * fail2ban writes; a leftmost-match difference is possible only between variants of an unanchored
 * regex.
 */

export class ConditionalError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ConditionalError';
  }
}

const MAX_NAMES = 4;

/** Index just past the `)` that closes the group opening at `open`; skips escapes and classes. */
/** Index of the `]` closing the character class that opens at `open` (a leading `^` and `]` are literal). */
function classEnd(src: string, open: number): number {
  let j = open + 1;
  if (src[j] === '^') j++;
  if (src[j] === ']') j++;
  while (j < src.length && src[j] !== ']') {
    if (src[j] === '\\') j++;
    j++;
  }
  return j;
}

function closeParen(src: string, open: number): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      i = classEnd(src, i);
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new ConditionalError('unbalanced parenthesis');
}

/** Top-level `|` positions of src[from, to). */
function topBars(src: string, from: number, to: number): number[] {
  const bars: number[] = [];
  for (let i = from; i < to; i++) {
    const c = src[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (src[j] === '^') j++;
      if (src[j] === ']') j++;
      while (j < to && src[j] !== ']') {
        if (src[j] === '\\') j++;
        j++;
      }
      i = j;
      continue;
    }
    if (c === '(') {
      i = closeParen(src, i) - 1;
      continue;
    }
    if (c === '|') bars.push(i);
  }
  return bars;
}

/** Start of the innermost group enclosing position `at`, or -1 for the top level. */
function enclosingGroup(src: string, at: number): number {
  const stack: number[] = [];
  for (let i = 0; i < at; i++) {
    const c = src[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      i = classEnd(src, i);
      continue;
    }
    if (c === '(') stack.push(i);
    else if (c === ')') stack.pop();
  }
  return stack.length === 0 ? -1 : (stack[stack.length - 1] as number);
}

/** Length of the group-opening prefix (`(`, `(?:`, `(?P<n>`…) at `open`. */
function openerLength(src: string, open: number): number {
  const m = /^\((?:\?(?:P<[^>]*>|<(?![=!])[^>]*>|[:=!]|<[=!]|[a-zA-Z-]+:))?/.exec(src.slice(open));
  return m ? m[0].length : 1;
}

const COND_RE = /\(\?\(([A-Za-z_]\w*|\d+)\)/g;

function conditionNames(src: string): string[] {
  const names: string[] = [];
  for (const m of src.matchAll(COND_RE)) {
    if (m.index > 0 && src[m.index - 1] === '\\') continue;
    const name = m[1] as string;
    if (/^\d/.test(name)) throw new ConditionalError(`conditional on group number ${name} is not supported (name the group)`);
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Forces group `name` to take part (true) or not (false); null when that is impossible. */
function force(src: string, name: string, present: boolean): string | null {
  const def = src.search(new RegExp(`\\(\\?P<${name}>`));
  if (def === -1) throw new ConditionalError(`conditional on unknown group ${JSON.stringify(name)}`);
  const end = closeParen(src, def);
  // Optional group: "(?P<g>…)?" (greedy only).
  if (src[end] === '?' && src[end + 1] !== '?' && src[end + 1] !== '+') {
    return present ? src.slice(0, end) + src.slice(end + 1) : src.slice(0, def) + src.slice(end + 1);
  }
  // One branch of the nearest enclosing alternation.
  let inner = def;
  for (let outer = enclosingGroup(src, def); ; outer = enclosingGroup(src, outer)) {
    const from = outer === -1 ? 0 : outer + openerLength(src, outer);
    const to = outer === -1 ? src.length : closeParen(src, outer) - 1;
    const bars = topBars(src, from, to);
    if (bars.length > 0) {
      const edges = [from - 1, ...bars, to];
      const branches: Array<[number, number]> = [];
      for (let i = 0; i + 1 < edges.length; i++) branches.push([(edges[i] as number) + 1, edges[i + 1] as number]);
      const mine = branches.findIndex(([a, b]) => inner >= a && inner < b);
      const keep = present ? branches.filter((_, i) => i === mine) : branches.filter((_, i) => i !== mine);
      if (keep.length === 0) return null;
      const body = keep.map(([a, b]) => src.slice(a, b)).join('|');
      return src.slice(0, from) + body + src.slice(to);
    }
    if (outer === -1) return present ? src : null;
    // A group quantified as optional around it also decides participation.
    const outerEnd = closeParen(src, outer);
    if (src[outerEnd] === '?' && src[outerEnd + 1] !== '?' && src[outerEnd + 1] !== '+') {
      return present ? src.slice(0, outerEnd) + src.slice(outerEnd + 1) : src.slice(0, outer) + src.slice(outerEnd + 1);
    }
    inner = outer;
  }
}

/** Replaces every `(?(name)yes|no)` with its yes or no branch. */
function resolve(src: string, name: string, present: boolean): string {
  let out = src;
  for (;;) {
    const at = out.indexOf(`(?(${name})`);
    if (at === -1) return out;
    const end = closeParen(out, at);
    const bodyFrom = at + name.length + 4;
    const bars = topBars(out, bodyFrom, end - 1);
    if (bars.length > 1) throw new ConditionalError(`conditional group on ${name} has more than two branches`);
    const yes = out.slice(bodyFrom, bars[0] ?? end - 1);
    const no = bars[0] === undefined ? '' : out.slice((bars[0] as number) + 1, end - 1);
    out = `${out.slice(0, at)}(?:${present ? yes : no})${out.slice(end)}`;
  }
}

/** The variants of a Python pattern without conditionals; just [pattern] when it has none. */
export function expandConditionals(pattern: string): string[] {
  const names = conditionNames(pattern);
  if (names.length === 0) return [pattern];
  if (names.length > MAX_NAMES) throw new ConditionalError(`too many conditional groups (${names.length})`);
  let variants = [pattern];
  for (const name of names) {
    const next: string[] = [];
    for (const v of variants) {
      for (const present of [true, false]) {
        const forced = force(v, name, present);
        if (forced !== null) next.push(resolve(forced, name, present));
      }
    }
    variants = next;
  }
  return variants;
}
