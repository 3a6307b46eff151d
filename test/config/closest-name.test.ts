import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest } from '../../src/config/fail2ban/action-mapping.ts';

test('a typo gets the name it is a typo of; an unrelated name gets no suggestion', () => {
  const keys = ['enabled', 'maxretry', 'findtime', 'bantime', 'banaction'];
  assert.equal(closest('enabeld', keys), 'enabled');
  assert.equal(closest('maxretyr', keys), 'maxretry');
  assert.equal(closest('BANTIME', keys), 'bantime');
  assert.equal(closest('opnsens', ['opnsense', 'ntfy', 'webhook']), 'opnsense');
  assert.equal(closest('logpath_web', keys), null);
  assert.equal(closest('x', keys), null);
  assert.equal(closest('anything', []), null);
});
