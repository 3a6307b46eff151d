import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * A clone must hold everything its files point to: no path on a build machine (a home, a work
 * dir, a CI checkout) and no reference to documents beside the repository instead of in it.
 */
const OUTSIDE = /(?:^|[\s'"`(=:])(?:\/work|\/home|\/root|\/Users|\/check)\/|\.\.\/shared\/|\bshared\/(?:opnsense-api|tailing|user-pains)\.md/;

test('no file in the repository points outside it', () => {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  const found: string[] = [];
  for (const file of files) {
    if (/\.(png|jpg|gz|ico)$/.test(file) || file === 'package-lock.json') continue;
    // This file names the patterns it looks for; sample logs hold paths on the servers that wrote them.
    if (file === 'test/repo/self-contained.test.ts' || file.startsWith('test/filters/samples/')) continue;
    const lines = readFileSync(path.join(root, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (OUTSIDE.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

test('the pointers to the in-repository references resolve', () => {
  for (const doc of ['docs/opnsense-api.md', 'docs/tailing.md']) assert.ok(readFileSync(path.join(root, doc), 'utf8').length > 1000, doc);
});
