/**
 * The static import graph of src/ (test/architecture/layers.test.ts checks it, figures.ts prints figures of it).
 *
 * Parsed with the TypeScript compiler API (a SourceFile walk, no regexes): `import … from`, `import '…'`,
 * `export … from`, `import('…')` with a string literal, and type-position `import('…')`. An edge is type-only
 * when TypeScript erases it from the emitted JavaScript: `import type`, `export type … from`, and
 * `typeof import('…')`. Under `verbatimModuleSyntax` an `import { type A }` (inline `type` on every name) is
 * kept as `import {} from '…'` and so still loads the module: it counts as a runtime edge, as it does at run time.
 *
 * Relative specifiers are resolved the NodeNext way this repo uses: `./x.js` is the file `./x.ts` (also `.tsx`,
 * `.mts`, `.json`, a directory's `index.ts`). Bare specifiers are npm packages (`@scope/name` or `name`),
 * `node:` ones are builtins; neither is followed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export type EdgeKind = 'import' | 'export' | 'dynamic' | 'import-type-node';

/** One import of one file: `to` is a repo-relative path (internal), a package name (npm) or a builtin. */
export interface Edge {
  /** Repo-relative, '/'-separated path of the importing file, e.g. `src/pne/client.ts`. */
  readonly from: string;
  /** Internal: repo-relative path of the resolved file. npm: the package name. builtin: e.g. `node:fs`. */
  readonly to: string;
  readonly target: 'internal' | 'npm' | 'builtin' | 'unresolved';
  readonly specifier: string;
  readonly kind: EdgeKind;
  /** Erased at compile time: does not load `to` at run time. */
  readonly typeOnly: boolean;
  readonly line: number;
  /** Imported names (`default`, `*` for a namespace or `export *`), as written in the source module. */
  readonly names: readonly { readonly imported: string; readonly local: string }[];
}

export interface ImportGraph {
  readonly rootDir: string;
  /** Repo-relative paths of every parsed file, sorted. */
  readonly files: readonly string[];
  readonly edges: readonly Edge[];
}

const toPosix = (p: string): string => p.split(sep).join(posix.sep);

/** Every `*.ts` under `dir` (not `.d.ts`), repo-relative to `rootDir`, sorted. */
export function listTsFiles(rootDir: string, dir = 'src'): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs)) {
      const p = join(abs, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'node_modules') walk(p);
      } else if (/\.(ts|tsx|mts|cts)$/.test(name) && !/\.d\.(ts|mts|cts)$/.test(name)) {
        out.push(toPosix(relative(rootDir, p)));
      }
    }
  };
  const start = join(rootDir, dir);
  if (existsSync(start)) walk(start);
  return out.sort();
}

/** npm package name of a bare specifier: `@a/b/c` -> `@a/b`, `a/b` -> `a`. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const BUILTINS = new Set(builtinModules);

function isBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(packageName(specifier));
}

/** Resolves a relative specifier of `fromAbs` to an existing file, or undefined. */
function resolveRelative(fromAbs: string, specifier: string): string | undefined {
  const base = resolve(dirname(fromAbs), specifier);
  const candidates: string[] = [];
  const m = /\.(m|c)?js$/.exec(base);
  if (m) {
    const stem = base.slice(0, -m[0].length);
    candidates.push(`${stem}.${m[1] ?? ''}ts`, `${stem}.tsx`);
  }
  candidates.push(base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts'));
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

function namesOfImport(clause: ts.ImportClause | undefined): { imported: string; local: string }[] {
  if (!clause) return [];
  const out: { imported: string; local: string }[] = [];
  if (clause.name) out.push({ imported: 'default', local: clause.name.text });
  const nb = clause.namedBindings;
  if (nb && ts.isNamespaceImport(nb)) out.push({ imported: '*', local: nb.name.text });
  if (nb && ts.isNamedImports(nb)) {
    for (const e of nb.elements) out.push({ imported: (e.propertyName ?? e.name).text, local: e.name.text });
  }
  return out;
}

export interface RawImport {
  specifier: string;
  kind: EdgeKind;
  typeOnly: boolean;
  /** 1-based line of the import. */
  line: number;
  names: { imported: string; local: string }[];
}

/** The imports of one source text (exported for the checker's self-test). */
export function importsOf(fileName: string, text: string): RawImport[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: (Omit<RawImport, 'line'> & { pos: number })[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      out.push({
        specifier: node.moduleSpecifier.text,
        kind: 'import',
        typeOnly: clause?.isTypeOnly ?? false,
        pos: node.getStart(sf),
        names: namesOfImport(clause),
      });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const ec = node.exportClause;
      const names =
        ec === undefined
          ? [{ imported: '*', local: '*' }]
          : ts.isNamespaceExport(ec)
            ? [{ imported: '*', local: ec.name.text }]
            : ec.elements.map((e) => ({ imported: (e.propertyName ?? e.name).text, local: e.name.text }));
      out.push({
        specifier: node.moduleSpecifier.text,
        kind: 'export',
        typeOnly: node.isTypeOnly,
        pos: node.getStart(sf),
        names,
      });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      out.push({
        specifier: node.arguments[0].text,
        kind: 'dynamic',
        typeOnly: false,
        pos: node.getStart(sf),
        names: [{ imported: '*', local: '*' }],
      });
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      out.push({
        specifier: node.argument.literal.text,
        kind: 'import-type-node',
        typeOnly: true,
        pos: node.getStart(sf),
        names: [],
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.map(({ pos, ...r }) => ({ ...r, line: sf.getLineAndCharacterOfPosition(pos).line + 1 }));
}

/** Parses every src/**\/*.ts of `rootDir` and resolves its imports. */
export function buildGraph(rootDir: string, dir = 'src'): ImportGraph {
  const root = resolve(rootDir);
  const files = listTsFiles(root, dir);
  const edges: Edge[] = [];
  for (const file of files) {
    const abs = join(root, file);
    for (const r of importsOf(abs, readFileSync(abs, 'utf8'))) {
      const base = { from: file, specifier: r.specifier, kind: r.kind, typeOnly: r.typeOnly, line: r.line };
      if (r.specifier.startsWith('.') || r.specifier.startsWith('/')) {
        const hit = resolveRelative(abs, r.specifier);
        edges.push({
          ...base,
          names: r.names,
          to: hit ? toPosix(relative(root, hit)) : r.specifier,
          target: hit ? 'internal' : 'unresolved',
        });
      } else if (isBuiltin(r.specifier)) {
        edges.push({ ...base, names: r.names, to: r.specifier, target: 'builtin' });
      } else {
        edges.push({ ...base, names: r.names, to: packageName(r.specifier), target: 'npm' });
      }
    }
  }
  return { rootDir: root, files, edges };
}

export interface Closure {
  /** Internal files reachable from the entry over runtime edges (the entry included), sorted. */
  readonly files: readonly string[];
  /** npm packages imported at run time by a file of the closure, sorted. */
  readonly packages: readonly string[];
  /** For each reached file, the file that first imported it (to print a path to it). */
  readonly via: ReadonlyMap<string, string>;
}

/** The runtime closure of `entry`: what loading it loads (type-only edges do not load anything). */
export function runtimeClosure(graph: ImportGraph, entry: string): Closure {
  const out = new Map<string, Edge[]>();
  for (const e of graph.edges) {
    if (e.typeOnly) continue;
    const list = out.get(e.from) ?? [];
    list.push(e);
    out.set(e.from, list);
  }
  const seen = new Set<string>([entry]);
  const via = new Map<string, string>();
  const packages = new Set<string>();
  const queue = [entry];
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    for (const e of out.get(f) ?? []) {
      if (e.target === 'npm') packages.add(e.to);
      if (e.target !== 'internal' || seen.has(e.to)) continue;
      seen.add(e.to);
      via.set(e.to, f);
      queue.push(e.to);
    }
  }
  return { files: [...seen].sort(), packages: [...packages].sort(), via };
}

/** `a → b → c`: the import chain by which the closure of `entry` reaches `file`. */
export function chainTo(closure: Closure, entry: string, file: string): string {
  const path = [file];
  for (let f = file; f !== entry; ) {
    const p = closure.via.get(f);
    if (p === undefined) break;
    path.unshift(p);
    f = p;
  }
  return path.join(' → ');
}

/** Strongly connected components with more than one node (Tarjan), each sorted; nodes are sorted too. */
export function cycles(nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || [...next(v)].includes(v)) out.push(comp.sort());
    }
  };
  for (const n of [...nodes].sort()) if (!idx.has(n)) strong(n);
  return out;
}
