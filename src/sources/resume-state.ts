import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ensureDirectory, syncDirectory } from '../util/durable-files.ts';
import { z } from 'zod';
import type { Logger } from '../logging/logger.ts';
import { errorMessage } from '../util/errors.ts';
import { readAt, type Opened } from './open-regular.ts';

const FORMAT = 'edgeban-log-offsets';

/** Where reading of one file (identified by inode) stopped: just past the last line handed on and acknowledged. */
export const ResumeRecordSchema = z.object({
  /** The path the file was followed under. */
  path: z.string().min(1),
  /** 'draining': a rotated file whose remainder is read before the file now at `path`. */
  role: z.enum(['current', 'draining']),
  dev: z.number().int().nonnegative(),
  ino: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  /** sha256 of the `anchorLength` bytes before `offset`: proves the file still holds what was read. */
  anchorLength: z.number().int().min(0).max(64),
  anchorSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ResumeRecord = z.infer<typeof ResumeRecordSchema>;
/** A position and the proof of what lay before it: a record's, or a file's head read so far. */
export type ResumeAnchor = Pick<ResumeRecord, 'offset' | 'anchorLength' | 'anchorSha256'>;

const StateSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  files: z.array(ResumeRecordSchema),
});

export function anchorHash(anchor: Buffer): string {
  return createHash('sha256').update(anchor).digest('hex');
}

/** The record of a file read up to its committed position, `file` being the path it is followed under. */
export function resumeRecord(
  file: string,
  role: ResumeRecord['role'],
  s: { dev: number; ino: number; committed: { offset: number; anchor: Buffer } },
): ResumeRecord {
  const { offset, anchor } = s.committed;
  return { path: file, role, dev: s.dev, ino: s.ino, offset, anchorLength: anchor.length, anchorSha256: anchorHash(anchor) };
}

/**
 * The `length` bytes before the record's offset (by default just its anchor) if the file still
 * holds there what was read (its anchor ends them); else null. Whether it is the same file
 * (inode) is the caller's to judge: a copytruncate copy is another one.
 */
export async function bytesBeforeResume(opened: Opened, record: ResumeAnchor, length = record.anchorLength): Promise<Buffer | null> {
  if (record.anchorLength > length || length > record.offset || opened.st.size < record.offset) return null;
  const bytes = await readAt(opened.handle, record.offset - length, length);
  if (bytes.length !== length || anchorHash(bytes.subarray(length - record.anchorLength)) !== record.anchorSha256) return null;
  return bytes;
}

/**
 * Loads the resume records. A missing file means a first start. A damaged one (not JSON, wrong
 * shape) must not stop the daemon: it is reported naming the file, set aside, and every file is
 * followed from its beginning (the jails ignore lines older than findtime and the failure journal
 * recognises lines already counted, so the cost is a re-read). Load once per start (the jail
 * pipeline hands its records to the follower): a second load would find the damaged file gone.
 */
export async function loadResumeRecords(stateFile: string, logger: Logger): Promise<ResumeRecord[]> {
  let text: string;
  try {
    text = await readFile(stateFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    logger.warn({ stateFile, err: errorMessage(error) }, 'cannot read the log offsets file; following every log file from its beginning');
    return [];
  }
  let reason: string;
  try {
    const parsed = StateSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data.files;
    reason = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
  } catch (error) {
    reason = errorMessage(error);
  }
  const aside = `${stateFile}.damaged`;
  try {
    await rename(stateFile, aside);
  } catch {
    // Keeping it aside is only for inspection; the next checkpoint overwrites it either way.
  }
  // Loud, and the daemon goes on: refusing to start would leave every address unblocked for the sake of a position.
  logger.warn(
    { stateFile, keptAs: aside, reason },
    `log offsets file ${stateFile} is damaged (${reason}); kept as ${aside}; reading every log file of this jail from its beginning (lines older than findtime are ignored, failures already counted are recognised by the failure journal)`,
  );
  return [];
}

/** Writes the records atomically: a crash leaves either the old file or the new one, never a torn one. */
export async function saveResumeRecords(stateFile: string, records: readonly ResumeRecord[]): Promise<void> {
  const dir = path.dirname(stateFile);
  // Unique per write: two writers of one file (once, two followers of one jail) never share a temp file.
  const tmp = `${stateFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const body = `${JSON.stringify({ format: FORMAT, version: 1, files: records }, null, 1)}\n`;
  try {
    // The directory is created (naming the real error) only when missing: walking every level of
    // the path on each save was a tenth of the daemon's time reading a backlog.
    const handle = await open(tmp, 'w', 0o600).catch(async (error: NodeJS.ErrnoException) => {
      // Missing, or a file where a directory should be: ensureDirectory names which.
      if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') throw error;
      await ensureDirectory(dir, 'the log offsets directory');
      return await open(tmp, 'w', 0o600);
    });
    try {
      await handle.writeFile(body, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, stateFile);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => undefined); // a full disk must not fill up with temp files
    throw error;
  }
  try {
    await syncDirectory(dir); // makes the rename itself durable
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
}
