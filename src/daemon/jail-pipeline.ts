import path from 'node:path';
import { stat } from 'node:fs/promises';
import { setTimeout as realDelay } from 'node:timers/promises';
import { failureTime } from '../filters/findtime.ts';
import { FilterMatcher } from '../filters/matcher.ts';
import { expandPatterns } from '../sources/patterns.ts';
import { FailurePersistence } from '../jails/failure-persistence.ts';
import type { PipelineCounters, PipelineStats } from '../jails/pipeline-stats.ts';
import type { JailEngine } from '../jails/jail-engine.ts';
import type { Logger } from '../logging/logger.ts';
import { LogFollower, type LogLine } from '../sources/log-follower.ts';
import { openRegularFile } from '../sources/open-regular.ts';
import { bytesBeforeResume, loadResumeRecords, type ResumeRecord } from '../sources/resume-state.ts';
import {
  CONTAINER_RECORD_BYTES,
  ContainerLogUnwrapper,
  continuedStreams,
  lineTime,
  RESUME_LOOKBACK_BYTES,
  type LogFormat,
  type LogStream,
  type UnwrappedLine,
} from '../sources/container-log-format.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import type { JailPlan } from './daemon-config.ts';

export type { DropReason, PipelineCounters, PipelineStats } from '../jails/pipeline-stats.ts';

/** What every line of one onLines batch is matched against. */
interface Batch {
  now: number;
  findtime: number;
  engine: JailEngine;
  pending: Promise<unknown>[];
  persistence: FailurePersistence | null;
}

const NO_COUNTERS: PipelineCounters = { lines: () => {}, matches: () => {}, dropped: () => {} };
/**
 * A batch's fixed costs (the journal's fdatasync, the offsets save, the follower's reads) are paid
 * per read chunk: a backlog is read in larger chunks than the follower's default. A live log
 * grows by far less between reads: only a catch-up fills a whole chunk.
 */
const READ_CHUNK_BYTES = 128 * 1024;
/** Saves of the offsets that counted failures ask for are at least this far apart (a backlog asks after every batch). */
const CHECKPOINT_SPACING_MS = 100;
/** How long stop() waits for a batch still being processed (a slow ban) before closing the journal. */
const STOP_BATCH_WAIT_MS = 5000;

/**
 * One jail's stage from log lines to the engine: its own follower (with its own resume record,
 * as fail2ban keeps a position per jail and file) and its own matcher (multi-line state is per jail).
 */
export class JailPipeline {
  readonly jail: string;
  private readonly plan: JailPlan;
  private follower: LogFollower | null = null;
  private readonly matcher: FilterMatcher;
  /** Null for plain logs: their lines go to the matcher as they are. */
  private readonly unwrapper: ContainerLogUnwrapper | null;
  private readonly unwrapped: UnwrappedLine[] = [];
  private readonly counts = { lines: 0, matches: 0, unusable: 0, old: 0 };
  private checkpointWanted = false;
  private checkpointRunning = false;
  private persistence: FailurePersistence | null = null;
  /** The onLines call in progress, if any. */
  private batchInFlight: Promise<void> | null = null;
  private clock: Clock;
  private counters: PipelineCounters = NO_COUNTERS;
  /** Size of each log at start: lines up to there were written before edgeban (re)started. */
  private readonly catchUpSizes = new Map<string, number>();

  constructor(plan: JailPlan, clock: Clock) {
    this.jail = plan.definition.name;
    this.plan = plan;
    this.clock = clock;
    this.matcher = new FilterMatcher(plan.filter, { now: clock.now() / 1000 });
    const format = plan.settings.logformat ?? 'plain';
    this.unwrapper = format === 'plain' ? null : new ContainerLogUnwrapper(format);
  }

  async start(options: {
    engine: JailEngine;
    dataDir: string;
    logger: Logger;
    clock: Clock;
    pollIntervalMs?: number;
    forcePolling?: boolean;
    counters?: PipelineCounters;
  }): Promise<void> {
    const { definition } = this.plan;
    this.counters = options.counters ?? NO_COUNTERS;
    const patterns = definition.logpath.filter((p) => p.trim() !== '');
    if (patterns.length === 0) {
      options.logger.warn({ jail: this.jail }, 'jail has no logpath; it reads nothing');
      return;
    }
    this.clock = options.clock;
    for (const file of await expandPatterns(patterns)) {
      const size = await stat(file).then(
        (s) => s.size,
        () => null,
      );
      if (size !== null) this.catchUpSizes.set(file, size);
    }
    const fileName = this.jail.replace(/[^A-Za-z0-9_.-]/g, '_');
    const stateFile = path.join(options.dataDir, 'offsets', `${fileName}.json`);
    // Loaded once, here: the unwrapper and the failure journal need them before the follower starts.
    const resumeRecords = await loadResumeRecords(stateFile, options.logger.child({ jail: this.jail }));
    if (this.unwrapper) {
      for (const { file, stream } of await splitAtResume(resumeRecords, this.unwrapper.format)) this.unwrapper.skipContinuation(file, stream);
    }
    // Before the follower: failures counted before a crash are back, and lines past the saved
    // offsets (read again) are known, before the first line is matched.
    const journal = path.join(options.dataDir, 'failures', `${fileName}.journal`);
    try {
      this.persistence = await FailurePersistence.open({
        jail: this.jail,
        file: journal,
        engine: options.engine,
        resumeOffsets: resumeRecords,
        findtimeSec: this.plan.settings.findtimeSec,
        clock: options.clock,
        logger: options.logger,
      });
    } catch (error) {
      // Detection and bans need no journal: run without, as edgeban did before it had one.
      options.logger.error(
        { jail: this.jail, file: journal, err: errorMessage(error) },
        `[${this.jail}] cannot open the failure journal: failure counts below maxretry will not survive a crash or restart`,
      );
    }
    this.follower = await LogFollower.start({
      patterns,
      stateFile,
      resumeRecords,
      logger: options.logger.child({ jail: this.jail }),
      clock: options.clock,
      // A Docker record holds up to 16 KiB escaped (up to 6 bytes each): never cut one in the follower.
      ...(this.unwrapper ? { maxLineBytes: CONTAINER_RECORD_BYTES } : {}),
      readChunkBytes: READ_CHUNK_BYTES,
      ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.forcePolling ? { forcePolling: true } : {}),
      onLines: (lines) => this.trackBatch(this.onLines(lines, options.engine)),
    });
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    this.follower = null;
    // A batch the follower stopped waiting for still appends its failures: let it, within bounds.
    const batch = this.batchInFlight;
    if (batch) {
      const ac = new AbortController();
      await Promise.race([batch.catch(() => undefined), realDelay(STOP_BATCH_WAIT_MS, undefined, { signal: ac.signal }).catch(() => undefined)]);
      ac.abort();
    }
    await this.persistence?.close();
    this.persistence = null;
  }

  stats(): PipelineStats {
    const unwrapper = this.unwrapper;
    return {
      jail: this.jail,
      ...this.counts,
      follower: this.follower?.stats() ?? null,
      ...(unwrapper ? { container: { logformat: unwrapper.format, ...unwrapper.stats, pending: unwrapper.pendingLines } } : {}),
      ...(this.persistence ? { failureJournal: this.persistence.stats() } : {}),
    };
  }

  private trackBatch(batch: Promise<void>): Promise<void> {
    this.batchInFlight = batch;
    const clear = () => {
      if (this.batchInFlight === batch) this.batchInFlight = null;
    };
    batch.then(clear, clear);
    return batch;
  }

  private async onLines(lines: LogLine[], engine: JailEngine): Promise<void> {
    const persistence = this.persistence;
    // Between batches the counter holds exactly the acknowledged lines, whose offsets compaction
    // saves first: none of the failures it folds into tickets can be read again.
    const follower = this.follower;
    if (persistence && follower && persistence.wantsCompaction()) await persistence.compact(() => follower.checkpoint());
    const now = this.clock.now() / 1000;
    // Year inference for syslog stamps follows the clock, also across New Year.
    this.matcher.setNow(now);
    const findtime = this.plan.settings.findtimeSec;
    const pending: Promise<unknown>[] = [];
    const before = { ...this.counts };
    const batch: Batch = { now, findtime, engine, pending, persistence };
    const linesPerPath = new Map<string, number>();
    // A batch comes from one file: its path's lookups are made once per run of lines, not per line.
    let runPath: string | null = null;
    let runLines = 0;
    let startSize: number | undefined;
    for (const line of lines) {
      this.counts.lines++;
      if (line.path !== runPath) {
        if (runPath !== null) linesPerPath.set(runPath, (linesPerPath.get(runPath) ?? 0) + runLines);
        runPath = line.path;
        runLines = 0;
        startSize = this.catchUpSizes.get(runPath);
      }
      runLines++;
      const catchingUp = startSize !== undefined && line.endOffset <= startSize;
      if (startSize !== undefined && !catchingUp) {
        this.catchUpSizes.delete(line.path);
        startSize = undefined;
      }
      if (this.unwrapper === null) {
        this.match(line, line.text, null, catchingUp, batch);
        continue;
      }
      // A container record: the lines it completes (none for a partial or malformed one).
      const inner = this.unwrapped;
      inner.length = 0;
      this.unwrapper.push(line.path, line.text, inner);
      for (const unwrapped of inner) this.match(line, unwrapped.text, unwrapped.time, catchingUp, batch);
    }
    if (runPath !== null) linesPerPath.set(runPath, (linesPerPath.get(runPath) ?? 0) + runLines);
    // Counted per batch, not per line: one increment per file and kind.
    for (const [file, count] of linesPerPath) this.counters.lines(file, count);
    if (this.counts.matches > before.matches) this.counters.matches(this.counts.matches - before.matches);
    if (this.counts.unusable > before.unusable) this.counters.dropped('unusable', this.counts.unusable - before.unusable);
    if (this.counts.old > before.old) this.counters.dropped('old', this.counts.old - before.old);
    // Offsets advance only after the bans these lines decided are in the ledger, and the failures
    // they counted are in the journal (written after the bans: a failure found in the journal on
    // restart has had its ban recorded, so skipping its line when read again loses nothing).
    await Promise.all(pending);
    if (persistence) await persistence.commit();
    if (pending.length > 0) this.checkpointSoon();
  }

  /**
   * Matches one line and hands a failure to the engine; `text` is the line's (for a container log,
   * the unwrapped line `line` completed), `runtimeTime` the container runtime's stamp, if any.
   */
  private match(line: LogLine, text: string, runtimeTime: number | null, catchingUp: boolean, batch: Batch): void {
    const { now, findtime, engine, pending, persistence } = batch;
    // The follower knows whether a plain line is ASCII; the matcher checks an unwrapped container line itself.
    const result = this.unwrapper === null && line.ascii ? this.matcher.processLine(text, true) : this.matcher.processLine(text);
    if (!result.match) return;
    this.counts.matches++;
    if (result.host === null) {
      this.counts.unusable++;
      return;
    }
    // fail2ban's rules: live lines without a plausible stamp count now; old catch-up lines are dropped.
    // A container line without a date the filter finds has the runtime's stamp instead.
    const time = failureTime(lineTime(result.time, { time: runtimeTime }), { now, findtime, inOperation: !catchingUp });
    if (time === null) {
      this.counts.old++;
      return;
    }
    const user = result.tags.user;
    const ref = persistence?.lineRef(line.path, line.endOffset, text);
    // Read again after a restart, and counted before it (the journal replayed it): not twice.
    if (ref && persistence?.alreadyCounted(ref)) return;
    pending.push(engine.onMatch(this.jail, { host: result.host, time, ...(user ? { user } : {}), ...(ref ? { line: ref } : {}) }));
  }

  /**
   * Failures were counted: persist the offsets soon after this batch is acknowledged instead of
   * at the next poll, so a crash replays little. One save at a time, at most one per
   * CHECKPOINT_SPACING_MS: batches acknowledged meanwhile share the next. (Lines a crash does
   * replay are known to the failure journal and not counted twice.)
   */
  private checkpointSoon(): void {
    this.checkpointWanted = true;
    if (this.checkpointRunning) return;
    this.checkpointRunning = true;
    setImmediate(() => void this.runCheckpoints());
  }

  private async runCheckpoints(): Promise<void> {
    while (this.checkpointWanted && this.follower) {
      this.checkpointWanted = false;
      const started = performance.now();
      await this.follower.checkpoint().catch(() => undefined);
      const rest = CHECKPOINT_SPACING_MS - (performance.now() - started);
      // A wall-clock pause (not the injected clock): it only spaces the saves of a backlog.
      if (this.checkpointWanted && rest > 0) await realDelay(rest, undefined, { ref: false });
    }
    this.checkpointRunning = false;
  }
}

/**
 * The container logs this jail resumes in the middle of a split line (stopped between a partial
 * record and its end): their rest must not be read as a line. Anything unreadable or changed
 * means no such file (the follower reports it).
 */
async function splitAtResume(records: readonly ResumeRecord[], format: LogFormat): Promise<Array<{ file: string; stream: LogStream }>> {
  const found: Array<{ file: string; stream: LogStream }> = [];
  for (const record of records) {
    if (record.role !== 'current' || record.offset === 0) continue;
    // Never a blocking open: a FIFO here hung start-up for ever.
    const opened = await openRegularFile(record.path).catch(() => null);
    if (!opened) continue;
    try {
      // Only where the follower will resume: the same file, still holding what was read before the stop.
      const before = opened.st.ino === record.ino ? await bytesBeforeResume(opened, record, Math.min(record.offset, RESUME_LOOKBACK_BYTES)) : null;
      if (before === null) continue;
      for (const stream of continuedStreams(format, before)) found.push({ file: record.path, stream });
    } finally {
      await opened.handle.close();
    }
  }
  return found;
}
