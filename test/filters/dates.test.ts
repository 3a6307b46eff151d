// Date detection as fail2ban does it: default templates, datepattern forms, year inference
// against `now`, zones and logtimezone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateDetector } from '../../src/filters/dates/detector.ts';
import { zoneOffsetMinutes } from '../../src/filters/dates/timezone.ts';
import './helpers.ts'; // pins TZ=UTC

const at = (iso: string): number => Date.parse(iso) / 1000;
const NOW = at('2026-11-21T12:00:00Z');

function detect(line: string, options: { datepattern?: string; logtimezone?: string; now?: number } = {}) {
  const d = new DateDetector({ datepattern: options.datepattern ?? null, logtimezone: options.logtimezone ?? null, now: options.now ?? NOW });
  const m = d.match(line);
  return m === null ? null : { time: m.time, text: line.slice(m.start, m.end), rest: line.slice(0, m.start) + line.slice(m.end) };
}

describe('default date templates', () => {
  it('syslog without a year: this year, or last year when it would be more than a day ahead', () => {
    assert.equal(detect('Nov 21 10:00:00 host x')?.time, at('2026-11-21T10:00:00Z'));
    assert.equal(detect('Nov 22 06:00:00 host x')?.time, at('2026-11-22T06:00:00Z'), 'up to a day ahead stays this year');
    assert.equal(detect('Nov 23 06:00:00 host x')?.time, at('2025-11-23T06:00:00Z'));
  });

  it('consecutive stamps of one minute convert alike, even across the one-day-ahead limit', () => {
    const d = new DateDetector({ datepattern: null, logtimezone: null, now: NOW });
    const times = ['Nov 22 12:00:00 a', 'Nov 22 12:00:01 b', 'Nov 21 11:59:58 c', 'Nov 21 11:59:59 d'].map((l) => (d.find(l, true) ? d.time : null));
    assert.deepEqual(times, [at('2026-11-22T12:00:00Z'), at('2025-11-22T12:00:01Z'), at('2026-11-21T11:59:58Z'), at('2026-11-21T11:59:59Z')]);
  });

  it('a December line read in January is last year', () => {
    const now = at('2027-01-02T08:00:00Z');
    assert.equal(detect('Dec 31 23:59:59 host x', { now })?.time, at('2026-12-31T23:59:59Z'));
    assert.equal(detect('Jan  2 07:59:00 host x', { now })?.time, at('2027-01-02T07:59:00Z'));
  });

  it('ISO 8601 with fraction and zone (fraction dropped, as fail2ban)', () => {
    assert.equal(detect('2026-11-21T10:00:00.123456+01:00 host x')?.time, at('2026-11-21T09:00:00Z'));
    assert.equal(detect('2026-11-21T10:00:00Z host x')?.time, at('2026-11-21T10:00:00Z'));
    assert.equal(detect('2026-11-21 10:00:00,5 -0430 host x')?.time, at('2026-11-21T14:30:00Z'));
  });

  it('the common log format [dd/Mon/yyyy:HH:MM:SS +zone], cut out of the line', () => {
    const r = detect('192.0.2.1 - - [21/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 403 1');
    assert.equal(r?.time, at('2026-11-21T09:00:00Z'));
    assert.equal(r?.rest, '192.0.2.1 - - [] "GET / HTTP/1.1" 403 1');
  });

  it('nginx error log yyyy/mm/dd HH:MM:SS', () => {
    assert.equal(detect('2026/11/21 10:00:05 [error] 1#1: x')?.time, at('2026-11-21T10:00:05Z'));
  });

  it('epoch seconds, with a fraction', () => {
    assert.equal(detect('1795262400 x')?.time, 1795262400);
    assert.equal(detect('1795262400.250 x')?.time, 1795262400.25);
    assert.equal(detect('[1795262400] x')?.time, 1795262400);
  });

  it('TAI64N', () => {
    assert.equal(detect('@400000006b016bec0000abcd x')?.time, at('2026-11-21T10:01:16Z'));
  });

  it('RFC 5424', () => {
    const r = detect('<34>1 2026-11-21T10:00:00.003Z mail app 123 ID47 - message');
    assert.equal(r?.time, at('2026-11-21T10:00:00Z'));
    assert.equal(r?.rest, '<34>1  mail app 123 ID47 - message');
  });

  it('apache error log [Www Mon dd HH:MM:SS.uuuuuu yyyy]', () => {
    assert.equal(detect('[Sat Nov 21 10:04:01.123456 2026] [core:error] x')?.time, at('2026-11-21T10:04:01Z'));
  });

  it('an invalid date is cut out but gives no time', () => {
    const r = detect('2026-02-30 10:00:00 x');
    assert.equal(r?.time, null);
    assert.equal(r?.rest, ' x');
  });

  it('a line without a date', () => {
    assert.equal(detect('no date here'), null);
  });
});

describe('datepattern', () => {
  it('strptime directives, with 12-hour clock', () => {
    assert.equal(detect('x Nov 21, 2026 01:02:03 PM y', { datepattern: '%b %d, %Y %I:%M:%S %p' })?.time, at('2026-11-21T13:02:03Z'));
    assert.equal(detect('t=21.11.26 10:00:00 y', { datepattern: '%d.%m.%y %H:%M:%S' })?.time, at('2026-11-21T10:00:00Z'));
  });

  it('{^LN-BEG} only accepts a date at the start of the line', () => {
    assert.equal(detect('192.0.2.1 Nov 21 10:00:00 x', { datepattern: '{^LN-BEG}' }), null);
    // fail2ban's "(?:%Z )?%b %d …" template is case-insensitive: a leading word is taken as a
    // zone name it cannot convert, so the text is cut out without a time (fail2ban-regex agrees).
    assert.deepEqual(detect('host Nov 21 10:00:00 x', { datepattern: '{^LN-BEG}' }), { time: null, text: 'host Nov 21 10:00:00', rest: ' x' });
    assert.equal(detect('Nov 21 10:00:00 x', { datepattern: '{^LN-BEG}' })?.time, at('2026-11-21T10:00:00Z'));
  });

  it('{DATE} wraps every default template', () => {
    const r = detect('<13>1 2026-11-21T10:00:00Z mail x', { datepattern: String.raw`^<\d+>\d+\s+{DATE}` });
    assert.equal(r?.time, at('2026-11-21T10:00:00Z'));
  });

  it('Epoch, ISO8601 and TAI64N keywords', () => {
    assert.equal(detect('1795262400 x', { datepattern: 'Epoch' })?.time, 1795262400);
    assert.equal(detect('1795262400 x', { datepattern: '{^LN-BEG}Epoch' })?.time, 1795262400);
    assert.equal(detect('a 2026-11-21T10:00:00+02:00 x', { datepattern: 'ISO8601' })?.time, at('2026-11-21T08:00:00Z'));
    assert.equal(detect('@400000006b016bec0000abcd x', { datepattern: 'TAI64N' })?.time, at('2026-11-21T10:01:16Z'));
  });

  it('several patterns, one per line', () => {
    const datepattern = '{^LN-BEG}TAI64N\n{^LN-BEG}';
    assert.equal(detect('@400000006b016bec0000abcd x', { datepattern })?.time, at('2026-11-21T10:01:16Z'));
    assert.equal(detect('Nov 21 10:00:00 x', { datepattern })?.time, at('2026-11-21T10:00:00Z'));
  });

  it('%ExY takes the years 2000 to three years ahead of the real clock, whatever the reference time', () => {
    // fail2ban builds this range once from the real clock; `now` only places year-less stamps.
    const thisYear = new Date().getUTCFullYear();
    for (const now of [at('2005-08-15T00:00:00Z'), NOW, at('2040-01-01T00:00:00Z')]) {
      assert.equal(detect('2026-11-21 10:00:00 x', { datepattern: '^%ExY-%m-%d %H:%M:%S', now })?.time, at('2026-11-21T10:00:00Z'));
      assert.equal(detect('2001-01-02 10:00:00 x', { datepattern: '^%ExY-%m-%d %H:%M:%S', now })?.time, at('2001-01-02T10:00:00Z'));
      assert.equal(detect(`${thisYear + 3}-01-02 10:00:00 x`, { datepattern: '^%ExY-%m-%d %H:%M:%S', now })?.time, at(`${thisYear + 3}-01-02T10:00:00Z`));
      assert.equal(detect('1999-01-02 10:00:00 x', { datepattern: '^%ExY-%m-%d %H:%M:%S', now }), null);
    }
  });

  it('a percent sign that is not a directive is an error', () => {
    assert.throws(() => detect('x', { datepattern: '%Y-%m 100%' }), /percent/);
  });
});

describe('logtimezone', () => {
  it('applies to stamps without a zone, not to stamps with one', () => {
    assert.equal(detect('Nov 21 10:00:00 x', { logtimezone: 'UTC+0200' })?.time, at('2026-11-21T08:00:00Z'));
    assert.equal(detect('2026-11-21T10:00:00Z x', { logtimezone: 'UTC+0200' })?.time, at('2026-11-21T10:00:00Z'));
  });

  it("accepts fail2ban's zone spellings and rejects others", () => {
    assert.equal(zoneOffsetMinutes('CET'), 60);
    assert.equal(zoneOffsetMinutes('-04:30'), -270);
    assert.equal(zoneOffsetMinutes('UTC'), 0);
    assert.throws(() => zoneOffsetMinutes('Europe/Paris'), /time zone/);
  });
});

describe('DateDetector.setNow', () => {
  it('re-infers the year once time has moved past New Year', () => {
    const d = new DateDetector({ datepattern: null, logtimezone: null, now: at('2026-12-30T12:00:00Z') });
    assert.equal(d.match('Jan  2 10:00:00 x')?.time, at('2026-01-02T10:00:00Z'));
    d.setNow(at('2027-01-02T12:00:00Z'));
    assert.equal(d.match('Jan  2 10:00:00 x')?.time, at('2027-01-02T10:00:00Z'));
  });
});
