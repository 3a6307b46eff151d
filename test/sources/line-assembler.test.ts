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
    assert.deepEqual(lines.map((l) => [l.text, l.endOffset]), [['alpha', 6], ['beta', 12], ['', 13], ['gamma', 19]], `piece ${piece}`);
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
    assert.deepEqual(lines.map((l) => [l.text, l.truncated]), [['0123456789', true], ['short', false], ['0123456789', false]]);
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
  assert.deepEqual(lines.map((l) => [l.text, l.invalidUtf8]), [['a\ufffd\ufffdb', true], ['\u0000x\u0000', false], ['\ufffd', true]]);
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
