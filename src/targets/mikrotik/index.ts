import type { TargetKind } from '../edge-target.ts';
import { MikrotikTarget } from './mikrotik-target.ts';
import { MIKROTIK_ENV, parseMikrotikOptions, type MikrotikOptions } from './options.ts';
import { backendId } from '../target-ids.ts';

export type { MikrotikOptions };

/** The registry entry: `mikrotik[url=, user=, password=, list=]` (README "MikroTik RouterOS"). */
export const mikrotikKind: TargetKind<MikrotikOptions> = {
  kind: 'mikrotik',
  parseOptions: parseMikrotikOptions,
  env: MIKROTIK_ENV,
  secretParams: ['password'],
  identity: (options) => backendId(options.url, options.list),
  create: (options, deps) => new MikrotikTarget(options, deps),
};
