#!/usr/bin/env node
// Runs the TypeScript sources directly (Node >= 22.18 strips types); the container image ships a bundle instead.
import '../src/cli/main.ts';
