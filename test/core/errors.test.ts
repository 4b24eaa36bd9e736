/**
 * One base class for every error, and the wire / HTTP mapping of each family exactly as docs/errors.md states it
 * (the "Mapping" table is parsed, so the doc and the code cannot drift apart).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ApiError, toHttpError } from '../../src/admin/errors.js';
import { AdminCallError } from '../../src/cli/admin-client.js';
import { DataDirInUseError } from '../../src/cli/datadir-lock.js';
import { CredentialsError } from '../../src/cli/files.js';
import { DaemonError, UsageError } from '../../src/cli/usage.js';
import { MasterKeyError } from '../../src/core/crypto/masterkey.js';
import {
  CodedError,
  CpnsError,
  ErrorCode,
  type ErrorFamily,
  isCodedError,
  isCpnsError,
} from '../../src/core/errors.js';
import { codeOf } from '../../src/protocol/control.js';
import { isStoreError, StoreError, StoreErrorCode } from '../../src/store/errors.js';
import { isTransportError, TransportError, TransportErrorCode } from '../../src/transport/errors.js';

const coreCodes = Object.values(ErrorCode);
const transportCodes = Object.values(TransportErrorCode);
const storeCodes = Object.values(StoreErrorCode);

/** One instance of every error class, with the family and name it must report. */
const everyClass: [CodedError, ErrorFamily, string][] = [
  [new CpnsError('MALFORMED', 'x', 'f'), 'core', 'CpnsError'],
  [new TransportError('CLOSED', 'x', 'f'), 'transport', 'TransportError'],
  [new StoreError('CONFLICT', 'x', 'f'), 'store', 'StoreError'],
  [new MasterKeyError('MASTER_KEY_INVALID', 'x', 'f'), 'store', 'MasterKeyError'],
  [new UsageError('x'), 'cli', 'UsageError'],
  [new DaemonError('REVOKED', 'x'), 'cli', 'DaemonError'],
  [new CredentialsError('KEY_INVALID', 'x'), 'cli', 'CredentialsError'],
  [new DataDirInUseError('/data', { pid: 1 }), 'cli', 'DataDirInUseError'],
  [new AdminCallError('NOT_FOUND', 'x', 404), 'cli', 'AdminCallError'],
  [new ApiError(404, 'NOT_FOUND', 'x'), 'admin', 'ApiError'],
];

describe('one base class', () => {
  it.each(everyClass.map(([e, family, name]) => [name, e, family] as const))(
    '%s is a CodedError of its family',
    (name, e, family) => {
      expect(e).toBeInstanceOf(Error);
      expect(e).toBeInstanceOf(CodedError);
      expect(isCodedError(e)).toBe(true);
      expect(isCodedError(e, e.code)).toBe(true);
      expect(isCodedError(e, 'NOT_A_CODE')).toBe(false);
      expect(e.family).toBe(family);
      expect(e.name).toBe(name);
      expect(typeof e.code).toBe('string');
    },
  );

  it('keeps each class its own code, field and the CLI codes it always had', () => {
    expect(new UsageError('x').code).toBe('USAGE');
    expect(new DataDirInUseError('/data', { pid: 1 }).code).toBe('DATA_DIR_IN_USE');
    expect(new CredentialsError('KEY_MISMATCH', 'x')).toBeInstanceOf(DaemonError);
    expect(new CpnsError('SCHEMA', 'x', 'a.b').field).toBe('a.b');
    expect(new StoreError('NOT_FOUND', 'x').field).toBeUndefined();
    const call = new AdminCallError('CONFLICT', 'x', 409, 'sgId');
    expect([call.status, call.field]).toEqual([409, 'sgId']);
    const api = new ApiError(404, 'NOT_FOUND', 'x', 'id');
    expect([api.status, api.field]).toEqual([404, 'id']);
  });

  it('carries a cause', () => {
    const cause = new Error('inner');
    expect(new CpnsError('MALFORMED', 'x', undefined, { cause }).cause).toBe(cause);
    expect(new TransportError('TLS_REFUSED', 'x', undefined, { cause }).cause).toBe(cause);
    expect(new StoreError('BUSY', 'x', undefined, { cause }).cause).toBe(cause);
  });

  it('keeps the families apart: a transport or store error is not a CpnsError', () => {
    const t = new TransportError('REVOKED', 'x');
    const s = new StoreError('NOT_FOUND', 'x');
    const c = new CpnsError('REVOKED', 'x');
    expect([isCpnsError(t), isCpnsError(s), isCpnsError(c)]).toEqual([false, false, true]);
    expect([isTransportError(c), isTransportError(s), isTransportError(t)]).toEqual([false, false, true]);
    expect([isStoreError(c), isStoreError(t), isStoreError(s)]).toEqual([false, false, true]);
    expect(isCodedError(new Error('x'))).toBe(false);
  });
});

describe('codes', () => {
  it.each([
    ['core', ErrorCode],
    ['transport', TransportErrorCode],
    ['store', StoreErrorCode],
  ] as const)('the %s table is keyed by its codes (so they are unique)', (_family, table) => {
    for (const [k, v] of Object.entries(table)) expect(v).toBe(k);
    const values = Object.values(table) as string[];
    expect(new Set(values).size).toBe(values.length);
  });

  it('core and transport, both on the wire as they are, share only REVOKED and TIMEOUT', () => {
    const shared = transportCodes.filter((c) => (coreCodes as string[]).includes(c));
    expect(shared.sort()).toEqual(['REVOKED', 'TIMEOUT']);
  });
});

interface Row {
  family: string;
  code: string;
  wire: string;
  http: string;
}

/** The rows of docs/errors.md's "## Mapping" table. */
function mappingTable(): Row[] {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('\n## Mapping\n'));
  const rows: Row[] = [];
  let inTable = false;
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    if (line.startsWith('|---')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim().replaceAll('`', ''));
    if (cells[0] === 'family') continue;
    const [family = '', code = '', wire = '', http = ''] = cells;
    rows.push({ family, code, wire, http });
  }
  return rows;
}

const rows = mappingTable();

/** The documented row for this family and code: the code's own row, else the family's catch-all. */
function rowFor(family: string, code: string): Row {
  const own = rows.find((r) => r.family === family && r.code === code);
  const rest = rows.find((r) => r.family === family && (r.code === 'any other' || r.code === 'any'));
  const row = own ?? rest;
  if (!row) throw new Error(`docs/errors.md has no mapping row for ${family} ${code}`);
  return row;
}

function expectAsDocumented(e: unknown, row: Row): void {
  const own = isCodedError(e) ? e.code : undefined;
  expect(codeOf(e)).toBe(row.wire === 'its code' ? own : row.wire);
  const h = toHttpError(e);
  if (row.http === '500 masked') {
    expect(h).toEqual({ status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } });
  } else {
    expect(h.status).toBe(row.http === 'its status' ? (e as ApiError).status : Number(row.http));
    expect(h.body.error.code).toBe(own);
  }
}

describe('the wire and HTTP mapping is what docs/errors.md says', () => {
  it('the table names only real codes, and covers every family', () => {
    const known: Record<string, readonly string[]> = {
      core: coreCodes,
      transport: transportCodes,
      store: storeCodes,
    };
    for (const r of rows) {
      const table = known[r.family];
      if (table && r.code !== 'any' && r.code !== 'any other') expect(table).toContain(r.code);
    }
    const families = new Set(rows.map((r) => r.family));
    for (const f of ['core', 'transport', 'store', 'cli', 'admin', 'not a CodedError']) {
      expect(families).toContain(f);
    }
  });

  it.each(coreCodes)('core %s', (code) => {
    expectAsDocumented(new CpnsError(code, 'fixed text', 'f'), rowFor('core', code));
  });

  it.each(transportCodes)('transport %s', (code) => {
    expectAsDocumented(new TransportError(code, 'fixed text', 'f'), rowFor('transport', code));
  });

  it.each(storeCodes)('store %s', (code) => {
    expectAsDocumented(new StoreError(code, 'fixed text', 'f'), rowFor('store', code));
  });

  // The master-key file helper sits in core (below protocol and the roles) but reports the store's codes.
  it.each(['MASTER_KEY_INVALID', 'MASTER_KEY_PERMISSIONS'] as const)('master key %s', (code) => {
    expectAsDocumented(new MasterKeyError(code, 'fixed text', 'f'), rowFor('store', code));
  });

  it.each(everyClass.filter(([, f]) => f === 'cli').map(([e, , name]) => [name, e] as const))(
    'cli %s',
    (_name, e) => {
      expectAsDocumented(e, rowFor('cli', e.code));
    },
  );

  it.each([
    [404, 'NOT_FOUND'],
    [418, 'TEAPOT'],
  ] as const)('admin ApiError %i %s', (status, code) => {
    expectAsDocumented(new ApiError(status, code, 'fixed text'), rowFor('admin', code));
  });

  it.each([
    ['Error', new Error('secret detail')],
    ['TypeError', new TypeError('secret detail')],
    ['string', 'secret detail'],
    ['undefined', undefined],
  ])('not a CodedError: %s', (_what, e) => {
    expectAsDocumented(e, rowFor('not a CodedError', '—'));
  });

  it('a store code on the wire is a core code (it arrives as a CpnsError)', () => {
    for (const code of storeCodes) {
      const wire = codeOf(new StoreError(code, 'x'));
      if (wire !== 'INTERNAL') expect(coreCodes as string[]).toContain(wire);
    }
  });
});
