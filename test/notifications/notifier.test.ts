import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PipelineStats } from '../../src/daemon/jail-pipeline.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { attackers, startHarness } from '../helpers/enforcement-harness.ts';
import { advanceUntil, CapturedLog, idle, HOOK_TOKEN, NTFY_TOKEN, ntfyChannel, openLedger, startNotifier, TARGET, webhookChannel } from './helpers.ts';
import { startReceiver, type Received } from './ntfy-receiver.ts';

const MINUTE = 60_000;

function noSecretsIn(log: CapturedLog): void {
  const all = log.lines.join('\n');
  assert.ok(!all.includes(NTFY_TOKEN) && !all.includes(HOOK_TOKEN), 'a token reached the logs');
}

/** "9,999 more bans" → 9999; the counts a digest or single message announces. */
function bansAnnounced(r: Received): number {
  if (/^Banned /.test(String(r.headers.title))) return 1;
  const match = /^([\d,]+) more bans?\b/.exec(r.body);
  assert.ok(match, `not a ban digest: ${r.body.slice(0, 120)}`);
  return Number(match[1]!.replace(/,/g, ''));
}

test('a ban of a notifying jail → one ntfy publish to its topic with priority, tags and the bearer token; other jails stay quiet', async (t) => {
  const receiver = await startReceiver(t, { token: NTFY_TOKEN });
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const channel = ntfyChannel(receiver.url);
  const notifier = startNotifier(t, { clock, log, ledger, plan: { channels: [channel], jailChannels: { dovecot: [channel.id] } } });

  await ledger.ban({ target: TARGET, address: '198.51.100.7', jail: 'dovecot', origin: 'jail', durationMs: 600_000 });
  await ledger.ban({ target: TARGET, address: '198.51.100.8', jail: 'postfix', origin: 'jail', durationMs: 600_000 });
  await receiver.until('the publish', (r) => r.length >= 1);
  await idle(notifier);
  assert.equal(receiver.requests.length, 1, 'postfix notifies nobody');
  const [push] = receiver.published('bans');
  assert.ok(push);
  assert.equal(push.method, 'POST');
  assert.equal(push.headers.authorization, `Bearer ${NTFY_TOKEN}`);
  assert.equal(push.headers.priority, '5');
  assert.equal(push.headers.title, 'Banned 198.51.100.7 (dovecot)');
  assert.equal(push.headers.tags, 'no_entry');
  assert.match(push.body, /198\.51\.100\.7 banned by jail dovecot in fail2ban_blocklist for 10 min/);

  // Its end, after the rate-limit interval: an unban, quieter (at most "low").
  await clock.advance(11 * MINUTE);
  await receiver.until('the unban', (r) => r.length >= 2);
  const unban = receiver.requests[1]!;
  assert.equal(unban.headers.title, 'Unbanned 198.51.100.7 (dovecot)');
  assert.equal(unban.headers.priority, '2');
  assert.deepEqual(notifier.stats().events, { bans: 1, unbans: 1, alerts: 0, recoveries: 0 });
  noSecretsIn(log);
});

test('10,000 bans: the first is pushed at once, the rest arrive as one digest per interval whose counts add up', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const channel = ntfyChannel(receiver.url, { token: null });
  // Two jails writing the same channel share it: one rate limit for both.
  const notifier = startNotifier(t, { clock, log, ledger, plan: { channels: [channel], jailChannels: { dovecot: [channel.id], postfix: [channel.id] } } });

  const addresses = attackers(10_000);
  // 50 batches of 200, 3 s apart: 150 s of flood.
  for (let batch = 0; batch < 50; batch++) {
    const slice = addresses.slice(batch * 200, (batch + 1) * 200);
    await ledger.banMany(
      slice.map((address, i) => ({ target: TARGET, address, jail: i % 4 === 0 ? 'postfix' : 'dovecot', origin: 'jail' as const, durationMs: 86_400_000 })),
    );
    await clock.advance(3_000);
  }
  await advanceUntil(clock, 10_000, () => notifier.stats().channels[0]!.pendingEvents === 0, 'every ban announced');
  await idle(notifier);
  await receiver.until('the last digest', (r) => r.length >= 1 && r.reduce((n, x) => n + bansAnnounced(x), 0) >= 10_000);

  const pushes = receiver.requests;
  // 150 s of flood at one message per 60 s: the first ban, then at most one digest per interval.
  assert.ok(pushes.length <= 5, `${pushes.length} pushes for 10,000 bans`);
  assert.equal(bansAnnounced(pushes[0]!), 1, 'the first ban goes out alone, at once');
  assert.equal(
    pushes.reduce((n, r) => n + bansAnnounced(r), 0),
    10_000,
  );
  const digest = pushes[1]!;
  assert.match(digest.body, /in the last \d+ s\./);
  assert.match(digest.body, /Top jails: dovecot [\d,]+ bans; postfix [\d,]+ bans\./);
  assert.match(digest.body, /Sample addresses: 192\.0\.2\.\d+ \(dovecot\)/);
  assert.equal(digest.headers.title?.toString().startsWith('edgeban: '), true);
  const stats = notifier.stats().channels[0]!;
  assert.equal(stats.sent, pushes.length);
  assert.equal(stats.digested, 9_999);
});

test('10,000 bans in one burst: exactly two pushes, the ban and one digest of 9,999; stop() during a retry wait sends nothing more', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const channel = ntfyChannel(receiver.url);
  const notifier = startNotifier(t, { clock, log, ledger, plan: { channels: [channel], jailChannels: { dovecot: [channel.id] } } });
  await ledger.banMany(attackers(10_000).map((address) => ({ target: TARGET, address, jail: 'dovecot', origin: 'jail' as const, durationMs: null })));
  await receiver.until('the first ban', (r) => r.length >= 1);
  for (let i = 0; i < 10; i++) await clock.advance(30_000);
  await receiver.until('the digest', (r) => r.length >= 2);
  await idle(notifier);
  assert.deepEqual(receiver.requests.map(bansAnnounced), [1, 9_999]);

  // A failing server: the retry waits on the clock; stop() ends the wait, and nothing more is sent.
  receiver.failNext(10, 503);
  await clock.advance(MINUTE);
  await ledger.ban({ target: TARGET, address: '203.0.113.77', jail: 'dovecot', origin: 'jail', durationMs: null });
  await receiver.until('the failed attempt', (r) => r.length >= 3);
  await notifier.stop();
  await clock.advance(10 * MINUTE);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 3);
  assert.equal(clock.pendingTimers(), 0, 'no timer left behind');
});

test('retries: 500 then 200 → delivered once; 429 waits its Retry-After on the clock; 400 is not retried and is logged', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const channel = ntfyChannel(receiver.url);
  const notifier = startNotifier(t, { clock, log, ledger, plan: { channels: [channel], jailChannels: { dovecot: [channel.id] } } });
  const ban = (address: string) => ledger.ban({ target: TARGET, address, jail: 'dovecot', origin: 'jail', durationMs: null });

  receiver.failNext(1, 500);
  await ban('198.51.100.1');
  await receiver.until('the failed attempt', (r) => r.length >= 1);
  await advanceUntil(clock, 500, () => receiver.published().length >= 1, 'the retry');
  await idle(notifier);
  assert.deepEqual(
    receiver.requests.map((r) => r.status),
    [500, 200],
  );
  assert.match(receiver.requests[1]!.body, /198\.51\.100\.1 banned .* permanently/);

  receiver.failNext(1, 429, { 'retry-after': '30' });
  await clock.advance(MINUTE);
  await ban('198.51.100.2');
  await receiver.until('the throttled attempt', (r) => r.length >= 3);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await clock.advance(29_000);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 3, 'retried before Retry-After');
  await clock.advance(1_000);
  await receiver.until('the retry after 30 s', (r) => r.length >= 4);
  await idle(notifier);
  assert.deepEqual(
    receiver.requests.map((r) => r.status),
    [500, 200, 429, 200],
  );

  receiver.failNext(1, 400);
  await clock.advance(MINUTE);
  await ban('198.51.100.3');
  await receiver.until('the refused attempt', (r) => r.length >= 5);
  await idle(notifier);
  for (let i = 0; i < 10; i++) await clock.advance(10_000);
  await idle(notifier);
  assert.equal(receiver.requests.length, 5, 'a 400 is not retried');
  const stats = notifier.stats().channels[0]!;
  assert.equal(stats.sent, 2);
  assert.equal(stats.failed, 1);
  assert.equal(stats.retries, 2);
  const refused = log.entries().filter((e) => e.msg === 'notification refused; not retried (check the channel settings)');
  assert.equal(refused.length, 1);
  assert.match(String(refused[0]!.problem), /^HTTP 400/);
  assert.match(String(refused[0]!.channel), /^ntfy http:\/\/127\.0\.0\.1:\d+ \(jail\.local:3\)$/);
  noSecretsIn(log);
});

test('watchdog: a log silent for the configured time raises one alert, and one message when lines come back', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const mail = ntfyChannel(receiver.url, { topic: 'mail' });
  const web = webhookChannel(`${receiver.url}/hook`);
  const file = { path: '/remotelogs/mail/mail.log', offset: 0, inode: 1, lastLineAt: clock.now() as number | null, error: null };
  const follower = { files: [file], linesDelivered: 0, linesTruncated: 0, invalidUtf8Lines: 0, rotations: 0, errors: 0 };
  const sources = (): PipelineStats[] => [
    { jail: 'dovecot', lines: 0, matches: 0, unusable: 0, old: 0, follower },
    { jail: 'postfix', lines: 0, matches: 0, unusable: 0, old: 0, follower },
  ];
  // No jail notifies bans: system alerts still go to every configured channel.
  startNotifier(t, {
    clock,
    log,
    ledger,
    sources,
    checkIntervalMs: 10_000,
    env: { notifyIntervalSec: 60, watchdogSilenceSec: 3600, enforcementAlertAfterSec: 300 },
    plan: { channels: [mail, web], jailChannels: {} },
  });

  await clock.advance(59 * MINUTE);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 0, 'alert before the silence threshold');
  await clock.advance(MINUTE);
  await receiver.until('the alert on both channels', (r) => r.length >= 2);
  const alert = receiver.published('mail')[0]!;
  assert.equal(alert.headers.title, 'Log silent: /remotelogs/mail/mail.log');
  assert.equal(alert.headers.priority, '5');
  assert.match(alert.body, /\(jails dovecot, postfix\) has been silent for 60 min/);
  const hook = JSON.parse(receiver.requests.find((r) => r.path === '/hook')!.body) as { event: string; alerts: Array<{ source: string; subject: string }> };
  assert.equal(hook.event, 'alert');
  assert.deepEqual(
    hook.alerts.map((a) => [a.source, a.subject]),
    [['watchdog', '/remotelogs/mail/mail.log']],
  );

  // Still silent for hours: no second alert.
  for (let i = 0; i < 30; i++) await clock.advance(10 * MINUTE);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 2, 'one alert per silence');

  file.lastLineAt = clock.now();
  await clock.advance(20_000);
  await receiver.until('the recovery on both channels', (r) => r.length >= 4);
  const back = receiver.published('mail')[1]!;
  assert.equal(back.headers.title, 'Log written again: /remotelogs/mail/mail.log');
  for (let i = 0; i < 30; i++) await clock.advance(10 * MINUTE);
  await new Promise((resolve) => setTimeout(resolve, 100));
  // Silent again for 5 h after the recovery: a new silence, a new alert (one).
  assert.equal(receiver.published('mail').length, 3);
  assert.equal(receiver.published('mail')[2]!.headers.title, 'Log silent: /remotelogs/mail/mail.log');
});

test('enforcement failing: a firewall unreachable past the threshold raises one alert with its error; back in sync, one recovery', async (t) => {
  const receiver = await startReceiver(t);
  const h = await startHarness(t);
  await h.reconciler.start();
  const channel = ntfyChannel(receiver.url, { priority: 3 });
  startNotifier(t, {
    clock: h.clock,
    log: h.log,
    ledger: h.ledger,
    targets: () => [h.reconciler.status()],
    checkIntervalMs: 10_000,
    env: { notifyIntervalSec: 60, watchdogSilenceSec: 0, enforcementAlertAfterSec: 300 },
    plan: { channels: [channel], jailChannels: {} },
  });

  h.sim.setFaults({ refuse: true });
  await h.ledger.ban({ target: TARGET, address: '203.0.113.9', jail: 'dovecot', origin: 'jail', durationMs: null });
  await h.reconciler.idle();
  assert.equal(h.reconciler.status().state, 'unreachable');
  // A short outage (a firewall reboot) says nothing.
  for (let s = 0; s < 240; s += 10) {
    await h.clock.advance(10_000);
    await h.reconciler.idle();
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 0);
  for (let s = 0; s < 600; s += 10) {
    await h.clock.advance(10_000);
    await h.reconciler.idle();
  }
  await receiver.until('the alert', (r) => r.length >= 1);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(receiver.requests.length, 1, 'one alert for the outage');
  const alert = receiver.requests[0]!;
  assert.match(String(alert.headers.title), /^Bans not enforced on http:\/\/127\.0\.0\.1:\d+ fail2ban_blocklist$/);
  assert.equal(alert.headers.priority, '4', 'alerts at least high');
  assert.equal(alert.headers.tags, 'rotating_light');
  assert.match(alert.body, /has been unreachable for \d+ min: .*(refused|ECONNREFUSED)/i);

  h.sim.setFaults({ refuse: false });
  await advanceUntil(h.clock, 10_000, () => receiver.requests.length >= 2, 'the recovery');
  assert.equal(h.reconciler.status().state, 'in-sync');
  const back = receiver.requests[1]!;
  assert.match(String(back.headers.title), /^Bans enforced again on /);
  assert.equal(back.headers.priority, '2');
  assert.deepEqual(h.sim.tableEntries('fail2ban_blocklist'), ['203.0.113.9']);
});

test('alerts are not starved by a ban flood: the next slot carries the alert, the digest follows with its full count', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const channel = ntfyChannel(receiver.url);
  let state: 'in-sync' | 'degraded' = 'in-sync';
  const targets = () => [
    {
      id: 'fw1 fail2ban_blocklist',
      kind: 'opnsense',
      alias: TARGET,
      ledgerTarget: TARGET,
      state,
      aliasType: 'external',
      inAlias: 0,
      pending: 0,
      rejected: [],
      killStates: true,
      lastPass: null,
      lastSuccess: null,
      successfulPasses: 0,
      lastError:
        state === 'degraded' ? { kind: 'auth' as const, message: 'authentication failed: check OPNSENSE_KEY and OPNSENSE_SECRET', at: clock.now() } : null,
    },
  ];
  const notifier = startNotifier(t, {
    clock,
    log,
    ledger,
    targets,
    checkIntervalMs: 5_000,
    env: { notifyIntervalSec: 60, watchdogSilenceSec: 0, enforcementAlertAfterSec: 30 },
    plan: { channels: [channel], jailChannels: { dovecot: [channel.id] } },
  });
  await ledger.banMany(attackers(500).map((address) => ({ target: TARGET, address, jail: 'dovecot', origin: 'jail' as const, durationMs: null })));
  state = 'degraded';
  await advanceUntil(clock, 5_000, () => receiver.requests.length >= 3, 'ban, alert, digest', 100);
  await idle(notifier);
  const kinds = receiver.requests.map((r) => String(r.headers.title));
  assert.equal(kinds[0], `Banned ${attackers(1)[0]} (dovecot)`);
  assert.equal(kinds[1], 'Bans not enforced on fw1 fail2ban_blocklist');
  assert.match(receiver.requests[1]!.body, /degraded for 30 s: authentication failed/);
  assert.equal(kinds[2], 'edgeban: 499 bans');
  assert.match(receiver.requests[2]!.body, /^499 more bans in the last 1\d\d s\./);
});

test('webhook: a JSON POST with the event fields and the token as a bearer, or in a header of its own', async (t) => {
  const receiver = await startReceiver(t);
  const clock = new ManualClock();
  const log = new CapturedLog();
  const ledger = await openLedger(t, clock, log);
  const bearer = webhookChannel(`${receiver.url}/hooks/edgeban?src=1`);
  const keyed = webhookChannel(`${receiver.url}/other`, { header: 'x-api-key', token: 'apikey-abcdef123' });
  startNotifier(t, { clock, log, ledger, plan: { channels: [bearer, keyed], jailChannels: { traefik: [bearer.id, keyed.id] } } });

  await ledger.ban({ target: TARGET, address: '2001:db8::1', jail: 'traefik', origin: 'jail', durationMs: 3_600_000 });
  await receiver.until('both hooks', (r) => r.length >= 2);
  const first = receiver.requests.find((r) => r.path === '/hooks/edgeban?src=1')!;
  assert.equal(first.headers['content-type'], 'application/json');
  assert.equal(first.headers.authorization, `Bearer ${HOOK_TOKEN}`);
  const body = JSON.parse(first.body) as Record<string, unknown>;
  assert.equal(body.source, 'edgeban');
  assert.equal(body.event, 'ban');
  assert.equal(body.address, '2001:db8::1');
  assert.equal(body.jail, 'traefik');
  assert.equal(body.target, TARGET);
  assert.equal(body.banCount, 1);
  assert.equal(body.expiresAt, new Date(clock.now() + 3_600_000).toISOString());
  assert.equal(body.title, 'Banned 2001:db8::1 (traefik)');
  const second = receiver.requests.find((r) => r.path === '/other')!;
  assert.equal(second.headers['x-api-key'], 'apikey-abcdef123');
  assert.equal(second.headers.authorization, undefined);
});
