import type { PipelineStats } from '../jails/pipeline-stats.ts';
import { humanDuration, type AlertEvent } from './messages.ts';

interface Watch {
  /** The last line, or when the file was first seen if it has given none since. */
  lastActivity: number;
  lastLineAt: number | null;
  alertedAt: number | null;
}

/**
 * fail2ban's silent failure: the log moved (a new container, a changed path, a logging driver that
 * stopped writing) and nothing is read any more. One alert when a watched file has given no line
 * for `silenceMs`; one "back" message when lines come again. Files are watched by path: two jails
 * reading one log raise one alert that names both.
 */
export class LogWatchdog {
  private readonly silenceMs: number;
  private readonly watches = new Map<string, Watch>();

  constructor(silenceMs: number) {
    this.silenceMs = silenceMs;
  }

  check(sources: readonly PipelineStats[], now: number): AlertEvent[] {
    const jailsOf = new Map<string, { jails: string[]; lastLineAt: number | null }>();
    for (const source of sources) {
      for (const file of source.follower?.files ?? []) {
        const entry = jailsOf.get(file.path) ?? { jails: [], lastLineAt: null };
        entry.jails.push(source.jail);
        if (file.lastLineAt !== null) entry.lastLineAt = Math.max(entry.lastLineAt ?? -Infinity, file.lastLineAt);
        jailsOf.set(file.path, entry);
      }
    }
    const out: AlertEvent[] = [];
    for (const [path, { jails, lastLineAt }] of jailsOf) {
      let watch = this.watches.get(path);
      if (!watch) {
        watch = { lastActivity: lastLineAt ?? now, lastLineAt, alertedAt: null };
        this.watches.set(path, watch);
      }
      if (lastLineAt !== null && lastLineAt !== watch.lastLineAt) {
        watch.lastLineAt = lastLineAt;
        watch.lastActivity = Math.max(watch.lastActivity, lastLineAt);
      }
      const who = `jail${jails.length > 1 ? 's' : ''} ${jails.join(', ')}`;
      if (watch.alertedAt !== null && watch.lastActivity > watch.alertedAt) {
        out.push({
          kind: 'recovery',
          source: 'watchdog',
          subject: path,
          at: now,
          title: `Log written again: ${path}`,
          text: `${path} (${who}) has new lines again.`,
        });
        watch.alertedAt = null;
      } else if (watch.alertedAt === null && now - watch.lastActivity >= this.silenceMs) {
        watch.alertedAt = now;
        const last = watch.lastLineAt === null ? 'no line since edgeban started' : `last line ${new Date(watch.lastLineAt).toISOString()}`;
        out.push({
          kind: 'alert',
          source: 'watchdog',
          subject: path,
          at: now,
          title: `Log silent: ${path}`,
          text: `${path} (${who}) has been silent for ${humanDuration(now - watch.lastActivity)} (${last}). Is the service still logging there? Bans from it have stopped.`,
        });
      }
    }
    for (const path of this.watches.keys()) if (!jailsOf.has(path)) this.watches.delete(path);
    return out;
  }
}
