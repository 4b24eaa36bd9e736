/**
 * JSON schemas of the admin API. Requests are validated with them (no coercion, no removal of unknown fields:
 * an unknown field is a 400 SCHEMA error); responses are serialized with them, so a response can only carry
 * the fields declared here (a stray object with key material could never be serialized). The OpenAPI
 * document at /openapi.json is generated from these schemas by @fastify/swagger.
 */

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
export const UUID_PATTERN = `^${UUID}$`;
export const PNE_REF_PATTERN = `^(urn:cpns:pne:)?${UUID}$`;
export const IDENTITY_PATTERN = `^urn:cpns:(gw|pne):${UUID}$`;

const str = (extra: object = {}) => ({ type: 'string', ...extra });
const int = (extra: object = {}) => ({ type: 'integer', ...extra });
const nullable = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });
const time = (description: string) =>
  int({ minimum: 0, description: `${description} (ms since the Unix epoch)` });
const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)) => ({
  type: 'object',
  additionalProperties: false,
  properties,
  required,
});
const arr = (items: unknown) => ({ type: 'array', items });

export const sgIdSchema = str({ pattern: UUID_PATTERN, description: 'Service Group id (lowercase UUID)' });
const pneIdSchema = str({ pattern: `^urn:cpns:pne:${UUID}$` });
const gwIdSchema = str({ pattern: `^urn:cpns:gw:${UUID}$` });
const suiteSchema = str({ enum: ['aes-256-gcm', 'chacha20-poly1305'] });
const joinPolicySchema = str({ enum: ['open', 'invite'] });

// ------------------------------------------------------------------ shared components (#/components/schemas)

export const components: Record<string, object> = {
  Error: obj({
    error: obj(
      {
        code: str({ description: 'Stable error code (see docs/operator.md)' }),
        message: str(),
        field: str({ description: 'Offending field, when the error is about one' }),
      },
      ['code', 'message'],
    ),
  }),
  Pne: obj({
    pneId: pneIdSchema,
    gwId: nullable('string', { description: 'GW of the PN it is attached to; null when detached' }),
    online: { type: 'boolean' },
    lastSeen: time('Last time seen'),
    media: arr(str()),
  }),
  Gateway: obj({
    gwId: gwIdSchema,
    online: { type: 'boolean' },
    registeredAt: time('Registration time'),
    lastSeen: time('Last time seen'),
    pneCount: int({ minimum: 0 }),
  }),
  PersonalNetwork: obj({
    gwId: gwIdSchema,
    online: { type: 'boolean' },
    registeredAt: time('Registration time'),
    lastSeen: time('Last time seen'),
    pnes: arr({ $ref: 'Pne#' }),
  }),
  Identity: obj({
    id: str({ pattern: IDENTITY_PATTERN }),
    role: str({ enum: ['gw', 'pne'] }),
    certSerial: str({ description: 'Serial of the current certificate (hex)' }),
    createdAt: time('Enrollment time'),
    revokedAt: nullable('integer', { description: 'Revocation time (ms), null if not revoked' }),
  }),
  ServiceGroup: obj({
    sgId: sgIdSchema,
    name: str(),
    ownerId: str({ description: "'operator' or the creating PNE" }),
    joinPolicy: joinPolicySchema,
    suite: suiteSchema,
    sourceAuth: { type: 'boolean', description: 'Messages must carry a sender signature' },
    updateOnJoin: {
      type: 'boolean',
      description:
        'A join updates the Group Key (backward secrecy). false: a joiner can read what was sent earlier in the current epoch',
    },
    rekeyIntervalSec: nullable('integer', { description: 'Periodic key update interval; null = none' }),
    deliveryPolicy: nullable('object', { additionalProperties: true }),
    createdAt: time('Creation time'),
    currentEpoch: int({ minimum: 0, description: 'Epoch of the current Group Key (0 = none)' }),
    memberCount: int({ minimum: 0 }),
    members: arr(pneIdSchema),
  }),
  MemberKeyState: obj({
    pneId: pneIdSchema,
    gwId: nullable('string'),
    online: { type: 'boolean' },
    joinedAt: nullable('integer', { description: 'Membership start (ms)' }),
    ackedEpoch: nullable('integer', { description: 'Highest epoch the PNE acknowledged' }),
    ackedAt: nullable('integer'),
    method: nullable('string', { enum: ['unicast', 'broadcast', 'fallback', null] }),
    lag: int({ minimum: 0, description: 'currentEpoch - ackedEpoch: how many epochs behind' }),
  }),
  GatewayKeyState: obj({
    gwId: gwIdSchema,
    online: { type: 'boolean' },
    ackedEpoch: nullable('integer'),
    ackedAt: nullable('integer'),
    lag: int({ minimum: 0 }),
  }),
  KeyEpoch: obj({
    epoch: int({ minimum: 1 }),
    createdAt: time('Creation time'),
    reason: str({ description: "Why: 'create', 'remove', 'leave', 'periodic', 'operator', 'revoke', ..." }),
    activateAt: nullable('integer'),
  }),
  KeyStatus: obj({
    sgId: sgIdSchema,
    currentEpoch: int({ minimum: 0 }),
    current: { anyOf: [{ $ref: 'KeyEpoch#' }, { type: 'null' }] },
    epochs: arr({ $ref: 'KeyEpoch#' }),
    lagging: int({ minimum: 0, description: 'Members behind the current epoch' }),
    members: arr({ $ref: 'MemberKeyState#' }),
    gateways: arr({ $ref: 'GatewayKeyState#' }),
  }),
  AuditEntry: obj({
    seq: int({ minimum: 1 }),
    at: time('When'),
    actor: str(),
    action: str(),
    sgId: nullable('string'),
    subject: nullable('string'),
    epoch: nullable('integer'),
    reason: nullable('string'),
    detail: nullable('object', { additionalProperties: true }),
  }),
};

/** Adds `$id` so the schemas can be registered with `app.addSchema` and referenced as `Name#`. */
export function componentSchemas(): object[] {
  return Object.entries(components).map(([name, s]) => ({ $id: name, ...s }));
}

/**
 * The error replies an operation can give, each `{error:{code,message,field?}}` (docs/operator.md "Validation and
 * errors"). Declared per operation (`errors(...)` below) with the codes that status carries there, so the document
 * says what the routes return. Every operation can get 400 MALFORMED and 431 HEADERS_TOO_LARGE from node's HTTP
 * parser, before routing; 400 SCHEMA only where there are parameters, a query or a body to check.
 */
const ERRORS = {
  400: 'SCHEMA (a parameter, query or body field does not match the schema; `field` names it), MALFORMED (a body that is not JSON, a request the HTTP parser refuses), BAD_URL, INVALID_ARGUMENT',
  401: 'UNAUTHORIZED: missing, unknown, revoked or malformed bearer token',
  403: "INSUFFICIENT_SCOPE: the admin token's scope does not cover this request (read: GET only; operator: no admin tokens)",
  404: 'NOT_FOUND (no such Service Group, identity or PNE), NOT_MEMBER',
  409: 'CONFLICT, ALREADY_MEMBER, GROUP_RETIRED, REVOKED, EPOCH_EXHAUSTED: the state does not allow it',
  413: 'TOO_LARGE: request body above 64 KiB',
  414: 'URI_TOO_LONG: a path parameter above 120 characters',
  415: 'UNSUPPORTED_MEDIA_TYPE: a request body that is not application/json',
  431: 'HEADERS_TOO_LARGE: request headers above 16 KiB',
  500: 'INTERNAL: internal error (the details are in the server log only)',
  503: 'UNAVAILABLE (the database is unavailable), BUSY, CLOSED (the server is stopping)',
} as const;

type ErrorStatus = keyof typeof ERRORS;

/** An error response of `status`, described by its codes (override for operations with codes of their own). */
export const errorResponse = (status: ErrorStatus, description: string = ERRORS[status]) => ({
  description,
  $ref: 'Error#',
});

const PARSER_400 = 'MALFORMED: a request line or headers the HTTP parser refuses';

/** The error responses of the given statuses, plus the HTTP parser's 400 and 431 that every operation can get. */
export function errors(...statuses: ErrorStatus[]): Record<number, object> {
  const out: Record<number, object> = { 400: errorResponse(400, PARSER_400), 431: errorResponse(431) };
  for (const s of statuses) out[s] = errorResponse(s);
  return out;
}

/** A read of the store (authenticated; a read needs scope read, which every token has). */
const READ = [401, 500, 503] as const;
/** A read with a query to check. */
const QUERY = [...READ, 400] as const;
/** A read of one item named by path parameters. */
const READ_ITEM = [...READ, 400, 404, 414] as const;
/**
 * A request whose body fastify parses (POST, PATCH, DELETE), with or without a body schema: a change, so it
 * also needs a token of scope operator (403 for a read-only token).
 */
const BODY = [400, 403, 413, 415] as const;
/** A change of a Service Group or identity named by path parameters. */
const CHANGE_ITEM = [...READ_ITEM, ...BODY, 409] as const;

// ------------------------------------------------------------------ request parts

export const sgParams = obj({ sgId: sgIdSchema });
export const memberParams = obj({ sgId: sgIdSchema, pneId: str({ pattern: PNE_REF_PATTERN }) });
export const identityParams = obj({ id: str({ pattern: IDENTITY_PATTERN }) });

export const createTokenBody = obj(
  {
    role: str({ enum: ['gw', 'pne'] }),
    ttlSec: int({ minimum: 60, maximum: 30 * 24 * 3600, description: 'Lifetime, default 3600' }),
    label: str({
      minLength: 1,
      maxLength: 128,
      pattern: '^[^\\u0000-\\u001f\\u007f]+$',
      description:
        'Free operator label of the device to enroll (e.g. "living-room tv"); audited with the token',
    }),
  },
  ['role'],
);

/** Operator delivery policy of one SG at the PN GWs (seed §5.3.3: the PN GW selects unicast or broadcast). */
const deliveryPolicySchema = obj({
  broadcast: { type: 'boolean', description: 'Broadcast delivery (GKEK/GKDK) allowed' },
  broadcastThreshold: int({
    minimum: 1,
    maximum: 65536,
    description: 'Least member PNEs of the PN to broadcast',
  }),
  ackTimeoutMs: int({
    minimum: 10,
    maximum: 600000,
    description: 'Unicast fallback after this time without ack',
  }),
});

export const createGroupBody = obj(
  {
    name: str({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
    joinPolicy: { ...joinPolicySchema, description: "Default 'invite' (only invited PNEs may join)" },
    suite: { ...suiteSchema, description: "Default 'aes-256-gcm'" },
    sourceAuth: { type: 'boolean', description: 'Default false' },
    updateOnJoin: { type: 'boolean', description: 'Default true: every join updates the Group Key' },
    rekeyIntervalSec: int({ minimum: 60, maximum: 366 * 24 * 3600, description: 'Periodic update' }),
    deliveryPolicy: { ...deliveryPolicySchema, description: 'Default: the server-wide delivery policy' },
    members: {
      type: 'array',
      maxItems: 1000,
      uniqueItems: true,
      items: str({ pattern: PNE_REF_PATTERN }),
      description: 'PNE identities (urn:cpns:pne:<uuid>) or bare UUIDs',
    },
  },
  ['name'],
);

export const updatePolicyBody = {
  ...obj(
    {
      joinPolicy: joinPolicySchema,
      rekeyIntervalSec: nullable('integer', {
        minimum: 60,
        maximum: 366 * 24 * 3600,
        description: 'Periodic update interval; null turns periodic updates off',
      }),
      sourceAuth: { type: 'boolean' },
      updateOnJoin: { type: 'boolean' },
      deliveryPolicy: {
        oneOf: [deliveryPolicySchema, { type: 'null' }],
        description: 'null = back to the server-wide delivery policy',
      },
    },
    [],
  ),
  minProperties: 1,
};

export const addMemberBody = obj({ pneId: str({ pattern: PNE_REF_PATTERN }) });

export const addMembersBody = obj({
  pneIds: {
    type: 'array',
    minItems: 1,
    maxItems: 1000,
    uniqueItems: true,
    items: str({ pattern: PNE_REF_PATTERN }),
    description: 'PNE identities or bare UUIDs, added together (one key update with update on join)',
  },
});

export const auditQuery = obj(
  {
    sgId: sgIdSchema,
    action: str({ pattern: '^[a-z][a-z0-9_.:-]{0,63}$', description: "e.g. 'key.update'" }),
    actor: str({
      minLength: 1,
      maxLength: 256,
      pattern: '^[^\\u0000-\\u001f\\u007f]+$',
      description: "Exact actor: 'operator:<token name>', a device's identity, 'server', ...",
    }),
    subject: str({
      minLength: 1,
      maxLength: 256,
      pattern: '^[^\\u0000-\\u001f\\u007f]+$',
      description: 'Exact subject: the identity (or role, token name) an entry is about',
    }),
    order: str({ enum: ['asc', 'desc'], description: "'asc' (default): oldest first; 'desc': newest first" }),
    afterSeq: str({
      pattern: '^(0|[1-9][0-9]{0,15})$',
      description: 'Entries after this seq: the cursor of oldest-first paging (nextAfterSeq)',
    }),
    beforeSeq: str({
      pattern: '^[1-9][0-9]{0,15}$',
      description: 'Entries before this seq: the cursor of newest-first paging (nextBeforeSeq)',
    }),
    limit: str({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: '1..1000, default 100' }),
  },
  [],
);

export const identitiesQuery = obj({ role: str({ enum: ['gw', 'pne'] }) }, []);

// ------------------------------------------------------------------ responses

const ok = (description: string, schema: object) => ({ description, ...schema });

export const responses = {
  pns: { 200: ok('Personal Networks', arr({ $ref: 'PersonalNetwork#' })), ...errors(...READ) },
  pnes: { 200: ok('PNEs', arr({ $ref: 'Pne#' })), ...errors(...READ) },
  gateways: { 200: ok('PN Gateways', arr({ $ref: 'Gateway#' })), ...errors(...READ) },
  identities: { 200: ok('Identities', arr({ $ref: 'Identity#' })), ...errors(...QUERY) },
  token: {
    201: ok(
      'The token (shown once)',
      obj({
        token: str({ description: 'One-time enrollment token; shown once, stored only as a hash' }),
        role: str({ enum: ['gw', 'pne'] }),
        label: nullable('string', { description: 'The label given, null if none' }),
        expiresAt: time('Expiry'),
      }),
    ),
    ...errors(...READ, ...BODY),
  },
  revoke: { 200: ok('The revoked identity', { $ref: 'Identity#' }), ...errors(...CHANGE_ITEM) },
  groups: { 200: ok('Service Groups', arr({ $ref: 'ServiceGroup#' })), ...errors(...READ) },
  group: { 200: ok('The Service Group', { $ref: 'ServiceGroup#' }), ...errors(...READ_ITEM) },
  groupUpdated: { 200: ok('The Service Group', { $ref: 'ServiceGroup#' }), ...errors(...CHANGE_ITEM) },
  /** Creation: a member that is not an enrolled PNE is 404 NOT_FOUND. */
  groupCreated: {
    201: ok('The new Service Group', { $ref: 'ServiceGroup#' }),
    ...errors(...READ, ...BODY, 404, 409),
  },
  noContent: { 204: { type: 'null', description: 'Done' }, ...errors(...CHANGE_ITEM) },
  members: { 200: ok('Members', arr({ $ref: 'MemberKeyState#' })), ...errors(...READ_ITEM) },
  memberAdded: {
    201: ok('The member added', obj({ sgId: sgIdSchema, pneId: pneIdSchema })),
    ...errors(...CHANGE_ITEM),
  },
  membersAdded: {
    201: ok('The members added', obj({ sgId: sgIdSchema, pneIds: arr(pneIdSchema) })),
    ...errors(...CHANGE_ITEM),
  },
  keyStatus: { 200: ok('Group Key status', { $ref: 'KeyStatus#' }), ...errors(...READ_ITEM) },
  rekey: {
    200: ok(
      'The new epoch',
      obj({ sgId: sgIdSchema, epoch: int({ minimum: 1, description: 'The new current epoch' }) }),
    ),
    ...errors(...CHANGE_ITEM),
  },
  audit: {
    200: ok(
      'A page of the audit log',
      obj({
        entries: arr({ $ref: 'AuditEntry#' }),
        nextAfterSeq: nullable('integer', {
          description:
            'Oldest first: cursor (afterSeq) of the next page; null on the last page and newest first',
        }),
        nextBeforeSeq: nullable('integer', {
          description:
            'Newest first: cursor (beforeSeq) of the next, older page; null on the last page and oldest first',
        }),
      }),
    ),
    ...errors(...QUERY),
  },
  events: {
    200: { type: 'string', description: 'text/event-stream' },
    ...errors(401),
    503: errorResponse(503, 'TOO_MANY_STREAMS: the most concurrent event streams are open'),
  },
  healthz: { 200: ok('The process answers', obj({ status: str({ enum: ['ok'] }) })), ...errors() },
  readyz: {
    200: ok('Ready: the store answers, and in a cluster the bus', obj({ status: str({ enum: ['ready'] }) })),
    ...errors(),
    503: errorResponse(
      503,
      'NOT_READY: the store (message `store unavailable`) or, in a cluster, the bus (`bus unavailable`) does not answer',
    ),
  },
};

// ------------------------------------------------------------------ admin tokens (docs/operator.md "Admin tokens")

const adminTokenName = str({
  pattern: '^[a-z0-9][a-z0-9._-]{0,62}$',
  description: 'Token name: the audit actor operator:<name>; never reused',
});
const adminScope = str({
  enum: ['read', 'operator', 'admin'],
  description: 'read: GET only; operator: every change but admin tokens; admin: everything',
});
const adminToken = obj({
  name: adminTokenName,
  scope: adminScope,
  createdAt: time('Creation time'),
  revokedAt: nullable('integer', { minimum: 0, description: 'Revocation time (ms); null while valid' }),
});

export const adminTokenParams = obj({ name: adminTokenName });
export const createAdminTokenBody = obj({ name: adminTokenName, scope: adminScope });

export const adminTokenResponses = {
  list: { 200: ok('Admin tokens', arr(adminToken)), ...errors(...READ, 403) },
  created: {
    201: ok(
      'The token (shown once)',
      obj({
        name: adminTokenName,
        scope: adminScope,
        token: str({ description: 'The bearer token; shown once, stored only as a SHA-256 hash' }),
      }),
    ),
    ...errors(...READ, ...BODY, 409),
  },
  revoked: { 200: ok('The revoked token', adminToken), ...errors(...READ_ITEM, ...BODY) },
};
