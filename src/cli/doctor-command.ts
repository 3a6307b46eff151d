import { exitCodeFor, formatLine, worstStatus } from '../doctor/check-result.ts';
import { runDoctor } from '../doctor/run-doctor.ts';
import { createCommandLogger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { systemClock } from '../util/clock.ts';
import { UserFacingError } from '../util/errors.ts';
import { parseCommandFlags } from './parse-command-flags.ts';

const USAGE = `usage: edgeban doctor [--json] [--stale-after SECONDS] [--lines N]

Checks the setup as \`edgeban run\` would use it, one line per check (PASS, SKIP, WARN, FAIL; each
WARN and FAIL with its fix): the environment and jail configuration; per firewall: reachable, TLS,
credentials, privileges (alias_util required, kill_states optional), the alias exists and is
External, table-entries headroom, the WAN block rule (when the key may read rules); per jail: log
paths exist and are readable, recently written (--stale-after, default 86400 s), time stamps of
the last --lines lines (default 200) match the time the file was written (a whole-hour offset is a
time-zone mistake), failures not dominated by one private address (a proxy hiding clients).

Only harmless calls are made. Exit code: 0 all passed, 1 a warning, 2 a failure.`;

const WHOLE = /^\d+$/;

export async function runDoctorCommand(argv: string[]): Promise<number> {
  const values = parseCommandFlags(
    argv,
    {
      json: { type: 'boolean', default: false },
      'stale-after': { type: 'string', default: '86400' },
      lines: { type: 'string', default: '200' },
    },
    USAGE,
  );
  if (values === null) return 0;
  if (!WHOLE.test(values['stale-after']) || Number(values['stale-after']) < 1)
    throw new UserFacingError('--stale-after: expected a whole number of seconds (at least 1)');
  if (!WHOLE.test(values.lines) || Number(values.lines) < 1 || Number(values.lines) > 100_000)
    throw new UserFacingError('--lines: expected a whole number from 1 to 100000');
  const scrubber = new SecretScrubber();
  const report = await runDoctor({
    env: process.env,
    clock: systemClock,
    // API calls log at debug only; doctor's own lines are the report.
    logger: (env) => createCommandLogger(env, scrubber),
    scrubber,
    staleAfterSec: Number(values['stale-after']),
    tailLines: Number(values.lines),
    onResult: values.json ? undefined : (result) => process.stdout.write(`${scrubber.scrub(formatLine(result))}\n`),
  });
  const exitCode = exitCodeFor(report.results);
  if (values.json) {
    const text = JSON.stringify({ worst: worstStatus(report.results), exitCode, checks: report.results });
    process.stdout.write(`${scrubber.scrub(text)}\n`);
  } else {
    const counts = { pass: 0, skip: 0, warn: 0, fail: 0 };
    for (const r of report.results) counts[r.status]++;
    process.stdout.write(`${counts.fail} failed, ${counts.warn} warning(s), ${counts.pass} passed, ${counts.skip} skipped\n`);
  }
  return exitCode;
}
