// fail2ban's whole annotated sample suite through edgeban's engine with fail2ban's own filter.d
// (read from /etc/fail2ban), at fail2ban's test time and zone (TEST_NOW, CET): every
// annotated line, in every filter-option set its section names, must give the failure (match,
// host, time) the annotation gives, on at least 98.5% of the lines. fail2ban's own engine scores
// 98.8% under this scoring, its misses being host names; edgeban never resolves host names, so
// those lines count apart. This is the engine's faithfulness; the yardstick test measures the
// shipped filters.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { annotated, FAIL2BAN_DIR, fail2banInstalled, sampleNames, type Annotated } from './fail2ban-samples.ts';
import { runFilter } from './helpers.ts';

/** fail2ban's samplestestcase TEST_NOW. */
const TEST_NOW = 1124013600;
const REQUIRED = 0.985;

/** fail2ban's test zone (tests/utils.py setUpMyTime): the annotations are local times there. */
process.env.TZ = 'Europe/Zurich'; // the same offsets as fail2ban's POSIX TZ CET-01CEST-02,M3.5.0,M10.5.0

/** Annotated local time as whole epoch seconds (Python's strptime also takes a one-digit day). */
function annotatedTime(time: string): number {
  const [y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0] = (time.match(/\d+/g) ?? []).map(Number);
  return Math.floor(new Date(y, mo - 1, d, h, mi, sec).getTime() / 1000);
}

describe("fail2ban's sample suite with its own filters", { skip: !fail2banInstalled && 'fail2ban is not installed' }, () => {
  it(`agrees with the annotations on at least ${REQUIRED * 100}% of the lines (host names counted apart)`, { timeout: 300_000 }, async () => {
    let checked = 0;
    let agreed = 0;
    let hostNames = 0;
    const disagreements: string[] = [];
    for (const name of sampleNames()) {
      const lines = annotated(name);
      for (const spec of new Set(lines.flatMap((l) => l.specs))) {
        const section: Annotated[] = lines.filter((l) => l.specs.includes(spec));
        let results;
        try {
          results = await runFilter(
            spec,
            section.map((l) => l.text),
            TEST_NOW,
            FAIL2BAN_DIR,
          );
        } catch (error) {
          checked += section.length;
          disagreements.push(`${spec}: cannot load: ${(error as Error).message.split('\n')[0]}`);
          continue;
        }
        for (const [i, line] of section.entries()) {
          if (line.constrained) continue;
          const r = results[i];
          if (line.match && line.host !== null && isIP(line.host) === 0) {
            hostNames++;
            continue;
          }
          checked++;
          const timeOk = !line.match || line.time === null || (r?.time != null && Math.floor(r.time) === annotatedTime(line.time));
          const hostOk = !line.match || line.host === null || r?.host === line.host;
          if (r?.match === line.match && hostOk && timeOk) agreed++;
          else
            disagreements.push(
              `${spec}: want ${line.match ? `${line.host ?? '?'} @${line.time ?? '?'}` : 'no match'}, got ${r?.match === true ? `${r.host ?? r.hostname ?? r.invalidHost ?? '?'} @${r.time ?? '?'}` : 'no match'}: ${line.text.slice(0, 160)}`,
            );
        }
      }
    }
    const score = agreed / checked;
    console.log(
      `fail2ban sample suite: ${agreed}/${checked} lines agree (${(score * 100).toFixed(2)}%), ${hostNames} host-name lines apart, ${disagreements.length} disagreements`,
    );
    for (const d of disagreements) console.log(`  ${d}`);
    assert.ok(checked > 1000, 'the sample suite must hold lines');
    assert.ok(score >= REQUIRED, `agreement ${(score * 100).toFixed(2)}% < ${REQUIRED * 100}%`);
  });
});
