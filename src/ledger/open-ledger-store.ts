import path from 'node:path';
import type { EdgebanEnv } from '../config/env.ts';
import type { Logger } from '../logging/logger.ts';
import { FileLedgerStore } from './file-ledger-store.ts';
import type { LedgerStore } from './ledger-store.ts';

/** Where the file ledger lives in the data dir. */
export function ledgerDir(env: Pick<EdgebanEnv, 'dataDir'>): string {
  return path.join(env.dataDir, 'ledger');
}

export interface OpenLedgerStoreOptions {
  /** File store only: open without the writer lock and never write (a command beside a running daemon). */
  readOnly?: boolean;
  /**
   * Redis store, the daemon: changes made while Redis is unreachable are spooled in the data dir
   * and replayed. A one-off command runs without one (it would exit before replaying), failing at once instead.
   */
  spool?: boolean;
}

/**
 * The ledger store EDGEBAN_LEDGER selects: the crash-safe file in the data dir (one writer, held
 * by a lock), or Redis shared by every replica (several writers by design, so no lock).
 */
export async function openLedgerStore(env: Pick<EdgebanEnv, 'dataDir' | 'ledger'>, logger: Logger, options: OpenLedgerStoreOptions = {}): Promise<LedgerStore> {
  const settings = env.ledger;
  if (settings.kind === 'redis') {
    // Loaded only for Redis: ioredis costs idle memory in every file-ledger daemon.
    const { RedisLedgerStore } = await import('./redis-ledger-store.ts');
    return RedisLedgerStore.open({
      url: settings.url,
      password: settings.password,
      prefix: settings.prefix,
      logger,
      ...(options.spool ? { spoolDir: path.join(env.dataDir, 'ledger-spool') } : {}),
    });
  }
  return FileLedgerStore.open({ dir: ledgerDir(env), logger, ...(options.readOnly ? { readOnly: true } : {}) });
}
