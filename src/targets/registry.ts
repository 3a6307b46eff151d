import { readFileSync } from 'node:fs';
import type { EdgeTarget, TargetDeps, TargetKind } from './edge-target.ts';
import { cloudflareKind } from './cloudflare/cloudflare-kind.ts';
import { feedKind } from './feed/feed-kind.ts';
import { memoryKind } from './memory/target.ts';
import { mikrotikKind } from './mikrotik/index.ts';
import { opnsenseKind } from './opnsense/kind.ts';
import { FAIL2BAN_ACTION_PARAMS, TargetOptionError } from './target-options.ts';
import { ledgerTargetOf } from './target-ids.ts';

/**
 * Every backend kind edgeban knows: adding one is its folder under src/targets plus one line
 * here. A jail action named by a kind (`memory[list=…]`, `mikrotik[url=…, …]`) is parsed by that
 * kind's `parseOptions`, over the env defaults its `env` names; its bans are recorded under the
 * ledger target `kind:identity`.
 */
export const TARGET_KINDS: readonly TargetKind<unknown>[] = [opnsenseKind, mikrotikKind, cloudflareKind, feedKind, memoryKind];

/**
 * Kinds a jail names through the generic path. `opnsense` keeps its own (src/jails/targets.ts:
 * the environment's HA firewalls, ledger target names older releases wrote, migrated action files).
 */
export const GENERIC_TARGET_KINDS: readonly string[] = TARGET_KINDS.map((k) => k.kind).filter((k) => k !== 'opnsense');

export function findTargetKind(kind: string): TargetKind<unknown> | null {
  return TARGET_KINDS.find((k) => k.kind === kind) ?? null;
}

/** One backend list a jail bans into, parsed: what the daemon builds an EdgeTarget and its reconciler from. */
export interface TargetSpec {
  kind: string;
  options: unknown;
  /** The list, without secrets (TargetKind.identity). */
  identity: string;
  /** The ledger target name its bans are recorded under. */
  ledgerTarget: string;
  /** The parameter values that are secrets (for log scrubbing). */
  secrets: string[];
}

/**
 * The env defaults of a kind (`MIKROTIK_URL` → `url`), a `VAR_FILE` read when `VAR` is unset, under
 * the action's own parameters. Empty values count as unset.
 */
export function paramsOverEnv(
  kind: TargetKind<unknown>,
  params: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const [variable, param] of Object.entries(kind.env)) {
    let value = env[variable];
    const file = env[`${variable}_FILE`];
    if ((value === undefined || value === '') && file) {
      try {
        value = readFileSync(file, 'utf8').trim();
      } catch (error) {
        throw new TargetOptionError(param, `${variable}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    if (value !== undefined && value.trim() !== '') merged[param] = value.trim();
  }
  for (const [param, value] of Object.entries(params)) if (value.trim() !== '') merged[param] = value.trim();
  return merged;
}

/** A jail action `kind[params]` as a target spec; throws what `parseOptions` throws (a TargetOptionError names the key). */
export function parseTargetAction(kindName: string, params: Readonly<Record<string, string>>, env: Readonly<Record<string, string | undefined>>): TargetSpec {
  const kind = findTargetKind(kindName);
  if (kind === null) throw new TargetOptionError('action', `no backend kind ${kindName} (known: ${TARGET_KINDS.map((k) => k.kind).join(', ')})`);
  const own = Object.fromEntries(Object.entries(params).filter(([key]) => !FAIL2BAN_ACTION_PARAMS.has(key)));
  for (const key of kind.envOnlyParams ?? []) {
    if (own[key] !== undefined)
      throw new TargetOptionError(
        key,
        `${key}: set only in the environment (${Object.keys(kind.env).find((v) => kind.env[v] === key) ?? 'see README'}), not in a jail file`,
      );
  }
  const merged = paramsOverEnv(kind, own, env);
  const options = kind.parseOptions(merged);
  const identity = kind.identity(options);
  const secrets = kind.secretParams.map((p) => merged[p]).filter((v): v is string => v !== undefined && v !== '');
  return { kind: kind.kind, options, identity, ledgerTarget: ledgerTargetOf(kind.kind, identity), secrets };
}

/** The EdgeTarget a spec describes. */
export function createTarget(spec: TargetSpec, deps: TargetDeps): EdgeTarget {
  const kind = findTargetKind(spec.kind);
  if (kind === null) throw new Error(`no backend kind ${spec.kind}`);
  return kind.create(spec.options, deps);
}
