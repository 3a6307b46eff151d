import { constants as fsConstants } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../logging/logger.ts';
import { ensureDirectory, syncDirectory } from '../util/durable-files.ts';
import { LedgerMutationSchema, type LedgerMutation } from './ban-claim.ts';
import { decodeLine, encodeLine, writeTemporaryFile } from './file-ledger-store.ts';
import { LedgerWriteError } from './ledger-store.ts';

export const SPOOL_FILE = 'spool.jsonl';

const BatchSchema = z.object({ m: z.array(LedgerMutationSchema) });

/**
 * Mutations a shared ledger could not send while its server was unreachable, kept in order on the
 * local disk until they are replayed. Same durability rules as the file ledger: `add` resolves
 * only once the batch is written and fdatasync'ed; a failed write is cut off before the error is
 * reported, so it leaves no trace and nothing is ever written after a partial record. One CRC'd
 * JSON line per batch; a torn last line (a crash during a write) is skipped with a warning.
 */
export class LedgerSpool {
  readonly file: string;
  private readonly logger: Logger;
  private handle: FileHandle | null = null;
  private length = 0;
  /** Bytes past `length` may hold a failed write that could not be cut off yet. */
  private dirty = false;
  private held: LedgerMutation[][] = [];
  private writing: Promise<void> = Promise.resolve();

  private constructor(dir: string, logger: Logger) {
    this.file = path.join(dir, SPOOL_FILE);
    this.logger = logger;
  }

  /** Opens (creating the directory) and reads the batches a previous run left unsent. */
  static async open(dir: string, logger: Logger): Promise<LedgerSpool> {
    await ensureDirectory(dir, 'the ledger spool directory');
    const spool = new LedgerSpool(dir, logger);
    await spool.read();
    return spool;
  }

  /** Batches not yet replayed, oldest first. */
  batches(): readonly LedgerMutation[][] {
    return this.held;
  }

  /** Appends a batch durably; rejects with a LedgerWriteError leaving no trace. Batches are written in call order. */
  add(mutations: readonly LedgerMutation[]): Promise<void> {
    const batch = [...mutations];
    const done = this.writing.then(() => this.write(batch));
    this.writing = done.catch(() => undefined);
    return done;
  }

  /** Forgets the first `count` batches (replayed): the rest are rewritten durably. */
  dropFirst(count: number): Promise<void> {
    const done = this.writing.then(() => this.rewrite(this.held.slice(count)));
    this.writing = done.catch(() => undefined);
    return done;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle?.close();
    this.handle = null;
  }

  private async write(batch: LedgerMutation[]): Promise<void> {
    // Not O_APPEND: every write goes at `length`, right after the last durable batch.
    const handle = (this.handle ??= await open(this.file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600));
    if (this.dirty) {
      try {
        await handle.truncate(this.length);
        await handle.datasync();
      } catch (error) {
        throw new LedgerWriteError(this.file, error);
      }
      this.dirty = false;
    }
    const data = Buffer.from(encodeLine(JSON.stringify({ m: batch })));
    try {
      this.dirty = true;
      const { bytesWritten } = await handle.write(data, 0, data.length, this.length);
      if (bytesWritten !== data.length) throw Object.assign(new Error('no space left on device (short write)'), { code: 'ENOSPC' });
      await handle.datasync();
    } catch (error) {
      try {
        await handle.truncate(this.length);
        await handle.datasync();
        this.dirty = false;
      } catch (cutError) {
        // Cut before the next write (which fails if it still cannot): nothing is written after a partial record.
        this.logger.error(
          { file: this.file, err: (cutError as Error).message },
          'could not cut a failed write off the ledger spool; the next write tries again first',
        );
      }
      throw new LedgerWriteError(this.file, error);
    }
    this.dirty = false;
    this.length += data.length;
    this.held.push(batch);
  }

  private async rewrite(batches: LedgerMutation[][]): Promise<void> {
    const temporary = `${this.file}.tmp`;
    const text = batches.map((batch) => encodeLine(JSON.stringify({ m: batch }))).join('');
    await writeTemporaryFile(temporary, (handle) => handle.writeFile(text));
    await this.handle?.close();
    this.handle = null;
    await rename(temporary, this.file);
    await syncDirectory(path.dirname(this.file));
    this.length = Buffer.byteLength(text);
    this.held = batches;
  }

  private async read(): Promise<void> {
    let text: string;
    try {
      const handle = await open(this.file, 'r');
      try {
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    let offset = 0;
    let line = 0;
    while (offset < text.length) {
      line++;
      const newline = text.indexOf('\n', offset);
      const raw = text.slice(offset, newline === -1 ? text.length : newline);
      const decoded = newline === -1 ? null : decodeLine(raw);
      const batch = decoded?.ok ? BatchSchema.safeParse(decoded.value) : null;
      if (!batch?.success) {
        // Only a crash during the last write leaves a bad line, and nothing is written after one.
        this.logger.warn({ file: this.file, line }, 'the ledger spool ends with a torn record (a crash during a write); skipped it');
        break;
      }
      this.held.push(batch.data.m);
      offset = newline + 1;
    }
    this.length = Buffer.byteLength(text.slice(0, offset));
    if (offset < text.length) await this.rewrite(this.held);
    if (this.held.length > 0)
      this.logger.warn(
        { file: this.file, batches: this.held.length },
        'the ledger spool holds changes not yet sent to Redis; they are replayed once it answers',
      );
  }
}
