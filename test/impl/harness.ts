/**
 * What the real-socket tests of impl/ share: the proxy started as a child process
 * (`node bin/embryonic.js proxy -f FILE`), observed only from outside (its stats socket, its
 * stderr, /proc/<pid>/fd), clients that report how their connection ended (FIN or RST, and when),
 * and small backends (echo, refusing, resetting). Everything binds 127.0.0.1 (clients may bind
 * other loopback sources, 127.0.0.2 and up, to match source rules); every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { FdReport } from '../../impl/fdtab.ts';
import type { PoolLedger } from '../../impl/pool.ts';

export const ROOT = join(import.meta.dirname, '../..');
export const CERT = join(import.meta.dirname, 'fixtures/site.pem');

/**
 * `n` bytes of the tests' byte stream from offset `from`, a multiple of 4: each 4-byte word holds
 * its own offset (mod 2^32, little-endian), so no two spans are alike, and a span written twice,
 * out of order, or overwritten while a write still read it shows when what came back is compared
 * with it. `n` need not be a multiple of 4: a span the kernel cut anywhere (what a reset socket
 * had read) ends with the first bytes of its last word, as the stream has them. Pure.
 */
export function streamBytes(from: number, n: number): Buffer {
  if (from % 4 !== 0) throw new Error(`streamBytes: ${from} is not the offset of a word`);
  const b = Buffer.alloc(n + 3); // the last word whole, then cut to n
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((from + i) % 2 ** 32, i);
  return b.subarray(0, n);
}

/**
 * Writes the tests' byte stream (streamBytes) on <s> from its start, 64 KiB per write, until a
 * write waits more than <stallMs> for its drain (the path stalled: every buffer on it is full) or
 * <capBytes> were written. Reads nothing itself: the caller's socket reads as the caller set it.
 * Resolves with how much was written and whether the path stalled. <s> stays the caller's.
 */
export async function writeUntilStalled(
  s: net.Socket,
  stallMs: number,
  capBytes: number,
): Promise<{ written: number; stalled: boolean }> {
  let written = 0;
  while (written < capBytes) {
    const taken = s.write(streamBytes(written, 65536));
    written += 65536;
    if (!taken && !(await drainedWithin(s, stallMs))) return { written, stalled: true };
  }
  return { written, stalled: false };
}

/** Resolves true at <s>'s next 'drain', or false if <ms> pass first (the listener is then removed). */
function drainedWithin(s: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const drained = function stallOnDrain(): void {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(function stallOnTimeout() {
      s.off('drain', drained);
      resolve(false);
    }, ms);
    s.once('drain', drained);
  });
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every 20 ms until it returns a value other than undefined, or fails after
 * `timeoutMs` with `what` in the message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 3000,
): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** How proxyConfig() departs from the global and defaults sections most real-socket tests share. */
export interface SharedSections {
  globalMaxconn?: number; //   'maxconn' of the global section (none if absent)
  statsAdmin?: boolean; //     the stats socket at level admin (set clock, set fail-alloc, ...)
  mode?: 'tcp' | 'http'; //    the defaults' mode (tcp if absent); the log option follows it
}

/**
 * Returns a test's haproxy.cfg: the global and defaults sections (one thread, the raw log on
 * stderr, where ProxyProcess.lines() reads it, the stats socket at `${dir}/stats.sock`, tcp mode
 * with tcplog, timeout connect 1s, timeout server 5s, timeout client <timeoutClient> such as
 * '250ms'), as <shared> amends them, then <sections>: the test's own frontend and backend. Pure.
 */
export function proxyConfig(
  dir: string,
  timeoutClient: string,
  sections: string,
  shared: SharedSections = {},
): string {
  const mode = shared.mode ?? 'tcp';
  return `
global
${shared.globalMaxconn === undefined ? '' : `    maxconn ${shared.globalMaxconn}\n`}    nbthread 1
    log stderr format raw local0 info
    stats socket ${dir}/stats.sock${shared.statsAdmin ? ' level admin' : ''}

defaults
    mode ${mode}
    log global
    option ${mode}log
    timeout connect 1s
    timeout server 5s
    timeout client ${timeoutClient}
${sections}`;
}

/** A proxy running as a child process. */
export interface ProxyProcess {
  readonly pid: number;
  readonly port: number;
  readonly dir: string; //        its temporary directory: config, stats socket, trace
  readonly statsPath: string;
  /** Everything the proxy wrote on stderr so far. */
  stderr(): string;
  /** The stderr lines matching `re`. */
  lines(re: RegExp): string[];
  /** Sends one CLI line to the stats socket and returns the answer. */
  query(cmd: string): Promise<string>;
  /** `show stat`, as rows keyed "pxname/svname", each a field → value map. */
  stat(): Promise<Map<string, Record<string, string>>>;
  /** `show info`, as a field → value map. */
  info(): Promise<Record<string, string>>;
  pool(): Promise<PoolLedger>;
  fd(): Promise<FdReport>;
  /** `show violations`: what the proxy's host found wrong in the effects it executed. */
  violations(): Promise<string[]>;
  /** The number of open fds of the proxy process (/proc/<pid>/fd). */
  fdCount(): number;
  /** True until the process exited. */
  running(): boolean;
  /** Sends `signal` and resolves when the process exited. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/**
 * Starts `node bin/embryonic.js proxy -f CFG ARGS...`, where CFG is `config(dir)` written in a
 * fresh temporary directory `dir` (put the stats socket at `${dir}/stats.sock`); with <launch>, node
 * runs those arguments instead of `bin/embryonic.js proxy` (another way to start the same command).
 * Resolves once the proxy says where it listens; rejects (and kills it) if it exits first or after
 * 15 s. The caller must call stop().
 */
export async function startProxyProcess(
  config: (dir: string) => string,
  args: string[] = [],
  env: Record<string, string> = {},
  launch: string[] = [join(ROOT, 'bin/embryonic.js'), 'proxy'],
): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-impl-'));
  const cfgPath = join(dir, 'haproxy.cfg');
  writeFileSync(cfgPath, config(dir));
  const child = spawn(process.execPath, [...launch, '-f', cfgPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (t: string) => (err += t));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let port: number;
  try {
    port = await Promise.race([
      waitFor(
        'the proxy to listen',
        () => {
          const m = /listening on [^ ]+:(\d+)/.exec(err);
          return m ? Number(m[1]) : undefined;
        },
        15_000,
      ),
      exited.then((e) => {
        throw new Error(`the proxy exited (${e.code ?? e.signal}) before listening:\n${err}`);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return processHandle(child, port, dir, () => err, exited);
}

function processHandle(
  child: ChildProcess,
  port: number,
  dir: string,
  stderr: () => string,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
): ProxyProcess {
  const statsPath = join(dir, 'stats.sock');
  const query = (cmd: string) => cliQuery(statsPath, cmd);
  return {
    pid: child.pid!,
    port,
    dir,
    statsPath,
    stderr,
    lines: (re) =>
      stderr()
        .split('\n')
        .filter((l) => re.test(l)),
    query,
    async stat() {
      const text = await query('show stat');
      const [header, ...rows] = text.trim().split('\n');
      const fields = header!.slice(2).split(',');
      const out = new Map<string, Record<string, string>>();
      for (const r of rows) {
        const cells = r.split(',');
        const rec: Record<string, string> = {};
        fields.forEach((f, i) => (rec[f] = cells[i] ?? ''));
        out.set(`${rec.pxname}/${rec.svname}`, rec);
      }
      return out;
    },
    async info() {
      const text = await query('show info');
      return Object.fromEntries(
        text
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      );
    },
    pool: async () => JSON.parse(await query('show pool')) as PoolLedger,
    fd: async () => JSON.parse(await query('show fd')) as FdReport,
    violations: async () =>
      (JSON.parse(await query('show violations')) as { violations: string[] }).violations,
    fdCount: () => readdirSync(`/proc/${child.pid}/fd`).length,
    running: () => child.exitCode === null && child.signalCode === null,
    async stop(signal = 'SIGTERM') {
      const t = performance.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const r = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return { ...r, ms: performance.now() - t };
    },
  };
}

/**
 * Returns <proxy>'s fd count once it is idle (it answered a CLI query, then 100 ms passed): the
 * baseline every scenario must return to.
 */
export async function idleFds(proxy: ProxyProcess): Promise<number> {
  await proxy.query('show info');
  await sleep(100);
  return proxy.fdCount();
}

/** What expectSettled() checks beyond the fd count, the pools, the fd violations and the host's. */
export interface SettledAlso {
  noConnection?: boolean; //   `show info` CurrConns is 0
  noLiveFd?: boolean; //       `show fd` lists no live fd
}

/**
 * Checks that a scenario left nothing behind on <proxy>: waits (3 s at most) for its fd count to
 * return to <baseline>, then expects, with <also>.noConnection, CurrConns 0; the pools balanced;
 * no fd violation and no host violation (`show violations`); with <also>.noLiveFd, no live fd.
 * Fails the running test otherwise.
 */
export async function expectSettled(
  proxy: ProxyProcess,
  baseline: number,
  also: SettledAlso = {},
): Promise<void> {
  await waitFor('the fds to return to the baseline', () => (proxy.fdCount() === baseline ? true : undefined));
  if (also.noConnection) expect((await proxy.info()).CurrConns).toBe('0');
  expect(poolBalanced(await proxy.pool())).toBe(true);
  const fd = await proxy.fd();
  expect(fd.violations).toEqual([]);
  expect(await proxy.violations()).toEqual([]);
  if (also.noLiveFd) expect(fd.live).toEqual([]);
}

/** Sends `cmd` to the unix CLI socket at `path` and resolves with the whole answer (bounded: 3 s). */
export function cliQuery(path: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer to "${cmd}"`));
    }, 3000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(`${cmd}\n`);
  });
}

/** How a client's connection ended, as the client saw it. */
export interface Outcome {
  how: 'fin' | 'rst' | 'error'; // FIN ('end'), RST (ECONNRESET), or another error
  ms: number; //                   ms from the client's connect to the FIN or the error
  data: string; //                 everything received
  code?: string; //                the error code, for 'rst' and 'error'
}

/** A test client. */
export interface Client {
  socket: net.Socket;
  localPort: number; //          the client's port (known once connected)
  connected: Promise<void>;
  outcome: Promise<Outcome>; // resolves when the socket closed; rejects after `limitMs`
  send(data: string | Uint8Array): void;
}

/**
 * Connects to 127.0.0.1:`port` (from `localAddress` if given), sends `first` once connected if
 * given, and reports how the proxy ended the connection. After a FIN the client closes its own
 * side. The outcome rejects after `limitMs` (the socket is then destroyed).
 */
export function client(
  port: number,
  opts: { localAddress?: string; first?: string | Uint8Array; limitMs?: number } = {},
): Client {
  const socket = net.connect({
    port,
    host: '127.0.0.1',
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  let start = performance.now();
  let data = '';
  let result: Omit<Outcome, 'data'> | null = null;
  const c = { localPort: 0 } as Client;
  const connected = new Promise<void>((resolve) =>
    socket.once('connect', () => {
      start = performance.now();
      c.localPort = socket.localPort ?? 0;
      if (opts.first !== undefined) socket.write(opts.first);
      resolve();
    }),
  );
  const outcome = new Promise<Outcome>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `the connection did not end within ${opts.limitMs ?? 3000} ms (got ${JSON.stringify(data)})`,
        ),
      );
    }, opts.limitMs ?? 3000);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => {
      result ??= { how: 'fin', ms: performance.now() - start };
      socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      result ??= {
        how: e.code === 'ECONNRESET' ? 'rst' : 'error',
        ms: performance.now() - start,
        code: e.code ?? '',
      };
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ...(result ?? { how: 'error', ms: performance.now() - start, code: 'closed' }), data });
    });
  });
  return Object.assign(c, { socket, connected, outcome, send: (d: string | Uint8Array) => socket.write(d) });
}

/** A backend server on 127.0.0.1 that the tests run themselves. */
export interface Backend {
  port: number;
  accepted: number; //   connections accepted so far
  received: Buffer[]; // every byte each connection sent, one entry per connection, in accept order
  close(): Promise<void>;
}

/**
 * Starts a backend: 'echo' writes back what it gets and closes when the client closes; 'reset'
 * resets the connection when the first bytes arrive. Both record what they receive.
 */
export async function startBackend(kind: 'echo' | 'reset'): Promise<Backend> {
  const open = new Set<net.Socket>();
  const b: Backend = { port: 0, accepted: 0, received: [], close: () => Promise.resolve() };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const index = b.received.length;
    b.accepted++;
    b.received.push(Buffer.alloc(0));
    s.on('data', function backendOnData(d: Buffer) {
      b.received[index] = Buffer.concat([b.received[index]!, d]);
    });
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => s.destroy());
    if (kind === 'echo') s.pipe(s);
    else s.once('data', () => s.resetAndDestroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as net.AddressInfo).port;
  b.close = () =>
    new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    });
  return b;
}

/** A proxy under test, the echo backend it forwards to, and the proxy's idle fd count. */
export interface EchoedProxy {
  echo: Backend;
  proxy: ProxyProcess;
  baseline: number; // idleFds(proxy) once started: what every scenario must return to
}

/**
 * Starts an echo backend, then the proxy on config(echo.port) with <args> and <env>
 * (startProxyProcess), and measures its idle fd count. If the proxy does not start, closes the
 * backend and rejects. The caller stops both with stopEchoedProxy().
 */
export async function startEchoedProxy(
  config: (echoPort: number) => (dir: string) => string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<EchoedProxy> {
  const echo = await startBackend('echo');
  try {
    const proxy = await startProxyProcess(config(echo.port), args, env);
    return { echo, proxy, baseline: await idleFds(proxy) };
  } catch (e) {
    await echo.close();
    throw e;
  }
}

/**
 * Expects <proxy>'s own checks clean: no host violation (`show violations`) and none in its pool
 * ledger or fd table, whatever it still holds. Fails the running test otherwise.
 */
export async function expectNoViolations(proxy: ProxyProcess): Promise<void> {
  const [host, pool, fd] = await Promise.all([proxy.violations(), proxy.pool(), proxy.fd()]);
  expect({ host, pool: pool.violations, fd: fd.violations }).toEqual({ host: [], pool: [], fd: [] });
}

/**
 * Stops <proxy> (with <signal>, SIGTERM by default), then closes <echo>. Either may be undefined
 * (a beforeAll that failed), and is then left alone. A proxy still running must first show no
 * violation (expectNoViolations); on SIGTERM or SIGINT it must exit 0: it exits 1 when a socket or
 * timer it held outlived its stop (cli/proxy.ts). Fails the running hook otherwise, after both are
 * stopped.
 */
export async function stopEchoedProxy(
  proxy: ProxyProcess | undefined,
  echo: Backend | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  let failed: unknown = null;
  if (proxy?.running())
    try {
      await expectNoViolations(proxy);
    } catch (err) {
      failed = err; // rethrown once both are stopped
    }
  const exit = await proxy?.stop(signal);
  await echo?.close();
  if (failed !== null) throw failed;
  if (proxy && exit && (signal === 'SIGTERM' || signal === 'SIGINT'))
    expect({ code: exit.code, signal: exit.signal }, proxy.stderr().slice(-2000)).toEqual({
      code: 0,
      signal: null,
    });
}

/** A port on 127.0.0.1 whose connections never complete: SYNs are dropped, connect() waits. */
export interface StalledPort {
  port: number;
  stop(): Promise<void>;
}

/**
 * Returns a port on 127.0.0.1 where a child process listens with a backlog of 1 (0 would be
 * Node's default, 511) and never accepts (its event loop blocked for at most 30 s), its accept
 * queue filled by connections of ours:
 * the kernel drops every further SYN, so a connect() there neither succeeds nor is refused until
 * it gives up. stop() closes our connections and kills the child; the caller must call it.
 */
export async function stalledPort(): Promise<StalledPort> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "const s = require('net').createServer(); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => { console.log(s.address().port); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000); });",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // The child blocked its loop right after the port was written (a pipe write is synchronous on
  // Linux): from here on nothing accepts on that port.
  const fillers = [0, 1, 2, 3].map(() => net.connect(port, '127.0.0.1').on('error', () => {}));
  await sleep(100);
  return {
    port,
    stop: async () => {
      for (const f of fillers) f.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Returns a port on 127.0.0.1 where nothing listens (bound, then closed): connecting is refused. */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The stats row "pxname/svname" as numbers for the given fields. */
export function numbers<F extends string>(
  row: Record<string, string> | undefined,
  ...fields: F[]
): Record<F, number> {
  if (!row) throw new Error('no such stats row');
  return Object.fromEntries(fields.map((f) => [f, Number(row[f])])) as Record<F, number>;
}

/** True iff every pool site has as many frees as allocations and nothing live, and no violation. */
export function poolBalanced(p: PoolLedger): boolean {
  return (
    p.violations.length === 0 && Object.values(p.sites).every((s) => s.live === 0 && s.allocs === s.frees)
  );
}
