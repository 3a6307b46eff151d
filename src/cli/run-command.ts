import { parseArgs } from 'node:util';
import { loadEnv } from '../config/env.ts';
import { Daemon } from '../daemon/daemon.ts';
import { createLogger } from '../logging/logger.ts';
import { systemClock } from '../util/clock.ts';
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
  const logger = createLogger({ level: env.logLevel, secrets: env.secrets });
  const daemon = await Daemon.start({ env, clock: systemClock, logger, resetState: values['reset-state'] });
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'stopping: offsets and ledger are saved; nothing is unbanned');
      // A stuck stop must not hold the container past its grace period.
      const deadline = setTimeout(() => resolve(0), 4500);
      void daemon.stop().finally(() => {
        clearTimeout(deadline);
        resolve(0);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGHUP', () => {
      logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
      void daemon.reload();
    });
  });
}
