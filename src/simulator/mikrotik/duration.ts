/**
 * RouterOS time values as the console and the REST API take and print them
 * (help.mikrotik.com: `timeout=1d`, `5m`, `00:05:00`, `1d02:03:04`, or bare seconds; printed as
 * `1w2d3h4m5s` in RouterOS 7). Times are a signed 32-bit count of centiseconds inside RouterOS,
 * hence the largest value, 35w3d13h13m56s.
 */
export const MAX_ROUTER_SECONDS = 21_474_836;

const UNITS: Record<string, number> = { w: 604_800, d: 86_400, h: 3600, m: 60, s: 1 };

/** Seconds, or null when the text is no RouterOS time. */
export function parseRouterTime(input: string): number | null {
  const text = input.trim().toLowerCase();
  if (/^\d+$/.test(text)) return Number(text);
  // `[Nw][Nd][Nh][Nm][Ns]` with an optional trailing `hh:mm:ss`, e.g. `1d02:03:04`.
  const match = /^((?:\d+[wdhms])*)(?:(\d{1,2}):(\d{2}):(\d{2}))?$/.exec(text);
  if (!match || text === '') return null;
  let seconds = 0;
  for (const part of match[1]!.matchAll(/(\d+)([wdhms])/g)) seconds += Number(part[1]) * UNITS[part[2]!]!;
  if (match[2] !== undefined) seconds += Number(match[2]) * 3600 + Number(match[3]) * 60 + Number(match[4]);
  return seconds;
}

/** `3h25m7s`; `0s` for zero. */
export function formatRouterTime(totalSeconds: number): string {
  let rest = Math.max(0, Math.floor(totalSeconds));
  let text = '';
  for (const [unit, size] of Object.entries(UNITS)) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) text += `${count}${unit}`;
  }
  return text === '' ? '0s' : text;
}
