// Log lines as the mail servers write them, for tests that feed a running daemon.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A syslog stamp (no year, no zone) of `ms`, in UTC: the daemons under test run with TZ=UTC. */
export function syslogStamp(ms: number = Date.now()): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** The syslog stamp of now. */
export function syslogNow(): string {
  return syslogStamp(Date.now());
}

/** Dovecot's failed-login message without stamp and host (as Dovecot logs to stderr in a container). */
export function dovecotFailureBody(address: string, user = 'alice'): string {
  return `imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<${user}>, method=PLAIN, rip=${address}, lip=10.0.0.2, TLS, session=<x>`;
}

/** One failed Dovecot login as a syslog line fail2ban's dovecot filter matches (stamp: now). */
export function dovecotFailure(address: string, user = 'alice', stamp = syslogNow()): string {
  return `${stamp} mail dovecot: ${dovecotFailureBody(address, user)}\n`;
}

/** A successful Dovecot login of bob from 198.51.100.9: read, never a failure. */
export function dovecotLogin(stamp = syslogNow()): string {
  return `${stamp} mail dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=198.51.100.9, lip=10.0.0.2, mpid=1, TLS, session=<y>\n`;
}
