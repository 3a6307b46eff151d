import { isValidAddress, toPfSpelling } from '../net/address.ts';
import { entryContains } from './pf-table-store.ts';
import type { Rng } from './rng.ts';

/** Where seeded states point: the simulated firewall's own address (documentation range). */
export const STATE_LOCAL_ADDRESS = '198.51.100.254';

export interface PfState {
  id: string;
  creator: string;
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  label: string;
}

/** One line as `pfctl -vvs state` would print it; non-IP kill filters match substrings of it. */
export function stateRecordText(s: PfState): string {
  const sep = s.src.includes(':') ? '.' : ':';
  return `all ${s.proto} ${s.dst}${sep}${s.dstPort} <- ${s.src}${sep}${s.srcPort}       ESTABLISHED:ESTABLISHED`;
}

/** Sanitizer "query" (L/Core/SanitizeFilter.php): digits, letters, space and `, * - _ . #` survive. */
export function sanitizeQuery(input: string): string {
  return input.replace(/[^0-9A-Za-z ,*\-_.#]/g, '');
}

/** The pf state table, only as far as kill_states/query_states need it. */
export class PfStates {
  private states: PfState[] = [];
  private readonly rng: Rng;

  constructor(rng: Rng) {
    this.rng = rng;
  }

  private hex(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += Math.floor(this.rng.next() * 16).toString(16);
    return out;
  }

  seed(address: string, count: number): void {
    const src = toPfSpelling(address);
    const dst = src.includes(':') ? '2001:db8:ffff::fe' : STATE_LOCAL_ADDRESS;
    for (let i = 0; i < count; i++) {
      this.states.push({
        id: this.hex(16),
        creator: this.hex(8),
        proto: 'tcp',
        src,
        srcPort: 40000 + (i % 20000),
        dst,
        dstPort: 443,
        label: '',
      });
    }
  }

  countFrom(address: string): number {
    const src = isValidAddress(address) ? toPfSpelling(address) : address;
    return this.states.filter((s) => s.src === src).length;
  }

  all(): readonly PfState[] {
    return this.states;
  }

  clear(): void {
    this.states = [];
  }

  /**
   * kill_states.py: a filter that parses as an address or network drops every state whose
   * addresses overlap it; anything else must be a case-sensitive substring of the state line.
   */
  kill(filter: string, ruleId: string): number {
    const token = filter.trim();
    const network = token !== '' && isValidAddress(token) ? toPfSpelling(token) : null;
    const before = this.states.length;
    this.states = this.states.filter((s) => {
      if (ruleId !== '' && s.label !== ruleId) return true;
      if (token === '') return ruleId === '';
      if (network !== null) return !(entryContains(network, s.src) || entryContains(network, s.dst));
      return !stateRecordText(s).includes(token);
    });
    return before - this.states.length;
  }

  deleteById(id: string, creator: string): boolean {
    const before = this.states.length;
    this.states = this.states.filter((s) => !(s.id === id && s.creator === creator));
    return this.states.length !== before;
  }
}
