import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadFilter, type ConfigDirs, type FilterDefinition } from '../../src/config/fail2ban/filter-definition.ts';
import { DEBIAN_DIR, HAVE_FAIL2BAN, REPO, runFail2banPython } from './fixtures.ts';

// Debian's filter.d as the user's config dir; no shipped filters, so every name resolves to Debian's.
const DIRS: ConfigDirs = { configDir: DEBIAN_DIR, shippedFilterDir: path.join(REPO, 'test/config/no-such-dir'), shippedActionDir: path.join(REPO, 'actions') };
// Never skipped: .ci/run installs Debian's fail2ban, the reference these tests compare against.
test('fail2ban (Debian package) is installed', () => {
  assert.ok(HAVE_FAIL2BAN, 'fail2ban-regex and /etc/fail2ban are missing: apt-get install fail2ban');
});

// What fail2ban-regex does with a filter name (fail2banregex.py readRegex + FilterReader.convert).
const FAIL2BAN_FILTERS = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from fail2ban.client.filterreader import FilterReader
from fail2ban.helpers import extractOptions
out = {}
for spec in sys.argv[2:]:
    try:
        name, opts = extractOptions(spec)
        r = FilterReader(name, 'fail2ban-regex-jail', opts, share_config={}, basedir=sys.argv[1])
        if not r.read():
            out[spec] = 'missing'; continue
        r.applyAutoOptions('auto')
        r.getOptions(None)
        c = r.getCombined()
        lines = lambda v: [l for l in v.split('\\n') if l != ''] if v else []
        out[spec] = {'prefregex': c.get('prefregex') or None, 'failregex': lines(c.get('failregex')),
            'ignoreregex': lines(c.get('ignoreregex')), 'maxlines': int(c.get('maxlines') or 1),
            'datepattern': c.get('datepattern') or None, 'journalmatch': c.get('journalmatch') or None}
    except Exception as e:
        out[spec] = 'error: ' + type(e).__name__
print(json.dumps(out))
`;

function summary(f: FilterDefinition): unknown {
  return {
    prefregex: f.prefregex?.pattern ?? null,
    failregex: f.failregex.map((r) => r.pattern),
    ignoreregex: f.ignoreregex.map((r) => r.pattern),
    maxlines: f.maxlines,
    datepattern: f.datepattern?.pattern ?? null,
    journalmatch: f.journalmatch,
  };
}

async function compare(specs: string[]): Promise<void> {
  const expected = runFail2banPython(FAIL2BAN_FILTERS, [DEBIAN_DIR, ...specs]) as Record<string, unknown>;
  for (const spec of specs) {
    assert.equal(typeof expected[spec], 'object', `fail2ban loads ${spec}`);
    assert.deepEqual(summary(await loadFilter(spec, DIRS)), expected[spec], spec);
  }
}

test('mail and web filters with their modes resolve exactly as fail2ban resolves them', async () => {
  await compare([
    'dovecot',
    'dovecot[mode=normal]',
    'dovecot[mode=aggressive]',
    'postfix',
    'postfix[mode=more]',
    'postfix[mode=normal]',
    'postfix[mode=auth]',
    'postfix[mode=rbl]',
    'postfix[mode=ddos]',
    'postfix[mode=errors]',
    'postfix[mode=aggressive]',
    'sshd',
    'sshd[mode=normal]',
    'sshd[mode=ddos]',
    'sshd[mode=extra]',
    'sshd[mode=aggressive]',
    'sshd[mode="aggressive", logtype=journal]',
    'sshd[logtype=rfc5424]',
    'sshd[logtype=short]',
    'nginx-http-auth',
    'nginx-http-auth[mode=fallback]',
    'nginx-http-auth[mode=aggressive]',
    'apache-auth',
    'traefik-auth',
    'traefik-auth[mode=aggressive]',
  ]);
});

test("every filter in Debian's filter.d that has a failregex resolves as fail2ban resolves it", async () => {
  const names = readdirSync(path.join(DEBIAN_DIR, 'filter.d'))
    .filter((f) => f.endsWith('.conf'))
    .map((f) => f.slice(0, -'.conf'.length));
  const expected = runFail2banPython(FAIL2BAN_FILTERS, [DEBIAN_DIR, ...names]) as Record<string, unknown>;
  let compared = 0;
  for (const name of names) {
    const ref = expected[name];
    if (typeof ref !== 'object' || ref === null || (ref as { failregex: string[] }).failregex.length === 0) {
      // Include-only files (common.conf …) and selinux-common (an error in fail2ban too) are refused.
      await assert.rejects(loadFilter(name, DIRS), /failregex|unknown reference/, name);
      continue;
    }
    assert.deepEqual(summary(await loadFilter(name, DIRS)), ref, name);
    compared++;
  }
  assert.ok(compared > 80, `compared ${compared} filters`);
});

test('each regex names the file and line it was written on, through <mdre-<mode>> and %(…)s', async () => {
  const file = path.join(DEBIAN_DIR, 'filter.d/dovecot.conf');
  const lines = readFileSync(file, 'utf8').split('\n');
  const lineOf = (prefix: string): number => lines.findIndex((l) => l.startsWith(prefix)) + 1;
  const f = await loadFilter('dovecot[mode=aggressive]', DIRS);
  assert.equal(f.name, 'dovecot');
  assert.deepEqual(f.options, { mode: 'aggressive' });
  assert.equal(f.file, file);
  assert.deepEqual(f.failregex[0]?.source, { file, line: lineOf('failregex'), key: 'failregex' });
  assert.deepEqual(f.failregex.at(-1)?.source, { file, line: lineOf('mdre-aggressive'), key: 'failregex' });
  assert.equal(f.prefregex?.source.line, lineOf('prefregex'));
  // Engine tags stay for the filter engine.
  assert.ok(f.failregex.every((r) => r.pattern.includes('<HOST>')));
  assert.ok(f.prefregex?.pattern.includes('<F-CONTENT>'));
});

test('a filter given by path (with options) loads that file and its includes', async () => {
  const f = await loadFilter(`${DEBIAN_DIR}/filter.d/sshd.conf[mode=aggressive]`, DIRS);
  const byName = await loadFilter('sshd[mode=aggressive]', DIRS);
  assert.deepEqual(summary(f), summary(byName));
  assert.deepEqual(f.options, { mode: 'aggressive' });
});
