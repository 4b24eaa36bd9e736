import { afterEach, describe, expect, it } from 'vitest';
import { isTransportError } from '../../src/transport/errors.js';
import { BroadcastMedium, MAX_DATAGRAM } from '../../src/transport/udp.js';
import { waitFor } from './fixtures.js';

const opened: BroadcastMedium[] = [];
afterEach(() => {
  for (const m of opened.splice(0)) m.close();
});

async function open(name: string, group: string, port: number, listen = true): Promise<BroadcastMedium> {
  const m = await BroadcastMedium.open({ name, group, port, listen });
  opened.push(m);
  return m;
}

// A port per run, so parallel runs on one host do not hear each other.
const PORT = 40000 + Math.floor(Math.random() * 20000);

describe('UDP multicast broadcast medium on loopback', () => {
  it('two listeners on the same group both receive; a listener on another group does not', async () => {
    const wifiA = await open('wifi', '239.255.77.1', PORT);
    const wifiB = await open('wifi', '239.255.77.1', PORT);
    const bt = await open('bt', '239.255.77.2', PORT);
    const gw = await open('wifi', '239.255.77.1', PORT, false);
    const heardOnBt: Buffer[] = [];
    bt.on('datagram', (d: Buffer) => heardOnBt.push(d));
    const a = waitFor<Buffer>(wifiA, 'datagram');
    const b = waitFor<Buffer>(wifiB, 'datagram');
    const payload = Buffer.alloc(MAX_DATAGRAM, 0x42);
    await gw.send(payload);
    expect((await a)[0]!.equals(payload)).toBe(true);
    expect((await b)[0]!.equals(payload)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(heardOnBt).toHaveLength(0);
  });

  it('refuses datagrams over 1200 bytes before sending', async () => {
    const gw = await open('wifi', '239.255.77.3', PORT + 1, false);
    await expect(gw.send(Buffer.alloc(MAX_DATAGRAM + 1))).rejects.toSatisfy((e) =>
      isTransportError(e, 'DATAGRAM_TOO_LARGE'),
    );
  });

  it('refuses a non-multicast group', async () => {
    await expect(BroadcastMedium.open({ name: 'x', group: '127.0.0.1', port: PORT })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'group',
    });
  });
});
