import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BanGuard, manualBanGuard, REFUSAL_REASONS, type RefusalReason } from '../../src/jails/ban-guard.ts';
import { cidrList, coveringNetwork } from '../../src/jails/cidr.ts';
import {
  NO_NETWORK_FACTS,
  discoverNetworkFacts,
  interfaceAddresses,
  parseIpv4Routes,
  parseIpv6Routes,
  resolveFirewallAddresses,
  type NetworkFacts,
} from '../../src/jails/network-facts.ts';
import { ip } from './helpers.ts';

const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t0000A8C0\t0101A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
`;
const IPV6_ROUTE = `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
`;
const INTERFACES = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: '172.17.0.5', netmask: '255.255.0.0', family: 'IPv4', mac: '02:42:ac:11:00:05', internal: false, cidr: '172.17.0.5/16' },
    {
      address: 'fe80::42:acff:fe11:5',
      netmask: 'ffff:ffff:ffff:ffff::',
      family: 'IPv6',
      mac: '02:42:ac:11:00:05',
      internal: false,
      cidr: 'fe80::42:acff:fe11:5/64',
      scopeid: 2,
    },
    {
      address: '2001:db8:aa::5',
      netmask: 'ffff:ffff:ffff:ffff::',
      family: 'IPv6',
      mac: '02:42:ac:11:00:05',
      internal: false,
      cidr: '2001:db8:aa::5/64',
      scopeid: 0,
    },
  ],
} as const satisfies NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;

test('gateways from /proc/net/route and /proc/net/ipv6_route, default route first', () => {
  assert.deepEqual(parseIpv4Routes(ROUTE), ['172.17.0.1', '192.168.1.1']);
  assert.deepEqual(parseIpv6Routes(IPV6_ROUTE), ['fd00::1']);
  assert.deepEqual(parseIpv4Routes(''), []);
});

test('discovery combines interfaces and routes (fixtures in, no /proc read)', async () => {
  const facts = await discoverNetworkFacts({ interfaces: INTERFACES, ipv4Routes: ROUTE, ipv6Routes: IPV6_ROUTE, firewallAddresses: ['203.0.113.1'] });
  assert.deepEqual(facts, {
    selfAddresses: ['127.0.0.1', '172.17.0.5', 'fe80::42:acff:fe11:5', '2001:db8:aa::5'],
    gateways: ['172.17.0.1', '192.168.1.1', 'fd00::1'],
    firewallAddresses: ['203.0.113.1'],
  });
  assert.deepEqual(interfaceAddresses({ eth0: [{ ...INTERFACES.eth0[1], address: 'fe80::1%eth0' }] }), ['fe80::1']);
});

test('firewall addresses from URLs: literals kept, names resolved through the given lookup, failures reported', async () => {
  const lookup = async (host: string) => {
    if (host === 'fw.example.net') return ['198.51.100.1', '2001:db8::fe'];
    throw new Error('ENOTFOUND');
  };
  const result = await resolveFirewallAddresses(
    ['https://203.0.113.1', 'https://[2001:db8::1]:8443/api', 'https://fw.example.net', 'https://missing.example.net'],
    lookup,
  );
  assert.deepEqual(result, { addresses: ['203.0.113.1', '2001:db8::1', '198.51.100.1', '2001:db8::fe'], unresolved: ['missing.example.net'] });
});

const FACTS: NetworkFacts = {
  selfAddresses: ['172.17.0.5', '2001:db8:aa::5'],
  gateways: ['172.17.0.1', '203.0.113.254'],
  firewallAddresses: ['198.51.100.1'],
};

function reasonOf(guard: BanGuard, host: string, prefix?: number): RefusalReason | 'ok' {
  const h = ip(host);
  const verdict = guard.check(h, prefix === undefined ? h : coveringNetwork(h, prefix));
  return verdict.ok ? 'ok' : verdict.reason;
}

test('every refusal reason', () => {
  const guard = new BanGuard({ facts: FACTS, ignoreip: cidrList(['192.0.2.128/25', '2001:db8:ee::/48']), banprivate: false, ipv6prefix: 128 });
  const cases: [string, RefusalReason | 'ok'][] = [
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['::1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['198.51.100.1', 'firewall'],
    ['172.17.0.5', 'self'],
    ['2001:db8:aa::5', 'self'],
    ['172.17.0.1', 'gateway'],
    ['203.0.113.254', 'gateway'],
    ['192.0.2.200', 'ignoreip'],
    ['2001:db8:ee:1::9', 'ignoreip'],
    ['10.1.2.3', 'private'],
    ['172.31.255.1', 'private'],
    ['192.168.0.10', 'private'],
    ['fd12:3456::1', 'private'],
    ['fc00::1', 'private'],
    ['198.51.100.0/24', 'too-wide'],
  ];
  for (const [host, reason] of cases) assert.equal(reasonOf(guard, host), reason, host);
  const covered = new Set(cases.map(([, r]) => r));
  for (const reason of REFUSAL_REASONS) if (reason !== 'invalid') assert.ok(covered.has(reason), `reason ${reason} tested`);
});

test('documentation ranges, shared address space and public neighbours of private ranges are banned', () => {
  const guard = new BanGuard({ facts: FACTS, ignoreip: [], banprivate: false, ipv6prefix: 128 });
  for (const host of [
    '192.0.2.7',
    '198.51.100.9',
    '203.0.113.50',
    '2001:db8::7',
    '100.64.0.1',
    '100.127.255.254',
    '172.32.0.1',
    '172.15.255.255',
    '11.0.0.1',
    'fe00::1',
    '2001:db8:aa::6',
  ]) {
    assert.equal(reasonOf(guard, host), 'ok', host);
  }
});

test('banprivate sends private addresses to the edge, but never gateway or self', () => {
  const guard = new BanGuard({ facts: FACTS, ignoreip: [], banprivate: true, ipv6prefix: 128 });
  assert.equal(reasonOf(guard, '10.1.2.3'), 'ok');
  assert.equal(reasonOf(guard, '172.17.0.1'), 'gateway');
  assert.equal(reasonOf(guard, '172.17.0.5'), 'self');
});

test('a prefix ban is refused when the network would cover a protected address or ignoreip range', () => {
  const guard = new BanGuard({ facts: FACTS, ignoreip: cidrList(['2001:db8:bb::7']), banprivate: false, ipv6prefix: 64 });
  assert.equal(reasonOf(guard, '2001:db8:aa::99'), 'ok', 'the host alone is fine');
  assert.equal(reasonOf(guard, '2001:db8:aa::99', 64), 'self', 'its /64 holds this container');
  assert.equal(reasonOf(guard, '2001:db8:bb::99', 64), 'ignoreip', 'its /64 holds an ignored address');
  assert.equal(reasonOf(guard, '2001:db8:cc::99', 64), 'ok');
});

test('no ban is wider than the jail allows: /32 for IPv4, ipv6prefix for IPv6; a network touching a special range is refused', () => {
  const hosts = manualBanGuard(NO_NETWORK_FACTS, null);
  const check = (guard: BanGuard, text: string) => {
    const verdict = guard.check(ip(text));
    return verdict.ok ? 'ok' : verdict.reason;
  };
  for (const wide of ['0.0.0.0/0', '32.0.0.0/3', '198.51.100.0/31', '::/0', '2000::/3', '2001:db8::/64', '2001:db8::/127']) {
    assert.equal(check(hosts, wide), 'too-wide', wide);
  }
  assert.equal(check(hosts, '198.51.100.7'), 'ok');
  assert.equal(check(hosts, '2001:db8::7'), 'ok');
  const by64 = manualBanGuard(NO_NETWORK_FACTS, { banprivate: false, ipv6prefix: 64 });
  assert.equal(check(by64, '2001:db8::/64'), 'ok', 'a /64 jail may ban a /64');
  assert.equal(check(by64, '2001:db8::/63'), 'too-wide');
  assert.equal(check(by64, '2000::/3'), 'too-wide');
  assert.equal(check(by64, 'ff02::/64'), 'multicast', 'a network inside a special range');
  assert.equal(check(by64, 'fe80::/64'), 'link-local');
  assert.equal(check(by64, '198.51.100.0/24'), 'too-wide', 'IPv4 bans are single hosts');
  const banprivate = manualBanGuard(FACTS, { banprivate: true, ipv6prefix: 128 });
  assert.equal(check(banprivate, '10.1.2.3'), 'ok');
  assert.equal(check(banprivate, '172.17.0.1'), 'gateway');
  assert.equal(check(manualBanGuard(FACTS, null), '10.1.2.3'), 'private');
});
