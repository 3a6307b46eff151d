// The failure time the daemon counts, as fail2ban's filter decides it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failureTime } from '../../src/filters/findtime.ts';

const now = 1_795_262_400;
const findtime = 600;

describe('failureTime', () => {
  it('in operation: a plausible stamp is kept, a missing or odd one counts as now', () => {
    assert.equal(failureTime(now - 30, { now, findtime, inOperation: true }), now - 30);
    assert.equal(failureTime(null, { now, findtime, inOperation: true }), now);
    assert.equal(failureTime(now - 3600, { now, findtime, inOperation: true }), now, 'an hour off: a zone problem, treated as now');
    assert.equal(failureTime(now + 30, { now, findtime, inOperation: true }), now, 'never in the future');
  });

  it('catching up: lines older than findtime are dropped, undated ones too', () => {
    assert.equal(failureTime(now - 300, { now, findtime, inOperation: false }), now - 300);
    assert.equal(failureTime(now - 601, { now, findtime, inOperation: false }), null);
    assert.equal(failureTime(null, { now, findtime, inOperation: false }), null);
  });
});
