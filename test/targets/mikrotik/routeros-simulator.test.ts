import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressListStore, printAddress, RouterFailure } from '../../../src/simulator/mikrotik/address-list-store.ts';
import { formatRouterTime, parseRouterTime } from '../../../src/simulator/mikrotik/duration.ts';
import { connectionHosts, endpointWithin } from '../../../src/targets/mikrotik/connection-match.ts';

test('the simulator stores addresses as RouterOS prints them', () => {
  assert.equal(printAddress('ip', '192.0.2.1/32'), '192.0.2.1');
  assert.equal(printAddress('ip', '198.51.100.7/24'), '198.51.100.0/24');
  assert.equal(printAddress('ip', '192.168.0.0-192.168.1.255'), '192.168.0.0/23');
  assert.equal(printAddress('ip', '192.0.2.1-192.0.2.5'), '192.0.2.1-192.0.2.5');
  assert.equal(printAddress('ip', 'example.org'), 'example.org');
  assert.equal(printAddress('ipv6', '2001:DB8:0::1'), '2001:db8::1/128');
  assert.equal(printAddress('ipv6', '2001:db8:1::5/64'), '2001:db8:1::/64');
  for (const [menu, bad] of [
    ['ip', '2001:db8::1'],
    ['ipv6', '192.0.2.1'],
    ['ip', '192.0.2.1/33'],
    ['ipv6', 'fe80::1%eth0'],
  ] as const) {
    assert.throws(
      () => printAddress(menu, bad),
      (e: Error) => e instanceof RouterFailure && /invalid value for argument address/.test(e.message),
    );
  }
});

test('RouterOS time values: parsed in its notations, printed as 1w2d3h4m5s, 35w3d13h13m56s at most', () => {
  assert.equal(parseRouterTime('300'), 300);
  assert.equal(parseRouterTime('1d02:03:04'), 93_784);
  assert.equal(parseRouterTime('1w2d3h4m5s'), 788_645);
  assert.equal(parseRouterTime('00:05:00'), 300);
  assert.equal(parseRouterTime('soon'), null);
  assert.equal(formatRouterTime(788_645), '1w2d3h4m5s');
  assert.equal(formatRouterTime(0), '0s');
  let now = 0;
  const store = new AddressListStore(() => now);
  assert.throws(() => store.add('ip', { list: 'l', address: '192.0.2.1', timeout: '35w3d13h13m57s' }), /out of range/);
  const entry = store.add('ip', { list: 'l', address: '192.0.2.1', timeout: '35w3d13h13m56s' });
  assert.equal(store.print(entry).timeout, '35w3d13h13m56s');
  now = 21_474_836_000;
  assert.deepEqual(store.all('ip'), []);
});

test('ids count per menu in hex; duplicates are per list and address', () => {
  const store = new AddressListStore(() => 0);
  const ids = Array.from({ length: 11 }, (_, i) => store.add('ip', { list: 'l', address: `192.0.2.${i}` }).id);
  assert.equal(ids[10], '*B');
  assert.equal(store.add('ipv6', { list: 'l', address: '2001:db8::1' }).id, '*1');
  assert.throws(() => store.add('ip', { list: 'l', address: '192.0.2.1/32' }), /already have such entry/);
  assert.equal(store.add('ip', { list: 'other', address: '192.0.2.1' }).id, '*C');
});

test('connection endpoints are read in every spelling RouterOS may print', () => {
  assert.deepEqual(connectionHosts('198.51.100.7:40000'), ['198.51.100.7']);
  assert.deepEqual(connectionHosts('198.51.100.7'), ['198.51.100.7']);
  assert.deepEqual(connectionHosts('[2001:db8::7]:40000'), ['2001:db8::7']);
  assert.deepEqual(connectionHosts('2001:db8::7'), ['2001:db8::7']);
  assert.deepEqual(connectionHosts('2001:db8::7:40000'), ['2001:db8::7'], 'five digits are no IPv6 group: only the port reading is left');
  assert.deepEqual(connectionHosts('2001:db8::7:443'), ['2001:db8::7:443', '2001:db8::7']);
  assert.deepEqual(connectionHosts(''), []);
  assert.equal(endpointWithin('198.51.100.70:40000', '198.51.100.7'), false);
  assert.equal(endpointWithin('198.51.100.7:40000', '198.51.100.0/24'), true);
  assert.equal(endpointWithin('2001:db8:1::5', '2001:db8:1::/64'), true);
  assert.equal(endpointWithin('2001:db8:2::5', '2001:db8:1::/64'), false);
  assert.equal(endpointWithin('198.51.100.7:1', '2001:db8::/32'), false);
});
