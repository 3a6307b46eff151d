import type { ReportedTargetStatus } from '../cluster/target-report.ts';
import { humanDuration, type AlertEvent } from './messages.ts';

interface Watch {
  failingSince: number | null;
  alerted: boolean;
}

/**
 * Raises one alert when a target has been unreachable, degraded or without its shared ledger for `thresholdMs`, and one
 * recovery message when it is in sync again. A target failing for less than the threshold says
 * nothing (a firewall reboot is routine). `syncing` and `starting` change nothing: a pass being
 * retried is neither failure nor proof of recovery.
 */
export class EnforcementMonitor {
  private readonly thresholdMs: number;
  private readonly watches = new Map<string, Watch>();

  constructor(thresholdMs: number) {
    this.thresholdMs = thresholdMs;
  }

  check(targets: readonly ReportedTargetStatus[], now: number): AlertEvent[] {
    const out: AlertEvent[] = [];
    const seen = new Set<string>();
    for (const target of targets) {
      seen.add(target.id);
      const watch = this.watches.get(target.id) ?? { failingSince: null, alerted: false };
      this.watches.set(target.id, watch);
      if (target.state === 'unreachable' || target.state === 'degraded' || target.state === 'ledger-unreachable') {
        watch.failingSince ??= now;
        if (!watch.alerted && now - watch.failingSince >= this.thresholdMs) {
          watch.alerted = true;
          const reason = target.lastError ? `: ${target.lastError.message}` : '';
          out.push({
            kind: 'alert',
            source: 'enforcement',
            subject: target.id,
            at: now,
            title: `Bans not enforced on ${target.id}`,
            text: `${target.id} has been ${target.state} for ${humanDuration(now - watch.failingSince)}${reason}. New bans wait in the ledger and are applied when it is back.`,
          });
        }
      } else if (target.state === 'in-sync') {
        if (watch.alerted && watch.failingSince !== null) {
          out.push({
            kind: 'recovery',
            source: 'enforcement',
            subject: target.id,
            at: now,
            title: `Bans enforced again on ${target.id}`,
            text: `${target.id} is in sync again after ${humanDuration(now - watch.failingSince)} of failure.`,
          });
        }
        watch.failingSince = null;
        watch.alerted = false;
      } else if (target.state === 'stopped' || target.state === 'standby') {
        this.watches.delete(target.id);
      }
    }
    // Targets gone after a reload are forgotten.
    for (const id of this.watches.keys()) if (!seen.has(id)) this.watches.delete(id);
    return out;
  }
}
