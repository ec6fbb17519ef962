/**
 * The handshakes on real sockets: the PROXY header (strict and tolerant reading) and TLS after it,
 * under the one deadline armed at accept. The proxy runs as a child process.
 */
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientHello, HALF_RECORD } from '../../conformance/client.ts';
import { firstRecordPending, TLS_RECORD_MAX } from '../../impl/handshake.ts';
import { buildV1, buildV2 } from '../../impl/proxy/build.ts';
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
  type Backend,
  type ProxyProcess,
} from './harness.ts';

const D = 300;

const config = (bindOptions: string, echoPort: number) => (dir: string) =>
  proxyConfig(
    dir,
    `${D}ms`,
    `
frontend fe_hs
    bind 127.0.0.1:0 accept-proxy ${bindOptions}
    maxconn 10
    default_backend be_echo

backend be_echo
    server echo1 127.0.0.1:${echoPort}
`,
  );

const tcp4 = (port: number) =>
  buildV1({
    family: 'TCP4',
    source: { address: '10.1.2.3', port },
    destination: { address: '10.0.0.1', port: 443 },
  });

/** Checks, after each scenario, that the fds are back to `baseline` and that nothing leaked. */
const settled = (proxy: ProxyProcess, baseline: number) =>
  expectSettled(proxy, baseline, { noConnection: true, noLiveFd: true });

describe('the first TLS record, read whole before OpenSSL gets the socket', () => {
  const record = (length: number, body: number) => [
    22,
    3,
    1,
    length >> 8,
    length & 255,
    ...Array<number>(body).fill(1),
  ];

  it('is pending until its 5-byte header and the length it announces are in', () => {
    expect(firstRecordPending(Uint8Array.from([]))).toBe(true);
    expect(firstRecordPending(Uint8Array.from([22, 3, 1, 1]))).toBe(true);
    expect(firstRecordPending(Uint8Array.from(record(300, 0)))).toBe(true);
    expect(firstRecordPending(Uint8Array.from(record(300, 299)))).toBe(true);
    expect(firstRecordPending(Uint8Array.from(record(300, 300)))).toBe(false);
    expect(firstRecordPending(Uint8Array.from(record(300, 400)))).toBe(false);
    // Fewer than 5 bytes of anything: OpenSSL reads a whole record header before it judges.
    expect(firstRecordPending(Buffer.from('GET'))).toBe(true);
  });

  it('goes to OpenSSL at once when its header is not a TLS handshake record, or announces more than OpenSSL takes', () => {
    expect(firstRecordPending(Buffer.from('GET / HTTP/1.0\r\n'))).toBe(false);
    expect(firstRecordPending(Uint8Array.from([23, 3, 3, 0, 10]))).toBe(false); // application data
    expect(firstRecordPending(Uint8Array.from([22, 2, 0, 0, 10]))).toBe(false); // not version 3.x
    expect(TLS_RECORD_MAX).toBe(16704);
    expect(firstRecordPending(Uint8Array.from(record(TLS_RECORD_MAX + 1, 0)))).toBe(false);
    expect(firstRecordPending(Uint8Array.from(record(TLS_RECORD_MAX, 0)))).toBe(true);
  });

  it('reads an SSLv2-format ClientHello to the length in its 2-byte header', () => {
    const v2 = (length: number, body: number) => [
      0x80 | (length >> 8),
      length & 255,
      1,
      3,
      1,
      ...Array<number>(body).fill(0),
    ];
    expect(firstRecordPending(Uint8Array.from(v2(46, 3)))).toBe(true);
    expect(firstRecordPending(Uint8Array.from(v2(46, 43)))).toBe(false);
    expect(firstRecordPending(Uint8Array.from([0x80, 46, 2, 3, 1]))).toBe(false); // not a CLIENT-HELLO
  });
});

describe('PROXY header then TLS (accept-proxy ssl crt)', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy((echoPort) => config(`ssl crt ${CERT}`, echoPort)));
  });
  afterEach(() => settled(proxy, baseline));
  afterAll(() => stopEchoedProxy(proxy, echo));

  it('completes TLS after the PROXY header and forwards the decrypted data', async () => {
    const before = numbers((await proxy.stat()).get('fe_hs/FRONTEND'), 'stot');
    const c = client(proxy.port, { first: tcp4(41000) });
    await c.connected;
    const t = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    await new Promise<void>((r) => t.once('secureConnect', () => r()));
    t.write('ping');
    const echoed = await new Promise<string>((r) => t.once('data', (d: Buffer) => r(d.toString())));
    expect(echoed).toBe('ping');
    t.end();
    await c.outcome;
    expect(numbers((await proxy.stat()).get('fe_hs/FRONTEND'), 'stot').stot).toBe(before.stot + 1);
    expect(proxy.lines(/^10\.1\.2\.3:41000 \[.+\] fe_hs~ be_echo\/echo1 /)).toHaveLength(1);
  });

  it('times out a PROXY header that arrives late at accept time plus the deadline, not header time', async () => {
    const c = client(proxy.port);
    await c.connected;
    await sleep(200);
    c.send(tcp4(41001));
    const pool = await proxy.pool();
    expect(pool.sites.req.attempts).toBe(1); // only the first scenario's session drew buffers
    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(o.ms).toBeGreaterThanOrEqual(D - 15);
    expect(o.ms).toBeLessThan(D + 150);
    // The header was read: the log names its source, and the pending handshake was TLS.
    expect(proxy.lines(/^10\.1\.2\.3:41001 \[.+\] fe_hs\/1: Timeout during SSL handshake$/)).toHaveLength(1);
  });

  it('closes TLS garbage after the header with a FIN and "SSL handshake failure"', async () => {
    const o = await client(proxy.port, {
      first: Buffer.concat([tcp4(41002), Buffer.from('GET / HTTP/1.0\r\n\r\n')]),
    }).outcome;
    expect(o.how).toBe('fin');
    // Closed by the failure, not by the deadline: a deadline kill would log "Timeout during SSL
    // handshake". (No wall-clock bound: under a loaded machine the TLS failure itself can be slow.)
    expect(proxy.lines(/^10\.1\.2\.3:41002 \[.+\] fe_hs\/1: SSL handshake failure$/)).toHaveLength(1);
    expect((await proxy.pool()).sites.req.attempts).toBe(1);
  });

  it('logs an SSL handshake failure for a client that closes within its ClientHello record, and a close for one that sent none', async () => {
    for (const [port, after] of [
      [41004, HALF_RECORD],
      [41005, new Uint8Array(0)],
    ] as const) {
      const c = client(proxy.port, { first: Buffer.concat([tcp4(port), after]) });
      await c.connected;
      await sleep(30);
      c.socket.end();
      const o = await c.outcome;
      expect(o.how).toBe('fin');
      expect(o.ms).toBeLessThan(D / 2);
    }
    expect(proxy.lines(/^10\.1\.2\.3:41004 \[.+\] fe_hs\/1: SSL handshake failure$/)).toHaveLength(1);
    expect(
      proxy.lines(/^10\.1\.2\.3:41005 \[.+\] fe_hs\/1: Connection closed during SSL handshake$/),
    ).toHaveLength(1);
  });

  it('gives OpenSSL a ClientHello sent in pieces whole: the server answers it, and a close after it is a close', async () => {
    const hello = await clientHello();
    const c = client(proxy.port, { first: tcp4(41008) });
    await c.connected;
    const received: Buffer[] = [];
    c.socket.on('data', (d: string | Buffer) => received.push(Buffer.from(d as string, 'latin1')));
    for (let at = 0; at < hello.length; at += 37) {
      c.send(hello.subarray(at, at + 37));
      await sleep(5);
    }
    await waitFor('the ServerHello', () => (received.length > 0 ? true : undefined));
    expect(received[0]![0]).toBe(22); // a handshake record: OpenSSL parsed the ClientHello
    c.socket.end();
    expect((await c.outcome).how).toBe('fin');
    expect(
      proxy.lines(/^10\.1\.2\.3:41008 \[.+\] fe_hs\/1: Connection closed during SSL handshake$/),
    ).toHaveLength(1);
  });

  it('answers at once a first record longer than OpenSSL takes: SSL handshake failure', async () => {
    const header = (length: number) => Uint8Array.from([22, 3, 1, length >> 8, length & 255, 1]);
    const o = await client(proxy.port, {
      first: Buffer.concat([tcp4(41006), header(TLS_RECORD_MAX + 1)]),
    }).outcome;
    expect(o.ms).toBeLessThan(D / 2); // OpenSSL's alert and the close, long before the deadline
    expect(proxy.lines(/^10\.1\.2\.3:41006 \[.+\] fe_hs\/1: SSL handshake failure$/)).toHaveLength(1);
    // At the limit itself OpenSSL waits for the record, as the pre-read does: the deadline ends it.
    const c = client(proxy.port, { first: Buffer.concat([tcp4(41007), header(TLS_RECORD_MAX)]) });
    expect((await c.outcome).ms).toBeGreaterThanOrEqual(D - 20);
  });

  it('resets a header split over two writes in strict mode (PRX_TRUNCATED)', async () => {
    const header = tcp4(41003);
    const c = client(proxy.port, { first: header.subarray(0, 12) });
    await c.connected;
    await sleep(50);
    if (!c.socket.destroyed) c.send(header.subarray(12));
    const o = await c.outcome;
    expect(o.how).toBe('rst');
    expect(o.ms).toBeLessThan(D / 2);
    expect(proxy.lines(/fe_hs\/1: Truncated PROXY protocol header received$/)).toHaveLength(1);
  });
});

describe('a close during TLS in the 2.6 profile (OpenSSL 1.1 and later: SSL_get_state)', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy(
      (echoPort) => config(`ssl crt ${CERT}`, echoPort),
      ['--profile', '2.6'],
    ));
  });
  afterEach(() => settled(proxy, baseline));
  afterAll(() => stopEchoedProxy(proxy, echo));

  it('logs SSL handshake failure after a whole ClientHello, a close within it as a close, and every reset as a failure', async () => {
    const hello = await clientHello();
    for (const [port, after, how] of [
      [41101, hello, 'fin'],
      [41102, HALF_RECORD, 'fin'],
      [41103, HALF_RECORD, 'rst'],
    ] as const) {
      const c = client(proxy.port, { first: Buffer.concat([tcp4(port), after]) });
      await c.connected;
      await sleep(50);
      if (how === 'fin') c.socket.end();
      else c.socket.resetAndDestroy();
      await c.outcome.catch(() => undefined);
    }
    await waitFor('three kill lines', () => (proxy.lines(/fe_hs\/1: /).length >= 3 ? true : undefined));
    expect(proxy.lines(/^10\.1\.2\.3:41101 \[.+\] fe_hs\/1: SSL handshake failure$/)).toHaveLength(1);
    expect(
      proxy.lines(/^10\.1\.2\.3:41102 \[.+\] fe_hs\/1: Connection closed during SSL handshake$/),
    ).toHaveLength(1);
    expect(proxy.lines(/^10\.1\.2\.3:41103 \[.+\] fe_hs\/1: SSL handshake failure$/)).toHaveLength(1);
  });
});

describe('a PROXY v2 TLV over 1024 bytes in the 2.9 profile (HA_PP2_MAX_ALLOC, fecc573da)', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy(
      (echoPort) => config('', echoPort),
      ['--profile', '2.9'],
    ));
  });
  afterEach(() => settled(proxy, baseline));
  afterAll(() => stopEchoedProxy(proxy, echo));

  /** A v2 TCP4 header from 10.9.8.7:<port> with one custom TLV of <size> bytes. */
  const withTlv = (port: number, size: number) =>
    buildV2({
      family: 'TCP4',
      source: { address: '10.9.8.7', port },
      destination: { address: '10.0.0.1', port: 80 },
      tlvs: [{ type: 0xe5, value: new Uint8Array(size).fill(1) }],
    });

  it('kills the embryonic session with no error code (logged "Success") and an RST, its addresses taken', async () => {
    const c = client(proxy.port, { first: withTlv(43001, 1025) });
    const o = await c.outcome;
    expect(o.how).toBe('rst');
    await waitFor('the kill line', () => (proxy.lines(/fe_hs\/1: /).length > 0 ? true : undefined));
    expect(proxy.lines(/^10\.9\.8\.7:43001 \[.+\] fe_hs\/1: Success$/)).toHaveLength(1);
    expect(echo.accepted).toBe(0);
  });

  it('forwards the one byte sent in the same write as the header', async () => {
    const c = client(proxy.port, { first: Buffer.concat([tcp4(43003), Buffer.from('x')]) });
    await waitFor('the echo', () => (c.socket.bytesRead >= 1 ? true : undefined));
    c.socket.end();
    expect((await c.outcome).data).toBe('x');
  });

  it('forwards a header whose TLV holds 1024 bytes', async () => {
    const c = client(proxy.port, { first: Buffer.concat([withTlv(43002, 1024), Buffer.from('data')]) });
    await waitFor('the echo', () => (c.socket.bytesRead >= 4 ? true : undefined));
    c.socket.end();
    expect((await c.outcome).data).toBe('data');
  });
});

describe('tolerant PROXY reading (accept-proxy proxy-tolerant)', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy((echoPort) => config('proxy-tolerant', echoPort)));
  });
  afterEach(() => settled(proxy, baseline));
  afterAll(() => stopEchoedProxy(proxy, echo));

  /** Sends `parts` 30 ms apart and returns what came back once `expected` bytes did. */
  async function exchange(parts: Uint8Array[], expected: number): Promise<string> {
    const c = client(proxy.port);
    await c.connected;
    for (const p of parts) {
      c.send(p);
      await sleep(30);
    }
    await waitFor('the echo', () => (c.socket.bytesRead >= expected ? true : undefined));
    c.socket.end();
    return (await c.outcome).data;
  }

  it('waits for a header split over several writes and forwards what follows it untouched', async () => {
    const header = tcp4(42000);
    const data = Buffer.from('after the header');
    const got = await exchange(
      [header.subarray(0, 7), header.subarray(7, 20), Buffer.concat([header.subarray(20), data])],
      data.length,
    );
    expect(got).toBe('after the header');
    expect(proxy.lines(/^10\.1\.2\.3:42000 .* 16 -- /)).toHaveLength(1);
  });

  it.each([
    [
      'v2 TCP4',
      buildV2({
        family: 'TCP4',
        source: { address: '10.9.8.7', port: 42001 },
        destination: { address: '10.0.0.1', port: 80 },
      }),
      '10.9.8.7:42001',
    ],
    ['v2 LOCAL', buildV2({ command: 'LOCAL', family: 'UNSPEC' }), '127.0.0.1:'],
    ['v1 UNKNOWN', buildV1({ family: 'UNKNOWN' }), '127.0.0.1:'],
  ])('forwards the data after a %s header, header and data in one write', async (_name, header, logged) => {
    const got = await exchange([Buffer.concat([header, Buffer.from('payload')])], 7);
    expect(got).toBe('payload');
    expect(
      proxy.lines(new RegExp(`^${logged.replace(/\./g, '\\.')}\\d* \\[.+\\] fe_hs be_echo/echo1 .* 7 -- `))
        .length,
    ).toBeGreaterThan(0);
  });

  it('kills a header the client closes half-way (PRX_TRUNCATED at EOF) with an RST', async () => {
    const c = client(proxy.port, { first: tcp4(42002).subarray(0, 20) });
    await c.connected;
    await sleep(30);
    c.socket.end();
    const o = await c.outcome;
    expect(o.how).toBe('rst');
    expect(proxy.lines(/fe_hs\/1: Truncated PROXY protocol header received$/)).toHaveLength(1);
  });
});
