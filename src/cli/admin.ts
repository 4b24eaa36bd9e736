import { parseArgs } from 'node:util';
import { adminCall, endpointFromDataDir } from './admin-client.js';
import { UsageError } from './daemons.js';

const USAGE = `usage: cpns admin <command> [--data-dir <server data dir>]
  token create --role gw|pne [--ttl <sec>]     one-time enrollment token
  revoke <identity>                           revoke a GW or PNE: sessions closed at once
  pns                                         PN inventory (GWs, their PNEs, online)
  sg list | sg create --name N [--open] [--member <pne>]... [--rekey-interval <sec>] [--source-auth]
  sg delete|rekey|status <sgId>               status: members, PN, online, acked epoch, lag
  sg add|remove <sgId> <pne>`;

/** `cpns admin ...`: operator commands over the server's operator endpoint (never the database directly). */
export async function adminCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string', default: process.env.CPNS_DATA_DIR ?? '.cpns/server' },
      role: { type: 'string' },
      ttl: { type: 'string' },
      name: { type: 'string' },
      open: { type: 'boolean', default: false },
      'source-auth': { type: 'boolean', default: false },
      member: { type: 'string', multiple: true },
      'rekey-interval': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const ep = endpointFromDataDir(values['data-dir']);
  const [a, b, c, d] = positionals;
  let result: unknown;
  if (a === 'token' && b === 'create') {
    result = await adminCall(ep, 'token.create', {
      role: values.role,
      ...(values.ttl ? { ttlSec: Number(values.ttl) } : {}),
    });
    if (!values.json) {
      process.stdout.write(`${(result as { token: string }).token}\n`);
      return 0;
    }
  } else if (a === 'revoke' && b) result = await adminCall(ep, 'revoke', { identity: b });
  else if (a === 'pns') result = await adminCall(ep, 'pns');
  else if (a === 'sg' && b === 'list') result = await adminCall(ep, 'sg.list');
  else if (a === 'sg' && b === 'create') {
    result = await adminCall(ep, 'sg.create', {
      name: values.name,
      joinPolicy: values.open ? 'open' : 'invite',
      sourceAuth: values['source-auth'],
      ...(values.member ? { members: values.member } : {}),
      ...(values['rekey-interval'] ? { rekeyIntervalSec: Number(values['rekey-interval']) } : {}),
    });
  } else if (a === 'sg' && (b === 'delete' || b === 'rekey' || b === 'status') && c) {
    result = await adminCall(ep, `sg.${b}`, { sgId: c });
  } else if (a === 'sg' && (b === 'add' || b === 'remove') && c && d) {
    result = await adminCall(ep, `sg.${b}`, { sgId: c, pne: d });
  } else {
    throw new UsageError(USAGE);
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}
