/**
 * The reads of a plain bind's client sockets into memory the proxy already holds, as HAProxy's
 * recv() fills a buffer it has: a shared read area while the connection is embryonic (never a pool
 * buffer), then the session's req channel buffer in the data phase.
 *
 * Why. node:net reads a listener's sockets into a new Buffer per read (malloc'd by Node, freed by
 * V8's collector). Forwarding at some hundreds of MB/s, those buffers pile up between two
 * collections, and once they are freed glibc gives the top of its heap back to the kernel, which
 * must then fault the same pages in again: the bench's forwarding row ran at two speeds from one
 * process to the next, one half of the other, depending on that heap's layout
 * (MALLOC_TRIM_THRESHOLD_ made the slow processes fast). node:net offers `onread` (reads into a
 * buffer its caller gives) only to the sockets it connects, so the accepted socket is taken over:
 * its handle (the same fd, never closed or reopened) goes to a node:net Socket built with `onread`.
 *
 * What each read becomes (clientOnRead), for the connection whose stream or handshake reads the
 * socket (their own maps say which: nothing here is kept per connection):
 * - one that landed in the session's req channel buffer while its stream runs is forwarded from
 *   there (streamClientRead, impl/stream.ts), with no copy and no memory of its own (a view of
 *   the buffer's free part is all a read takes);
 * - any other read landed in the shared read area and is delivered as a 'data' event whose chunk
 *   is a view of that area, valid only until the handlers return (the PROXY header's reader and
 *   the stream's copy path copy what they keep, within tune.bufsize: the area's size; the TLS
 *   ClientHello's reader keeps views of its reads, which is one more reason a TLS bind's socket
 *   is never adopted).
 * After each read, the next one's destination is chosen: the req buffer only while the stream
 * runs and holds it, else the shared area. A read can land in the req buffer only while the socket
 * reads: the stream stops it while the buffer is full, and pauses it for good when it ends, before
 * the buffer is freed.
 *
 * TLS binds keep node:net's own reads: the TLS layer takes the accepted socket's stream whole.
 */
import net from 'node:net';
import { handshakeConnOf } from './handshake.ts';
import { streamClientArea, streamClientRead, streamConnOf } from './stream.ts';

/**
 * The shared read areas, one per tune.bufsize in use (a process runs one frontend; tests run
 * several): where an adopted socket's reads go outside its stream. Never pool buffers, and never
 * replaced, so that a read's area is recognised by identity.
 */
const sharedAreas = new Map<number, Buffer>();

/** The destination of the next read of the socket whose read callback ran last (clientReadArea). */
let nextArea: Buffer = Buffer.alloc(0);

/** The shared read area of `bufsize` bytes (sharedAreas). */
function sharedArea(bufsize: number): Buffer {
  let area = sharedAreas.get(bufsize);
  if (area === undefined) {
    area = Buffer.allocUnsafeSlow(bufsize);
    sharedAreas.set(bufsize, area);
  }
  return area;
}

/** What node:net's internals must offer for takeOverSocket (checked, not assumed). */
interface AcceptedInternals {
  _handle?: ({ fd?: number; useUserBuffer?: unknown } & object) | null;
}

/** node:net's `onread` option: where each read goes, and what takes it (false: stop reading). */
export interface OnRead {
  buffer: Uint8Array | (() => Uint8Array);
  callback: (this: net.Socket, nread: number, buf: Buffer) => boolean;
}

/**
 * Takes over `accepted`, a socket a listener with pauseOnConnect has just accepted, never read and
 * without listeners: returns a node:net Socket over its handle (the same fd, neither closed nor
 * reopened), paused, half-open allowed, that reads with `onread` (node:net gives `onread` only to
 * the sockets it connects). `accepted` is spent: its handle is taken, and it is destroyed without
 * closing the fd, which releases the listener's count of it. The returned socket owns the fd.
 * Returns null, leaving `accepted` untouched, when this Node's sockets lack what the take-over needs.
 */
export function takeOverSocket(accepted: net.Socket, onread: OnRead): net.Socket | null {
  const internals = accepted as unknown as AcceptedInternals;
  const handle = internals._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || accepted.readableLength > 0) return null;
  internals._handle = null;
  accepted.destroy();
  return new net.Socket({
    handle,
    allowHalfOpen: true,
    pauseOnCreate: true,
    readable: true,
    writable: true,
    onread,
  } as net.SocketConstructorOpts);
}

/**
 * Returns a socket that reads `accepted`'s connection into the proxy's memory (see the file
 * comment; takeOverSocket's requirements and ownership), whose first read goes into the shared
 * read area of `bufsize` bytes. Its reads go to the handshake or the stream that reads it. Returns
 * `accepted` itself, untouched, when the take-over cannot be done.
 */
export function adoptClientSocket(accepted: net.Socket, bufsize: number): net.Socket {
  nextArea = sharedArea(bufsize);
  return takeOverSocket(accepted, CLIENT_ONREAD) ?? accepted;
}

/** node:net's `onread.buffer`: where the next read goes, chosen by the read callback that just ran. */
function clientReadArea(): Buffer {
  return nextArea;
}

/**
 * One read of an adopted client socket: `nread` bytes at the start of `area`. Forwards it, or
 * delivers it as a 'data' event, then chooses the next read's area. Returns false to stop reading
 * (the stream waits for its write, or a handler paused the socket).
 */
function clientOnRead(this: net.Socket, nread: number, area: Buffer): boolean {
  // The connection of the stream that reads the socket, else of the handshake that reads it.
  const conn = streamConnOf(this) ?? handshakeConnOf(this);
  if (!conn) {
    // Neither reads it: nothing may. Reading stops; the bytes are dropped.
    nextArea = area;
    return false;
  }
  const shared = sharedArea(conn.fe.pool.bufsize);
  let more: boolean;
  if (area === shared) {
    conn.fe.pool.countRead('area');
    this.emit('data', area.subarray(0, nread));
    more = !this.isPaused();
  } else {
    // Any other area is the free part of the req buffer streamClientArea gave: the stream checks it.
    more = streamClientRead(conn, area, nread);
  }
  nextArea = streamClientArea(conn) ?? shared;
  return more;
}

/** The `onread` of every adopted client socket. */
const CLIENT_ONREAD: OnRead = { buffer: clientReadArea, callback: clientOnRead };
