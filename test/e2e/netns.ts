// A small internet in network namespaces: attacker and client outside, the edge firewall between,
// the servers inside. Every name carries this run's id, so a leftover from a crashed run (same
// names only if the pid repeats) cannot collide with the next; everything is deleted in t.after.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';

export interface Host {
  ns: string;
  v4: string;
  v6: string;
}
export interface Internet {
  id: string;
  edge: string;
  attacker: Host;
  client: Host;
  /** HAProxy's host, inside beside the servers: the mail servers see its address on the TCP level. */
  proxy: Host;
  servers: Host;
}

/** Runs `argv` in namespace `ns`; throws with stderr on failure. */
export function inNs(ns: string, argv: string[], input?: string): string {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (error) {
    throw new Error(`${ns}: ${argv.join(' ')}: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`);
  }
}

/** Like inNs, but resolves with the exit code and output (a client whose failure is the point). */
export function tryInNs(ns: string, argv: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Starts a long-running server in a namespace, killed (and waited for) when the test ends. */
export function serveInNs(t: TestContext, ns: string, argv: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`${argv[0]} in ${ns} exited ${code}: ${stderr}\n`);
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  );
  return child;
}

/** The tools the suite needs, as a failing assertion naming the package (never a skip). */
export function requireTools(): void {
  assert.equal(process.getuid?.(), 0, 'the e2e suite runs as root (network namespaces, nftables)');
  requirePackages([
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['conntrack', 'conntrack'],
    ['curl', 'curl'],
    ['setpriv', 'util-linux'],
  ]);
}

/** Each [command, Debian package] present, or a failing assertion naming the package (never a skip). */
export function requirePackages(tools: ReadonlyArray<readonly [string, string]>): void {
  for (const [tool, pkg] of tools) {
    assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is missing: apt-get install ${pkg} (.ci/run does)`);
  }
}

/**
 * attacker 198.51.100.7 / 2001:db8:a::7 and client 203.0.113.9 / 2001:db8:c::9 outside,
 * servers 192.0.2.10 / 2001:db8:5::10 and proxy 192.0.2.130 / 2001:db8:6::130 inside, each on
 * its own veth to the edge, which routes.
 */
export function buildInternet(t: TestContext): Internet {
  const id = `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
  const net: Internet = {
    id,
    edge: `eb-${id}-edge`,
    attacker: { ns: `eb-${id}-attacker`, v4: '198.51.100.7', v6: '2001:db8:a::7' },
    client: { ns: `eb-${id}-client`, v4: '203.0.113.9', v6: '2001:db8:c::9' },
    proxy: { ns: `eb-${id}-proxy`, v4: '192.0.2.130', v6: '2001:db8:6::130' },
    servers: { ns: `eb-${id}-servers`, v4: '192.0.2.10', v6: '2001:db8:5::10' },
  };
  const all = [net.edge, net.attacker.ns, net.client.ns, net.proxy.ns, net.servers.ns];
  t.after(() => {
    for (const ns of all) spawnSync('ip', ['netns', 'del', ns]);
  });
  for (const ns of all) {
    execFileSync('ip', ['netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }
  inNs(net.edge, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  // The inside's 192.0.2.0/24 split in two links: servers below .128, the proxy above.
  const links: Array<[Host, string, string, number, string]> = [
    [net.attacker, 'a', '198.51.100.1', 24, '2001:db8:a::1'],
    [net.client, 'c', '203.0.113.1', 24, '2001:db8:c::1'],
    [net.servers, 's', '192.0.2.1', 25, '2001:db8:5::1'],
    [net.proxy, 'p', '192.0.2.129', 25, '2001:db8:6::1'],
  ];
  for (const [host, tag, gw4, len4, gw6] of links) {
    // Interface names: at most 15 characters, unique per run in the root namespace while created.
    const outer = `e${tag}${id}`.slice(0, 15),
      inner = `h${tag}${id}`.slice(0, 15);
    execFileSync('ip', ['link', 'add', outer, 'netns', net.edge, 'type', 'veth', 'peer', 'name', inner, 'netns', host.ns]);
    inNs(net.edge, ['ip', 'addr', 'add', `${gw4}/${len4}`, 'dev', outer]);
    inNs(net.edge, ['ip', 'addr', 'add', `${gw6}/64`, 'dev', outer, 'nodad']);
    inNs(net.edge, ['ip', 'link', 'set', outer, 'up']);
    inNs(host.ns, ['ip', 'addr', 'add', `${host.v4}/${len4}`, 'dev', inner]);
    inNs(host.ns, ['ip', 'addr', 'add', `${host.v6}/64`, 'dev', inner, 'nodad']);
    inNs(host.ns, ['ip', 'link', 'set', inner, 'up']);
    inNs(host.ns, ['ip', 'route', 'add', 'default', 'via', gw4]);
    inNs(host.ns, ['ip', '-6', 'route', 'add', 'default', 'via', gw6]);
  }
  return net;
}

/** The elements of an nftables set in namespace `ns`, as nft prints them (JSON for prefixes). */
export function nftSetEntries(ns: string, table: string, set: string): string[] {
  const raw = JSON.parse(inNs(ns, ['nft', '-j', 'list', 'set', 'inet', table, set])) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  return (raw.nftables.find((i) => i.set)?.set?.elem ?? []).map((e) => (typeof e === 'string' ? e : JSON.stringify(e)));
}
