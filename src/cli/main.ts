#!/usr/bin/env node
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isCodedError } from '../core/errors.js';
import { COMMAND_HELP, commandKey, version, wantsHelp } from './help.js';
import { UsageError } from './usage.js';

// Each command's module is imported when that command runs, not at start: the daemons, demos and benchmarks
// pull in the server, the GW, the PNE SDK, PostgreSQL and NATS clients, which `cpns admin …` and `cpns help`
// never use (docs/cli.md "Start time").

const USAGE = `usage: cpns <command>

commands:
  demo            run the demo: a CPNS Server, two PN GWs and PNEs on loopback, a Service Group across both PNs
  demo core       the in-process core demo (Group Key protection, removal, no network)
  demo cluster    server nodes on PostgreSQL + NATS, a node killed, its GW failing over (docs/cluster.md)
  server          run a CPNS Server        [--data-dir D] [--port 7443] [--enroll-port 7445] [--admin-port 7444]
                                           [--store postgres://user@host:port/db]  (default: SQLite in --data-dir)
                                           [--nats URL[,URL...] --node-id NAME]  (a cluster node)
  gateway         run a PN GW              --server URL[,URL...] --ca ca.pem [--enroll-url URL] [--token-file F|-]
                                           [--data-dir D] [--host H] [--port 7450] [--enroll-port 7451]
                                           [--media wifi,bt]
                                           [--key-file F]
  pne             run a PNE (listen/enroll/send/group ...)   --gw URL[,URL...] --ca ca.pem [--enroll-url URL] [--token-file F|-]
                                           [--data-dir D] [--key-file F]
  admin           operator commands (token, revoke, pns, sg ...); 'cpns admin' lists them
  bench core      benchmark the core (group message protection vs raw AEAD, Subset-Difference broadcast)
  bench rekey     rekey of one SG over many GWs, unicast vs broadcast [--members 1000 --gateways 100 --rounds 5]
  bench relay     group-message fan-out vs plain ws-over-TLS [--members 100 --gateways 10 --bytes 1024]
  bench memory    idle memory per GW session and per PNE at the server and the GW [--gateways 200 --pnes 1000]
  help [command]  this text, or a command's (also: cpns <command> --help, -h)
  --version       the version

server, gateway and pne take --config <file.json> (keys = long option names; the command line wins).
--server (gateway) and --gw (pne) take a comma-separated list (or a JSON array in --config): the nodes of a server
cluster, the GWs of a PN; the daemon keeps one session, starts at a random one and fails over round robin.
Enrollment tokens: --token-file <path>, --token-file - (standard input) or CPNS_TOKEN, never on the command line.
Enrollment has its own listener (anonymous TLS): the server's on --enroll-port (default 7445; a GW's --enroll-url
defaults to the --server host on that port), a GW's on its --enroll-port (default 7451; a PNE's --enroll-url
defaults to the --gw host on that port). --ca and a token are needed on the first start only; each start saves
the GW's / PNE's connection settings in <dir>/settings.json, so once enrolled --data-dir is enough.
GW / PNE private key at rest: plain PEM in <dir>/credentials.json (mode 0600) by default; sealed (AES-256-GCM)
under a key of 64 hex digits (\`openssl rand -hex 32\`) from --key-file <path> (mode 0600) or CPNS_KEY, never on the
command line. Once sealed, every start needs that key (KEY_REQUIRED / KEY_MISMATCH otherwise).
Data directories: each role keeps its state in <root>/server, <root>/gateway, <root>/pne, where <root> is
CPNS_DATA_DIR, else $XDG_DATA_HOME/cpns (default ~/.local/share/cpns); --data-dir names one role's directory.
One process per data directory (<dir>/cpns.lock); a daemon whose identity is revoked exits with code 1.
environment: CPNS_DATA_DIR, CPNS_STORE, CPNS_STORE_SCHEMA, CPNS_NATS_URLS, CPNS_NODE_ID, CPNS_SERVER_URL, CPNS_GW_URL, CPNS_ENROLL_URL, CPNS_ENROLL_PORT, CPNS_CA, CPNS_TOKEN, CPNS_ADMIN_TOKEN, CPNS_LOG_LEVEL,
             CPNS_MASTER_KEY, CPNS_KEY`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`cpns ${version()}\n`);
    return 0;
  }
  if (cmd === 'help' && rest[0] !== undefined) {
    const text = COMMAND_HELP[commandKey(rest[0], rest.slice(1))];
    if (!text) throw new UsageError(USAGE);
    process.stdout.write(`${text}\n`);
    return 0;
  }
  if (cmd !== undefined && cmd !== '--help' && cmd !== '-h' && wantsHelp(rest)) {
    const text = COMMAND_HELP[commandKey(cmd, rest)];
    if (!text) throw new UsageError(USAGE);
    process.stdout.write(`${text}\n`);
    return 0;
  }
  switch (cmd) {
    case 'demo': {
      if (rest[0] === 'cluster') return demoCluster(rest.slice(1));
      const core = rest[0] === 'core';
      const args = core ? rest.slice(1) : rest;
      const extra = args.filter((a) => core || a !== '--keep');
      if (extra.length > 0)
        throw new UsageError(
          `unknown argument ${JSON.stringify(extra[0])}\n\n${COMMAND_HELP[core ? 'demo core' : 'demo']}`,
        );
      if (core)
        await (await import('./core-demo.js')).runCoreDemo({ log: (l) => process.stdout.write(`${l}\n`) });
      else
        await (await import('./demo.js')).runDemo({
          log: (l) => process.stdout.write(`${l}\n`),
          keepDataDir: args.includes('--keep'),
        });
      return 0;
    }
    case 'server':
      return (await import('./daemons.js')).serverCommand(rest);
    case 'gateway':
      return (await import('./daemons.js')).gatewayCommand(rest);
    case 'pne':
      return (await import('./daemons.js')).pneCommand(rest);
    case 'admin':
      return (await import('./admin.js')).adminCommand(rest);
    case 'bench': {
      if (rest[0] === 'core') {
        const extra = rest.slice(1).filter((a) => a !== '--quick');
        if (extra.length > 0)
          throw new UsageError(
            `unknown argument ${JSON.stringify(extra[0])}\n\n${COMMAND_HELP['bench core']}`,
          );
        (await import('../bench/core-bench.js')).runCoreBench({ quick: rest.includes('--quick') });
        return 0;
      }
      if (rest[0] === 'memory') {
        const { values } = parseArgs({
          args: rest.slice(1),
          options: {
            gateways: { type: 'string', default: '200' },
            pnes: { type: 'string', default: '1000' },
          },
        });
        const n = (name: 'gateways' | 'pnes'): number => {
          const v = Number(values[name]);
          if (!Number.isInteger(v) || v < 1 || v > 10_000)
            throw new UsageError(`--${name} takes an integer 1-10000`);
          return v;
        };
        await (await import('../bench/memory-bench.js')).runMemoryBench({
          gateways: n('gateways'),
          pnes: n('pnes'),
        });
        return 0;
      }
      if (rest[0] === 'relay') {
        const { values } = parseArgs({
          args: rest.slice(1),
          options: {
            members: { type: 'string', default: '100' },
            gateways: { type: 'string', default: '10' },
            bytes: { type: 'string', default: '1024' },
            messages: { type: 'string', default: '200' },
            rounds: { type: 'string', default: '5' },
          },
        });
        const n = (name: 'members' | 'gateways' | 'bytes' | 'messages' | 'rounds', max: number): number => {
          const v = Number(values[name]);
          if (!Number.isInteger(v) || v < 1 || v > max)
            throw new UsageError(`--${name} takes an integer 1-${max}`);
          return v;
        };
        await (await import('../bench/relay-bench.js')).runRelayBench({
          members: n('members', 2000),
          gateways: n('gateways', 200),
          bytes: n('bytes', 60_000),
          messages: n('messages', 100_000),
          rounds: n('rounds', 100),
        });
        return 0;
      }
      if (rest[0] !== 'rekey') break;
      const cluster = rest.includes('--cluster');
      const { values } = parseArgs({
        args: rest.slice(1),
        options: {
          members: { type: 'string', default: cluster ? '300' : '1000' },
          gateways: { type: 'string', default: cluster ? '30' : '100' },
          rounds: { type: 'string', default: cluster ? '20' : '5' },
          cluster: { type: 'boolean', default: false },
          nodes: { type: 'string', default: '3' },
          sgs: { type: 'string', default: cluster ? '50' : '100' },
          'sg-rounds': { type: 'string', default: '5' },
          workers: { type: 'string', default: String(availableParallelism()) },
          'gw-workers': { type: 'boolean', default: false },
          'split-roles': { type: 'boolean', default: false },
          'cpu-prof': { type: 'string' },
          store: { type: 'string' },
          nats: { type: 'string' },
          scale: { type: 'boolean', default: false },
          sizes: { type: 'string', default: '250,500,1000,2000' },
          'per-gw': { type: 'string', default: '10' },
          policy: { type: 'string', default: 'unicast' },
        },
      });
      const n = (name: 'members' | 'gateways' | 'rounds' | 'nodes' | 'sgs'): number => {
        const v = Number(values[name]);
        if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} takes a positive integer`);
        return v;
      };
      const workers = Number(values.workers);
      if (!Number.isInteger(workers) || workers < 0 || workers > 64)
        throw new UsageError('--workers takes an integer 0-64 (0: everything in this process)');
      if (values['split-roles'] === true && (cluster || workers < 2 || values['gw-workers'] !== true))
        throw new UsageError('--split-roles needs --gw-workers and --workers 2 or more (not --cluster)');
      if (values['cpu-prof'] !== undefined && (cluster || workers === 0))
        throw new UsageError('--cpu-prof takes a directory, with --workers 1 or more and without --cluster');
      if (!cluster && workers > 0) {
        const policy = String(values.policy);
        if (!['unicast', 'broadcast', 'both'].includes(policy))
          throw new UsageError('--policy is unicast, broadcast or both');
        const { sizes, perGw } = values.scale
          ? scaleArgs(values)
          : { sizes: [n('members')], perGw: Math.ceil(n('members') / n('gateways')) };
        const sgs = Number(values.sgs);
        const sgRounds = Number(values['sg-rounds']);
        if (!Number.isInteger(sgs) || sgs < 0) throw new UsageError('--sgs takes an integer >= 0');
        if (!Number.isInteger(sgRounds) || sgRounds < 1)
          throw new UsageError('--sg-rounds takes a positive integer');
        await (await import('../bench/rekey-workers.js')).runRekeyWorkers({
          sizes,
          perGw,
          rounds: n('rounds'),
          // One policy only in a scale run that names it; otherwise both.
          policies:
            values.scale && policy !== 'both'
              ? [policy as 'unicast' | 'broadcast']
              : ['unicast', 'broadcast'],
          workers,
          gwWorkers: values['gw-workers'] === true,
          splitRoles: values['split-roles'] === true,
          cpuProfDir: values['cpu-prof'],
          sgs,
          sgRounds,
        });
        return 0;
      }
      if (values.scale) {
        const { sizes, perGw } = scaleArgs(values);
        if (values.policy !== 'unicast' && values.policy !== 'broadcast')
          throw new UsageError('--policy is unicast or broadcast');
        await (await import('../bench/rekey-bench.js')).runRekeyScale({
          sizes,
          perGw,
          rounds: n('rounds'),
          policy: values.policy,
        });
        return 0;
      }
      if (!cluster) {
        await (await import('../bench/rekey-bench.js')).runRekeyBench({
          members: n('members'),
          gateways: n('gateways'),
          rounds: n('rounds'),
        });
        return 0;
      }
      if ((values.store === undefined) !== (values.nats === undefined))
        throw new UsageError('give both --store and --nats, or neither');
      const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-services-'));
      const svc =
        values.store !== undefined && values.nats !== undefined
          ? { store: values.store, nats: values.nats.split(',').filter(Boolean), stop: () => {} }
          : (await import('./dev-services.js')).startServices(dir, (l) => process.stdout.write(`${l}\n`));
      try {
        await (await import('../bench/cluster-bench.js')).runClusterRekeyBench({
          members: n('members'),
          gateways: n('gateways'),
          rounds: n('rounds'),
          nodes: n('nodes'),
          sgs: n('sgs'),
          store: svc.store,
          nats: svc.nats,
          log: (l) => process.stdout.write(`${l}\n`),
        });
      } finally {
        svc.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

/** `bench rekey --scale`'s `--sizes` and `--per-gw`, checked (the in-process and the worker bench take both). */
function scaleArgs(values: { sizes?: string; 'per-gw'?: string }): { sizes: number[]; perGw: number } {
  const sizes = String(values.sizes)
    .split(',')
    .map((x) => Number(x.trim()));
  if (sizes.length < 2 || sizes.some((v) => !Number.isInteger(v) || v < 1))
    throw new UsageError('--sizes takes two or more positive integers, comma-separated');
  const perGw = Number(values['per-gw']);
  if (!Number.isInteger(perGw) || perGw < 1) throw new UsageError('--per-gw takes a positive integer');
  return { sizes, perGw };
}

/**
 * `<CODE>: <message>` of a runtime failure. Typed errors (CpnsError, TransportError, the CLI's own) carry fixed,
 * actionable texts; anything else is a bug or an environment problem: its raw text stays out of the line (set
 * CPNS_LOG_LEVEL=debug to see it).
 */
function failureLine(err: unknown): string {
  if (isCodedError(err)) return `${err.code}: ${err.message}`;
  const e = err as NodeJS.ErrnoException | null;
  if (process.env.CPNS_LOG_LEVEL === 'debug' || process.env.CPNS_LOG_LEVEL === 'trace')
    process.stderr.write(`${e?.stack ?? String(err)}\n`);
  if (typeof e?.code === 'string' && typeof e.path === 'string')
    return `FILE_ERROR: cannot use ${e.path} (${e.code})`;
  // A listen address of ours (--host, --port and the like) that another process holds.
  const l = e as { code?: unknown; address?: unknown; port?: unknown } | null;
  if (l?.code === 'EADDRINUSE' && typeof l.address === 'string' && typeof l.port === 'number')
    return `ADDRESS_IN_USE: ${l.address}:${l.port} is in use by another process (choose another port)`;
  return 'INTERNAL: unexpected failure (CPNS_LOG_LEVEL=debug shows the details)';
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
    // parseArgs: unknown option, missing value...
    const parseError = String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    if (err instanceof UsageError || parseError) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`cpns: ${failureLine(err)}\n`);
    process.exitCode = 1;
    // A failed daemon must not linger (a socket or timer some component did not release).
    setTimeout(() => process.exit(), 3000).unref();
  },
);

/** `cpns demo cluster [--nodes n] [--store url --nats urls]`. */
async function demoCluster(argv: string[]): Promise<number> {
  let values: { nodes?: string; store?: string; nats?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { nodes: { type: 'string' }, store: { type: 'string' }, nats: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch {
    throw new UsageError(COMMAND_HELP['demo cluster'] ?? USAGE);
  }
  await (await import('./demo-cluster.js')).runClusterDemo({
    log: (l) => process.stdout.write(`${l}\n`),
    ...(values.nodes !== undefined ? { nodes: Number(values.nodes) } : {}),
    ...(values.store !== undefined ? { store: values.store } : {}),
    ...(values.nats !== undefined ? { nats: values.nats.split(',').filter(Boolean) } : {}),
  });
  return 0;
}
