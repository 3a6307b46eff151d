import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { LogFollower, type LogFollowerOptions, type LogLine } from '../../src/sources/log-follower.ts';

export { sleep };

/** Polls `condition` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 15): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return false;
}

/** Appends through one open descriptor (O_APPEND), like a daemon's logger. */
export class AppendWriter {
  readonly file: string;
  private fh: FileHandle | null = null;

  constructor(file: string) {
    this.file = file;
  }

  async open(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    this.fh = await open(this.file, 'a');
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = null;
  }

  /** Closes and opens the path again, as a logger does on SIGHUP or after it noticed a rotation. */
  async reopen(): Promise<void> {
    await this.close();
    await this.open();
  }

  get isOpen(): boolean {
    return this.fh !== null;
  }

  async append(text: string): Promise<void> {
    if (!this.fh) throw new Error('writer not open');
    await this.fh.write(text);
  }
}

/** Appends numbered lines. */
export class NumberedWriter extends AppendWriter {
  written = 0;

  async write(count: number): Promise<void> {
    // Checked before numbering: a write to a closed writer must not count lines it never wrote.
    if (!this.isOpen) throw new Error('writer not open');
    let text = '';
    for (let i = 0; i < count; i++) {
      this.written++;
      text += `line ${this.written} ${'x'.repeat(this.written % 37)}\n`;
    }
    await this.append(text);
  }

  /** A burst in a few pieces with short pauses, so reads interleave with writes. */
  async burst(count: number, pieces = 4): Promise<void> {
    for (let i = 0; i < pieces; i++) {
      await this.write(Math.ceil(count / pieces));
      await sleep(3);
    }
  }
}

/** Collects delivered lines. */
export class Collector {
  readonly lines: LogLine[] = [];
  readonly onLines = async (batch: LogLine[]): Promise<void> => {
    this.lines.push(...batch);
  };

  numbers(): number[] {
    return this.lines.map((l) => {
      const m = /^line (\d+) /.exec(l.text);
      return m ? Number(m[1]) : -1;
    });
  }
}

/** Summary of how a delivered sequence differs from 1..total exactly once in order (empty lists when it does not). */
export function exactness(
  numbers: readonly number[],
  total: number,
): { count: number; total: number; missing: number[]; duplicated: number[]; outOfOrder: number[] } {
  const seen = new Map<number, number>();
  const outOfOrder: number[] = [];
  let prev = 0;
  for (const n of numbers) {
    seen.set(n, (seen.get(n) ?? 0) + 1);
    if (n <= prev && outOfOrder.length < 10) outOfOrder.push(n);
    prev = Math.max(prev, n);
  }
  const missing: number[] = [];
  for (let i = 1; i <= total && missing.length < 10; i++) if (!seen.has(i)) missing.push(i);
  const duplicated = [...seen]
    .filter(([, c]) => c > 1)
    .map(([n]) => n)
    .slice(0, 10);
  return { count: numbers.length, total, missing, duplicated, outOfOrder };
}

export const expectedExact = (total: number): ReturnType<typeof exactness> => ({ count: total, total, missing: [], duplicated: [], outOfOrder: [] });

export function startFollower(options: Partial<LogFollowerOptions> & Pick<LogFollowerOptions, 'patterns' | 'stateFile' | 'onLines'>): Promise<LogFollower> {
  const level = process.env.SOURCES_TEST_LOG; // e.g. debug, to see what the follower did
  return LogFollower.start({ logger: level ? createLogger({ level }) : silentLogger(), pollIntervalMs: 100, rotationGraceMs: 1000, ...options });
}
