import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, startCliDaemon, startCliSimulator } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { KEY, SECRET, statusJson } from './harness.ts';

/** A config dir holding only this jail.local, an env for the simulator, and the call log. */
async function setup(t: Parameters<typeof tempDir>[0], jailLocal: (log: string) => string) {
  const sim = await startCliSimulator(t, ['--key', KEY, '--secret', SECRET, '--auth-fail-delay', '0']);
  const root = await tempDir(t);
  const log = path.join(root, 'mail.log');
  await writeFile(log, '');
  await writeFile(path.join(root, 'jail.local'), jailLocal(log));
  const env = {
    TZ: 'UTC',
    OPNSENSE_URL: sim.url,
    OPNSENSE_KEY: KEY,
    OPNSENSE_SECRET: SECRET,
    EDGEBAN_DATA_DIR: path.join(root, 'data'),
    EDGEBAN_CONFIG_DIR: root,
  };
  const calls = async () => (await sim.admin('calls')) as unknown[];
  return { env, calls, file: path.join(root, 'jail.local') };
}

test('banaction = opnsens (a typo) is a config error at its file:line, exit 2, before any API call', async (t) => {
  const { env, calls, file } = await setup(t, (log) => `[DEFAULT]\nbanaction = opnsens\n\n[dovecot]\nenabled = true\nlogpath = ${log}\n`);
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(
    run.stderr,
    new RegExp(
      `${file.replaceAll('.', '\\.')}:2: banaction: action "opnsens" of jail dovecot resolves to nothing: no action\\.d/opnsens\\.conf .*; did you mean opnsense\\?`,
    ),
  );
  assert.deepEqual(await calls(), [], 'an API call was made');
  const doctor = await runCli(['doctor'], { env });
  assert.equal(doctor.code, 2);
  assert.match(doctor.stdout, /^FAIL {2}config\.jails .*:2: banaction: action "opnsens"/m);
});

test('enabeld = true: a warning with "did you mean enabled?" at its line, and since no jail runs, exit 2 before any API call', async (t) => {
  const { env, calls, file } = await setup(t, (log) => `[dovecot]\nenabeld = true\nlogpath = ${log}\n`);
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.ok(run.stderr.includes(`${file}:2: [dovecot] enabeld: unknown key, ignored (as fail2ban ignores it); did you mean enabled?`), run.stderr);
  assert.match(run.stderr, /no jail is enabled, so nothing would be banned/);
  assert.deepEqual(await calls(), []);
  // EDGEBAN_ALLOW_NO_JAILS=1: a ban-only setup starts.
  const daemon = await startCliDaemon(t, { ...env, EDGEBAN_ALLOW_NO_JAILS: '1' });
  assert.equal(await daemon.stop(), 0);
});

test('maxretyr = 3 warns with "did you mean maxretry?"; the jail runs; status and doctor show it', async (t) => {
  const { env, file } = await setup(t, (log) => `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretyr = 3\n`);
  const daemon = await startCliDaemon(t, env);
  assert.ok(
    daemon.stderr.some((l) => l.includes(`${file}:4: [dovecot] maxretyr: unknown key, ignored (as fail2ban ignores it); did you mean maxretry?`)),
    daemon.stderr.join('\n'),
  );
  const dovecot = (await statusJson(env)).jails.find((j) => j.jail === 'dovecot');
  assert.deepEqual(
    dovecot?.notes?.map((n) => [n.kind, n.subject]),
    [['unknown-key', 'maxretyr']],
  );
  const doctor = await runCli(['doctor'], { env });
  assert.match(
    doctor.stdout,
    /^WARN {2}config\.unknown-key +jail dovecot: .*maxretyr: unknown key.*did you mean maxretry\? — fix: rename maxretyr to maxretry/m,
  );
  assert.equal(await daemon.stop(), 0);
});

test('zero runnable jails (the only jail skipped by localactions = skip) exit 2 naming the jail and why, before any API call', async (t) => {
  const { env, calls } = await setup(t, (log) => `[DEFAULT]\nlocalactions = skip\n\n[dovecot]\nenabled = true\nlogpath = ${log}\nbanaction = ufw\n`);
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(
    run.stderr,
    /no enabled jail can run, so nothing would be banned:\n {2}\[dovecot\] not running: local firewall action ufw \(.*jail\.local:7\) and localactions = skip/,
  );
  assert.deepEqual(await calls(), []);
});

test('a secret typed into the wrong field is never echoed by run or doctor', async (t) => {
  const typedSecret = 'Zm9vYmFyYmF6cXV4cXV1eA';
  const { env } = await setup(t, (log) => `[dovecot]\nenabled = true\nlogpath = ${log}\nmaxretry = ${typedSecret}\nbantime = ${typedSecret}\n`);
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /jail\.local:4: \[dovecot\] maxretry: expected a whole number of at least 1/);
  const doctor = await runCli(['doctor'], { env });
  for (const output of [run.stderr, run.stdout, doctor.stdout, doctor.stderr]) assert.ok(!output.includes(typedSecret), output);
});

test('an enabled recidive jail does not run and says to use bantime.increment; alone, it is zero runnable jails: exit 2', async (t) => {
  const { env, calls } = await setup(t, () => '[recidive]\nenabled = true\nlogpath = /var/log/fail2ban.log\n');
  const run = await runCli(['run'], { env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(
    run.stderr,
    /\[recidive\] not running: .*jail\.local:2: \[recidive\] filter: recidive reads fail2ban's own log, which edgeban does not write: remove the jail and set bantime\.increment = true/,
  );
  assert.deepEqual(await calls(), []);
});
