import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadEnv } from '../config/env.ts';
import { Daemon } from '../daemon/daemon.ts';
import { createLogger } from '../logging/logger.ts';
import { SecretScrubber } from '../logging/secret-scrubber.ts';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../simulator/opnsense-simulator.ts';
import { systemClock } from '../util/clock.ts';

// `npm run demo`: the main job on embedded defaults, nothing beyond loopback. A simulated OPNsense,
// sample mail and web logs with attacks written while edgeban runs with the shipped jails, and
// readable lines as bans reach the alias and as they end.
const ALIAS = 'fail2ban_blocklist';
const KEY = 'demoKey0123456789abcdefghij';
const SECRET = 'demoSecret0123456789abcdefghij';
const BANTIME_SEC = 6;
let started = Date.now();
const say = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function syslogStamp(d = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function clfStamp(d = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const offset = -d.getTimezoneOffset();
  const zone = `${offset >= 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zone}`;
}
const dovecot = (rip: string, user: string) =>
  `${syslogStamp()} mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<${user}>, method=PLAIN, rip=${rip}, lip=10.0.0.2, TLS, session=<demo>\n`;
const postfix = (ip: string) => `${syslogStamp()} mail postfix/smtpd[2101]: warning: unknown[${ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n`;
const traefik = (ip: string, urlPath: string, status: number) =>
  `${ip} - - [${clfStamp()}] "GET ${urlPath} HTTP/1.1" ${status} 17 "-" "curl/8.5.0" 7 "app@docker" "http://10.0.0.6:80" 2ms\n`;

/** Runs the demo; resolves with the exit code. */
export async function runDemo(): Promise<number> {
  started = Date.now();
  const root = await mkdtemp(path.join(tmpdir(), 'edgeban-demo-'));
  const mailLog = path.join(root, 'logs', 'mail.log');
  const webLog = path.join(root, 'logs', 'traefik', 'access.log');
  await mkdir(path.dirname(webLog), { recursive: true });
  await writeFile(mailLog, '');
  await writeFile(webLog, '');
  await mkdir(path.join(root, 'config'));
  await writeFile(
    path.join(root, 'config', 'jail.local'),
    [
      '# What a user writes: the shipped jails, enabled, on their log files.',
      '[DEFAULT]',
      `bantime = ${BANTIME_SEC}`,
      'findtime = 10m',
      'maxretry = 3',
      '',
      '[dovecot]',
      'enabled = true',
      `logpath = ${mailLog}`,
      '',
      '[postfix]',
      'enabled = true',
      `logpath = ${mailLog}`,
      '',
      '[traefik]',
      'enabled = true',
      `logpath = ${webLog}`,
      '',
    ].join('\n'),
  );

  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES }],
    authFailDelayMs: 0,
    faults: { latencyMs: 5 },
  });
  const warnings: string[] = [];
  const scrubber = new SecretScrubber([SECRET]);
  const logger = createLogger({
    level: 'warn',
    scrubber,
    destination: {
      write: (line: string) => {
        warnings.push(String((JSON.parse(line) as { msg?: string }).msg ?? line));
      },
    },
  });
  const env = loadEnv({
    envFile: path.join(root, 'no.env'),
    env: {
      OPNSENSE_URL: sim.url,
      OPNSENSE_KEY: KEY,
      OPNSENSE_SECRET: SECRET,
      EDGEBAN_DATA_DIR: path.join(root, 'data'),
      EDGEBAN_CONFIG_DIR: path.join(root, 'config'),
      EDGEBAN_RECONCILE_INTERVAL: '2',
    },
  });
  say(`OPNsense simulator on ${sim.url}, External alias ${ALIAS}; logs and state in ${root}`);
  const daemon = await Daemon.start({ env, clock: systemClock, logger, scrubber });
  say('edgeban runs the shipped dovecot, postfix and traefik jails (maxretry 3, bantime 6 s)');

  const alias = () => sim.tableEntries(ALIAS);
  const appended = new Map<string, number>();
  const seen = new Set<string>();
  const everSeen = new Set<string>();
  let stopWatching = false;
  // Prints each change of the alias as it happens, with the time from the deciding log line.
  const watcher = (async () => {
    for (let i = 0; i < 100_000 && !stopWatching; i++) {
      const now = new Set(alias());
      for (const address of now) {
        if (seen.has(address)) continue;
        seen.add(address);
        everSeen.add(address);
        const t0 = appended.get(address);
        say(`BANNED   ${address.padEnd(16)} in the alias${t0 === undefined ? '' : `, ${Date.now() - t0} ms after its deciding log line`}`);
      }
      for (const address of [...seen]) {
        if (now.has(address)) continue;
        seen.delete(address);
        say(`UNBANNED ${address.padEnd(16)} ban ended, removed from the alias`);
      }
      await sleep(10);
    }
  })();

  async function attack(label: string, file: string, lines: string[], decidingAddress: string | null): Promise<void> {
    say(label);
    for (let i = 0; i < lines.length; i++) {
      if (i === lines.length - 1 && decidingAddress) appended.set(decidingAddress, Date.now());
      await appendFile(file, lines[i]!);
      await sleep(30);
    }
  }

  let failed = false;
  try {
    await attack(
      'Dovecot brute force from 192.0.2.10 (3 failed IMAP logins)',
      mailLog,
      [1, 2, 3].map(() => dovecot('192.0.2.10', 'alice')),
      '192.0.2.10',
    );
    await attack(
      'Postfix SASL brute force from 198.51.100.23',
      mailLog,
      [1, 2, 3].map(() => postfix('198.51.100.23')),
      '198.51.100.23',
    );
    await attack(
      'web probing from 203.0.113.5 behind Traefik (/.env, /.git/config, /wp-login.php)',
      webLog,
      ['/.env', '/.git/config', '/wp-login.php'].map((p) => traefik('203.0.113.5', p, 403)),
      '203.0.113.5',
    );
    await attack(
      'an IPv6 attacker, 2001:db8:bad::7, failing basic auth',
      webLog,
      [1, 2, 3].map(() => traefik('2001:db8:bad::7', '/admin', 401)),
      '2001:db8:bad::7',
    );
    await attack(
      'log injection: 198.51.100.99 logs in as user "rip=203.0.113.66" (only the real rip may be banned)',
      mailLog,
      [1, 2, 3].map(() => dovecot('198.51.100.99', 'x, rip=203.0.113.66')),
      '198.51.100.99',
    );
    await attack(
      'a proxy hides client IPs: 20 failures all from the Docker gateway 172.18.0.1',
      webLog,
      Array.from({ length: 20 }, () => traefik('172.18.0.1', '/login', 401)),
      null,
    );
    const expected = ['192.0.2.10', '198.51.100.23', '203.0.113.5', '2001:db8:bad::7', '198.51.100.99'];
    for (let i = 0; i < 500 && !expected.every((a) => everSeen.has(a)); i++) await sleep(20);
    for (const w of warnings.filter((m) => /client|proxy/i.test(m))) say(`WARNING  ${w}`);
    say(`alias now: ${alias().join(', ')}`);
    // Until every ban has ended and the watcher has printed it.
    for (let i = 0; i < 1000 && seen.size > 0; i++) await sleep(20);
    stopWatching = true;
    await watcher;

    const calls = sim
      .calls()
      .filter((c) => /alias_util\/add/.test(c.path))
      .map((c) => (JSON.parse(c.requestBody) as { address: string }).address);
    const injected = calls.includes('203.0.113.66');
    const proxied = calls.includes('172.18.0.1');
    const flushes = sim.calls().filter((c) => c.path.includes('/flush/')).length;
    say(`final alias: ${alias().join(', ') || '(empty)'}`);
    say(
      `summary: ${new Set(calls).size} addresses banned and unbanned at the edge; injected address banned: ${injected}; proxy address banned: ${proxied}; flushes: ${flushes}`,
    );
    failed = injected || proxied || flushes > 0 || alias().length > 0 || !expected.every((a) => calls.includes(a));
  } catch (error) {
    failed = true;
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  } finally {
    stopWatching = true;
    await daemon.stop();
    await sim.stop();
    await rm(root, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}
