#!/usr/bin/env node
// fail2ban-client's everyday commands (status, set JAIL banip, unban, banned, reload, ping), run by
// edgeban from a checkout; the container image has the same shim on its PATH as `fail2ban-client`.
import module from 'node:module';

module.enableCompileCache?.();
process.argv.splice(2, 0, 'fail2ban-client');
await import('../src/cli/main.ts');
