/**
 * `edgeban health [--live] [--timeout S] [--socket PATH | --tcp]`: the container HEALTHCHECK.
 * Asks the running daemon for its status over the control socket and prints one line.
 *
 * Exit 0 when the daemon answers, no target is `degraded` and every enabled jail runs; exit 1
 * when it does not answer within the timeout, a target is `degraded` or an enabled jail does not
 * run (its filter is missing, localactions = skip): that jail protects nobody.
 *
 * Why `degraded` is unhealthy: it means the firewall refuses edgeban for a reason only an
 * operator can fix (bad credentials, a missing privilege or alias), or accepts adds that pf does
 * not store (a full table-entries limit): bans are detected but no longer reach the edge. That is fail2ban's "stopped working without me knowing", and an
 * unhealthy container is what `docker ps`, Compose and monitoring surface. `unreachable` and
 * `syncing` stay healthy: outages are retried and bans wait in the ledger, so flagging them
 * would make health flap with the network. `--live` checks only that the daemon answers, for a
 * Kubernetes livenessProbe, where restarting on `degraded` would fix nothing and stop detection.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadEnv, type EdgebanEnv } from '../config/env.ts';
import { ControlClient, type ControlEndpoint } from '../control/control-client.ts';
import { errorMessage, UserFacingError } from '../util/errors.ts';

const USAGE = 'usage: edgeban health [--live] [--timeout SECONDS] [--socket PATH | --tcp]';
const DEFAULT_TIMEOUT_SEC = 5;

/** The part of the daemon's status reply health looks at; validated like any reply from outside. */
const StatusReplySchema = z.object({
  activeBans: z.number().int().nonnegative(),
  targets: z.array(
    z.object({
      id: z.string(),
      state: z.string(),
      lastError: z.object({ message: z.string() }).nullable().optional(),
    }),
  ),
  jails: z
    .array(z.object({ jail: z.string(), running: z.boolean().optional(), reason: z.string().optional() }))
    .nullable()
    .optional(),
});
type StatusReply = z.infer<typeof StatusReplySchema>;

export interface HealthVerdict {
  healthy: boolean;
  line: string;
}

/** Judges a status reply: pure, so the policy is testable without a daemon. */
export function judgeHealth(status: StatusReply, live: boolean): HealthVerdict {
  const bans = `${status.activeBans} active ban${status.activeBans === 1 ? '' : 's'}`;
  const targets = status.targets.length === 0 ? 'no targets' : status.targets.map((t) => `target ${t.id}: ${t.state}`).join(', ');
  const degraded = status.targets.filter((t) => t.state === 'degraded');
  if (degraded.length > 0 && !live) {
    const first = degraded[0]!;
    const more = degraded.length > 1 ? ` (and ${degraded.length - 1} more)` : '';
    return {
      healthy: false,
      line: `unhealthy: target ${first.id}: degraded${more}, bans do not reach it: ${first.lastError?.message ?? 'see edgeban status'}`,
    };
  }
  // An enabled jail that does not run protects nobody while everything else looks fine.
  const stopped = (status.jails ?? []).filter((j) => j.running === false);
  if (stopped.length > 0 && !live) {
    const first = stopped[0]!;
    const more = stopped.length > 1 ? ` (and ${stopped.length - 1} more)` : '';
    return { healthy: false, line: `unhealthy: jail ${first.jail} is enabled but not running${more}: ${first.reason ?? 'see edgeban status'}` };
  }
  return { healthy: true, line: `healthy: daemon answers; ${targets}; ${bans}` };
}

function endpointFor(env: EdgebanEnv, socket: string | undefined, tcp: boolean): ControlEndpoint {
  if (!tcp) return { socketPath: socket ?? env.controlSocket };
  if (!env.controlListen || !env.controlToken) throw new UserFacingError('--tcp needs EDGEBAN_CONTROL_LISTEN and EDGEBAN_CONTROL_TOKEN');
  const host = env.controlListen.host.includes(':') ? `[${env.controlListen.host}]` : env.controlListen.host;
  return { url: `http://${host}:${env.controlListen.port}`, token: env.controlToken };
}

function parse(argv: string[]): { live: boolean; timeoutMs: number; socket: string | undefined; tcp: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { live: { type: 'boolean' }, timeout: { type: 'string' }, socket: { type: 'string' }, tcp: { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    throw new UserFacingError(`${(error as Error).message}\n${USAGE}`);
  }
  const timeoutSec = values.timeout === undefined ? DEFAULT_TIMEOUT_SEC : Number(values.timeout);
  if (!(timeoutSec > 0 && timeoutSec <= 300))
    throw new UserFacingError(`--timeout: expected seconds from 1 to 300, got ${JSON.stringify(values.timeout)}\n${USAGE}`);
  return { live: values.live ?? false, timeoutMs: timeoutSec * 1000, socket: values.socket, tcp: values.tcp ?? false };
}

export async function runHealthCommand(argv: string[]): Promise<number> {
  const options = parse(argv);
  const env = loadEnv({ requireFirewall: false });
  const endpoint = endpointFor(env, options.socket, options.tcp);
  const where = 'socketPath' in endpoint ? endpoint.socketPath : endpoint.url;
  const client = new ControlClient(endpoint);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  });
  let verdict: HealthVerdict;
  let hanging = false;
  try {
    const reply = await Promise.race([client.call<unknown>('GET', '/status'), timedOut]);
    if (reply === 'timeout') {
      hanging = true;
      verdict = { healthy: false, line: `unhealthy: the daemon did not answer on ${where} within ${options.timeoutMs / 1000} s` };
    } else {
      const status = StatusReplySchema.safeParse(reply);
      verdict = status.success
        ? judgeHealth(status.data, options.live)
        : {
            healthy: false,
            line: `unhealthy: the daemon's status reply is not understood (${status.error.issues[0]?.path.join('.') ?? ''}: ${status.error.issues[0]?.message ?? ''})`,
          };
    }
  } catch (error) {
    verdict = { healthy: false, line: `unhealthy: ${errorMessage(error)}` };
  } finally {
    clearTimeout(timer);
  }
  process.stdout.write(`${verdict.line}\n`);
  // close() waits for a request in flight; after a timeout main() exits with our code instead.
  if (!hanging) await client.close();
  return verdict.healthy ? 0 : 1;
}
