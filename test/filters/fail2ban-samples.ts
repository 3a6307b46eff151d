// fail2ban's annotated sample logs (Debian's fail2ban package, read where it is installed, never
// copied here), parsed as fail2ban's samplestestcase reads them: `# filterOptions:` starts a
// section tested with those filter options, `# failJSON:` describes the next log line.
import { existsSync, readdirSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { canonicalIpv6 } from '../../src/filters/address-spelling.ts';
import { logLines } from './helpers.ts';

export const FAIL2BAN_DIR = '/etc/fail2ban';
export const FAIL2BAN_LOGS = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs';
export const fail2banInstalled = existsSync(FAIL2BAN_LOGS) && existsSync(path.join(FAIL2BAN_DIR, 'filter.d'));

/** One annotated log line: the failure fail2ban's test suite expects on it. */
export interface Annotated {
  text: string;
  match: boolean;
  /** Annotated host (IPv6 in edgeban's canonical spelling), null: none given. */
  host: string | null;
  /** Annotated local time "YYYY-MM-DDTHH:MM:SS[.ffffff]", null: none given. */
  time: string | null;
  /** The annotation needs a Python expression (constraint): not checked here. */
  constrained: boolean;
  /** fail2ban filter specs (name[options]) the line's section is tested with. */
  specs: string[];
}

/** fail2ban annotates addresses as logged; edgeban reports IPv6 in its canonical spelling. */
export function spelled(host: string): string {
  return isIP(host) === 6 ? (canonicalIpv6(host) ?? host) : host;
}

function specOf(name: string, opts: Record<string, unknown>): string {
  const pairs = Object.entries(opts).filter(([k]) => !k.startsWith('test.'));
  return pairs.length === 0 ? name : `${name}[${pairs.map(([k, v]) => `${k}=${String(v)}`).join(', ')}]`;
}

/** The sample files of fail2ban's filters (a file per filter of the same name), sorted. */
export function sampleNames(): string[] {
  return readdirSync(FAIL2BAN_LOGS)
    .filter((n) => existsSync(path.join(FAIL2BAN_DIR, 'filter.d', `${n}.conf`)))
    .sort();
}

/**
 * The annotated lines of sample `name` (and of files it adds with addFILE). Sections whose
 * test.condition or filter options this suite cannot evaluate are left out.
 */
export function annotated(name: string): Annotated[] {
  const out: Annotated[] = [];
  const files = [name];
  // As in fail2ban, options and sections carry on into files added with addFILE.
  let common: Record<string, unknown> = {};
  let specs = [name];
  let skip = false;
  for (let f = 0; f < files.length; f++) {
    let pending: Record<string, unknown> | null = null;
    for (const raw of logLines(path.join(FAIL2BAN_LOGS, files[f] as string))) {
      const line = raw.replace(/\r$/, '');
      const meta = /^#+ ?(failJSON|filterOptions|fileOptions|addFILE):(.+)$/.exec(line);
      if (meta) {
        const data: unknown = JSON.parse(meta[2] ?? '');
        if (meta[1] === 'fileOptions') common = data as Record<string, unknown>;
        else if (meta[1] === 'addFILE') files.push(data as string);
        else if (meta[1] === 'filterOptions') {
          const sets = (Array.isArray(data) ? data : [data]) as Array<Record<string, unknown>>;
          skip = sets.some((opts) => 'test.condition' in opts);
          specs = sets.map((opts) => specOf(name, { ...common, ...opts }));
        } else {
          pending = data as Record<string, unknown>;
        }
        continue;
      }
      if (line.startsWith('#') || line.trim() === '') continue;
      if (!skip) {
        const host = typeof pending?.host === 'string' ? pending.host : null;
        out.push({
          text: line,
          match: pending?.match === true,
          host: host === null ? null : spelled(host),
          time: typeof pending?.time === 'string' ? pending.time : null,
          constrained: pending?.constraint !== undefined,
          specs,
        });
      }
      pending = null;
    }
  }
  return out;
}
