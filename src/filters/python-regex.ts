/**
 * Translates a Python `re` pattern (as fail2ban compiles it) into JavaScript RegExps with the
 * same meaning. Two variants come out: `unicode` keeps Python 3's Unicode semantics for `\d`,
 * `\w`, `\b`, `\s`; `ascii` uses JavaScript's faster ASCII classes and is only used on lines
 * that are pure ASCII, where both give the same answer.
 */

export class RegexTranslationError extends Error {
  readonly pattern: string;
  readonly position: number;
  readonly reason: string;
  constructor(pattern: string, position: number, reason: string) {
    super(`${reason} at position ${position} of ${JSON.stringify(pattern)}`);
    this.name = 'RegexTranslationError';
    this.pattern = pattern;
    this.position = position;
    this.reason = reason;
  }
}

export interface TranslateOptions {
  /** Python re.MULTILINE: fail2ban sets it on failregex when maxlines > 1. */
  multiline?: boolean;
  /** Adds JavaScript's `d` flag (match indices), used by date templates. */
  indices?: boolean;
}

import { LiteralTracker, type RequiredText } from './literals.ts';

export interface TranslatedRegex {
  ascii: RegExp;
  unicode: RegExp;
  groupNames: string[];
  /** Capture index of each named group (match[index] is faster than match.groups[name]). */
  groupIndex: Record<string, number>;
  /** Literal substrings every match must contain (case-sensitive); a cheap prefilter. */
  requiredLiterals: string[];
  /** requiredLiterals plus "one of" sets from alternations. */
  required: RequiredText;
  /** The pattern after fail2ban's global-to-local flag rewrite (what Python compiled). */
  python: string;
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  x: boolean;
  a: boolean;
}

// Python 3 str patterns: \w is str.isalnum() or '_', \d is Unicode Nd, \s is str.isspace().
const U_WORD = '\\p{L}\\p{N}_';
const U_SPACE = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const A_SPACE = '\\t-\\r\\x1c-\\x20';
const SYNTAX_CHARS = new Set([...'^$\\.*+?()[]{}|/']);
const CLASS_SYNTAX = new Set([...'\\]-^[']);
// fail2ban (failregex.py R_GLOB2LOCFLAGS) rewrites "((?i)x)" and "(?:(?i)x)" into "(?i:x)".
const GLOB2LOC = /(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)/g;

function literalChar(ch: string, inClass: boolean): string {
  if (inClass ? CLASS_SYNTAX.has(ch) : SYNTAX_CHARS.has(ch)) return `\\${ch}`;
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (ch === '\u2028' || ch === '\u2029') return `\\u${code.toString(16)}`;
  return ch;
}

function codeLiteral(code: number, inClass: boolean): string {
  return literalChar(String.fromCodePoint(code), inClass);
}

/** Port of fail2ban's global→local flag rewrite, applied before compiling. */
export function fail2banFlagRewrite(pattern: string): string {
  return pattern.replace(GLOB2LOC, '$1:');
}

export function translatePythonRegex(pattern: string, options: TranslateOptions = {}): TranslatedRegex {
  const source = fail2banFlagRewrite(pattern);
  const t = new Translator(source, options.multiline === true);
  const out = t.run();
  const flags = `${(out.globalI ? 'i' : '') + (options.indices === true ? 'd' : '')}u`;
  let ascii: RegExp;
  let unicode: RegExp;
  try {
    unicode = new RegExp(out.unicode, flags);
    // No u flag for the ASCII variant: identical on ASCII text, and case folding is cheaper.
    ascii = new RegExp(out.ascii, flags.replace('u', ''));
  } catch (error) {
    throw new RegexTranslationError(source, 0, `JavaScript rejected the translation (${(error as Error).message})`);
  }
  return { ascii, unicode, groupNames: out.groupNames, groupIndex: out.groupIndex, requiredLiterals: out.required.all, required: out.required, python: source };
}

interface GroupFrame {
  /** Flags to restore when the group closes (scoped flags end with it). */
  saved: Flags;
}

class Translator {
  private pos = 0;
  private asciiOut = '';
  private unicodeOut = '';
  private flags: Flags = { i: false, m: false, s: false, x: false, a: false };
  private readonly stack: GroupFrame[] = [];
  private readonly groupNames: string[] = [];
  private readonly groupIndex: Record<string, number> = {};
  private captures = 0;
  private globalI = false;
  private readonly tracker = new LiteralTracker();
  private atomCount = 0;

  private readonly src: string;

  constructor(src: string, multiline: boolean) {
    this.src = src;
    this.flags.m = multiline;
  }

  private fail(reason: string, at = this.pos): never {
    throw new RegexTranslationError(this.src, at, reason);
  }

  private emit(ascii: string, unicode: string = ascii): void {
    this.asciiOut += ascii;
    this.unicodeOut += unicode;
  }

  /** Records a non-literal atom. */
  private atom(): void {
    this.tracker.atom();
    this.atomCount++;
  }

  private literalAtom(ch: string, inClass = false): void {
    this.emit(literalChar(ch, inClass));
    this.atomCount++;
    this.tracker.literal(ch, this.flags.i);
  }

  run(): { ascii: string; unicode: string; groupNames: string[]; groupIndex: Record<string, number>; required: RequiredText; globalI: boolean } {
    const src = this.src;
    // Global flags: only at the very start (Python 3.11 rejects them elsewhere).
    for (;;) {
      const m = /^\(\?([aiLmsux]+)\)/.exec(src.slice(this.pos));
      if (!m || m[1] === undefined) break;
      for (const f of m[1]) this.setFlag(f, true, this.pos);
      this.pos += m[0].length;
    }
    this.globalI = this.flags.i;
    while (this.pos < src.length) this.step();
    if (this.stack.length > 0) this.fail('missing ), unterminated subpattern');
    return {
      ascii: this.asciiOut,
      unicode: this.unicodeOut,
      groupNames: this.groupNames,
      groupIndex: this.groupIndex,
      required: this.tracker.finish(),
      globalI: this.globalI,
    };
  }

  private setFlag(f: string, on: boolean, at: number): void {
    switch (f) {
      case 'i':
        this.flags.i = on;
        break;
      case 'm':
        this.flags.m = on;
        break;
      case 's':
        this.flags.s = on;
        break;
      case 'x':
        this.flags.x = on;
        break;
      case 'a':
        this.flags.a = on;
        break;
      case 'u':
        break;
      case 'L':
        this.fail('the locale flag (?L) cannot be translated', at);
        break;
      default:
        this.fail(`unknown flag ${f}`, at);
    }
  }

  private step(): void {
    const src = this.src;
    const ch = src[this.pos] as string;
    if (this.flags.x) {
      if (/\s/.test(ch)) {
        this.pos++;
        return;
      }
      if (ch === '#') {
        const nl = src.indexOf('\n', this.pos);
        this.pos = nl === -1 ? src.length : nl + 1;
        return;
      }
    }
    switch (ch) {
      case '\\':
        this.escape();
        return;
      case '[':
        this.charClass();
        return;
      case '(':
        this.openGroup();
        return;
      case ')':
        this.closeGroup();
        return;
      case '|':
        this.pos++;
        this.emit('|');
        this.tracker.alternation();
        this.atomCount = 0;
        return;
      case '.':
        this.pos++;
        this.emit(this.flags.s ? '[\\s\\S]' : '[^\\n]');
        this.atom();
        return;
      case '^':
        this.pos++;
        // Without JS's m flag, ^ is start of input, exactly Python's non-MULTILINE ^.
        this.emit(this.flags.m ? '(?:^|(?<=\\n))' : '^');
        this.atom();
        return;
      case '$':
        this.pos++;
        // Python's $: end of input or before a final newline; with MULTILINE, before any newline.
        this.emit(this.flags.m ? '(?=\\n|$)' : '(?=\\n?$)');
        this.atom();
        return;
      case '*':
      case '+':
      case '?':
        this.quantifier(ch);
        return;
      case '{': {
        // Python: {m}, {m,}, {,n}, {m,n} (and "{,}" as {0,}); any other "{" is a literal.
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(src.slice(this.pos));
        if (m && (m[1] !== '' || m[2] === ',')) {
          this.quantifier(m[0]);
          return;
        }
        this.pos++;
        this.literalAtom('{');
        return;
      }
      default: {
        this.pos++;
        const cp = src.codePointAt(this.pos - 1) ?? 0;
        if (cp > 0xffff) this.pos++;
        this.literalAtom(String.fromCodePoint(cp));
      }
    }
  }

  private quantifier(token: string): void {
    const src = this.src;
    if (this.atomCount === 0) this.fail('nothing to repeat');
    this.pos += token.length;
    let js = token;
    let minZero = token === '*' || token === '?';
    if (token.startsWith('{')) {
      const m = /^\{(\d*)(,?)(\d*)\}$/.exec(token);
      const min = m?.[1] === '' ? '0' : (m?.[1] ?? '0');
      js = m?.[2] === ',' ? `{${min},${m[3] ?? ''}}` : `{${min}}`;
      minZero = Number(min) === 0;
      if (m?.[2] === ',' && m[3] !== '' && Number(m[3]) < Number(min)) this.fail('min repeat greater than max repeat');
    }
    const next = src[this.pos];
    if (next === '+') this.fail('possessive quantifiers have no JavaScript equivalent');
    if (next === '?') {
      js += '?';
      this.pos++;
    }
    if (this.lastQuantEnd === this.asciiOut.length) this.fail('multiple repeat');
    this.emit(js);
    this.lastQuantEnd = this.asciiOut.length;
    this.tracker.quantifier(minZero);
  }

  private lastQuantEnd = -1;

  private openGroup(): void {
    const src = this.src;
    const start = this.pos;
    const rest = src.slice(this.pos);
    this.atom();
    const saved = { ...this.flags };
    let m: RegExpExecArray | null;
    if (rest.startsWith('(?P<') || (rest.startsWith('(?<') && !rest.startsWith('(?<=') && !rest.startsWith('(?<!'))) {
      m = /^\(\?P?<([^>]*)>/.exec(rest);
      if (!m || m[1] === undefined) this.fail('unterminated group name');
      const name = m[1];
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) this.fail(`bad character in group name ${JSON.stringify(name)}`);
      if (this.groupNames.includes(name)) this.fail(`redefinition of group name ${JSON.stringify(name)}`);
      this.groupNames.push(name);
      this.groupIndex[name] = ++this.captures;
      this.emit(`(?<${name}>`);
      this.pos += m[0].length;
    } else if (rest.startsWith('(?P=')) {
      m = /^\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest);
      if (!m || m[1] === undefined) this.fail('bad named backreference');
      if (!this.groupNames.includes(m[1])) this.fail(`unknown group name ${JSON.stringify(m[1])}`);
      this.emit(`\\k<${m[1]}>`);
      this.pos += m[0].length;
      return;
    } else if (rest.startsWith('(?#')) {
      const end = src.indexOf(')', this.pos);
      if (end === -1) this.fail('missing ), unterminated comment');
      this.pos = end + 1;
      return;
    } else if (rest.startsWith('(?:') || rest.startsWith('(?=') || rest.startsWith('(?!') || rest.startsWith('(?<=') || rest.startsWith('(?<!')) {
      const len = rest.startsWith('(?<') ? 4 : 3;
      this.emit(rest.slice(0, len));
      this.pos += len;
    } else if (rest.startsWith('(?>')) {
      this.fail('atomic groups (?>...) have no JavaScript equivalent');
    } else if (rest.startsWith('(?(')) {
      this.fail('conditional groups (?(id)yes|no) have no JavaScript equivalent');
    } else if (rest.startsWith('(?P>') || rest.startsWith('(?R') || rest.startsWith('(?&')) {
      this.fail('recursion is not supported by Python re or JavaScript');
    } else if (rest.startsWith('(?')) {
      m = /^\(\?([aiLmsux]*)(?:-([imsx]+))?(:|\))/.exec(rest);
      if (!m) this.fail(`unknown extension ?${rest[2] ?? ''}`);
      if (m[3] === ')') this.fail('global flags not at the start of the expression');
      for (const f of m[1] ?? '') this.setFlag(f, true, start);
      for (const f of m[2] ?? '') this.setFlag(f, false, start);
      const iOn = this.flags.i !== saved.i ? (this.flags.i ? 'i' : '-i') : '';
      this.emit(iOn === '' ? '(?:' : `(?${iOn}:`);
      this.pos += m[0].length;
    } else {
      this.emit('(');
      this.captures++;
      this.pos++;
    }
    this.tracker.open(/^\(\?(?:=|!|<=|<!)/.test(rest));
    this.stack.push({ saved });
    this.atomCount = 0;
  }

  private closeGroup(): void {
    const frame = this.stack.pop();
    if (!frame) this.fail('unbalanced parenthesis');
    this.pos++;
    this.emit(')');
    this.flags = frame.saved;
    this.atomCount = 1;
    this.tracker.close();
  }

  private escape(): void {
    const src = this.src;
    const at = this.pos;
    const c = src[this.pos + 1];
    if (c === undefined) this.fail('bad escape (end of pattern)');
    this.pos += 2;
    const ascii = this.flags.a;
    switch (c) {
      case 'd':
        this.emit('\\d', ascii ? '\\d' : '\\p{Nd}');
        this.atom();
        return;
      case 'D':
        this.emit('\\D', ascii ? '\\D' : '\\P{Nd}');
        this.atom();
        return;
      case 'w':
        this.emit('\\w', ascii ? '\\w' : `[${U_WORD}]`);
        this.atom();
        return;
      case 'W':
        this.emit('\\W', ascii ? '\\W' : `[^${U_WORD}]`);
        this.atom();
        return;
      case 's':
        this.emit(`[${A_SPACE}]`, ascii ? `[${A_SPACE}]` : `[${U_SPACE}]`);
        this.atom();
        return;
      case 'S':
        this.emit(`[^${A_SPACE}]`, ascii ? `[^${A_SPACE}]` : `[^${U_SPACE}]`);
        this.atom();
        return;
      case 'b':
        this.emit('\\b', ascii ? '\\b' : `(?:(?<=[${U_WORD}])(?![${U_WORD}])|(?<![${U_WORD}])(?=[${U_WORD}]))`);
        this.atom();
        return;
      case 'B':
        this.emit('\\B', ascii ? '\\B' : `(?:(?<=[${U_WORD}])(?=[${U_WORD}])|(?<![${U_WORD}])(?![${U_WORD}]))`);
        this.atom();
        return;
      case 'A':
        this.emit('^');
        this.atom();
        return;
      case 'Z':
        this.emit('$');
        this.atom();
        return;
      default:
        break;
    }
    if (/[1-9]/.test(c)) {
      // Backreference (up to two digits), or octal when three digits.
      const m = /^[1-9][0-9]?/.exec(src.slice(this.pos - 1));
      const digits = m?.[0] ?? c;
      if (/^[0-7]{3}/.test(src.slice(this.pos - 1))) {
        const oct = src.slice(this.pos - 1, this.pos + 2);
        this.pos += 2;
        this.literalCode(parseInt(oct, 8), at);
        return;
      }
      this.pos += digits.length - 1;
      this.emit(`(?:\\${digits})`);
      this.atom();
      return;
    }
    const code = this.escapeCode(c, at, false);
    if (code !== null) {
      this.literalCode(code, at);
      return;
    }
    if (/[A-Za-z0-9]/.test(c)) this.fail(`bad escape \\${c}`, at);
    this.pos--; // re-read the char as a literal (handles astral code points)
    const cp = src.codePointAt(this.pos) ?? 0;
    this.pos += cp > 0xffff ? 2 : 1;
    this.literalAtom(String.fromCodePoint(cp));
  }

  private literalCode(code: number, at: number): void {
    let ch: string;
    try {
      ch = String.fromCodePoint(code);
    } catch {
      this.fail('bad escape: code point out of range', at);
    }
    this.literalAtom(ch);
  }

  /** Escapes that denote one code point; null when `c` is not one of them. Advances past operands. */
  private escapeCode(c: string, at: number, inClass: boolean): number | null {
    const src = this.src;
    switch (c) {
      case 'n':
        return 10;
      case 't':
        return 9;
      case 'r':
        return 13;
      case 'f':
        return 12;
      case 'v':
        return 11;
      case 'a':
        return 7;
      case 'b':
        return inClass ? 8 : null;
      case '0': {
        const m = /^[0-7]{0,2}/.exec(src.slice(this.pos));
        const digits = m?.[0] ?? '';
        this.pos += digits.length;
        return parseInt(`0${digits}`, 8);
      }
      case 'x':
        return this.hex(2, at);
      case 'u':
        return this.hex(4, at);
      case 'U':
        return this.hex(8, at);
      case 'N':
        this.fail('\\N{name} escapes are not supported', at);
        break;
      default:
        break;
    }
    return null;
  }

  private hex(n: number, at: number): number {
    const digits = this.src.slice(this.pos, this.pos + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(digits)) this.fail(`incomplete escape \\${this.src[this.pos - 1] ?? ''}${digits}`, at);
    this.pos += n;
    return parseInt(digits, 16);
  }

  private charClass(): void {
    const src = this.src;
    const start = this.pos;
    this.pos++;
    let a = '[';
    let u = '[';
    if (src[this.pos] === '^') {
      a += '^';
      u += '^';
      this.pos++;
    }
    let first = true;
    const ascii = this.flags.a;
    for (;;) {
      const ch = src[this.pos];
      if (ch === undefined) this.fail('unterminated character set', start);
      if (ch === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      if (ch === '\\') {
        const c = src[this.pos + 1];
        if (c === undefined) this.fail('bad escape (end of pattern)');
        const at = this.pos;
        this.pos += 2;
        switch (c) {
          case 'd':
            a += '\\d';
            u += ascii ? '\\d' : '\\p{Nd}';
            continue;
          case 'D':
            a += '\\D';
            u += ascii ? '\\D' : '\\P{Nd}';
            continue;
          case 'w':
            a += '\\w';
            u += ascii ? '\\w' : U_WORD;
            continue;
          // Negated Unicode classes cannot be unioned inside a JS class without the v flag;
          // JavaScript's own \W/\S are the closest (they differ only on rare code points).
          case 'W':
            a += '\\W';
            u += '\\W';
            continue;
          case 's':
            a += A_SPACE;
            u += ascii ? A_SPACE : U_SPACE;
            continue;
          case 'S':
            a += '\\S';
            u += '\\S';
            continue;
          default:
            break;
        }
        const code = this.escapeCode(c, at, true);
        if (code !== null) {
          if (code > 0x10ffff) this.fail('bad escape: code point out of range', at);
          const lit = codeLiteral(code, true);
          a += lit;
          u += lit;
          continue;
        }
        if (/[A-Za-z0-9]/.test(c)) this.fail(`bad escape \\${c}`, at);
        this.pos--;
      }
      const escaped = ch === '\\';
      const cp = src.codePointAt(this.pos) ?? 0;
      this.pos += cp > 0xffff ? 2 : 1;
      const lit = String.fromCodePoint(cp);
      // An unescaped '-' is a range operator between two items, as in JavaScript.
      const out = lit === '-' && !escaped ? '-' : literalChar(lit, true);
      a += out;
      u += out;
    }
    a += ']';
    u += ']';
    this.emit(a, u);
    this.atom();
  }
}
