import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { FirewallEndpoint } from '../../src/config/env.ts';
import { FileLedgerStore } from '../../src/ledger/file-ledger-store.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { createLogger, type Logger } from '../../src/logging/logger.ts';
import { SecretScrubber } from '../../src/logging/secret-scrubber.ts';
import { OpnsenseSimulator, LEAST_PRIVILEGES, type SimulatorOptions } from '../../src/simulator/opnsense-simulator.ts';
import { TargetReconciler, type TargetReconcilerOptions } from '../../src/targets/target-reconciler.ts';
import { OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { OpnsenseTarget } from '../../src/targets/opnsense/target.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { toPfSpelling } from '../../src/net/address.ts';
import { tempDir } from './temp-dir.ts';

export const KEY = 'edgebanTestKey0123456789abcdefghij';
export const SECRET = 'edgebanTestSecret+/0123456789abcdefghij=';
export const ALIAS = 'fail2ban_blocklist';

/** Log lines captured from a real pino logger, to check what reaches the logs (never the only assertion). */
export class CapturedLog {
  readonly lines: string[] = [];
  readonly logger: Logger;
  constructor(level = 'debug') {
    this.logger = createLogger({
      level,
      destination: {
        write: (line: string) => {
          this.lines.push(line);
        },
      },
      scrubber: new SecretScrubber([SECRET]),
    });
  }
  entries(): Array<Record<string, unknown>> {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  atLevel(level: number): Array<Record<string, unknown>> {
    return this.entries().filter((e) => e.level === level);
  }
}

export function endpointFor(sim: OpnsenseSimulator, overrides: Partial<FirewallEndpoint> = {}): FirewallEndpoint {
  return { url: sim.url, key: KEY, secret: SECRET, ca: null, tlsInsecure: false, timeoutMs: 2000, ...overrides };
}

export async function startSimulator(t: TestContext, options: SimulatorOptions = {}): Promise<OpnsenseSimulator> {
  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }],
    authFailDelayMs: 0,
    seed: 7,
    ...options,
  });
  t.after(async () => {
    // The one thing edgeban must never do to its alias.
    assert.equal(sim.calls().filter((c) => c.path.includes('/flush/')).length, 0, 'edgeban flushed an alias');
    await sim.stop();
  });
  return sim;
}

export interface Harness {
  sim: OpnsenseSimulator;
  client: OpnsenseClient;
  ledger: Ledger;
  reconciler: TargetReconciler;
  clock: ManualClock;
  log: CapturedLog;
  dataDir: string;
  /** Closes reconciler, client and ledger, and opens new ones on the same data dir (an edgeban restart). */
  restart(): Promise<void>;
}

export async function startHarness(
  t: TestContext,
  options: {
    simulator?: SimulatorOptions;
    reconciler?: Partial<TargetReconcilerOptions>;
    endpoint?: Partial<FirewallEndpoint>;
    clock?: ManualClock;
    sim?: OpnsenseSimulator;
  } = {},
): Promise<Harness> {
  const sim = options.sim ?? (await startSimulator(t, options.simulator));
  const clock = options.clock ?? new ManualClock();
  const log = new CapturedLog();
  const dataDir = await tempDir(t);
  const build = async () => {
    const client = new OpnsenseClient({ endpoint: endpointFor(sim, options.endpoint), logger: log.logger });
    const store = await FileLedgerStore.open({ dir: dataDir, logger: log.logger });
    const ledger = await Ledger.open({ store, clock, logger: log.logger });
    const reconciler = new TargetReconciler({
      ledgerTarget: ALIAS,
      list: ALIAS,
      target: new OpnsenseTarget(client, ALIAS),
      ledger,
      clock,
      logger: log.logger,
      intervalMs: 60_000,
      concurrency: 16,
      foreignPolicy: 'keep',
      adoptBantimeMs: 600_000,
      adoptionRefusal: () => null,
      killConnections: true,
      retry: { retries: 3, minTimeoutMs: 5, maxTimeoutMs: 40 },
      ...options.reconciler,
    });
    return { client, ledger, reconciler };
  };
  const harness = { sim, clock, log, dataDir, ...(await build()) } as Harness;
  const close = async () => {
    await harness.reconciler.stop();
    await harness.client.close();
    await harness.ledger.close();
  };
  harness.restart = async () => {
    await close();
    Object.assign(harness, await build());
  };
  t.after(close);
  return harness;
}

/** Documentation-range IPv4 addresses, `count` of them, deterministic. */
export function attackers(count: number, offset = 0): string[] {
  const ranges = ['192.0.2', '198.51.100', '203.0.113'];
  const out: string[] = [];
  for (let i = offset; i < offset + count; i++) {
    // Beyond the 3×256 documentation hosts, networks inside 2001:db8::/32 keep the data in documentation space.
    if (i < 768) out.push(`${ranges[Math.floor(i / 256)]}.${i % 256}`);
    else out.push(toPfSpelling(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
  }
  return out;
}
