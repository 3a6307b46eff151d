import ipaddr from 'ipaddr.js';
import { RouterFailure, type Menu } from './address-list-store.ts';

export interface ConnectionInput {
  protocol: string;
  srcAddress: string;
  srcPort?: number;
  dstAddress: string;
  dstPort?: number;
}

interface StoredConnection extends ConnectionInput {
  id: string;
}

/**
 * `/ip/firewall/connection` and `/ipv6/firewall/connection`, as far as edgeban reads and removes
 * rows: the router fills them, a client can only print and remove. IPv4 endpoints print with the
 * port in `src-address` (`198.51.100.7:40000`, as RouterOS's console and recorded API replies
 * show); IPv6 endpoints print bare with separate `src-port`/`dst-port` properties, one of the
 * spellings the client must survive (docs/routeros-rest.md). Ids are large hex numbers, as
 * conntrack ids are, counted per menu.
 */
export class ConnectionTable {
  private readonly rows: Record<Menu, StoredConnection[]> = { ip: [], ipv6: [] };
  private readonly nextId: Record<Menu, number> = { ip: 0x1f00_0000, ipv6: 0x1f00_0000 };

  add(menu: Menu, input: ConnectionInput): StoredConnection {
    for (const address of [input.srcAddress, input.dstAddress]) {
      const kind = ipaddr.isValid(address) ? ipaddr.parse(address).kind() : null;
      if (kind !== (menu === 'ip' ? 'ipv4' : 'ipv6')) throw new RouterFailure(`${address} is no ${menu === 'ip' ? 'IPv4' : 'IPv6'} address`);
    }
    const id = `*${(this.nextId[menu]++).toString(16).toUpperCase()}`;
    const row = { ...input, srcAddress: ipaddr.parse(input.srcAddress).toString(), dstAddress: ipaddr.parse(input.dstAddress).toString(), id };
    this.rows[menu].push(row);
    return row;
  }

  all(menu: Menu): readonly StoredConnection[] {
    return this.rows[menu];
  }

  remove(menu: Menu, id: string): boolean {
    const before = this.rows[menu].length;
    this.rows[menu] = this.rows[menu].filter((row) => row.id !== id);
    return this.rows[menu].length !== before;
  }

  print(menu: Menu, row: StoredConnection): Record<string, string> {
    const printed: Record<string, string> = { '.id': row.id, protocol: row.protocol };
    if (menu === 'ip') {
      printed['src-address'] = row.srcPort === undefined ? row.srcAddress : `${row.srcAddress}:${row.srcPort}`;
      printed['dst-address'] = row.dstPort === undefined ? row.dstAddress : `${row.dstAddress}:${row.dstPort}`;
    } else {
      printed['src-address'] = row.srcAddress;
      printed['dst-address'] = row.dstAddress;
      if (row.srcPort !== undefined) printed['src-port'] = String(row.srcPort);
      if (row.dstPort !== undefined) printed['dst-port'] = String(row.dstPort);
    }
    if (row.protocol === 'tcp') printed['tcp-state'] = 'established';
    return printed;
  }
}
