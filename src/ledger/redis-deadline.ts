import { systemClock, type Clock, type TimerHandle } from '../util/clock.ts';

/**
 * A Redis command's answer, or a rejection once `ms` pass without one: ioredis keeps a command
 * queued through its reconnects, and a caller that must go on (count locally, let a lease lapse,
 * report Redis down) cannot wait for it. A late answer, or a late failure, is ignored.
 */
export function withinDeadline<T>(command: Promise<T>, ms: number, options: { clock?: Pick<Clock, 'setTimer'>; why?: () => string } = {}): Promise<T> {
  command.catch(() => {});
  const clock = options.clock ?? systemClock;
  let timer: TimerHandle | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = clock.setTimer(ms, () => reject(new Error(options.why?.() ?? `Redis did not answer within ${ms} ms`)));
  });
  return Promise.race([command, late]).finally(() => timer?.cancel());
}
