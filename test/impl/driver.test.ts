/**
 * The accept loop, the deadline, the listener limits and the source rules of the reference proxy,
 * on real sockets: the proxy runs as a child process on an accept-proxy frontend and is observed
 * from outside only (stats socket, stderr, /proc/<pid>/fd, what the clients see).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { checkTraceLines, formatDivergence } from '../../properties/traceCheck.ts';
import {
  client,
  expectSettled,
  numbers,
  proxyConfig,
  sleep,
  startEchoedProxy,
  startProxyProcess,
  stopEchoedProxy,
  waitFor,
  type Backend,
  type Client,
  type ProxyProcess,
} from './harness.ts';

const D = 250; // timeout client: the handshake deadline
const MAXCONN = 3;
const HEADER = 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\n';

describe('the proxy on an accept-proxy frontend', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;
  let running = true;
  const traceDir = mkdtempSync(join(tmpdir(), 'embryonic-driver-'));
  const tracePath = join(traceDir, 'trace.ndjson');

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy(
      (echoPort) => (dir) =>
        proxyConfig(
          dir,
          `${D}ms`,
          `
frontend fe_pp
    bind 127.0.0.1:0 accept-proxy name main
    option socket-stats
    maxconn ${MAXCONN}
    tcp-request connection reject if { src 127.0.0.2/32 }
    default_backend be_echo

backend be_echo
    server echo1 127.0.0.1:${echoPort}
`,
          { globalMaxconn: 100, statsAdmin: true },
        ),
      // The first completed session fails at its req buffer, the second at its rep buffer.
      ['--fail-alloc', 'req:1,rep:1', '--trace', tracePath],
    ));
  });

  afterEach(async () => {
    if (!running) return;
    // Every scenario ends with the fds back to the baseline, the pools balanced and no fd violation.
    await expectSettled(proxy, baseline, { noLiveFd: true });
  });

  afterAll(async () => {
    await stopEchoedProxy(proxy, echo, 'SIGKILL');
    rmSync(traceDir, { recursive: true, force: true });
  });

  it('gives a silent client a FIN at the deadline, with no buffer allocated before the handshake ends', async () => {
    const before = await proxy.stat();
    const c = client(proxy.port);
    await c.connected;
    await sleep(80);
    const during = await proxy.stat();
    const info = await proxy.info();
    const pool = await proxy.pool();
    expect(numbers(during.get('fe_pp/FRONTEND'), 'scur', 'conn_tot', 'stot')).toEqual({
      scur: 1,
      conn_tot: Number(before.get('fe_pp/FRONTEND')!.conn_tot) + 1,
      stot: Number(before.get('fe_pp/FRONTEND')!.stot),
    });
    expect(info.CurrConns).toBe('1');
    expect([pool.sites.session.live, pool.sites.task.live]).toEqual([1, 1]);
    expect([pool.sites.req.attempts, pool.sites.rep.attempts, pool.sites.txn.attempts]).toEqual([0, 0, 0]);

    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(o.ms).toBeGreaterThanOrEqual(D - 15);
    expect(o.ms).toBeLessThan(D + 200);
    const after = await proxy.stat();
    expect(numbers(after.get('fe_pp/FRONTEND'), 'scur', 'stot')).toEqual({ scur: 0, stot: 0 });
    expect(numbers(after.get('fe_pp/main'), 'scur', 'stot')).toEqual({ scur: 0, stot: 1 });
    const port = c.localPort;
    expect(
      proxy.lines(
        new RegExp(
          `^127\\.0\\.0\\.1:${port} \\[.+\\] fe_pp/main: Timeout while waiting for PROXY protocol header$`,
        ),
      ),
    ).toHaveLength(1);
  });

  it('closes with a FIN at once a client that closes before sending the header', async () => {
    const c = client(proxy.port);
    await c.connected;
    c.socket.end();
    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(o.ms).toBeLessThan(D / 2);
    expect(
      proxy.lines(new RegExp(`:${c.localPort} .*Connection closed while waiting for PROXY protocol header`)),
    ).toHaveLength(1);
  });

  it('resets a source that tcp-request connection rules reject, and counts it in dcon', async () => {
    const before = numbers((await proxy.stat()).get('fe_pp/FRONTEND'), 'dcon', 'conn_tot', 'stot');
    const c = client(proxy.port, { localAddress: '127.0.0.2' });
    const o = await c.outcome;
    expect(o.how).toBe('rst');
    expect(o.ms).toBeLessThan(D / 2);
    const after = await proxy.stat();
    expect(numbers(after.get('fe_pp/FRONTEND'), 'dcon', 'conn_tot', 'stot')).toEqual({
      dcon: before.dcon + 1,
      conn_tot: before.conn_tot + 1,
      stot: before.stot,
    });
    expect(after.get('fe_pp/main')!.dcon).toBe(String(before.dcon + 1));
  });

  it('kills the session and unwinds its completion when the req buffer cannot be allocated', async () => {
    const before = numbers((await proxy.stat()).get('fe_pp/FRONTEND'), 'conn_tot', 'stot');
    const accepted = echo.accepted;
    const c = client(proxy.port, { first: `${HEADER}hello` });
    const o = await c.outcome;
    expect(o).toMatchObject({ how: 'fin', data: '' });
    expect(o.ms).toBeLessThan(D / 2);
    const pool = await proxy.pool();
    expect(pool.sites.req).toMatchObject({ failed: 1, allocs: 0 });
    expect(pool.sites.rep.attempts).toBe(0);
    // session_complete counted the session before its allocation failed (cum_sess over-count).
    expect(numbers((await proxy.stat()).get('fe_pp/FRONTEND'), 'conn_tot', 'stot', 'scur')).toEqual({
      conn_tot: before.conn_tot + 1,
      stot: before.stot + 1,
      scur: 0,
    });
    expect(echo.accepted).toBe(accepted);
  });

  it('kills the session and frees its req buffer again when the rep buffer cannot be allocated', async () => {
    const c = client(proxy.port, { first: `${HEADER}hello` });
    const o = await c.outcome;
    expect(o).toMatchObject({ how: 'fin', data: '' });
    const pool = await proxy.pool();
    expect(pool.sites.req).toMatchObject({ allocs: 1, frees: 1, failed: 1 });
    expect(pool.sites.rep).toMatchObject({ allocs: 0, failed: 1 });
  });

  it('forwards the bytes after a PROXY header to the backend and back through the pool buffers', async () => {
    const before = await proxy.stat();
    const c = client(proxy.port, { first: `${HEADER}hello` });
    await waitFor('the echo', () => (c.socket.bytesRead >= 5 ? true : undefined));
    c.socket.end();
    const o = await c.outcome;
    expect(o).toMatchObject({ how: 'fin', data: 'hello' });
    const after = await proxy.stat();
    const fe = (k: string, f: string) => Number(after.get(k)![f]) - Number(before.get(k)![f]);
    expect([fe('fe_pp/FRONTEND', 'stot'), fe('fe_pp/FRONTEND', 'bin'), fe('fe_pp/FRONTEND', 'bout')]).toEqual(
      [1, 5, 5],
    );
    expect([fe('be_echo/BACKEND', 'stot'), fe('be_echo/echo1', 'stot')]).toEqual([1, 1]);
    const pool = await proxy.pool();
    expect(pool.sites.req).toMatchObject({ allocs: 2, frees: 2 });
    expect(proxy.lines(/^10\.1\.2\.3:40000 \[.+\] fe_pp be_echo\/echo1 \d+\/\d+\/\d+ 5 -- /)).toHaveLength(1);
  });

  it('resets a header that is not a PROXY header, without reaching the backend', async () => {
    const before = numbers((await proxy.stat()).get('fe_pp/FRONTEND'), 'stot', 'conn_tot');
    const accepted = echo.accepted;
    const c = client(proxy.port, { first: 'GET / HTTP/1.0\r\n\r\n' });
    const o = await c.outcome;
    expect(o.how).toBe('rst');
    expect(o.ms).toBeLessThan(D / 2);
    expect(numbers((await proxy.stat()).get('fe_pp/FRONTEND'), 'stot', 'conn_tot')).toEqual({
      stot: before.stot,
      conn_tot: before.conn_tot + 1,
    });
    expect(echo.accepted).toBe(accepted);
    expect(
      proxy.lines(/fe_pp\/main: Received something which does not look like a PROXY protocol header$/),
    ).toHaveLength(1);
  });

  it('serves idle connections beyond maxconn when slots free, each with its own full deadline', async () => {
    const n = MAXCONN + 2;
    const clients = Array.from({ length: n }, () => client(proxy.port));
    await Promise.all(clients.map((c) => c.connected));
    await sleep(60);
    const during = await proxy.stat();
    expect(numbers(during.get('fe_pp/FRONTEND'), 'scur', 'smax', 'slim')).toEqual({
      scur: MAXCONN,
      smax: MAXCONN,
      slim: MAXCONN,
    });
    expect((await proxy.info()).CurrConns).toBe(String(MAXCONN));
    const outcomes = await Promise.all(clients.map((c) => c.outcome));
    const times = outcomes.map((o) => Math.round(o.ms));
    expect(outcomes.every((o) => o.how === 'fin')).toBe(true);
    const first = times.slice(0, MAXCONN);
    const queued = times.slice(MAXCONN);
    for (const t of first) {
      expect(t).toBeGreaterThanOrEqual(D - 15);
      expect(t).toBeLessThan(D + 200);
    }
    // The queued ones are accepted when the first ones release their slots (≈ D), and get a
    // whole deadline from then: they close at ≈ 2 D after they connected.
    for (const t of queued) {
      expect(t).toBeGreaterThanOrEqual(2 * D - 15);
      expect(t).toBeLessThan(2 * D + 300);
    }
    console.log(`maxconn ${MAXCONN}, ${n} idle clients, D = ${D} ms: closed at ${times.join(', ')} ms`);
  });

  it('stops on SIGTERM with live connections: every client gets a FIN and the process exits 0', async () => {
    const embryonic = [client(proxy.port), client(proxy.port)];
    const streaming = client(proxy.port, { first: `${HEADER}x` });
    await waitFor('the echo', () => (streaming.socket.bytesRead >= 1 ? true : undefined));
    const parked = client(proxy.port); // the fourth: maxconn 3, it waits in the backlog
    await Promise.all([...embryonic, parked].map((c) => c.connected));
    await sleep(30);
    running = false;
    const stopped = proxy.stop('SIGTERM');
    const outcomes = await Promise.all([...embryonic, streaming, parked].map((c) => c.outcome));
    expect(outcomes.map((o) => o.how)).toEqual(['fin', 'fin', 'fin', 'fin']);
    const exit = await stopped;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(1500);
    console.log(
      `SIGTERM with 4 live connections: every client had its FIN, exit 0 after ${Math.round(exit.ms)} ms`,
    );
    expect(proxy.lines(/SIGTERM: stopped, 4 client connection\(s\) closed/)).toHaveLength(1);
  });

  it('wrote a lifecycle trace of all of the above that the machines replay without divergence', () => {
    const lines = readFileSync(tracePath, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const config = makeConfig((JSON.parse(lines[0]!) as { config: Partial<ModelConfig> }).config);
    expect(config).toMatchObject({ acceptProxy: true, feMaxconn: MAXCONN, timeoutClient: D });
    const r = checkTraceLines(lines, config);
    expect(r.divergence ? formatDivergence(r.divergence) : 'conforms').toBe('conforms');
    expect(r.stats.accepted).toBeGreaterThanOrEqual(15);
  });
});

/**
 * The config of the virtual-clock tests: frontend fe_rate, maxconn 5 and rate-limit sessions 2,
 * to the server at 127.0.0.1:<port>, with an admin stats socket (`set clock advance`).
 */
function rateLimitedConfig(dir: string, port: number): string {
  return proxyConfig(
    dir,
    '5s',
    `
frontend fe_rate
    bind 127.0.0.1:0 name main
    maxconn 5
    rate-limit sessions 2
    default_backend be

backend be
    server s1 127.0.0.1:${port}
`,
    { globalMaxconn: 100, statsAdmin: true },
  );
}

describe("the frontend's task under a session rate, on the virtual clock (2.6)", () => {
  // rate-limit sessions 2: two sessions spend the period's budget; a third client waits in the
  // backlog until the rate allows the next session: at the limit exactly, 2.x's next_event_delay is
  // 1 ms, so the frontend's task looks again every millisecond until the period ends.
  let proxy: ProxyProcess;

  beforeAll(async () => {
    proxy = await startProxyProcess((dir) => rateLimitedConfig(dir, 1), ['--test-clock', '--profile', '2.6']);
  });
  afterAll(() => proxy.stop());

  it('keeps a third client waiting while the period is spent, and takes it once the period ends', async () => {
    const first = [client(proxy.port, { limitMs: 5000 }), client(proxy.port, { limitMs: 5000 })];
    await Promise.all(first.map((c) => c.outcome)); // each session ended: its server refused
    const third = client(proxy.port, { limitMs: 5000 });
    await third.connected;
    // The frontend's sessions so far (stot): the stats socket's own connections are not in it.
    const cum = async (): Promise<number> => Number((await proxy.stat()).get('fe_rate/FRONTEND')!.stot);
    const before = await cum();
    for (const ms of [1, 1, 10, 500]) {
      await proxy.query(`set clock advance ${ms}`);
      await sleep(20);
      expect(await cum(), `${ms} ms later`).toBe(before); // still in the backlog
    }
    await proxy.query('set clock advance 500'); // past the end of the period
    await waitFor('the third client taken', async () => ((await cum()) > before ? true : undefined));
    expect((await third.outcome).how).toBe('fin');
  });
});

describe("the frontend's task re-armed by a release, on the virtual clock (dev12)", () => {
  // rate-limit sessions 2 under dev12, whose periods follow one another every second from the start
  // (t = 0 on the virtual clock): two sessions at t = 0 spend the first period's budget, so a
  // third client that comes at t = 600 waits on the frontend's queue, whose task is armed for
  // next_event_delay = 999 / 2 = 499 ms later (t = 1099). A release at t = 700 finds the rate still
  // spent and schedules the task again, for t = 1199: task_schedule keeps the earlier expiry. The
  // period ends at t = 1000 (the budget comes back) but nothing looks at the queue until the task.
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    ({ echo, proxy, baseline } = await startEchoedProxy(
      (echoPort) => (dir) => rateLimitedConfig(dir, echoPort),
      ['--test-clock', '--profile', 'dev12'],
    ));
  });
  afterAll(() => stopEchoedProxy(proxy, echo));

  it('dequeues at the earlier expiry when the queue task is scheduled again later', async () => {
    const echoed = (c: Client): true | undefined => (c.socket.bytesRead >= 1 ? true : undefined);
    const fe = async (): Promise<Record<'scur' | 'stot', number>> =>
      numbers((await proxy.stat()).get('fe_rate/FRONTEND'), 'scur', 'stot');
    const a = client(proxy.port, { first: 'a', limitMs: 10_000 });
    const b = client(proxy.port, { first: 'b', limitMs: 10_000 });
    let d: Client | null = null;
    try {
      await waitFor('the first two echoes', () => (echoed(a) && echoed(b) ? true : undefined));
      expect(await fe()).toEqual({ scur: 2, stot: 2 });
      await proxy.query('set clock advance 600');
      d = client(proxy.port, { first: 'd', limitMs: 10_000 });
      // Refused at t = 600: parked in the backlog, its fd in the proxy's table unread.
      await waitFor('the third client parked', async () =>
        (await proxy.fd()).live.some((e) => e.state === 'backlog') ? true : undefined,
      );
      await proxy.query('set clock advance 100'); // t = 700
      a.socket.end(); // the release: the rate is still spent, the task is scheduled again for t = 1199
      expect((await a.outcome).how).toBe('fin');
      await waitFor('the release', async () => ((await fe()).scur === 1 ? true : undefined));
      await proxy.query('set clock advance 398'); // t = 1098: the period ended, the task is not due yet
      await sleep(50);
      expect({ accepted: echo.accepted, ...(await fe()), echoed: echoed(d) ?? false }).toEqual({
        accepted: 2,
        scur: 1,
        stot: 2,
        echoed: false,
      });
      await proxy.query('set clock advance 1'); // t = 1099: the task armed first runs
      const third = d;
      await waitFor('the third client taken at the earlier expiry', () => echoed(third));
      expect({ accepted: echo.accepted, ...(await fe()) }).toEqual({ accepted: 3, scur: 2, stot: 3 });
      b.socket.end();
      d.socket.end();
      expect([(await b.outcome).how, (await d.outcome).how]).toEqual(['fin', 'fin']);
      await expectSettled(proxy, baseline);
    } finally {
      for (const c of [a, b, d]) c?.socket.destroy(); // closed already unless the test failed
    }
  });
});
