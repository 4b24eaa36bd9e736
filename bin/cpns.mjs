#!/usr/bin/env node
// The `cpns` command: runs the TypeScript sources through tsx (Node 20 cannot run .ts by itself).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
