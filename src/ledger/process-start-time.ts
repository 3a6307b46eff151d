import { readFile } from 'node:fs/promises';

/**
 * A process's start time (clock ticks since boot, /proc/PID/stat field 22), or null when the
 * process does not exist or there is no /proc. With the PID it names one process for good:
 * a PID is reused, a (PID, start time) pair is not.
 */
export async function processStartTime(pid: number): Promise<string | null> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (the command) is in parentheses and may hold spaces: count from after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[22 - 3] ?? null;
}
