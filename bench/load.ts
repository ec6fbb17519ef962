/**
 * The load generator: a process of its own (`node --import tsx bench/load.ts`), separate from the
 * proxy under test and from the driver (bench/run.ts), so that neither the driver's work nor the
 * proxy's competes with the client in one event loop. Every socket it opens goes to 127.0.0.1.
 *
 * Protocol: one JSON object a line on stdin, `{"id": N, "op": NAME, ...params}`; one answer a line
 * on stdout, `{"id": N, "ok": true, "result": {...}}` or `{"id": N, "ok": false, "error": "..."}`.
 * Requests run one at a time, in order. The end of stdin (or SIGTERM) closes every socket and
 * exits 0. Nothing else is written on stdout.
 *
 * Operations (every loop bounded in count and in time):
 *   hello                      → { pid, nofile }
 *   flood { host, port, count, header, sources, concurrency, timeoutMs }
 *                              opens <count> connections (at most <concurrency> connecting at once,
 *                              spread over the <sources> addresses, or from the kernel's choice when
 *                              it is empty), sends <header> on each if it is not null, and holds them
 *                              open, reading and dropping what comes
 *                              → { opened, failed, ms, errors }
 *   held                       → { open, closedByProxy }: the held connections still open, and how
 *                              many the proxy closed
 *   release                    resets (RST) every held connection → { released }
 *   accept { host, port, header, durationMs, concurrency, sources, connTimeoutMs }
 *                              <concurrency> loops of: connect, send <header>, close (FIN), wait
 *                              for the proxy's close; for <durationMs>
 *                              → { ops, errors, ms, firstError }: <ops> cycles ended within the window
 *   throughput { host, port, header, durationMs, connections, chunkBytes, sources, connTimeoutMs }
 *                              <connections> connections: header, one round trip to check the
 *                              path, then writes as fast as the proxy takes them for <durationMs>;
 *                              counts what the echo backend sends back through the proxy
 *                              → { bytes, ms, connections }
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** A request as the driver sends it. */
interface Request {
  id: number;
  op: string;
  [param: string]: unknown;
}

/** Held connections (flood), and how many of them the proxy closed. */
const held = new Set<net.Socket>();
let closedByProxy = 0;
/** Every socket opened by an op in progress, destroyed at exit. */
const active = new Set<net.Socket>();

function main(): void {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let queue: Promise<void> = Promise.resolve();
  rl.on('line', function stdinOnLine(line: string) {
    if (!line.trim()) return;
    queue = queue.then(() => serve(line));
  });
  rl.on('close', function stdinOnClose() {
    void queue.then(shutdown);
  });
  process.on('SIGTERM', shutdown);
}

/** Runs one request line and writes its answer. Never rejects. */
async function serve(line: string): Promise<void> {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    answer({ id: -1, ok: false, error: `not JSON: ${line.slice(0, 80)}` });
    return;
  }
  try {
    answer({ id: req.id, ok: true, result: await dispatch(req) });
  } catch (err) {
    answer({ id: req.id, ok: false, error: (err as Error).message });
  }
}

function answer(a: { id: number; ok: boolean; result?: unknown; error?: string }): void {
  process.stdout.write(`${JSON.stringify(a)}\n`);
}

function dispatch(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'hello':
      return Promise.resolve({ pid: process.pid, nofile: openFilesLimit() });
    case 'flood':
      return flood(req as unknown as FloodParams);
    case 'held':
      return Promise.resolve({ open: held.size, closedByProxy });
    case 'release':
      return Promise.resolve(release());
    case 'accept':
      return acceptRun(req as unknown as AcceptParams);
    case 'throughput':
      return throughputRun(req as unknown as ThroughputParams);
    default:
      return Promise.reject(new Error(`unknown op "${req.op}"`));
  }
}

function shutdown(): void {
  for (const s of held) s.destroy();
  for (const s of active) s.destroy();
  process.exit(0);
}

function openFilesLimit(): number | null {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The source address of connection <i>: round robin over <sources>; none (the kernel's choice) if empty. */
function sourceOf(sources: readonly string[], i: number): string | undefined {
  return sources.length === 0 ? undefined : sources[i % sources.length];
}

/** Checks that <host> is a loopback address: the generator never leaves the machine. */
function loopbackOnly(host: string): void {
  if (!/^127\.\d+\.\d+\.\d+$/.test(host)) throw new Error(`host ${host} is not a 127.x address`);
}

// --- flood ---

interface FloodParams {
  host: string;
  port: number;
  count: number;
  header: string | null;
  sources: string[];
  concurrency: number;
  timeoutMs: number;
}

/**
 * Opens p.count connections and holds them (see the header comment). Resolves when every one is
 * connected or failed, or at p.timeoutMs (the ones still connecting are destroyed and failed).
 */
function flood(p: FloodParams): Promise<{ opened: number; failed: number; ms: number; errors: string[] }> {
  loopbackOnly(p.host);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let started = 0;
    let opened = 0;
    let failed = 0;
    let finished = false;
    const errors: string[] = [];
    const connecting = new Set<net.Socket>();
    const deadline = setTimeout(floodOnDeadline, p.timeoutMs);

    function floodOnDeadline(): void {
      for (const s of connecting) {
        s.destroy();
        failed++;
      }
      connecting.clear();
      finish();
    }
    function finish(): void {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      resolve({ opened, failed, ms: performance.now() - t0, errors });
    }
    function next(): void {
      if (finished) return;
      while (started < p.count && connecting.size < p.concurrency) open(started++);
      if (opened + failed >= p.count) finish();
    }
    function open(i: number): void {
      const socket = net.connect({
        host: p.host,
        port: p.port,
        localAddress: sourceOf(p.sources, i),
      });
      connecting.add(socket);
      socket.once('connect', function floodOnConnect() {
        if (!connecting.delete(socket)) return;
        opened++;
        held.add(socket);
        socket.on('close', heldOnClose);
        if (p.header !== null) socket.write(p.header);
        socket.resume(); // read and drop: a close by the proxy is seen
        next();
      });
      socket.on('error', function floodOnError(err: Error) {
        if (connecting.delete(socket)) {
          failed++;
          if (errors.length < 5) errors.push(err.message);
          socket.destroy();
          next();
        }
      });
    }
    next();
  });
}

/** A held connection closed: by the proxy unless released (release() forgets it first). */
function heldOnClose(this: net.Socket): void {
  if (held.delete(this)) closedByProxy++;
}

function release(): { released: number } {
  const n = held.size;
  const sockets = [...held];
  held.clear();
  closedByProxy = 0;
  // An RST, not a FIN: the measure is done, and no TIME_WAIT is left behind for the next rows.
  for (const s of sockets) s.resetAndDestroy();
  return { released: n };
}

// --- accept ---

interface AcceptParams {
  host: string;
  port: number;
  header: string;
  durationMs: number;
  concurrency: number;
  sources: string[];
  connTimeoutMs: number;
}

/**
 * Runs p.concurrency loops of connect / header / FIN / wait for the proxy's close, for
 * p.durationMs (see the header comment). Resolves when every loop has ended its last cycle (each
 * bounded by p.connTimeoutMs).
 */
function acceptRun(
  p: AcceptParams,
): Promise<{ ops: number; errors: number; ms: number; firstError: string | null }> {
  loopbackOnly(p.host);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const end = t0 + p.durationMs;
    let ops = 0;
    let errors = 0;
    let firstError: string | null = null;
    let running = 0;
    let n = 0;

    function cycle(): void {
      if (performance.now() >= end) {
        if (--running === 0) resolve({ ops, errors, ms: p.durationMs, firstError });
        return;
      }
      const socket = net.connect({
        host: p.host,
        port: p.port,
        localAddress: sourceOf(p.sources, n++),
      });
      active.add(socket);
      let failed = false;
      const timer = setTimeout(function acceptOnTimeout() {
        fail(new Error(`no close within ${p.connTimeoutMs} ms`));
      }, p.connTimeoutMs);
      function fail(err: Error): void {
        if (failed) return;
        failed = true;
        errors++;
        firstError ??= err.message;
        socket.destroy();
      }
      socket.once('connect', function acceptOnConnect() {
        socket.end(p.header);
      });
      socket.on('data', function acceptOnData() {
        // nothing is expected back; whatever comes is dropped
      });
      socket.on('error', fail);
      socket.once('close', function acceptOnClose() {
        clearTimeout(timer);
        active.delete(socket);
        if (!failed && performance.now() <= end) ops++;
        cycle();
      });
    }
    for (let i = 0; i < p.concurrency; i++) {
      running++;
      cycle();
    }
  });
}

// --- throughput ---

interface ThroughputParams {
  host: string;
  port: number;
  header: string;
  durationMs: number;
  connections: number;
  chunkBytes: number;
  sources: string[];
  connTimeoutMs: number;
}

/** The byte the round trip check sends before the timed window. */
const PING = Buffer.from('ping\n');

/**
 * Where every throughput connection reads (node:net's `onread`): the bytes are counted, never
 * kept, so one area serves them all, and a read allocates nothing. A Buffer per read would make
 * this process's cost per byte depend on how glibc's heap happens to be laid out (see
 * impl/clientSocket.ts): the load generator must not set the pace of row 3.
 */
const DISCARD = Buffer.allocUnsafeSlow(64 * 1024);

/** What each throughput connection has read so far, and the round trip check waiting on it. */
interface ReadCount {
  bytes: number;
  onCount: (() => void) | null; // the check (openChecked), until it is done
}
const readCounts = new WeakMap<net.Socket, ReadCount>();

/** The `onread` callback of a throughput connection: counts, and tells a waiting check. */
function throughputOnRead(this: net.Socket, nread: number): boolean {
  const count = readCounts.get(this);
  if (count) {
    count.bytes += nread;
    count.onCount?.();
  }
  return true;
}

/** The bytes all of <sockets> have read. */
function bytesRead(sockets: readonly net.Socket[]): number {
  let n = 0;
  for (const s of sockets) n += readCounts.get(s)?.bytes ?? 0;
  return n;
}

/**
 * Opens p.connections connections through the proxy, checks each path with one round trip, then
 * writes for p.durationMs and counts the bytes echoed back within that window. Resolves with them;
 * rejects if a connection fails before the window (connect, round trip within p.connTimeoutMs).
 */
async function throughputRun(
  p: ThroughputParams,
): Promise<{ bytes: number; ms: number; connections: number }> {
  loopbackOnly(p.host);
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < p.connections; i++)
      sockets.push(await openChecked(p.host, p.port, p.header, sourceOf(p.sources, i), p.connTimeoutMs));
    const chunk = Buffer.alloc(p.chunkBytes, 0x61);
    let counting = true;
    const before = bytesRead(sockets);
    const t0 = performance.now();
    const pumps = sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          function pump(): void {
            while (counting && socket.writable) if (!socket.write(chunk)) return; // wait for 'drain'
          }
          socket.on('drain', pump);
          socket.on('error', function throughputOnError() {
            resolve();
          });
          socket.once('close', function throughputOnClose() {
            resolve();
          });
          pump();
          setTimeout(resolve, p.durationMs + 50);
        }),
    );
    await new Promise((r) => setTimeout(r, p.durationMs));
    counting = false;
    const bytes = bytesRead(sockets) - before;
    const ms = performance.now() - t0;
    await Promise.all(pumps);
    return { bytes, ms, connections: sockets.length };
  } finally {
    for (const s of sockets) {
      s.destroy();
      active.delete(s);
    }
  }
}

/**
 * Connects to host:port from <source>, sends <header> and PING, and resolves once PING came back
 * (the path through the proxy to the echo backend works). Rejects on error, close or timeout. The
 * socket reads into DISCARD and counts (throughputOnRead).
 */
function openChecked(
  host: string,
  port: number,
  header: string,
  source: string | undefined,
  timeoutMs: number,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host,
      port,
      localAddress: source,
      onread: { buffer: DISCARD, callback: throughputOnRead },
    });
    const count: ReadCount = { bytes: 0, onCount: checkOnCounted };
    readCounts.set(socket, count);
    active.add(socket);
    socket.setNoDelay(true);
    const timer = setTimeout(function checkOnTimeout() {
      done(new Error(`no echo through the proxy within ${timeoutMs} ms`));
    }, timeoutMs);
    function done(err: Error | null): void {
      clearTimeout(timer);
      count.onCount = null;
      socket.off('error', done);
      socket.off('close', checkOnClose);
      if (err) {
        socket.destroy();
        active.delete(socket);
        reject(err);
      } else resolve(socket);
    }
    function checkOnCounted(): void {
      if (count.bytes >= PING.length) done(null);
    }
    function checkOnClose(): void {
      done(new Error('the proxy closed the connection before the echo'));
    }
    socket.once('connect', function checkOnConnect() {
      socket.write(header);
      socket.write(PING);
    });
    socket.on('error', done);
    socket.on('close', checkOnClose);
  });
}

main();
