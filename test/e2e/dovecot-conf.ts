import { chown, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A Dovecot 2.3 set-up in `dir`: IMAP on 143 (plain text allowed), user alice / correct-horse in a
 * passwd-file, mail as uid 65534, logging to `log`; `extra` is appended (an auth listener for
 * Postfix, say). Returns the config file.
 */
export async function writeDovecotConf(dir: string, log: string, extra = ''): Promise<string> {
  await mkdir(path.join(dir, 'dovecot-run'), { mode: 0o755 });
  await mkdir(path.join(dir, 'home/alice'), { recursive: true, mode: 0o755 });
  await chown(path.join(dir, 'home/alice'), 65534, 65534);
  await writeFile(path.join(dir, 'users'), 'alice:{PLAIN}correct-horse:65534:65534::/nonexistent::\n', { mode: 0o644 });
  const file = path.join(dir, 'dovecot.conf');
  await writeFile(file, `
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
${extra}
`);
  return file;
}
