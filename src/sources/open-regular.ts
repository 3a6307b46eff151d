import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** An open file and what fstat said of it when it was opened. */
export interface Opened {
  handle: FileHandle;
  st: Stats;
}

/** A log path that holds something other than a regular file (a FIFO, a device, a directory). */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';

  constructor(file: string, st: Stats) {
    super(`${file} is not a regular file (${kindOf(st)}); edgeban reads only regular log files: point logpath at the file the program writes`);
    this.name = 'NotRegularFileError';
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * Opens a file for reading without ever blocking, and only if it is a regular file. A plain open
 * of a FIFO waits for a writer for ever, and holds one of libuv's four pool threads meanwhile (with
 * a few of them, every file operation of the process hangs, SIGTERM's too). O_NONBLOCK makes that
 * open return at once; the check is on the opened descriptor, so a FIFO swapped in after a stat
 * of the path is caught too. On a regular file O_NONBLOCK changes nothing.
 */
export async function openRegularFile(file: string): Promise<Opened> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new NotRegularFileError(file, st);
    return { handle, st };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Up to `length` bytes at `offset` (fewer where the file ends sooner). */
export async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}
