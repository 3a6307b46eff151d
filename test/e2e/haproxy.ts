// HAProxy in the proxy namespace as the Docker mail stacks' Traefik: TCP passthrough, sending
// PROXY protocol v2 to the mail servers, which see only the proxy's address on the TCP level.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { serveInNs, type Internet } from './netns.ts';

/** One passthrough: clients connect to the proxy's `port` (IPv4 and IPv6), HAProxy to the servers' `backendPort`. */
export interface Passthrough {
  name: string;
  port: number;
  backendPort: number;
}

export async function startHaproxy(t: TestContext, net: Internet, dir: string, routes: readonly Passthrough[]): Promise<void> {
  const file = path.join(dir, 'haproxy.cfg');
  // The hop to the servers is IPv4 even for an IPv6 client: the client's address travels in PROXY v2.
  await writeFile(
    file,
    `
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${routes
  .map(
    (r) => `
frontend ${r.name}
  bind :::${r.port} v4v6
  default_backend ${r.name}_servers
backend ${r.name}_servers
  server ${r.name} ${net.servers.v4}:${r.backendPort} send-proxy-v2
`,
  )
  .join('')}`,
  );
  serveInNs(t, net.proxy.ns, ['haproxy', '-db', '-f', file]);
}
