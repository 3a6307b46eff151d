/**
 * Deterministic log generators for the detection benchmarks: the same seed and size give the
 * same bytes, so every run (and both tools in a run) reads the same input. Attackers come from
 * the documentation ranges only (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), never from
 * 192.0.2.0/24, which holds this machine's own address and gateway.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { seededRandom } from '../src/util/seeded-random.ts';

export const SEED = 20261121;
/** Generated logs are cached here between runs (regenerated when missing): never in the repository. */
export const DEFAULT_DATA_DIR = path.join(tmpdir(), 'edgeban-bench-data');
/** Bumped whenever a generator changes, so a cached log of an older generator is not reused. */
const GENERATOR_VERSION = 2;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

export interface Gen {
  rand: () => number;
  pick: <T>(items: readonly T[]) => T;
  int: (n: number) => number;
}

function gen(seed: number): Gen {
  const rand = seededRandom(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  return { rand, int, pick: (items) => items[int(items.length)] as (typeof items)[number] };
}

function attacker(g: Gen): string {
  const r = g.rand();
  if (r < 0.6) return `198.51.100.${1 + g.int(254)}`;
  if (r < 0.95) return `203.0.113.${1 + g.int(254)}`;
  return `2001:db8::${(1 + g.int(0xfffe)).toString(16)}`;
}

/** A syslog stamp (no year) in UTC. */
export function syslogStamp(date: Date): string {
  return `${MONTHS[date.getUTCMonth()]} ${String(date.getUTCDate()).padStart(2, ' ')} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
}

// Fixed start (Oct 1 2025, one mail line every ~0.5 s): well before any plausible "now".
const START = Date.UTC(2025, 9, 1);
const mailStamp = (i: number): string => syslogStamp(new Date(START + Math.floor(i / 2) * 1000));

const USERS = ['admin', 'info', 'test', 'alice', 'bob', 'postmaster', 'sales', 'support', 'root', 'webmaster'];

/** A mail log as Dovecot and Postfix write it side by side (mostly Dovecot). */
export function dovecotLine(g: Gen, i: number): string {
  const ts = mailStamp(i);
  const ip = attacker(g);
  const pid = 1000 + g.int(9000);
  const sess = g.int(1 << 30).toString(36);
  const r = g.rand();
  if (r < 0.2)
    return `${ts} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<${g.pick(USERS)}>, method=PLAIN, rip=${ip}, lip=10.0.0.2, TLS, session=<${sess}>`;
  if (r < 0.3)
    return `${ts} mail dovecot: auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=${g.pick(USERS)} rhost=${ip}`;
  if (r < 0.35) return `${ts} mail dovecot: auth-worker(${pid}): pam(${g.pick(USERS)},${ip},<${sess}>): unknown user`;
  if (r < 0.55)
    return `${ts} mail dovecot: imap-login: Login: user=<${g.pick(USERS)}@example.org>, method=PLAIN, rip=10.0.1.${g.int(250)}, lip=10.0.0.2, mpid=${pid}, TLS, session=<${sess}>`;
  if (r < 0.7)
    return `${ts} mail dovecot: imap(${g.pick(USERS)}@example.org)<${pid}><${sess}>: Logged out in=${g.int(9999)} out=${g.int(99999)} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0`;
  if (r < 0.8) return `${ts} mail dovecot: pop3-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=${ip}, lip=10.0.0.2, session=<${sess}>`;
  if (r < 0.9) return `${ts} mail postfix/smtpd[${pid}]: connect from unknown[${ip}]`;
  return `${ts} mail postfix/smtpd[${pid}]: disconnect from unknown[${ip}] ehlo=1 auth=0/1 quit=1 commands=2/3`;
}

/** A Postfix mail log. */
export function postfixLine(g: Gen, i: number): string {
  const ts = mailStamp(i);
  const ip = attacker(g);
  const pid = 1000 + g.int(9000);
  const qid = g.int(0xfffffff).toString(16).toUpperCase().padStart(10, '0');
  const r = g.rand();
  if (r < 0.12)
    return `${ts} mail postfix/smtpd[${pid}]: NOQUEUE: reject: RCPT from unknown[${ip}]: 554 5.7.1 <spam@example.net>: Relay access denied; from=<x@example.com> to=<spam@example.net> proto=ESMTP helo=<example.com>`;
  if (r < 0.2)
    return `${ts} mail postfix/smtpd[${pid}]: NOQUEUE: reject: RCPT from unknown[${ip}]: 550 5.1.1 <${g.pick(USERS)}@example.org>: Recipient address rejected: User unknown in virtual mailbox table; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x>`;
  if (r < 0.3) return `${ts} mail postfix/smtpd[${pid}]: warning: unknown[${ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`;
  if (r < 0.5) return `${ts} mail postfix/smtpd[${pid}]: connect from unknown[${ip}]`;
  if (r < 0.65) return `${ts} mail postfix/smtpd[${pid}]: disconnect from unknown[${ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`;
  if (r < 0.8) return `${ts} mail postfix/qmgr[${pid}]: ${qid}: from=<news@example.com>, size=${g.int(99999)}, nrcpt=1 (queue active)`;
  if (r < 0.9)
    return `${ts} mail postfix/smtp[${pid}]: ${qid}: to=<${g.pick(USERS)}@example.net>, relay=mx.example.net[198.51.100.25]:25, delay=0.4, delays=0.1/0/0.2/0.1, dsn=2.0.0, status=sent (250 OK)`;
  return `${ts} mail postfix/cleanup[${pid}]: ${qid}: message-id=<${qid}@example.org>`;
}

const PATHS = [
  '/',
  '/index.html',
  '/css/site.css',
  '/js/app.js',
  '/img/logo.png',
  '/api/items?page=2',
  '/login',
  '/.env',
  '/.git/config',
  '/wp-login.php',
  '/admin/',
  '/favicon.ico',
];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'curl/8.5.0',
  'Mozilla/5.0 (compatible; bot/1.0)',
  'Go-http-client/1.1',
];

/** A combined-format access log (nginx, Apache, Traefik's CLF). */
export function accessLine(g: Gen, i: number): string {
  const t = new Date(START + i * 100);
  const stamp = `${pad(t.getUTCDate())}/${MONTHS[t.getUTCMonth()]}/${t.getUTCFullYear()}:${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())} +0000`;
  const r = g.rand();
  const status = r < 0.1 ? 403 : r < 0.15 ? 404 : r < 0.2 ? 401 : r < 0.25 ? 304 : 200;
  const method = g.rand() < 0.85 ? 'GET' : 'POST';
  return `${attacker(g)} - - [${stamp}] "${method} ${g.pick(PATHS)} HTTP/1.1" ${status} ${g.int(50000)} "-" "${g.pick(AGENTS)}"`;
}

export type LogKind = 'dovecot' | 'postfix' | 'access';
const MAKERS: Record<LogKind, { make: (g: Gen, i: number) => string; seed: number }> = {
  dovecot: { make: dovecotLine, seed: SEED },
  postfix: { make: postfixLine, seed: SEED + 1 },
  access: { make: accessLine, seed: SEED + 2 },
};

/**
 * The log of `kind` with `lines` lines in dataDir, generated unless a complete copy is there
 * (its name carries generator version, seed and size; a `.lines` marker is written last).
 */
export async function generatedLog(dataDir: string, kind: LogKind, lines: number): Promise<string> {
  const { make, seed } = MAKERS[kind];
  const file = path.join(dataDir, `${kind}-v${GENERATOR_VERSION}-${seed}-${lines}.log`);
  const complete = await stat(`${file}.lines`).then(
    (s) => s.isFile(),
    () => false,
  );
  if (complete) return file;
  await mkdir(dataDir, { recursive: true });
  const g = gen(seed);
  const out = createWriteStream(file);
  const finished = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
  });
  let chunk = '';
  for (let i = 0; i < lines; i++) {
    chunk += `${make(g, i)}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
      chunk = '';
    }
  }
  out.end(chunk);
  await finished;
  await writeFile(`${file}.lines`, `${lines}\n`);
  return file;
}
