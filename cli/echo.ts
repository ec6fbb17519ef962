/**
 * `embryonic echo PORT`: a tiny echo server on 127.0.0.1, the backend of examples/haproxy.cfg and
 * of the benchmarks.
 *
 * It reads each connection into memory of its own (impl/clientSocket.ts, takeOverSocket) rather
 * than into a new Buffer per read: as a backend of the benchmarks it must not be what sets the
 * pace, and a Buffer per read made its cost per byte double from one process to the next
 * (glibc's heap trimmed and faulted in again after each collection; impl/clientSocket.ts says
 * more). A connection's first read goes into a shared area and is written from a copy; the
 * connection then gets an area of its own (ECHO_AREA bytes) until it closes, so that a connection
 * that never sent a byte (row 1's full sessions) holds none. Reading stops while a write from that
 * area is pending, and goes on at its callback.
 */
import net from 'node:net';
import { takeOverSocket } from '../impl/clientSocket.ts';
import { flag, parseArgs, UsageError, type Command } from './command.ts';

export const echoCommand: Command = {
  name: 'echo',
  summary: 'run a tiny echo backend on 127.0.0.1:PORT (for examples/haproxy.cfg)',
  usage: [
    'Usage: embryonic echo PORT [--host ADDR]',
    '',
    'Listens on ADDR:PORT (default 127.0.0.1) and writes back every byte it receives; it closes its',
    'side when the client closes its own. SIGTERM or SIGINT stops it. Port 0 picks a free port; the',
    'line printed on stderr says which.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, { values: ['host'], positionals: 1 });
    const [portText] = parsed.positionals;
    if (portText === undefined) throw new UsageError('a PORT is needed');
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`"${portText}" is not a port`);
    const host = flag(parsed, 'host') ?? '127.0.0.1';
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.on('connection', echoOnConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    console.error(`embryonic echo: listening on ${host}:${(server.address() as net.AddressInfo).port}`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return 0;
  },
};

const open = new Set<net.Socket>();

/** The size of a connection's own read area, as node:net reads (64 KiB). */
const ECHO_AREA = 64 * 1024;

/** Where a connection's first read goes; what is read there is copied before it is written. */
const sharedArea = Buffer.allocUnsafeSlow(ECHO_AREA);

/** Each connection's own read area, from its first read on, and its write callback. */
interface Own {
  area: Buffer;
  onWritten: () => void; // echoOnWritten bound to the socket
}
const owns = new WeakMap<net.Socket, Own>();

/** The area of the next read of the socket whose read callback ran last (echoReadArea). */
let nextArea: Buffer = sharedArea;

function echoOnConnection(accepted: net.Socket): void {
  nextArea = sharedArea;
  // A Node without what the take-over needs: the socket echoes through its own reads.
  const socket = takeOverSocket(accepted, { buffer: echoReadArea, callback: echoOnRead }) ?? accepted;
  open.add(socket);
  socket.on('error', echoOnError);
  socket.on('close', echoOnClose);
  if (socket === accepted) {
    socket.pipe(socket);
    socket.resume();
    return;
  }
  socket.on('end', echoOnEnd);
  socket.resume();
}

/** node:net's `onread.buffer`: the area the last read callback chose. */
function echoReadArea(): Buffer {
  return nextArea;
}

/**
 * Writes back one read of `socket` (`nread` bytes at the start of `area`). Reading goes on (true)
 * when the kernel took them at once; else it stops until the write's callback, since the next read
 * would land where the write still reads.
 */
function echoOnRead(this: net.Socket, nread: number, area: Buffer): boolean {
  let own = owns.get(this);
  const taken = own === undefined ? Buffer.from(area.subarray(0, nread)) : area.subarray(0, nread);
  if (own === undefined) {
    own = { area: Buffer.allocUnsafeSlow(ECHO_AREA), onWritten: echoOnWritten.bind(this) };
    owns.set(this, own);
  }
  nextArea = own.area;
  this.write(taken, own.onWritten);
  return this.writableLength === 0;
}

/** A write reached the kernel: once none is pending, a stopped socket reads on. */
function echoOnWritten(this: net.Socket): void {
  if (this.writableLength === 0 && !this.destroyed) this.resume();
}

/** The client closed its side: close ours once what is written went out. */
function echoOnEnd(this: net.Socket): void {
  this.end();
}

function echoOnError(this: net.Socket): void {
  this.destroy();
}

function echoOnClose(this: net.Socket): void {
  open.delete(this);
}
