/**
 * The two names of a list edgeban bans into, built and read here only.
 * - The ledger target (what bans are recorded under): `kind:identity`, e.g. `mikrotik:https://r1 blocklist`
 *   or a jail-only firewall's `opnsense:192.0.2.1/alias`; OPNSENSE_ALIAS on the environment's firewalls is the bare alias.
 * - The backend id (logs, status, metrics labels; no secrets): `where list`, e.g. `https://fw1 fail2ban_blocklist`.
 */
export function ledgerTargetOf(kind: string, identity: string): string {
  return `${kind}:${identity}`;
}

/** The kind and identity of a `kind:identity` ledger target; null for a bare alias. */
export function parseLedgerTarget(id: string): { kind: string; identity: string } | null {
  const colon = id.indexOf(':');
  return colon <= 0 ? null : { kind: id.slice(0, colon), identity: id.slice(colon + 1) };
}

/** A backend's id: the firewall or router (its URL) and the list on it. */
export function backendId(where: string, list: string): string {
  return `${where} ${list}`;
}
