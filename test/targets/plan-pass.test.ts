import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ForeignPolicy } from '../../src/config/env.ts';
import type { ListedEntry } from '../../src/targets/edge-target.ts';
import { planPass, type PassPlan } from '../../src/targets/plan-pass.ts';

interface Row {
  name: string;
  desired: string[];
  listed: ListedEntry[];
  /** Addresses the ledger ever banned in this target. */
  known: string[];
  policy: ForeignPolicy;
  want: Partial<PassPlan>;
}

const plain = (...addresses: string[]): ListedEntry[] => addresses.map((address) => ({ address, owned: null }));

const rows: Row[] = [
  {
    name: 'empty both sides',
    desired: [],
    listed: [],
    known: [],
    policy: 'keep',
    want: { add: [], remove: [], foreign: [], deleteForeign: [], adopt: [], inAlias: 0, desired: 0 },
  },
  {
    name: 'a rebooted (emptied) list gets every ban back',
    desired: ['192.0.2.1', '192.0.2.2'],
    listed: [],
    known: ['192.0.2.1', '192.0.2.2'],
    policy: 'keep',
    want: { add: ['192.0.2.1', '192.0.2.2'], remove: [], foreign: [], desired: 2 },
  },
  {
    name: 'in sync: nothing to do',
    desired: ['192.0.2.1'],
    listed: plain('192.0.2.1'),
    known: ['192.0.2.1'],
    policy: 'exclusive',
    want: { add: [], remove: [], foreign: [], deleteForeign: [], inAlias: 1 },
  },
  {
    name: 'an ended ban the ledger remembers is removed',
    desired: [],
    listed: plain('192.0.2.9'),
    known: ['192.0.2.9'],
    policy: 'keep',
    want: { remove: ['192.0.2.9'], foreign: [] },
  },
  {
    name: 'keep: foreign entries are reported, never touched',
    desired: ['192.0.2.1'],
    listed: plain('203.0.113.7', '192.0.2.1'),
    known: ['192.0.2.1'],
    policy: 'keep',
    want: { add: [], remove: [], foreign: ['203.0.113.7'], deleteForeign: [], adopt: [] },
  },
  {
    name: 'adopt: foreign entries are offered for adoption',
    desired: [],
    listed: plain('203.0.113.7'),
    known: [],
    policy: 'adopt',
    want: { foreign: ['203.0.113.7'], adopt: ['203.0.113.7'], deleteForeign: [] },
  },
  {
    name: 'exclusive: foreign entries are deleted',
    desired: [],
    listed: plain('203.0.113.7', '2001:db8::/64'),
    known: [],
    policy: 'exclusive',
    want: { foreign: ['203.0.113.7', '2001:db8::/64'], deleteForeign: ['203.0.113.7', '2001:db8::/64'], adopt: [], remove: [] },
  },
  {
    name: "a backend-tagged entry is edgeban's though the ledger forgot it",
    desired: [],
    listed: [{ address: '198.51.100.4', owned: true }],
    known: [],
    policy: 'keep',
    want: { remove: ['198.51.100.4'], foreign: [] },
  },
  {
    name: "an untagged entry the ledger banned (adopted, or from before tags) is edgeban's",
    desired: [],
    listed: [{ address: '198.51.100.5', owned: false }],
    known: ['198.51.100.5'],
    policy: 'keep',
    want: { remove: ['198.51.100.5'], foreign: [] },
  },
  {
    name: 'an untagged entry the ledger never banned is foreign',
    desired: [],
    listed: [{ address: '198.51.100.10', owned: false }],
    known: [],
    policy: 'keep',
    want: { remove: [], foreign: ['198.51.100.10'] },
  },
  {
    name: 'a wanted entry is kept whoever owns it',
    desired: ['198.51.100.6'],
    listed: [{ address: '198.51.100.6', owned: false }],
    known: [],
    policy: 'exclusive',
    want: { add: [], remove: [], foreign: [], deleteForeign: [] },
  },
  {
    name: 'a ::ffff:a.b.c.d entry is its own (foreign) entry, not the IPv4 ban',
    desired: ['192.0.2.1'],
    listed: plain('::ffff:192.0.2.1'),
    known: ['192.0.2.1'],
    policy: 'exclusive',
    want: { add: ['192.0.2.1'], foreign: ['::ffff:192.0.2.1'], deleteForeign: ['::ffff:192.0.2.1'] },
  },
  {
    name: 'a row listed twice counts once',
    desired: [],
    listed: plain('192.0.2.3', '192.0.2.3'),
    known: ['192.0.2.3'],
    policy: 'keep',
    want: { remove: ['192.0.2.3'], inAlias: 1 },
  },
];

for (const row of rows) {
  test(`planPass: ${row.name}`, () => {
    const known = new Set(row.known);
    const plan = planPass(row.desired, row.listed, (a) => known.has(a), row.policy);
    for (const [key, value] of Object.entries(row.want)) assert.deepEqual(plan[key as keyof PassPlan], value, key);
  });
}

test('planPass: never proposes to remove a wanted address, under every policy and ownership', () => {
  for (const policy of ['keep', 'adopt', 'exclusive'] as const) {
    for (const owned of [true, false, null]) {
      const plan = planPass(['192.0.2.1'], [{ address: '192.0.2.1', owned }], () => false, policy);
      assert.deepEqual([...plan.remove, ...plan.deleteForeign, ...plan.add], [], `${policy}/${String(owned)}`);
    }
  }
});
