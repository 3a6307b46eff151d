/**
 * Child process of the memory benchmark: RSS of this process while one FailureTracker (the jail
 * engine's per-jail counter) tracks N distinct addresses, each below maxretry. Run in its own
 * process so nothing else the bench allocated is in the figure; prints one JSON line.
 *
 *   node --expose-gc bench/memory-tracker-child.ts N
 */
import { readFileSync } from 'node:fs';
import { documentationCidr6 } from './documentation-cidr.ts';
import { FailureTracker } from '../src/jails/failure-tracker.ts';

const count = Number(process.argv[2] ?? '1000000');
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function status(field: string): number {
  const text = readFileSync('/proc/self/status', 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
}

gc();
const rssBefore = status('VmRSS');
const tracker = new FailureTracker({ maxretry: 5, findtimeSec: 600 });
const started = performance.now();
const now = 1_800_000_000;
for (let i = 0; i < count; i++) tracker.add(documentationCidr6(i), now - 300 + (i / count) * 300, now);
const seconds = (performance.now() - started) / 1000;
gc();
const rssAfter = status('VmRSS');
process.stdout.write(
  `${JSON.stringify({
    count,
    tracked: tracker.tracked,
    rssBefore,
    rssAfter,
    hwm: status('VmHWM'),
    allocatedBytes: tracker.allocatedBytes,
    seconds,
  })}\n`,
);
