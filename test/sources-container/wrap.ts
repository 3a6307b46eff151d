// Writers of container runtime records, as the runtimes write them, for the tests.

/** Docker's JSON string encoding: HTML-unsafe characters and the line separators as \u escapes (Go's encoder). */
export function dockerString(text: string): string {
  return JSON.stringify(text)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** RFC3339Nano as Docker and the CRI runtimes write it (UTC, nine fraction digits). */
export function nanoStamp(epochSeconds: number): string {
  const ms = Math.floor(epochSeconds * 1000);
  const nanos = String(Math.round((epochSeconds * 1000 - ms) * 1e6)).padStart(6, '0');
  return new Date(ms).toISOString().replace(/Z$/, `${nanos}Z`);
}

/** One json-file record; `partial` leaves out the newline (a part of a line over 16 KiB). */
export function dockerRecord(text: string, options: { stream?: 'stdout' | 'stderr'; time: number; partial?: boolean }): string {
  return `{"log":${dockerString(options.partial ? text : `${text}\n`)},"stream":"${options.stream ?? 'stdout'}","time":"${nanoStamp(options.time)}"}`;
}

export function criRecord(text: string, options: { stream?: 'stdout' | 'stderr'; time: number; partial?: boolean }): string {
  return `${nanoStamp(options.time)} ${options.stream ?? 'stdout'} ${options.partial ? 'P' : 'F'} ${text}`;
}

/** A line as the runtime writes it when it is longer than `size` characters: parts of `size`, the last one complete. */
export function splitRecords(format: 'docker' | 'cri', text: string, size: number, options: { stream?: 'stdout' | 'stderr'; time: number }): string[] {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  if (parts.length === 0) parts.push('');
  const write = format === 'docker' ? dockerRecord : criRecord;
  return parts.map((part, i) => write(part, { ...options, partial: i < parts.length - 1 }));
}
