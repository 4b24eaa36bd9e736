#!/usr/bin/env node
// The `cpns` command. In a source checkout (src/ is there: the development path) it runs the TypeScript sources
// through tsx, a devDependency (Node 20 cannot run .ts by itself); the installed package ships no src/ and runs
// the JavaScript built into dist/ (`npm run build`, run by `prepack` before `npm pack` / `npm publish`).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);

async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    return undefined; // a checkout installed without devDependencies
  }
}

const loader = existsSync(source) ? await tsx() : undefined;
if (loader) {
  loader.register();
  await import(source.href);
} else if (existsSync(built)) {
  await import(built.href);
} else {
  process.stderr.write('cpns: neither tsx (npm ci installs it) nor dist/ (npm run build) is there\n');
  process.exit(1);
}
