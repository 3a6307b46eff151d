import { isAscii, isUtf8 } from 'node:buffer';

/** Bytes of context kept before a line boundary, to recognise the same file content later. */
export const ANCHOR_BYTES = 64;

export interface AssembledLine {
  text: string;
  endOffset: number;
  truncated: boolean;
  invalidUtf8: boolean;
}

/**
 * Splits a byte stream read positionally from one file into lines, holding at most `maxLineBytes`
 * of an unfinished line (the rest of an over-long line is skipped as it streams past, so a huge
 * line costs time linear in its size and no memory beyond the cap).
 *
 * It also keeps the last ANCHOR_BYTES bytes before the current line start (the "anchor"): a resume
 * record stores them (hashed) so a restart can tell whether the file at a saved inode and offset
 * still holds the content that was read, and a truncated file's copy can be recognised.
 */
export class LineAssembler {
  private readonly maxLineBytes: number;
  private held: Buffer = Buffer.alloc(0);
  private heldLen = 0;
  private dropped = 0;
  /** The held bytes of the unfinished line are all ASCII. */
  private heldAscii = true;
  /**
   * Every line the last push() completed is pure ASCII (one check per chunk, so neither UTF-8
   * validation nor the matcher's per-line ASCII test has to look at them again).
   */
  linesAscii = false;
  private recent: Buffer = Buffer.alloc(0);
  /** Offset just past the last newline consumed: where the unfinished line starts. */
  lineStart: number;
  /** Offset just past the last byte consumed. */
  pos: number;
  /** The bytes just before `lineStart` (up to ANCHOR_BYTES). */
  anchor: Buffer;

  constructor(maxLineBytes: number, startOffset = 0, anchor: Buffer = Buffer.alloc(0)) {
    this.maxLineBytes = maxLineBytes;
    this.lineStart = startOffset;
    this.pos = startOffset;
    this.anchor = anchor;
    this.recent = anchor;
  }

  /** Forgets any unfinished line and continues from `offset` (whose preceding bytes are `anchor`). */
  reset(offset: number, anchor: Buffer = Buffer.alloc(0)): void {
    this.heldLen = 0;
    this.dropped = 0;
    this.heldAscii = true;
    this.lineStart = offset;
    this.pos = offset;
    this.anchor = anchor;
    this.recent = anchor;
    if (this.held.length > 4096) this.held = Buffer.alloc(0);
  }

  /** The last bytes consumed (up to ANCHOR_BYTES), just before `pos`. */
  get tail(): Buffer {
    return this.recent;
  }

  /** Bytes of an unfinished line consumed so far. */
  get partialBytes(): number {
    return this.pos - this.lineStart;
  }

  /** Consumes `chunk` (the bytes at `pos`) and appends the lines it completes to `out`. */
  push(chunk: Buffer, out: AssembledLine[]): void {
    this.linesAscii = this.heldAscii && isAscii(chunk);
    let start = 0;
    let lastNewline = -1;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      out.push(this.finish(chunk.subarray(start, nl), this.pos + nl + 1));
      lastNewline = nl;
      start = nl + 1;
    }
    if (start < chunk.length) this.hold(chunk.subarray(start));
    if (lastNewline >= 0) {
      this.lineStart = this.pos + lastNewline + 1;
      this.anchor = lastBytes(this.recent, chunk.subarray(0, lastNewline + 1));
    }
    this.recent = lastBytes(this.recent, chunk);
    this.pos += chunk.length;
  }

  /** The unfinished line as a line of its own (for a rotated file that will never be completed). */
  flushPartial(): AssembledLine | null {
    if (this.pos === this.lineStart) return null;
    this.linesAscii = false;
    const line = this.finish(Buffer.alloc(0), this.pos);
    this.lineStart = this.pos;
    this.anchor = this.recent;
    return line;
  }

  private hold(segment: Buffer): void {
    const room = this.maxLineBytes - this.heldLen;
    const keep = Math.max(0, Math.min(room, segment.length));
    if (keep > 0) {
      if (this.held.length < this.heldLen + keep) {
        const grown = Buffer.allocUnsafe(Math.min(this.maxLineBytes, Math.max(256, (this.heldLen + keep) * 2)));
        this.held.copy(grown, 0, 0, this.heldLen);
        this.held = grown;
      }
      segment.copy(this.held, this.heldLen, 0, keep);
      if (this.heldAscii && !isAscii(segment.subarray(0, keep))) this.heldAscii = false;
      this.heldLen += keep;
    }
    this.dropped += segment.length - keep;
  }

  private finish(segment: Buffer, endOffset: number): AssembledLine {
    let bytes: Buffer;
    let truncated: boolean;
    if (this.heldLen === 0 && this.dropped === 0) {
      truncated = segment.length > this.maxLineBytes;
      bytes = truncated ? segment.subarray(0, this.maxLineBytes) : segment;
    } else {
      this.hold(segment);
      truncated = this.dropped > 0;
      bytes = this.held.subarray(0, this.heldLen);
    }
    if (truncated) {
      // Cutting may split a character; drop the fragment rather than report it as invalid UTF-8.
      bytes = bytes.subarray(0, completeUtf8Length(bytes));
    } else if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) {
      bytes = bytes.subarray(0, bytes.length - 1); // CRLF is a newline too
    }
    const invalidUtf8 = !this.linesAscii && !isUtf8(bytes);
    const text = this.linesAscii ? bytes.toString('latin1') : bytes.toString('utf8'); // invalid sequences become U+FFFD; NULs are kept
    this.heldLen = 0;
    this.dropped = 0;
    this.heldAscii = true;
    return { text, endOffset, truncated, invalidUtf8 };
  }
}

/** The last ANCHOR_BYTES of `before` followed by `after`, as a copy (never a view of a reused buffer). */
function lastBytes(before: Buffer, after: Buffer): Buffer {
  if (after.length >= ANCHOR_BYTES) return Buffer.from(after.subarray(after.length - ANCHOR_BYTES));
  const joined = Buffer.concat([before, after]);
  return Buffer.from(joined.subarray(Math.max(0, joined.length - ANCHOR_BYTES)));
}

/** Length of `bytes` without a multi-byte character cut off at its end. */
export function completeUtf8Length(bytes: Buffer): number {
  const len = bytes.length;
  let i = len - 1;
  while (i >= 0 && len - i <= 4 && ((bytes[i] ?? 0) & 0xc0) === 0x80) i--;
  if (i < 0 || len - i > 4) return len;
  const lead = bytes[i] ?? 0;
  const need = lead >= 0xf8 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return len - i < need ? i : len;
}
