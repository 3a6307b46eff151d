// The filter engine on hand-built definitions: compile errors, hosts and tags, prefregex,
// ignoreregex, the date cut out of the line, odd input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter, FilterCompileError } from '../../src/filters/compile.ts';
import { FilterMatcher } from '../../src/filters/matcher.ts';
import type { EngineFilterDefinition, RegexSpec } from '../../src/filters/types.ts';
import { SAMPLE_NOW } from './helpers.ts';

let line = 0;
function spec(pattern: string, key = 'failregex'): RegexSpec {
  return { pattern, source: { file: '/etc/edgeban/filter.d/test.conf', line: ++line, key } };
}

function def(failregex: string[], extra: Partial<EngineFilterDefinition> = {}): EngineFilterDefinition {
  return {
    name: 'test',
    file: '/etc/edgeban/filter.d/test.conf',
    prefregex: null,
    failregex: failregex.map((p) => spec(p)),
    ignoreregex: [],
    maxlines: 1,
    datepattern: null,
    logtimezone: null,
    ...extra,
  };
}

function run(d: EngineFilterDefinition, lines: string[]) {
  const matcher = new FilterMatcher(compileFilter(d), { now: SAMPLE_NOW });
  return { results: lines.map((l) => matcher.processLine(l)), stats: matcher.stats };
}

describe('compileFilter', () => {
  it('an untranslatable regex names the filter, file:line, key and regex', () => {
    const d = def(['^ok from <HOST>$', '^(?>atomic) from <HOST>$']);
    assert.throws(
      () => compileFilter(d),
      (error: unknown) => {
        assert.ok(error instanceof FilterCompileError);
        assert.equal(error.exitCode, 2);
        assert.match(
          error.message,
          /^\/etc\/edgeban\/filter\.d\/test\.conf:\d+: failregex: filter test: cannot use regex "\^\(\?>atomic\) from <HOST>\$": atomic groups/,
        );
        return true;
      },
    );
  });

  it('a failregex without a failure-id group is an error', () => {
    assert.throws(() => compileFilter(def(['^no host here$'])), /no failure-id group/);
  });

  it('a bad datepattern or logtimezone is an error', () => {
    assert.throws(() => compileFilter(def(['<HOST>'], { datepattern: spec('%Y-%m 100%', 'datepattern') })), /datepattern: filter test: .*percent/);
    assert.throws(() => compileFilter(def(['<HOST>'], { logtimezone: 'Mars/Olympus' })), /logtimezone/);
  });
});

describe('FilterMatcher', () => {
  it('cuts the date out before the failregex, so ^ anchors after it', () => {
    const { results } = run(def([String.raw`^\s*sshd: fail from <HOST>$`]), ['Nov 21 10:00:00 sshd: fail from 192.0.2.1']);
    assert.equal(results[0]?.host, '192.0.2.1');
    assert.equal(results[0]?.time, Date.UTC(2026, 10, 21, 10, 0, 0) / 1000);
  });

  it('a date inside the attacker-controlled part does not shift the anchor', () => {
    const { results } = run(def([String.raw`^\s*app: user \S+ failed from <HOST>$`], { datepattern: spec('{^LN-BEG}', 'datepattern') }), [
      'Nov 21 10:00:00 app: user Nov_21_10:00:00 failed from 192.0.2.2',
    ]);
    assert.equal(results[0]?.host, '192.0.2.2');
  });

  it('spells hosts as pf does: IPv6 compressed, IPv4-mapped as IPv4, subnets masked', () => {
    const d = def([String.raw`^\s*a: from <HOST>$`, String.raw`^\s*b: net <SUBNET>$`]);
    const { results } = run(d, [
      '2026-11-21T10:00:00Z a: from 2001:DB8:0:0:0:0:0:1',
      '2026-11-21T10:00:01Z a: from ::ffff:198.51.100.3',
      '2026-11-21T10:00:02Z b: net 203.0.113.77/24',
    ]);
    assert.deepEqual(
      results.map((r) => r.host),
      ['2001:db8::1', '198.51.100.3', '203.0.113.0/24'],
    );
  });

  it('a host name is never resolved: no host, reported and counted', () => {
    const { results, stats } = run(def([String.raw`^\s*a: from <HOST>$`]), ['2026-11-21T10:00:00Z a: from mail.example.net']);
    assert.equal(results[0]?.host, null);
    assert.equal(results[0]?.hostname, 'mail.example.net');
    assert.equal(stats.hostnames, 1);
  });

  it('an invalid address is reported, not banned', () => {
    const { results, stats } = run(def([String.raw`^\s*a: from <HOST>$`]), ['2026-11-21T10:00:00Z a: from 300.1.2.3']);
    assert.equal(results[0]?.host, null);
    assert.equal(results[0]?.invalidHost, '300.1.2.3');
    assert.equal(stats.invalidHosts, 1);
  });

  it('an IPv4 address with a leading zero is invalid, whether plain or IPv4-mapped: octal or decimal would be a guess', () => {
    const lines = ['192.030.0.6', '192.0.2.06', '010.1.1.1', '::ffff:192.030.0.6'].map((a, i) => `2026-11-21T10:00:0${i}Z a: from ${a}`);
    const { results, stats } = run(def([String.raw`^\s*a: from <HOST>$`]), lines);
    assert.deepEqual(
      results.map((r) => [r.match, r.host, r.invalidHost]),
      [
        [true, null, '192.030.0.6'],
        [true, null, '192.0.2.06'],
        [true, null, '010.1.1.1'],
        [true, null, '192.030.0.6'],
      ],
    );
    assert.equal(stats.invalidHosts, 4);
  });

  it('tags: <F-USER>, <F-ALT_USER_1> merged into user (fail2ban naming), <F-ID> that is not an address', () => {
    const d = def([String.raw`^\s*a: user=<F-USER>\S*</F-USER> alt=<F-ALT_USER_1>\S+</F-ALT_USER_1> from <ADDR>$`, String.raw`^\s*b: token <F-ID/> rejected$`]);
    const { results } = run(d, ['2026-11-21T10:00:00Z a: user= alt=bob from 192.0.2.4', '2026-11-21T10:00:01Z b: token abc123 rejected']);
    assert.deepEqual(results[0]?.tags, { user: 'bob' });
    assert.equal(results[1]?.match, true);
    assert.equal(results[1]?.host, null);
    assert.deepEqual(results[1]?.tags, { id: 'abc123' });
  });

  it('an optional failregex group that did not take part keeps the address prefregex captured (fail2ban 1.1.1, 38c2537e)', () => {
    for (const maxlines of [1, 2]) {
      const d = def([String.raw`^denied(?: via <ADDR>)?$`], {
        prefregex: spec(String.raw`^\s*web: <ADDR> <F-CONTENT>.+</F-CONTENT>$`, 'prefregex'),
        maxlines,
      });
      const { results } = run(d, ['2026-11-21T10:00:00Z web: 192.0.2.5 denied', '2026-11-21T10:00:01Z web: 192.0.2.6 denied via 198.51.100.6']);
      assert.deepEqual(
        results.map((r) => [r.match, r.host]),
        [
          [true, '192.0.2.5'],
          [true, '198.51.100.6'],
        ],
        `maxlines=${maxlines}`,
      );
    }
  });

  it('prefregex narrows to <F-CONTENT>; ignoreregex cancels a match', () => {
    const d = def([String.raw`^denied <ADDR>$`], {
      prefregex: spec(String.raw`^\s*web: <F-CONTENT>.+</F-CONTENT>$`, 'prefregex'),
      ignoreregex: [spec(String.raw`198\.51\.100\.`, 'ignoreregex')],
    });
    const { results, stats } = run(d, [
      '2026-11-21T10:00:00Z web: denied 192.0.2.5',
      '2026-11-21T10:00:01Z other: denied 192.0.2.6',
      '2026-11-21T10:00:02Z web: denied 198.51.100.7',
    ]);
    assert.deepEqual(
      results.map((r) => [r.match, r.host, r.ignored]),
      [
        [true, '192.0.2.5', false],
        [false, null, false],
        [false, null, true],
      ],
    );
    assert.deepEqual([stats.matched, stats.missed, stats.ignored], [1, 1, 1]);
  });

  it('the first matching failregex wins and is counted', () => {
    const { results, stats } = run(def([String.raw`from <ADDR>`, String.raw`fail from <ADDR>`]), ['x fail from 192.0.2.8']);
    assert.equal(results[0]?.failregexIndex, 0);
    assert.deepEqual(stats.perFailregex, [1, 0]);
  });

  it('invalid UTF-8 (already replaced), NULs, non-ASCII text and huge lines never throw', () => {
    const d = def([String.raw`^\s*a: \w+ from <ADDR>$`]);
    const { results } = run(d, [
      '2026-11-21T10:00:00Z a: h\uFFFDllo from 192.0.2.9\u0000',
      '2026-11-21T10:00:01Z a: héllo from 192.0.2.10',
      `2026-11-21T10:00:02Z a: ${'x'.repeat(100_000)} from 192.0.2.11`,
      '\u0000\u0000\u0000',
      '',
    ]);
    assert.deepEqual(
      results.map((r) => r.host),
      [null, '192.0.2.10', '192.0.2.11', null, null],
    );
  });

  it('a line without a date matches with no time', () => {
    const { results } = run(def([String.raw`from <ADDR>`]), ['fail from 192.0.2.12']);
    assert.equal(results[0]?.match, true);
    assert.equal(results[0]?.time, null);
  });
});
