/**
 * Text that remembers where each part of it came from. Interpolation and tag substitution splice
 * values from many files into one regex; keeping the origin per piece lets an error (or the
 * filter engine) point at the file and line that holds the offending part, not at the key that
 * merely referenced it.
 */
export interface Origin {
  file: string;
  line: number;
  /** The key whose value this text was written in, when it came from a file. */
  key?: string;
}

export interface Piece {
  text: string;
  origin: Origin;
  /** How many references deep the piece was pulled in (0 = written in the value itself). */
  depth?: number;
}

export type SourcedText = readonly Piece[];

export function textOf(st: SourcedText): string {
  let out = '';
  for (const piece of st) out += piece.text;
  return out;
}

export function sourced(text: string, origin: Origin): SourcedText {
  return text === '' ? [] : [{ text, origin }];
}

/** Characters [start, end) of the text, pieces cut as needed. */
export function sliceText(st: SourcedText, start: number, end = Number.POSITIVE_INFINITY): Piece[] {
  const out: Piece[] = [];
  let pos = 0;
  for (const piece of st) {
    const pieceEnd = pos + piece.text.length;
    if (pieceEnd > start && pos < end) {
      const text = piece.text.slice(Math.max(0, start - pos), Math.min(piece.text.length, end - pos));
      if (text !== '') out.push({ ...piece, text });
    }
    pos = pieceEnd;
    if (pos >= end) break;
  }
  return out;
}

/** The pieces as pulled in by one more level of reference. */
export function nested(st: SourcedText): Piece[] {
  return st.map((piece) => ({ ...piece, depth: (piece.depth ?? 0) + 1 }));
}

/** Like String.replaceAll with a plain needle; the replacement keeps its own origins. */
export function replaceAllText(st: SourcedText, needle: string, replacement: SourcedText): Piece[] {
  const text = textOf(st);
  const out: Piece[] = [];
  let from = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) {
    out.push(...sliceText(st, from, at), ...replacement);
    from = at + needle.length;
  }
  out.push(...sliceText(st, from));
  return out;
}

/** Where a character offset came from (the first piece if the offset is past the end). */
export function originAt(st: SourcedText, offset: number): Origin | null {
  let pos = 0;
  for (const piece of st) {
    if (offset < pos + piece.text.length) return piece.origin;
    pos += piece.text.length;
  }
  return st[st.length - 1]?.origin ?? null;
}

export interface SourcedLine {
  text: string;
  origin: Origin | null;
}

/**
 * Splits on '\n'. A line's origin is where it was written: among its non-blank pieces, the
 * least nested one. So `failregex = %(_prefix)sfoo` points at the failregex line, while a line that
 * only a reference produced (`%(known/failregex)s`, `<mdre-<mode>>`) points at the referenced text.
 */
export function splitLines(st: SourcedText): SourcedLine[] {
  const text = textOf(st);
  const lines: SourcedLine[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(start, end);
    let best: Piece | null = null;
    for (const piece of sliceText(st, start, end)) {
      if (piece.text.trim() !== '' && (best === null || (piece.depth ?? 0) < (best.depth ?? 0))) best = piece;
    }
    lines.push({ text: line, origin: best?.origin ?? originAt(st, start) });
    if (nl < 0) break;
    start = nl + 1;
  }
  return lines;
}
