/**
 * Splits a byte stream into lines: UTF-8 decoded with replacement characters for invalid bytes
 * (never an exception), NULs kept, a trailing \r dropped, a last line without \n still yielded.
 */
import { isAscii } from 'node:buffer';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { isAsciiText } from './ascii.ts';

/** A chunk's lines, and whether the chunk was pure ASCII (then no line needs its own check). */
export interface LineBatch {
  lines: string[];
  ascii: boolean;
}

/**
 * Chunks of a file read into one reused buffer: no per-chunk allocation for the GC to chase.
 * Reads are synchronous: test-filter has nothing else to do meanwhile, and each read through
 * the thread pool would leave the process idle between chunks.
 */
export async function* readFileChunks(file: string, size = 1 << 19): AsyncGenerator<Uint8Array> {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size);
    for (;;) {
      const bytesRead = readSync(fd, buffer, 0, size, null);
      if (bytesRead === 0) return;
      // Consumers decode each chunk before asking for the next, so the buffer can be reused.
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    closeSync(fd);
  }
}

/** Yields the lines of each chunk as one batch: one await per chunk, not per line. */
export async function* readLineBatches(stream: AsyncIterable<Uint8Array> | Readable): AsyncGenerator<LineBatch> {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let rest = '';
  // True while the decoder may hold the start of a multi-byte character from the last chunk.
  let decoderBusy = false;
  let restAscii = true;
  for await (const chunk of stream) {
    const bytes = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from((chunk as Uint8Array).buffer, (chunk as Uint8Array).byteOffset, (chunk as Uint8Array).byteLength);
    const chunkAscii = isAscii(bytes);
    // Pure ASCII needs no UTF-8 decoding: latin1 copies the bytes straight into a string.
    const decoded = chunkAscii && !decoderBusy ? bytes.toString('latin1') : decoder.decode(bytes, { stream: true });
    decoderBusy = !chunkAscii;
    const ascii: boolean = chunkAscii && restAscii;
    const text = rest + decoded;
    const nl = text.lastIndexOf('\n');
    if (nl === -1) {
      rest = text;
      restAscii = ascii;
      continue;
    }
    const body = text.slice(0, nl);
    rest = text.slice(nl + 1);
    restAscii = ascii;
    const lines = body.split('\n');
    if (body.includes('\r')) {
      for (let i = 0; i < lines.length; i++) {
        const l = lines[i] as string;
        if (l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
      }
    }
    yield { lines, ascii };
  }
  rest += decoder.decode();
  if (rest !== '') {
    const last = rest.endsWith('\r') ? rest.slice(0, -1) : rest;
    yield { lines: [last], ascii: isAsciiText(last) };
  }
}
