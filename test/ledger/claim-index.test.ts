import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BanClaim } from '../../src/ledger/ban-claim.ts';
import { ClaimIndex } from '../../src/ledger/claim-index.ts';

const claim = (jail: string, bannedAt: number, address = '192.0.2.7'): BanClaim => ({
  target: 'blocklist',
  address,
  jail,
  origin: 'jail',
  bannedAt,
  expiresAt: bannedAt + 1000,
  endedAt: null,
  banCount: 1,
});

test("an address keeps every jail's claim from its first to its last, through repeat bans, ends and purges", () => {
  const index = new ClaimIndex();
  index.apply({ op: 'ban', claim: claim('sshd', 100) });
  index.apply({ op: 'ban', claim: claim('sshd', 200) });
  assert.equal(index.size, 1);
  assert.deepEqual(
    index.claimsOf('blocklist', '192.0.2.7').map((c) => [c.jail, c.bannedAt]),
    [['sshd', 200]],
  );
  assert.equal(index.get('blocklist', '192.0.2.7', 'nginx'), undefined);

  index.apply({ op: 'ban', claim: claim('nginx', 300) });
  assert.equal(index.size, 2);
  assert.deepEqual(
    index.claimsOf('blocklist', '192.0.2.7').map((c) => [c.jail, c.bannedAt]),
    [
      ['sshd', 200],
      ['nginx', 300],
    ],
  );

  assert.equal(index.apply({ op: 'end', target: 'blocklist', address: '192.0.2.7', jail: 'sshd', at: 350 }), true);
  assert.equal(index.get('blocklist', '192.0.2.7', 'sshd')?.endedAt, 350);
  assert.equal(index.isActive('blocklist', '192.0.2.7', 400), true);
  assert.equal(index.apply({ op: 'end', target: 'blocklist', address: '192.0.2.7', jail: null, at: 450 }), true);
  assert.equal(index.get('blocklist', '192.0.2.7', 'sshd')?.endedAt, 350, 'an ended claim keeps its end');
  assert.equal(index.isActive('blocklist', '192.0.2.7', 460), false);
  assert.equal(index.isKnown('blocklist', '192.0.2.7'), true);

  assert.equal(index.apply({ op: 'purge', target: 'blocklist', address: '192.0.2.7', jail: 'sshd' }), true);
  assert.equal(index.apply({ op: 'purge', target: 'blocklist', address: '192.0.2.7', jail: 'sshd' }), false);
  assert.equal(index.apply({ op: 'purge', target: 'blocklist', address: '192.0.2.7', jail: 'nginx' }), true);
  assert.equal(index.size, 0);
  assert.equal(index.isKnown('blocklist', '192.0.2.7'), false);
  assert.deepEqual([...index.addresses('blocklist')], []);
});

test('a lone claim ends, is purged and is listed like one among several', () => {
  const index = new ClaimIndex();
  index.apply({ op: 'ban', claim: claim('sshd', 100, '198.51.100.1') });
  index.apply({ op: 'ban', claim: claim('sshd', 100, '198.51.100.2') });
  assert.equal(index.apply({ op: 'end', target: 'blocklist', address: '198.51.100.1', jail: 'nginx', at: 150 }), false);
  assert.equal(index.apply({ op: 'end', target: 'blocklist', address: '198.51.100.1', jail: null, at: 150 }), true);
  assert.equal(index.apply({ op: 'end', target: 'blocklist', address: '198.51.100.1', jail: null, at: 160 }), false);
  assert.equal(index.isActive('blocklist', '198.51.100.1', 170), false);
  assert.equal(index.isActive('blocklist', '198.51.100.2', 170), true);
  assert.equal(index.apply({ op: 'purge', target: 'blocklist', address: '198.51.100.1', jail: 'nginx' }), false);
  assert.deepEqual(
    [...index.all()].map((c) => [c.address, c.endedAt]),
    [
      ['198.51.100.1', 150],
      ['198.51.100.2', null],
    ],
  );
  assert.deepEqual(index.targets(), ['blocklist']);
});
