/**
 * What the notifier says: events in, one channel-neutral message out. Channels turn a message into
 * their wire form (ntfy headers, webhook JSON); nothing here knows about HTTP.
 */

export interface BanEvent {
  kind: 'ban' | 'unban';
  jail: string;
  /** Of the claim that started (ban) or ended (unban): a jail's detection, a manual ban, an adopted entry. */
  origin: 'jail' | 'manual' | 'adopted';
  target: string;
  address: string;
  at: number;
  /** For bans: when it ends; null = permanent. */
  expiresAt: number | null;
  banCount: number;
}

export interface AlertEvent {
  kind: 'alert' | 'recovery';
  source: 'enforcement' | 'watchdog';
  /** The target id or log path the alert is about. */
  subject: string;
  title: string;
  text: string;
  at: number;
}

export type MessageKind = 'ban' | 'unban' | 'digest' | 'alert' | 'recovery';

export interface OutgoingMessage {
  kind: MessageKind;
  /** Printable ASCII only: it travels in an HTTP header for ntfy. */
  title: string;
  text: string;
  /** How loud: `quiet` for unbans and recoveries, `alert` for failures; channels map it onto their scale. */
  urgency: 'quiet' | 'normal' | 'alert';
  /** ntfy tags (emoji short codes). */
  tags: string[];
  at: number;
  /** Machine-readable details (the webhook's JSON). */
  data: Record<string, unknown>;
}

const SAMPLE_SIZE = 10;
const TOP_JAILS = 5;
/** Distinct jails counted by name in one digest; beyond, counted under "(other jails)" (memory stays bounded). */
const MAX_DIGEST_JAILS = 256;
/** ntfy turns a message over 4096 bytes into an attachment; stay well under. */
const MAX_TEXT = 3500;

export interface DigestSnapshot {
  bans: number;
  unbans: number;
  byJail: Array<{ jail: string; bans: number; unbans: number }>;
  sample: BanEvent[];
  firstAt: number;
  lastAt: number;
}

/**
 * Ban and unban events waiting for the channel's next slot, summarized as they arrive: counts per
 * jail and the first few events. Constant memory whatever the flood.
 */
export class DigestAccumulator {
  private bans = 0;
  private unbans = 0;
  private byJail = new Map<string, { bans: number; unbans: number }>();
  private sample: BanEvent[] = [];
  private firstAt = 0;
  private lastAt = 0;

  get size(): number {
    return this.bans + this.unbans;
  }

  add(event: BanEvent): void {
    if (this.size === 0) this.firstAt = event.at;
    this.lastAt = event.at;
    if (event.kind === 'ban') this.bans++;
    else this.unbans++;
    const key = this.byJail.has(event.jail) || this.byJail.size < MAX_DIGEST_JAILS ? event.jail : '(other jails)';
    const counts = this.byJail.get(key) ?? { bans: 0, unbans: 0 };
    if (event.kind === 'ban') counts.bans++;
    else counts.unbans++;
    this.byJail.set(key, counts);
    if (this.sample.length < SAMPLE_SIZE) this.sample.push(event);
  }

  /** Returns what was gathered and starts empty. */
  take(): DigestSnapshot {
    const snapshot: DigestSnapshot = {
      bans: this.bans,
      unbans: this.unbans,
      byJail: [...this.byJail].map(([jail, c]) => ({ jail, ...c })).sort((a, b) => b.bans + b.unbans - (a.bans + a.unbans) || a.jail.localeCompare(b.jail)),
      sample: this.sample,
      firstAt: this.firstAt,
      lastAt: this.lastAt,
    };
    this.bans = 0;
    this.unbans = 0;
    this.byJail = new Map();
    this.sample = [];
    return snapshot;
  }
}

export function banMessage(event: BanEvent): OutgoingMessage {
  const ban = event.kind === 'ban';
  const length = !ban ? '' : event.expiresAt === null ? ' permanently' : ` for ${humanDuration(event.expiresAt - event.at)}`;
  const repeat = ban && event.banCount > 1 ? ` (ban #${event.banCount})` : '';
  return {
    kind: event.kind,
    title: ascii(`${ban ? 'Banned' : 'Unbanned'} ${event.address} (${event.jail})`),
    text: ban
      ? `${event.address} banned by jail ${event.jail} in ${event.target}${length}${repeat}.`
      : `${event.address} is no longer banned by jail ${event.jail} in ${event.target}.`,
    urgency: ban ? 'normal' : 'quiet',
    tags: [ban ? 'no_entry' : 'unlock'],
    at: event.at,
    data: { ...event, expiresAt: event.expiresAt === null ? null : new Date(event.expiresAt).toISOString(), at: new Date(event.at).toISOString() },
  };
}

/**
 * One message for many events: "9,999 more bans in the last 60 s: top jails …, sample addresses …".
 * `windowStart` is when the channel last sent (the digest covers everything since).
 */
export function digestMessage(digest: DigestSnapshot, windowStart: number, now: number): OutgoingMessage {
  const parts = [digest.bans > 0 ? plural(digest.bans, 'ban') : null, digest.unbans > 0 ? plural(digest.unbans, 'unban') : null].filter((p) => p !== null);
  const seconds = Math.max(1, Math.round((now - Math.min(windowStart, digest.firstAt)) / 1000));
  const top = digest.byJail
    .slice(0, TOP_JAILS)
    .map(
      (j) => `${j.jail} ${[j.bans > 0 ? plural(j.bans, 'ban') : null, j.unbans > 0 ? plural(j.unbans, 'unban') : null].filter((p) => p !== null).join(', ')}`,
    );
  const more = digest.byJail.length > TOP_JAILS ? `, and ${digest.byJail.length - TOP_JAILS} more jails` : '';
  const sample = digest.sample.map((e) => `${e.address} (${e.kind === 'ban' ? '' : 'unban, '}${e.jail})`);
  const text = [
    `${[digest.bans > 0 ? plural(digest.bans, 'more ban') : null, digest.unbans > 0 ? plural(digest.unbans, digest.bans > 0 ? 'unban' : 'more unban') : null].filter((p) => p !== null).join(' and ')} in the last ${seconds} s.`,
    `Top jails: ${top.join('; ')}${more}.`,
    `Sample addresses: ${sample.join(', ')}.`,
  ].join('\n');
  return {
    kind: 'digest',
    title: ascii(`edgeban: ${parts.join(', ')}`),
    text,
    urgency: digest.bans > 0 ? 'normal' : 'quiet',
    tags: ['no_entry', 'bar_chart'],
    at: now,
    data: {
      bans: digest.bans,
      unbans: digest.unbans,
      byJail: digest.byJail,
      sample: digest.sample.map((e) => ({ kind: e.kind, address: e.address, jail: e.jail, target: e.target })),
      since: new Date(Math.min(windowStart, digest.firstAt)).toISOString(),
      until: new Date(now).toISOString(),
    },
  };
}

/** All alerts and recoveries waiting for the slot, as one message (the loudest sets its urgency). */
export function alertsMessage(alerts: readonly AlertEvent[], dropped: number, now: number): OutgoingMessage {
  const anyAlert = alerts.some((a) => a.kind === 'alert');
  const only = alerts.length === 1 && dropped === 0 ? alerts[0] : undefined;
  const count = alerts.length + dropped;
  const title = only ? only.title : `edgeban: ${count} ${anyAlert ? 'alerts' : 'recoveries'}`;
  const body = alerts.map((a) => (only ? a.text : `${a.title}: ${a.text}`));
  if (dropped > 0) body.push(`(${dropped} more alerts not shown: the alert queue was full)`);
  return {
    kind: anyAlert ? 'alert' : 'recovery',
    title: ascii(title),
    text: truncate(body.join('\n\n')),
    urgency: anyAlert ? 'alert' : 'quiet',
    tags: [anyAlert ? 'rotating_light' : 'white_check_mark'],
    at: now,
    data: {
      alerts: alerts.map((a) => ({ kind: a.kind, source: a.source, subject: a.subject, title: a.title, text: a.text, at: new Date(a.at).toISOString() })),
      dropped,
    },
  };
}

export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

function ascii(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

function truncate(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}
