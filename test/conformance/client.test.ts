import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { pollUntil } from '../../conformance/backend.ts';
import {
  ByteAccumulator,
  describeBytes,
  WIRE_HEX_LIMIT,
  WireClient,
  WireLog,
  WriteProgress,
} from '../../conformance/client.ts';
import { TEST_CERT_PEM } from '../../conformance/suite.cfg.ts';

/** Servers, their connections and clients a test opened; each test's afterEach closes them. */
const servers: Server[] = [];
const accepted: Socket[] = [];
const clients: WireClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of accepted.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** Starts <server> on 127.0.0.1 and resolves with its port. */
function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on('connection', (socket: Socket) => accepted.push(socket));
  server.on('secureConnection', (socket: Socket) => accepted.push(socket));
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

async function open(port: number, log = new WireLog()): Promise<WireClient> {
  const client = await WireClient.open(log, 'client#1', '127.0.0.1', port, 2000);
  clients.push(client);
  return client;
}

/**
 * What the server of the kernel-read tests writes: twice what the two kernels hold for a client
 * that reads nothing (its receive buffer, and the server's send buffer up to tcp_wmem's maximum,
 * 4 MiB here), so that some of it is still the server's own when it closes.
 */
const SERVER_WRITE = 8 << 20;

describe('the wire-log client', () => {
  it('records connect, each write and read with its bytes, and the FIN the server sends', async () => {
    const port = await listen(
      createServer((socket) => {
        socket.once('data', (chunk) => socket.end(chunk));
      }),
    );
    const client = await open(port);
    await client.write('abc');
    expect(await client.waitForBytes(3, 1000)).toBe(true);
    const closed = await client.waitForClose(1000);
    expect(closed?.kind).toBe('fin');
    expect(client.received.toString()).toBe('abc');
    const kinds = client.log.events.map((e) => e.kind);
    expect(kinds.slice(0, 4)).toEqual(['connect', 'connected', 'write', 'read']);
    expect(kinds).toContain('fin-received');
    expect(client.log.events.find((e) => e.kind === 'write')).toMatchObject({
      size: 3,
      hex: '616263',
      text: 'abc',
    });
    const times = client.log.events.map((e) => e.t);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('tells an RST from a FIN', async () => {
    const port = await listen(
      createServer((socket) => {
        socket.once('data', () => socket.resetAndDestroy());
      }),
    );
    const client = await open(port);
    const sentAt = client.log.now();
    await client.write('bad');
    const closed = await client.waitForClose(1000);
    expect(closed?.kind).toBe('rst');
    expect(closed!.at).toBeGreaterThanOrEqual(sentAt);
    expect(client.log.events.map((e) => e.kind)).toContain('rst-received');
  });

  it.each([
    ['resets', 'rst', (s: Socket) => s.resetAndDestroy()],
    ['closes', 'fin', (s: Socket) => s.destroy()],
  ] as const)(
    'reads from the kernel that the server %s the connection while it reads nothing (%s), and gets what the kernels held',
    async (_how, kind, close) => {
      let server: Socket | null = null;
      const port = await listen(
        createServer((socket) => {
          server = socket;
          socket.on('error', () => {});
          // More than a paused client's kernel takes: the rest waits in the server's.
          socket.write(Buffer.alloc(SERVER_WRITE, 0x62));
        }),
      );
      const client = await open(port);
      client.stopReading();
      let queued = 0;
      await pollUntil(
        () => {
          const now = client.queuedInKernel() ?? 0;
          const grew = now > queued;
          queued = now;
          return !grew && now > 0;
        },
        3000,
        10,
      );
      expect(queued).toBeGreaterThan(65536);
      expect(client.closeInKernel()).toBeNull();
      // Read again right before the close, in the same tick: the server's kernel may have taken
      // more of its write since the queues looked still (a 64 KiB write when the window opened),
      // and nothing can be written between this read and the close.
      queued = client.queuedInKernel() ?? 0;
      const held = client.heldUnread();
      close(server!);
      expect(await pollUntil(() => client.closeInKernel() === kind, 3000, 10)).toBe(true);
      expect(client.closedBy?.kind ?? null).toBe(kind === 'rst' ? 'rst' : null);
      client.resumeReading();
      if (kind === 'fin') {
        expect((await client.waitForClose(2000))?.kind).toBe('fin');
        // What the kernels held and the chunk Node read before it stopped. A byte received but
        // not yet acknowledged counts twice in the kernels' queues: about 66 KiB here, which is
        // why the lower bound allows 128 KiB. The rest of the server's write, never taken by its
        // kernel, was dropped.
        expect(client.received.length).toBeLessThanOrEqual(queued + held);
        expect(client.received.length).toBeGreaterThan(queued + held - 2 * 65536);
        expect(client.received.length).toBeLessThan(SERVER_WRITE);
      }
      expect(client.log.events.map((e) => e.kind)).toEqual(
        expect.arrayContaining(['read-stopped', 'read-resumed', `${kind}-received`]),
      );
    },
  );

  it('sends its own FIN with end() and its own RST with reset()', async () => {
    const seen: string[] = [];
    const port = await listen(
      createServer({ allowHalfOpen: true }, (socket: Socket) => {
        socket.on('end', () => seen.push('end'));
        socket.on('error', (err: NodeJS.ErrnoException) => seen.push(err.code ?? 'error'));
      }),
    );
    const first = await open(port);
    first.end();
    const second = await open(port);
    second.reset();
    const until = performance.now() + 1000;
    while (seen.length < 2 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(seen.sort()).toEqual(['ECONNRESET', 'end']);
    expect(first.log.events.map((e) => e.kind)).toContain('fin-sent');
    expect(second.log.events.map((e) => e.kind)).toContain('rst-sent');
  });

  it('runs TLS over the raw connection and logs both the ciphertext and the plaintext', async () => {
    const server = createTlsServer({ key: TEST_CERT_PEM, cert: TEST_CERT_PEM }, (socket: TLSSocket) => {
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('error', () => {});
    });
    const port = await listen(server);
    const client = await open(port);
    const tls = await client.startTls(2000);
    expect(tls.ok).toBe(true);
    await client.write('ping');
    expect(await client.waitForBytes(4, 1000)).toBe(true);
    expect(client.received.toString()).toBe('ping');
    const events = client.log.events;
    expect(events.map((e) => e.kind)).toEqual(
      expect.arrayContaining(['tls-start', 'tls-established', 'tls-write', 'tls-read']),
    );
    // The first raw write is the ClientHello: a TLS handshake record (content type 0x16).
    expect(events.find((e) => e.kind === 'write')?.hex?.startsWith('16')).toBe(true);
  });

  it('gives up waiting for a close after its bound and says the connection is still open', async () => {
    const port = await listen(createServer(() => {}));
    const client = await open(port);
    const started = performance.now();
    expect(await client.waitForClose(60)).toBeNull();
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('rejects a refused connection and logs it', async () => {
    const server = createServer();
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    servers.splice(servers.indexOf(server), 1);
    const log = new WireLog();
    await expect(WireClient.open(log, 'client#1', '127.0.0.1', port, 1000)).rejects.toThrow(/ECONNREFUSED/);
    expect(log.events.map((e) => e.kind)).toEqual(['connect', 'connect-error']);
  });
});

describe('ByteAccumulator', () => {
  it('keeps every byte appended, in order, whether read between the appends or only at the end', () => {
    const acc = new ByteAccumulator();
    const whole: number[] = [];
    for (let i = 0; i < 300; i++) {
      const chunk = Buffer.alloc((i * 37) % 5000, i & 0xff);
      acc.append(chunk);
      whole.push(...chunk);
      expect(acc.length).toBe(whole.length);
      if (i % 50 === 7) expect(acc.bytes().equals(Buffer.from(whole))).toBe(true);
    }
    expect(acc.bytes().equals(Buffer.from(whole))).toBe(true);
    expect(acc.bytes().equals(Buffer.from(whole))).toBe(true); // read twice, nothing appended
  });
});

describe('WriteProgress', () => {
  const K = 1024;
  function progressOf(samples: [number, number | null][]): WriteProgress {
    const p = new WriteProgress();
    for (const [t, q] of samples) p.add(t, q);
    return p;
  }

  it('finds the last poll at which the queued bytes grew by 16 KiB or more, and the poll before it', () => {
    const p = progressOf([
      [0, null],
      [5, 100 * K],
      [10, 900 * K],
      [15, 910 * K], // 10 KiB more: too little to count
      [20, 2000 * K],
      [25, 2000 * K],
    ]);
    expect(p.lastGrowth()).toEqual({ at: 20, since: 15 });
  });

  it('ignores a growth that a later sample takes back (bytes counted twice until their ACK)', () => {
    const p = progressOf([
      [0, 1000 * K],
      [5, 4082 * K],
      [200, 4111 * K], // received and not acknowledged yet: counted by both kernels
      [245, 4082 * K],
      [300, 4082 * K],
    ]);
    expect(p.lastGrowth()).toEqual({ at: 5, since: 0 });
  });

  it('counts a growth that stays, though the samples in between went higher', () => {
    const p = progressOf([
      [0, 1000 * K],
      [5, 1100 * K],
      [10, 1030 * K],
      [15, 1030 * K],
    ]);
    expect(p.lastGrowth()).toEqual({ at: 5, since: 0 });
  });

  it('reports no growth while every sample is under the step or unknown', () => {
    expect(
      progressOf([
        [0, null],
        [5, 10 * K],
        [10, null],
      ]).lastGrowth(),
    ).toBeNull();
    expect(new WriteProgress().lastGrowth()).toBeNull();
  });
});

describe('describeBytes', () => {
  it('keeps the size of every chunk but at most WIRE_HEX_LIMIT bytes of hex and text', () => {
    const big = new Uint8Array(WIRE_HEX_LIMIT + 10).fill(0x41);
    const d = describeBytes(big);
    expect(d.size).toBe(WIRE_HEX_LIMIT + 10);
    expect(d.hex).toHaveLength(2 * WIRE_HEX_LIMIT);
    expect(d.text).toHaveLength(WIRE_HEX_LIMIT);
  });

  it('shows non-printable bytes as dots', () => {
    expect(describeBytes(Uint8Array.of(0x0d, 0x0a, 0x50, 0x00))).toEqual({
      size: 4,
      hex: '0d0a5000',
      text: '..P.',
    });
  });

  it('shows DEL and every byte over 0x7f as dots, and reads a view from its offset', () => {
    const whole = Uint8Array.of(0x41, 0x20, 0x7e, 0x7f, 0x80, 0xe9, 0xff);
    expect(describeBytes(whole.subarray(1))).toEqual({ size: 6, hex: '207e7f80e9ff', text: ' ~....' });
  });
});
