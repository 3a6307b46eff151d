/**
 * Fault suite: hostile input through the real daemon (`edgeban run` as a process, five shipped
 * jails, an OPNsense simulator). One million lines of seeded random bytes (NULs, invalid UTF-8,
 * CRs, every byte but newline), 1 MiB lines, and log-injection lines in the Dovecot, Postfix,
 * Traefik, nginx and Apache formats that try to plant an address a naive regex would take.
 * Asserted: the daemon neither crashes nor stops reading (every line counted by every jail, a
 * plain attacker written after all of it is banned), its peak RSS stays bounded, over-long and
 * invalid lines are counted and skipped, and no planted address reaches the ledger, the alias or
 * an API request. All data is generated here, in a temp dir.
 */
import assert from 'node:assert/strict';
import { open, readFile, mkdir, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LEAST_PRIVILEGES, OpnsenseSimulator } from '../../src/simulator/opnsense-simulator.ts';
import type { SimulatorCall } from '../../src/simulator/call-log.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';
import { REPO, runCli, startCliDaemon } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KEY = 'hostileKey0123456789abcdefQRS';
const SECRET = 'hostileSecret0123456789+/abcdefQRS=';
const ALIAS = 'fail2ban_blocklist';
/** Addresses the injection lines try to get banned. */
const PLANTED = ['203.0.113.66', '198.51.100.66', '2001:db8::66'];
const MAXRETRY = 3;
const RANDOM_LINES = 1_000_000;
const MIB = 1024 * 1024;
/** Peak RSS allowed for the daemon: generous (150-300 MiB measured, as V8 sizes its heap); an unbounded line buffer or queue blows far past it. */
const RSS_LIMIT_MIB = 512;

interface LogPlan {
  jail: string;
  file: string;
  /** Share of the random lines this file gets. */
  share: number;
  /** The sample log whose injection lines (those planting 192.0.2.9) are replayed here. */
  sample: string;
  /** Crafted injection lines of our own (P = planted address, R = the real client). */
  crafted: Array<(p: string, r: string) => string>;
  /** One plain failure of address A, to prove the jail still reads after all the junk. */
  control: (a: string) => string;
}

const PLANS: LogPlan[] = [
  {
    jail: 'dovecot',
    file: 'mail.log',
    share: 0.3,
    sample: 'dovecot.log',
    crafted: [
      (p, r) =>
        `Nov 21 10:01:20 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a\0, rip=${p}, lip=10.0.0.2, TLS, session=<x>\xff\xfe>, method=PLAIN, rip=${r}, lip=10.0.0.2, TLS, session=<r>`,
      (p, r) =>
        `Nov 21 10:01:21 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<rip=${p}, lip=10.0.0.2>, method=PLAIN, rip=${r}, lip=10.0.0.2, session=<r>`,
      (p, r) => `Nov 21 10:01:22 mail dovecot: auth: passwd-file(from ${p},${p},<s>): unknown user x,${r},<q>): unknown user`,
    ],
    control: (a) =>
      `Nov 21 10:01:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<alice>, method=PLAIN, rip=${a}, lip=10.0.0.2, TLS, session=<c>`,
  },
  {
    jail: 'postfix',
    file: 'mail.log',
    share: 0.1,
    sample: 'postfix.log',
    crafted: [
      (p, r) =>
        `Nov 21 10:00:20 mail postfix/smtpd[2120]: warning: unknown[${r}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=from ${p} unknown[${p}]: SASL LOGIN authentication failed:`,
      (p, r) =>
        `Nov 21 10:00:21 mail postfix/smtpd[2121]: NOQUEUE: reject: RCPT from unknown[${r}]: 554 5.7.1 <x@[${p}]>: Relay access denied; from=<unknown[${p}]> to=<y> proto=ESMTP helo=<unknown[${p}]>`,
    ],
    control: (a) => `Nov 21 10:00:01 mail postfix/smtpd[2101]: warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`,
  },
  {
    jail: 'traefik',
    file: 'traefik.log',
    share: 0.3,
    sample: 'traefik.log',
    crafted: [
      (p, r) =>
        `${r} - - [21/Nov/2026:10:02:20 +0000] "GET /?rip=${p}&from=${p} HTTP/1.1" 401 17 "from ${p}" "client: ${p}" 120 "app@docker" "http://10.0.0.6:80" 1ms`,
      (p, r) =>
        `{"ClientAddr":"${r}:4001","ClientHost":"${r}","ClientUsername":"\\",\\"ClientHost\\":\\"${p}\\"","DownstreamContentSize":17,"DownstreamStatus":401,"RequestMethod":"GET","RequestPath":"/\\",\\"ClientHost\\":\\"${p}\\",\\"DownstreamStatus\\":401","StartUTC":"2026-11-21T10:02:21Z","level":"info","msg":"","time":"2026-11-21T10:02:21Z"}`,
    ],
    control: (a) => `${a} - - [21/Nov/2026:10:02:01 +0000] "GET /admin HTTP/1.1" 401 17 "-" "curl/8.5.0" 101 "dashboard@docker" "http://10.0.0.5:8080" 2ms`,
  },
  {
    jail: 'nginx',
    file: 'nginx-error.log',
    share: 0.15,
    sample: 'nginx.log',
    crafted: [
      (p, r) =>
        `2026/11/21 10:03:20 [error] 31#31: *20 user "from ${p}, client: ${p}": password mismatch, client: ${r}, server: example.org, request: "GET /?client: ${p} HTTP/1.1", host: "example.org"`,
    ],
    control: (a) =>
      `2026/11/21 10:03:01 [error] 31#31: *7 user "alice": password mismatch, client: ${a}, server: example.org, request: "GET /private/ HTTP/1.1", host: "example.org"`,
  },
  {
    jail: 'apache',
    file: 'apache-error.log',
    share: 0.15,
    sample: 'apache.log',
    crafted: [
      (p, r) =>
        `[Sat Nov 21 10:04:20.1 2026] [auth_basic:error] [pid 1239:tid 140006] [client ${r}:40009] AH01618: user [client ${p}:1] from ${p} rip=${p} not found: /private/`,
    ],
    control: (a) => `[Sat Nov 21 10:04:01.123456 2026] [auth_basic:error] [pid 1234:tid 140001] [client ${a}:51234] AH01618: user mallory not found: /private/`,
  },
];

/** Seeded bytes, four per draw; newlines become vertical tabs so the line count stays exact. */
function randomBytes(random: () => number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i += 4) {
    const v = Math.floor(random() * 0x1_0000_0000);
    for (let k = 0; k < 4 && i + k < length; k++) {
      const b = (v >>> (8 * k)) & 0xff;
      out[i + k] = b === 0x0a ? 0x0b : b;
    }
  }
  return out;
}

/** The sample's injection lines (those planting 192.0.2.9), planting `planted`; other 192.0.2.x become 198.51.100.x. */
async function sampleInjections(sample: string, planted: string): Promise<string[]> {
  const text = await readFile(path.join(REPO, 'test/filters/samples', sample), 'utf8');
  return text
    .split('\n')
    .filter((l) => /192\.0\.2\.9(?!\d)/.test(l))
    .map((l) => l.replace(/192\.0\.2\.9(?!\d)/g, planted).replace(/192\.0\.2\.(\d+)/g, '198.51.100.$1'));
}

/** Appends buffers in bounded pieces (the daemon reads while we write). */
class Appender {
  private readonly pending: Buffer[] = [];
  private size = 0;
  lines = 0;
  private readonly fh: FileHandle;
  constructor(fh: FileHandle) {
    this.fh = fh;
  }
  async add(line: Buffer | string): Promise<void> {
    const buf = typeof line === 'string' ? Buffer.from(line, 'latin1') : line;
    this.pending.push(buf, Buffer.from('\n'));
    this.size += buf.length + 1;
    this.lines++;
    if (this.size >= 4 * MIB) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    await this.fh.write(Buffer.concat(this.pending));
    this.pending.length = 0;
    this.size = 0;
  }
}

interface JailStatus {
  jail: string;
  lines: number;
  failures: number;
  bans: number;
  follower?: { linesTruncated: number; invalidUtf8Lines: number } | null;
}

test('hostile input: a million random-byte lines, 1 MiB lines, NULs, invalid UTF-8 and injection attempts: no crash, RSS bounded, skipped lines counted, no planted address banned', {
  timeout: 600_000,
}, async (t) => {
  const sim = await OpnsenseSimulator.start({
    keys: [{ key: KEY, secret: SECRET, privileges: LEAST_PRIVILEGES, user: 'edgeban' }],
    authFailDelayMs: 0,
    seed: 3,
  });
  t.after(() => sim.stop());
  const root = await tempDir(t, 'edgeban-hostile-');
  const logDir = path.join(root, 'logs');
  const configDir = path.join(root, 'config');
  await mkdir(logDir, { recursive: true });
  await mkdir(configDir, { recursive: true });
  const files = [...new Set(PLANS.map((p) => p.file))];
  for (const f of files) await writeFile(path.join(logDir, f), '');
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[DEFAULT]',
      `maxretry = ${MAXRETRY}`,
      'findtime = 1h',
      'bantime = 1h',
      '',
      ...PLANS.flatMap((p) => [`[${p.jail}]`, 'enabled = true', `logpath = ${path.join(logDir, p.file)}`, '']),
    ].join('\n'),
  );
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '5',
    EDGEBAN_LOG_LEVEL: 'info',
  };
  const daemon = await startCliDaemon(t, env, { cwd: root });

  // ── generate and append, while the daemon reads ──
  const random = seededRandom(0xbad_1e55);
  const appenders = new Map<string, Appender>();
  for (const f of files) {
    const fh = await open(path.join(logDir, f), 'a');
    t.after(() => fh.close());
    appenders.set(f, new Appender(fh));
  }
  const injections = new Map<string, string[]>();
  for (const [i, plan] of PLANS.entries()) {
    const lines = await sampleInjections(plan.sample, PLANTED[i % 2]!);
    for (const [k, craft] of plan.crafted.entries()) {
      for (const p of PLANTED) lines.push(craft(p, `198.51.100.${150 + i * 10 + k}`));
    }
    assert.ok(lines.length >= 2, `${plan.jail}: injection lines`);
    injections.set(plan.jail, lines);
  }
  const hugeLines = (p: string): Buffer[] => [
    Buffer.alloc(MIB, 'A'),
    randomBytes(random, MIB),
    // A failure whose real tail lies beyond the line cap: the cut line must not yield the planted address.
    Buffer.concat([
      Buffer.from(`Nov 21 10:01:30 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<`),
      Buffer.alloc(MIB, 'u'),
      Buffer.from(`>, method=PLAIN, rip=${p}, lip=10.0.0.2, TLS, session=<h>`),
    ]),
    Buffer.concat([Buffer.from(`rip=${p}, lip=10.0.0.2 `), Buffer.alloc(MIB, 0)]),
  ];
  let hugeCount = 0;
  const stepLines = 20_000;
  for (let written = 0; written < RANDOM_LINES; written += stepLines) {
    for (let n = 0; n < stepLines; n++) {
      let pick = random();
      const plan = PLANS.find((p) => (pick -= p.share) < 0) ?? PLANS[0]!;
      await appenders.get(plan.file)!.add(randomBytes(random, Math.floor(random() * 120)));
    }
    // Injection attempts, each repeated past maxretry, spread through the random bytes.
    const turn = written / stepLines;
    for (const plan of PLANS) {
      const lines = injections.get(plan.jail)!;
      const line = lines[turn % lines.length]!;
      for (let r = 0; r < MAXRETRY + 1; r++) await appenders.get(plan.file)!.add(line);
    }
    if (turn === 25) {
      for (const f of files) {
        for (const huge of hugeLines(PLANTED[turn % PLANTED.length]!)) {
          await appenders.get(f)!.add(huge);
          hugeCount++;
        }
      }
    }
    for (const a of appenders.values()) await a.flush();
    await sleep(5);
  }
  // Every injection line at least MAXRETRY + 1 times.
  for (const plan of PLANS) {
    for (const line of injections.get(plan.jail)!) for (let r = 0; r < MAXRETRY + 1; r++) await appenders.get(plan.file)!.add(line);
  }
  // After all of it, a plain attacker per jail, which must be banned.
  const controls = PLANS.map((plan, i) => ({ plan, address: `198.51.100.${230 + i}` }));
  for (const { plan, address } of controls) for (let r = 0; r < MAXRETRY; r++) await appenders.get(plan.file)!.add(plan.control(address));
  for (const a of appenders.values()) await a.flush();
  const linesOf = (file: string) => appenders.get(file)!.lines;

  // ── every jail reads to the end ──
  const status = async (): Promise<JailStatus[]> => {
    const r = await runCli(['status', '--json'], { env, cwd: root, timeoutMs: 60_000 });
    assert.equal(r.code, 0, `status: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { jails: JailStatus[] }).jails;
  };
  let jails: JailStatus[] = [];
  const deadline = Date.now() + 300_000;
  for (let i = 0; i < 1000; i++) {
    assert.equal(daemon.child.exitCode, null, `the daemon exited:\n${daemon.stderr.slice(-20).join('\n')}`);
    jails = await status();
    if (PLANS.every((p) => jails.find((j) => j.jail === p.jail)?.lines === linesOf(p.file))) break;
    if (Date.now() > deadline) break;
    await sleep(1000);
  }
  const until = Date.now() + 30_000;
  while (Date.now() < until && !controls.every(({ address }) => sim.tableEntries(ALIAS).includes(address))) await sleep(200);
  const peakRssMiB = Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${daemon.pid}/status`, 'utf8'))?.[1]) / 1024;
  t.diagnostic(
    `daemon peak RSS ${peakRssMiB.toFixed(0)} MiB; lines per jail ${JSON.stringify(Object.fromEntries(jails.map((j) => [j.jail, j.lines])))}; huge lines ${hugeCount}`,
  );

  await t.test('no crash: every jail counted every line, and still bans a plain attacker written after all of it', async () => {
    assert.deepEqual(
      Object.fromEntries(PLANS.map((p) => [p.jail, jails.find((j) => j.jail === p.jail)?.lines])),
      Object.fromEntries(PLANS.map((p) => [p.jail, linesOf(p.file)])),
    );
    const table = sim.tableEntries(ALIAS);
    for (const { plan, address } of controls) assert.ok(table.includes(address), `${plan.jail}: control attacker ${address} not banned`);
  });

  await t.test('over-long lines and invalid UTF-8 are counted and skipped', () => {
    for (const plan of PLANS) {
      const follower = jails.find((j) => j.jail === plan.jail)?.follower;
      assert.ok(follower, `${plan.jail}: follower stats`);
      assert.ok(follower.linesTruncated >= 4, `${plan.jail}: truncated lines counted (${follower.linesTruncated})`);
      assert.ok(follower.invalidUtf8Lines > 1000, `${plan.jail}: invalid UTF-8 lines counted (${follower.invalidUtf8Lines})`);
    }
  });

  await t.test(`peak RSS of the daemon stays under ${RSS_LIMIT_MIB} MiB`, () => {
    assert.ok(peakRssMiB > 0 && peakRssMiB < RSS_LIMIT_MIB, `peak RSS ${peakRssMiB.toFixed(0)} MiB`);
  });

  await t.test('no planted address in the ledger, the alias or any API request', async () => {
    const banned = await runCli(['banned', '--json'], { env, cwd: root });
    assert.equal(banned.code, 0, banned.stderr);
    const ledger = (JSON.parse(banned.stdout) as { banned: Array<{ address: string }> }).banned.map((b) => b.address);
    assert.ok(ledger.length >= controls.length, `the ledger holds the control bans: ${ledger.join(' ')}`);
    const calls = (await (await fetch(`${sim.url}/__simulator/calls`)).json()) as SimulatorCall[];
    const sent = calls.filter((c) => /alias_util\/(add|delete)/.test(c.path)).map((c) => `${c.path} ${c.requestBody}`);
    for (const p of PLANTED) {
      assert.ok(!ledger.includes(p), `${p} in the ledger`);
      assert.ok(!sim.tableEntries(ALIAS).includes(p), `${p} in the alias`);
      assert.ok(!sent.some((s) => s.includes(`"${p}"`) || s.endsWith(`/${p}`)), `${p} sent to the firewall`);
    }
  });

  assert.equal(await daemon.stop(), 0, 'SIGTERM ends the daemon cleanly');
  assert.ok(!daemon.stderr.some((l) => /uncaught|unhandled|FATAL|heap out of memory/i.test(l)), daemon.stderr.slice(-10).join('\n'));
});
