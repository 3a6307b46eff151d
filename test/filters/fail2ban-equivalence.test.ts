// Debian's fail2ban filters, read from /etc/fail2ban by edgeban's config reader and run by its
// engine, must find the same failures (line, host, time) as fail2ban-regex itself on the same
// sample logs, mode variants included. fail2ban-regex runs with -o, i.e. with the server's
// semantics (first matching failregex wins, pending multi-line failures are not reported).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { logLines, runFilter, SAMPLES } from './helpers.ts';

const run = promisify(execFile);
const FAIL2BAN_DIR = '/etc/fail2ban';
const SAMPLE_DIR = path.join(SAMPLES, 'fail2ban');

const CASES: Record<string, string[]> = {
  dovecot: ['normal', 'aggressive'],
  postfix: ['normal', 'more', 'rbl', 'auth', 'ddos', 'extra', 'aggressive', 'errors'],
  sshd: ['normal', 'ddos', 'extra', 'aggressive'],
  'nginx-http-auth': ['normal', 'aggressive'],
  'apache-auth': ['normal', 'aggressive'],
  'traefik-auth': ['normal', 'ddos', 'aggressive'],
};

/** Filters written for these tests (samples/fail2ban/custom/NAME.conf), for the engine features Debian's filters barely touch. */
const CUSTOM = ['multiline', 'skiplines', 'mlfid', 'ignore'];

interface Failure {
  line: number;
  host: string;
  time: number;
}

/** fail2ban-regex's failures: one output row per matched log line, grouped by ticket (host, time). */
async function fail2banRegex(spec: string, log: string, lines: readonly string[]): Promise<Failure[]> {
  const { stdout } = await run('fail2ban-regex', ['-c', FAIL2BAN_DIR, '-o', '<ip>\t<time>\t<msg>', log, spec], {
    env: { ...process.env, TZ: 'UTC' },
    maxBuffer: 1 << 24,
  });
  const failures: Failure[] = [];
  let last: { key: string; failure: Failure } | null = null;
  for (const row of stdout.split('\n')) {
    if (row === '') continue;
    const [host, time, ...msg] = row.split('\t');
    const text = msg.join('\t');
    const index = lines.indexOf(text);
    assert.notEqual(index, -1, `fail2ban-regex printed a line that is not in ${log}: ${row}`);
    const key = `${host}\t${time}`;
    if (last !== null && last.key === key) {
      last.failure.line = Math.max(last.failure.line, index + 1);
      continue;
    }
    const failure = { line: index + 1, host: host ?? '', time: Number(time) };
    failures.push(failure);
    last = { key, failure };
  }
  return failures;
}

function compare(spec: string, log: string, lines: readonly string[]): () => Promise<void> {
  return async () => {
    const now = Date.now() / 1000;
    const [expected, results] = await Promise.all([fail2banRegex(spec, log, lines), runFilter(spec, lines, now, FAIL2BAN_DIR)]);
    const ours: Failure[] = [];
    for (const [i, r] of results.entries()) {
      if (!r.match) continue;
      // A host name is never resolved (fail2ban would try DNS): reported, not a failure.
      if (r.hostname !== undefined) continue;
      assert.ok(r.host !== null, `line ${i + 1}: a match without an address (${r.invalidHost ?? '?'})`);
      assert.ok(r.time !== null, `line ${i + 1}: a match without a time`);
      ours.push({ line: i + 1, host: r.host, time: r.time });
    }
    assert.deepEqual(ours, expected);
    assert.ok(expected.length > 0, 'the sample must hold failures');
  };
}

describe('custom filters exercising the engine', () => {
  for (const name of CUSTOM) {
    const log = path.join(SAMPLE_DIR, 'custom', `${name}.log`);
    it(`${name}: same failures as fail2ban-regex`, compare(path.join(SAMPLE_DIR, 'custom', `${name}.conf`), log, logLines(log)));
  }
});

for (const [name, modes] of Object.entries(CASES)) {
  describe(`fail2ban's ${name} filter`, () => {
    const log = path.join(SAMPLE_DIR, `${name}.log`);
    const lines = logLines(log);
    for (const mode of modes) {
      const spec = mode === 'normal' && name !== 'postfix' ? name : `${name}[mode=${mode}]`;
      it(`${spec}: same failures as fail2ban-regex`, compare(spec, log, lines));
    }
  });
}
