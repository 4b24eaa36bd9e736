/**
 * The layers of src/ (docs/architecture.md "Layers"), enforced on the static import graph (graph.ts): a wrong
 * import fails this test, and the message names it as `from → to`.
 *
 * Folders under src/ are layers. A layer may import itself, the layers in its rule, and node:/npm libraries
 * (except the packages that belong to one layer, PACKAGE_HOMES). Rules apply to type-only edges too (a type import
 * still couples two layers); only the PNE SDK's closure is about run time (what loading it loads).
 */
import { describe, expect, it } from 'vitest';
import {
  buildGraph,
  chainTo,
  cycles,
  type Edge,
  type ImportGraph,
  importsOf,
  runtimeClosure,
} from './graph.js';

type Layer =
  | 'core'
  | 'transport'
  | 'protocol'
  | 'store'
  | 'store/sqlite'
  | 'store/postgres'
  | 'metrics'
  | 'server'
  | 'gateway'
  | 'pne'
  | 'admin'
  | 'embed'
  | 'cli'
  | 'bench'
  | 'cluster';

interface Rule {
  /** Layers this one may import (itself is always allowed). `'*'`: anything (a composition root). */
  readonly may: readonly Layer[] | '*';
  /** May import the store's interface (STORE_INTERFACE), not its backends. */
  readonly storeInterface?: boolean;
  /** Layers this one may import with type-only edges only. */
  readonly typesOf?: readonly Layer[];
}

const ROLES: readonly Layer[] = ['core', 'transport', 'protocol'];

const RULES: Readonly<Record<Layer, Rule>> = {
  core: { may: [] },
  transport: { may: ['core'] },
  protocol: { may: ['core', 'transport'] },
  // The store's barrel (cpns/store) re-exports the SQLite backend; a backend implements the interface.
  store: { may: ['core', 'store/sqlite', 'store/postgres'] },
  'store/sqlite': { may: ['core', 'store'] },
  'store/postgres': { may: ['core', 'store'] },
  // Prometheus instrumentation (prom-client): used by the server; a GW's plain counts (PnGateway.stats) are rendered
  // by it in the composition root (cli), so neither the GW nor the PNE SDK loads it.
  metrics: { may: ['core'] },
  // Roles: no role imports another role; they receive a store (the interface), they do not open one.
  server: { may: [...ROLES, 'metrics', 'cluster'], storeInterface: true },
  gateway: { may: ROLES },
  pne: { may: ROLES },
  // The REST API / console: over the server's public types and the store interface it is handed.
  admin: { may: ['core', 'metrics'], storeInterface: true, typesOf: ['server'] },
  // Composition roots: they choose the store backend and wire roles together.
  embed: { may: '*' },
  cli: { may: '*' },
  bench: { may: '*' },
  // Events between server nodes (docs/cluster.md): below the server, over core only.
  cluster: { may: ['core'] },
};

/** What a role may see of the store: the Store interface, its errors, and the one stored form of tokens. */
const STORE_INTERFACE: ReadonlySet<string> = new Set([
  'src/store/store.ts',
  'src/store/errors.ts',
  'src/store/token.ts',
]);

/** npm packages that belong to one layer (and the composition roots): nobody else imports them directly. */
const PACKAGE_HOMES: Readonly<Record<string, readonly Layer[]>> = {
  'better-sqlite3': ['store/sqlite'],
  pg: ['store/postgres'],
  fastify: ['admin'],
  '@fastify/swagger': ['admin'],
  'prom-client': ['metrics'],
  '@nats-io/transport-node': ['cluster'],
  '@nats-io/jetstream': ['cluster'],
  '@nats-io/kv': ['cluster'],
  '@nats-io/nats-core': ['cluster'],
};

/**
 * TEMPORARY ALLOWLIST — exactly these edges would be accepted although they break a rule, each with the reason and
 * the change that removes it. Empty: every rule holds. (The last entry, protocol/control.ts → store/errors.ts,
 * went when the error mapping moved onto the one base class of src/core/errors.ts.)
 */
const TEMPORARY_ALLOWLIST: readonly { readonly from: string; readonly to: string }[] = [];

const PNE_ENTRY = 'src/pne/index.ts';
/** Nothing under these folders is loaded by the PNE SDK. */
const NOT_IN_PNE = ['gateway', 'server', 'store', 'admin', 'metrics', 'embed', 'cli', 'bench', 'cluster'];
/** npm packages the PNE SDK does not need. */
const NOT_IN_PNE_PACKAGES = [
  'better-sqlite3',
  'pg',
  'fastify',
  '@fastify/swagger',
  'prom-client',
  '@nats-io/transport-node',
  '@nats-io/jetstream',
  '@nats-io/kv',
  '@nats-io/nats-core',
];

function layerOf(file: string): Layer | undefined {
  const parts = file.split('/');
  if (parts[0] !== 'src' || parts.length < 3) return undefined;
  const backend = parts[1] === 'store' && parts.length > 3 ? `store/${parts[2]}` : undefined;
  const name = backend === 'store/sqlite' || backend === 'store/postgres' ? backend : parts[1];
  return name !== undefined && name in RULES ? (name as Layer) : undefined;
}

const topFolder = (file: string): string => file.split('/')[1] ?? file;

const isAllowlisted = (e: Pick<Edge, 'from' | 'to'>): boolean =>
  TEMPORARY_ALLOWLIST.some((a) => a.from === e.from && a.to === e.to);

const show = (e: Edge): string => `${e.from} → ${e.to}${e.typeOnly ? ' (type-only)' : ''}  [line ${e.line}]`;

/** Every edge that breaks a rule, as `from → to`. */
function forbiddenEdges(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const e of graph.edges) {
    const from = layerOf(e.from);
    if (from === undefined) {
      out.push(`${e.from}: folder without a layer rule`);
      continue;
    }
    const rule = RULES[from];
    if (e.target === 'unresolved') {
      out.push(`${show(e)}: does not resolve to a file`);
      continue;
    }
    if (e.target === 'npm') {
      const homes = PACKAGE_HOMES[e.to];
      if (homes && rule.may !== '*' && !homes.includes(from))
        out.push(`${show(e)}: package of ${homes.join(', ')}`);
      continue;
    }
    if (e.target !== 'internal' || rule.may === '*') continue;
    const to = layerOf(e.to);
    if (to === from) continue;
    const ok =
      (to !== undefined && rule.may.includes(to)) ||
      (rule.storeInterface === true && STORE_INTERFACE.has(e.to)) ||
      (e.typeOnly && to !== undefined && (rule.typesOf ?? []).includes(to));
    if (!ok && !isAllowlisted(e)) out.push(show(e));
  }
  return out;
}

/** Folder-level import cycles (any edge, type-only included), as `a → b → a` style groups. */
function folderCycles(graph: ImportGraph): string[][] {
  const next = new Map<string, Set<string>>();
  for (const e of graph.edges) {
    if (e.target !== 'internal') continue;
    const [a, b] = [topFolder(e.from), topFolder(e.to)];
    if (a === b) continue;
    const set = next.get(a) ?? new Set<string>();
    set.add(b);
    next.set(a, set);
  }
  const nodes = new Set(graph.files.map(topFolder));
  return cycles(nodes, (n) => next.get(n) ?? []);
}

/** The PNE SDK's runtime closure, not following the temporary allowlist (so nothing else may reach those files). */
function pneLeaks(graph: ImportGraph, entry = PNE_ENTRY): string[] {
  const g: ImportGraph = { ...graph, edges: graph.edges.filter((e) => !isAllowlisted(e)) };
  const c = runtimeClosure(g, entry);
  const out: string[] = [];
  for (const f of c.files) {
    if (NOT_IN_PNE.includes(topFolder(f))) out.push(chainTo(c, entry, f));
  }
  for (const p of c.packages) if (NOT_IN_PNE_PACKAGES.includes(p)) out.push(`npm package ${p}`);
  return out;
}

/** ARCH_ROOT: check another checkout (e.g. an older commit) with these rules. */
const graph = buildGraph(process.env.ARCH_ROOT ?? '.');

describe('layers of src/', () => {
  it('parses every src file and resolves every relative import', () => {
    expect(graph.files.length).toBeGreaterThan(50);
    expect(graph.files).toContain(PNE_ENTRY);
    expect(graph.edges.filter((e) => e.target === 'unresolved').map(show)).toEqual([]);
  });

  it('every folder under src/ has a layer rule', () => {
    expect(graph.files.filter((f) => layerOf(f) === undefined)).toEqual([]);
  });

  it('no forbidden import edge', () => {
    expect(forbiddenEdges(graph)).toEqual([]);
  });

  it('no import cycle between folders', () => {
    expect(folderCycles(graph).map((c) => c.join(' ↔ '))).toEqual([]);
  });

  it('the PNE SDK does not load the GW, the server, the store or server-only packages', () => {
    expect(pneLeaks(graph)).toEqual([]);
  });

  it('no stale allowlist entry (remove an entry once its edge is gone)', () => {
    const stale = TEMPORARY_ALLOWLIST.filter(
      (a) => !graph.edges.some((e) => e.from === a.from && e.to === a.to && e.target === 'internal'),
    );
    expect(stale.map((a) => `${a.from} → ${a.to}`)).toEqual([]);
  });
});

describe('the checker itself (it can fail)', () => {
  const edge = (from: string, to: string, over: Partial<Edge> = {}): Edge => ({
    from,
    to,
    target: 'internal',
    specifier: to,
    kind: 'import',
    typeOnly: false,
    line: 1,
    names: [],
    ...over,
  });
  const synthetic = (edges: Edge[]): ImportGraph => ({
    rootDir: '/synthetic',
    files: [...new Set(edges.flatMap((e) => [e.from, ...(e.target === 'internal' ? [e.to] : [])]))].sort(),
    edges,
  });

  it('reports a deliberately wrong edge as from → to', () => {
    const g = synthetic([
      edge('src/pne/client.ts', 'src/core/errors.ts'),
      edge('src/pne/client.ts', 'src/gateway/state.ts'),
      edge('src/server/server.ts', 'src/store/sqlite/index.ts'),
      edge('src/server/state.ts', 'src/store/store.ts', { typeOnly: true }),
      edge('src/core/ids.ts', 'src/transport/ca.ts', { typeOnly: true }),
      edge('src/admin/types.ts', 'src/server/index.ts', { typeOnly: true }),
      edge('src/admin/app.ts', 'src/server/index.ts'),
      edge('src/gateway/relay.ts', 'prom-client', { target: 'npm' }),
    ]);
    expect(forbiddenEdges(g)).toEqual([
      'src/pne/client.ts → src/gateway/state.ts  [line 1]',
      'src/server/server.ts → src/store/sqlite/index.ts  [line 1]',
      'src/core/ids.ts → src/transport/ca.ts (type-only)  [line 1]',
      'src/admin/app.ts → src/server/index.ts  [line 1]',
      'src/gateway/relay.ts → prom-client  [line 1]: package of metrics',
    ]);
  });

  it('reports the protocol layer reaching into the store (the edge the error mapping used to need)', () => {
    const g = synthetic([
      edge('src/protocol/control.ts', 'src/store/errors.ts'),
      edge('src/protocol/policy.ts', 'src/core/errors.ts'),
    ]);
    expect(forbiddenEdges(g)).toEqual(['src/protocol/control.ts → src/store/errors.ts  [line 1]']);
  });

  it('finds a folder cycle and a leak into the PNE closure (with the chain)', () => {
    const g = synthetic([
      edge('src/pne/index.ts', 'src/protocol/x.ts'),
      edge('src/protocol/x.ts', 'src/pne/types.ts', { typeOnly: true }),
      edge('src/protocol/x.ts', 'src/store/sqlite/db.ts'),
      edge('src/store/sqlite/db.ts', 'better-sqlite3', { target: 'npm' }),
      edge('src/pne/index.ts', 'src/server/index.ts', { typeOnly: true }),
    ]);
    expect(folderCycles(g)).toEqual([['pne', 'protocol']]);
    expect(pneLeaks(g)).toEqual([
      'src/pne/index.ts → src/protocol/x.ts → src/store/sqlite/db.ts',
      'npm package better-sqlite3',
    ]);
  });

  it('parses every import form, type-only ones apart', () => {
    const src = [
      "import a, { b, type c } from './a.js';",
      "import type { T } from './t.js';",
      "import { type U } from './u.js';",
      "import './side.js';",
      "export * from './star.js';",
      "export type { V } from './v.js';",
      "export { w as x } from './w.js';",
      "const m = await import('./dyn.js');",
      "type Y = typeof import('./y.js');",
      'const not = `import("./template.js")`;',
      "// import z from './comment.js';",
    ].join('\n');
    const got = importsOf('x.ts', src).map((r) => [r.specifier, r.kind, r.typeOnly]);
    expect(got).toEqual([
      ['./a.js', 'import', false],
      ['./t.js', 'import', true],
      ['./u.js', 'import', false], // kept as `import {} from` under verbatimModuleSyntax: it loads the module
      ['./side.js', 'import', false],
      ['./star.js', 'export', false],
      ['./v.js', 'export', true],
      ['./w.js', 'export', false],
      ['./dyn.js', 'dynamic', false],
      ['./y.js', 'import-type-node', true],
    ]);
  });
});
