import assert from 'node:assert/strict';
import { appendFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { LedgerMutation } from '../../src/ledger/ban-claim.ts';
import { LedgerSpool, SPOOL_FILE } from '../../src/ledger/ledger-spool.ts';
import { silentLogger } from '../../src/logging/logger.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const T = 'fail2ban_blocklist';
const ban = (address: string): LedgerMutation => ({
  op: 'ban',
  claim: { target: T, address, jail: 'sshd', origin: 'jail', bannedAt: 1, expiresAt: null, endedAt: null, banCount: 1 },
});

test('the ledger spool keeps batches in order across a restart, skips a torn last write (a crash) and writes on after it; replayed batches leave it', async (t) => {
  const dir = path.join(await tempDir(t), 'ledger-spool');
  const spool = await LedgerSpool.open(dir, silentLogger());
  await spool.add([ban('192.0.2.1')]);
  await spool.add([ban('192.0.2.2'), { op: 'end', target: T, address: '192.0.2.1', jail: null, at: 2 }]);
  await spool.close();
  // A crash in the middle of a third write.
  await appendFile(path.join(dir, SPOOL_FILE), '1a2b3c4d {"m":[{"op":"ban","cl');

  const reopened = await LedgerSpool.open(dir, silentLogger());
  assert.deepEqual(
    reopened.batches().map((b) => b.length),
    [1, 2],
  );
  await reopened.add([ban('192.0.2.3')]);
  await reopened.close();
  const again = await LedgerSpool.open(dir, silentLogger());
  assert.deepEqual(
    again.batches().map((b) => (b[0] as { claim: { address: string } }).claim?.address),
    ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
  );

  await again.dropFirst(2);
  await again.add([ban('192.0.2.4')]);
  await again.close();
  const last = await LedgerSpool.open(dir, silentLogger());
  assert.deepEqual(
    last.batches().map((b) => (b[0] as { claim: { address: string } }).claim.address),
    ['192.0.2.3', '192.0.2.4'],
  );
  await last.dropFirst(2);
  await last.close();
  assert.equal(await readFile(path.join(dir, SPOOL_FILE), 'utf8'), '');
});
