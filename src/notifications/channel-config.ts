import ipaddr from 'ipaddr.js';
import { ConfigError } from '../config/fail2ban/config-error.ts';
import type { SourceRef } from '../config/fail2ban/filter-definition.ts';
import type { ActionRef, JailDefinition } from '../config/fail2ban/jail-definition.ts';

/**
 * Notification channels as the jails' `ntfy[…]` and `webhook[…]` actions describe them, checked
 * once at load. Two jails writing the same channel share ONE object (same id), so they share one
 * rate limit: a flood across jails still yields one message per interval on that phone.
 */

/** ntfy's priorities, 1 (min) … 5 (max); ntfy takes the digit or the word. */
export type NtfyPriority = 1 | 2 | 3 | 4 | 5;

interface ChannelBase {
  /** Identity for deduplication: every parameter that shapes the request (never logged: holds the token). */
  id: string;
  /** Safe to log and show: kind, server origin and where it was configured; no topic, path or token. */
  label: string;
  source: SourceRef;
}

export interface NtfyChannelConfig extends ChannelBase {
  kind: 'ntfy';
  /** Server base URL, no trailing slash. */
  url: string;
  topic: string;
  token: string | null;
  priority: NtfyPriority;
}

export interface WebhookChannelConfig extends ChannelBase {
  kind: 'webhook';
  url: string;
  token: string | null;
  /** Header carrying the token: `authorization` sends `Bearer <token>`, any other name sends the token as it is. */
  header: string;
}

export type ChannelConfig = NtfyChannelConfig | WebhookChannelConfig;

/** What the notifier needs from the configuration: the channels, and which jails notify which. */
export interface NotifyPlan {
  channels: ChannelConfig[];
  /** Jail name → ids of the channels its bans and unbans go to. */
  jailChannels: Record<string, string[]>;
}

const PRIORITY_WORDS: Record<string, NtfyPriority> = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 };
// ntfy's topic rule (server/server.go topicRegex).
const NTFY_TOPIC = /^[-_A-Za-z0-9]{1,64}$/;
// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Every distinct channel of the given (enabled, runnable) jails and each jail's share of them.
 * A mistake is a ConfigError naming the file and line of the action entry and the parameter.
 */
export function notifyPlan(jails: readonly JailDefinition[]): NotifyPlan {
  const byId = new Map<string, ChannelConfig>();
  const jailChannels: Record<string, string[]> = {};
  for (const jail of jails) {
    const ids: string[] = [];
    for (const action of jail.actions) {
      if (action.native !== 'ntfy' && action.native !== 'webhook') continue;
      const channel = action.native === 'ntfy' ? ntfyChannel(jail.name, action) : webhookChannel(jail.name, action);
      if (!byId.has(channel.id)) byId.set(channel.id, channel);
      if (!ids.includes(channel.id)) ids.push(channel.id);
    }
    if (ids.length > 0) jailChannels[jail.name] = ids;
  }
  return { channels: [...byId.values()], jailChannels };
}

function ntfyChannel(jail: string, action: ActionRef): NtfyChannelConfig {
  const where = located(action);
  const url = checkedUrl(jail, action, 'ntfyurl', param(action, 'ntfyurl'));
  const topic = param(action, 'ntfytopic');
  if (topic === '') throw new ConfigError(`jail ${jail}: ntfy[…] needs ntfytopic= (the topic to publish to)`, where('ntfytopic'));
  if (!NTFY_TOPIC.test(topic)) throw new ConfigError(`jail ${jail}: an ntfy topic is 1 to 64 letters, digits, - or _`, where('ntfytopic'));
  const token = param(action, 'ntfytoken') || null;
  const priorityText = param(action, 'ntfypriority').toLowerCase() || 'default';
  const priority = PRIORITY_WORDS[priorityText] ?? (/^[1-5]$/.test(priorityText) ? (Number(priorityText) as NtfyPriority) : null);
  if (priority === null) {
    throw new ConfigError(
      `jail ${jail}: "${priorityText.slice(0, 20)}" is not an ntfy priority (min, low, default, high, max, or 1 to 5)`,
      where('ntfypriority'),
    );
  }
  requireTls(jail, action, 'ntfyurl', url, token);
  return {
    kind: 'ntfy',
    url,
    topic,
    token,
    priority,
    source: action.source,
    id: JSON.stringify(['ntfy', url, topic, token, priority]),
    label: `ntfy ${new URL(url).origin} (${action.source.file}:${action.source.line})`,
  };
}

function webhookChannel(jail: string, action: ActionRef): WebhookChannelConfig {
  const where = located(action);
  const raw = param(action, 'url');
  if (raw === '') throw new ConfigError(`jail ${jail}: webhook[…] needs url= (where to POST)`, where('url'));
  const url = checkedUrl(jail, action, 'url', raw);
  const token = param(action, 'token') || null;
  const header = (param(action, 'header') || 'authorization').toLowerCase();
  if (!HEADER_NAME.test(header)) throw new ConfigError(`jail ${jail}: "${header.slice(0, 40)}" is not an HTTP header name`, where('header'));
  requireTls(jail, action, 'url', url, token);
  return {
    kind: 'webhook',
    url,
    token,
    header,
    source: action.source,
    id: JSON.stringify(['webhook', url, token, header]),
    // A webhook URL's path is often its secret (Slack, Discord): only the origin is shown.
    label: `webhook ${new URL(url).origin} (${action.source.file}:${action.source.line})`,
  };
}

function param(action: ActionRef, key: string): string {
  return (action.params[key] ?? '').trim();
}

function located(action: ActionRef): (key: string) => { file: string; line: number; key: string } {
  return (key) => ({ file: action.source.file, line: action.source.line, key });
}

function checkedUrl(jail: string, action: ActionRef, key: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The value may hold a secret path: say what is wrong, not what was written.
    throw new ConfigError(`jail ${jail}: not a URL (expected https://host[/path])`, located(action)(key));
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new ConfigError(`jail ${jail}: expected an https:// URL, got ${url.protocol}`, located(action)(key));
  if (url.username || url.password) throw new ConfigError(`jail ${jail}: no credentials in the URL; use the token parameter`, located(action)(key));
  if (url.hash) throw new ConfigError(`jail ${jail}: no #fragment expected in the URL`, located(action)(key));
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}${url.search}`;
}

/** A token must not cross a network in clear: with one, plain http is accepted only towards loopback. */
function requireTls(jail: string, action: ActionRef, key: string, url: string, token: string | null): void {
  const parsed = new URL(url);
  if (token === null || parsed.protocol === 'https:' || isLoopback(parsed.hostname)) return;
  throw new ConfigError(`jail ${jail}: ${parsed.origin}: a token is sent only over https (plain http only for loopback)`, located(action)(key));
}

function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  const bare = hostname.replace(/^\[|\]$/g, '');
  return ipaddr.isValid(bare) && ipaddr.process(bare).range() === 'loopback';
}
