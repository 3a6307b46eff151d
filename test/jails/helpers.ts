import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { parseCidr, type Cidr } from '../../src/jails/cidr.ts';
import { seededRandom } from '../../src/util/seeded-random.ts';

/** The Python that has fail2ban importable (Debian's package), or null. */
export const FAIL2BAN_PYTHON: string | null = (() => {
  for (const python of ['/usr/bin/python3']) {
    if (!existsSync(python)) continue;
    try {
      execFileSync(python, ['-c', 'import fail2ban.server.failmanager'], { stdio: 'ignore' });
      return python;
    } catch {
      // not this one
    }
  }
  return null;
})();

/** Runs a Python snippet with one JSON argument; returns its stdout parsed as JSON. */
export function runPython(script: string, input: unknown): unknown {
  if (FAIL2BAN_PYTHON === null) throw new Error('fail2ban is not installed');
  return JSON.parse(execFileSync(FAIL2BAN_PYTHON, ['-c', script, JSON.stringify(input)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }));
}

export const ip = (text: string): Cidr => parseCidr(text);

/** A small deterministic PRNG (mulberry32) for generated sequences. */
export const seeded = seededRandom;
