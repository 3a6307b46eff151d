// Unwrapping of Docker json-file and CRI records: escapes, split long lines, streams, malformed
// records, auto detection, the size cap, and equivalence with the plain log for every shipped
// filter's sample (injection lines included).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  ContainerLogUnwrapper,
  continuedStreams,
  lineTime,
  parseCriRecord,
  parseDockerRecord,
  parseRfc3339,
  readRecord,
  type LogFormat,
  type UnwrappedLine,
} from '../../src/sources/container-log-format.ts';
import { logLines, runFilter, SAMPLE_NOW, SAMPLES } from '../filters/helpers.ts';
import { criRecord, dockerRecord, splitRecords } from './wrap.ts';

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0) / 1000;

function unwrapAll(
  format: LogFormat,
  records: readonly string[],
  options: { maxLineBytes?: number; maxPending?: number } = {},
): { lines: UnwrappedLine[]; unwrapper: ContainerLogUnwrapper } {
  const unwrapper = new ContainerLogUnwrapper(format, options);
  const lines: UnwrappedLine[] = [];
  for (const record of records) unwrapper.push('/var/log/x.log', record, lines);
  return { lines, unwrapper };
}

describe('RFC 3339 time stamps', () => {
  it('reads nanoseconds, Z and offsets; rejects other shapes', () => {
    assert.equal(parseRfc3339('2026-11-21T10:00:00Z'), T0);
    assert.ok(Math.abs((parseRfc3339('2026-11-21T10:00:00.123456789Z') ?? 0) - (T0 + 0.123456789)) < 1e-6);
    assert.equal(parseRfc3339('2026-11-21T11:30:00+01:30'), T0);
    assert.equal(parseRfc3339('2026-11-21T08:00:00-02:00'), T0);
    for (const bad of ['2026-11-21 10:00:00Z', '2026-13-21T10:00:00Z', '2026-11-21T10:00:00', 'yesterday', '2026-11-21T10:00:00.Z']) {
      assert.equal(parseRfc3339(bad), null, bad);
    }
  });
});

describe('Docker json-file records', () => {
  it('decodes the line, its stream and time; the newline ends the line', () => {
    const r = parseDockerRecord('{"log":"hello world\\n","stream":"stderr","time":"2026-11-21T10:00:00.5Z"}');
    assert.deepEqual(r, { format: 'docker', text: 'hello world', stream: 'stderr', time: T0 + 0.5, partial: false });
  });

  it('decodes JSON escapes: quotes, backslashes, \\u003c and friends, non-ASCII, CRLF', () => {
    const inner = 'user=<x"y\\z> & é ✓ \t tab';
    const record = dockerRecord(inner, { time: T0 });
    assert.match(record, /\\u003cx\\"y\\\\z\\u003e \\u0026/, "the record carries Go's escapes");
    assert.equal(parseDockerRecord(record)?.text, inner);
    const { lines } = unwrapAll('docker', [dockerRecord('windows line\r', { time: T0 })]);
    assert.equal(lines[0]?.text, 'windows line', 'CR before the newline is part of the newline, as in a plain file');
  });

  it("joins a line split over several records (over 16 KiB), keeping the first record's time", () => {
    const long = `dovecot: imap-login: ${'A'.repeat(40_000)} rip=198.51.100.7`;
    const records = splitRecords('docker', long, 16_384, { time: T0 });
    assert.equal(records.length, 3);
    assert.ok(!records[0]?.includes('\\n') && records[2]?.includes('\\n'));
    const { lines, unwrapper } = unwrapAll('docker', records);
    assert.deepEqual(
      lines.map((l) => [l.text, l.time, l.truncated]),
      [[long, T0, false]],
    );
    assert.equal(unwrapper.stats.partialRecords, 3);
    assert.equal(unwrapper.stats.records, 3);
    assert.equal(unwrapper.stats.lines, 1);
  });

  it('keeps stdout and stderr apart: a stderr line between the parts of a stdout line', () => {
    const records = [
      dockerRecord('first half of stdout, ', { time: T0, partial: true }),
      dockerRecord('a whole stderr line', { time: T0 + 1, stream: 'stderr' }),
      dockerRecord('second half', { time: T0 + 2 }),
    ];
    const { lines } = unwrapAll('docker', records);
    assert.deepEqual(
      lines.map((l) => [l.stream, l.text, l.time]),
      [
        ['stderr', 'a whole stderr line', T0 + 1],
        ['stdout', 'first half of stdout, second half', T0],
      ],
    );
  });

  it('a newline inside "log" ends a line, as it would in a plain file (never one line with an embedded break)', () => {
    const { lines } = unwrapAll('docker', ['{"log":"one\\ntwo\\nthr","stream":"stdout","time":"2026-11-21T10:00:00Z"}', dockerRecord('ee', { time: T0 })]);
    assert.deepEqual(
      lines.map((l) => l.text),
      ['one', 'two', 'three'],
    );
  });

  it('extra keys (attrs) are allowed; wrong types, streams and times are malformed', () => {
    assert.equal(parseDockerRecord('{"log":"x\\n","stream":"stdout","attrs":{"tag":"mail"},"time":"2026-11-21T10:00:00Z"}')?.text, 'x');
    for (const bad of [
      '{"log":1,"stream":"stdout","time":"2026-11-21T10:00:00Z"}',
      '{"log":"x\\n","stream":"stdin","time":"2026-11-21T10:00:00Z"}',
      '{"log":"x\\n","stream":"stdout","time":"now"}',
      '{"log":"x\\n","stream":"stdout"}',
      '{"log":"x\\n","stream":"stdout","time":"2026-11-21T1',
      '[1,2]',
      'plain text',
    ])
      assert.equal(parseDockerRecord(bad), null, bad);
  });
});

describe('CRI records', () => {
  it('reads time, stream, F and the content after one space', () => {
    assert.deepEqual(parseCriRecord('2026-11-21T10:00:00.000000001Z stdout F  two spaces kept'), {
      format: 'cri',
      text: ' two spaces kept',
      stream: 'stdout',
      time: T0 + 1e-9,
      partial: false,
    });
    assert.deepEqual(parseCriRecord('2026-11-21T11:00:00+01:00 stderr F'), { format: 'cri', text: '', stream: 'stderr', time: T0, partial: false });
    assert.equal(parseCriRecord('2026-11-21T10:00:00Z stdout F:x tagged')?.text, 'tagged');
  });

  it('joins P records up to the F, per stream', () => {
    const records = [
      criRecord('auth: passwd-file(', { time: T0, partial: true }),
      criRecord('an unrelated stdout line', { time: T0 + 1, stream: 'stdout' }),
      criRecord('bob,203.0.113.8): ', { time: T0 + 1, partial: true, stream: 'stderr' }),
      criRecord('unknown user', { time: T0 + 2, stream: 'stderr' }),
    ].map((r, i) => (i === 0 ? r.replace(' stdout ', ' stderr ') : r));
    const { lines, unwrapper } = unwrapAll('cri', records);
    assert.deepEqual(
      lines.map((l) => [l.stream, l.text, l.time]),
      [
        ['stdout', 'an unrelated stdout line', T0 + 1],
        ['stderr', 'auth: passwd-file(bob,203.0.113.8): unknown user', T0],
      ],
    );
    assert.equal(unwrapper.stats.partialRecords, 3);
  });

  it('malformed records are counted and skipped, never fatal, and do not disturb a pending line', () => {
    const records = [
      criRecord('start ', { time: T0, partial: true }),
      'not a record',
      '2026-11-21T10:00:00Z stdin F x',
      '2026-11-21T10:00:00Z stdout X x',
      'yesterday stdout F x',
      '',
      criRecord('end', { time: T0 + 1 }),
    ];
    const { lines, unwrapper } = unwrapAll('cri', records);
    assert.deepEqual(
      lines.map((l) => l.text),
      ['start end'],
    );
    assert.equal(unwrapper.stats.malformed, 5);
    assert.equal(unwrapper.stats.records, 7);
  });

  it('a line over the cap is cut at it (whole characters), the rest skipped up to its F, the next line whole', () => {
    const part = `${'é'.repeat(5_000)}x`; // 10,001 bytes per part
    const records = [
      ...Array.from({ length: 9 }, () => criRecord(part, { time: T0, partial: true })),
      criRecord('tail', { time: T0 }),
      criRecord('next line', { time: T0 }),
    ];
    const { lines, unwrapper } = unwrapAll('cri', records, { maxLineBytes: 65_536 });
    assert.equal(lines.length, 2);
    const cut = lines[0]!;
    assert.equal(cut.truncated, true);
    assert.ok(Buffer.byteLength(cut.text) <= 65_536 && Buffer.byteLength(cut.text) > 65_530);
    assert.ok(!cut.text.includes('\ufffd') && !cut.text.includes('tail'));
    assert.deepEqual([lines[1]?.text, lines[1]?.truncated], ['next line', false]);
    assert.equal(unwrapper.stats.truncated, 1);
  });

  it("unfinished lines are bounded: the oldest stream's is forgotten and counted", () => {
    const unwrapper = new ContainerLogUnwrapper('cri', { maxPending: 2 });
    const out: UnwrappedLine[] = [];
    for (const file of ['a', 'b', 'c']) unwrapper.push(file, criRecord(`${file}-head `, { time: T0, partial: true }), out);
    assert.equal(unwrapper.pendingLines, 2);
    assert.equal(unwrapper.stats.evicted, 1);
    unwrapper.push('c', criRecord('tail', { time: T0 }), out);
    assert.deepEqual(
      out.map((l) => l.text),
      ['c-head tail'],
    );
  });
});

describe('auto detection, per line', () => {
  it('Docker, CRI and plain lines in one stream each read as what they are', () => {
    const traefikJson = '{"ClientHost":"198.51.100.9","DownstreamStatus":401,"StartUTC":"2026-11-21T10:00:00Z"}';
    const records = [
      dockerRecord('from docker', { time: T0 }),
      criRecord('from cri', { time: T0 + 1, stream: 'stderr' }),
      'Nov 21 10:00:02 mail postfix/smtpd[1]: a plain line',
      traefikJson,
      '2026-11-21 10:00:03 a plain line with an ISO date',
    ];
    const { lines, unwrapper } = unwrapAll('auto', records);
    assert.deepEqual(
      lines.map((l) => [l.format, l.text, l.time, l.stream]),
      [
        ['docker', 'from docker', T0, 'stdout'],
        ['cri', 'from cri', T0 + 1, 'stderr'],
        ['plain', records[2], null, null],
        ['plain', traefikJson, null, null],
        ['plain', records[4], null, null],
      ],
    );
    assert.equal(unwrapper.stats.malformed, 0);
  });

  it('a cut Docker record is malformed, never handed on as raw JSON text', () => {
    const { lines, unwrapper } = unwrapAll('auto', ['{"log":"dovecot: imap-login: rip=198.51.100.9, lip=', '2026-11-21T10:00:00Z stdout Q not cri either']);
    assert.deepEqual(
      lines.map((l) => [l.format, l.text]),
      [['plain', '2026-11-21T10:00:00Z stdout Q not cri either']],
    );
    assert.equal(unwrapper.stats.malformed, 1);
  });

  it('a CRI-shaped record with a bad stamp is malformed in auto', () => {
    assert.equal(readRecord('auto', '2026-11-21T99:00:00Z stdout F x'), null);
  });

  it('explicit formats accept only their own records', () => {
    assert.equal(readRecord('docker', criRecord('x', { time: T0 })), null);
    assert.equal(readRecord('cri', dockerRecord('x', { time: T0 })), null);
    assert.deepEqual(readRecord('plain', dockerRecord('x', { time: T0 })), { format: 'plain', text: dockerRecord('x', { time: T0 }) });
  });
});

describe('one layer only: what the container printed is what the filter sees', () => {
  it('an inner line shaped like a record is not unwrapped again', () => {
    const innerCri = '2026-11-21T10:00:00Z stdout F dovecot: imap-login: rip=192.0.2.9';
    const innerDocker = '{"log":"rip=192.0.2.9\\n","stream":"stdout","time":"2026-11-21T10:00:00Z"}';
    const { lines } = unwrapAll('auto', [dockerRecord(innerCri, { time: T0 }), criRecord(innerDocker, { time: T0 }), dockerRecord(innerDocker, { time: T0 })]);
    assert.deepEqual(
      lines.map((l) => l.text),
      [innerCri, innerDocker, innerDocker],
    );
  });

  it("the filter's own date wins; the runtime's time counts only when the filter found none", () => {
    assert.equal(lineTime(T0 - 30, { time: T0 }), T0 - 30);
    assert.equal(lineTime(null, { time: T0 }), T0);
    assert.equal(lineTime(null, { time: null }), null);
  });

  // Every sample line of every shipped filter (injection attempts included), wrapped by each
  // runtime, whole and split at awkward places between other streams' lines, gives the plain result.
  const FILTERS = ['dovecot', 'postfix', 'traefik', 'nginx', 'apache'];
  for (const name of FILTERS) {
    it(`${name}: every sample line gives the same failure, address, user and date as the plain line`, async () => {
      const plain = logLines(path.join(SAMPLES, `${name}.log`));
      const expected = await runFilter(name, plain, SAMPLE_NOW);
      for (const format of ['docker', 'cri', 'auto'] as const) {
        for (const partSize of [0, 7, 61]) {
          const records: string[] = [];
          plain.forEach((line, i) => {
            const wrapAs = format === 'auto' ? (i % 3 === 0 ? 'docker' : i % 3 === 1 ? 'cri' : 'plain') : format;
            if (wrapAs === 'plain') records.push(line);
            else if (partSize === 0) records.push((wrapAs === 'docker' ? dockerRecord : criRecord)(line, { time: T0 + i }));
            else {
              const parts = splitRecords(wrapAs, line, partSize, { time: T0 + i, stream: 'stderr' });
              // Another stream writes between the parts; it must not join them.
              records.push(parts[0]!, (wrapAs === 'docker' ? dockerRecord : criRecord)('noise on stdout', { time: T0 + i }), ...parts.slice(1));
            }
          });
          const { lines, unwrapper } = unwrapAll(format, records);
          assert.equal(unwrapper.stats.malformed, 0);
          const inner = lines.filter((l) => l.text !== 'noise on stdout');
          assert.deepEqual(
            inner.map((l) => l.text),
            plain,
            `${format}/${partSize}: the unwrapped text`,
          );
          const got = await runFilter(
            name,
            inner.map((l) => l.text),
            SAMPLE_NOW,
          );
          const summary = (r: (typeof got)[number]) => [r.match, r.host, r.time, r.tags.user ?? null];
          assert.deepEqual(got.map(summary), expected.map(summary), `${format}/${partSize}`);
          assert.ok(!got.some((r) => r.host === '192.0.2.9'), 'an injected address was taken');
        }
      }
    });
  }
});

describe('resuming between the records of a split line', () => {
  const bytes = (records: string[]) => Buffer.from(`${records.join('\n')}\n`);

  it('finds each stream whose last record before the offset is partial, looking past the other stream', () => {
    assert.deepEqual(
      continuedStreams(
        'cri',
        bytes([criRecord('x', { time: T0 }), criRecord('head ', { time: T0, partial: true }), criRecord('other', { time: T0, stream: 'stderr' })]),
      ),
      ['stdout'],
    );
    assert.deepEqual(
      continuedStreams(
        'docker',
        bytes([dockerRecord('a', { time: T0, stream: 'stderr', partial: true }), dockerRecord('b', { time: T0, partial: true })]),
      ).sort(),
      ['stderr', 'stdout'],
    );
    assert.deepEqual(continuedStreams('cri', bytes([criRecord('head ', { time: T0, partial: true }), criRecord('end', { time: T0 })])), [], 'finished');
    assert.deepEqual(continuedStreams('auto', bytes(['plain line'])), []);
    assert.deepEqual(continuedStreams('cri', Buffer.from(criRecord('no newline yet', { time: T0, partial: true }))), []);
  });

  it("skipContinuation drops the rest of that stream's line, counted, and nothing else", () => {
    const unwrapper = new ContainerLogUnwrapper('cri');
    unwrapper.skipContinuation('f', 'stdout');
    const out: UnwrappedLine[] = [];
    for (const record of [
      criRecord('more of the old line ', { time: T0, partial: true }),
      criRecord('stderr line', { time: T0, stream: 'stderr' }),
      criRecord('Nov 21 10:00:00 mail postfix/smtpd[1]: warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: x', { time: T0 }),
      criRecord('next stdout line', { time: T0 }),
    ])
      unwrapper.push('f', record, out);
    assert.deepEqual(
      out.map((l) => l.text),
      ['stderr line', 'next stdout line'],
    );
    assert.equal(unwrapper.stats.orphanTails, 1);
  });
});
