import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import { HeapTrimmer, MIN_SLACK_BYTES, QUIET_UTILIZATION, TRIM_CHECK_MS } from '../../src/daemon/heap-trimmer.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { ManualClock } from '../../src/util/clock.ts';

/** A trimmer on a manual clock whose load and slack the test sets; counts its collections. */
function fakeTrimmer(slack = 2 * MIN_SLACK_BYTES) {
  const clock = new ManualClock();
  const state = { utilization: 0, slack, collections: 0 };
  const trimmer = HeapTrimmer.start({
    clock,
    logger: silentLogger(),
    utilization: () => state.utilization,
    slack: () => state.slack,
    collect: () => {
      state.collections++;
      state.slack = 0;
    },
  });
  return { clock, state, trimmer };
}

test('the heap is collected once when the daemon turns quiet after start-up, not again while it stays idle', async () => {
  const { clock, state, trimmer } = fakeTrimmer();
  state.utilization = 0.9; // start-up work after "edgeban running": first passes, a log backlog
  await clock.advance(TRIM_CHECK_MS);
  assert.equal(state.collections, 0, 'no collection while busy');
  state.utilization = 0.001;
  await clock.advance(TRIM_CHECK_MS);
  assert.equal(state.collections, 1);
  state.slack = 2 * MIN_SLACK_BYTES; // a heap that stays fragmented
  await clock.advance(10 * TRIM_CHECK_MS);
  assert.equal(state.collections, 1, 'idle: no second collection without busy work in between');
  trimmer.stop();
});

test('a busy period (a flood, a backlog) followed by quiet gets one more collection', async () => {
  const { clock, state, trimmer } = fakeTrimmer();
  await clock.advance(TRIM_CHECK_MS);
  assert.equal(state.collections, 1, 'start-up counts as busy');
  state.utilization = QUIET_UTILIZATION;
  state.slack = 3 * MIN_SLACK_BYTES;
  await clock.advance(3 * TRIM_CHECK_MS);
  assert.equal(state.collections, 1, 'no collection while busy');
  state.utilization = QUIET_UTILIZATION / 10;
  await clock.advance(TRIM_CHECK_MS);
  assert.equal(state.collections, 2);
  trimmer.stop();
});

test('a heap with little slack is left alone, and stop() ends the checks', async () => {
  const { clock, state, trimmer } = fakeTrimmer(MIN_SLACK_BYTES - 1);
  await clock.advance(5 * TRIM_CHECK_MS);
  assert.equal(state.collections, 0);
  trimmer.stop();
  assert.equal(clock.pendingTimers(), 0);
});

test("V8's memory-reducing collection gives back the young generation an ordinary full GC keeps", async () => {
  const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.physical_space_size;
  // Objects that survive scavenges grow the young generation, as the daemon's start-up does.
  let held: object[] = [];
  for (let round = 0; round < 40 && newSpace() < 4 * MIN_SLACK_BYTES; round++) {
    for (let i = 0; i < 100_000; i++) held.push({ i, s: `x${i}` });
    await new Promise((resolve) => setImmediate(resolve));
  }
  held = [];
  const grown = newSpace();
  assert.ok(grown >= 2 * MIN_SLACK_BYTES, `the young generation grew to ${grown} bytes only`);
  const clock = new ManualClock();
  const trimmer = HeapTrimmer.start({ clock, logger: silentLogger(), utilization: () => 0 });
  await clock.advance(TRIM_CHECK_MS);
  trimmer.stop();
  assert.ok(newSpace() < grown / 4, `young generation ${grown} → ${newSpace()} bytes`);
  assert.equal(held.length, 0);
});
