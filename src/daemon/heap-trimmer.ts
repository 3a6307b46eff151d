import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from '../logging/logger.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';

/** How often the event loop's load is sampled. */
export const TRIM_CHECK_MS = 5_000;
/** An interval whose event loop was busy less than this is quiet. An idle daemon sits near 0.001. */
export const QUIET_UTILIZATION = 0.05;
/** Committed heap beyond the used heap worth a collection (an idle daemon after one: about 1 MiB). */
export const MIN_SLACK_BYTES = 8 * 2 ** 20;

export interface HeapTrimmerOptions {
  clock: Clock;
  logger: Logger;
  /** Share of the last interval the event loop was busy (0..1); the process's own by default. */
  utilization?: () => number;
  /** Bytes the heap holds committed beyond what its objects use; V8's by default. */
  slack?: () => number;
  /** A memory-reducing full collection; V8's by default. */
  collect?: () => void;
}

/**
 * Gives the heap's spare pages back once the daemon is quiet after busy work (start-up, a log
 * backlog, a flood). V8 grows the young generation to 2 x 16 MiB while the daemon starts and keeps it
 * committed while idle: its memory reducer judges the idle daemon's allocation too high to act. That
 * was 20–25 MiB of an idle daemon's 120 MiB RSS (bench/memory.ts). One memory-reducing full GC — the
 * one V8 runs under memory pressure — shrinks the young generation to 1 MiB and compacts the old;
 * the next burst grows it again, so throughput keeps its 16 MiB semi-spaces. One collection per busy
 * period: a heap that stays fragmented is not collected again and again while idle.
 */
export class HeapTrimmer {
  private timer: TimerHandle | null = null;
  /** Busy since the last collection; start-up counts as busy. */
  private busy = true;
  private readonly utilization: () => number;
  private readonly slack: () => number;
  private readonly collect: () => void;
  private readonly options: HeapTrimmerOptions;

  private constructor(options: HeapTrimmerOptions) {
    this.options = options;
    this.utilization = options.utilization ?? eventLoopUtilization();
    this.slack = options.slack ?? heapSlack;
    this.collect = options.collect ?? memoryReducingCollection();
  }

  static start(options: HeapTrimmerOptions): HeapTrimmer {
    const trimmer = new HeapTrimmer(options);
    trimmer.schedule();
    return trimmer;
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(): void {
    this.timer = this.options.clock.setTimer(TRIM_CHECK_MS, () => {
      this.check();
      if (this.timer !== null) this.schedule();
    });
  }

  private check(): void {
    if (this.utilization() >= QUIET_UTILIZATION) {
      this.busy = true;
      return;
    }
    if (!this.busy) return;
    this.busy = false;
    const before = this.slack();
    if (before < MIN_SLACK_BYTES) return;
    const started = performance.now();
    this.collect();
    this.options.logger.debug({ slackMiB: mib(before), afterMiB: mib(this.slack()), ms: Math.round(performance.now() - started) }, 'quiet again: heap trimmed');
  }
}

const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

function eventLoopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, last);
    last = now;
    return utilization;
  };
}

function heapSlack(): number {
  const heap = v8.getHeapStatistics();
  return Math.max(0, heap.total_physical_size - heap.used_heap_size);
}

/**
 * V8's gc() without --expose-gc on the command line (the daemon runs from bin/edgeban.js, the image's
 * ENTRYPOINT, or `node src/cli/main.ts`): the flag only exposes it to contexts created while it is set,
 * so the daemon's own global never gets a `gc`. "last-resort" is V8's memory-pressure collection
 * (CollectAllAvailableGarbage): it shrinks the young generation, which an ordinary full GC keeps.
 */
function memoryReducingCollection(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
  v8.setFlagsFromString('--no-expose-gc');
  return () => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
