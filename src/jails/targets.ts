import { isValidAliasName, type EdgebanEnv, type FirewallEndpoint } from '../config/env.ts';
import { ConfigError } from '../config/fail2ban/config-error.ts';
import type { SourceRef } from '../config/fail2ban/filter-definition.ts';
import type { ActionRef, JailDefinition } from '../config/fail2ban/jail-definition.ts';
import { extractOptions, splitWithOptions } from '../config/fail2ban/option-list.ts';
import { normalisedFirewall } from '../targets/opnsense/kind.ts';
import { parseTargetAction, type TargetSpec } from '../targets/registry.ts';
import { ledgerTargetOf, parseLedgerTarget } from '../targets/target-ids.ts';

/**
 * Where bans are enforced: one target per (firewall, alias), whoever names it. An `opnsense`
 * action without `firewall=`, or naming a firewall of OPNSENSE_URL (same normalised URL), bans in
 * the environment's firewalls (every node of an HA pair), in its `alias=` or else
 * OPNSENSE_ALIAS: the ledger target is the alias name. An action naming another firewall is a
 * target `opnsense:<firewall>/<alias>` with its own endpoint and credentials. An action named by
 * another kind of the target registry (`memory[list=…]`, `mikrotik[url=…, …]`) is parsed by that
 * kind over its env defaults: ledger target `kind:identity`. The daemon, `reconcile`, `doctor`
 * and the offline CLI all take their targets from here.
 */

export interface JailTarget {
  /** Ledger target name. */
  id: string;
  alias: string;
  /** The firewall's normalised URL when it is not one of the environment's, else null. */
  firewall: string | null;
  source: SourceRef;
}

/**
 * One ledger target and the backends that enforce it: one reconciler per OPNsense endpoint, or
 * one for a registry backend (`spec`, and no endpoints).
 */
export interface EnforcementTarget {
  id: string;
  /** The list's name (the OPNsense alias; a registry backend's identity). */
  alias: string;
  endpoints: FirewallEndpoint[];
  /** Jails banning into it. */
  jails: string[];
  /** A registry backend's parsed action; absent for OPNsense targets. */
  spec?: TargetSpec;
}

export interface TargetPlan {
  /** The targets the enabled jails ban into. */
  targets: EnforcementTarget[];
  /** OPNSENSE_ALIAS on the environment's firewalls, where a ban without a jail goes; null without OPNSENSE_URL. */
  manual: EnforcementTarget | null;
}

interface OpnsenseAction {
  target: JailTarget;
  key: string;
  secret: string;
  /** allow_insecure=true: do not verify this firewall's certificate. */
  tlsInsecure: boolean;
}

type TargetEnv = Pick<EdgebanEnv, 'firewalls' | 'alias'> & Partial<Pick<EdgebanEnv, 'targetEnv'>>;

/** The targets of one jail's `opnsense` and registry-backend actions (none for a jail that only notifies). */
export function jailTargets(jail: JailDefinition, env: TargetEnv): JailTarget[] {
  return [
    ...opnsenseActions(jail, env).map((a) => a.target),
    ...registryActions(jail, env).map(({ spec, source }) => ({ id: spec.ledgerTarget, alias: spec.identity, firewall: null, source })),
  ];
}

/** The jail's actions named by a registry kind, each parsed by its kind: a refused parameter is a ConfigError at the action's line. */
function registryActions(jail: JailDefinition, env: TargetEnv): Array<{ spec: TargetSpec; source: SourceRef }> {
  const out: Array<{ spec: TargetSpec; source: SourceRef }> = [];
  for (const action of jail.actions) {
    if (action.native !== 'target' || action.targetKind === undefined) continue;
    try {
      out.push({ spec: parseTargetAction(action.targetKind, action.params, env.targetEnv ?? {}), source: action.source });
    } catch (error) {
      const key = (error as { key?: unknown }).key;
      throw new ConfigError(`jail ${jail.name}: ${action.targetKind}[…]: ${(error as Error).message}`, {
        file: action.source.file,
        line: action.source.line,
        key: typeof key === 'string' ? key : action.source.key,
      });
    }
  }
  return out;
}

/**
 * Every distinct target of the enabled jails, with its endpoints, and the manual-ban target.
 * Two jails naming the same firewall and alias share a target; they must then agree on the
 * credentials (and with OPNSENSE_KEY/SECRET when it is the environment's firewall).
 */
export function planTargets(jails: readonly JailDefinition[], env: TargetEnv): TargetPlan {
  const targets = new Map<string, EnforcementTarget & { credentialsFrom?: SourceRef }>();
  const insecure = new Set<string>();
  const envTarget = (alias: string) => ({ id: alias, alias, endpoints: [...env.firewalls], jails: [] });
  for (const jail of jails) {
    if (!jail.enabled) continue;
    for (const action of opnsenseActions(jail, env)) {
      const { target } = action;
      let entry = targets.get(target.id);
      if (target.firewall === null) {
        if (env.firewalls.length === 0) {
          throw new ConfigError(
            `jail ${jail.name} bans through the environment's firewall, but OPNSENSE_URL is not set (set it, or give the action firewall=, key= and secret=)`,
            target.source,
          );
        }
        if (!entry) targets.set(target.id, (entry = envTarget(target.alias)));
        if (action.tlsInsecure) for (const e of env.firewalls) insecure.add(e.url);
      } else {
        const endpoint = ownEndpoint(jail, action, env);
        if (action.tlsInsecure) insecure.add(endpoint.url);
        if (!entry) {
          targets.set(target.id, (entry = { id: target.id, alias: target.alias, endpoints: [endpoint], jails: [], credentialsFrom: target.source }));
        } else {
          const known = entry.endpoints[0];
          if (known && (known.key !== endpoint.key || known.secret !== endpoint.secret)) {
            const other = entry.credentialsFrom;
            throw new ConfigError(
              `jail ${jail.name} gives firewall ${target.firewall} other credentials than ${other ? `${other.file}:${other.line}` : 'another jail'}; one firewall and alias take one key and secret`,
              { file: target.source.file, line: target.source.line, key: 'key' },
            );
          }
        }
      }
      if (!entry.jails.includes(jail.name)) entry.jails.push(jail.name);
    }
    for (const { spec, source } of registryActions(jail, env)) {
      let entry = targets.get(spec.ledgerTarget);
      if (!entry) {
        targets.set(spec.ledgerTarget, (entry = { id: spec.ledgerTarget, alias: spec.identity, endpoints: [], jails: [], spec, credentialsFrom: source }));
      } else if (JSON.stringify(entry.spec?.options) !== JSON.stringify(spec.options)) {
        const other = entry.credentialsFrom;
        throw new ConfigError(
          `jail ${jail.name} gives ${spec.identity} other settings than ${other ? `${other.file}:${other.line}` : 'another jail'}; one list takes one set of settings`,
          { file: source.file, line: source.line, key: source.key },
        );
      }
      if (!entry.jails.includes(jail.name)) entry.jails.push(jail.name);
    }
  }
  // allow_insecure on any action naming a firewall applies to that firewall everywhere: one TLS policy per endpoint.
  const withTls = (endpoints: FirewallEndpoint[]) => endpoints.map((e) => (insecure.has(e.url) && !e.tlsInsecure ? { ...e, tlsInsecure: true } : e));
  const list = [...targets.values()].map(({ id, alias, endpoints, jails: names, spec }) => ({
    id,
    alias,
    endpoints: withTls(endpoints),
    jails: names,
    ...(spec ? { spec } : {}),
  }));
  const manual = env.firewalls.length === 0 ? null : (list.find((t) => t.id === env.alias) ?? { ...envTarget(env.alias), endpoints: withTls(env.firewalls) });
  return { targets: list, manual };
}

/** The targets to enforce: every jail's, and the manual-ban target once a jail or a ledger claim (`ledgerTargets`) uses it. */
export function targetsInUse(plan: TargetPlan, ledgerTargets: Iterable<string>): EnforcementTarget[] {
  const { targets, manual } = plan;
  if (manual === null || targets.includes(manual)) return targets;
  return [...ledgerTargets].includes(manual.id) ? [...targets, manual] : targets;
}

/**
 * The target an older edgeban's ledger target name means under this configuration, when it
 * differs: `opnsense:<firewall>/<alias>` written for a firewall that OPNSENSE_URL also names is now
 * the environment's target `<alias>`; another spelling of a jail's firewall is its normalised one.
 */
export function renamedTarget(id: string, env: Pick<EdgebanEnv, 'firewalls'>): string | null {
  const parsed = parseLedgerTarget(id);
  if (parsed?.kind !== 'opnsense') return null;
  const slash = parsed.identity.lastIndexOf('/');
  const firewall = parsed.identity.slice(0, slash);
  const alias = parsed.identity.slice(slash + 1);
  if (slash <= 0 || !isValidAliasName(alias)) return null;
  const url = normalisedFirewall(firewall);
  if (typeof url !== 'string') return null;
  const now = env.firewalls.some((e) => e.url === url) ? alias : ownTargetId(url, alias);
  return now === id ? null : now;
}

function ownEndpoint(jail: JailDefinition, action: OpnsenseAction, env: Pick<EdgebanEnv, 'firewalls'>): FirewallEndpoint {
  const { target } = action;
  const where = (key: string) => ({ file: target.source.file, line: target.source.line, key });
  for (const key of ['key', 'secret'] as const) {
    if (action[key] === '') throw new ConfigError(`jail ${jail.name}: opnsense[firewall=…] needs ${key}= too (the firewall's API ${key})`, where(key));
  }
  // TLS trust as for the environment's firewalls: one CA and one policy for the whole install.
  const model = env.firewalls[0];
  return {
    url: target.firewall ?? '',
    key: action.key,
    secret: action.secret,
    ca: model?.ca ?? null,
    tlsInsecure: model?.tlsInsecure ?? false,
    timeoutMs: model?.timeoutMs ?? 30_000,
  };
}

function firewallUrl(jail: JailDefinition, firewall: string, source: SourceRef): string {
  const checked = normalisedFirewall(firewall);
  if (typeof checked !== 'string') throw new ConfigError(`jail ${jail.name}: ${checked.problem}`, { file: source.file, line: source.line, key: 'firewall' });
  return checked;
}

/** The ledger target name of a jail-only firewall: `opnsense:192.0.2.1/alias` (the scheme and a lone IPv6 literal's brackets dropped, as written before URLs were normalised; http is only ever loopback). */
function ownTargetId(url: string, alias: string): string {
  const host = url.replace(/^[a-z]+:\/\//, '').replace(/^\[([0-9a-f:.]+)\]$/i, '$1');
  return ledgerTargetOf('opnsense', `${host}/${alias}`);
}

function opnsenseActions(jail: JailDefinition, env: TargetEnv): OpnsenseAction[] {
  const written = writtenParams(jail);
  const seen = new Map<string, number>();
  const out: OpnsenseAction[] = [];
  for (const action of jail.actions) {
    const nth = seen.get(action.name) ?? 0;
    seen.set(action.name, nth + 1);
    if (action.native !== 'opnsense') continue;
    const explicit = written.get(action.name)?.[nth] ?? null;
    out.push(opnsenseAction(jail, action, explicit, env));
  }
  return out;
}

function opnsenseAction(jail: JailDefinition, action: ActionRef, explicit: Record<string, string> | null, env: TargetEnv): OpnsenseAction {
  const firewall = (action.params.firewall ?? '').trim();
  // The action file's [Init] alias default is always in params; only an alias the jail wrote
  // overrides OPNSENSE_ALIAS (if the entry cannot be re-read, a non-default alias counts as written).
  const aliasParam = (action.params.alias ?? '').trim();
  const aliasWritten = explicit === null ? aliasParam !== '' && aliasParam !== 'fail2ban_blocklist' : (explicit.alias ?? '').trim() !== '';
  const alias = aliasWritten ? aliasParam : env.alias;
  if (!isValidAliasName(alias)) {
    throw new ConfigError(
      `jail ${jail.name}: "${alias.slice(0, 40)}" is not a valid OPNsense alias name (a letter or _ first, then letters, digits or _, at most 31)`,
      { ...action.source, key: 'alias' },
    );
  }
  const key = (action.params.key ?? '').trim();
  const secret = (action.params.secret ?? '').trim();
  const tlsInsecure = /^(1|true|yes|on)$/i.test((action.params.allow_insecure ?? '').trim());
  const url = firewall === '' ? null : firewallUrl(jail, firewall, action.source);
  const shared = url === null ? null : (env.firewalls.find((e) => e.url === url) ?? null);
  if (shared) {
    // The environment's firewall named again: the same target, so its credentials must be the environment's.
    for (const [name, value] of [
      ['key', key],
      ['secret', secret],
    ] as const) {
      if (value !== '' && value !== shared[name]) {
        throw new ConfigError(
          `jail ${jail.name}: firewall ${url} is OPNSENSE_URL's, but this ${name}= differs from OPNSENSE_${name.toUpperCase()}; one firewall takes one key and secret (or leave key= and secret= out)`,
          { ...action.source, key: name },
        );
      }
    }
  }
  const own = url !== null && shared === null;
  return {
    target: { id: own ? ownTargetId(url, alias) : alias, alias, firewall: own ? url : null, source: action.source },
    key,
    secret,
    tlsInsecure,
  };
}

/** The params each action entry was written with, by action name in order of appearance. */
function writtenParams(jail: JailDefinition): Map<string, Record<string, string>[]> {
  const written = new Map<string, Record<string, string>[]>();
  for (const item of splitWithOptions(jail.options.action ?? '')) {
    const text = item.text.trim();
    if (text === '') continue;
    try {
      const { name, options } = extractOptions(text);
      const list = written.get(name) ?? [];
      list.push(options);
      written.set(name, list);
    } catch {
      // loadJails already rejected malformed entries; nothing to learn from one here.
    }
  }
  return written;
}
