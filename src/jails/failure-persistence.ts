import type { Logger } from '../logging/logger.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import type { Cidr } from './cidr.ts';
import { FAILURE, FailureJournal, FORGET, SEEN, TICKET, type JournalRecord, type LineRef } from './failure-journal.ts';
import type { JailEngine } from './jail-engine.ts';

/**
 * Makes a jail's failure counts survive a crash (SIGKILL, power loss) and a restart, so an
 * attacker whose failures straddle the restart is still banned.
 *
 * Why a journal (and not re-reading the log from a low-water offset, or snapshotting the counter
 * with the offsets): offsets are saved right after each batch, and the counter lives in memory.
 * Re-reading from the oldest line still counting would mean keeping a first offset per address
 * (memory, at a million addresses), holding offsets back across rotations the follower handles on
 * its own, and re-reading up to findtime of log at every start. A snapshot of a million tickets
 * is tens of MB: it cannot be written per batch, and offsets cannot wait for it (the follower
 * saves them on its own). A journal costs one append and one fdatasync per batch that counted
 * something, and is written before that batch is acknowledged, so saved offsets never run ahead
 * of it.
 *
 * - Every counted failure is appended (address, time as counted, and its line: LineRef) and
 *   synced before the batch's offsets can be saved; a manual unban appends a reset.
 * - At start, the records are replayed through the same counter code (FailureTracker.add), in
 *   order, against the clock now: whatever is older than findtime no longer counts, a ticket that
 *   reached maxretry is dropped again. Replay never bans: those bans are in the ledger already.
 * - Lines past the saved offsets are read again after a restart. Their records were replayed, so
 *   each such line is remembered (by LineRef) and skipped once when it comes back: counted once,
 *   never twice, never lost. Which records those are is judged generously (any line past the
 *   lowest saved offset of its log, or of a log without one): one that never comes back costs a
 *   little memory until findtime passes, never a count. Bounded by `maxRecountable`.
 * - Compaction rewrites the journal as the counter's live tickets (plus the lines still to skip)
 *   once it holds far more records than live tickets; it first saves the offsets, so no line whose
 *   failure it folds into a ticket can be read again.
 */
export interface FailurePersistenceOptions {
  jail: string;
  /** The journal file (data dir / failures / <jail>.journal). */
  file: string;
  engine: JailEngine;
  /** Where the log follower will resume (its saved offsets): lines past them are read again. */
  resumeOffsets: ReadonlyArray<{ path: string; offset: number }>;
  findtimeSec: number;
  clock: Clock;
  logger: Logger;
  /** At most this many lines are remembered for skipping when read again (default 131072). */
  maxRecountable?: number;
  /** Compaction once the journal holds this many records beyond 2 per live ticket (default 100000). */
  compactAfterRecords?: number;
}

export interface PersistenceStats {
  /** Records replayed at start that still counted (failures and tickets). */
  replayed: number;
  /** Lines remembered as counted, not yet read again. */
  recountable: number;
  /** Lines read again after a restart and skipped because their failure was already counted. */
  skippedRereads: number;
  journalRecords: number;
  compactions: number;
  /** Appends that could not be written (disk full …); their records are retried with the next. */
  writeErrors: number;
}

interface Recountable {
  address: Cidr;
  time: number;
  line: LineRef;
}

const DEFAULT_MAX_RECOUNTABLE = 131_072;
const DEFAULT_COMPACT_AFTER = 100_000;
/** Records that fail to be written are kept for the next commit up to this many (then dropped). */
const MAX_UNWRITTEN = 1_000_000;
const PRUNE_EVERY_MS = 60_000;

export class FailurePersistence {
  private readonly jail: string;
  private readonly engine: JailEngine;
  private readonly journal: FailureJournal;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly findtimeSec: number;
  private readonly compactAfterRecords: number;
  private readonly recountable: Map<string, Recountable>;
  private readonly unsubscribe: () => void;
  private readonly pathHashes = new Map<string, number>();
  /** Every journal write, in order: commits and compactions never overlap. */
  private io: Promise<void> = Promise.resolve();
  private writeFailing = false;
  private lastPruneMs: number;
  private readonly counts: PersistenceStats = { replayed: 0, recountable: 0, skippedRereads: 0, journalRecords: 0, compactions: 0, writeErrors: 0 };

  private constructor(options: FailurePersistenceOptions, journal: FailureJournal, recountable: Map<string, Recountable>, replayed: number) {
    this.jail = options.jail;
    this.engine = options.engine;
    this.journal = journal;
    this.clock = options.clock;
    this.logger = options.logger;
    this.findtimeSec = options.findtimeSec;
    this.compactAfterRecords = options.compactAfterRecords ?? DEFAULT_COMPACT_AFTER;
    this.recountable = recountable;
    this.counts.replayed = replayed;
    this.lastPruneMs = options.clock.now();
    this.unsubscribe = options.engine.observeCounter(options.jail, {
      failure: (network, timeSec, line) => journal.addFailure(network, timeSec, line ?? null),
      forget: (network) => {
        journal.addForget(network);
        // No batch may follow soon: write the reset now.
        void this.commit();
      },
    });
  }

  static async open(options: FailurePersistenceOptions): Promise<FailurePersistence> {
    const { jail, engine, logger } = options;
    const nowSec = options.clock.now() / 1000;
    const horizon = nowSec - options.findtimeSec;
    const maxRecountable = Math.max(0, options.maxRecountable ?? DEFAULT_MAX_RECOUNTABLE);
    // Null after a reload: the counter kept its counts, only the lines to skip are needed.
    const tracker = engine.takeCounterForRestore(jail);
    const savedOffset = new Map<number, number>();
    for (const { path, offset } of options.resumeOffsets) {
      const hash = pathHash(path);
      savedOffset.set(hash, Math.min(savedOffset.get(hash) ?? Infinity, offset));
    }
    const recountable = new Map<string, Recountable>();
    let forgotten = 0;
    const remember = (record: JournalRecord): void => {
      const line = record.line;
      if (!line || record.time < horizon) return;
      const saved = savedOffset.get(line.pathHash);
      if (saved !== undefined && line.endOffset <= saved) return;
      const key = lineKey(line);
      recountable.delete(key);
      recountable.set(key, { address: copyCidr(record.address), time: record.time, line: { ...line } });
      if (recountable.size > maxRecountable) {
        // The newest are the ones read again (lines past the saved offsets are the last read).
        recountable.delete(recountable.keys().next().value!);
        forgotten++;
      }
    };
    let replayed = 0;
    const journal = await FailureJournal.open(options.file, logger, (record) => {
      switch (record.kind) {
        case FAILURE:
          if (tracker && tracker.add(record.address, record.time, nowSec).kind !== 'old') replayed++;
          remember(record);
          break;
        case SEEN:
          remember(record);
          break;
        case FORGET:
          tracker?.delete(record.address);
          break;
        case TICKET:
          if (tracker?.restoreTicket(record.address, record.time, record.last, record.retry, nowSec)) replayed++;
          break;
      }
    });
    if (forgotten > 0) {
      logger.warn(
        { jail, forgotten, kept: maxRecountable },
        `[${jail}] more counted lines past the saved log offsets than can be remembered; ${forgotten} of them may be counted twice when read again`,
      );
    }
    const persistence = new FailurePersistence(options, journal, recountable, replayed);
    if (tracker && journal.records > 0) {
      logger.info(
        { jail, replayed, tracked: tracker.tracked, rereadExpected: recountable.size, journal: options.file },
        `[${jail}] restored failure counts: ${tracker.tracked} addresses counting towards a ban`,
      );
    }
    if (persistence.wantsCompaction()) await persistence.compact(async () => {});
    return persistence;
  }

  /** The identity of a line a failure was found on (its path, the offset past it, its text). */
  lineRef(path: string, endOffset: number, text: string): LineRef {
    let hash = this.pathHashes.get(path);
    if (hash === undefined) {
      hash = pathHash(path);
      if (this.pathHashes.size < 1024) this.pathHashes.set(path, hash);
    }
    return { pathHash: hash, endOffset, lineHash: textHash(text) };
  }

  /**
   * Whether this line's failure was counted before a restart (it is being read again): it must
   * not be counted twice. True once per such line.
   */
  alreadyCounted(line: LineRef): boolean {
    if (this.recountable.size === 0) return false;
    const key = lineKey(line);
    if (!this.recountable.delete(key)) return false;
    this.counts.skippedRereads++;
    return true;
  }

  /**
   * Writes the failures counted since the last call and syncs them. The pipeline awaits it before
   * acknowledging a batch, so the follower never saves offsets past failures not on disk. Never
   * rejects: a journal that cannot be written must not stop detection (bans need no journal); the
   * records are retried with the next commit and the problem is logged once.
   */
  commit(): Promise<void> {
    this.prune();
    if (this.journal.pending === 0) return this.io;
    this.io = this.io.then(async () => {
      try {
        await this.journal.commit();
        if (this.writeFailing) this.logger.info({ jail: this.jail, file: this.journal.file }, `[${this.jail}] failure journal writable again`);
        this.writeFailing = false;
      } catch (error) {
        this.counts.writeErrors++;
        if (!this.writeFailing) {
          this.logger.warn(
            { jail: this.jail, file: this.journal.file, err: errorMessage(error) },
            `[${this.jail}] cannot write the failure journal; counts are kept in memory but a crash now would lose them. Retrying with every batch`,
          );
        }
        this.writeFailing = true;
        if (this.journal.pending > MAX_UNWRITTEN) await this.journal.rewrite((sink) => this.snapshot(sink)).catch(() => undefined);
      }
    });
    return this.io;
  }

  /** Whether the journal holds far more records than the counter's live tickets. */
  wantsCompaction(): boolean {
    // Twice the live tickets: a compaction writes one record per ticket, so each is paid for by at
    // least as many appends (amortized O(1) per failure).
    return this.journal.records + this.journal.pending > this.compactAfterRecords + 2 * this.engine.trackedCount(this.jail);
  }

  /**
   * Rewrites the journal as the counter's live tickets. `saveOffsets` must persist the offsets of
   * every line whose failure the counter holds (the pipeline calls this between batches): a line
   * folded into a ticket must never be read again. Never rejects; a failure leaves the old journal.
   */
  compact(saveOffsets: () => Promise<void>): Promise<void> {
    this.io = this.io.then(async () => {
      try {
        await saveOffsets();
        await this.journal.rewrite((sink) => this.snapshot(sink));
        this.counts.compactions++;
      } catch (error) {
        this.logger.warn(
          { jail: this.jail, file: this.journal.file, err: errorMessage(error) },
          `[${this.jail}] cannot compact the failure journal; it keeps growing until it can`,
        );
      }
    });
    return this.io;
  }

  stats(): PersistenceStats {
    return { ...this.counts, recountable: this.recountable.size, journalRecords: this.journal.records };
  }

  /** Writes what is pending and closes; the counter is no longer observed. */
  async close(): Promise<void> {
    this.unsubscribe();
    await this.commit();
    await this.io;
    await this.journal.close();
  }

  private snapshot(sink: Parameters<Parameters<FailureJournal['rewrite']>[0]>[0]): void {
    this.engine.forEachTicket(this.jail, (address, first, last, retry) => sink.ticket(address, first, last, retry));
    for (const entry of this.recountable.values()) sink.seen(entry.address, entry.time, entry.line);
  }

  /** Lines still to skip that are findtime old would not count when read again anyway. */
  private prune(): void {
    const nowMs = this.clock.now();
    if (this.recountable.size === 0 || nowMs - this.lastPruneMs < PRUNE_EVERY_MS) return;
    this.lastPruneMs = nowMs;
    const horizon = nowMs / 1000 - this.findtimeSec;
    for (const [key, entry] of this.recountable) if (entry.time < horizon) this.recountable.delete(key);
  }
}

function lineKey(line: LineRef): string {
  return `${line.pathHash.toString(36)} ${line.endOffset.toString(36)} ${line.lineHash.toString(36)}`;
}

function copyCidr(address: Cidr): Cidr {
  return { family: address.family, bytes: address.bytes.slice(0, address.family === 4 ? 4 : 16), prefix: address.prefix, text: '' };
}

/** FNV-1a, 32 bits, over UTF-16 code units. */
function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function pathHash(path: string): number {
  return fnv1a(path, 0x811c9dc5);
}

/** A second seed: a path and a line with the same text do not hash alike. */
function textHash(text: string): number {
  return fnv1a(text, 0x9747b28c);
}
