import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { crc32 } from 'node:zlib';
import type { Logger } from '../logging/logger.ts';
import { ensureDirectory, syncDirectory } from '../util/durable-files.ts';
import { UserFacingError } from '../util/errors.ts';
import { BanClaimSchema, KNOWN_MUTATION_OPS, LedgerMutationSchema, type BanClaim, type LedgerMutation } from './ban-claim.ts';
import { ClaimIndex } from './claim-index.ts';
import { describeIoError, LedgerWriteError, type LedgerDamage, type LedgerStore } from './ledger-store.ts';
import { processStartTime } from './process-start-time.ts';

export const SNAPSHOT_FILE = 'snapshot.jsonl';
export const JOURNAL_FILE = 'journal.jsonl';
const LOCK_FILE = 'lock';
const SNAPSHOT_FORMAT = 'edgeban-ledger';
const JOURNAL_FORMAT = 'edgeban-ledger-journal';
const FORMAT_VERSION = 2;
// The journal header is rewritten in place after every batch, so it keeps one width.
const HEADER_JSON_WIDTH = 200;

/** A ledger damaged in a way recovery cannot work around (unreadable files, an unknown format). */
export class LedgerCorruptError extends UserFacingError {
  readonly file: string;
  constructor(file: string, line: number, reason: string) {
    super(
      `ledger file ${file} is corrupt at line ${line}: ${reason}. edgeban will not start on a ledger it cannot read; ` +
        'restore the file from a backup, or move it aside and start again: edgeban then keeps every ban it can read from the other file and reports what was lost ' +
        '(--reset-state would begin with an empty ledger)',
    );
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

/** The journal's writes, injectable so tests can make them fail as a full or failing disk does. */
export interface LedgerFileIo {
  /** Writes at `position`; like write(2) it may write fewer bytes than asked (a disk filling up). */
  write(handle: FileHandle, data: Buffer, position: number): Promise<number>;
  datasync(handle: FileHandle): Promise<void>;
  truncate(handle: FileHandle, length: number): Promise<void>;
}

const realIo: LedgerFileIo = {
  write: async (handle, data, position) => (await handle.write(data, 0, data.length, position)).bytesWritten,
  datasync: (handle) => handle.datasync(),
  truncate: (handle, length) => handle.truncate(length),
};

export interface FileLedgerStoreOptions {
  /** Directory of the ledger files (created if missing). */
  dir: string;
  logger: Logger;
  /** Open without the writer lock and never write (for commands that inspect a running daemon's ledger). */
  readOnly?: boolean;
  /** Compaction is worthwhile once the journal holds this many records beyond twice the live claims. */
  compactAfterRecords?: number;
  /** Fault injection for tests; the real file system otherwise. */
  io?: LedgerFileIo;
  /** Clock for the names of damaged files moved aside. */
  now?: () => number;
}

type WriteTask = { kind: 'append'; mutations: LedgerMutation[]; done: Settle[] } | { kind: 'compact'; claims: readonly BanClaim[]; done: Settle[] };
interface Settle {
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface SnapshotHeader {
  format: string;
  version: number;
  ledger: string;
  claims: number;
  lastSeq: number;
}
interface JournalHeader {
  format: string;
  version: number;
  ledger: string;
  after: number;
  committed: number;
}

interface SnapshotRead {
  header: SnapshotHeader | null;
  problems: string[];
}
/** A journal record: legacy (version 1) records have no sequence number; mutation null: a type this version does not know. */
interface JournalRecord {
  seq: number | null;
  mutation: LedgerMutation | null;
}
interface JournalRead {
  header: JournalHeader | null;
  /** Records read (handed over one by one as they were read). */
  recordCount: number;
  /** Whether a record without a sequence number (version 1) was read. */
  legacyRecords: boolean;
  goodLength: number;
  tornBytes: number;
  problems: string[];
}

/**
 * The embedded ledger store: a snapshot plus a journal, one CRC-checked JSON record per line.
 *
 * Every journal record carries a sequence number; the snapshot's header names the last record it
 * covers and the journal's header the snapshot it follows and the last record known durable. So
 * a missing snapshot or journal, a gap, a record zeroed in the middle or a journal cut short are
 * told apart from a torn last write (a crash), and named. Such damage is recovered at load: every
 * readable record is kept, the damaged files are moved aside, a clean snapshot is written, and
 * what was lost is logged and reported by `damage()`.
 *
 * Appends are group-committed (one write and one fdatasync for everything queued meanwhile) and
 * resolve only once durable. A write that fails (full disk, EIO from fsync) is cut off the
 * journal before the error is reported, and before any later write, so no partial record ever
 * has a record after it. Compaction writes a new snapshot and a new journal to temporary files,
 * fsyncs and renames them into place; a crash at any point leaves a loadable ledger.
 */
export class FileLedgerStore implements LedgerStore {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly readOnly: boolean;
  private readonly compactAfterRecords: number;
  private readonly io: LedgerFileIo;
  private readonly now: () => number;
  private journal: FileHandle | null = null;
  /** Bytes of the journal that hold its header and durable records; anything beyond is cut off. */
  private journalLength = 0;
  /** Bytes past `journalLength` may hold a failed write that could not be cut off yet. */
  private tailDirty = false;
  private ledgerId = '';
  /** The last durable record's sequence number. */
  private lastSeq = 0;
  private journalAfter = 0;
  private journalRecords = 0;
  private liveClaims = 0;
  private damageReport: LedgerDamage | null = null;
  private readonly unknownSkipped: { count: number; last: string | null } = { count: 0, last: null };
  private readonly queue: WriteTask[] = [];
  private writing = false;
  private lockHeld = false;

  private constructor(options: FileLedgerStoreOptions) {
    this.dir = options.dir;
    this.logger = options.logger;
    this.readOnly = options.readOnly ?? false;
    this.compactAfterRecords = options.compactAfterRecords ?? 50_000;
    this.io = options.io ?? realIo;
    this.now = options.now ?? Date.now;
  }

  static async open(options: FileLedgerStoreOptions): Promise<FileLedgerStore> {
    const store = new FileLedgerStore(options);
    if (!store.readOnly) {
      await ensureDirectory(store.dir, 'the ledger directory');
      await store.acquireLock();
    }
    return store;
  }

  get snapshotPath(): string {
    return path.join(this.dir, SNAPSHOT_FILE);
  }
  get journalPath(): string {
    return path.join(this.dir, JOURNAL_FILE);
  }

  async load(): Promise<BanClaim[]> {
    const index = new ClaimIndex();
    const snapshot = await this.readSnapshot((claim) => index.apply({ op: 'ban', claim }));
    const snapshotSeq = snapshot?.header?.lastSeq ?? 0;
    let lastSeq = snapshotSeq;
    // Journal records are applied as they are read (none is held until the end); the gaps they show
    // are reported after the problems of the files themselves.
    const gaps: string[] = [];
    let expected: number | null = null;
    const journal = await this.readJournal((header, { seq, mutation }) => {
      if (seq !== null) {
        expected ??= Math.max(header?.after ?? 0, snapshotSeq) + 1;
        // Covered by the snapshot (a crash between installing a snapshot and its new journal).
        if (seq <= snapshotSeq) return;
        if (seq > expected) gaps.push(`journal ${this.journalPath}: records ${range(expected, seq - 1)} are missing`);
        expected = seq + 1;
        lastSeq = seq;
      }
      if (mutation !== null) index.apply(mutation);
    });
    const problems = [...(snapshot?.problems ?? []), ...(journal?.problems ?? [])];
    // Version 1 created an empty journal at every start and a snapshot only on compaction: a ledger
    // that never recorded a ban is an empty journal alone, to be upgraded, not damage.
    const neverUsedV1 =
      snapshot === null && journal !== null && journal.header === null && journal.recordCount === 0 && journal.tornBytes === 0 && journal.problems.length === 0;
    const legacy =
      neverUsedV1 || (snapshot !== null && snapshot.header?.version === 1) || (journal !== null && journal.header === null && journal.legacyRecords);

    if (!legacy && snapshot !== null && journal === null) {
      problems.push(`journal ${this.journalPath} is missing: every ban recorded after record ${snapshotSeq} is lost`);
    }
    if (!legacy && snapshot?.header && journal !== null && journal.header === null && !journal.problems.some((p) => p.includes('header'))) {
      problems.push(`journal ${this.journalPath} has no header (emptied or replaced): bans recorded after record ${snapshotSeq} may be lost`);
    }
    if (!legacy && snapshot === null && journal !== null) {
      problems.push(
        journal.header !== null && journal.header.after > 0
          ? `snapshot ${this.snapshotPath} is missing: every ban recorded up to record ${journal.header.after} is lost`
          : `snapshot ${this.snapshotPath} is missing`,
      );
    }
    if (journal?.header && snapshot?.header) {
      if (journal.header.ledger !== snapshot.header.ledger)
        problems.push(`journal ${this.journalPath} belongs to another ledger than snapshot ${this.snapshotPath}`);
      else if (journal.header.after > snapshotSeq)
        problems.push(`records ${snapshotSeq + 1}–${journal.header.after} are missing: snapshot ${this.snapshotPath} is older than the journal`);
    }
    if (journal) {
      problems.push(...gaps);
      const committed = journal.header?.committed ?? 0;
      if (committed > lastSeq) {
        problems.push(`journal ${this.journalPath} was cut short: records ${range(lastSeq + 1, committed)} were saved and are gone`);
        lastSeq = committed;
      } else if (journal.tornBytes > 0) {
        this.logger.warn(
          { file: this.journalPath, skippedBytes: journal.tornBytes },
          'ledger journal ends with a torn record (a crash during a write); skipped it',
        );
      }
      this.journalRecords = journal.recordCount;
      this.journalLength = journal.goodLength;
      this.tailDirty = journal.tornBytes > 0;
    }
    this.lastSeq = lastSeq;
    this.liveClaims = index.size;
    const claims = [...index.all()];
    // A version-1 snapshot has no ledger id: the rewrite gives it one.
    this.ledgerId = snapshot?.header?.ledger || journal?.header?.ledger || randomUUID();
    this.journalAfter = journal?.header?.after ?? snapshotSeq;

    if (problems.length > 0) await this.recover(problems, claims);
    else if (!this.readOnly) {
      // A new ledger starts with both files, so that either one missing later is noticed; a
      // version-1 ledger is rewritten with sequence numbers.
      if (snapshot === null || journal === null || legacy) await this.installFresh(claims);
      else {
        this.journal = await open(this.journalPath, 'r+');
        await this.cutTail(this.journal);
      }
    }
    return claims;
  }

  damage(): LedgerDamage | null {
    return this.damageReport;
  }

  /** Journal records of mutation types this version does not know (a newer edgeban wrote them), skipped at load. */
  unknownMutations(): { count: number; last: string | null } {
    return { ...this.unknownSkipped };
  }

  append(mutations: readonly LedgerMutation[]): Promise<void> {
    if (mutations.length === 0) return Promise.resolve();
    if (this.readOnly) return Promise.reject(new Error('ledger opened read-only'));
    return new Promise((resolve, reject) => {
      const last = this.queue.at(-1);
      // Coalesce with a queued (not yet started) append: one write, one fdatasync.
      if (last?.kind === 'append') {
        last.mutations.push(...mutations);
        last.done.push({ resolve, reject });
      } else {
        this.queue.push({ kind: 'append', mutations: [...mutations], done: [{ resolve, reject }] });
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
          if (task.kind === 'append') await this.writeAppend(task.mutations);
          else await this.installFresh(task.claims);
          for (const settle of task.done) settle.resolve();
        } catch (error) {
          for (const settle of task.done) settle.reject(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeAppend(mutations: readonly LedgerMutation[]): Promise<void> {
    const journal = this.journal;
    if (!journal) throw new Error('ledger store used before load()');
    await this.cutTail(journal);
    let text = '';
    for (let i = 0; i < mutations.length; i++) text += encodeLine(JSON.stringify({ seq: this.lastSeq + 1 + i, m: mutations[i] }));
    const records = Buffer.from(text);
    try {
      this.tailDirty = true;
      await this.writeAll(journal, records, this.journalLength);
      // The header names the last record durable before this batch: a journal later found
      // shorter than that was cut, not torn by a crash.
      await this.writeAll(journal, this.journalHeader(this.lastSeq), 0);
      await this.io.datasync(journal);
    } catch (error) {
      await this.cutTail(journal).catch((cutError: unknown) => {
        this.logger.error(
          { file: this.journalPath, err: describeIoError(cutError) },
          'could not cut a failed write off the ledger journal; the next write tries again first',
        );
      });
      throw new LedgerWriteError(this.journalPath, error);
    }
    this.tailDirty = false;
    this.journalLength += records.length;
    this.lastSeq += mutations.length;
    this.journalRecords += mutations.length;
  }

  /** Cuts whatever a failed write may have left after the last durable record. */
  private async cutTail(journal: FileHandle): Promise<void> {
    if (!this.tailDirty) return;
    try {
      await this.io.truncate(journal, this.journalLength);
      await this.io.datasync(journal);
    } catch (error) {
      throw new LedgerWriteError(this.journalPath, error);
    }
    this.tailDirty = false;
  }

  /** Writes `claims` as the snapshot at the current record and starts an empty journal after it. */
  private async installFresh(claims: readonly BanClaim[]): Promise<void> {
    const header: SnapshotHeader = { format: SNAPSHOT_FORMAT, version: FORMAT_VERSION, ledger: this.ledgerId, claims: claims.length, lastSeq: this.lastSeq };
    await this.writeFileDurably(this.snapshotPath, function* () {
      yield encodeLine(JSON.stringify(header));
      for (const claim of claims) yield encodeLine(JSON.stringify(claim));
    });
    // A crash between the two renames leaves the old journal, whose records the snapshot covers.
    const journalHeader = this.journalHeader(this.lastSeq, this.lastSeq);
    await this.writeFileDurably(this.journalPath, function* () {
      yield journalHeader.toString();
    });
    await syncDirectory(this.dir);
    await this.journal?.close();
    this.journal = await open(this.journalPath, 'r+');
    this.journalLength = journalHeader.length;
    this.journalAfter = this.lastSeq;
    this.tailDirty = false;
    this.journalRecords = 0;
    this.liveClaims = claims.length;
  }

  private async writeFileDurably(file: string, lines: () => Generator<string>): Promise<void> {
    const temporary = `${file}.tmp`;
    await writeTemporaryFile(temporary, async (handle) => {
      let position = 0;
      let chunk = '';
      const flush = async () => {
        const data = Buffer.from(chunk);
        await this.writeAll(handle, data, position);
        position += data.length;
        chunk = '';
      };
      for (const line of lines()) {
        chunk += line;
        if (chunk.length > 1 << 20) await flush();
      }
      await flush();
    });
    await rename(temporary, file);
  }

  private async writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const written = await this.io.write(handle, data.subarray(done), position + done);
      if (written <= 0) throw Object.assign(new Error('no space left on device (short write)'), { code: 'ENOSPC' });
      done += written;
    }
  }

  private journalHeader(committed: number, after = this.journalAfter): Buffer {
    const header: JournalHeader = { format: JOURNAL_FORMAT, version: FORMAT_VERSION, ledger: this.ledgerId, after, committed };
    return Buffer.from(encodeLine(JSON.stringify(header).padEnd(HEADER_JSON_WIDTH, ' ')));
  }

  /** Keeps every readable claim, moves the damaged files aside and starts clean files from them. */
  private async recover(problems: string[], claims: readonly BanClaim[]): Promise<void> {
    const movedAside: string[] = [];
    if (!this.readOnly) {
      const suffix = `.damaged-${new Date(this.now()).toISOString().replace(/[:.]/g, '-')}`;
      for (const file of [this.snapshotPath, this.journalPath]) {
        try {
          await rename(file, file + suffix);
          movedAside.push(file + suffix);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      await this.installFresh(claims);
    }
    this.damageReport = { at: this.now(), problems, movedAside, keptClaims: claims.length };
    this.logger.error(
      { dir: this.dir, problems, movedAside, keptClaims: claims.length },
      `the ledger in ${this.dir} was damaged: ${problems.join('; ')}. Every readable ban was kept (${claims.length} claims)` +
        (movedAside.length > 0 ? `; the damaged files were moved aside (${movedAside.join(', ')}).` : '.') +
        ' Bans that were lost are no longer known to edgeban: their firewall entries count as foreign until removed or re-banned.',
    );
  }

  /**
   * Read line by line, each claim handed to `onClaim` as it is read: the snapshot of a large
   * ledger (16 MB at 100,000 bans) is never held whole, nor as an array of lines or claims —
   * that transient grew the heap, and the RSS never gave it back.
   */
  private async readSnapshot(onClaim: (claim: BanClaim) => void): Promise<SnapshotRead | null> {
    let header: SnapshotHeader | null = null;
    let claims = 0;
    let lineCount = 0;
    const unreadable: number[] = [];
    const found = await forEachLine(this.snapshotPath, (line) => {
      lineCount++;
      if (header === null) {
        const decodedHeader = decodeLine(line);
        if (!decodedHeader.ok) throw new LedgerCorruptError(this.snapshotPath, 1, decodedHeader.reason);
        const meta = decodedHeader.value as Partial<SnapshotHeader>;
        if (meta.format !== SNAPSHOT_FORMAT || typeof meta.claims !== 'number')
          throw new LedgerCorruptError(this.snapshotPath, 1, 'not an edgeban ledger snapshot header');
        const version = meta.version === FORMAT_VERSION && typeof meta.ledger === 'string' && typeof meta.lastSeq === 'number' ? FORMAT_VERSION : 1;
        header = { format: SNAPSHOT_FORMAT, version, ledger: meta.ledger ?? '', claims: meta.claims, lastSeq: version === 1 ? 0 : meta.lastSeq! };
        return;
      }
      const decoded = decodeLine(line);
      const claim = decoded.ok ? BanClaimSchema.safeParse(decoded.value) : null;
      if (claim?.success) {
        onClaim(claim.data);
        claims++;
      } else {
        unreadable.push(lineCount);
      }
    });
    if (!found) return null;
    if (header === null) throw new LedgerCorruptError(this.snapshotPath, 1, 'no checksum');
    const read: SnapshotHeader = header;
    const problems: string[] = [];
    if (unreadable.length > 0) problems.push(`snapshot ${this.snapshotPath}: unreadable record(s) at line ${lineList(unreadable)}`);
    const missing = read.claims - claims - unreadable.length;
    if (missing > 0) problems.push(`snapshot ${this.snapshotPath} was cut short: ${missing} of its ${read.claims} records are gone`);
    if (read.version === 1 && problems.length > 0) throw new LedgerCorruptError(this.snapshotPath, unreadable[0] ?? lineCount, problems[0]!);
    return { header: read, problems };
  }

  /**
   * A bad record followed only by bad or empty bytes is a torn tail (a crash interrupted the last
   * write, or the file system exposed unwritten blocks as NULs). A bad record with a good one
   * after it cannot come from a crash: it is named as damage, and the good records are kept.
   */
  private async readJournal(onRecord: (header: JournalHeader | null, record: JournalRecord) => void): Promise<JournalRead | null> {
    const problems: string[] = [];
    let header: JournalHeader | null = null;
    let recordCount = 0;
    let legacyRecords = false;
    // Byte positions, counted line by line (the text is UTF-8 decoded).
    let bytes = 0;
    let goodLength = 0;
    let bad: number[] = [];
    let lineNumber = 0;
    // Read line by line, as the snapshot is: the journal of a large ledger is never held whole.
    const found = await forEachLine(this.journalPath, (line, complete) => {
      lineNumber++;
      bytes += Buffer.byteLength(line) + (complete ? 1 : 0);
      if (line.replace(/\0/g, '').trim() === '') return;
      const decoded = complete ? decodeLine(line) : { ok: false as const, reason: 'incomplete record' };
      if (lineNumber === 1 && decoded.ok && (decoded.value as Partial<JournalHeader>).format === JOURNAL_FORMAT) {
        const value = decoded.value as JournalHeader;
        if (value.version !== FORMAT_VERSION)
          throw new LedgerCorruptError(this.journalPath, 1, `journal format version ${value.version} is not one this edgeban reads`);
        header = value;
        goodLength = bytes;
        return;
      }
      if (lineNumber === 1 && !decoded.ok) problems.push(`journal ${this.journalPath}: its header (line 1) is unreadable (${decoded.reason})`);
      const record = decoded.ok ? parseRecord(decoded.value) : null;
      if (record?.unknownOp !== undefined) this.skipUnknown(lineNumber, record.seq, record.unknownOp);
      if (record) {
        if (bad.length > 0) {
          problems.push(`journal ${this.journalPath}: unreadable record(s) at line ${lineList(bad)}`);
          bad = [];
        }
        recordCount++;
        if (record.seq === null) legacyRecords = true;
        onRecord(header, record);
        goodLength = bytes;
      } else if (lineNumber > 1 || decoded.ok) {
        bad.push(lineNumber);
      }
    });
    if (!found) return null;
    if (header === null && legacyRecords && problems.length > 0) {
      // A version-1 journal has no sequence numbers to tell what was lost: refuse, as it always did.
      throw new LedgerCorruptError(this.journalPath, 1, problems[0]!);
    }
    return { header, recordCount, legacyRecords, goodLength, tornBytes: bytes - goodLength, problems };
  }

  /**
   * A record whose mutation type this version does not know (written by a newer edgeban): skipped
   * with a warning naming it, counted for status, never damage or a refusal to start. Its sequence
   * number still counts, so no gap is reported for it.
   */
  private skipUnknown(line: number, seq: number | null, op: string): void {
    this.unknownSkipped.count++;
    this.unknownSkipped.last = `${this.journalPath} line ${line}${seq === null ? '' : ` (record ${seq})`}, op ${JSON.stringify(op)}`;
    this.logger.warn(
      { file: this.journalPath, line, record: seq, op },
      'skipped a ledger journal record of a type this version does not know (written by a newer edgeban?); upgrade edgeban to apply it',
    );
  }

  private async acquireLock(): Promise<void> {
    const lockPath = path.join(this.dir, LOCK_FILE);
    const own = `${process.pid} ${(await processStartTime(process.pid)) ?? ''}`.trim();
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(lockPath, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
        await handle.write(own);
        await handle.close();
        this.lockHeld = true;
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
          throw new UserFacingError(
            `cannot write the ledger lock in ${this.dir}: ${describeIoError(error)}; the data dir (EDGEBAN_DATA_DIR) must be writable by edgeban`,
          );
        }
        if (code !== 'EEXIST') throw error;
        const [pidText, startText] = ((await readIfExists(lockPath)) ?? '').trim().split(/\s+/);
        const holder = Number(pidText);
        if (Number.isInteger(holder) && holder > 0 && (await isLockHolderAlive(holder, startText))) {
          throw new LedgerLockedError(this.dir, holder);
        }
        // A lock left by a process that died (or whose PID now belongs to another process): take it over.
        await rm(lockPath, { force: true });
      }
    }
    throw new UserFacingError(`cannot take the ledger lock in ${this.dir}`);
  }
}

/**
 * Whether the process that wrote a lock still runs: its PID exists and, when the lock recorded
 * it, with the same start time (a PID reused by another process after a crash is not the holder).
 * A lock naming this very process without a start time is stale: in a container edgeban is always PID 1.
 */
async function isLockHolderAlive(pid: number, recordedStart: string | undefined): Promise<boolean> {
  if (recordedStart === undefined || recordedStart === '') {
    return pid !== process.pid && isProcessAlive(pid);
  }
  const start = await processStartTime(pid);
  if (start === null) return false;
  return start === recordedStart;
}

/**
 * A version-2 record `{seq, m}`, or a version-1 record (the bare mutation). A well-formed record
 * of an op this version does not know comes back with `mutation: null` and its op.
 */
function parseRecord(value: unknown): { seq: number | null; mutation: LedgerMutation | null; unknownOp?: string } | null {
  const record = value as { seq?: unknown; m?: unknown };
  if (typeof record === 'object' && record !== null && 'm' in record) {
    if (typeof record.seq !== 'number' || !Number.isInteger(record.seq) || record.seq <= 0) return null;
    const op = (record.m as { op?: unknown } | null)?.op;
    if (typeof op === 'string' && !KNOWN_MUTATION_OPS.has(op)) return { seq: record.seq, mutation: null, unknownOp: op.slice(0, 40) };
    const mutation = LedgerMutationSchema.safeParse(record.m);
    return mutation.success ? { seq: record.seq, mutation: mutation.data } : null;
  }
  const mutation = LedgerMutationSchema.safeParse(value);
  return mutation.success ? { seq: null, mutation: mutation.data } : null;
}

function range(from: number, to: number): string {
  return from === to ? String(from) : `${from}–${to}`;
}

function lineList(lines: readonly number[]): string {
  return lines.length <= 5 ? lines.join(', ') : `${lines.slice(0, 5).join(', ')} and ${lines.length - 5} more`;
}

/**
 * Writes a new file beside the one it will replace and fsyncs it; on a failed write the partial
 * file is removed and the error is a LedgerWriteError. The caller renames it into place.
 */
export async function writeTemporaryFile(temporary: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const handle = await open(temporary, 'w', 0o600);
  try {
    await write(handle);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw new LedgerWriteError(temporary, error);
  }
  await handle.close();
}

export function encodeLine(json: string): string {
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

export function decodeLine(line: string): { ok: true; value: unknown } | { ok: false; reason: string } {
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

/**
 * Calls `onLine` with each line of `file` (without its newline; a final empty line is not one;
 * `complete` false for a last line without a newline), reading it in chunks; false when the file
 * does not exist.
 */
async function forEachLine(file: string, onLine: (line: string, complete: boolean) => void): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  try {
    const decoder = new StringDecoder('utf8');
    // 64 KiB: each chunk's text is a fresh string, and strings past V8's regular object size (128 KiB)
    // go to its large-object space, freed only by a full collection an idle daemon may never run.
    const chunk = Buffer.allocUnsafe(1 << 16);
    let rest = '';
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      const text = bytesRead === 0 ? rest + decoder.end() : rest + decoder.write(chunk.subarray(0, bytesRead));
      let start = 0;
      for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
        onLine(text.slice(start, newline), true);
        start = newline + 1;
      }
      rest = text.slice(start);
      if (bytesRead === 0) break;
    }
    if (rest !== '') onLine(rest, false);
    return true;
  } finally {
    await handle.close();
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
