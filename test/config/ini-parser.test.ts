import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIni } from '../../src/config/fail2ban/ini-parser.ts';
import { textOf } from '../../src/config/fail2ban/sourced-text.ts';

function values(content: string, section: string): Record<string, string> {
  const parsed = parseIni(content, 'x.conf');
  const sec = section === 'DEFAULT' ? parsed.defaults : parsed.sections.get(section);
  assert.ok(sec, `section ${section}`);
  return Object.fromEntries([...sec].map(([k, v]) => [k, textOf(v.text)]));
}

test('key = value and key: value, keys lower-cased, values trimmed', () => {
  assert.deepEqual(values('[Definition]\nFailRegex = ^a$\nmaxlines: 2\n  \n', 'Definition'), { failregex: '^a$', maxlines: '2' });
});

test('first = or : splits key from value', () => {
  assert.deepEqual(values('[s]\nurl = http://x:80/a=b\nk: v = w\n', 's'), { url: 'http://x:80/a=b', k: 'v = w' });
});

test('comments: # and ; full-line (even indented), only " ;" inline, # inside a value is data', () => {
  const v = values('# top\n[s]\n; c\na = x # not a comment\nb = y ; comment\nc = z;not-a-comment\n    # indented comment\nd = 1\n', 's');
  assert.deepEqual(v, { a: 'x # not a comment', b: 'y', c: 'z;not-a-comment', d: '1' });
});

test('multi-line values: deeper-indented lines continue; blank lines kept inside, trailing ones dropped; comment lines skipped', () => {
  const content = '[Definition]\nfailregex = ^one$\n            ^two$\n\n            ^three$\n# a comment inside\n            ^four$\n\n\nignoreregex =\n';
  const v = values(content, 'Definition');
  assert.equal(v.failregex, '^one$\n^two$\n\n^three$\n^four$');
  assert.equal(v.ignoreregex, '');
});

test('an indented key line after a value is a continuation (ConfigParser rule), same indent is a new key', () => {
  const v = values('[s]\n  a = 1\n    b = 2\n  c = 3\n', 's');
  assert.deepEqual(v, { a: '1\nb = 2', c: '3' });
});

test('each line of a multi-line value keeps its own line number', () => {
  const parsed = parseIni('[Definition]\n\nfailregex = ^one$\n  ^two$\n\n  ^three$\n', 'f.conf');
  const value = parsed.sections.get('Definition')?.get('failregex');
  assert.ok(value);
  assert.equal(value.line, 3);
  assert.deepEqual(
    value.text.filter((p) => p.text.trim() !== '').map((p) => [p.text.trim(), p.origin.line]),
    [
      ['^one$', 3],
      ['^two$', 4],
      ['^three$', 6],
    ],
  );
});

test('DEFAULT goes to defaults; section names are case-sensitive; CRLF accepted', () => {
  const parsed = parseIni('[DEFAULT]\r\na = 1\r\n[Init]\r\nb = 2\r\n[init]\r\nc = 3\r\n', 'x.conf');
  assert.equal(textOf(parsed.defaults.get('a')?.text ?? []), '1');
  assert.deepEqual([...parsed.sections.keys()], ['Init', 'init']);
});
