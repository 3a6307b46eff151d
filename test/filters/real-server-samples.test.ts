// The shipped filters against lines real servers wrote (captured by the e2e suite, test/e2e, with
// EDGEBAN_E2E_SAVE_SAMPLES=1; the server version is in the file name): every failure line yields
// the attacker with its time, and no other line matches. Dovecot 2.4 cannot run here (Debian 12
// ships 2.3): dovecot-2.4-reported.log holds the lines a Dovecot 2.4 server wrote, as reported in
// fail2ban/fail2ban#4196, with the addresses replaced by documentation ones.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { iso, logLines, runFilter, SAMPLES } from './helpers.ts';

const ATTACKER = '198.51.100.7';
const ATTACKER6 = '2001:db8:a::7';
/** After the capture, so year-less stamps (Dovecot's own log) land in 2026. */
const NOW = Date.UTC(2026, 11, 8, 0, 0, 0) / 1000;

/** Per sample file: for each filter spec, the host each line must yield (null: no match). */
const CASES: Record<string, Record<string, Array<string | null>>> = {
  'dovecot-2.4-reported.log': {
    // The auth worker's line and the auth process's line report the same attempt: only the
    // latter counts (2.3 logs it once); then the login process's summary of the connection.
    dovecot: [null, ATTACKER, ATTACKER],
    'dovecot[mode=aggressive]': [null, ATTACKER, ATTACKER],
  },
  'nginx-1.22.1-error.log': {
    nginx: [ATTACKER, ATTACKER, ATTACKER],
    'nginx[mode=auth]': [ATTACKER, ATTACKER, ATTACKER],
  },
  'nginx-1.22.1-access.log': {
    nginx: [null, ATTACKER, ATTACKER, ATTACKER],
    'nginx[mode=access]': [null, ATTACKER, ATTACKER, ATTACKER],
    'nginx[mode=auth]': [null, null, null, null],
  },
  'postfix-3.7.11.log': {
    // Start-up, the client's sessions (direct, through HAProxy on submission and SMTPS: Postfix
    // writes the PROXY v2 address ::ffff:203.0.113.9 as 203.0.113.9), three connections failing
    // SMTP AUTH (PLAIN, plain, PLAIN), the client, three failing through HAProxy from the IPv6
    // attacker (the second over SMTPS), the client through HAProxy over IPv6.
    postfix: [
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER,
      null,
      null,
      ATTACKER,
      null,
      null,
      ATTACKER,
      null,
      null,
      null,
      null,
      ATTACKER6,
      null,
      null,
      ATTACKER6,
      null,
      null,
      ATTACKER6,
      null,
      null,
      null,
    ],
    'postfix[mode=auth]': [
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER,
      null,
      null,
      ATTACKER,
      null,
      null,
      ATTACKER,
      null,
      null,
      null,
      null,
      ATTACKER6,
      null,
      null,
      ATTACKER6,
      null,
      null,
      ATTACKER6,
      null,
      null,
      null,
    ],
    // ddos's "disconnect ... auth=0/1" lines count too.
    'postfix[mode=aggressive]': [
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER,
      ATTACKER,
      null,
      ATTACKER,
      ATTACKER,
      null,
      ATTACKER,
      ATTACKER,
      null,
      null,
      null,
      ATTACKER6,
      ATTACKER6,
      null,
      ATTACKER6,
      ATTACKER6,
      null,
      ATTACKER6,
      ATTACKER6,
      null,
      null,
    ],
  },
  'dovecot-2.3.19.1.log': {
    // Start-up, the client's logins direct and through HAProxy (IMAP and IMAPS; rip=::ffff:…,
    // from PROXY v2), the attacker's earlier login (its IDLE session), three failed LOGINs (the
    // last one reset), the client again, a probe connecting without a login (aggressive counts
    // it), three PROXY v2 headers the attacker forged straight to the proxied listener ("Client
    // not trusted": never counted, or a proxy missing from haproxy_trusted_networks would be
    // banned and lock out everyone behind it), three failed LOGINs of the IPv6 attacker through
    // HAProxy (the second over IMAPS; rip= the attacker, lip= the proxy's frontend), the client
    // through HAProxy over IPv6 and IMAPS.
    dovecot: [
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER,
      ATTACKER,
      ATTACKER,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER6,
      ATTACKER6,
      ATTACKER6,
      null,
      null,
    ],
    'dovecot[mode=aggressive]': [
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      null,
      ATTACKER,
      ATTACKER,
      ATTACKER,
      null,
      null,
      ATTACKER,
      null,
      null,
      null,
      ATTACKER6,
      ATTACKER6,
      ATTACKER6,
      null,
      null,
    ],
  },
  'apache-2.4.71-error.log': {
    // Start-up, then basic auth: two wrong passwords and an unknown user (v4), then three missing
    // CGI scripts (v6) as mod_cgid words them.
    apache: [null, null, ATTACKER, ATTACKER, ATTACKER, null, null, null],
    'apache[mode=auth]': [null, null, ATTACKER, ATTACKER, ATTACKER, null, null, null],
    'apache[mode=noscript]': [null, null, null, null, null, ATTACKER6, ATTACKER6, ATTACKER6],
    'apache[mode=aggressive]': [null, null, ATTACKER, ATTACKER, ATTACKER, ATTACKER6, ATTACKER6, ATTACKER6],
  },
  'apache-2.4.71-access.log': {
    // The client's 200s, the attacker's three 401s, the v6 attacker's 404s for missing scripts.
    apache: [null, ATTACKER, ATTACKER, ATTACKER, null, null, null, null, null],
    'apache[mode=access]': [null, ATTACKER, ATTACKER, ATTACKER, null, null, null, null, null],
    'apache[mode=auth]': [null, null, null, null, null, null, null, null, null],
  },
  'caddy-2.6.2-access.log': {
    // Caddy 2.6 writes remote_ip only (no client_ip). The client's 200, four probes (404), the
    // client's login, four basic-auth failures (v6), the client's login over v6.
    caddy: [null, ATTACKER, ATTACKER, ATTACKER, ATTACKER, null, ATTACKER6, ATTACKER6, ATTACKER6, ATTACKER6, null],
    'caddy[mode=auth]': [null, null, null, null, null, null, ATTACKER6, ATTACKER6, ATTACKER6, ATTACKER6, null],
  },
};

for (const [file, specs] of Object.entries(CASES)) {
  describe(`real ${file}`, () => {
    const lines = logLines(path.join(SAMPLES, 'real', file));
    const day = file === 'dovecot-2.4-reported.log' ? '2026-06-23' : '2026-12-07';
    for (const [spec, hosts] of Object.entries(specs)) {
      it(`${spec}: the failure lines, and only they, yield the attacker with the line's time`, async () => {
        assert.equal(lines.length, hosts.length);
        const results = await runFilter(spec, lines, NOW);
        for (const [i, want] of hosts.entries()) {
          const got = results[i]!;
          assert.equal(got.host, want, `${file} line ${i + 1}: ${lines[i]}`);
          if (want !== null) assert.match(iso(got.time) ?? '', new RegExp(`^${day}T\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?Z$`), `${file} line ${i + 1}: time`);
        }
      });
    }
  });
}
