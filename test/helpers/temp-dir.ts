import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

/**
 * A fresh directory under the system temp dir, removed when the test ends. node:test runs after
 * hooks in the order they were registered, so this removal comes before the stop of anything
 * started later in the directory: it retries while such a writer is still saving files there
 * (ENOTEMPTY), rather than failing the test's clean-up and skipping that stop.
 */
export async function tempDir(t: TestContext, prefix = 'edgeban-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }));
  return dir;
}
