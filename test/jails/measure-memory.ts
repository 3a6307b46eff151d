// Measurement, not a test: RSS of one million distinct addresses tracked below maxretry.
// Run: node_modules/.bin/node --expose-gc test/jails/measure-memory.ts [tracker|map]
import { FailureTracker } from '../../src/jails/failure-tracker.ts';
import { documentationCidr6 } from '../../bench/documentation-cidr.ts';

const N = 1_000_000;
const mode = process.argv[2] ?? 'tracker';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

gc();
const before = process.memoryUsage();
const started = performance.now();
let keep: unknown;
if (mode === 'tracker') {
  const tracker = new FailureTracker({ maxretry: 5, findtimeSec: 600 });
  for (let i = 0; i < N; i++) tracker.add(documentationCidr6(i), 1_000_000 + i / 10_000, 1_000_100);
  keep = tracker;
  console.log('tracked', tracker.tracked, 'typed arrays', mb(tracker.allocatedBytes), 'heapUsed', mb(process.memoryUsage().heapUsed));
} else {
  // The obvious representation, for comparison: text key → object with a times array.
  const map = new Map<string, { times: number[] }>();
  for (let i = 0; i < N; i++) map.set(`2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`, { times: [1_000_000 + i / 10_000] });
  keep = map;
}
const elapsed = performance.now() - started;
gc();
const after = process.memoryUsage();
const rss = after.rss - before.rss;
console.log(
  JSON.stringify({
    mode,
    addresses: N,
    rssDelta: mb(rss),
    heapDelta: mb(after.heapUsed - before.heapUsed),
    arrayBuffersDelta: mb(after.arrayBuffers - before.arrayBuffers),
    bytesPerAddress: Math.round(rss / N),
    totalRss: mb(after.rss),
    msPerAdd: `${((elapsed / N) * 1000).toFixed(2)} µs`,
  }),
);
void keep;
