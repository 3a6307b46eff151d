import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** /proc/net/route with a default route via the IPv4 `gateway` (hex in host byte order, as the kernel writes it). */
export function routeVia(gateway: string): string {
  const hex = gateway
    .split('.')
    .reverse()
    .map((octet) => Number(octet).toString(16).padStart(2, '0').toUpperCase())
    .join('');
  return `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t${hex}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`;
}

/** A stand-in for /proc/net under `root` (EDGEBAN_PROC_NET): a default route via `gateway`, no IPv6 routes. */
export async function fakeProcNet(root: string, gateway: string): Promise<string> {
  const procNet = path.join(root, 'proc-net');
  await mkdir(procNet, { recursive: true });
  await writeFile(path.join(procNet, 'route'), routeVia(gateway));
  await writeFile(path.join(procNet, 'ipv6_route'), '');
  return procNet;
}
