import type { Endpoint } from './api-types.ts';
import { aliasUtilEndpoints } from './handlers/alias-util.ts';
import { aliasEndpoints } from './handlers/alias.ts';
import { diagnosticsFirewallEndpoints } from './handlers/diagnostics-firewall.ts';
import { filterEndpoints } from './handlers/filter.ts';
import { firmwareEndpoints } from './handlers/firmware.ts';

/** Module (lower-cased camel name) → controller class name without `Controller` → actions (lower-cased, no `_`). */
const ROUTES: Record<string, Record<string, Record<string, Endpoint>>> = {
  firewall: { AliasUtil: aliasUtilEndpoints, Alias: aliasEndpoints, Filter: filterEndpoints },
  diagnostics: { Firewall: diagnosticsFirewallEndpoints },
  core: { Firmware: firmwareEndpoints },
};

export interface ResolvedRoute {
  endpoint: Endpoint;
  args: string[];
}

/** `alias_util` → `AliasUtil`: ucfirst on each `_` part (so `aliasUtil` → `AliasUtil`, `aliasutil` → `Aliasutil`). */
function camelize(segment: string): string {
  return segment
    .split('_')
    .map((p) => (p === '' ? '' : p[0]!.toUpperCase() + p.slice(1)))
    .join('');
}

/**
 * Router::parsePath. Module: camelized then matched case-insensitively (directory fallback).
 * Controller: case-sensitive class file lookup. Action: PHP method lookup ignores case, so
 * only `_` removal and lower-casing matter. Args are not URL-decoded. Null → 404.
 */
export function resolveRoute(pathname: string): ResolvedRoute | null {
  if (!pathname.startsWith('/api/')) return null;
  const segments = pathname.slice('/api/'.length).split('/');
  if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
  const [moduleSegment, controllerSegment, actionSegment, ...args] = segments;
  if (!moduleSegment || !controllerSegment || !actionSegment) return null;
  const controllers = ROUTES[camelize(moduleSegment).toLowerCase()];
  const actions = controllers?.[camelize(controllerSegment)];
  if (!actions) return null;
  const endpoint = actions[camelize(actionSegment).toLowerCase()];
  if (!endpoint || !/^[A-Za-z0-9_]+$/.test(actionSegment)) return null;
  if (args.length < endpoint.requiredArgs) return null;
  return { endpoint, args };
}
