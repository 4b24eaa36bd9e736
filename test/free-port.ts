/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the listener that found it is closed again), for a test that
 * must name a fixed port.
 *
 * Chosen at random below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), not
 * by listening on port 0: a port-0 port is one of the ephemeral ones, which any other test's port-0 listener or
 * outgoing connection may take between this check and the test's own listen (seen as a flaky EADDRINUSE while the
 * suite runs in parallel).
 */
import { createServer } from 'node:net';

const LOW = 20_000;
const HIGH = 32_767;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (await bindable(port)) return port;
  }
  throw new Error('no free TCP port found in 20000-32767');
}
