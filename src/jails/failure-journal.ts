import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../util/durable-files.ts';
import { crc32 } from 'node:zlib';
import type { Logger } from '../logging/logger.ts';
import { errorMessage } from '../util/errors.ts';
import type { Cidr } from './cidr.ts';

/**
 * Where a counted failure was read: its log (a hash of the path it was followed under), the byte
 * offset just past its line, and a hash of the line. A line read again after a restart (it was
 * past the saved offset) has the same three, a different line at the same place does not.
 */
export interface LineRef {
  pathHash: number;
  endOffset: number;
  lineHash: number;
}

/** Record kinds. */
export const FAILURE = 1;
/** A manual unban reset the address's count. */
export const FORGET = 2;
/** A whole counter ticket (first, last, retry), written by compaction. */
export const TICKET = 3;
/** A line already counted (its count is in a ticket) that may be read again: for de-duplication only. */
export const SEEN = 4;
export type RecordKind = typeof FAILURE | typeof FORGET | typeof TICKET | typeof SEEN;

/** One decoded record; the reader reuses a single object (and its address) for every record. */
export interface JournalRecord {
  kind: RecordKind;
  address: Cidr;
  /** FAILURE, SEEN: the failure's time; TICKET: the first failure's (epoch seconds). */
  time: number;
  /** TICKET: the last failure's time. */
  last: number;
  /** TICKET: the retry count. */
  retry: number;
  /** FAILURE, SEEN: the line; null for the others. */
  line: LineRef | null;
}

const FILE_HEADER = Buffer.from('edgeban-fails-v1', 'latin1');
const FRAME_MAGIC = 0x4a464245; // "EBFJ" little-endian
const FRAME_HEADER_BYTES = 12;
export const RECORD_BYTES = 56;
/** Records per frame: a frame is read whole, so this bounds the reader's buffer (~224 KiB). */
const FRAME_RECORDS = 4096;

/**
 * A jail's failure journal: a 16-byte file header, then frames of fixed 56-byte records, each
 * frame `magic, count, crc32(body)` then the body. A frame is one append (a batch's counted
 * failures) or part of a compaction; a crash can only tear the last append, so a bad frame ends
 * the journal: it and anything after it is dropped (and truncated away) with a warning.
 *
 * Binary and fixed-size rather than JSON lines like the ledger's: a flood appends ~100k records
 * a second, and a start replays up to a million tickets; encoding is a few typed-array stores.
 */
export class FailureJournal {
  readonly file: string;
  private readonly logger: Logger;
  private handle: FileHandle | null;
  private recordCount: number;
  /** Bytes in the file: a failed append is cut back to this, so no half frame stays before the next one. */
  private size: number;
  /** Encoded records not yet written. */
  private chunks: Chunk[] = [];
  private pendingCount = 0;
  /** Chunk buffers written and free again: a flood commits hundreds of batches a second. */
  private readonly spare: Buffer[] = [];

  private constructor(file: string, logger: Logger, handle: FileHandle, records: number, size: number) {
    this.file = file;
    this.logger = logger;
    this.handle = handle;
    this.recordCount = records;
    this.size = size;
  }

  /**
   * Opens (creating) the journal and hands every intact record to `visit`, in order. A torn or
   * damaged tail is cut off; a file that is not a journal at all is set aside as `.damaged`.
   */
  static async open(file: string, logger: Logger, visit: (record: JournalRecord) => void): Promise<FailureJournal> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    let handle = await open(file, 'a+', 0o600);
    let records = 0;
    let size = 0;
    try {
      const read = await readRecords(handle, visit);
      records = read.records;
      size = read.goodLength;
      if (read.notJournal) {
        await handle.close();
        const aside = `${file}.damaged`;
        await rename(file, aside);
        logger.warn({ file, keptAs: aside }, `failure journal ${file} is not an edgeban failure journal; set aside, failure counts start empty`);
        handle = await open(file, 'a+', 0o600);
      } else if (read.goodLength < read.size && read.goodLength > 0) {
        logger.warn(
          { file, keptRecords: records, droppedBytes: read.size - read.goodLength },
          'failure journal ends with a torn or damaged record (a crash during a write); dropped it',
        );
        await handle.truncate(read.goodLength);
      }
      if (size === 0) {
        await handle.truncate(0);
        await handle.write(FILE_HEADER, 0, FILE_HEADER.length);
        size = FILE_HEADER.length;
      }
      await handle.datasync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return new FailureJournal(file, logger, handle, records, size);
  }

  /** Records in the file (for the compaction policy). */
  get records(): number {
    return this.recordCount;
  }

  /** Records added and not yet committed. */
  get pending(): number {
    return this.pendingCount;
  }

  addFailure(address: Cidr, time: number, line: LineRef | null): void {
    const chunk = this.chunkWithRoom();
    encodeRecord(chunk.buf, chunk.fill++ * RECORD_BYTES, FAILURE, address, time, 0, 0, line);
    this.pendingCount++;
  }

  addForget(address: Cidr): void {
    const chunk = this.chunkWithRoom();
    encodeRecord(chunk.buf, chunk.fill++ * RECORD_BYTES, FORGET, address, 0, 0, 0, null);
    this.pendingCount++;
  }

  /**
   * Writes what was added since the last commit and fdatasyncs it: one write and one sync per
   * call, whatever the number of records (the caller commits once per batch of lines). On an
   * error the file is cut back to where it was and the records stay pending for the next commit.
   * Calls must not overlap (the caller serializes them).
   */
  async commit(): Promise<void> {
    if (this.pendingCount === 0) return;
    const handle = this.requireOpen();
    const taken = this.chunks;
    const count = this.pendingCount;
    this.chunks = [];
    this.pendingCount = 0;
    const frames = taken.flatMap((chunk) => frame(chunk));
    const bytes = frames.reduce((sum, b) => sum + b.length, 0);
    try {
      await handle.writev(frames);
      await handle.datasync();
    } catch (error) {
      await handle.truncate(this.size).catch(() => undefined);
      // Records added while the write was in flight (a manual unban) go after these.
      this.chunks = [...taken, ...this.chunks];
      this.pendingCount += count;
      throw error;
    }
    this.size += bytes;
    this.recordCount += count;
    for (const chunk of taken) if (this.spare.length < 4) this.spare.push(chunk.buf);
  }

  /**
   * Compaction: replaces the file with what `write` encodes (tickets and lines still to
   * de-duplicate), atomically (temporary file, fsync, rename, directory fsync). Records pending
   * when `write` runs are dropped: the caller's snapshot holds their effect. Must not overlap a commit.
   */
  async rewrite(write: (sink: JournalSink) => void): Promise<void> {
    const old = this.requireOpen();
    const temporary = `${this.file}.tmp`;
    const sink = new FrameSink();
    write(sink);
    this.chunks = [];
    this.pendingCount = 0;
    const frames = [FILE_HEADER, ...sink.frames()];
    const handle = await open(temporary, 'w', 0o600);
    try {
      // writev takes at most IOV_MAX buffers at once in some versions: a few hundred at a time.
      for (let i = 0; i < frames.length; i += 512) await handle.writev(frames.slice(i, i + 512));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.file);
    await syncDirectory(path.dirname(this.file));
    this.handle = await open(this.file, 'a', 0o600);
    await old.close().catch(() => undefined);
    this.recordCount = sink.count;
    this.size = frames.reduce((sum, b) => sum + b.length, 0);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close().catch((error: unknown) => this.logger.warn({ file: this.file, err: errorMessage(error) }, 'cannot close the failure journal'));
  }

  private requireOpen(): FileHandle {
    if (!this.handle) throw new Error(`failure journal ${this.file} is closed`);
    return this.handle;
  }

  private chunkWithRoom(): Chunk {
    let chunk = this.chunks.at(-1);
    if (!chunk || chunk.fill === FRAME_RECORDS) {
      chunk = { buf: this.spare.pop() ?? Buffer.allocUnsafe(FRAME_RECORDS * RECORD_BYTES), fill: 0 };
      this.chunks.push(chunk);
    }
    return chunk;
  }
}

/** Up to FRAME_RECORDS encoded records: one frame. */
interface Chunk {
  buf: Buffer;
  fill: number;
}

function frame(chunk: Chunk): Buffer[] {
  const body = chunk.buf.subarray(0, chunk.fill * RECORD_BYTES);
  return [frameHeader(body, chunk.fill), body];
}

/** What compaction writes into. */
export interface JournalSink {
  ticket(address: Cidr, first: number, last: number, retry: number): void;
  seen(address: Cidr, time: number, line: LineRef): void;
}

class FrameSink implements JournalSink {
  count = 0;
  private readonly chunks: Chunk[] = [];

  ticket(address: Cidr, first: number, last: number, retry: number): void {
    const chunk = this.chunkWithRoom();
    encodeRecord(chunk.buf, chunk.fill++ * RECORD_BYTES, TICKET, address, first, last, retry, null);
  }

  seen(address: Cidr, time: number, line: LineRef): void {
    const chunk = this.chunkWithRoom();
    encodeRecord(chunk.buf, chunk.fill++ * RECORD_BYTES, SEEN, address, time, 0, 0, line);
  }

  frames(): Buffer[] {
    return this.chunks.flatMap((chunk) => frame(chunk));
  }

  private chunkWithRoom(): Chunk {
    let chunk = this.chunks.at(-1);
    if (!chunk || chunk.fill === FRAME_RECORDS) {
      chunk = { buf: Buffer.allocUnsafe(FRAME_RECORDS * RECORD_BYTES), fill: 0 };
      this.chunks.push(chunk);
    }
    this.count++;
    return chunk;
  }
}

// Record layout (little-endian): 0 kind u8, 1 family u8, 2 prefix u8, 3 zero, 4 retry u32,
// 8 address (16 bytes; IPv4 in the first 4), 24 time f64, 32 last f64, 40 endOffset f64 (-1: no
// line), 48 pathHash u32, 52 lineHash u32.
function encodeRecord(buf: Buffer, o: number, kind: RecordKind, address: Cidr, time: number, last: number, retry: number, line: LineRef | null): void {
  buf[o] = kind;
  buf[o + 1] = address.family;
  buf[o + 2] = address.prefix;
  buf[o + 3] = 0;
  buf.writeUInt32LE(Math.min(retry, 0xffffffff) >>> 0, o + 4);
  // Byte by byte: a subarray and a fill per record cost more than the rest of the record.
  const bytes = address.bytes;
  const n = address.family === 4 ? 4 : 16;
  for (let i = 0; i < 16; i++) buf[o + 8 + i] = i < n ? (bytes[i] ?? 0) : 0;
  buf.writeDoubleLE(time, o + 24);
  buf.writeDoubleLE(last, o + 32);
  buf.writeDoubleLE(line ? line.endOffset : -1, o + 40);
  buf.writeUInt32LE(line ? line.pathHash >>> 0 : 0, o + 48);
  buf.writeUInt32LE(line ? line.lineHash >>> 0 : 0, o + 52);
}

function frameHeader(body: Buffer, records: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32LE(FRAME_MAGIC, 0);
  header.writeUInt32LE(records, 4);
  header.writeUInt32LE(crc32(body), 8);
  return header;
}

interface ReadResult {
  records: number;
  size: number;
  /** Bytes up to the end of the last intact frame (0: not even a header). */
  goodLength: number;
  /** The file has content but not our header: not a journal (or its very first bytes are torn). */
  notJournal: boolean;
}

async function readRecords(handle: FileHandle, visit: (record: JournalRecord) => void): Promise<ReadResult> {
  const size = (await handle.stat()).size;
  if (size === 0) return { records: 0, size, goodLength: 0, notJournal: false };
  const head = Buffer.alloc(FILE_HEADER.length);
  const { bytesRead } = await handle.read(head, 0, head.length, 0);
  if (bytesRead < head.length || !head.equals(FILE_HEADER)) {
    // A header shorter than 16 bytes is a torn first write, not someone else's file.
    const torn = bytesRead < head.length && FILE_HEADER.subarray(0, bytesRead).equals(head.subarray(0, bytesRead));
    return { records: 0, size, goodLength: 0, notJournal: !torn };
  }
  const bytes = new Uint8Array(16);
  const record: JournalRecord = {
    kind: FAILURE,
    address: { family: 4, bytes, prefix: 32, text: '' },
    time: 0,
    last: 0,
    retry: 0,
    line: null,
  };
  const mutable = record.address as { family: 4 | 6; prefix: number };
  const frameHead = Buffer.alloc(FRAME_HEADER_BYTES);
  const body = Buffer.alloc(FRAME_RECORDS * RECORD_BYTES);
  let position = FILE_HEADER.length;
  let records = 0;
  for (;;) {
    if (position + FRAME_HEADER_BYTES > size) break;
    await handle.read(frameHead, 0, FRAME_HEADER_BYTES, position);
    const count = frameHead.readUInt32LE(4);
    if (frameHead.readUInt32LE(0) !== FRAME_MAGIC || count === 0 || count > FRAME_RECORDS) break;
    const length = count * RECORD_BYTES;
    if (position + FRAME_HEADER_BYTES + length > size) break;
    const frame = body.subarray(0, length);
    await handle.read(frame, 0, length, position + FRAME_HEADER_BYTES);
    if (crc32(frame) !== frameHead.readUInt32LE(8)) break;
    // Check every record before visiting any: a frame is applied whole or not at all.
    let valid = true;
    for (let o = 0; o < length && valid; o += RECORD_BYTES) valid = recordValid(frame, o);
    if (!valid) break;
    for (let o = 0; o < length; o += RECORD_BYTES) {
      decodeRecord(frame, o, record, mutable);
      visit(record);
    }
    records += count;
    position += FRAME_HEADER_BYTES + length;
  }
  return { records, size, goodLength: position, notJournal: false };
}

function recordValid(buf: Buffer, o: number): boolean {
  const kind = buf[o]!;
  const family = buf[o + 1]!;
  const prefix = buf[o + 2]!;
  return kind >= FAILURE && kind <= SEEN && (family === 4 ? prefix <= 32 : family === 6 && prefix <= 128);
}

function decodeRecord(buf: Buffer, o: number, record: JournalRecord, address: { family: 4 | 6; prefix: number }): void {
  record.kind = buf[o] as RecordKind;
  address.family = buf[o + 1] as 4 | 6;
  address.prefix = buf[o + 2]!;
  record.retry = buf.readUInt32LE(o + 4);
  record.address.bytes.set(buf.subarray(o + 8, o + 24));
  record.time = buf.readDoubleLE(o + 24);
  record.last = buf.readDoubleLE(o + 32);
  const endOffset = buf.readDoubleLE(o + 40);
  record.line = endOffset < 0 ? null : { pathHash: buf.readUInt32LE(o + 48), endOffset, lineHash: buf.readUInt32LE(o + 52) };
}
