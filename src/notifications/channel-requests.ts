import type { ChannelConfig, NtfyChannelConfig, NtfyPriority, WebhookChannelConfig } from './channel-config.ts';
import type { HttpPost } from './http-delivery.ts';
import type { OutgoingMessage } from './messages.ts';

/** The HTTP request that carries one message to one channel. */
export function requestFor(channel: ChannelConfig, message: OutgoingMessage): HttpPost {
  return channel.kind === 'ntfy' ? ntfyRequest(channel, message) : webhookRequest(channel, message);
}

/**
 * ntfy's header form (docs.ntfy.sh/publish): POST <server>/<topic>, the body is the message, Title,
 * Priority and Tags as headers. Chosen over the JSON form (POST <server>/ with {"topic", …}) because
 * it is what fail2ban's and most tools' ntfy actions send, the topic stays in the path where a
 * reverse proxy or ntfy's per-topic access control sees it, and a server under a path prefix works
 * as written in ntfyurl. The header form's one limit, ASCII headers, holds: titles are made ASCII.
 */
export function ntfyRequest(channel: NtfyChannelConfig, message: OutgoingMessage): HttpPost {
  const headers: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    title: message.title,
    priority: String(ntfyPriority(channel.priority, message.urgency)),
    tags: message.tags.join(','),
  };
  if (channel.token !== null) headers.authorization = `Bearer ${channel.token}`;
  return { url: `${channel.url}/${channel.topic}`, headers, body: message.text };
}

/**
 * The configured priority is for bans and digests; unbans and recoveries are quieter (at most low),
 * failures louder (at least high): a lost enforcement matters more than one more ban.
 */
export function ntfyPriority(configured: NtfyPriority, urgency: OutgoingMessage['urgency']): NtfyPriority {
  if (urgency === 'quiet') return Math.min(configured, 2) as NtfyPriority;
  if (urgency === 'alert') return Math.max(configured, 4) as NtfyPriority;
  return configured;
}

/** A JSON POST: `event`, `title`, `message`, `urgency`, `time` and the event's own fields. */
export function webhookRequest(channel: WebhookChannelConfig, message: OutgoingMessage): HttpPost {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (channel.token !== null) headers[channel.header] = channel.header === 'authorization' ? `Bearer ${channel.token}` : channel.token;
  const body = {
    source: 'edgeban',
    event: message.kind,
    title: message.title,
    message: message.text,
    urgency: message.urgency,
    time: new Date(message.at).toISOString(),
    ...message.data,
  };
  return { url: channel.url, headers, body: JSON.stringify(body) };
}
