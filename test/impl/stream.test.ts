/**
 * The data phase on real sockets: backends that refuse or reset, timeouts, and a frontend without
 * accept-proxy, where a PROXY header is data. The proxy runs as a child process; its backend has
 * three servers taken in turn (round robin): one refuses, one resets, one echoes. Then a client
 * that does not read while the server sends: a server reset still ends with a FIN after the bytes
 * read, and the client's write timeout ends it as each profile does (an RST under dev12, a FIN under
 * 2.x), never a server timeout. Then a read timeout, which shuts one side's read only, against a
 * server that never answers, and how each profile closes a server that did not close first. Last, a
 * direction's channel buffer without sockets (directionForTests): the orders of reads and writes
 * that a loopback run reaches too rarely to test.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tcpRowOf } from '../../conformance/client.ts';
import type { Conn } from '../../impl/driver.ts';
import type { PoolItem } from '../../impl/pool.ts';
import { directionForTests } from '../../impl/stream.ts';
import {
  CERT,
  client,
  expectSettled,
  idleFds,
  numbers,
  proxyConfig,
  refusedPort,
  sleep,
  stalledPort,
  startBackend,
  startProxyProcess,
  streamBytes,
  waitFor,
  writeUntilStalled,
  type Backend,
  type ProxyProcess,
  type StalledPort,
} from './harness.ts';

const CLIENT_TIMEOUT = 400;
const PP_HEADER = 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\n';

describe('the data phase (no handshake, tcp)', () => {
  let reset: Backend;
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    reset = await startBackend('reset');
    echo = await startBackend('echo');
    const refused = await refusedPort();
    proxy = await startProxyProcess((dir) =>
      proxyConfig(
        dir,
        `${CLIENT_TIMEOUT}ms`,
        `
frontend fe_plain
    bind 127.0.0.1:0
    maxconn 10
    default_backend be_three

backend be_three
    server refusing 127.0.0.1:${refused}
    server resetting 127.0.0.1:${reset.port}
    server echoing 127.0.0.1:${echo.port}
`,
      ),
    );
    baseline = await idleFds(proxy);
  });

  afterEach(() => expectSettled(proxy, baseline));

  afterAll(async () => {
    await proxy?.stop();
    await reset?.close();
    await echo?.close();
  });

  it('closes the client with a FIN when the server refuses the connection, counting econ', async () => {
    // The client sends nothing: bytes it sent that the proxy had not read yet would turn the
    // close into an RST (the kernel's rule), which depends on which of the two arrives first.
    const o = await client(proxy.port).outcome;
    expect(o).toMatchObject({ how: 'fin', data: '' });
    expect(o.ms).toBeLessThan(200);
    const stat = await proxy.stat();
    expect(numbers(stat.get('be_three/refusing'), 'econ', 'stot', 'scur')).toEqual({
      econ: 1,
      stot: 1,
      scur: 0,
    });
    expect(numbers(stat.get('fe_plain/FRONTEND'), 'stot', 'scur')).toEqual({ stot: 1, scur: 0 });
    expect(proxy.lines(/ fe_plain be_three\/refusing \d+\/-1\/\d+ 0 SC /)).toHaveLength(1);
  });

  it('closes the client with a FIN when the server resets the connection, counting srv_abrt', async () => {
    const o = await client(proxy.port, { first: 'hello' }).outcome;
    expect(o).toMatchObject({ how: 'fin', data: '' });
    expect(reset.accepted).toBe(1);
    expect(numbers((await proxy.stat()).get('be_three/resetting'), 'srv_abrt', 'stot')).toEqual({
      srv_abrt: 1,
      stot: 1,
    });
    expect(proxy.lines(/ fe_plain be_three\/resetting \d+\/\d+\/\d+ 0 SD /)).toHaveLength(1);
  });

  it('forwards a PROXY header as data on a bind without accept-proxy, never trusting it', async () => {
    const bytes = 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\nhello';
    const c = client(proxy.port, { first: bytes });
    await waitFor('the echo', () => (c.socket.bytesRead >= bytes.length ? true : undefined));
    c.socket.end();
    expect(await c.outcome).toMatchObject({ how: 'fin', data: bytes });
    // The session's address is the real one, not the header's.
    expect(
      proxy.lines(
        new RegExp(
          `^127\\.0\\.0\\.1:${c.localPort} \\[.+\\] fe_plain be_three/echoing .* ${bytes.length} -- `,
        ),
      ),
    ).toHaveLength(1);
    expect(proxy.lines(/^10\.1\.2\.3/)).toEqual([]);
  });

  it('ends an idle session at timeout client in the data phase (cD)', async () => {
    await client(proxy.port, { first: 'refused' }).outcome; // the refusing server's turn
    await client(proxy.port, { first: 'reset' }).outcome; // the resetting server's turn
    const c = client(proxy.port, { first: 'idle' });
    await waitFor('the echo', () => (c.socket.bytesRead >= 4 ? true : undefined));
    const o = await c.outcome;
    expect(o).toMatchObject({ how: 'fin', data: 'idle' });
    expect(o.ms).toBeGreaterThanOrEqual(CLIENT_TIMEOUT - 15);
    expect(o.ms).toBeLessThan(CLIENT_TIMEOUT + 200);
    expect(numbers((await proxy.stat()).get('be_three/echoing'), 'cli_abrt').cli_abrt).toBe(1);
    expect(proxy.lines(/ fe_plain be_three\/echoing .* 4 cD /)).toHaveLength(1);
  });

  it('moves more than tune.bufsize bytes through the session buffers intact', async () => {
    await client(proxy.port, { first: 'refused' }).outcome;
    await client(proxy.port, { first: 'reset' }).outcome;
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
    const c = client(proxy.port, { first: big, limitMs: 5000 });
    await waitFor('the echo', () => (c.socket.bytesRead >= big.length ? true : undefined), 4000);
    c.socket.end();
    const o = await c.outcome;
    expect(Buffer.from(o.data, 'latin1').equals(big)).toBe(true);
    const pool = await proxy.pool();
    expect(pool.bufsize).toBe(16384);
    expect(pool.sites.req.maxLive).toBe(1);
  });
});

/** The offset of the first byte where <a> and <b> differ, -1 if they are equal. Pure. */
function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Resolves with what <p> resolves with, or with 'timeout' when <ms> passed first. <p> must not reject. */
function within<T>(ms: number, p: Promise<T>): Promise<T | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/**
 * The client sides of the backpressure test. accept-proxy is tcp whose first write holds the PROXY
 * header and the first 64 KiB of data: the bytes read with the header reach the req buffer before
 * the client's next reads do.
 */
const PUSH_TRANSPORTS = ['tcp', 'tls', 'accept-proxy'] as const;

describe.each(PUSH_TRANSPORTS)('the data phase under backpressure (%s)', (transport) => {
  // The client writes until the path stalls (no 'drain' within STALL_MS), then AFTER_STALL more
  // bytes while it reads. How much the path holds is the kernel's to say: the four sockets' buffers
  // grow with what moves through them (17-22 MiB in runs on this kind of machine, and tcp_rmem
  // lets each receive buffer reach 32 MiB), so the test does not guess a size. A path that never
  // stalls before CAP fails the test: it cannot pass without the stall it is about.
  const CAP = 256 * 1024 * 1024;
  const AFTER_STALL = 4 * 1024 * 1024;
  const STALL_MS = 300;
  let echoServer: net.Server;
  let echoPort: number;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    // An echo server that only pipes (the harness's echo keeps a copy of everything it reads).
    echoServer = net.createServer({ allowHalfOpen: true }, function echoOnConnection(s) {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    await new Promise<void>((r) => echoServer.listen(0, '127.0.0.1', r));
    echoPort = (echoServer.address() as net.AddressInfo).port;
    proxy = await startProxyProcess((dir) =>
      proxyConfig(
        dir,
        '10s',
        `
frontend fe_push
    bind 127.0.0.1:0${{ tcp: '', tls: ` ssl crt ${CERT}`, 'accept-proxy': ' accept-proxy' }[transport]}
    maxconn 10
    default_backend be_echo

backend be_echo
    server echoing 127.0.0.1:${echoPort}
`,
      ),
    );
    baseline = await idleFds(proxy);
  });

  afterEach(() => expectSettled(proxy, baseline));

  afterAll(async () => {
    await proxy?.stop();
    await new Promise<void>((r) => (echoServer ? echoServer.close(() => r()) : r()));
  });

  it('keeps every byte in order when the client stops reading and both directions must wait for their writes', async () => {
    const chunks: Buffer[] = [];
    let stalledAt = -1;
    const socket =
      transport === 'tls'
        ? tls.connect({ host: '127.0.0.1', port: proxy.port, rejectUnauthorized: false })
        : net.connect({ host: '127.0.0.1', port: proxy.port });
    socket.pause(); // the client reads nothing until the whole path has stalled
    socket.on('data', function clientOnData(d: Buffer) {
      chunks.push(d);
    });
    const ended = new Promise<string>((resolve) => {
      socket.once('end', () => resolve('ended'));
      socket.once('error', (err) => resolve(`error: ${err.message}`));
    });
    await new Promise<void>((r) => socket.once(transport === 'tls' ? 'secureConnect' : 'connect', r));
    let written = 0;
    let drained = true;
    while (drained && written < (stalledAt < 0 ? CAP : stalledAt + AFTER_STALL)) {
      const chunk = streamBytes(written, 65536);
      const first = written === 0 && transport === 'accept-proxy';
      written += chunk.length;
      if (socket.write(first ? Buffer.concat([Buffer.from(PP_HEADER), chunk]) : chunk)) continue;
      const drain = new Promise<void>((r) => socket.once('drain', r));
      if ((await within(STALL_MS, drain)) !== 'timeout') continue;
      if (stalledAt < 0) {
        stalledAt = written;
        socket.resume();
      }
      drained = (await within(5000, drain)) !== 'timeout';
    }
    socket.end();
    socket.resume();
    const outcome = await within(8000, ended);
    socket.destroy();
    const got = Buffer.concat(chunks);
    expect({ outcome, drained, received: got.length }).toEqual({
      outcome: 'ended',
      drained: true,
      received: written,
    });
    // The path stalled: the proxy waited for its writes instead of keeping in memory what the
    // client did not take.
    expect(stalledAt).toBeGreaterThan(0);
    expect(firstDifference(got, streamBytes(0, written)), 'the offset of the first byte received wrong').toBe(
      -1,
    );
    const pool = await proxy.pool();
    expect(pool.sites.req.maxLive).toBe(1);
    expect(pool.sites.rep.maxLive).toBe(1);
    // The server's bytes are read straight into the rep buffer; a plain bind's client's into the
    // req buffer (impl/clientSocket.ts), a TLS client's by node:net, then copied.
    expect(pool.reads.rep).toBeGreaterThan(0);
    if (transport === 'tls') expect(pool.reads).toMatchObject({ req: 0, area: 0 });
    else expect(pool.reads.req).toBeGreaterThan(written / 16384 / 2);
  }, 20_000);
});

describe('a client that aborts while its server connection is pending', () => {
  let stalled: StalledPort;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    stalled = await stalledPort();
    proxy = await startProxyProcess((dir) =>
      proxyConfig(
        dir,
        `${CLIENT_TIMEOUT}ms`,
        `
frontend fe_stall
    bind 127.0.0.1:0
    maxconn 10
    default_backend be_stall

backend be_stall
    server stalled 127.0.0.1:${stalled.port}
`,
      ),
    );
    baseline = await idleFds(proxy);
  });

  afterAll(async () => {
    await proxy?.stop();
    await stalled?.stop();
  });

  it('logs CC, a client abort while the proxy waited for the connection, and releases everything', async () => {
    const c = client(proxy.port, { first: 'hello' });
    await c.connected;
    await sleep(200); // the proxy's connect to the stalled server is pending
    c.socket.resetAndDestroy();
    await waitFor('the log line', () =>
      proxy.lines(/ fe_stall be_stall\/stalled /).length > 0 ? true : undefined,
    );
    expect(proxy.lines(/ fe_stall be_stall\/stalled \d+\/-1\/\d+ 0 CC /)).toHaveLength(1);
    await expectSettled(proxy, baseline);
  });

  it('logs cC for a client whose read deadline passes while the connection is pending, and closes it at timeout connect', async () => {
    const c = client(proxy.port);
    const o = await c.outcome;
    // Its read is shut at timeout client; the close waits for the connect's own timeout (1 s).
    expect(o).toMatchObject({ how: 'fin', data: '' });
    expect(o.ms).toBeGreaterThanOrEqual(1000 - 15);
    const mine = new RegExp(`^127\\.0\\.0\\.1:${c.localPort} .* fe_stall be_stall/stalled `);
    const line = await waitFor('the log line', () => proxy.lines(mine)[0]);
    expect(line).toMatch(/ \d+\/-1\/\d+ 0 cC /);
    await expectSettled(proxy, baseline);
  });
});

/** How long a write of a flooding backend may wait for its drain before the path counts as stalled. */
const STALL_MS = 200;
/** The most a flooding backend sends: the path stalls well before (about 8 MiB on loopback here). */
const MAX_SENT = 32 * 1024 * 1024;

/**
 * Writes the byte stream (streamBytes) on `s` until a write waits more than STALL_MS for its drain:
 * the proxy stopped reading the server, its last write to the client still queued. Returns how much
 * it wrote.
 */
async function floodUntilStalled(s: net.Socket): Promise<number> {
  const { written, stalled } = await writeUntilStalled(s, STALL_MS, MAX_SENT);
  if (!stalled) throw new Error(`the path to the client never stalled within ${MAX_SENT} bytes`);
  return written;
}

/**
 * Goes on writing the byte stream on `s` from <from> at each drain until `s` is closed, so that the
 * proxy always has bytes for the client: its write to the client stays queued (were the server to
 * stop sending, the proxy could drain what it read and wait on a read instead).
 */
function keepFlooding(s: net.Socket, from: number): void {
  let written = from;
  const more = function floodOnDrain(): void {
    while (written < MAX_SENT && !s.destroyed) {
      const chunk = streamBytes(written, 65536);
      written += chunk.length;
      if (!s.write(chunk)) {
        s.once('drain', more);
        return;
      }
    }
  };
  s.once('drain', more);
}

describe('the end of a stream while bytes wait for a client that does not read', () => {
  /** The write timeouts' proxies: timeout client and timeout server of their frontend and backend. */
  const SLOW_CLIENT_MS = 400;
  const SLOW_SERVER_MS = 100;
  let flood: net.Server;
  let proxy: ProxyProcess;
  let baseline: number;
  const timed: Partial<Record<'dev12' | '2.6', { proxy: ProxyProcess; baseline: number }>> = {};
  const accepted: net.Socket[] = [];

  beforeAll(async () => {
    // A backend that only keeps its connections: the test writes on them and resets them.
    flood = net.createServer({ allowHalfOpen: true }, function floodOnConnection(s) {
      s.on('error', () => s.destroy());
      accepted.push(s);
    });
    await new Promise<void>((r) => flood.listen(0, '127.0.0.1', r));
    const floodPort = (flood.address() as net.AddressInfo).port;
    proxy = await startProxyProcess((dir) =>
      proxyConfig(
        dir,
        '5s',
        `
frontend fe_abort
    bind 127.0.0.1:0
    maxconn 10
    default_backend be_flood

backend be_flood
    server flooding 127.0.0.1:${floodPort}
`,
      ),
    );
    baseline = await idleFds(proxy);
    // One proxy per profile, started side by side.
    await Promise.all(
      (['dev12', '2.6'] as const).map(async (profile) => {
        const p = await startProxyProcess(
          (dir) =>
            proxyConfig(
              dir,
              '5s',
              `
frontend fe_slow
    bind 127.0.0.1:0
    maxconn 10
    timeout client ${SLOW_CLIENT_MS}ms
    default_backend be_slow

backend be_slow
    timeout server ${SLOW_SERVER_MS}ms
    server flooding 127.0.0.1:${floodPort}
`,
            ),
          ['--profile', profile],
        );
        timed[profile] = { proxy: p, baseline: await idleFds(p) };
      }),
    );
  });

  afterEach(() => expectSettled(proxy, baseline));

  afterAll(async () => {
    await proxy?.stop();
    for (const t of Object.values(timed)) await t.proxy.stop();
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => (flood ? flood.close(() => r()) : r()));
  });

  it('closes the client with a FIN after every byte read from the server when the server resets the stream', async () => {
    const c = client(proxy.port, { limitMs: 5000 });
    c.socket.pause(); // the client reads nothing until the stream has ended
    const before = accepted.length;
    const s = await waitFor('the backend connection', () => accepted[before]);
    await floodUntilStalled(s);
    s.resetAndDestroy();
    // The proxy does not read the reset server while its write to the client waits: the client's
    // byte, written to the server, fails, and the stream ends on the server's reset (SD).
    c.send('x');
    const line = await waitFor('the log line', () => proxy.lines(/ fe_abort be_flood\/flooding /)[0]);
    c.socket.resume();
    const o = await c.outcome;
    // %B: every byte the proxy read from the server, each one handed to the client socket. HAProxy
    // too forwards what its response buffer holds, then shuts the client's side (a clean shutw).
    const { read, ts } = tcplogEnd(line);
    expect(ts).toBe('SD');
    expect(read).toBeGreaterThan(0);
    // An RST behind unread bytes may read as an EOF here (libuv ends a partial read on POLLHUP
    // without reading the error): the count, more than `how`, tells a lost byte.
    expect({ how: o.how, received: o.data.length }).toEqual({ how: 'fin', received: read });
    expect(firstDifference(Buffer.from(o.data, 'latin1'), streamBytes(0, read))).toBe(-1);
    expect(proxy.lines(/ fe_abort be_flood\/flooding /)).toHaveLength(1);
  });

  it("reads the client's bytes that come in the poll round of the server's reset, and closes the client with a FIN (SD)", async () => {
    const before = accepted.length;
    const c = client(proxy.port, { limitMs: 5000 });
    await c.connected;
    const s = await waitFor('the backend connection', () => accepted[before]);
    await sleep(50); // the stream reads both sockets by now
    // Both wait for one poll round: the proxy is stopped until its kernel holds both, the server's
    // reset first (its socket to the server is gone), then the client's bytes (unread).
    const serverPort = (flood.address() as net.AddressInfo).port;
    const proxySide = s.remotePort!;
    process.kill(proxy.pid, 'SIGSTOP');
    try {
      // Stopped, not merely signalled: else it may run once more, and collect the reset alone.
      await waitFor('the stop', () => (processState(proxy.pid) === 'T' ? true : undefined));
      s.resetAndDestroy();
      await waitFor('the reset', () => (tcpRowOf(proxySide, serverPort) === null ? true : undefined));
      c.send('hello');
      await waitFor('the bytes', () => (tcpRowOf(proxy.port, c.localPort)?.rxQueue ?? 0) > 0 || undefined);
    } finally {
      process.kill(proxy.pid, 'SIGCONT');
    }
    // Closed with 'hello' unread, the client would get an RST from the proxy's kernel.
    expect(await c.outcome).toMatchObject({ how: 'fin', data: '' });
    const mine = new RegExp(`^127\\.0\\.0\\.1:${c.localPort} .* fe_abort be_flood/flooding .* SD `);
    await waitFor('the log line', () => proxy.lines(mine)[0]);
  });

  it.each([
    ['dev12', 'resets it (SO_LINGER 0)'],
    ['2.6', 'closes it with a FIN after what the kernel held'],
  ] as const)(
    'times out a client that does not read, never the server it stopped reading, and under %s %s, dropping what it buffered',
    async (profile, _how) => {
      const t = timed[profile]!;
      const c = client(t.proxy.port, { limitMs: 5000 });
      try {
        c.socket.pause();
        const before = accepted.length;
        const s = await waitFor('the backend connection', () => accepted[before]);
        // The proxy stops reading the server once its write to the client waits: more than the
        // server's 100 ms pass without a read from it, which is no server timeout (its rex is off).
        keepFlooding(s, await floodUntilStalled(s));
        const line = await waitFor('the log line', () => t.proxy.lines(/ fe_slow be_slow\/flooding /)[0]);
        const { tt, read, ts } = tcplogEnd(line);
        expect(ts).toBe('cD');
        expect(tt).toBeGreaterThanOrEqual(SLOW_CLIENT_MS);
        // An RST makes the kernel drop the client's socket at once; a FIN waits behind unread bytes.
        if (profile === 'dev12')
          await waitFor('the reset', () => (tcpState(c.localPort, t.proxy.port) === null ? true : undefined));
        else expect(tcpState(c.localPort, t.proxy.port)).toBe(TCP_ESTABLISHED);
        c.socket.resume();
        const o = await c.outcome;
        const received = Buffer.from(o.data, 'latin1');
        expect(received.length).toBeLessThan(read);
        expect(firstDifference(received, streamBytes(0, received.length))).toBe(-1);
      } finally {
        c.socket.destroy(); // closed already, unless the test failed
      }
      await expectSettled(t.proxy, t.baseline);
    },
  );
});

/**
 * The end of a tcplog line: Tt (ms from accept to the end), the bytes read from the server (%B) and
 * the termination state; NaN and '' where the line has none (the caller's expectation fails).
 */
function tcplogEnd(line: string): { tt: number; read: number; ts: string } {
  const [, tt, read, ts] = / \d+\/\d+\/(\d+) (\d+) (\S\S) /.exec(line) ?? [];
  return { tt: Number(tt), read: Number(read), ts: ts ?? '' };
}

/** The state letter of process <pid> (/proc/<pid>/stat): 'T' once a SIGSTOP has stopped it. */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '';
}

/** /proc/net/tcp's code of an established connection, and of one whose other end's FIN came. */
const TCP_ESTABLISHED = '01';
const TCP_CLOSE_WAIT = '08';

/**
 * The state code of this machine's IPv4 TCP socket whose local port is <port> and whose other end's
 * port is <remotePort> (/proc/net/tcp), or null when the kernel has no such socket (an RST closed
 * it). Both ports are needed: Linux gives one ephemeral port to connections to different
 * addresses, so another test's socket may share the local port. Reads the OS, nothing else.
 */
function tcpState(port: number, remotePort: number): string | null {
  return tcpRowOf(port, remotePort)?.state ?? null;
}

/** A connection the silent backend accepted: when the proxy's FIN came (performance.now()), or its error. */
interface SilentConn {
  socket: net.Socket;
  remotePort: number;
  fin: number | null;
  error: string | null;
}

describe("a read timeout in the data phase, which shuts that side's read only", () => {
  /** The shorter and the longer of `timeout client` and `timeout server`. */
  const SHORT_MS = 300;
  const LONG_MS = 900;
  let silent: net.Server;
  const accepted: SilentConn[] = [];
  type Key = 'clientFirst dev12' | 'clientFirst 2.6' | 'serverFirst dev12';
  const proxies: Partial<Record<Key, { proxy: ProxyProcess; baseline: number }>> = {};

  beforeAll(async () => {
    // A backend that never answers and keeps its side open after the proxy's FIN.
    silent = net.createServer({ allowHalfOpen: true }, function silentOnConnection(s) {
      const c: SilentConn = {
        socket: s,
        remotePort: s.remotePort ?? 0,
        fin: null,
        error: null,
      };
      accepted.push(c);
      s.on('end', function silentOnEnd() {
        c.fin = performance.now();
      });
      s.on('error', function silentOnError(err: NodeJS.ErrnoException) {
        c.error = err.code ?? 'error';
        s.destroy();
      });
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const start = async (key: Key, clientMs: number, serverMs: number, profile: string) => {
      const proxy = await startProxyProcess(
        (dir) =>
          proxyConfig(
            dir,
            `${clientMs}ms`,
            `
frontend fe_half
    bind 127.0.0.1:0
    maxconn 10
    default_backend be_silent

backend be_silent
    timeout server ${serverMs}ms
    server silent 127.0.0.1:${port}
`,
          ),
        ['--profile', profile],
      );
      proxies[key] = { proxy, baseline: await idleFds(proxy) };
    };
    await Promise.all([
      start('clientFirst dev12', SHORT_MS, LONG_MS, 'dev12'),
      start('clientFirst 2.6', SHORT_MS, LONG_MS, '2.6'),
      start('serverFirst dev12', LONG_MS, SHORT_MS, 'dev12'),
    ]);
  });

  afterAll(async () => {
    for (const p of Object.values(proxies)) await p.proxy.stop();
    for (const c of accepted) c.socket.destroy();
    await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
  });

  it.each(['dev12', '2.6'] as const)(
    'half-closes the server at timeout client while both sides are idle, and ends the stream at timeout server with cD (%s)',
    async (profile) => {
      const p = proxies[`clientFirst ${profile}`]!;
      const before = accepted.length;
      const t0 = performance.now(); // before the proxy's accept, where timeout client starts
      const c = client(p.proxy.port);
      const s = await waitFor('the backend connection', () => accepted[before]);
      // The client's read timeout shuts its side's read: the server gets a FIN, the client nothing.
      const fin = (await waitFor('the FIN to the server', () => s.fin ?? undefined)) - t0;
      expect(fin).toBeGreaterThanOrEqual(SHORT_MS - 15);
      expect(fin).toBeLessThan(LONG_MS - 200);
      // The server's read timeout, which still applies, shuts the rest: the client's FIN.
      const o = await c.outcome;
      expect(o).toMatchObject({ how: 'fin', data: '' });
      expect(o.ms).toBeGreaterThanOrEqual(LONG_MS - 15);
      const line = await waitFor('the log line', () => p.proxy.lines(/ fe_half be_silent\/silent /)[0]);
      const { tt, read, ts } = tcplogEnd(line);
      expect({ ts, read, long: tt >= LONG_MS }).toEqual({ ts: 'cD', read: 0, long: true });
      expect(numbers((await p.proxy.stat()).get('be_silent/silent'), 'cli_abrt').cli_abrt).toBe(1);
      // The server never closed: 2.x closes its socket with SO_LINGER 0 (FD_LINGER_RISK), an RST
      // that takes it out of CLOSE_WAIT; dev12 closes it plainly, after the FIN it already sent.
      const port = (silent.address() as net.AddressInfo).port;
      if (profile === '2.6')
        await waitFor('the reset', () => (tcpState(port, s.remotePort) === null ? true : undefined));
      else expect(tcpState(port, s.remotePort)).toBe(TCP_CLOSE_WAIT);
      await expectSettled(p.proxy, p.baseline);
    },
  );

  it.each([
    ['dev12', 'rst'],
    ['2.6', 'fin'],
  ] as const)(
    'drops what the client sends after its read timed out, and closes it under %s with %s',
    async (profile, how) => {
      // dev12 leaves those bytes unread, and the kernel answers the close with an RST; 2.x drains
      // them (Debian's HAProxy 2.6.12: a FIN, 100 bytes sent 200 ms after timeout client).
      const p = proxies[`clientFirst ${profile}`]!;
      const before = accepted.length;
      const c = client(p.proxy.port);
      const s = await waitFor('the backend connection', () => accepted[before]);
      let forwarded = 0;
      s.socket.on('data', function silentOnData(d: Buffer) {
        forwarded += d.length;
      });
      await waitFor('the FIN to the server', () => s.fin ?? undefined);
      c.socket.write(Buffer.alloc(100, 0x61));
      const o = await c.outcome;
      expect({ how: o.how, forwarded }).toEqual({ how, forwarded: 0 });
      expect(o.ms).toBeGreaterThanOrEqual(LONG_MS - 15);
      const mine = new RegExp(`^127\\.0\\.0\\.1:${c.localPort} .* fe_half be_silent/silent `);
      const line = await waitFor('the log line', () => p.proxy.lines(mine)[0]);
      expect(tcplogEnd(line).ts).toBe('cD');
      await expectSettled(p.proxy, p.baseline);
    },
  );

  it('half-closes the client at timeout server while both sides are idle, and ends the stream at timeout client with sD', async () => {
    const p = proxies['serverFirst dev12']!;
    const before = accepted.length;
    // A client that keeps its side open after the proxy's FIN (the harness's client closes it).
    const socket = net.connect({ host: '127.0.0.1', port: p.proxy.port, allowHalfOpen: true });
    const t0 = performance.now();
    let clientFin: number | null = null;
    socket.on('end', function halfOpenOnEnd() {
      clientFin = performance.now() - t0;
    });
    socket.on('error', function halfOpenOnError() {
      socket.destroy();
    });
    try {
      const s = await waitFor('the backend connection', () => accepted[before]);
      await waitFor('the FIN to the client', () => clientFin ?? undefined);
      expect(clientFin).toBeGreaterThanOrEqual(SHORT_MS - 15);
      expect(clientFin).toBeLessThan(LONG_MS - 200);
      expect(s.fin).toBeNull(); // the client's side is still read, and open
      const fin = (await waitFor('the FIN to the server', () => s.fin ?? undefined)) - t0;
      expect(fin).toBeGreaterThanOrEqual(LONG_MS - 15);
      const line = await waitFor('the log line', () => p.proxy.lines(/ fe_half be_silent\/silent /)[0]);
      const { tt, read, ts } = tcplogEnd(line);
      expect({ ts, read, long: tt >= LONG_MS }).toEqual({ ts: 'sD', read: 0, long: true });
    } finally {
      socket.destroy();
    }
    await expectSettled(p.proxy, p.baseline);
  });

  it('times out on its write deadline a client shut for reading that does not read, and under dev12 resets it', async () => {
    const p = proxies['clientFirst dev12']!;
    const before = accepted.length;
    const c = client(p.proxy.port, { limitMs: 5000 });
    try {
      c.socket.pause();
      const s = await waitFor('the backend connection', () => accepted[before]);
      // The client's read deadline passed first: the proxy shut its read, and the server's bytes
      // still go to it. Its write deadline, which starts with them, is what ends the stream.
      await waitFor('the FIN to the server', () => s.fin ?? undefined);
      keepFlooding(s.socket, await floodUntilStalled(s.socket));
      const mine = new RegExp(`^127\\.0\\.0\\.1:${c.localPort} .* fe_half be_silent/silent `);
      const line = await waitFor('the log line', () => p.proxy.lines(mine)[0]);
      const { tt, read, ts } = tcplogEnd(line);
      expect(ts).toBe('cD');
      expect(tt).toBeGreaterThanOrEqual(2 * SHORT_MS);
      await waitFor('the reset', () => (tcpState(c.localPort, p.proxy.port) === null ? true : undefined));
      c.socket.resume();
      const received = Buffer.from((await c.outcome).data, 'latin1');
      expect(received.length).toBeLessThan(read);
      expect(firstDifference(received, streamBytes(0, received.length))).toBe(-1);
    } finally {
      c.socket.destroy(); // closed already, unless the test failed
      accepted[before]?.socket.destroy();
    }
    await expectSettled(p.proxy, p.baseline);
  });

  it.each([
    ['2.6', 'an RST (FD_LINGER_RISK)'],
    ['dev12', 'a FIN'],
  ] as const)(
    "forwards a client's reset to a server that did not close under %s as %s",
    async (profile, _how) => {
      const p = proxies[`clientFirst ${profile}`]!;
      const before = accepted.length;
      const c = client(p.proxy.port);
      const s = await waitFor('the backend connection', () => accepted[before]);
      await c.connected;
      c.socket.resetAndDestroy();
      await waitFor("the server's close", () => (s.fin !== null || s.error !== null ? true : undefined));
      if (profile === '2.6')
        expect({ fin: s.fin, error: s.error }).toEqual({ fin: null, error: 'ECONNRESET' });
      else expect(s.fin).not.toBeNull();
      const mine = new RegExp(`^127\\.0\\.0\\.1:${c.localPort} .* fe_half be_silent/silent `);
      const line = await waitFor('the log line', () => p.proxy.lines(mine)[0]);
      expect(tcplogEnd(line).ts).toBe('CD');
      await expectSettled(p.proxy, p.baseline);
    },
  );
});

describe('a client that keeps sending while the proxy waits to write to it', () => {
  /** timeout client; timeout server is three times longer, so that only the client's deadlines act. */
  const CLIENT_MS = 300;
  /** The client's chunks: CHUNK bytes every CHUNK_EVERY_MS ms, from connect to the close. */
  const CHUNK = 100;
  const CHUNK_EVERY_MS = 25;
  let flooder: net.Server;
  const flooded: { socket: net.Socket; stalledAt: number | null }[] = [];
  const proxies: Partial<Record<'dev12' | '2.9', { proxy: ProxyProcess; baseline: number }>> = {};

  beforeAll(async () => {
    // A backend that floods each connection until the path to the client stalls, then goes on as
    // the path drains; it leaves what it gets unread, in its kernel's queue.
    flooder = net.createServer({ allowHalfOpen: true }, function flooderOnConnection(s) {
      const f = { socket: s, stalledAt: null as number | null };
      flooded.push(f);
      s.on('error', function flooderOnError() {
        s.destroy();
      });
      void floodUntilStalled(s).then(
        function flooderOnStalled(written) {
          f.stalledAt = performance.now();
          keepFlooding(s, written);
        },
        function flooderOnClosed() {
          s.destroy();
        },
      );
    });
    await new Promise<void>((r) => flooder.listen(0, '127.0.0.1', r));
    const port = (flooder.address() as net.AddressInfo).port;
    const start = async (profile: 'dev12' | '2.9') => {
      const proxy = await startProxyProcess(
        (dir) =>
          proxyConfig(
            dir,
            `${CLIENT_MS}ms`,
            `
frontend fe_flood
    bind 127.0.0.1:0
    maxconn 10
    default_backend be_flood

backend be_flood
    timeout server ${3 * CLIENT_MS}ms
    server flooder 127.0.0.1:${port}
`,
          ),
        ['--profile', profile],
      );
      proxies[profile] = { proxy, baseline: await idleFds(proxy) };
    };
    await Promise.all([start('dev12'), start('2.9')]);
  });

  afterAll(async () => {
    for (const p of Object.values(proxies)) await p.proxy.stop();
    for (const f of flooded) f.socket.destroy();
    await new Promise<void>((r) => (flooder ? flooder.close(() => r()) : r()));
  });

  /**
   * Connects a client that reads nothing and sends a chunk every CHUNK_EVERY_MS ms, and returns,
   * in ms after the connect: when the proxy's end of the connection left ESTABLISHED (read from
   * /proc/net/tcp, polled every 5 ms), when the backend's flood stalled, and when each chunk was
   * written.
   */
  async function sendUntilClosed(
    p: ProxyProcess,
  ): Promise<{ closedAt: number; stalledAt: number; sent: number[] }> {
    const before = flooded.length;
    const socket = net.connect({ host: '127.0.0.1', port: p.port });
    socket.pause();
    socket.on('error', function senderOnError() {
      socket.destroy();
    });
    await new Promise<void>((r) => socket.once('connect', r));
    const t0 = performance.now();
    const local = socket.localPort ?? 0;
    const open = (): boolean => tcpState(p.port, local) === TCP_ESTABLISHED;
    const sent: number[] = [];
    const timer = setInterval(function senderOnInterval() {
      if (!open()) return;
      sent.push(performance.now() - t0);
      socket.write(Buffer.alloc(CHUNK, 0x62));
    }, CHUNK_EVERY_MS);
    try {
      const closedAt = await waitFor(
        'the close',
        async () => {
          if (!open()) return performance.now() - t0;
          await sleep(5);
          return undefined;
        },
        5000,
      );
      const stalledAt = await waitFor('the stall', () => flooded[before]?.stalledAt ?? undefined);
      return { closedAt, stalledAt: stalledAt - t0, sent };
    } finally {
      clearInterval(timer);
      socket.destroy();
      flooded[before]?.socket.destroy();
    }
  }

  it('lets its reads renew its write deadline until the stream next runs, under dev12', async () => {
    // The stream's task runs at its first deadline, timeout client after the connect; the chunks
    // read before it renew the write deadline, those after it do not: the close comes timeout
    // client after the last chunk before that run (Debian's HAProxy 2.6.12 alike, conformance case
    // data/write-timeout/sending-client-renews-it-until-the-next-check).
    // The run comes CLIENT_MS after the connect, 20 ms either way, once the path back is full
    // (else the first run after that counts: at most CLIENT_MS after the last write, which comes
    // before the flood stalls).
    const p = proxies.dev12!;
    const { closedAt, stalledAt, sent } = await sendUntilClosed(p.proxy);
    const readBeforeRun = sent.filter((t) => t <= CLIENT_MS - 20).at(-1) ?? 0;
    expect(closedAt).toBeGreaterThanOrEqual(readBeforeRun + CLIENT_MS - 10);
    expect(closedAt).toBeLessThan(stalledAt - STALL_MS + 2 * CLIENT_MS + 250);
    await expectSettled(p.proxy, p.baseline);
  });

  it('closes it timeout client after its last write progressed, whatever it sends, under 2.9', async () => {
    // From 2.8 the write timeout runs from the first send that blocked; no read touches it. The
    // flood stalls STALL_MS after the proxy's last write to the client.
    const p = proxies['2.9']!;
    const { closedAt, stalledAt } = await sendUntilClosed(p.proxy);
    expect(closedAt).toBeGreaterThanOrEqual(CLIENT_MS - 10);
    expect(closedAt).toBeLessThan(stalledAt - STALL_MS + CLIENT_MS + 100);
    await expectSettled(p.proxy, p.baseline);
  });
});

describe("a direction's channel buffer, without sockets", () => {
  const { direction, feed, forwardRead, forwardWholeBufferRead } = directionForTests;

  /** A destination whose writes wait until the test completes them, as a full socket's do. */
  class SlowDestination {
    writableLength = 0;
    readonly written: string[] = [];
    private readonly pending: ((err?: Error | null) => void)[] = [];
    write(b: Buffer, cb: (err?: Error | null) => void): boolean {
      this.written.push(b.toString('latin1'));
      this.writableLength += b.length;
      this.pending.push(cb);
      return false;
    }
    /** The kernel takes every write: each callback runs, in order. */
    drain(): void {
      this.writableLength = 0;
      for (const cb of this.pending.splice(0)) cb();
    }
  }

  /** A direction of 16 bytes from a source that records its pauses, to a slow destination. */
  function setUp() {
    const violations: string[] = [];
    const pool = { pin: () => undefined, unpin: () => undefined, countRead: () => undefined };
    const conn = {
      id: 1,
      fe: { violations, pool },
      stream: { ended: false, clientSide: { timeout: null }, serverSide: { timeout: null } },
    };
    const src = {
      paused: false,
      pause() {
        this.paused = true;
      },
      resume() {
        this.paused = false;
      },
    };
    const dst = new SlowDestination();
    const item = { site: 'req', serial: 0, buf: Buffer.alloc(16), live: true, pins: 0 };
    const d = direction(
      'req',
      conn as unknown as Conn,
      src as unknown as net.Socket,
      dst as unknown as net.Socket,
      item as PoolItem,
    );
    return { d, dst, src, violations, buf: item.buf };
  }

  it('copies each chunk after the bytes still being written, and keeps what does not fit until the buffer is empty', () => {
    const { d, dst, src, buf } = setUp();
    feed(d, Buffer.from('abcd'));
    feed(d, Buffer.from('efgh'));
    expect(dst.written).toEqual(['abcd', 'efgh']);
    expect(buf.subarray(0, 8).toString()).toBe('abcdefgh');
    feed(d, Buffer.from('ijklmnopqrst'));
    expect(dst.written).toEqual(['abcd', 'efgh', 'ijklmnop']);
    expect(src.paused).toBe(true);
    dst.drain(); // the buffer is empty: what waited is copied at its start
    expect(dst.written.at(-1)).toBe('qrst');
    expect(src.paused).toBe(true);
    dst.drain(); // and once that is written too, the source reads on
    expect(src.paused).toBe(false);
    expect(dst.written.join('')).toBe('abcdefghijklmnopqrst');
  });

  it('reads the backend on into the whole buffer only while the kernel takes each write at once', () => {
    const { d, dst, buf } = setUp();
    dst.write = function fastWrite(this: SlowDestination, b: Buffer, cb: (err?: Error | null) => void) {
      this.written.push(b.toString('latin1'));
      queueMicrotask(() => cb());
      return true; // taken at once: writableLength stays 0
    };
    buf.write('abcd');
    expect(forwardWholeBufferRead(d, buf, 4)).toBe(true);
    expect(d.head).toBe(0);
    const slow = setUp();
    slow.buf.write('abcd');
    expect(forwardWholeBufferRead(slow.d, slow.buf, 4)).toBe(false); // the next read would overwrite it
    expect(slow.d.stopped).toBe(true);
  });

  it('refuses a read that lands on bytes still being written, writing nothing of it', () => {
    const { d, dst, violations, buf } = setUp();
    expect(forwardRead(d, buf, 4)).toBe(true); // a read of 4 bytes at the start
    expect(dst.written).toHaveLength(1);
    expect(forwardRead(d, buf.subarray(2), 4)).toBe(false); // overlaps the 2 bytes still written
    expect(dst.written).toHaveLength(1);
    expect(violations).toEqual([
      'connection 1: a req read of 4 bytes landed outside the free part of its channel buffer',
    ]);
    expect(forwardRead(d, buf.subarray(4), 4)).toBe(true); // past them it is fine
    expect(dst.written).toHaveLength(2);
  });
});
