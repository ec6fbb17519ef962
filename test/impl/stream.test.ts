/**
 * The data phase on real sockets: backends that refuse or reset, timeouts, and a frontend without
 * accept-proxy, where a PROXY header is data. The proxy runs as a child process; its backend has
 * three servers taken in turn (round robin): one refuses, one resets, one echoes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  client,
  expectSettled,
  idleFds,
  numbers,
  proxyConfig,
  refusedPort,
  startBackend,
  startProxyProcess,
  waitFor,
  type Backend,
  type ProxyProcess,
} from './harness.ts';

const CLIENT_TIMEOUT = 400;

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
