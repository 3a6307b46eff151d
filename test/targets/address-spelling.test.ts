import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalEntry, parsePfAddress, parsePfEntry } from '../../src/net/address.ts';

test('one canonical spelling of a pf entry: as pfctl -T show prints it', () => {
  const cases: Array<[string, string]> = [
    ['192.0.2.5/32', '192.0.2.5'],
    [' 192.0.2.5 ', '192.0.2.5'],
    ['198.51.100.77/24', '198.51.100.0/24'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1/128', '2001:db8::1'],
    ['2001:DB8::5/64', '2001:db8::/64'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::FFFF:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:201', '::ffff:192.0.2.1'],
    ['::ffff:c000:201/128', '::ffff:192.0.2.1'],
    ['::192.0.2.1', '::192.0.2.1'],
    ['::1', '::1'],
  ];
  for (const [input, spelled] of cases) assert.equal(parsePfEntry(input).text, spelled, input);
});

test('a ban of an IPv4-mapped address is the IPv4 attacker; as a table entry it stays IPv6', () => {
  assert.equal(parsePfAddress('::ffff:192.0.2.1').text, '192.0.2.1');
  assert.equal(parsePfAddress('::FFFF:C000:0201').text, '192.0.2.1');
  assert.equal(parsePfAddress('::ffff:192.0.2.0/120').text, '192.0.2.0/24');
  assert.equal(parsePfEntry('::ffff:192.0.2.1').family, 6);
  assert.equal(parsePfAddress('::192.0.2.1').text, '::192.0.2.1', 'IPv4-compatible is not IPv4-mapped');
});

test('a row that is no address keeps its text, trimmed', () => {
  assert.equal(canonicalEntry(' cafe '), 'cafe');
  assert.equal(canonicalEntry('2001:DB8::1/128'), '2001:db8::1');
});
