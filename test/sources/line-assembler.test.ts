import assert from 'node:assert/strict';
import { test } from 'node:test';
import { completeUtf8Length, LineAssembler, type AssembledLine } from '../../src/sources/line-assembler.ts';

function feed(asm: LineAssembler, bytes: Buffer, pieceSize: number): AssembledLine[] {
  const out: AssembledLine[] = [];
  for (let i = 0; i < bytes.length; i += pieceSize) asm.push(bytes.subarray(i, i + pieceSize), out);
  return out;
}

test('splits lines at every chunking, with exact end offsets, holding the unfinished line', () => {
  const input = Buffer.from('alpha\nbeta\r\n\ngamma\ndelta-unfinished');
  for (const piece of [1, 2, 3, 7, 64]) {
    const asm = new LineAssembler(1024);
    const lines = feed(asm, input, piece);
    assert.deepEqual(
      lines.map((l) => [l.text, l.endOffset]),
      [
        ['alpha', 6],
        ['beta', 12],
        ['', 13],
        ['gamma', 19],
      ],
      `piece ${piece}`,
    );
    assert.equal(asm.lineStart, 19);
    assert.equal(asm.partialBytes, 'delta-unfinished'.length);
    assert.equal(asm.anchor.toString(), 'alpha\nbeta\r\n\ngamma\n');
  }
});

test('a line over the cap is cut to its first maxLineBytes bytes and flagged; the next line is whole', () => {
  const asm = new LineAssembler(10);
  for (const piece of [1, 4, 100]) {
    asm.reset(0);
    const lines = feed(asm, Buffer.from('0123456789ABCDEF\nshort\n0123456789\n'), piece);
    assert.deepEqual(
      lines.map((l) => [l.text, l.truncated]),
      [
        ['0123456789', true],
        ['short', false],
        ['0123456789', false],
      ],
    );
  }
});

test('a cut never leaves half a character behind', () => {
  const asm = new LineAssembler(5);
  const [line] = feed(asm, Buffer.from('abcd\u00e9\u00e9\n'), 3); // 'é' is 2 bytes: byte 5 is inside it
  assert.equal(line?.text, 'abcd');
  assert.equal(line?.invalidUtf8, false);
  assert.equal(completeUtf8Length(Buffer.from('ab\u20ac').subarray(0, 4)), 2);
  assert.equal(completeUtf8Length(Buffer.from('ab\u20ac')), 5);
  assert.equal(completeUtf8Length(Buffer.from([0x61, 0xff])), 2);
});

test('invalid UTF-8 becomes U+FFFD and is flagged; NUL bytes are kept', () => {
  const asm = new LineAssembler(100);
  const lines = feed(asm, Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a, 0x00, 0x78, 0x00, 0x0a, 0xc3, 0x0a]), 2);
  assert.deepEqual(
    lines.map((l) => [l.text, l.invalidUtf8]),
    [
      ['a\ufffd\ufffdb', true],
      ['\u0000x\u0000', false],
      ['\ufffd', true],
    ],
  );
});

test('a 16 MiB line costs one held cap, not the whole line', () => {
  const asm = new LineAssembler(65_536);
  const chunk = Buffer.alloc(65_536, 0x61);
  const out: AssembledLine[] = [];
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 256; i++) asm.push(chunk, out);
  asm.push(Buffer.from('\nnext\n'), out);
  const grown = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
  assert.equal(out.length, 2);
  assert.equal(out[0]?.truncated, true);
  assert.equal(out[0]?.text.length, 65_536);
  assert.equal(out[0]?.endOffset, 16 * 1024 * 1024 + 1);
  assert.equal(out[1]?.text, 'next');
  assert.ok(grown < 8 * 1024 * 1024, `grew ${grown} bytes`);
});

test('flushPartial hands over an unfinished last line once', () => {
  const asm = new LineAssembler(100);
  const out = feed(asm, Buffer.from('a\nrest'), 100);
  assert.equal(out.length, 1);
  assert.deepEqual(asm.flushPartial(), { text: 'rest', endOffset: 6, truncated: false, invalidUtf8: false });
  assert.equal(asm.flushPartial(), null);
});

test('lines count as ASCII only when every byte of theirs is, including an unfinished line held from an earlier chunk', () => {
  const asm = new LineAssembler(100);
  const out: AssembledLine[] = [];
  asm.push(Buffer.from('plain\nhalf-'), out);
  assert.equal(asm.linesAscii, true);
  asm.push(Buffer.from('line\n'), out);
  assert.equal(asm.linesAscii, true);
  // A non-ASCII character in the held part: the chunk completing it is ASCII, its line is not.
  asm.push(Buffer.from('caf\u00e9 is '), out);
  asm.push(Buffer.from('open\nnext\n'), out);
  assert.equal(asm.linesAscii, false);
  asm.push(Buffer.from('ascii again\n'), out);
  assert.equal(asm.linesAscii, true);
  // Split inside a multi-byte character: decoded as UTF-8 all the same.
  const euro = Buffer.from('\u20ac\n');
  asm.push(euro.subarray(0, 1), out);
  asm.push(euro.subarray(1), out);
  assert.equal(asm.linesAscii, false);
  assert.deepEqual(
    out.map((l) => [l.text, l.invalidUtf8]),
    [
      ['plain', false],
      ['half-line', false],
      ['caf\u00e9 is open', false],
      ['next', false],
      ['ascii again', false],
      ['\u20ac', false],
    ],
  );
});
