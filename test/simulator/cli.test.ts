import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/edgeban.js');

interface Running {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  exit: Promise<number | null>;
}

/** Spawns `edgeban simulate …` and waits (bounded) for its listening line. */
async function spawnSimulator(args: string[]): Promise<Running> {
  const child = spawn(NODE, [BIN, 'simulate', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 600; i++) {
    const match = /^edgeban simulate: listening on (\S+)$/m.exec(out);
    if (match) return { child, url: match[1]!, stdout: () => out, exit };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  child.kill('SIGKILL');
  throw new Error(`simulator did not start: ${out} ${err}`);
}

function auth(key: string, secret: string): string {
  return `Basic ${Buffer.from(`${key}:${secret}`).toString('base64')}`;
}

test('edgeban simulate serves the API and the admin interface, and stops cleanly on SIGTERM', async () => {
  const sim = await spawnSimulator([
    '--port',
    '0',
    '--key',
    'cli-key',
    '--secret',
    'cli-secret',
    '--alias',
    'fail2ban_blocklist',
    '--alias',
    'static_hosts:host',
    '--auth-fail-delay',
    '0',
    '--seed',
    '7',
  ]);
  try {
    assert.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(
      sim
        .stdout()
        .split('\n')
        .filter((l) => l.includes('listening on')).length,
      1,
    );
    const add = await request(`${sim.url}/api/firewall/alias_util/add/static_hosts`, {
      method: 'POST',
      headers: { authorization: auth('cli-key', 'cli-secret'), 'content-type': 'application/json' },
      body: JSON.stringify({ address: '192.0.2.1' }),
    });
    assert.deepEqual(await add.body.json(), { status: 'done' });
    const bad = await request(`${sim.url}/api/firewall/alias_util/aliases`, { headers: { authorization: auth('cli-key', 'nope') } });
    assert.equal(bad.statusCode, 401);
    await bad.body.text();
    const state = (await (await fetch(`${sim.url}/__simulator/state`)).json()) as { tables: Record<string, string[]>; configRevisions: number };
    assert.deepEqual(state.tables.static_hosts, ['192.0.2.1']);
    assert.deepEqual(state.tables.fail2ban_blocklist, []);
    assert.equal(state.configRevisions, 1);
  } finally {
    sim.child.kill('SIGTERM');
  }
  assert.equal(await sim.exit, 0);
});

test('without --key/--secret it generates 60-byte base64 credentials and prints them once', async () => {
  const sim = await spawnSimulator(['--port', '0', '--privileges', 'page-all', '--read-only']);
  try {
    const key = /generated API key: (\S+)/.exec(sim.stdout())?.[1];
    const secret = /generated API secret: (\S+)/.exec(sim.stdout())?.[1];
    assert.ok(key && secret);
    assert.equal(Buffer.from(key, 'base64').length, 60);
    assert.equal(Buffer.from(secret, 'base64').length, 60);
    const res = await request(`${sim.url}/api/firewall/alias_util/add/fail2ban_blocklist`, {
      method: 'POST',
      headers: { authorization: auth(key, secret), 'content-type': 'application/json' },
      body: JSON.stringify({ address: '192.0.2.1' }),
    });
    assert.equal(res.statusCode, 500);
    assert.match(await res.body.text(), /denied for write access/);
  } finally {
    sim.child.kill('SIGINT');
  }
  assert.equal(await sim.exit, 0);
});

test('bad options exit 2 with a message naming the option', () => {
  const cases: [string[], RegExp][] = [
    [['--port', 'abc'], /--port/],
    [['--port', '0', '--error-rate', '1.5'], /--error-rate/],
    [['--port', '0', '--alias', 'x:weird'], /--alias/],
    [['--port', '0', '--privileges', 'page-nope'], /--privileges/],
    [['--port', '0', '--host', '192.0.2.1'], /--host/],
    [['--port', '0', '--key', 'k'], /--key/],
    [['--port', '0', '--latency', '-5'], /--latency/],
    [['--port', '0', '--frobnicate'], /frobnicate/],
    [['--port', '0', '--alias', 'ssh'], /--alias.*Reserved/],
    [['--port', '0', '--nft-table', 'edgeban'], /--nft-table needs --nft-netns/],
    [['--port', '0', '--nft-netns', 'no such/ns'], /--nft-netns must be a network namespace name/],
    [[], /--port/],
  ];
  for (const [args, pattern] of cases) {
    const result = spawnSync(NODE, [BIN, 'simulate', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern, args.join(' '));
  }
});

test('--tls-cert/--tls-key serve https', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeban-sim-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (made.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    // Never skipped: .ci/run installs openssl.
    assert.fail(`openssl could not make a certificate (install Debian's openssl): ${made.error?.message ?? made.stderr}`);
  }
  const sim = await spawnSimulator(['--port', '0', '--key', 'k', '--secret', 's', '--tls-cert', cert, '--tls-key', key]);
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    assert.match(sim.url, /^https:\/\//);
    const res = await request(`${sim.url}/api/firewall/alias_util/aliases`, { headers: { authorization: auth('k', 's') }, dispatcher });
    assert.equal(res.statusCode, 200);
    assert.ok(((await res.body.json()) as string[]).includes('fail2ban_blocklist'));
  } finally {
    await dispatcher.close();
    sim.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(await sim.exit, 0);
});
