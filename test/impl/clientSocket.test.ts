/**
 * The take-over of an accepted socket (impl/clientSocket.ts), in this process: a listener with
 * pauseOnConnect, as the proxy's, and a client on loopback. What the fd is, the kernel says
 * (/proc/self/fd); what the client got, its own socket says. The proxy's use of it (the handshake
 * and the data phase reading through the shared area and the req buffer) is tested on the real
 * proxy by test/impl/stream.test.ts, test/impl/driver.test.ts and the conformance suite.
 */
import { readlinkSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptClientSocket } from '../../impl/clientSocket.ts';

/** What /proc/self/fd says `fd` is (`socket:[inode]`), or null when it is not open. */
function fdTarget(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/** The OS fd of a node:net socket (its handle's). */
function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Resolves once `p` settles or `ms` passed, with what came first. */
function within<T>(ms: number, p: Promise<T>): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);
}

interface Pair {
  server: net.Server;
  accepted: net.Socket;
  client: net.Socket;
}

const opened: Pair[] = [];
const adoptedSockets: net.Socket[] = [];

/** adoptClientSocket, with the result destroyed after the test. */
function adopt(accepted: net.Socket): net.Socket {
  const s = adoptClientSocket(accepted, 16384);
  adoptedSockets.push(s);
  return s;
}

/** A listener as the proxy's (pauseOnConnect, half-open) and one client connected to it. */
async function acceptOne(): Promise<Pair> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const accepted = await acceptedP;
  const pair = { server, accepted, client };
  opened.push(pair);
  return pair;
}

afterEach(async () => {
  for (const s of adoptedSockets.splice(0)) s.destroy();
  for (const p of opened.splice(0)) {
    p.client.destroy();
    p.accepted.destroy();
    await new Promise<void>((r) => p.server.close(() => r()));
  }
});

describe('adoptClientSocket', () => {
  it('leaves a socket that already holds bytes read by node:net untouched, since a take-over would drop them', async () => {
    const { accepted } = await acceptOne();
    accepted.unshift(Buffer.from('already read'));
    expect(adopt(accepted)).toBe(accepted);
    expect(accepted.read()?.toString()).toBe('already read');
  });

  it('gives the accepted connection and its fd to a new socket, which alone closes them', async () => {
    const { server, accepted, client } = await acceptOne();
    const fd = fdOf(accepted);
    const target = fdTarget(fd);
    expect(target).toMatch(/^socket:\[\d+\]$/);
    const adopted = adopt(accepted);
    expect(adopted).not.toBe(accepted);
    expect(fdOf(adopted)).toBe(fd);
    expect(adopted.remotePort).toBe(client.localPort);
    // The spent socket is destroyed without its handle: the fd is still the same socket.
    expect(accepted.destroyed).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(fdTarget(fd)).toBe(target);
    // The listener no longer counts it (its own count went back when the spent socket was destroyed).
    expect(await new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))))).toBe(0);
    // It writes, and its close is the client's FIN.
    const ended = new Promise<string>((r) => {
      let got = '';
      client.on('data', (d: Buffer) => (got += d.toString('latin1')));
      client.once('end', () => r(got));
    });
    adopted.end('bye');
    expect(await within(2000, ended)).toBe('bye');
    adopted.destroy();
    await new Promise((r) => setImmediate(r));
    expect(fdTarget(fd)).not.toBe(target);
  });

  it('leaves a socket it cannot take over as it is: one without a handle', async () => {
    const { accepted } = await acceptOne();
    accepted.destroy();
    expect(adopt(accepted)).toBe(accepted);
  });

  it('reads nothing for a socket that neither a handshake nor a stream reads, and stops reading it', async () => {
    const { accepted, client } = await acceptOne();
    const adopted = adopt(accepted);
    const chunks: Buffer[] = [];
    adopted.on('data', (d: Buffer) => chunks.push(d));
    adopted.resume();
    client.write('hello');
    await new Promise((r) => setTimeout(r, 100));
    expect(chunks).toEqual([]);
    const handle = (adopted as unknown as { _handle: { reading: boolean } })._handle;
    expect(handle.reading).toBe(false);
  });
});
