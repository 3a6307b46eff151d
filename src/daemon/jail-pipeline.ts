import path from 'node:path';
import { FilterMatcher } from '../filters/matcher.ts';
import type { JailEngine } from '../jails/jail-engine.ts';
import type { Logger } from '../logging/logger.ts';
import { LogFollower, type LogLine } from '../sources/log-follower.ts';
import type { Clock } from '../util/clock.ts';
import type { JailPlan } from './daemon-config.ts';

export interface PipelineStats {
  jail: string;
  lines: number;
  matches: number;
  /** Matches without a usable address (a host name, which is never resolved) or without a time. */
  unusable: number;
  follower: ReturnType<LogFollower['stats']> | null;
}

/**
 * One jail's stage from log lines to the engine: its own follower (with its own resume record,
 * as fail2ban keeps a position per jail and file) and its own matcher (multi-line state is per jail).
 */
export class JailPipeline {
  readonly jail: string;
  private readonly plan: JailPlan;
  private follower: LogFollower | null = null;
  private readonly matcher: FilterMatcher;
  private readonly counts = { lines: 0, matches: 0, unusable: 0 };
  private checkpointQueued = false;

  constructor(plan: JailPlan, clock: Clock) {
    this.jail = plan.definition.name;
    this.plan = plan;
    this.matcher = new FilterMatcher(plan.filter, { now: clock.now() / 1000 });
  }

  async start(options: { engine: JailEngine; dataDir: string; logger: Logger; clock: Clock; pollIntervalMs?: number; forcePolling?: boolean }): Promise<void> {
    const { definition } = this.plan;
    const patterns = definition.logpath.filter((p) => p.trim() !== '');
    if (patterns.length === 0) {
      options.logger.warn({ jail: this.jail }, 'jail has no logpath; it reads nothing');
      return;
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
    const pending: Promise<unknown>[] = [];
    for (const line of lines) {
      this.counts.lines++;
      const result = this.matcher.processLine(line.text);
      if (!result.match) continue;
      this.counts.matches++;
      if (result.host === null || result.time === null) {
        this.counts.unusable++;
        continue;
      }
      const user = result.tags.user;
      pending.push(engine.onMatch(this.jail, { host: result.host, time: result.time, ...(user ? { user } : {}) }));
    }
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
