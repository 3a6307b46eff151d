import { chown, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface DovecotOptions {
  /** Appended to the config (an auth listener for Postfix, say). */
  extra?: string;
  /**
   * IMAP listeners taking the client's address from PROXY v2 sent by `trusted` (HAProxy): plain on
   * `port`, and IMAPS on `tlsPort` with `certificate`.
   */
  proxied?: { port: number; trusted: readonly string[]; tlsPort: number; certificate: { cert: string; key: string } };
}

/**
 * A Dovecot 2.3 set-up in `dir`: IMAP on 143 (plain text allowed), user alice / correct-horse in a
 * passwd-file, mail as uid 65534, logging to `log`. Returns the config file.
 */
export async function writeDovecotConf(dir: string, log: string, options: DovecotOptions = {}): Promise<string> {
  // Dovecot refuses a PROXY header from an address not in haproxy_trusted_networks.
  const proxied =
    options.proxied === undefined
      ? ''
      : `
haproxy_trusted_networks = ${options.proxied.trusted.join(' ')}
ssl = yes
ssl_cert = <${options.proxied.certificate.cert}
ssl_key = <${options.proxied.certificate.key}
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imap_proxied {
    port = ${options.proxied.port}
    haproxy = yes
  }
  inet_listener imaps_proxied {
    port = ${options.proxied.tlsPort}
    ssl = yes
    haproxy = yes
  }
}`;
  await mkdir(path.join(dir, 'dovecot-run'), { mode: 0o755 });
  await mkdir(path.join(dir, 'home/alice'), { recursive: true, mode: 0o755 });
  await chown(path.join(dir, 'home/alice'), 65534, 65534);
  await writeFile(path.join(dir, 'users'), 'alice:{PLAIN}correct-horse:65534:65534::/nonexistent::\n', { mode: 0o644 });
  const file = path.join(dir, 'dovecot.conf');
  await writeFile(
    file,
    `
base_dir = ${dir}/dovecot-run
state_dir = ${dir}/dovecot-run
log_path = ${log}
protocols = imap
listen = *, ::
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
${proxied}
${options.extra ?? ''}
`,
  );
  return file;
}
