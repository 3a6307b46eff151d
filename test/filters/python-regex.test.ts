// Python `re` → JavaScript translation: the constructs fail2ban filters use, Python's semantics
// where the two engines differ, and clear errors for what cannot be translated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegexTranslationError, translatePythonRegex } from '../../src/filters/python-regex.ts';
import { expandConditionals } from '../../src/filters/conditionals.ts';
import { isAsciiText } from '../../src/filters/ascii.ts';

function match(pattern: string, text: string, multiline = false): RegExpExecArray | null {
  const t = translatePythonRegex(pattern, { multiline });
  const ascii = isAsciiText(text);
  return (ascii ? t.ascii : t.unicode).exec(text);
}

describe('python-regex translation', () => {
  it('named groups and named backreferences', () => {
    const m = match(String.raw`(?P<y>\d{4})(?P<sep>[-/])\d\d(?P=sep)\d\d`, '2026-11-21');
    assert.equal(m?.groups?.y, '2026');
    assert.equal(match(String.raw`(?P<y>\d{4})(?P<sep>[-/])\d\d(?P=sep)\d\d`, '2026-11/21'), null);
  });

  it('numbered backreferences do not swallow following digits', () => {
    assert.ok(match(String.raw`(a)\1`, 'aa'));
    assert.ok(match(String.raw`(a)\1 0`, 'aa 0'));
  });

  it('a global (?i) at the start applies to the whole pattern', () => {
    assert.ok(match('(?i)user FOO', 'USER foo'));
  });

  it("fail2ban's rewrite turns ((?i)x) into a scoped (?i:x)", () => {
    assert.ok(match('SASL ((?i)LOGIN|PLAIN) failed', 'SASL login failed'));
    assert.equal(match('SASL ((?i)LOGIN|PLAIN) failed', 'sasl login failed'), null);
  });

  it('scoped flags (?i:...) and (?s:...)', () => {
    assert.ok(match('a(?i:b)c', 'aBc'));
    assert.equal(match('a(?i:b)c', 'aBC'), null);
    assert.ok(match('a(?s:.)b', 'a\nb'));
    assert.equal(match('a.b', 'a\nb'), null);
  });

  it('a global flag after the start is an error, as in Python 3.11', () => {
    assert.throws(() => translatePythonRegex('a(?i)b'), RegexTranslationError);
  });

  it('. matches \\r (JavaScript would not) but not \\n', () => {
    assert.ok(match('a.b', 'a\rb'));
  });

  it('$ matches at the end and before a final newline; \\Z only at the very end', () => {
    assert.ok(match('foo$', 'foo\n'));
    assert.ok(match('foo$', 'foo'));
    assert.equal(match('foo$', 'foo\nbar'), null);
    assert.equal(match(String.raw`foo\Z`, 'foo\n'), null);
    assert.ok(match(String.raw`\Afoo\Z`, 'foo'));
  });

  it('MULTILINE ^ and $ work at every newline', () => {
    assert.ok(match('^b$', 'a\nb\nc\n', true));
    assert.equal(match('^b$', 'a\nb\nc\n', false), null);
  });

  it('\\d, \\w and \\b follow Unicode on non-ASCII text, like Python 3', () => {
    assert.ok(match(String.raw`^\d+$`, '١٢٣'));
    assert.ok(match(String.raw`^\w+$`, 'héllo'));
    assert.ok(match(String.raw`\bwörld\b`, 'hällo wörld'));
    assert.equal(match(String.raw`(?a)^\w+$`, 'héllo'), null);
  });

  it('\\s includes the ASCII separators Python counts as whitespace', () => {
    assert.ok(match(String.raw`a\sb`, 'a\x1cb'));
  });

  it('escaped punctuation and lone braces are literals', () => {
    assert.ok(match(String.raw`\"x\" \- \<y\> a{b} \#`, '"x" - <y> a{b} #'));
    assert.ok(match('a{,2}b', 'aab'));
    assert.ok(match(String.raw`[\-\]]+`, '-]'));
  });

  it('verbose mode drops whitespace and comments', () => {
    assert.ok(match('(?x) a b # comment\n c', 'abc'));
  });

  it('possessive quantifiers and atomic groups are clear errors', () => {
    assert.throws(() => translatePythonRegex('a++b'), /possessive/);
    assert.throws(() => translatePythonRegex('(?>ab)c'), /atomic/);
  });

  it('bad escapes and unbalanced groups are errors naming the position', () => {
    assert.throws(() => translatePythonRegex(String.raw`\q`), /bad escape/);
    assert.throws(() => translatePythonRegex('(ab'), /missing \)/);
    assert.throws(() => translatePythonRegex('ab)'), /unbalanced/);
  });

  it('extracts literals every match must contain', () => {
    const t = translatePythonRegex(String.raw`^\S+ - - .*HTTP/[0-9]+(.[0-9]+)?" 403`);
    assert.deepEqual(t.requiredLiterals, [' - - ', 'HTTP/', '" 403']);
    assert.deepEqual(translatePythonRegex('abc|def').requiredLiterals, []);
    assert.deepEqual(translatePythonRegex('(?i)abcdef').requiredLiterals, []);
    assert.deepEqual(translatePythonRegex('abcd?ef').requiredLiterals, ['abc']);
  });
});

describe('conditional groups', () => {
  it('expands an optional group into present/absent variants', () => {
    const variants = expandConditionals('(?P<q>")?x(?(q)"|!)');
    assert.deepEqual(variants, ['(?P<q>")x(?:")', 'x(?:!)']);
  });

  it("handles a group that is one branch of an alternation (fail2ban's sshd)", () => {
    const variants = expandConditionals(String.raw`for (?P<inv>invalid user )?(?P<user>(?P<cu>\S+)|(?(inv)X|[^:]+)) from(?(cu): |$)`);
    assert.equal(variants.length, 4);
    assert.ok(variants.every((v) => !v.includes('(?(')));
  });
});
