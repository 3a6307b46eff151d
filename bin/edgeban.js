#!/usr/bin/env node
// Runs the TypeScript sources directly (Node >= 22.18 strips types); the container image ships a bundle instead.
import module from 'node:module';

// The daemon holds every active ban for days. Without pointer compression (Node's build) V8 lets the
// young generation grow to 2 x 64 MiB while the ledger and the alias are loaded at start, and keeps those
// pages resident afterwards: a daemon holding 100,000 bans settled at 342 MiB RSS, 235 with 16 MiB semi-spaces
// (bench/memory.ts). The limit is read only when the heap is set up, so `run` re-executes itself once
// with it (same pid, same stdio); the container's ENTRYPOINT passes it directly.
const SEMI_SPACE_FLAG = '--max-semi-space-size=16';
if (
  process.argv[2] === 'run' &&
  typeof process.execve === 'function' &&
  ![...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'))
) {
  try {
    process.execve(process.execPath, [process.execPath, SEMI_SPACE_FLAG, ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch {
    // Refused (the permission model): the daemon runs as before, with V8's default young generation.
  }
}

// Caches compiled code between runs: short commands (test-filter, status) start in half the time.
module.enableCompileCache?.();
await import('../src/cli/main.ts');
