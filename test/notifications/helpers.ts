import type { TestContext } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import type { NotifyPlan, NtfyChannelConfig, WebhookChannelConfig } from '../../src/notifications/channel-config.ts';
import { Notifier, type NotifierOptions } from '../../src/notifications/notifier.ts';
import { SecretScrubber } from '../../src/logging/secret-scrubber.ts';
import type { ManualClock } from '../../src/util/clock.ts';
import { CapturedLog } from '../helpers/enforcement-harness.ts';
import { tempDir } from '../helpers/temp-dir.ts';

export const NTFY_TOKEN = 'tk_notifyTestToken0123456789';
export const HOOK_TOKEN = 'hookTestToken-9876543210';
export const TARGET = 'fail2ban_blocklist';

/** A real ledger (FileLedgerStore in a temp dir) on the given clock. */
export async function openLedger(t: TestContext, clock: ManualClock, log: CapturedLog): Promise<Ledger> {
  const store = await FileLedgerStore.open({ dir: await tempDir(t), logger: log.logger });
  const ledger = await Ledger.open({ store, clock, logger: log.logger });
  t.after(() => ledger.close());
  return ledger;
}

export function ntfyChannel(url: string, over: Partial<NtfyChannelConfig> = {}): NtfyChannelConfig {
  const channel = {
    kind: 'ntfy' as const,
    url,
    topic: 'bans',
    token: NTFY_TOKEN,
    priority: 5 as const,
    source: { file: 'jail.local', line: 3, key: 'action' },
    ...over,
  };
  return { ...channel, id: JSON.stringify(['ntfy', channel.url, channel.topic, channel.token, channel.priority]), label: `ntfy ${url} (jail.local:3)` };
}

export function webhookChannel(url: string, over: Partial<WebhookChannelConfig> = {}): WebhookChannelConfig {
  const channel = {
    kind: 'webhook' as const,
    url,
    token: HOOK_TOKEN,
    header: 'authorization',
    source: { file: 'jail.local', line: 5, key: 'action' },
    ...over,
  };
  return { ...channel, id: JSON.stringify(['webhook', channel.url, channel.token, channel.header]), label: `webhook ${url} (jail.local:5)` };
}

export const FAST_RETRY = { retries: 3, minDelayMs: 1_000, maxDelayMs: 8_000, timeoutMs: 10_000 };

/** A notifier on a ManualClock, stopped when the test ends. */
export function startNotifier(
  t: TestContext,
  options: Omit<NotifierOptions, 'env' | 'logger' | 'targets' | 'sources'> &
    Partial<Pick<NotifierOptions, 'env' | 'targets' | 'sources'>> & { log: CapturedLog; plan: NotifyPlan },
): Notifier {
  const notifier = Notifier.start({
    targets: () => [],
    sources: () => [],
    env: { notifyIntervalSec: 60, watchdogSilenceSec: 0, enforcementAlertAfterSec: 300 },
    logger: options.log.logger,
    policy: FAST_RETRY,
    scrubber: new SecretScrubber([NTFY_TOKEN, HOOK_TOKEN]),
    random: () => 0.5,
    ...options,
  });
  t.after(() => notifier.stop());
  return notifier;
}

/** Advances the manual clock in steps until `done()` (bounded in steps and real time). */
export async function advanceUntil(clock: ManualClock, stepMs: number, done: () => boolean, what: string, maxSteps = 200): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < maxSteps; i++) {
    if (done()) return;
    if (Date.now() > deadline) break;
    await clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (!done()) throw new Error(`gave up waiting for ${what}`);
}

/** notifier.idle(), bounded in real time: a delivery stuck waiting on the manual clock fails the test instead of hanging it. */
export async function idle(notifier: { idle(): Promise<void> }, limitMs = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('notifier still busy (a delivery waiting to retry?)')), limitMs);
  });
  try {
    await Promise.race([notifier.idle(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

export { CapturedLog };
