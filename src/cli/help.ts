/**
 * `--help` / `-h` for every command, and `--version`: the CLI answers them before it parses anything else, so a
 * help request never starts a daemon, a demo or a benchmark (exit 0). Usage errors exit 2, runtime failures 1.
 */
import { createRequire } from 'node:module';
import { ADMIN_USAGE } from './admin.js';

const COMMON = `
  --config <file.json>     options as JSON (keys = long option names; the command line wins)
  -h, --help               this text`;

const ENROLL = `
  --ca <ca.pem>            the CPNS CA certificate, to enroll (CPNS_CA; first start only)
  --enroll-url <url>       where to enroll on first start (CPNS_ENROLL_URL)
  --token-file <path>|-    the one-time enrollment token (or CPNS_TOKEN; never on the command line)
  --key-file <path>        seal the private key at rest under a 64-hex-digit key (or CPNS_KEY)`;

const SAVED = `
  Each successful start saves the connection settings (URLs, host, ports, media) in <data dir>/settings.json:
  once enrolled, --data-dir is enough; the command line, --config and the environment win over it.`;

/** Help of each command, by its words (`bench rekey`). */
export const COMMAND_HELP: Readonly<Record<string, string>> = {
  demo: `usage: cpns demo [--keep]
  Runs a CPNS Server, two PN GWs and six PNEs on loopback (embedded SQLite store), a Service Group across both PNs,
  broadcast Group Key delivery in one PN, and a removed member that can no longer read.
  --keep                   keep the temporary data directory
  -h, --help               this text`,
  'demo cluster': `usage: cpns demo cluster [--nodes 2|3] [--store <postgres://…> --nats <url>[,<url>...]]
  CPNS Server nodes as processes on PostgreSQL + NATS JetStream (both started on loopback for the demo unless
  given), a PN GW on each of two nodes, a Service Group spanning them, a message across nodes, a node killed
  (SIGKILL) and its GW failing over, then a key update the removed member cannot read (docs/cluster.md).
  --nodes <n>              server nodes (default 3)
  --store <url>            a dedicated PostgreSQL database to use (the demo writes its state there)
  --nats <urls>            a NATS JetStream cluster to use
  -h, --help               this text`,
  'demo core': `usage: cpns demo core
  The in-process core demo: Group Key protection, a member removed, no network.
  -h, --help               this text`,
  server: `usage: cpns server [options]
  A CPNS Server with its operator surface (admin REST API, SSE, console, /metrics) over HTTPS.
  --data-dir <dir>         master key, CA file, admin token, SQLite store (default $CPNS_DATA_DIR/server)
  --store <postgres://…>   keep the state in PostgreSQL instead of SQLite in --data-dir (CPNS_STORE)
  --store-schema <name>    PostgreSQL schema of the tables, created if missing (CPNS_STORE_SCHEMA; default the
                           connection's, normally public): several deployments or tests in one database
  --nats <url>[,<url>...]  run as one node of a cluster: events over NATS JetStream (CPNS_NATS_URLS; needs --store)
  --node-id <name>         this node's name in the cluster, unique per node (CPNS_NODE_ID)
  --host <addr>            GW session listener address (CPNS_HOST; default 127.0.0.1)
  --port <n>               GW session port (CPNS_PORT; default 7443)
  --enroll-port <n>        anonymous enrollment port (CPNS_ENROLL_PORT; default 7445)
  --admin-host <addr>      admin listener address (CPNS_ADMIN_HOST; default 127.0.0.1)
  --admin-port <n>         admin HTTPS port (CPNS_ADMIN_PORT; default 7444)
  --public-metrics         serve /metrics without the admin token${COMMON}`,
  gateway: `usage: cpns gateway --server <url>[,<url>...] --ca <ca.pem> [options]
  A PN GW: one session up to the CPNS Server (failing over along the list), PNE sessions and their enrollment.
  --server <urls>          CPNS Server node URLs, comma-separated (CPNS_SERVER_URL); enrollment goes to the
                           first one's host on port 7445 unless --enroll-url names it
  --data-dir <dir>         credentials and broadcast state (default $CPNS_DATA_DIR/gateway)
  --host <addr>            PNE listeners' address (default 127.0.0.1; 0.0.0.0 for every interface)
  --port <n>               PNE session port (default 7450; 0 = ephemeral)
  --enroll-port <n>        PNE enrollment port (default 7451; 0 = ephemeral)
  --media <m[=group:port],...>
                           media offered to PNEs (wifi, bt, ble, eth, usb; default wifi); with a UDP multicast
                           group, Group Key updates are broadcast there (GKEK), e.g. wifi=239.255.77.1:47701
  --broadcast-interface <addr>
                           local interface address to send broadcasts from (default 127.0.0.1)
  --metrics-port <n>       serve Prometheus metrics at http://<metrics host>:<n>/metrics (default off; not saved)
  --metrics-host <addr>    the metrics endpoint's address (default 127.0.0.1)${ENROLL}${SAVED}${COMMON}`,
  pne: `usage: cpns pne [listen|enroll|send|group <action>] --gw <url>[,<url>...] --ca <ca.pem> [options]
  A PNE. listen (default): print received Service Group messages as JSON lines.
  enroll                                   enroll only (waiting up to 2 min for the GW); prints this PNE's
                                           identity (if enrolled before, just prints it): PNE=$(cpns pne enroll ...)
  send --sg <id> --data <text>             send a protected message to a Service Group
  group create --name <n> [--open]         create a Service Group (prints its sgId)
  group join|leave|delete --sg <id>
  group invite|remove --sg <id> --pne <identity>
  --gw <urls>              PN GW URLs, comma-separated (CPNS_GW_URL); enrollment goes to the first one's host
                           on port 7451 (the GW's default) unless --enroll-url names it
  --data-dir <dir>         credentials (default $CPNS_DATA_DIR/pne)
  --media <m,...>          media this PNE listens for broadcasts on (default wifi; the GW names the group)${ENROLL}${SAVED}${COMMON}`,
  admin: `${ADMIN_USAGE}\n  -h, --help               this text`,
  'bench core': `usage: cpns bench core [--quick]
  Group message protect+open against raw node:crypto AEAD (ratios in one run), Subset-Difference broadcast.
  --quick                  fewer rounds
  -h, --help               this text`,
  'bench rekey': `usage: cpns bench rekey [--members 1000] [--gateways 100] [--rounds 5] [--workers <n>] [--gw-workers]
                        [--sgs 100] [--sg-rounds 5]
       cpns bench rekey --scale [--sizes 250,500,1000,2000] [--per-gw 10] [--rounds 5] [--policy unicast|broadcast|both]
       cpns bench rekey --cluster [--nodes 3] [--members 300] [--gateways 30] [--rounds 20] [--sgs 50]
                        [--store <postgres://…> --nats <url>[,<url>...]]
  A rekey of one Service Group over many GWs on loopback, unicast vs broadcast delivery: all acked, tracked by
  the server, tracked/all-acked, PN-hop bytes. With --scale: one SG per size (members over members/--per-gw GWs,
  one setup of the largest), the medians and the fitted exponents of all-acked and tracked against members
  (bench/results/rekey-scale-<date>.json). With --cluster: one node
  on SQLite vs a cluster of --nodes nodes on PostgreSQL + NATS (started on loopback unless given), GWs spread over
  the nodes: all-acked median and p99, and key updates per second across --sgs distinct SGs.
  --workers <n>            simulated PNEs in n worker processes (default: available parallelism; 0: all in this
                           process, the older in-process bench); per update also member-ack p50/p99/max, CPU per
                           update, and key updates/s across --sgs distinct SGs (--sg-rounds updates each, 0: skip)
  --gw-workers             the PN GWs in the workers too (with their PNEs): this process is the server's alone
  --split-roles            with --gw-workers: the GWs in half of the workers, their PNEs in the other half
  --cpu-prof <dir>         with --workers: CPU profiles (.cpuprofile) of this process and of each worker over the
                           measured updates of each policy and size (not setup, not the warm-up update)
  -h, --help               this text`,
  'bench relay': `usage: cpns bench relay [--members 100] [--gateways 10] [--bytes 1024] [--messages 200] [--rounds 5]
  Group-message fan-out: one sender to --members members over --gateways PN GWs, every member decrypting, against
  plain WebSocket-over-TLS fan-out of the same bytes over the same hops (same process, rounds interleaved).
  -h, --help               this text`,
  'bench memory': `usage: cpns bench memory [--gateways 200] [--pnes 1000]
  Idle memory per GW session and per PNE at the CPNS Server and at the PN GW, each role in its own process.
  -h, --help               this text`,
};

/** True when the arguments ask for help (before a `--` terminator). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** The command's words as COMMAND_HELP names them: `demo core`, `bench rekey`, else the first word. */
export function commandKey(cmd: string, rest: readonly string[]): string {
  const sub = rest[0];
  if ((cmd === 'demo' || cmd === 'bench') && sub !== undefined && `${cmd} ${sub}` in COMMAND_HELP) {
    return `${cmd} ${sub}`;
  }
  return cmd;
}

/** The package version (package.json sits two levels above both src/cli and dist/cli). */
export function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version?: string };
  return pkg.version ?? '0.0.0';
}
