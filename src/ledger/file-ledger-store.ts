import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../util/durable-files.ts';
import { crc32 } from 'node:zlib';
import type { Logger } from '../logging/logger.ts';
import { UserFacingError } from '../util/errors.ts';
import { BanClaimSchema, LedgerMutationSchema, type BanClaim, type LedgerMutation } from './ban-claim.ts';
import type { LedgerStore } from './ledger-store.ts';
import { ClaimIndex } from './claim-index.ts';

export const SNAPSHOT_FILE = 'snapshot.jsonl';
export const JOURNAL_FILE = 'journal.jsonl';
const LOCK_FILE = 'lock';
const SNAPSHOT_FORMAT = 'edgeban-ledger';

export class LedgerCorruptError extends UserFacingError {
  readonly file: string;
  constructor(file: string, line: number, reason: string) {
    super(`ledger file ${file} is corrupt at line ${line}: ${reason}. edgeban will not start on a damaged ledger; ` +
      'restore it from a backup, or start once with --reset-state to begin with an empty ledger (the old files are kept aside)');
    this.name = 'LedgerCorruptError';
    this.file = file;
  }
}

/** Another live process holds the ledger's writer lock. */
export class LedgerLockedError extends UserFacingError {
  readonly holderPid: number;
  constructor(dir: string, holderPid: number) {
    super(`the ledger in ${dir} is in use by process ${holderPid} (another edgeban on the same data dir?)`);
    this.name = 'LedgerLockedError';
    this.holderPid = holderPid;
  }
}

export interface FileLedgerStoreOptions {
  /** Directory of the ledger files (created if missing). */
  dir: string;
  logger: Logger;
  /** Open without the writer lock and never write (for commands that inspect a running daemon's ledger). */
  readOnly?: boolean;
  /** Compaction is worthwhile once the journal holds this many records beyond twice the live claims. */
  compactAfterRecords?: number;
}

type WriteTask =
  | { kind: 'append'; text: string; count: number; done: Settle[] }
  | { kind: 'compact'; claims: readonly BanClaim[]; done: Settle[] };
interface Settle { resolve: () => void; reject: (error: unknown) => void }

/**
 * The embedded ledger store: a snapshot plus an append-only journal, one CRC-checked JSON record
 * per line. Appends are group-committed (one write and one fdatasync for everything queued
 * meanwhile); compaction writes a new snapshot to a temporary file, fsyncs it, renames it into
 * place and only then empties the journal, so a crash at any point leaves a loadable ledger
 * (journal records are idempotent, replaying them over a newer snapshot changes nothing).
 */
export class FileLedgerStore implements LedgerStore {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly readOnly: boolean;
  private readonly compactAfterRecords: number;
  private journal: FileHandle | null = null;
  private journalRecords = 0;
  private liveClaims = 0;
  private readonly queue: WriteTask[] = [];
  private writing = false;
  private lockHeld = false;

  private constructor(options: FileLedgerStoreOptions) {
    this.dir = options.dir;
    this.logger = options.logger;
    this.readOnly = options.readOnly ?? false;
    this.compactAfterRecords = options.compactAfterRecords ?? 50_000;
  }

  static async open(options: FileLedgerStoreOptions): Promise<FileLedgerStore> {
    const store = new FileLedgerStore(options);
    if (!store.readOnly) {
      await mkdir(store.dir, { recursive: true, mode: 0o700 });
      await store.acquireLock();
    }
    return store;
  }

  get snapshotPath(): string { return path.join(this.dir, SNAPSHOT_FILE); }
  get journalPath(): string { return path.join(this.dir, JOURNAL_FILE); }

  async load(): Promise<BanClaim[]> {
    const index = new ClaimIndex();
    for (const claim of await this.readSnapshot()) index.apply({ op: 'ban', claim });
    const { mutations, goodLength, tornBytes } = await this.readJournal();
    for (const mutation of mutations) index.apply(mutation);
    if (tornBytes > 0) {
      this.logger.warn({ file: this.journalPath, skippedBytes: tornBytes }, 'ledger journal ends with a torn record (a crash during a write); skipped it');
      if (!this.readOnly) await truncate(this.journalPath, goodLength);
    }
    this.journalRecords = mutations.length;
    this.liveClaims = index.size;
    if (!this.readOnly) this.journal = await open(this.journalPath, 'a', 0o600);
    return [...index.all()];
  }

  append(mutations: readonly LedgerMutation[]): Promise<void> {
    if (mutations.length === 0) return Promise.resolve();
    if (this.readOnly) return Promise.reject(new Error('ledger opened read-only'));
    const text = mutations.map(encodeRecord).join('');
    return new Promise((resolve, reject) => {
      const last = this.queue.at(-1);
      // Coalesce with a queued (not yet started) append: one write, one fdatasync.
      if (last?.kind === 'append') {
        last.text += text;
        last.count += mutations.length;
        last.done.push({ resolve, reject });
      } else {
        this.queue.push({ kind: 'append', text, count: mutations.length, done: [{ resolve, reject }] });
      }
      void this.drain();
    });
  }

  compact(claims: readonly BanClaim[]): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'compact', claims, done: [{ resolve, reject }] });
      void this.drain();
    });
  }

  wantsCompaction(): boolean {
    return !this.readOnly && this.journalRecords > this.compactAfterRecords + 2 * this.liveClaims;
  }

  onRemoteMutations(): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    while (this.writing || this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    await this.journal?.close();
    this.journal = null;
    if (this.lockHeld) {
      await rm(path.join(this.dir, LOCK_FILE), { force: true });
      this.lockHeld = false;
    }
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      for (let task = this.queue.shift(); task; task = this.queue.shift()) {
        try {
          if (task.kind === 'append') await this.writeAppend(task.text, task.count);
          else await this.writeSnapshot(task.claims);
          for (const settle of task.done) settle.resolve();
        } catch (error) {
          for (const settle of task.done) settle.reject(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeAppend(text: string, count: number): Promise<void> {
    if (!this.journal) throw new Error('ledger store used before load()');
    await this.journal.write(text);
    await this.journal.datasync();
    this.journalRecords += count;
  }

  private async writeSnapshot(claims: readonly BanClaim[]): Promise<void> {
    const temporary = `${this.snapshotPath}.tmp`;
    const handle = await open(temporary, 'w', 0o600);
    try {
      const header = { format: SNAPSHOT_FORMAT, version: 1, claims: claims.length };
      let chunk = encodeLine(JSON.stringify(header));
      for (const claim of claims) {
        chunk += encodeLine(JSON.stringify(claim));
        if (chunk.length > 1 << 20) {
          await handle.write(chunk);
          chunk = '';
        }
      }
      await handle.write(chunk);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.snapshotPath);
    await syncDirectory(this.dir);
    // Only now is the journal redundant; a crash before this line replays it harmlessly.
    if (!this.journal) throw new Error('ledger store used before load()');
    await this.journal.truncate(0);
    await this.journal.sync();
    this.journalRecords = 0;
    this.liveClaims = claims.length;
  }

  private async readSnapshot(): Promise<BanClaim[]> {
    const text = await readIfExists(this.snapshotPath);
    if (text === null) return [];
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const header = decodeLine(lines[0] ?? '');
    if (!header.ok) throw new LedgerCorruptError(this.snapshotPath, 1, header.reason);
    const meta = header.value as { format?: unknown; claims?: unknown };
    if (meta.format !== SNAPSHOT_FORMAT || typeof meta.claims !== 'number') throw new LedgerCorruptError(this.snapshotPath, 1, 'not an edgeban ledger snapshot header');
    const claims: BanClaim[] = [];
    for (let i = 1; i < lines.length; i++) {
      const decoded = decodeLine(lines[i] ?? '');
      if (!decoded.ok) throw new LedgerCorruptError(this.snapshotPath, i + 1, decoded.reason);
      const claim = BanClaimSchema.safeParse(decoded.value);
      if (!claim.success) throw new LedgerCorruptError(this.snapshotPath, i + 1, `not a ban record (${claim.error.issues[0]?.path.join('.')}: ${claim.error.issues[0]?.message})`);
      claims.push(claim.data);
    }
    if (claims.length !== meta.claims) throw new LedgerCorruptError(this.snapshotPath, lines.length, `holds ${claims.length} records, its header says ${meta.claims}`);
    return claims;
  }

  /**
   * A bad record followed only by bad or empty bytes is a torn tail (the crash interrupted the
   * last write, or the filesystem exposed unwritten blocks as NULs): skipped. A bad record with a
   * good one after it cannot come from a crash: that is corruption.
   */
  private async readJournal(): Promise<{ mutations: LedgerMutation[]; goodLength: number; tornBytes: number }> {
    const text = await readIfExists(this.journalPath);
    if (text === null) return { mutations: [], goodLength: 0, tornBytes: 0 };
    const mutations: LedgerMutation[] = [];
    let offset = 0;
    let goodLength = 0;
    let firstBad: { line: number; reason: string } | null = null;
    let lineNumber = 0;
    while (offset < text.length) {
      lineNumber++;
      const newline = text.indexOf('\n', offset);
      const complete = newline !== -1;
      const line = text.slice(offset, complete ? newline : text.length);
      offset = complete ? newline + 1 : text.length;
      if (line.replace(/\0/g, '').trim() === '') continue;
      const decoded = complete ? decodeLine(line) : { ok: false as const, reason: 'incomplete record' };
      const mutation = decoded.ok ? LedgerMutationSchema.safeParse(decoded.value) : null;
      if (decoded.ok && mutation?.success) {
        if (firstBad) throw new LedgerCorruptError(this.journalPath, firstBad.line, firstBad.reason);
        mutations.push(mutation.data);
        goodLength = Buffer.byteLength(text.slice(0, offset));
      } else {
        firstBad ??= { line: lineNumber, reason: decoded.ok ? 'not a ledger mutation' : decoded.reason };
      }
    }
    const totalBytes = Buffer.byteLength(text);
    return { mutations, goodLength, tornBytes: firstBad ? totalBytes - goodLength : 0 };
  }

  private async acquireLock(): Promise<void> {
    const lockPath = path.join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(lockPath, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
        await handle.write(String(process.pid));
        await handle.close();
        this.lockHeld = true;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number((await readIfExists(lockPath))?.trim());
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isProcessAlive(holder)) {
          throw new LedgerLockedError(this.dir, holder);
        }
        // A lock left by a process that died: take it over.
        await rm(lockPath, { force: true });
      }
    }
    throw new UserFacingError(`cannot take the ledger lock in ${this.dir}`);
  }
}


function encodeRecord(mutation: LedgerMutation): string {
  return encodeLine(JSON.stringify(mutation));
}

function encodeLine(json: string): string {
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function decodeLine(line: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  const space = line.indexOf(' ');
  if (space !== 8) return { ok: false, reason: 'no checksum' };
  const json = line.slice(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return { ok: false, reason: 'checksum mismatch' };
  try {
    return { ok: true, value: JSON.parse(json) };
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}


function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
