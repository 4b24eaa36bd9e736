import { readFileSync } from 'node:fs';
import { fileError } from './files.js';
import { UsageError } from './usage.js';

/**
 * Secrets (enrollment tokens, the admin token) never come from the command line: argv is readable by every user
 * of the machine (`ps`, /proc/<pid>/cmdline) and ends up in shell history. They come from a file
 * (`--token-file <path>`), standard input (`--token-file -`) or an environment variable.
 */
export const TOKEN_ON_ARGV =
  '--token is not accepted: a secret on the command line is visible to every user (ps, /proc) and stays in shell ' +
  'history; use --token-file <path>, --token-file - (standard input) or the environment variable';

let stdinText: Promise<string> | undefined;

/** All of standard input (read once per process). */
function readStdin(): Promise<string> {
  stdinText ??= new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.once('error', reject);
  });
  return stdinText;
}

/**
 * The secret from `file` ('-' = standard input) or else from the environment variable `envVar`; undefined when
 * neither is given. Surrounding whitespace is dropped (a trailing newline from `echo` or an editor).
 */
export async function readSecret(file: string | undefined, envVar: string): Promise<string | undefined> {
  let text: string;
  let from: string;
  if (file !== undefined) {
    from = file === '-' ? 'standard input' : file;
    try {
      text = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
    } catch (e) {
      throw fileError(e, file, 'token file (--token-file)');
    }
  } else {
    const v = process.env[envVar];
    if (v === undefined || v === '') return undefined;
    from = envVar;
    text = v;
  }
  const secret = text.trim();
  if (secret === '') throw new UsageError(`no token in ${from} (it is empty)`);
  if (/\s/.test(secret)) throw new UsageError(`${from} must hold one token (on one line)`);
  return secret;
}
