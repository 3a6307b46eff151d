import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from './temp-dir.ts';

/** A daemon's files in a fresh temp root: an empty logs/mail.log and a config/ dir for jail.local. */
export interface MailSetup {
  root: string;
  logDir: string;
  configDir: string;
  mailLog: string;
}

/** Creates them; the root is removed when the test ends. */
export async function mailSetup(t: TestContext): Promise<MailSetup> {
  const root = await tempDir(t);
  const logDir = path.join(root, 'logs');
  const configDir = path.join(root, 'config');
  await mkdir(logDir);
  await mkdir(configDir);
  const mailLog = path.join(logDir, 'mail.log');
  await writeFile(mailLog, '');
  return { root, logDir, configDir, mailLog };
}
