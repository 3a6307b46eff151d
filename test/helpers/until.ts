/**
 * Polls `predicate` every `everyMs` of real time until it holds: bounded in rounds and in time,
 * never a timing assertion (a slow machine only waits longer, up to `limitMs`).
 */
export async function until(what: string, predicate: () => boolean | Promise<boolean>, limitMs = 30_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (let round = 0; round < 100_000; round++) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}
