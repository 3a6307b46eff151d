// The yardstick for the filters edgeban ships: fail2ban's annotated sample logs (Debian's fail2ban
// package, read where it is installed, never copied here) go through each shipped filter family in
// all its modes and through fail2ban's own filters with fail2ban-regex, in the modes each sample
// file names. Per family the shipped filters must catch at least the failures fail2ban catches
// (right host), never take a wrong host, and match no more lines annotated as non-failures.
// Annotated host names count apart: edgeban never resolves them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '../helpers/temp-dir.ts';
import { annotated, FAIL2BAN_DIR, FAIL2BAN_LOGS, fail2banInstalled, spelled } from './fail2ban-samples.ts';
import { runFilter } from './helpers.ts';

const run = promisify(execFile);

interface Family {
  /** Shipped filter name and the modes a user can pick. */
  shipped: string;
  modes: string[];
  /** fail2ban sample logs (each named after fail2ban's filter for it). */
  samples: string[];
  /** The shipped modes that carry fail2ban's mode names with their meaning: each must catch what fail2ban's mode of that name catches. */
  sameModes?: string[];
}

const FAMILIES: Family[] = [
  {
    shipped: 'postfix',
    modes: ['normal', 'more', 'auth', 'extra', 'rbl', 'errors', 'ddos', 'aggressive'],
    samples: ['postfix'],
    sameModes: ['more', 'auth', 'extra', 'rbl', 'errors', 'ddos', 'aggressive'],
  },
  { shipped: 'dovecot', modes: ['normal', 'aggressive'], samples: ['dovecot'], sameModes: ['normal', 'aggressive'] },
  {
    shipped: 'nginx',
    modes: ['normal', 'auth', 'access', 'limit-req', 'botsearch', 'bad-request', 'forbidden', 'aggressive'],
    samples: ['nginx-http-auth', 'nginx-botsearch', 'nginx-limit-req', 'nginx-bad-request'],
  },
  {
    shipped: 'apache',
    modes: ['normal', 'auth', 'access', 'noscript', 'botsearch', 'badbots', 'overflows', 'nohome', 'modsecurity', 'shellshock', 'aggressive'],
    samples: [
      'apache-auth',
      'apache-noscript',
      'apache-botsearch',
      'apache-badbots',
      'apache-overflows',
      'apache-nohome',
      'apache-modsecurity',
      'apache-shellshock',
      'apache-pass',
      'apache-fakegooglebot',
    ],
  },
  { shipped: 'traefik', modes: ['normal', 'auth'], samples: ['traefik-auth'] },
];

/**
 * Lines where the shipped filters depart from fail2ban 1.0.2's annotations on purpose, counted
 * apart: each names why.
 */
const DEPARTURES: Array<{ sample: string; line: RegExp; why: string }> = [
  {
    sample: 'postfix',
    line: /: lost connection after AUTH from /,
    why: 'the "disconnect ... auth=0/N" line that follows counts the session once (fail2ban gh-3505, fixed after 1.0.2)',
  },
  { sample: 'apache-pass', line: /./, why: "port knocking: fail2ban's action grants access, a blocklist would lock the knocker out" },
  { sample: 'apache-fakegooglebot', line: /./, why: 'bans every Googlebot claim; safe only with a reverse-DNS ignorecommand' },
];

/** Lines fail2ban-regex reports as failures with `spec`, each with the hosts it gave. */
async function fail2banHits(spec: string, log: string): Promise<Map<string, Set<string>>> {
  const { stdout } = await run('fail2ban-regex', ['-c', FAIL2BAN_DIR, '-o', '<ip>\t<msg>', log, spec], {
    env: { ...process.env, TZ: 'UTC' },
    maxBuffer: 1 << 24,
  });
  const hits = new Map<string, Set<string>>();
  for (const row of stdout.split('\n')) {
    if (row === '') continue;
    const [host = '', ...msg] = row.split('\t');
    const text = msg.join('\t');
    hits.set(text, (hits.get(text) ?? new Set()).add(spelled(host)));
  }
  return hits;
}

interface Score {
  failures: number;
  hostNames: number;
  departures: number;
  fail2ban: number;
  shipped: number;
  wrongHosts: number;
  fail2banFalse: number;
  shippedFalse: number;
  missed: string[];
  wrong: string[];
  /** Per fail2ban mode name (sameModes): failures fail2ban's mode catches that the shipped mode of that name misses. */
  modeMisses: string[];
  falses: string[];
}

async function score(family: Family, dir: string): Promise<Score> {
  const falseLines: string[] = [];
  const familySpecs = new Set<string>();
  const s: Score = {
    failures: 0,
    hostNames: 0,
    departures: 0,
    fail2ban: 0,
    shipped: 0,
    wrongHosts: 0,
    fail2banFalse: 0,
    shippedFalse: 0,
    missed: [],
    wrong: [],
    falses: [],
    modeMisses: [],
  };
  for (const name of family.samples) {
    const log = path.join(FAIL2BAN_LOGS, name);
    const lines = annotated(name);
    const texts = lines.map((l) => l.text);
    const specs = [...new Set(lines.flatMap((l) => l.specs))];
    for (const spec of specs) familySpecs.add(spec);
    const theirs = new Map(await Promise.all(specs.map(async (spec) => [spec, await fail2banHits(spec, log)] as const)));
    const ours = await Promise.all(family.modes.map((mode) => runFilter(`${family.shipped}[mode=${mode}]`, texts, Date.now() / 1000)));
    const shippedByMode = new Map(family.modes.map((mode, k) => [mode, ours[k] ?? []] as const));
    for (const [i, line] of lines.entries()) {
      // fail2ban in the modes of the line's section.
      const f2bHosts = new Set(line.specs.flatMap((spec) => [...(theirs.get(spec)?.get(line.text) ?? [])]));
      const shippedHosts = new Set(
        ours.flatMap((results) => {
          const r = results[i];
          return r?.match === true ? [r.host ?? r.hostname ?? '?'] : [];
        }),
      );
      if (!line.match) {
        falseLines.push(line.text);
        if (shippedHosts.size > 0) {
          s.shippedFalse++;
          s.falses.push(`${name}: ${line.text}`);
        }
        continue;
      }
      if (line.host !== null && isIP(line.host) === 0) {
        s.hostNames++;
        continue;
      }
      if (DEPARTURES.some((d) => d.sample === name && d.line.test(line.text))) {
        s.departures++;
        continue;
      }
      s.failures++;
      if (line.host !== null && f2bHosts.has(line.host)) s.fail2ban++;
      for (const mode of family.sameModes ?? []) {
        const spec = `${name}[mode=${mode}]`;
        if (!line.specs.includes(spec) || line.host === null || theirs.get(spec)?.get(line.text)?.has(line.host) !== true) continue;
        if (shippedByMode.get(mode)?.[i]?.host !== line.host) s.modeMisses.push(`mode=${mode}: ${line.text}`);
      }
      const right = line.host !== null && shippedHosts.has(line.host);
      if (right) s.shipped++;
      else s.missed.push(`${name}: ${line.text}`);
      const wrong = [...shippedHosts].filter((h) => h !== line.host);
      if (wrong.length > 0) {
        s.wrongHosts++;
        s.wrong.push(`${name}: ${wrong.join(',')} <- ${line.text}`);
      }
    }
  }
  // Non-failures against every fail2ban filter and mode of the family, as the shipped side runs all its modes.
  const falseLog = path.join(dir, 'non-failures.log');
  await writeFile(falseLog, falseLines.map((l) => `${l}\n`).join(''));
  const caught = await Promise.all([...familySpecs].map((spec) => fail2banHits(spec, falseLog)));
  s.fail2banFalse = falseLines.filter((text) => caught.some((hits) => hits.has(text))).length;
  return s;
}

const table: string[] = [];

describe('shipped filters against fail2ban on its annotated sample logs', { skip: !fail2banInstalled && 'fail2ban is not installed' }, () => {
  after(() => {
    console.log(['family      failures  fail2ban  shipped  wrong-hosts  f2b-false  shipped-false  host-names  departures', ...table].join('\n'));
  });
  for (const family of FAMILIES) {
    it(`${family.shipped}: catches what fail2ban catches, no wrong host, no more false positives`, async (t) => {
      const s = await score(family, await tempDir(t));
      table.push(
        [family.shipped.padEnd(10), s.failures, s.fail2ban, s.shipped, s.wrongHosts, s.fail2banFalse, s.shippedFalse, s.hostNames, s.departures]
          .map((v, i) => (i === 0 ? v : String(v).padStart(9)))
          .join(' '),
      );
      const detail = `\nmissed:\n  ${s.missed.join('\n  ')}\nwrong:\n  ${s.wrong.join('\n  ')}\nfalse positives:\n  ${s.falses.join('\n  ')}`;
      assert.equal(s.wrongHosts, 0, `wrong hosts${detail}`);
      assert.deepEqual(s.modeMisses, [], "a shipped mode misses what fail2ban's mode of the same name catches");
      assert.ok(s.shipped >= s.fail2ban, `shipped ${s.shipped} < fail2ban ${s.fail2ban}${detail}`);
      assert.ok(s.shippedFalse <= s.fail2banFalse, `false positives: shipped ${s.shippedFalse} > fail2ban ${s.fail2banFalse}${detail}`);
    });
  }
});
