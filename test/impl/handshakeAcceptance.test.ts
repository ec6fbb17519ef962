/**
 * Issue 5's real-socket acceptance, line by line, against the proxy run as a child process (one
 * per configuration, started together and reused across cases): strict accept-proxy, tolerant
 * accept-proxy (`proxy-tolerant`), and accept-proxy then TLS. Each configuration has its own
 * backend that records every connection and every byte it receives. (A PROXY header on a bind
 * without accept-proxy is data: test/impl/stream.test.ts.)
 *
 * In every case the pool ledger (`show pool`) shows that no session buffer (req, rep, txn) is
 * allocated before the handshake ends: the ledger is read while the connection is embryonic
 * (accepted, counted in CurrConns, its header not complete) and after a failed handshake. Only the
 * embryonic session and its task are allocated at accept, as the design says.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildV1, buildV2 } from '../../impl/proxy/build.ts';
import type { PoolLedger } from '../../impl/pool.ts';
import {
  CERT,
  client,
  expectSettled,
  numbers,
  proxyConfig,
  sleep,
  startEchoedProxy,
  stopEchoedProxy,
  waitFor,
  type Client,
  type EchoedProxy,
} from './harness.ts';

/** The handshake deadline (timeout client) of every configuration, in ms. */
const D = 200;

const config = (bind: string, backendPort: number) => (dir: string) =>
  proxyConfig(
    dir,
    `${D}ms`,
    `
frontend fe_acc
    bind 127.0.0.1:0 ${bind}
    maxconn 10
    default_backend be_rec

backend be_rec
    server rec1 127.0.0.1:${backendPort}
`,
  );

/** One configuration under test: its proxy, its echo backend (which records every byte) and its idle fd count. */
type Subject = EchoedProxy;

const startSubject = (bind: string): Promise<Subject> =>
  startEchoedProxy((echoPort) => config(bind, echoPort));

const stopSubject = (s: Subject | undefined): Promise<void> => stopEchoedProxy(s?.proxy, s?.echo);

/** Checks that everything a case opened is closed and freed: fds, gauges, pool, fd ledger. */
function settled(s: Subject): Promise<void> {
  return expectSettled(s.proxy, s.baseline, { noConnection: true, noLiveFd: true });
}

/** Allocation attempts at the session buffer sites (req, rep, txn), failed ones included. */
const bufferAttempts = (p: PoolLedger): number =>
  p.sites.req.attempts + p.sites.rep.attempts + p.sites.txn.attempts;

/** What a case compares before and after. */
interface Snapshot {
  stot: number; //      sessions completed by the frontend
  connTot: number; //   connections accepted by the frontend
  sessions: number; //  allocation attempts at the session site (one per embryonic session)
  buffers: number; //   allocation attempts at req, rep and txn
  connects: number; //  connections the backend accepted
}

async function snapshot(s: Subject): Promise<Snapshot> {
  const [stat, pool] = await Promise.all([s.proxy.stat(), s.proxy.pool()]);
  const fe = numbers(stat.get('fe_acc/FRONTEND'), 'stot', 'conn_tot');
  return {
    stot: fe.stot,
    connTot: fe.conn_tot,
    sessions: pool.sites.session.attempts,
    buffers: bufferAttempts(pool),
    connects: s.echo.accepted,
  };
}

/** The snapshot after one connection whose handshake failed: counted, never completed. */
const killed = (before: Snapshot): Snapshot => ({
  ...before,
  connTot: before.connTot + 1,
  sessions: before.sessions + 1,
});

/**
 * Connects a client and waits until the proxy holds its connection as embryonic (CurrConns 1),
 * then checks by the ledger that no buffer was allocated for it. Returns the client.
 */
async function embryonic(s: Subject, before: Snapshot): Promise<Client> {
  const c = client(s.proxy.port, { limitMs: D + 1500 });
  await c.connected;
  await waitFor('the connection to be accepted', async () =>
    (await s.proxy.info()).CurrConns === '1' ? true : undefined,
  );
  expect(bufferAttempts(await s.proxy.pool()), 'buffers allocated at accept').toBe(before.buffers);
  return c;
}

/** Expects no buffer allocated yet: the handshake has not ended. */
async function noBuffersYet(s: Subject, before: Snapshot, when: string): Promise<void> {
  expect(bufferAttempts(await s.proxy.pool()), `buffers allocated ${when}`).toBe(before.buffers);
}

/** Bytes after the header: text, a line that looks like a PROXY header, then every byte value. */
const DATA = Buffer.concat([
  Buffer.from('after the header\r\nPROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n'),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
]);

/** The headers that must complete a session, and the address the log must show for each. */
const HEADERS: [
  name: string,
  header: (port: number) => Uint8Array,
  logged: (c: Client, port: number) => string,
][] = [
  [
    'v1 TCP4',
    (port) =>
      buildV1({
        family: 'TCP4',
        source: { address: '10.1.2.3', port },
        destination: { address: '10.0.0.1', port: 443 },
      }),
    (_c, port) => `10.1.2.3:${port}`,
  ],
  [
    'v2 TCP4',
    (port) =>
      buildV2({
        family: 'TCP4',
        source: { address: '10.9.8.7', port },
        destination: { address: '10.0.0.1', port: 443 },
      }),
    (_c, port) => `10.9.8.7:${port}`,
  ],
  [
    'v2 LOCAL',
    () => buildV2({ command: 'LOCAL', family: 'UNSPEC' }),
    (c: Client) => `127.0.0.1:${c.localPort}`,
  ],
  ['v1 UNKNOWN', () => buildV1({ family: 'UNKNOWN' }), (c: Client) => `127.0.0.1:${c.localPort}`],
];

/** A v1 TCP4 header, for the cases that cut or corrupt one. */
const V1_SAMPLE = buildV1({
  family: 'TCP4',
  source: { address: '10.1.2.3', port: 40000 },
  destination: { address: '10.0.0.1', port: 443 },
});

/** A v2 TCP4 header with a CRC32c TLV whose last byte is flipped (§2.2.3). */
const V2_CRC_BAD = (() => {
  const h = Uint8Array.from(
    buildV2(
      {
        family: 'TCP4',
        source: { address: '10.1.2.3', port: 40000 },
        destination: { address: '10.0.0.1', port: 443 },
      },
      { crc32c: true },
    ),
  );
  h[h.length - 1]! ^= 0xff;
  return h;
})();

/**
 * Returns the ClientHello node:tls sends first, captured by a server on 127.0.0.1 that reads it
 * and closes. Owns and closes the server and both sockets.
 */
async function captureClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const hello = new Promise<Buffer>((resolve) =>
    server.once('connection', function captureOnConnection(s) {
      s.once('data', function captureOnData(d: Buffer) {
        resolve(Buffer.from(d));
        s.destroy();
      });
    }),
  );
  const t = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  t.on('error', () => t.destroy());
  const bytes = await hello;
  t.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return bytes;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let nextPort = 43000;

/**
 * Runs one connection whose handshake must succeed. `writes` are sent 20 ms apart; the header is
 * complete only after the first `headerWrites` of them, and the ledger is checked before each
 * write that the header still waits for. Checks that the backend is contacted once and receives
 * exactly `data`, that the client gets it back, that stot counts the session, that the buffers are
 * allocated once the handshake ended, and that the log shows the address `logged`.
 */
async function completes(
  s: Subject,
  writes: Uint8Array[],
  headerWrites: number,
  data: Buffer,
  logged: (c: Client) => string,
): Promise<void> {
  const before = await snapshot(s);
  const c = await embryonic(s, before);
  for (const [i, part] of writes.entries()) {
    if (i > 0) {
      await sleep(20);
      if (i < headerWrites) await noBuffersYet(s, before, `with ${i} of ${headerWrites} header writes sent`);
    }
    c.send(part);
  }
  await waitFor('the echo', () => (c.socket.bytesRead >= data.length ? true : undefined));
  c.socket.end();
  const o = await c.outcome;
  expect(o.how).toBe('fin');
  expect(Buffer.from(o.data, 'latin1').equals(data)).toBe(true);
  expect(s.echo.received.at(-1)!.equals(data)).toBe(true);
  // tcp mode: session_complete allocates req and rep, once, after the handshake.
  expect(await snapshot(s)).toEqual({
    stot: before.stot + 1,
    connTot: before.connTot + 1,
    sessions: before.sessions + 1,
    buffers: before.buffers + 2,
    connects: before.connects + 1,
  });
  const line = new RegExp(`^${escape(logged(c))} \\[.+\\] fe_acc be_rec/rec1 .* ${data.length} -- `);
  await waitFor('the tcplog line', () => (s.proxy.lines(line).length === 1 ? true : undefined));
}

/**
 * Runs one connection whose handshake must fail at once: `parts` written 40 ms apart until the
 * connection closes. Expects an RST within D/2 of the first write, the kill line `message`, and
 * no backend connection, no session completed (stot) and no buffer allocated.
 */
async function resetAtOnce(s: Subject, parts: Uint8Array[], message: string): Promise<void> {
  const before = await snapshot(s);
  const logged = s.proxy.lines(new RegExp(`fe_acc/1: ${escape(message)}$`)).length;
  const c = await embryonic(s, before);
  const sent = performance.now();
  for (const [i, part] of parts.entries()) {
    if (i > 0) await sleep(40);
    if (c.socket.destroyed) break;
    c.send(part);
  }
  const o = await c.outcome;
  expect(o.how).toBe('rst');
  expect(performance.now() - sent).toBeLessThan(D / 2);
  expect(await snapshot(s)).toEqual(killed(before));
  await waitFor('the kill line', () =>
    s.proxy.lines(new RegExp(`fe_acc/1: ${escape(message)}$`)).length === logged + 1 ? true : undefined,
  );
}

/**
 * Runs one connection that must time out at accept + D with a FIN, whatever `act` sends meanwhile.
 * Expects the kill line `message` and no backend connection, session or buffer.
 */
async function timesOut(
  s: Subject,
  act: (c: Client, before: Snapshot) => Promise<void>,
  message: string,
): Promise<void> {
  const before = await snapshot(s);
  const logged = s.proxy.lines(new RegExp(`fe_acc/1: ${escape(message)}$`)).length;
  const c = await embryonic(s, before);
  await act(c, before);
  const o = await c.outcome;
  expect(o.how).toBe('fin');
  expect(o.ms).toBeGreaterThanOrEqual(D - 15);
  expect(o.ms).toBeLessThan(D + 250); // accept + D, late by at most a loaded machine's 250 ms
  expect(await snapshot(s)).toEqual(killed(before));
  await waitFor('the kill line', () =>
    s.proxy.lines(new RegExp(`fe_acc/1: ${escape(message)}$`)).length === logged + 1 ? true : undefined,
  );
}

let strict: Subject;
let tolerant: Subject;
let tlsBind: Subject;

beforeAll(async () => {
  [strict, tolerant, tlsBind] = await Promise.all([
    startSubject('accept-proxy'),
    startSubject('accept-proxy proxy-tolerant'),
    startSubject(`accept-proxy ssl crt ${CERT}`),
  ]);
});

afterAll(async () => {
  await Promise.all([strict, tolerant, tlsBind].map(stopSubject));
});

describe('strict accept-proxy (HAProxy’s reading)', () => {
  afterEach(() => settled(strict));

  it('closes a silent client with a FIN at the deadline, without a backend connection or a buffer', async () => {
    await timesOut(strict, () => Promise.resolve(), 'Timeout while waiting for PROXY protocol header');
  });

  it.each([
    [
      'a malformed v1 header',
      [Buffer.from('PROXY TCP4 bad header\r\n')],
      'Received an invalid PROXY protocol header',
    ],
    ['a v2 header whose CRC32c does not match', [V2_CRC_BAD], 'Received an invalid PROXY protocol header'],
    [
      'bytes that are not a header',
      [Buffer.from('GET / HTTP/1.0\r\n\r\n')],
      'Received something which does not look like a PROXY protocol header',
    ],
    [
      'a header split over two writes',
      [V1_SAMPLE.subarray(0, 12), V1_SAMPLE.subarray(12)],
      'Truncated PROXY protocol header received',
    ],
  ])(
    'resets %s at once, without a backend connection, a session or a buffer',
    async (_name, parts, message) => {
      await resetAtOnce(strict, parts, message);
    },
  );

  it.each(HEADERS)(
    'forwards the data after a %s header intact, header and data in one write',
    async (_name, header, logged) => {
      const port = nextPort++;
      await completes(strict, [Buffer.concat([header(port), DATA])], 1, DATA, (c) => logged(c, port));
    },
  );

  it.each(HEADERS)(
    'forwards the data after a %s header intact, the data in several later writes',
    async (_name, header, logged) => {
      const port = nextPort++;
      const writes = [header(port), DATA.subarray(0, 5), DATA.subarray(5, 60), DATA.subarray(60)];
      await completes(strict, writes, 1, DATA, (c) => logged(c, port));
    },
  );
});

describe('tolerant accept-proxy (bind ... proxy-tolerant)', () => {
  afterEach(() => settled(tolerant));

  it.each(HEADERS)(
    'waits for a %s header split over several writes within the deadline and forwards the data after it intact',
    async (_name, header, logged) => {
      const port = nextPort++;
      const h = header(port);
      const a = Math.max(1, Math.floor(h.length / 3));
      const writes = [
        h.subarray(0, a),
        h.subarray(a, 2 * a),
        Buffer.concat([h.subarray(2 * a), DATA.subarray(0, 10)]),
        DATA.subarray(10),
      ];
      await completes(tolerant, writes, 3, DATA, (c) => logged(c, port));
    },
  );

  it('still closes a header that never completes with a FIN at accept + deadline', async () => {
    await timesOut(
      tolerant,
      async (c) => {
        c.send(V1_SAMPLE.subarray(0, 20));
      },
      'Timeout while waiting for PROXY protocol header',
    );
  });

  it('is not kept alive by a header that trickles in a byte at a time: it times out at accept + deadline', async () => {
    await timesOut(
      tolerant,
      async (c, before) => {
        for (let i = 0; i < 8; i++) {
          c.send(V1_SAMPLE.subarray(i, i + 1));
          await sleep(20);
        }
        await noBuffersYet(tolerant, before, 'with 8 bytes of the header sent');
      },
      'Timeout while waiting for PROXY protocol header',
    );
  });
});

describe('accept-proxy then TLS (ssl crt)', () => {
  afterEach(() => settled(tlsBind));

  it('allocates no buffer until the TLS handshake after the header ends, then forwards the decrypted data', async () => {
    const before = await snapshot(tlsBind);
    const c = await embryonic(tlsBind, before);
    c.send(V1_SAMPLE);
    await sleep(30);
    await noBuffersYet(tlsBind, before, 'after the header, before TLS');
    const t = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    await new Promise<void>((r) => t.once('secureConnect', () => r()));
    t.write(DATA);
    const got: Buffer[] = [];
    t.on('data', (d: Buffer) => got.push(d));
    await waitFor('the echo', () => (Buffer.concat(got).length >= DATA.length ? true : undefined));
    t.end();
    await c.outcome;
    expect(Buffer.concat(got).equals(DATA)).toBe(true);
    expect(tlsBind.echo.received.at(-1)!.equals(DATA)).toBe(true);
    expect(await snapshot(tlsBind)).toEqual({
      stot: before.stot + 1,
      connTot: before.connTot + 1,
      sessions: before.sessions + 1,
      buffers: before.buffers + 2,
      connects: before.connects + 1,
    });
  });

  it.each([
    ['nothing after it', new Uint8Array(0)],
    ['the first bytes of a TLS record', Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])],
  ])(
    'times out a PROXY header that arrives late, followed by %s, at accept + deadline (SSL_TIMEOUT)',
    async (_name, after) => {
      await timesOut(
        tlsBind,
        async (c, before) => {
          await sleep(D / 2);
          c.send(Buffer.concat([V1_SAMPLE, after]));
          await sleep(30);
          await noBuffersYet(tlsBind, before, 'after the late header');
        },
        'Timeout during SSL handshake',
      );
    },
  );

  it('closes TLS garbage after the header at once with a FIN (SSL handshake failure)', async () => {
    const before = await snapshot(tlsBind);
    const c = await embryonic(tlsBind, before);
    const sent = performance.now();
    c.send(Buffer.concat([V1_SAMPLE, Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(performance.now() - sent).toBeLessThan(D / 2);
    expect(await snapshot(tlsBind)).toEqual(killed(before));
    await waitFor('the kill line', () =>
      tlsBind.proxy.lines(/^10\.1\.2\.3:40000 \[.+\] fe_acc\/1: SSL handshake failure$/).length > 0
        ? true
        : undefined,
    );
  });

  it('resets a TLS ClientHello where the PROXY header is due (not a header) at once', async () => {
    await resetAtOnce(
      tlsBind,
      [await captureClientHello()],
      'Received something which does not look like a PROXY protocol header',
    );
  });
});
