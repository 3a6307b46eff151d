import { parseArgs } from 'node:util';
import { loadEnv } from '../config/env.ts';
import { Daemon } from '../daemon/daemon.ts';
import { createLogger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { skewedClock, systemClock } from '../util/clock.ts';
import { runsInContainer } from '../util/container-detection.ts';
import { UserFacingError } from '../util/errors.ts';

/** `edgeban run [--reset-state]`: the daemon, until SIGTERM/SIGINT; SIGHUP re-reads the configuration. */
export async function runRunCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { 'reset-state': { type: 'boolean', default: false } }, strict: true }));
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\nusage: edgeban run [--reset-state]`);
  }
  const env = loadEnv();
  if (env.dataDirDefaulted && !runsInContainer()) {
    // /data is the image's volume; on a host it would be a new directory at the root (or some other program's).
    throw new UserFacingError(
      `EDGEBAN_DATA_DIR is not set and this is not a container: edgeban does not create ${env.dataDir} on a host. Set EDGEBAN_DATA_DIR to the directory for its ledger, log offsets and control socket (e.g. EDGEBAN_DATA_DIR=/var/lib/edgeban), in the environment or the .env file`,
    );
  }
  // A token with nowhere to serve would leave a firewall pulling nothing while edgeban looks configured.
  if (env.feedToken !== null && env.metricsListen === null) {
    throw new UserFacingError(
      'invalid environment:\n  EDGEBAN_FEED_TOKEN: set, but EDGEBAN_METRICS_LISTEN is not; the feed /blocklist/TARGET.txt is served on that listener',
    );
  }
  // The daemon adds the secrets it learns later (jail actions, a reload's new tokens).
  const scrubber = new SecretScrubber(env.secrets);
  const logger = createLogger({ level: env.logLevel, scrubber, format: env.logFormat });
  // Handlers first: a SIGTERM during start-up (first API calls, a slow ledger) must still stop cleanly, not kill.
  let daemon: Daemon | null = null;
  let stopSignal: string | null = null;
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  const shutdown = (signal: string) => {
    if (stopSignal !== null) return;
    stopSignal = signal;
    if (daemon === null) return; // start-up finishes, then stops
    logger.info({ signal }, 'stopping: offsets and ledger are saved; nothing is unbanned');
    // A stuck stop must not hold the container past its grace period.
    const deadline = setTimeout(() => resolveExit(0), 4500);
    void daemon.stop().finally(() => {
      clearTimeout(deadline);
      resolveExit(0);
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    if (daemon === null) return;
    logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    void daemon.reload();
  });
  // Tests only (as libfaketime would, where it is not installed): this host's clock off by N ms.
  const skewMs = Number(process.env.EDGEBAN_TEST_CLOCK_OFFSET_MS ?? 0);
  const clock = Number.isFinite(skewMs) && skewMs !== 0 ? skewedClock(systemClock, skewMs) : systemClock;
  daemon = await Daemon.start({ env, clock, logger, scrubber, resetState: values['reset-state'], readEnv: () => loadEnv() });
  if (stopSignal !== null) {
    const signal: string = stopSignal;
    stopSignal = null;
    shutdown(signal);
  }
  return exited;
}
