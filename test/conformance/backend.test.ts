import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EchoBackend } from '../../conformance/backend.ts';
import { WireLog } from '../../conformance/client.ts';

const backends: EchoBackend[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(backends.splice(0).map((b) => b.stop()));
});

async function start(): Promise<EchoBackend> {
  const backend = await EchoBackend.start('127.0.0.1', 0);
  backends.push(backend);
  return backend;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
    sockets.push(socket);
  });
}

describe('the echo backend', () => {
  it('echoes and records when each connection came, its bytes and the FIN that ended it', async () => {
    const backend = await start();
    const log = new WireLog();
    backend.attach(log);
    const socket = await dial(backend.port);
    const echoed = new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString())));
    socket.write('hello');
    expect(await echoed).toBe('hello');
    socket.end();
    expect(await backend.waitIdle(1000)).toBe(true);
    const [conn] = backend.connections();
    expect(conn).toMatchObject({ name: 'backend#1', closedBy: 'fin' });
    expect(conn!.bytes.toString()).toBe('hello');
    expect(conn!.firstByteAt!).toBeGreaterThanOrEqual(conn!.acceptedAt);
    expect(log.events.map((e) => `${e.conn} ${e.kind}`)).toEqual([
      'backend#1 accepted',
      'backend#1 read',
      'backend#1 write',
      'backend#1 fin-received',
    ]);
  });

  it('starts a fresh list of connections for each case', async () => {
    const backend = await start();
    backend.attach(new WireLog());
    await dial(backend.port);
    expect(await backend.waitForConnections(1, 1000)).toBe(true);
    backend.attach(new WireLog());
    expect(backend.connections()).toEqual([]);
    expect(await backend.waitForConnections(1, 50)).toBe(false);
  });

  it('destroys the connections it still holds when stopped', async () => {
    const backend = await start();
    backend.attach(new WireLog());
    const socket = await dial(backend.port);
    await backend.waitForConnections(1, 1000);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    await backend.stop();
    await closed;
    expect(backend.openCount()).toBe(0);
  });

  it('refuses a port that is taken', async () => {
    const first = await start();
    await expect(EchoBackend.start('127.0.0.1', first.port)).rejects.toThrow(/EADDRINUSE/);
  });
});
