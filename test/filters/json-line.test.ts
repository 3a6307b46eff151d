// JSON lines matched by parsed fields (a filter's `jsonline`): the projection itself, a filter
// using it end to end (key order, spacing, escapes, forged fields, two objects), and the
// file:line error for a bad field path.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/fail2ban/config-error.ts';
import { JsonLineProjector, looksLikeJson } from '../../src/filters/json-line.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { runFilter, SAMPLE_NOW } from './helpers.ts';

describe('JsonLineProjector', () => {
  const p = new JsonLineProjector(['t', 'req.ip', 'status', 'req.headers.ua.0', 'missing', 'obj']);

  it('writes the listed values in order, one space apart, strings JSON-quoted, whatever the key order and spacing', () => {
    const a = p.project('{"obj":{"x":1},"status":401,"req":{"headers":{"ua":["curl"]},"ip":"192.0.2.1"},"t":"2026"}');
    const b = p.project('  {  "t" : "2026" , "req" : { "ip" : "192.0.2.1" , "headers" : { "ua" : [ "curl" ] } } , "status" : 401 , "obj" : { "x" : 1 } }');
    assert.equal(a, '"2026" "192.0.2.1" 401 "curl" - -');
    assert.equal(b, a);
  });

  it('keeps quotes and spaces inside their value, however they were escaped', () => {
    const forged = p.project('{"t":"\\" \\"192.0.2.9","req":{"ip":"\\u0022192.0.2.9\\u0022"},"status":"401"}');
    assert.equal(forged, '"\\" \\"192.0.2.9" "\\"192.0.2.9\\"" "401" - - -');
  });

  it('yields nothing for two objects, a cut line or JSON that is not an object', () => {
    assert.equal(p.project('{"t":1} {"t":2}'), null);
    assert.equal(p.project('{"t":1'), null);
    assert.equal(p.project('{"t":1}garbage'), null);
    assert.equal(looksLikeJson('  {"t":1}'), true);
    assert.equal(looksLikeJson('192.0.2.1 - - [x] "{"'), false);
  });

  it('reads own fields only, not inherited ones', () => {
    assert.equal(new JsonLineProjector(['constructor', '__proto__.x']).project('{"a":1}'), '- -');
  });
});

describe('a filter with jsonline', () => {
  async function filterDir(t: Parameters<typeof tempDir>[0], conf: string): Promise<string> {
    const dir = await tempDir(t);
    await mkdir(path.join(dir, 'filter.d'));
    await writeFile(path.join(dir, 'filter.d', 'app.conf'), conf);
    return dir;
  }

  it('matches JSON lines by their fields and plain lines as written', async (t) => {
    const dir = await filterDir(
      t,
      [
        '[Definition]',
        'jsonline = time client.ip result',
        'failregex = ^"" "<ADDR>" "denied"$',
        '            ^\\s*plain denied from <ADDR>$',
        'datepattern = ^"(%%Y-%%m-%%dT%%H:%%M:%%S%%z)"',
        '              {^LN-BEG}',
        '',
      ].join('\n'),
    );
    const results = await runFilter(
      'app',
      [
        '{"result":"denied","client":{"ip":"192.0.2.1"},"time":"2026-11-21T10:00:00Z"}',
        '{"time":"2026-11-21T10:00:01Z","client":{"ip":"192.0.2.9\\" \\"198.51.100.2"},"result":"denied"}',
        '{"time":"2026-11-21T10:00:02Z","client":{"ip":"192.0.2.9"},"result":"ok","note":"\\"192.0.2.9\\" \\"denied\\""}',
        '2026-11-21T10:00:03Z plain denied from 198.51.100.3',
      ],
      SAMPLE_NOW,
      dir,
    );
    assert.deepEqual(
      results.map((r) => [r.match, r.host, r.time]),
      [
        [true, '192.0.2.1', Date.UTC(2026, 10, 21, 10, 0, 0) / 1000],
        [false, null, Date.UTC(2026, 10, 21, 10, 0, 1) / 1000],
        [false, null, Date.UTC(2026, 10, 21, 10, 0, 2) / 1000],
        [true, '198.51.100.3', Date.UTC(2026, 10, 21, 10, 0, 3) / 1000],
      ],
    );
  });

  it('a field path that is not one is a ConfigError naming file and line', async (t) => {
    const dir = await filterDir(t, '[Definition]\nfailregex = ^"<ADDR>"$\njsonline = client..ip\n');
    await assert.rejects(runFilter('app', [], SAMPLE_NOW, dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.file, path.join(dir, 'filter.d', 'app.conf'));
      assert.equal(error.line, 3);
      assert.match(error.message, /jsonline: "client\.\.ip" is not a field path/);
      return true;
    });
  });
});
