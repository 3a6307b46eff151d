// `edgeban run` as a process against the OPNsense simulator, reading a Docker json-file log and a
// CRI log with Dovecot, Postfix and Traefik failures: logformat docker / cri jails ban the
// attackers; the same filters with logformat plain over the same files match nothing. A line
// split over records is joined (its tail alone is never matched), the runtime's time counts for
// lines without a date, and an old catch-up line without a date is dropped.
import assert from 'node:assert/strict';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { dovecotFailureBody, syslogNow } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { criRecord, dockerRecord, splitRecords } from './wrap.ts';

const KEY = 'containerLogKey0123456789ab';
const SECRET = 'containerLogSecret0123456789+/=';
const ALIAS = 'fail2ban_blocklist';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad = (n: number) => String(n).padStart(2, '0');
function clfStamp(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
const nowSec = () => Date.now() / 1000;

/** Dovecot's login failure; `stamp` false: as Dovecot logs to stderr in a container, without a date. */
function dovecot(address: string, stamp: boolean, user = 'alice'): string {
  const body = dovecotFailureBody(address, user);
  return stamp ? `${syslogNow()} mail dovecot: ${body}` : body;
}
function postfix(address: string): string {
  return `${syslogNow()} mail postfix/submission/smtpd[812]: warning: unknown[${address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`;
}
function traefikJson(address: string): string {
  // A quote in the path is escaped by Traefik, and again by Docker.
  return JSON.stringify({
    ClientAddr: `${address}:51234`,
    ClientHost: address,
    ClientUsername: '-',
    DownstreamStatus: 401,
    RequestMethod: 'GET',
    RequestPath: '/admin?q="x"&<y>',
    StartUTC: new Date().toISOString(),
  });
}
function traefikClf(address: string): string {
  return `${address} - - [${clfStamp(new Date())}] "GET /wp-login.php HTTP/1.1" 401 17 "-" "curl/8" 12 "router@docker" "http://10.0.0.5" 3ms`;
}
/** The record size at which Docker (and containerd by default) split a line. */
const SPLIT = 16_384;
/**
 * A Postfix reject of 198.51.100.200 whose HELO name (client-controlled, last on the line) is
 * padded so the runtime splits the line exactly where a forged failure line of `victim` begins:
 * read record by record, that tail alone would be a failure of the victim.
 */
function splitInjection(victim: string): string {
  const head = `${syslogNow()} mail postfix/smtpd[812]: NOQUEUE: reject: RCPT from unknown[198.51.100.200]: 450 4.7.1 Client host rejected: cannot find your hostname, [198.51.100.200]; from=<a@example.org> to=<b@example.org> proto=ESMTP helo=<`;
  return `${head}${'A'.repeat(SPLIT - head.length)}${syslogNow()} mail postfix/smtpd[813]: warning: unknown[${victim}]: SASL LOGIN authentication failed: x>`;
}

interface JailStatus {
  jail: string;
  lines: number;
  matches: number;
  failures: number;
  bans: number;
  old: number;
  container?: { logformat: string; records: number; lines: number; malformed: number; partialRecords: number };
}

test('edgeban run on Docker json-file and CRI logs: attackers banned with logformat docker/cri, nothing with plain; split lines joined, never matched by their tail', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  const dataDir = path.join(root, 'data');
  const dockerDir = path.join(root, 'docker', 'containers');
  const podsDir = path.join(root, 'pods');
  const dockerMail = path.join(dockerDir, 'c0ffee', 'c0ffee-json.log');
  const dockerWeb = path.join(dockerDir, 'beef01', 'beef01-json.log');
  const criMail = path.join(podsDir, 'mail_mailserver-0_uid1', 'mailserver', '0.log');
  const criWeb = path.join(podsDir, 'web_traefik-5d8f_uid2', 'traefik', '0.log');
  for (const file of [dockerMail, dockerWeb, criMail, criWeb]) await mkdir(path.dirname(file), { recursive: true });
  await mkdir(configDir);

  // Written before start (catch-up): Dovecot lines without a date, at the runtime's time.
  const catchUp = [
    ...[0, 1, 2].map((i) => criRecord(dovecot('203.0.113.31', false), { time: nowSec() - 30 + i, stream: 'stderr' })),
    ...[0, 1, 2].map((i) => criRecord(dovecot('203.0.113.32', false), { time: nowSec() - 7200 + i, stream: 'stderr' })),
  ];
  await writeFile(criMail, `${catchUp.join('\n')}\n`);
  for (const file of [dockerMail, dockerWeb, criWeb]) await writeFile(file, '');

  const jail = (name: string, filter: string, format: string, logpaths: string[]) => [
    `[${name}]`,
    'enabled = true',
    `filter = ${filter}`,
    ...(format === 'plain' ? [] : [`logformat = ${format}`]),
    `logpath = ${logpaths.join('\n          ')}`,
    '',
  ];
  const all = [dockerMail, dockerWeb, criMail, criWeb];
  await writeFile(
    path.join(configDir, 'jail.local'),
    [
      '[DEFAULT]',
      'maxretry = 3',
      'findtime = 10m',
      'bantime = 1h',
      '',
      ...jail('dovecot-docker', 'dovecot', 'docker', [dockerMail]),
      ...jail('postfix-docker', 'postfix', 'docker', [dockerMail]),
      ...jail('traefik-docker', 'traefik', 'docker', [dockerWeb]),
      ...jail('dovecot-k8s', 'dovecot', 'cri', [criMail]),
      ...jail('postfix-k8s', 'postfix', 'auto', [criMail]),
      ...jail('traefik-k8s', 'traefik', 'cri', [criWeb]),
      ...jail('dovecot-plain', 'dovecot', 'plain', all),
      ...jail('postfix-plain', 'postfix', 'plain', all),
      ...jail('traefik-plain', 'traefik', 'plain', all),
    ].join('\n'),
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: dataDir,
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    TZ: 'UTC',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const daemon = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });

  const append = (file: string, records: string[]) => appendFile(file, `${records.join('\n')}\n`);
  for (let i = 0; i < 3; i++) {
    // Docker: mail server on stdout/stderr, one Dovecot line over 16 KiB split into records.
    const longUser = i === 0 ? `alice${'.'.repeat(20_000)}` : 'alice';
    await append(dockerMail, [
      ...splitRecords('docker', dovecot('198.51.100.11', true, longUser), 16_384, { time: nowSec(), stream: 'stdout' }),
      dockerRecord(postfix('198.51.100.12'), { time: nowSec(), stream: 'stderr' }),
      ...splitRecords('docker', splitInjection('203.0.113.99'), SPLIT, { time: nowSec() }),
    ]);
    await append(dockerWeb, [dockerRecord(traefikJson('198.51.100.13'), { time: nowSec() })]);
    // CRI: Dovecot without a date (its stderr), split P/F once; Postfix; Traefik's common log format.
    await append(criMail, [
      ...(i === 0
        ? splitRecords('cri', dovecot('203.0.113.21', false), 50, { time: nowSec(), stream: 'stderr' })
        : [criRecord(dovecot('203.0.113.21', false), { time: nowSec(), stream: 'stderr' })]),
      criRecord(postfix('203.0.113.22'), { time: nowSec() }),
      ...splitRecords('cri', splitInjection('203.0.113.99'), SPLIT, { time: nowSec() }),
    ]);
    await append(criWeb, [criRecord(traefikClf('203.0.113.23'), { time: nowSec() })]);
  }
  // A damaged record is counted and skipped; the daemon goes on.
  await append(dockerMail, ['{"log":"imap-login: Disconnected (auth failed', dockerRecord('after the damage', { time: nowSec() })]);

  // 198.51.100.200: the real client of the split reject lines (banned by both postfix jails).
  const attackers = ['198.51.100.11', '198.51.100.12', '198.51.100.13', '198.51.100.200', '203.0.113.21', '203.0.113.22', '203.0.113.23', '203.0.113.31'];
  await until(
    'every attacker in the alias',
    async () => {
      const list = await alias();
      return attackers.every((a) => list.includes(a));
    },
    60_000,
  );

  const statusOf = async (): Promise<Map<string, JailStatus>> => {
    const status = await runCli(['status', '--json'], { env });
    assert.equal(status.code, 0, status.stderr);
    return new Map((JSON.parse(status.stdout) as { jails: JailStatus[] }).jails.map((j) => [j.jail, j]));
  };
  // Every record read by every jail (the plain ones too) before judging what they matched.
  await until(
    'every record read',
    async () => {
      const jails = await statusOf();
      return (jails.get('dovecot-docker')?.container?.malformed ?? 0) === 1 && (jails.get('dovecot-plain')?.lines ?? 0) >= 40;
    },
    60_000,
  );
  const jails = await statusOf();
  for (const name of ['dovecot-docker', 'postfix-docker', 'traefik-docker', 'dovecot-k8s', 'postfix-k8s', 'traefik-k8s']) {
    assert.ok((jails.get(name)?.bans ?? 0) >= 1, `${name} banned nobody: ${JSON.stringify(jails.get(name))}`);
  }
  for (const name of ['dovecot-plain', 'postfix-plain', 'traefik-plain']) {
    const plain = jails.get(name);
    assert.ok(plain && plain.lines >= 40, `${name} read the logs`);
    assert.equal(plain.matches, 0, `${name} with logformat plain matched a wrapped line`);
    assert.equal(plain.bans, 0);
    assert.equal(plain.container, undefined);
  }
  assert.equal(jails.get('dovecot-docker')?.matches, 3, 'the long line split over records counted once, the injection never');
  assert.equal(jails.get('dovecot-docker')?.container?.logformat, 'docker');
  assert.ok((jails.get('dovecot-docker')?.container?.partialRecords ?? 0) >= 4);
  // Handed to the jail: 203.0.113.21 x3 live, 203.0.113.31 x3 caught up at the runtime's time;
  // 203.0.113.32's dateless lines of two hours ago are dropped before the jail (status shows the jail's counts).
  assert.equal(jails.get('dovecot-k8s')?.matches, 6, JSON.stringify(jails.get('dovecot-k8s')));
  assert.equal(jails.get('dovecot-k8s')?.container?.lines, 15);

  const list = await alias();
  assert.ok(!list.includes('203.0.113.99'), 'the tail of a split line was matched on its own');
  assert.ok(!list.includes('203.0.113.32'), 'an old catch-up line was counted');
  assert.deepEqual([...list].sort(), [...attackers].sort());
  assert.equal(await daemon.stop(), 0);
});

test('edgeban test-filter --logformat cri / docker: matches as the daemon would; plain on the same file matches nothing', async (t) => {
  const root = await tempDir(t);
  const criLog = path.join(root, '0.log');
  const dockerLog = path.join(root, 'c-json.log');
  const base = Date.UTC(2026, 10, 21, 10, 0, 0) / 1000;
  await writeFile(
    criLog,
    `${[
      criRecord('Nov 21 10:00:00 mail postfix/smtpd[1]: warning: unknown[198.51.100.41]: SASL PLAIN authentication failed: x', { time: base }),
      ...splitRecords('cri', dovecot('203.0.113.42', false), 40, { time: base + 5, stream: 'stderr' }),
      'not a CRI record',
      ...splitRecords('cri', splitInjection('192.0.2.9'), SPLIT, { time: base + 6 }),
    ].join('\n')}\n`,
  );
  await writeFile(
    dockerLog,
    `${[dockerRecord(traefikJson('198.51.100.43').replace(/"StartUTC":"[^"]*"/, '"StartUTC":"2026-11-21T10:00:07Z"'), { time: base + 7 })].join('\n')}\n`,
  );
  const now = String(base + 60);

  const json = await runCli(['test-filter', 'dovecot', criLog, '--logformat', 'cri', '--json', '--now', now]);
  assert.equal(json.code, 0, json.stderr);
  const rows = json.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { line: number; match: boolean; host: string | null; time: number | null });
  const matched = rows.filter((r) => r.match);
  assert.equal(matched.length, 1);
  // The dateless line counts at the runtime's stamp of its first record, numbered by its last record.
  assert.deepEqual(
    matched.map((r) => [r.host, r.time, r.line]),
    [['203.0.113.42', base + 5, 1 + Math.ceil(dovecot('203.0.113.42', false).length / 40)]],
  );

  const postfixSummary = await runCli(['test-filter', 'postfix', criLog, '--logformat', 'cri', '--now', now]);
  assert.equal(postfixSummary.code, 0, postfixSummary.stderr);
  assert.match(postfixSummary.stdout, /matched: 2,/);
  assert.match(postfixSummary.stdout, /198\.51\.100\.41 at 2026-11-21T10:00:00\.000Z/);
  assert.match(postfixSummary.stdout, /198\.51\.100\.200 at /, 'the split reject line is matched whole');
  assert.doesNotMatch(postfixSummary.stdout, /192\.0\.2\.9/, 'the tail of a split line was matched on its own');
  assert.match(postfixSummary.stdout, /container log \(cri\): records: \d+, lines: 3, records of split lines: \d+, malformed records \(skipped\): 1/);

  const traefik = await runCli(['test-filter', 'traefik', dockerLog, '--logformat', 'auto', '--json', '--now', now]);
  assert.deepEqual(JSON.parse(traefik.stdout.trim()), { line: 1, match: true, host: '198.51.100.43', time: base + 7 });

  for (const [filter, file] of [
    ['dovecot', criLog],
    ['postfix', criLog],
    ['traefik', dockerLog],
  ] as const) {
    const plain = await runCli(['test-filter', filter, file, '--now', now]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /matched: 0,/, `${filter} plain`);
  }
  const bad = await runCli(['test-filter', 'dovecot', criLog, '--logformat', 'journald']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /logformat/);
});

test('edgeban run stopped between the parts of a split line: after the restart the rest is skipped, never matched as a line of its own', async (t) => {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const configDir = path.join(root, 'config');
  const criMail = path.join(root, 'pods', 'mail_mailserver-0_uid1', 'mailserver', '0.log');
  await mkdir(path.dirname(criMail), { recursive: true });
  await mkdir(configDir);
  await writeFile(criMail, '');
  // maxretry 1: a single line taken from the tail alone would ban the victim.
  await writeFile(
    path.join(configDir, 'jail.local'),
    `[postfix-k8s]\nenabled = true\nfilter = postfix\nlogformat = cri\nlogpath = ${criMail}\nmaxretry = 1\nbantime = 1h\n`,
  );
  const env = {
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: configDir,
    EDGEBAN_RECONCILE_INTERVAL: '2',
    TZ: 'UTC',
  };
  const alias = async () => ((await sim.admin('state')) as { tables: Record<string, string[]> }).tables[ALIAS] ?? [];
  const [head, tail] = splitRecords('cri', splitInjection('203.0.113.99'), SPLIT, { time: nowSec() });
  assert.ok(head !== undefined && tail !== undefined);

  const first = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  await appendFile(criMail, `${head}\n${criRecord(postfix('198.51.100.51'), { time: nowSec(), stream: 'stderr' })}\n`);
  await until('198.51.100.51 in the alias', async () => (await alias()).includes('198.51.100.51'), 60_000);
  assert.equal(await first.stop(), 0);

  await appendFile(criMail, `${tail}\n${criRecord(postfix('198.51.100.52'), { time: nowSec() })}\n`);
  const second = await startCliDaemon(t, env, { readyTimeoutMs: 60_000 });
  await until('198.51.100.52 in the alias', async () => (await alias()).includes('198.51.100.52'), 60_000);
  const status = await runCli(['status', 'postfix-k8s', '--json'], { env });
  const jail = (JSON.parse(status.stdout) as { jails: Array<JailStatus & { container: { orphanTails: number } }> }).jails[0];
  assert.equal(jail?.container.orphanTails, 1, JSON.stringify(jail));
  assert.equal(jail?.container.records, 2, 'the second run read only what was appended');
  assert.ok(!(await alias()).includes('203.0.113.99'), 'the tail of a line split across the restart was matched on its own');
  assert.ok(!(await alias()).includes('198.51.100.200'), "the line's start was read before the restart; its rest is not a line");
  assert.equal(await second.stop(), 0);
});
