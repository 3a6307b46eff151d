// `edgeban test-filter` as a process: the --json contract (one object per input line, in order),
// the summary, exit codes and file:line errors, odd bytes in the log.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EDGEBAN, logLines, NODE, SAMPLE_NOW, SAMPLES } from './helpers.ts';

const exec = promisify(execFile);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function testFilter(args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await exec(NODE, [EDGEBAN, 'test-filter', ...args], {
      env: { ...process.env, TZ: 'UTC', EDGEBAN_CONFIG_DIR: '' },
      maxBuffer: 1 << 24,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'edgeban-test-filter-'));
  await mkdir(path.join(dir, 'filter.d'));
  await writeFile(path.join(dir, 'filter.d', 'bad.conf'), '[Definition]\nfailregex = ^ok from <HOST>$\n            ^(?>atomic) from <HOST>$\n');
  await writeFile(path.join(dir, 'filter.d', 'mine.conf'), '[Definition]\nfailregex = ^\\s*app: fail user=<F-USER>\\S+</F-USER> from <ADDR>$\n');
  // Invalid UTF-8, a NUL, CRLF endings and no final newline.
  const bytes = Buffer.concat([
    Buffer.from('Nov 21 10:00:00 app: fail user=b\xffb from 192.0.2.1\r\n', 'latin1'),
    Buffer.from([0x4e, 0x6f, 0x76, 0x20, 0x32, 0x31, 0x20, 0x31, 0x30, 0x3a, 0x30, 0x30, 0x3a, 0x30, 0x31, 0x20, 0xc3, 0x28, 0x00, 0x0a]),
    Buffer.from('\n'),
    Buffer.from('Dec 31 23:00:00 app: fail user=eve from 2001:db8::5'),
  ]);
  await writeFile(path.join(dir, 'odd.log'), bytes);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('edgeban test-filter', () => {
  it('--json prints exactly one object per input line, in order, with tags', async () => {
    const r = await testFilter(['postfix', path.join(SAMPLES, 'postfix.log'), '--json', '--now', String(SAMPLE_NOW)]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, logLines(path.join(SAMPLES, 'postfix.log')).length);
    rows.forEach((row, i) => {
      assert.equal(row.line, i + 1);
      assert.equal(typeof row.match, 'boolean');
      assert.ok(row.host === null || typeof row.host === 'string');
      assert.ok(row.time === null || typeof row.time === 'number');
    });
    assert.deepEqual(rows[0], { line: 1, match: true, host: '192.0.2.10', time: Date.UTC(2026, 10, 21, 10, 0, 1) / 1000 });
  });

  it('handles invalid UTF-8, NULs, CRLF and a last line without newline; --now sets the year', async () => {
    const r = await testFilter(['mine', path.join(dir, 'odd.log'), '--config-dir', dir, '--json', '--now', String(Date.UTC(2027, 0, 2) / 1000)]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[0], { line: 1, match: true, host: '192.0.2.1', time: Date.UTC(2026, 10, 21, 10, 0, 0) / 1000, user: 'b\uFFFDb' });
    assert.equal(rows[1]?.match, false);
    assert.equal(rows[2]?.match, false);
    assert.deepEqual(rows[3], { line: 4, match: true, host: '2001:db8::5', time: Date.UTC(2026, 11, 31, 23, 0, 0) / 1000, user: 'eve' });
  });

  it('filter options as in a jail: dovecot[mode=aggressive]', async () => {
    const normal = await testFilter(['dovecot', path.join(SAMPLES, 'dovecot.log'), '--json', '--now', String(SAMPLE_NOW)]);
    const aggressive = await testFilter(['dovecot[mode=aggressive]', path.join(SAMPLES, 'dovecot.log'), '--json', '--now', String(SAMPLE_NOW)]);
    const count = (o: Outcome): number => o.stdout.split('\n').filter((l) => l.includes('"match":true')).length;
    assert.ok(count(aggressive) > count(normal));
  });

  it('prints a summary without --json', async () => {
    const r = await testFilter(['nginx', path.join(SAMPLES, 'nginx.log'), '--now', String(SAMPLE_NOW)]);
    assert.equal(r.code, 0, r.stderr);
    // The counts the sample's expectations give for the default mode.
    const expected = logLines(path.join(SAMPLES, 'nginx.expected.jsonl')).map(
      (l) => JSON.parse(l) as { host: string | null; modes?: Record<string, string | null> },
    );
    const matched = expected.filter((e) => (e.modes && 'normal' in e.modes ? e.modes.normal : e.host) !== null).length;
    assert.match(r.stdout, new RegExp(`lines read: ${expected.length}, matched: ${matched}, ignored: 0, missed: ${expected.length - matched}\\b`));
    assert.match(r.stdout, /matches per failregex:/);
    assert.match(r.stdout, /sample matches:/);
  });

  it('exits 2 with file:line on a regex that cannot be translated', async () => {
    const r = await testFilter(['bad', path.join(dir, 'odd.log'), '--config-dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${path.join(dir, 'filter.d', 'bad.conf').replace(/[.]/g, '\\.')}:3: failregex: filter bad: cannot use regex .*atomic`));
  });

  it('exits 2 on a missing filter, a missing log and bad arguments', async () => {
    assert.equal((await testFilter(['no-such-filter', path.join(dir, 'odd.log')])).code, 2);
    assert.equal((await testFilter(['postfix', path.join(dir, 'missing.log')])).code, 2);
    assert.equal((await testFilter(['postfix'])).code, 2);
    assert.equal((await testFilter(['postfix', path.join(dir, 'odd.log'), '--now', 'yesterday'])).code, 2);
  });
});
