#!/usr/bin/env node
// The `cpns` command. In a source checkout (src/ is there: the development path) it runs the TypeScript sources
// through tsx, a devDependency (Node 20 cannot run .ts by itself); the installed package ships no src/ and runs
// the JavaScript built into dist/ (`npm run build`, run by `prepack` before `npm pack` / `npm publish`).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/cli/main.js');
}
