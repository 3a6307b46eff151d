import type { LedgerDamage } from '../ledger/ledger-store.ts';
import type { ClockStatus } from '../cluster/server-clock.ts';
import type { ReportedTargetStatus } from '../cluster/target-report.ts';
import { holdingNoun, targetLabel } from '../targets/edge-target.ts';

/**
 * `edgeban status` for people, in fail2ban-client's layout (the same labels, a tab after each, so
 * scripts written for fail2ban-client's output keep working), followed by what fail2ban has no
 * word for: each firewall target's enforcement state. `--json` prints the daemon's answer as is.
 */

/** The fields of a jail's status entry this view reads; the daemon's entry carries more. */
export interface JailStatusEntry {
  jail: string;
  /** False for an enabled jail the daemon could not run; `reason` then says why. */
  running?: boolean;
  reason?: string;
  /** A manual-ban jail: no log, bans only from the CLI. */
  manualOnly?: boolean;
  /** What runs differently from the user's fail2ban config (an action substituted or not run, an unknown key). */
  notes?: Array<{ kind: string; file: string; line: number; message: string; fix?: string | null }>;
  lines?: number;
  failures?: number;
  tracked?: number;
  bans?: number;
  banned?: string[];
  ignored?: Record<string, number>;
  capReached?: boolean;
  proxyWarning?: { address: string; share: number } | null;
  follower?: { files: Array<{ path: string; error?: string | null }> } | null;
}

export interface DaemonStatus {
  activeBans: number;
  targets: ReportedTargetStatus[];
  jails: JailStatusEntry[] | null;
  /** Damage the ledger recovered from at start-up. */
  ledgerDamage?: LedgerDamage | null;
  /** Shared-ledger mutations of types this version does not know, skipped. */
  unknownMutations?: { count: number; last: string | null };
  /** Cluster mode: this host's clock against Redis's. */
  clock?: ClockStatus;
}

export function formatOverview(status: DaemonStatus): string {
  const jails = status.jails ?? [];
  const running = jails.filter((j) => j.running !== false);
  const lines = ['Status', `|- Number of jail:\t${running.length}`, `\`- Jail list:\t${running.map((j) => j.jail).join(', ')}`];
  const stopped = jails.filter((j) => j.running === false);
  if (stopped.length > 0) {
    lines.push('', 'enabled but not running:');
    for (const j of stopped) lines.push(`  ${j.jail}: ${j.reason ?? 'not running'}`);
  }
  const noted = running.filter((j) => (j.notes ?? []).length > 0);
  if (noted.length > 0) {
    lines.push('', 'running differently from fail2ban (edgeban status JAIL for the fixes):');
    for (const j of noted) for (const note of j.notes!) lines.push(`  ${j.jail}: ${note.message}`);
  }
  lines.push(
    '',
    `active bans: ${status.activeBans}`,
    ...formatLedgerDamage(status.ledgerDamage),
    ...(status.unknownMutations
      ? [
          `ledger: ${status.unknownMutations.count} mutations of unknown types skipped (last: ${status.unknownMutations.last}); a newer edgeban wrote them: upgrade this replica`,
        ]
      : []),
    ...formatClock(status.clock),
    ...formatTargets(status.targets),
  );
  return lines.join('\n');
}

function formatLedgerDamage(damage: LedgerDamage | null | undefined): string[] {
  if (!damage) return [];
  return [
    `ledger damaged, recovered at ${new Date(damage.at).toISOString()} keeping ${damage.keptClaims} claims: ${damage.problems.join('; ')}` +
      (damage.movedAside.length > 0 ? `; damaged files kept as ${damage.movedAside.join(', ')}` : ''),
  ];
}

function formatNotes(j: JailStatusEntry): string[] {
  return (j.notes ?? []).map((n) => `${n.file}:${n.line}: ${n.message}${n.fix ? ` (fix: ${n.fix})` : ''}`);
}

export function formatJail(name: string, status: DaemonStatus): string {
  const j = status.jails?.find((entry) => entry.jail === name) ?? { jail: name };
  if (j.running === false)
    return [`Status for the jail: ${name}`, `\`- not running: ${j.reason ?? 'unknown reason'}`, ...formatNotes(j), '', ...formatTargets(status.targets)].join(
      '\n',
    );
  const banned = j.banned ?? [];
  const files = j.follower?.files ?? [];
  const lines = [
    `Status for the jail: ${name}`,
    '|- Filter',
    `|  |- Currently failed:\t${j.tracked ?? 0}`,
    `|  |- Total failed:\t${j.failures ?? 0}`,
    `|  \`- File list:\t${files.map((f) => f.path).join(' ')}`,
    '`- Actions',
    `   |- Currently banned:\t${banned.length}`,
    `   |- Total banned:\t${j.bans ?? 0}`,
    `   \`- Banned IP list:\t${banned.join(' ')}`,
    '',
    j.manualOnly ? 'a manual-ban jail: it reads no log (edgeban ban IP --jail NAME)' : `lines read: ${j.lines ?? 0}`,
    ...formatNotes(j),
  ];
  const ignored = Object.entries(j.ignored ?? {}).filter(([, n]) => n > 0);
  if (ignored.length > 0) lines.push(`failures ignored: ${ignored.map(([reason, n]) => `${reason} ${n}`).join(', ')}`);
  for (const f of files) if (f.error) lines.push(`log ${f.path}: ${f.error}`);
  if (j.capReached) lines.push('tracked addresses reached maxtracked: the oldest are dropped');
  if (j.proxyWarning)
    lines.push(`proxy warning: ${Math.round(j.proxyWarning.share * 100)}% of recent failures come from ${j.proxyWarning.address}, a private address`);
  lines.push(...formatTargets(status.targets));
  return lines.join('\n');
}

function formatTargets(targets: readonly ReportedTargetStatus[]): string[] {
  const lines: string[] = [];
  for (const t of targets) {
    const last = t.lastPass
      ? `last full pass ${new Date(t.lastPass.at).toISOString()} ${t.lastPass.ok ? 'ok' : `failed: ${t.lastPass.error ?? `${t.lastPass.unconfirmed.length} unconfirmed`}`}`
      : 'no full pass yet';
    lines.push(`target ${targetLabel(t)}: ${t.state}; ${t.inAlias ?? '?'} in the ${holdingNoun(t.kind)}, ${t.pending} pending; ${last}`);
    if (t.lastError && t.state !== 'in-sync') lines.push(`  last error: ${t.lastError.message}`);
  }
  return lines;
}

/** Shown only when this host's clock is off: bans are dated by Redis's clock meanwhile. */
function formatClock(clock: ClockStatus | undefined): string[] {
  if (!clock?.skewed) return [];
  const seconds = (Math.abs(clock.offsetMs) / 1000).toFixed(1);
  return [
    `clock: this host is ${seconds} s ${clock.offsetMs < 0 ? 'ahead of' : 'behind'} the Redis server; bans use Redis's time. Fix the host's time sync (NTP)`,
  ];
}
