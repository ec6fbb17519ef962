/**
 * The proxy as a whole, started like a user starts it (`embryonic proxy -f FILE`): allocation
 * failures at each site of session_accept with their unwinding and the 500 of http mode on a raw
 * transport, monitor-net, the profiles, and the configuration errors.
 */
import { spawnSync } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_200, HTTP_500_DEV12 } from '../../impl/driver.ts';
import { startProxy } from '../../impl/proxy.ts';
import {
  client,
  expectSettled,
  numbers,
  proxyConfig,
  ROOT,
  sleep,
  startBackend,
  startEchoedProxy,
  startProxyProcess,
  stopEchoedProxy,
  waitFor,
  type Backend,
  type ProxyProcess,
} from './harness.ts';

const httpConfig = (echoPort: number) => (dir: string) =>
  proxyConfig(
    dir,
    '1s',
    `
frontend fe_http
    bind 127.0.0.1:0 name main
    option socket-stats
    monitor-net 127.0.0.3/32
    default_backend be_echo

backend be_echo
    server echo1 127.0.0.1:${echoPort}
`,
    { globalMaxconn: 100, mode: 'http' },
  );

describe('allocation failures in session_accept (http mode, no handshake, dev12)', () => {
  let echo: Backend;
  let proxy: ProxyProcess;
  let baseline: number;

  beforeAll(async () => {
    // The first allocation attempt at each site fails: connection 1 fails at its session,
    // connection 2 at its task, 3 at req, 4 at rep, 5 at txn; connection 6 is served.
    ({ echo, proxy, baseline } = await startEchoedProxy(httpConfig, [], {
      EMBRYONIC_FAIL_ALLOC: 'session:1,task:1,req:1,rep:1,txn:1',
    }));
  });

  afterEach(() => expectSettled(proxy, baseline));

  afterAll(() => stopEchoedProxy(proxy, echo));

  it('answers 500 when the session or its task cannot be allocated, and limits the listener for 100 ms', async () => {
    const a = client(proxy.port);
    const b = client(proxy.port);
    const [oa, ob] = await Promise.all([a.outcome, b.outcome]);
    expect([oa.data, ob.data]).toEqual([HTTP_500_DEV12, HTTP_500_DEV12]);
    expect([oa.how, ob.how]).toEqual(['fin', 'fin']);
    // session_accept returned -1 for the first: the listener waits 100 ms before the second. The
    // gap is measured from the first's answer, which a loaded machine may delay by tens of ms.
    expect(oa.ms).toBeLessThan(200);
    expect(ob.ms - oa.ms).toBeGreaterThanOrEqual(80);
    expect(ob.ms).toBeLessThan(500);
    const pool = await proxy.pool();
    expect(pool.sites.session).toMatchObject({ failed: 1, allocs: 1, frees: 1 });
    expect(pool.sites.task).toMatchObject({ failed: 1, allocs: 0 });
    // The failed session allocation happened before the frontend counters: only the task failure
    // counted a connection (cum_conn), and neither counted a session.
    const fe = numbers((await proxy.stat()).get('fe_http/FRONTEND'), 'conn_tot', 'stot', 'scur');
    expect(fe).toEqual({ conn_tot: 1, stot: 0, scur: 0 });
    const info = await proxy.info();
    expect(Number(info.CurrConns)).toBe(0);
    expect(Number(info.PoolFailed)).toBe(2);
  });

  it.each([
    ['req', { req: { failed: 1, allocs: 0 } }],
    ['rep', { req: { allocs: 1, frees: 1 }, rep: { failed: 1, allocs: 0 } }],
    ['txn', { req: { allocs: 2, frees: 2 }, rep: { allocs: 1, frees: 1 }, txn: { failed: 1, allocs: 0 } }],
  ] as const)(
    'answers 500 when the %s allocation of session_complete fails, counting the session and freeing what it allocated',
    async (_site, expected) => {
      const before = numbers((await proxy.stat()).get('fe_http/FRONTEND'), 'conn_tot', 'stot');
      await sleep(110); // past the 100 ms the listener waits after the previous failure
      const o = await client(proxy.port).outcome;
      expect(o).toMatchObject({ how: 'fin', data: HTTP_500_DEV12 });
      expect(numbers((await proxy.stat()).get('fe_http/FRONTEND'), 'conn_tot', 'stot')).toEqual({
        conn_tot: before.conn_tot + 1,
        stot: before.stot + 1,
      });
      expect((await proxy.pool()).sites).toMatchObject(expected);
    },
  );

  it('forwards an http request to the backend once no allocation fails', async () => {
    await sleep(110);
    const accepted = echo.accepted;
    const c = client(proxy.port, { first: 'GET / HTTP/1.0\r\n\r\n' });
    await waitFor('the echo', () => (c.socket.bytesRead >= 18 ? true : undefined));
    c.socket.end();
    expect(await c.outcome).toMatchObject({ how: 'fin', data: 'GET / HTTP/1.0\r\n\r\n' });
    expect(echo.accepted).toBe(accepted + 1);
    expect((await proxy.pool()).sites.txn).toMatchObject({ allocs: 1, frees: 1 });
  });

  it('answers a monitor-net source with "HTTP/1.0 200 OK" and closes, without a session', async () => {
    const before = numbers((await proxy.stat()).get('fe_http/FRONTEND'), 'conn_tot', 'stot');
    const accepted = echo.accepted;
    const o = await client(proxy.port, { localAddress: '127.0.0.3' }).outcome;
    expect(o).toMatchObject({ how: 'fin', data: HTTP_200 });
    expect(numbers((await proxy.stat()).get('fe_http/FRONTEND'), 'conn_tot', 'stot')).toEqual({
      conn_tot: before.conn_tot + 1,
      stot: before.stot,
    });
    expect(echo.accepted).toBe(accepted);
  });

  it('drains what a monitor-net source sent before answering it', async () => {
    const c = client(proxy.port, { localAddress: '127.0.0.3', first: 'GET /health HTTP/1.0\r\n\r\n' });
    expect((await c.outcome).data).toBe(HTTP_200);
  });
});

describe('the 2.6 profile', () => {
  let echo: Backend;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    echo = await startBackend('echo');
    proxy = await startProxyProcess(
      (dir) => httpConfig(echo.port)(dir).replace('    monitor-net 127.0.0.3/32\n', ''),
      ['--profile', '2.6', '--fail-alloc', 'req:1'],
    );
  });

  afterAll(() => stopEchoedProxy(proxy, echo));

  it('closes without a 500 when session_complete fails in session_accept (ret = 0)', async () => {
    const o = await client(proxy.port).outcome;
    expect(o).toMatchObject({ how: 'fin', data: '' });
    expect((await proxy.pool()).sites.req.failed).toBe(1);
    // ret = 0: the listener keeps accepting at once; the next connection is served.
    const c = client(proxy.port, { first: 'GET / HTTP/1.0\r\n\r\n' });
    await waitFor('the echo', () => (c.socket.bytesRead >= 18 ? true : undefined));
    c.socket.end();
    expect((await c.outcome).how).toBe('fin');
  });
});

describe('embryonic proxy -f with a bad configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-cfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 1 naming file:line, as HAProxy does, for a keyword the profile does not have', () => {
    const file = join(dir, 'bad.cfg');
    writeFileSync(file, 'frontend f\n    bind 127.0.0.1:0\n    monitor-net 10.0.0.0/8\n');
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/embryonic.js'), 'proxy', '-f', file, '--profile', '2.6'],
      {
        encoding: 'utf8',
        timeout: 15_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `[ALERT] config : parsing [${file}:3] : 'monitor-net' doesn't exist anymore. Please use 'http-request return status 200 if { src 10.0.0.0/8 }' instead.`,
    );
  });
});

describe('embryonic proxy --monitor when it cannot start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-nostart-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A tcp frontend on 127.0.0.1:<port> in <dir>/<name>.cfg; returns the file's path. */
  function writeConfig(name: string, port: number): string {
    const file = join(dir, `${name}.cfg`);
    const cfg = proxyConfig(
      dir,
      '1s',
      `
frontend fe_tcp
    bind 127.0.0.1:${port} name main
    default_backend be_echo

backend be_echo
    server echo1 127.0.0.1:9
`,
    );
    writeFileSync(file, cfg);
    return file;
  }

  it('exits 1 at once with the ENOENT of a trace file in a directory that does not exist', () => {
    const file = writeConfig('trace', 0);
    const trace = join(dir, 'no-such-dir', 'trace.ndjson');
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/embryonic.js'), 'proxy', '--monitor', '--trace', trace, '-f', file],
      { encoding: 'utf8', timeout: 15_000 },
    );
    expect(r.signal).toBeNull(); // not killed by the timeout: nothing kept it alive
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`embryonic proxy: ENOENT: no such file or directory, open '${trace}'`);
  });

  it('rejects with the bind error and leaves no monitor thread or trace fd open when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const file = writeConfig('bind', port);
      const trace = join(dir, 'bind.ndjson');
      await stat(dir); // starts libuv's thread pool now, so that it does not count below
      const before = threadCount();
      const lines: string[] = [];
      await expect(
        startProxy(file, { monitor: true, trace, log: (_to, text) => void lines.push(text) }),
      ).rejects.toThrow(/EADDRINUSE/);
      expect(threadCount()).toBe(before);
      expect(fdsOn(realpathSync(trace))).toBe(0); // the OS names an fd's file by its real path
      const kinds = readFileSync(trace, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { kind: string }).kind);
      expect(kinds).toEqual(['header']); // opened once, written whole, closed
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

/** How many of this process's fds are open on `path` now (Linux: /proc/self/fd). */
function fdsOn(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // the fd of the listing itself, closed by now
    }
  }).length;
}

/** How many threads this process runs now (Linux: /proc/self/task). */
function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}
