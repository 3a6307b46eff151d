import path from 'node:path';
import { stat } from 'node:fs/promises';
import { failureTime } from '../filters/findtime.ts';
import { FilterMatcher } from '../filters/matcher.ts';
import { expandPatterns } from '../sources/patterns.ts';
import type { JailEngine } from '../jails/jail-engine.ts';
import type { Logger } from '../logging/logger.ts';
import { LogFollower, type LogLine } from '../sources/log-follower.ts';
import type { Clock } from '../util/clock.ts';
import type { JailPlan } from './daemon-config.ts';

export interface PipelineStats {
  jail: string;
  lines: number;
  matches: number;
  /** Matches without a usable address (a host name, which is never resolved). */
  unusable: number;
  /** Matches dropped as older than findtime while catching up on what was written before start. */
  old: number;
  follower: ReturnType<LogFollower['stats']> | null;
}

/** Why a matched failure was not handed to the jail. */
export type DropReason = 'unusable' | 'old';

/** Counters a pipeline increments per batch (metrics); they outlive the pipeline, which a reload replaces. */
export interface PipelineCounters {
  lines(path: string, count: number): void;
  matches(count: number): void;
  dropped(reason: DropReason, count: number): void;
}

const NO_COUNTERS: PipelineCounters = { lines: () => {}, matches: () => {}, dropped: () => {} };

/**
 * One jail's stage from log lines to the engine: its own follower (with its own resume record,
 * as fail2ban keeps a position per jail and file) and its own matcher (multi-line state is per jail).
 */
export class JailPipeline {
  readonly jail: string;
  private readonly plan: JailPlan;
  private follower: LogFollower | null = null;
  private readonly matcher: FilterMatcher;
  private readonly counts = { lines: 0, matches: 0, unusable: 0, old: 0 };
  private checkpointQueued = false;
  private clock: Clock;
  private counters: PipelineCounters = NO_COUNTERS;
  /** Size of each log at start: lines up to there were written before edgeban (re)started. */
  private readonly catchUpSizes = new Map<string, number>();

  constructor(plan: JailPlan, clock: Clock) {
    this.jail = plan.definition.name;
    this.plan = plan;
    this.clock = clock;
    this.matcher = new FilterMatcher(plan.filter, { now: clock.now() / 1000 });
  }

  async start(options: {
    engine: JailEngine; dataDir: string; logger: Logger; clock: Clock; pollIntervalMs?: number; forcePolling?: boolean; counters?: PipelineCounters;
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
      const size = await stat(file).then((s) => s.size, () => null);
      if (size !== null) this.catchUpSizes.set(file, size);
    }
    this.follower = await LogFollower.start({
      patterns,
      stateFile: path.join(options.dataDir, 'offsets', `${this.jail.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`),
      logger: options.logger.child({ jail: this.jail }),
      clock: options.clock,
      ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.forcePolling ? { forcePolling: true } : {}),
      onLines: (lines) => this.onLines(lines, options.engine),
    });
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    this.follower = null;
  }

  stats(): PipelineStats {
    return { jail: this.jail, ...this.counts, follower: this.follower?.stats() ?? null };
  }

  private async onLines(lines: LogLine[], engine: JailEngine): Promise<void> {
    const now = this.clock.now() / 1000;
    // Year inference for syslog stamps follows the clock, also across New Year.
    this.matcher.setNow(now);
    const findtime = this.plan.settings.findtimeSec;
    const pending: Promise<unknown>[] = [];
    const before = { ...this.counts };
    const linesPerPath = new Map<string, number>();
    for (const line of lines) {
      this.counts.lines++;
      linesPerPath.set(line.path, (linesPerPath.get(line.path) ?? 0) + 1);
      const startSize = this.catchUpSizes.get(line.path);
      const catchingUp = startSize !== undefined && line.endOffset <= startSize;
      if (startSize !== undefined && !catchingUp) this.catchUpSizes.delete(line.path);
      const result = this.matcher.processLine(line.text);
      if (!result.match) continue;
      this.counts.matches++;
      if (result.host === null) {
        this.counts.unusable++;
        continue;
      }
      // fail2ban's rules: live lines without a plausible stamp count now; old catch-up lines are dropped.
      const time = failureTime(result.time, { now, findtime, inOperation: !catchingUp });
      if (time === null) {
        this.counts.old++;
        continue;
      }
      const user = result.tags.user;
      pending.push(engine.onMatch(this.jail, { host: result.host, time, ...(user ? { user } : {}) }));
    }
    // Counted per batch, not per line: one increment per file and kind.
    for (const [file, count] of linesPerPath) this.counters.lines(file, count);
    if (this.counts.matches > before.matches) this.counters.matches(this.counts.matches - before.matches);
    if (this.counts.unusable > before.unusable) this.counters.dropped('unusable', this.counts.unusable - before.unusable);
    if (this.counts.old > before.old) this.counters.dropped('old', this.counts.old - before.old);
    // Offsets advance only after the bans these lines decided are in the ledger.
    await Promise.all(pending);
    if (pending.length > 0) this.checkpointSoon();
  }

  /**
   * Failures were counted: persist the offsets right after this batch is acknowledged instead
   * of at the next poll, so a crash does not replay them. One checkpoint at a time.
   */
  private checkpointSoon(): void {
    if (this.checkpointQueued) return;
    this.checkpointQueued = true;
    setImmediate(() => {
      this.checkpointQueued = false;
      this.follower?.checkpoint().catch(() => undefined);
    });
  }
}
