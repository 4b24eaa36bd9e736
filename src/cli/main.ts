#!/usr/bin/env node
import { runCoreBench } from '../bench/core-bench.js';
import { runCoreDemo } from './core-demo.js';

const USAGE = `usage: cpns <command>

commands:
  demo            run the demo (Service Group keys, protected messages, member removal, broadcast delivery)
  bench core      benchmark the core (group message protection vs raw AEAD, Subset-Difference broadcast)
  help            this text`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo':
      await runCoreDemo({ log: (l) => process.stdout.write(`${l}\n`) });
      return 0;
    case 'bench':
      if (rest[0] !== 'core') break;
      runCoreBench({ quick: rest.includes('--quick') });
      return 0;
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return 0;
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

// `cpns ... | head` closes stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { code?: string; message?: string };
    process.stderr.write(`cpns: ${e.code ?? 'ERROR'}: ${e.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
