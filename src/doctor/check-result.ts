/** One doctor finding: what was checked, where, the verdict, and for anything but pass, the fix. */
export type CheckStatus = 'pass' | 'skip' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable id for --json consumers: `opnsense.reachable`, `log.timestamps`, … */
  id: string;
  /** What it was checked on: a firewall URL, `URL alias NAME`, `jail NAME FILE`. */
  scope: string;
  status: CheckStatus;
  message: string;
  /** How to fix it; set for warn and fail. */
  fix?: string;
}

const RANK: Record<CheckStatus, number> = { pass: 0, skip: 0, warn: 1, fail: 2 };

export function pass(id: string, scope: string, message: string): CheckResult {
  return { id, scope, status: 'pass', message };
}

export function skip(id: string, scope: string, message: string): CheckResult {
  return { id, scope, status: 'skip', message };
}

export function warn(id: string, scope: string, message: string, fix: string): CheckResult {
  return { id, scope, status: 'warn', message, fix };
}

export function fail(id: string, scope: string, message: string, fix: string): CheckResult {
  return { id, scope, status: 'fail', message, fix };
}

export function worstStatus(results: readonly CheckResult[]): CheckStatus {
  let worst: CheckStatus = 'pass';
  for (const r of results) if (RANK[r.status] > RANK[worst]) worst = r.status;
  return worst;
}

/** Exit code of `edgeban doctor`: 0 everything passed (or was skipped), 1 a warning, 2 a failure. */
export function exitCodeFor(results: readonly CheckResult[]): number {
  return RANK[worstStatus(results)];
}

/** One line per check: `FAIL  alias.exists  scope: message — fix: …`. */
export function formatLine(result: CheckResult): string {
  const head = `${result.status.toUpperCase().padEnd(4)}  ${result.id.padEnd(22)} ${result.scope}: ${result.message}`;
  return result.fix === undefined ? head : `${head} — fix: ${result.fix}`;
}
