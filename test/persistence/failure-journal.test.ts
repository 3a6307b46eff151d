import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseCidr } from '../../src/jails/cidr.ts';
import { FAILURE, FailureJournal, FORGET, RECORD_BYTES, SEEN, TICKET, type JournalRecord } from '../../src/jails/failure-journal.ts';
import { createLogger, silentLogger } from '../../src/logging/logger.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** A decoded record, copied out of the reader's reused object. */
interface Seen {
  kind: number;
  address: string;
  time: number;
  last: number;
  retry: number;
  line: JournalRecord['line'];
}

async function openAndRead(file: string, logs?: Record<string, unknown>[]): Promise<{ journal: FailureJournal; records: Seen[] }> {
  const records: Seen[] = [];
  const logger = logs
    ? createLogger({
        level: 'info',
        destination: {
          write: (line: string) => {
            logs.push(JSON.parse(line) as Record<string, unknown>);
          },
        },
      })
    : silentLogger();
  const journal = await FailureJournal.open(file, logger, (r) => {
    const bytes = r.address.family === 4 ? [...r.address.bytes.subarray(0, 4)].join('.') : Buffer.from(r.address.bytes).toString('hex');
    records.push({ kind: r.kind, address: `${bytes}/${r.address.prefix}`, time: r.time, last: r.last, retry: r.retry, line: r.line && { ...r.line } });
  });
  return { journal, records };
}

const A = parseCidr('198.51.100.7');
const NET6 = parseCidr('2001:db8:1:2::/64');
const line = (endOffset: number) => ({ pathHash: 0xdeadbeef, endOffset, lineHash: 0x12345678 });

test('records written by commit come back in order after reopening: failures (IPv4, IPv6 networks) with their lines, resets', async (t) => {
  const file = path.join(await tempDir(t), 'failures', 'dovecot.journal');
  const { journal, records: none } = await openAndRead(file);
  assert.deepEqual(none, []);
  journal.addFailure(A, 1000.5, line(120));
  journal.addFailure(NET6, 1001, line(240));
  await journal.commit();
  journal.addForget(A);
  journal.addFailure(A, 1002, null);
  await journal.commit();
  assert.equal(journal.records, 4);
  await journal.close();

  const { journal: again, records } = await openAndRead(file);
  t.after(() => again.close());
  assert.deepEqual(records, [
    { kind: FAILURE, address: '198.51.100.7/32', time: 1000.5, last: 0, retry: 0, line: line(120) },
    { kind: FAILURE, address: '20010db8000100020000000000000000/64', time: 1001, last: 0, retry: 0, line: line(240) },
    { kind: FORGET, address: '198.51.100.7/32', time: 0, last: 0, retry: 0, line: null },
    { kind: FAILURE, address: '198.51.100.7/32', time: 1002, last: 0, retry: 0, line: null },
  ]);
  assert.equal(again.records, 4);
});

test('a batch larger than one frame is written and read back whole', async (t) => {
  const file = path.join(await tempDir(t), 'j.journal');
  const { journal } = await openAndRead(file);
  for (let i = 0; i < 10_000; i++) journal.addFailure(parseCidr(`203.0.113.${(i % 250) + 1}`), 1000 + i, line(i * 100 + 100));
  await journal.commit();
  await journal.close();
  const { journal: again, records } = await openAndRead(file);
  t.after(() => again.close());
  assert.equal(records.length, 10_000);
  assert.equal(records[9_999]!.time, 10_999);
  assert.equal(records[9_999]!.line?.endOffset, 1_000_000);
});

for (const [name, damage] of [
  [
    'cut in the middle of its last frame',
    async (file: string) => {
      await truncate(file, (await stat(file)).size - 30);
    },
  ],
  [
    'cut inside its last frame header',
    async (file: string) => {
      await truncate(file, (await stat(file)).size - 2 * RECORD_BYTES - 6);
    },
  ],
  [
    'followed by zeros (blocks the filesystem allocated but never wrote)',
    async (file: string) => {
      await appendFile(file, Buffer.alloc(4096));
    },
  ],
  [
    'with a flipped byte in its last frame',
    async (file: string) => {
      const bytes = await readFile(file);
      bytes[bytes.length - 10]! ^= 0xff;
      await writeFile(file, bytes);
    },
  ],
] as const) {
  test(`a torn tail (${name}) is dropped with a warning; earlier frames are kept and later appends read back`, async (t) => {
    const file = path.join(await tempDir(t), 'j.journal');
    const { journal } = await openAndRead(file);
    journal.addFailure(A, 1000, line(100));
    await journal.commit();
    journal.addFailure(A, 1001, line(200));
    journal.addFailure(NET6, 1002, line(300));
    await journal.commit();
    await journal.close();
    const intact = await stat(file);
    await damage(file);

    const logs: Record<string, unknown>[] = [];
    const { journal: reopened, records } = await openAndRead(file, logs);
    const expectLast = name.startsWith('followed by zeros') ? 3 : 1;
    assert.equal(records.length, expectLast, 'the damaged frame is dropped whole, never in part');
    assert.equal(records[0]!.time, 1000);
    assert.ok(
      logs.some((l) => String(l.msg).includes('torn or damaged')),
      'the cut is reported',
    );
    if (expectLast === 3) assert.equal((await stat(file)).size, intact.size, 'the zeros are cut off');
    reopened.addFailure(A, 1003, line(400));
    await reopened.commit();
    await reopened.close();

    const { journal: last, records: after } = await openAndRead(file);
    t.after(() => last.close());
    assert.deepEqual(
      after.map((r) => r.time),
      [...records.map((r) => r.time), 1003],
      'an append after the cut is not hidden behind it',
    );
  });
}

test('a torn first write (part of the file header) starts an empty journal; another file is set aside, not overwritten', async (t) => {
  const dir = await tempDir(t);
  const torn = path.join(dir, 'torn.journal');
  await writeFile(torn, 'edgeban-fa');
  const { journal, records } = await openAndRead(torn);
  assert.deepEqual(records, []);
  journal.addFailure(A, 1000, null);
  await journal.commit();
  await journal.close();
  assert.equal((await openAndRead(torn)).records.length, 1);

  const other = path.join(dir, 'other.journal');
  await writeFile(other, 'not a journal at all\n');
  const logs: Record<string, unknown>[] = [];
  const { journal: fresh, records: none } = await openAndRead(other, logs);
  t.after(() => fresh.close());
  assert.deepEqual(none, []);
  assert.equal(await readFile(`${other}.damaged`, 'utf8'), 'not a journal at all\n');
  assert.ok(logs.some((l) => String(l.msg).includes('not an edgeban failure journal')));
});

test('rewrite replaces the file atomically with tickets and lines to skip; pending records are dropped, later appends follow', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'j.journal');
  const { journal } = await openAndRead(file);
  for (let i = 0; i < 50; i++) journal.addFailure(A, 1000 + i, line(i));
  await journal.commit();
  journal.addFailure(A, 2000, line(5000));
  await journal.rewrite((sink) => {
    sink.ticket(A, 1000, 1049, 2);
    sink.seen(NET6, 1040, line(4000));
  });
  assert.equal(journal.records, 2);
  assert.equal(journal.pending, 0);
  journal.addFailure(NET6, 1050, line(6000));
  await journal.commit();
  await journal.close();
  assert.deepEqual((await readdir(dir)).sort(), ['j.journal'], 'no temporary file left');

  const { journal: again, records } = await openAndRead(file);
  t.after(() => again.close());
  assert.deepEqual(records, [
    { kind: TICKET, address: '198.51.100.7/32', time: 1000, last: 1049, retry: 2, line: null },
    { kind: SEEN, address: '20010db8000100020000000000000000/64', time: 1040, last: 0, retry: 0, line: line(4000) },
    { kind: FAILURE, address: '20010db8000100020000000000000000/64', time: 1050, last: 0, retry: 0, line: line(6000) },
  ]);
});
