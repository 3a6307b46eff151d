import { loadEnv, type EdgebanEnv, type FirewallEndpoint } from '../config/env.ts';
import { loadDaemonConfig, requireRunnableJails, type DaemonConfig } from '../daemon/daemon-config.ts';
import { cidrList } from '../jails/cidr.ts';
import { discoverNetworkFacts } from '../jails/network-facts.ts';
import type { Logger } from '../logging/logger.ts';
import type { SecretScrubber } from '../logging/secret-scrubber.ts';
import { targetBackends } from '../targets/enforcement.ts';
import { OpnsenseAdminClient } from '../targets/opnsense/admin-client.ts';
import { createTarget, type TargetSpec } from '../targets/registry.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { fail, pass, warn, type CheckResult } from './check-result.ts';
import { checkFirewall } from './firewall-checks.ts';
import { checkJailLogs } from './log-checks.ts';
import { checkTarget } from './target-checks.ts';

export interface DoctorOptions {
  /** The process environment (and .env) to read, as `edgeban run` would. */
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: (env: EdgebanEnv) => Logger;
  /** Told every secret doctor reads (environment, jail actions); the command scrubs its report and logger with it. */
  scrubber: SecretScrubber;
  staleAfterSec: number;
  tailLines: number;
  /** Told of each result as it is found, so a slow firewall does not hold back the rest of the report. */
  onResult?: (result: CheckResult) => void;
}

export interface DoctorReport {
  results: CheckResult[];
}

/** Every check, in the order a user fixes things: environment, configuration, firewalls, logs. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const results: CheckResult[] = [];
  const learn = (secrets: readonly string[]) => {
    for (const secret of secrets) options.scrubber.add(secret);
  };
  const add = (result: CheckResult) => {
    results.push(result);
    options.onResult?.(result);
  };
  let env: EdgebanEnv;
  try {
    env = loadEnv({ env: options.env });
    add(pass('config.environment', 'environment', `${env.firewalls.length} firewall(s), alias ${env.alias}`));
  } catch (error) {
    add(fail('config.environment', 'environment', errorMessage(error), 'fix the variables named (see .env.example)'));
    try {
      // The jails can still be checked without a firewall.
      env = loadEnv({ env: options.env, requireFirewall: false });
    } catch {
      return { results };
    }
  }
  learn(env.secrets);
  let config: DaemonConfig | null = null;
  try {
    config = await loadDaemonConfig(env);
    learn(config.secrets);
    const notRunning = config.report.filter((r) => !r.running).length;
    add(pass('config.jails', env.configDir, `${config.jails.length} jail(s) will run${notRunning > 0 ? `, ${notRunning} enabled jail(s) will not` : ''}`));
  } catch (error) {
    add(fail('config.jails', env.configDir, errorMessage(error), 'fix the file and line named; `edgeban run` would refuse to start'));
  }
  if (config !== null) for (const result of migrationChecks(config, env)) add(result);
  for (const { endpoint, alias } of firewallsToCheck(env, config)) {
    const client = new OpnsenseAdminClient({ endpoint, logger: options.logger(env), connections: 2 });
    try {
      for (const result of await checkFirewall(client, { endpoint, alias, killStates: env.killStates })) add(result);
    } catch (error) {
      add(fail('opnsense.reachable', endpoint.url, `unexpected: ${errorMessage(error)}`, 'run again with EDGEBAN_LOG_LEVEL=debug and report it'));
    } finally {
      await client.close();
    }
  }
  for (const spec of (config?.targets ?? []).flatMap((t) => (t.spec ? [t.spec] : []))) {
    for (const result of await checkRegistryTarget(spec, options.clock, options.logger(env))) add(result);
  }
  if (config !== null) {
    const facts = await discoverNetworkFacts({ procNet: env.procNet }).catch(() => null);
    const proxyCandidates = facts === null ? [] : cidrList([...facts.gateways, ...facts.selfAddresses]);
    for (const jail of config.jails.filter((j) => !j.manualOnly)) {
      const input = {
        name: jail.definition.name,
        logpath: jail.definition.logpath,
        filter: jail.filter,
        findtimeSec: jail.settings.findtimeSec,
        logformat: jail.settings.logformat ?? 'plain',
      };
      const found = await checkJailLogs(input, {
        nowMs: options.clock.now(),
        staleAfterSec: options.staleAfterSec,
        tailLines: options.tailLines,
        proxyCandidates,
      });
      for (const result of found) add(result);
    }
  }
  return { results };
}

/** A jail's registry backend (mikrotik[…], cloudflare[…], …), checked through its own check(). */
async function checkRegistryTarget(spec: TargetSpec, clock: Clock, logger: Logger): Promise<CheckResult[]> {
  const scope = `${spec.kind} ${spec.identity}`;
  let target;
  try {
    target = createTarget(spec, { clock, logger });
  } catch (error) {
    return [
      fail('target.reachable', scope, `cannot be set up: ${errorMessage(error)}`, "fix the action's parameters named; `edgeban run` would refuse to start"),
    ];
  }
  try {
    return await checkTarget(target);
  } catch (error) {
    return [fail('target.reachable', scope, `unexpected: ${errorMessage(error)}`, 'run again with EDGEBAN_LOG_LEVEL=debug and report it')];
  } finally {
    await target.close();
  }
}

/**
 * Each (firewall, alias) pair bans go to, as the daemon builds them: the jails' targets, and
 * OPNSENSE_ALIAS on the environment's firewalls when no jail names a firewall (a ban-only setup)
 * or the jails could not be read.
 */
function firewallsToCheck(env: EdgebanEnv, config: DaemonConfig | null): Array<{ endpoint: FirewallEndpoint; alias: string }> {
  const manual =
    config === null
      ? env.firewalls.length > 0
        ? { alias: env.alias, endpoints: env.firewalls }
        : null
      : config.targets.length === 0
        ? config.manualTarget
        : null;
  return [...(config?.targets ?? []), ...(manual ? [manual] : [])].flatMap((t) =>
    targetBackends(t).flatMap((b) => (b.endpoint ? [{ endpoint: b.endpoint, alias: t.alias }] : [])),
  );
}

/** What runs differently from fail2ban: mapped action files (pass), substituted or not-run actions, jails not running, unknown keys (warn). */
function migrationChecks(config: DaemonConfig, env: EdgebanEnv): CheckResult[] {
  const out: CheckResult[] = [];
  for (const line of config.mapped) out.push(pass('config.action', env.configDir, line));
  for (const note of config.warnings) out.push(warn(`config.${note.kind}`, `${note.file}:${note.line}`, note.message, note.fix));
  for (const report of config.report) {
    for (const note of report.notes) out.push(warn(`config.${note.kind}`, `jail ${report.jail}`, note.message, note.fix));
    if (!report.running)
      out.push(
        warn(
          'config.jail_not_running',
          `jail ${report.jail}`,
          `enabled but not running: ${report.reason ?? 'unknown reason'}`,
          'see the reason; or set enabled = false for this jail',
        ),
      );
    else if (report.manualOnly)
      out.push(pass('config.jail_manual', `jail ${report.jail}`, 'empty failregex: a manual-ban jail (edgeban ban --jail), reads no log'));
  }
  try {
    requireRunnableJails(config, env);
  } catch (error) {
    out.push(fail('config.jails', env.configDir, errorMessage(error), 'enable a jail edgeban can run; `edgeban run` would refuse to start'));
  }
  return out;
}
