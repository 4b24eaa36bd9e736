/**
 * Figures of a checkout's src/: `npx tsx test/architecture/figures.ts [rootDir]` (default: the current directory).
 * Works on any commit of this repo (folders are read from the tree, not assumed; e.g. roles/ and delivery/ before
 * protocol/). Prints:
 *  - the 10 largest src files by lines;
 *  - the runtime closure of src/pne/index.ts: src files and npm packages it loads;
 *  - import edges between folders: distinct folder → folder pairs, with file-edge counts (type-only apart);
 *  - places that construct a `key.deliver` message (object literals with `t: 'key.deliver'` outside src/core/codec);
 *  - places that format a UUID as 8-4-4-4-12 (hex slices joined with '-') outside src/core/ids.ts, and calls to
 *    such local formatting helpers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { buildGraph, type ImportGraph, runtimeClosure } from './graph.js';

const UUID_BOUNDS = [0, 8, 12, 16, 20, 32];
const IDS_FILE = 'src/core/ids.ts';
const CODEC_DIR = 'src/core/codec/';

const folderOf = (file: string): string => file.split('/')[1] ?? file;

function parse(root: string, file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
}

const lineOf = (sf: ts.SourceFile, n: ts.Node): number =>
  sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;

/** `x.slice(a, b)` / `x.substring(a, b)` with numeric literals: [a, b]; else undefined. */
function sliceBounds(n: ts.Node): [number, number] | undefined {
  if (!ts.isCallExpression(n) || !ts.isPropertyAccessExpression(n.expression)) return undefined;
  if (!['slice', 'substring', 'substr'].includes(n.expression.name.text)) return undefined;
  const [a, b] = n.arguments;
  if (!a || !b || !ts.isNumericLiteral(a) || !ts.isNumericLiteral(b)) return undefined;
  const s = Number(a.text);
  const e = n.expression.name.text === 'substr' ? s + Number(b.text) : Number(b.text);
  return [s, e];
}

const isUuidSlices = (bounds: ([number, number] | undefined)[]): boolean =>
  bounds.length === 5 &&
  bounds.every((b, i) => b !== undefined && b[0] === UUID_BOUNDS[i] && b[1] === UUID_BOUNDS[i + 1]);

/** A template `${h.slice(0, 8)}-${h.slice(8, 12)}-…-${h.slice(20, 32)}`, or `[slices…].join('-')`. */
function isUuidFormat(n: ts.Node): boolean {
  if (ts.isTemplateExpression(n)) {
    const seps = n.templateSpans.slice(0, -1).map((s) => s.literal.text);
    return (
      n.head.text === '' &&
      seps.every((t) => t === '-') &&
      isUuidSlices(n.templateSpans.map((s) => sliceBounds(s.expression)))
    );
  }
  if (
    ts.isCallExpression(n) &&
    ts.isPropertyAccessExpression(n.expression) &&
    n.expression.name.text === 'join' &&
    n.arguments[0] !== undefined &&
    ts.isStringLiteral(n.arguments[0]) &&
    n.arguments[0].text === '-' &&
    ts.isArrayLiteralExpression(n.expression.expression)
  ) {
    return isUuidSlices(n.expression.expression.elements.map(sliceBounds));
  }
  return false;
}

/** Name of the function a node is in (declaration, method, or `const f = () => …`). */
function enclosingFunction(n: ts.Node): string | undefined {
  for (let p: ts.Node | undefined = n.parent; p; p = p.parent) {
    if ((ts.isFunctionDeclaration(p) || ts.isMethodDeclaration(p)) && p.name && ts.isIdentifier(p.name))
      return p.name.text;
    if ((ts.isArrowFunction(p) || ts.isFunctionExpression(p)) && ts.isVariableDeclaration(p.parent)) {
      return ts.isIdentifier(p.parent.name) ? p.parent.name.text : undefined;
    }
  }
  return undefined;
}

interface Site {
  readonly file: string;
  readonly line: number;
  readonly fn?: string | undefined;
}

function scan(root: string, graph: ImportGraph) {
  const keyDeliver: Site[] = [];
  const uuidFormats: Site[] = [];
  const sources = new Map<string, ts.SourceFile>();
  for (const file of graph.files) {
    const sf = parse(root, file);
    sources.set(file, sf);
    const visit = (n: ts.Node): void => {
      if (
        ts.isObjectLiteralExpression(n) &&
        !file.startsWith(CODEC_DIR) &&
        n.properties.some(
          (p) =>
            ts.isPropertyAssignment(p) &&
            (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) &&
            p.name.text === 't' &&
            ts.isStringLiteralLike(p.initializer) &&
            p.initializer.text === 'key.deliver',
        )
      ) {
        keyDeliver.push({ file, line: lineOf(sf, n) });
      }
      if (file !== IDS_FILE && isUuidFormat(n))
        uuidFormats.push({ file, line: lineOf(sf, n), fn: enclosingFunction(n) });
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }

  // Local formatting helpers: the functions those formats are in. Their call sites: in their own file, and in
  // files that import the name from that file or from a module re-exporting it (`export { f } from`, `export *`).
  const helpers = uuidFormats.filter((s) => s.fn !== undefined).map((s) => ({ file: s.file, name: s.fn! }));
  const exportsOf = (file: string, name: string, seen = new Set<string>()): Set<string> => {
    // every (module) through which `name` of `file` can be imported
    const out = new Set<string>([file]);
    if (seen.has(file)) return out;
    seen.add(file);
    for (const e of graph.edges) {
      if (e.kind !== 'export' || e.to !== file) continue;
      const hit = e.names.find((x) => x.imported === name || x.imported === '*');
      if (hit && (hit.local === name || hit.local === '*'))
        for (const f of exportsOf(e.from, name, seen)) out.add(f);
    }
    return out;
  };
  const helperCalls: (Site & { helper: string })[] = [];
  for (const h of helpers) {
    const via = exportsOf(h.file, h.name);
    const locals = new Map<string, Set<string>>([[h.file, new Set([h.name])]]);
    for (const e of graph.edges) {
      if (e.kind !== 'import' || !via.has(e.to)) continue;
      for (const n of e.names)
        if (n.imported === h.name) locals.set(e.from, (locals.get(e.from) ?? new Set()).add(n.local));
    }
    for (const [file, names] of locals) {
      const sf = sources.get(file)!;
      const visit = (n: ts.Node): void => {
        if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && names.has(n.expression.text)) {
          helperCalls.push({ file, line: lineOf(sf, n), helper: `${h.file}:${h.name}` });
        }
        ts.forEachChild(n, visit);
      };
      visit(sf);
    }
  }
  return { keyDeliver, uuidFormats, helperCalls };
}

function main(): void {
  const root = resolve(process.argv[2] ?? '.');
  if (!existsSync(join(root, 'src'))) throw new Error(`no src/ under ${root}`);
  const graph = buildGraph(root);
  const at = (s: Site): string => `${s.file}:${s.line}`;
  const print = (s = ''): void => {
    process.stdout.write(`${s}\n`);
  };

  print(`figures of ${root} (${graph.files.length} src .ts files)`);
  print();
  print('10 largest src files (lines):');
  const lines = graph.files.map((f) => ({
    f,
    n: readFileSync(join(root, f), 'utf8').split('\n').length - 1,
  }));
  for (const { f, n } of lines.sort((a, b) => b.n - a.n || a.f.localeCompare(b.f)).slice(0, 10)) {
    print(`  ${String(n).padStart(5)}  ${f}`);
  }

  print();
  const entry = 'src/pne/index.ts';
  if (graph.files.includes(entry)) {
    const c = runtimeClosure(graph, entry);
    const byFolder = new Map<string, number>();
    for (const f of c.files) byFolder.set(folderOf(f), (byFolder.get(folderOf(f)) ?? 0) + 1);
    const closureLines = lines.filter(({ f }) => c.files.includes(f)).reduce((sum, { n }) => sum + n, 0);
    print(
      `runtime closure of ${entry}: ${c.files.length} src files (${closureLines} lines), ${c.packages.length} npm packages`,
    );
    print(`  files by folder: ${[...byFolder].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    print(`  npm packages: ${c.packages.join(', ')}`);
  } else {
    print(`runtime closure of ${entry}: no such file`);
  }

  print();
  const pairs = new Map<string, { all: number; types: number }>();
  for (const e of graph.edges) {
    if (e.target !== 'internal') continue;
    const [a, b] = [folderOf(e.from), folderOf(e.to)];
    if (a === b) continue;
    const p = pairs.get(`${a} → ${b}`) ?? { all: 0, types: 0 };
    p.all++;
    if (e.typeOnly) p.types++;
    pairs.set(`${a} → ${b}`, p);
  }
  print(`import edges between folders: ${pairs.size} distinct folder → folder pairs`);
  for (const [k, v] of [...pairs].sort(([a], [b]) => a.localeCompare(b))) {
    print(
      `  ${k.padEnd(24)} ${String(v.all).padStart(3)} file edges${v.types ? ` (${v.types} type-only)` : ''}`,
    );
  }

  const { keyDeliver, uuidFormats, helperCalls } = scan(root, graph);
  print();
  print(
    `key.deliver constructed (t: 'key.deliver' object literals outside ${CODEC_DIR}): ${keyDeliver.length}`,
  );
  for (const s of keyDeliver) print(`  ${at(s)}`);
  print();
  print(
    `UUID formatted as 8-4-4-4-12 outside ${IDS_FILE}: ${uuidFormats.length + helperCalls.length} places ` +
      `(${uuidFormats.length} formatting expressions, ${helperCalls.length} calls to local formatting helpers)`,
  );
  for (const s of uuidFormats) print(`  format  ${at(s)}${s.fn ? ` in ${s.fn}()` : ''}`);
  for (const s of helperCalls) print(`  call    ${at(s)} → ${s.helper}`);
}

main();
