// The human status views for jails the daemon reports as not running or running differently from
// fail2ban (the fields status --json carries for them), beside the fail2ban-client layout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatJail, formatOverview, type DaemonStatus } from '../../src/cli/status-format.ts';

const status: DaemonStatus = {
  activeBans: 1,
  targets: [],
  jails: [
    {
      jail: 'httpd-forbidden',
      running: true,
      lines: 10,
      failures: 4,
      tracked: 2,
      bans: 1,
      banned: ['203.0.113.7'],
      follower: { files: [{ path: '/remotelogs/web/access.log', error: null }] },
      notes: [
        { kind: 'substituted', file: '/data/jail.local', line: 12, message: 'iptables-multiport runs as an edge ban (opnsense)', fix: 'banaction = opnsense' },
      ],
    },
    { jail: 'postfix-sasl', running: false, reason: 'edgeban ships no filter postfix-sasl', notes: [] },
    { jail: 'blocklist', running: true, manualOnly: true, banned: [] },
  ],
};

test('overview: running jails as fail2ban-client lists them, the others with their reason, substitutions named', () => {
  const text = formatOverview(status);
  assert.match(text, /^Status\n\|- Number of jail:\t2\n`- Jail list:\thttpd-forbidden, blocklist\n/);
  assert.match(text, /enabled but not running:\n {2}postfix-sasl: edgeban ships no filter postfix-sasl\n/);
  assert.match(text, /running differently from fail2ban .*\n {2}httpd-forbidden: iptables-multiport runs as an edge ban \(opnsense\)\n/);
  assert.match(text, /active bans: 1/);
});

test('status JAIL: the fail2ban-client block, the notes with file:line and fix; a jail not running says why', () => {
  const text = formatJail('httpd-forbidden', status);
  assert.match(
    text,
    /\| {2}\|- Currently failed:\t2\n\| {2}\|- Total failed:\t4\n\| {2}`- File list:\t\/remotelogs\/web\/access\.log\n`- Actions\n {3}\|- Currently banned:\t1\n {3}\|- Total banned:\t1\n {3}`- Banned IP list:\t203\.0\.113\.7\n/,
  );
  assert.match(text, /\/data\/jail\.local:12: iptables-multiport runs as an edge ban \(opnsense\) \(fix: banaction = opnsense\)/);
  assert.equal(formatJail('postfix-sasl', status), 'Status for the jail: postfix-sasl\n`- not running: edgeban ships no filter postfix-sasl\n');
  assert.match(formatJail('blocklist', status), /a manual-ban jail: it reads no log/);
});
