/**
 * The socket side of the handshakes of an embryonic connection: the PROXY header, then TLS, under
 * the one deadline armed at accept (impl/driver.ts armDeadline; neither handshake resets it).
 * Each outcome becomes one event of the connection machine; nothing here decides what follows.
 *
 * PROXY header (recvProxyHeader effect → readProxyHeader). The bytes go into a small bounded
 * scratch area, never into a pool buffer (no session buffer exists before the handshake ends):
 *   strict (HAProxy's, the default): HAProxy peeks once, up to tune.bufsize bytes, into its trash
 *     buffer. Here one read (one 'data' event) is copied into the shared trash area (tune.bufsize
 *     bytes, like HAProxy's per-thread trash) and parsed at once: the first non-empty read decides,
 *     and a partial header is PRX_TRUNCATED.
 *   tolerant (`bind ... accept-proxy proxy-tolerant`, not HAProxy): the reads accumulate in the
 *     connection's scratch (bounded: the parser decides within 107 bytes for v1 and tune.bufsize
 *     for v2) until the parser decides, within the same deadline.
 * A valid header → PROXY_HEADER_OK, after the bytes that follow it are put back in front of the
 * socket's stream (socket.unshift) for the next layer (TLS or the data phase), untouched. A parser
 * error → PROXY_HEADER_ERROR with its code. EOF → CLIENT_CLOSE (tolerant with a partial header: the
 * parser's PRX_TRUNCATED at eof). A read error (ECONNRESET) → CLIENT_RESET.
 *
 * TLS (startTlsHandshake effect). The client's first TLS record (its ClientHello) is read whole
 * into the scratch area first, then a server-side tls.TLSSocket over the accepted socket takes it
 * and the rest. A close or reset before that record is whole → CLIENT_CLOSE / CLIENT_RESET with
 * tlsRead 'none' (no byte) or 'partialRecord'; after it, with 'wholeRecords': the machine picks
 * SSL_EMPTY, SSL_ABORT or SSL_HANDSHAKE from that, per profile. 'secure' → TLS_OK; any other
 * error → TLS_ERROR with SSL_HANDSHAKE (HAProxy's "SSL handshake failure"). Node destroys a TLS
 * socket on its error, so that close is a FIN without unread bytes, as the connection machine
 * says. Known gap: once the first record is whole, a close within a later record is reported as
 * 'wholeRecords' (OpenSSL's read state is not visible from Node).
 */
import type net from 'node:net';
import tls from 'node:tls';
import { maxTlvValueFor, parseProxyHeader } from './proxy/parse.ts';
import type { Conn } from './driver.ts';

let trashArea: Buffer = Buffer.alloc(0);

/**
 * Returns the shared scratch area of at least `size` bytes (HAProxy's trash): valid only until
 * the caller returns to the event loop. Never a pool buffer.
 */
export function trash(size: number): Buffer {
  if (trashArea.length < size) trashArea = Buffer.allocUnsafe(size);
  return trashArea.subarray(0, size);
}

const readers = new WeakMap<net.Socket, Conn>();

/** The connection whose handshake has read `socket` (its accepted socket or TLS layer), if any. */
export function handshakeConnOf(socket: net.Socket): Conn | undefined {
  return readers.get(socket);
}

/** The handlers of one read of the accepted socket by this module: a read, the client's EOF, a read error. */
interface SocketReader {
  data: (this: net.Socket, chunk: Buffer) => void;
  end: (this: net.Socket) => void;
  error: (this: net.Socket, err: Error) => void;
}

/** Reads `conn`'s accepted socket with `reader`'s handlers until stopReading. */
function startReading(conn: Conn, reader: SocketReader): void {
  const s = conn.socket;
  readers.set(s, conn);
  s.on('data', reader.data);
  s.on('end', reader.end);
  s.on('error', reader.error);
  s.resume();
}

/** Stops `reader`: the socket is paused, its scratch area dropped, and the next layer will read it. */
function stopReading(conn: Conn, reader: SocketReader): void {
  const s = conn.socket;
  s.pause();
  s.off('data', reader.data);
  s.off('end', reader.end);
  s.off('error', reader.error);
  conn.scratch = null;
}

/**
 * recvProxyHeader: starts reading the PROXY header of `conn` (conn_recv_proxy). Requires the
 * accepted socket, not yet read. The outcome arrives as a connection event from the socket's
 * handlers; until then the socket belongs to this module.
 */
export function readProxyHeader(conn: Conn): void {
  conn.phase = 'proxyHeader';
  startReading(conn, HEADER_READER);
}

/** One read of the header (one recv()). */
function socketOnHeaderData(this: net.Socket, chunk: Buffer): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'proxyHeader') return;
  const { bufsize } = conn.fe.pool;
  const tolerant = conn.fe.cfg.frontend.bind.tolerant;
  let all: Buffer;
  let view: Buffer;
  if (tolerant) {
    all = conn.scratch ? Buffer.concat([conn.scratch, chunk]) : Buffer.from(chunk);
    conn.scratch = all;
    view = all.subarray(0, Math.min(all.length, bufsize));
  } else {
    all = chunk;
    const area = trash(bufsize);
    view = area.subarray(0, chunk.copy(area, 0, 0, bufsize));
  }
  const r = parseProxyHeader(view, {
    mode: tolerant ? 'tolerant' : 'strict',
    bufsize,
    // accept-proxy reads v2 families other than TCP as HAProxy 2.6 does (PROXY v2 postdates dev12,
    // so 2.6 is the HAProxy to follow); proxy-tolerant keeps the spec's fallback to UNSPEC.
    v2OtherFamilies: tolerant ? 'real-addresses' : 'haproxy-2.6',
    maxTlvValue: maxTlvValueOf(conn),
  });
  if (r.status === 'need-more') return;
  stopReading(conn, HEADER_READER);
  if (r.status === 'error') {
    // conn_recv_proxy copies a v2 header's addresses before it walks the TLVs: the kill's log line
    // names the source of a header whose TLVs were found invalid.
    conn.rejectedSource = r.source ?? null;
    conn.fe.connectionEvent(conn, { type: 'PROXY_HEADER_ERROR', code: r.code });
    return;
  }
  conn.proxied = r.header;
  if (all.length > r.consumed) this.unshift(Buffer.from(all.subarray(r.consumed)));
  conn.fe.connectionEvent(conn, { type: 'PROXY_HEADER_OK' });
}

/** The client closed while the header was awaited (recv() == 0). */
function socketOnHeaderEnd(this: net.Socket): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'proxyHeader') return;
  const partial = conn.scratch;
  stopReading(conn, HEADER_READER);
  if (partial && partial.length > 0) {
    const view = partial.subarray(0, Math.min(partial.length, conn.fe.pool.bufsize));
    const r = parseProxyHeader(view, {
      mode: 'tolerant',
      eof: true,
      bufsize: conn.fe.pool.bufsize,
      maxTlvValue: maxTlvValueOf(conn),
    });
    if (r.status === 'error') {
      conn.fe.connectionEvent(conn, { type: 'PROXY_HEADER_ERROR', code: r.code });
      return;
    }
  }
  conn.fe.connectionEvent(conn, { type: 'CLIENT_CLOSE', tlsRead: 'none' });
}

/** The largest generic TLV value the profile's HAProxy stores (maxTlvValueFor). */
function maxTlvValueOf(conn: Conn): number | null {
  return maxTlvValueFor(conn.fe.model.profile);
}

/** A read error while the header was awaited (recv() < 0). */
function socketOnHeaderError(this: net.Socket, _err: Error): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'proxyHeader') return;
  stopReading(conn, HEADER_READER);
  conn.fe.connectionEvent(conn, { type: 'CLIENT_RESET', tlsRead: 'none' });
}

/**
 * The longest record OpenSSL accepts (SSL3_RT_MAX_ENCRYPTED_LENGTH: 2^14 plus 256 of encryption
 * overhead and 64 of MAC): it rejects a record header announcing more at once, with an alert.
 */
export const TLS_RECORD_MAX = 16384 + 256 + 64;

/**
 * startTlsHandshake: starts the server side of TLS on `conn` (ssl_sock_handshake), over the bytes
 * already read after the PROXY header and the rest of the socket. Requires a frontend with a
 * certificate. The client's first TLS record (its ClientHello) is read here first, into the
 * connection's scratch area, and then given to OpenSSL whole: a close or reset before it is whole
 * is known to have left a record half read ('partialRecord'; 'none' if no byte came), the fact
 * ssl_sock_handshake's error code depends on. OpenSSL acts on nothing before that record is whole,
 * so the client sees no difference. The outcome arrives as a connection event; after TLS_OK the
 * TLS socket is paused for the data phase.
 */
export function startTlsHandshake(conn: Conn): void {
  conn.phase = 'tls';
  if (!conn.fe.secureContext) throw new Error('startTlsHandshake on a frontend without ssl crt');
  startReading(conn, HELLO_READER);
}

/**
 * True while `bytes`, the start of a TLS stream, do not hold its first record whole: fewer than the
 * 5 bytes OpenSSL reads before it judges anything (a record header); a handshake record (type 22,
 * version 3.x, at most TLS_RECORD_MAX long) shorter than its header and the length it announces;
 * or an SSLv2-format ClientHello (high bit set, message type 1) shorter than its 2-byte header and
 * the length in it. False as soon as OpenSSL can judge them: a whole record, or a header it
 * rejects. Pure.
 */
export function firstRecordPending(bytes: Uint8Array): boolean {
  if (bytes.length < 5) return true;
  const total = firstRecordSize(bytes);
  return total !== null && bytes.length < total;
}

/**
 * The size of the first record of `bytes` (at least 5 of them), header included, if OpenSSL would
 * wait for all of it (see firstRecordPending); null if OpenSSL judges the header at once. Pure.
 */
function firstRecordSize(bytes: Uint8Array): number | null {
  if ((bytes[0]! & 0x80) !== 0 && bytes[2] === 1) {
    // SSLv2-compatible ClientHello: a 15-bit length, then the message (type 1: CLIENT-HELLO).
    return 2 + (((bytes[0]! & 0x7f) << 8) | bytes[1]!);
  }
  if (bytes[0] !== 22 || bytes[1] !== 3) return null;
  const length = (bytes[3]! << 8) | bytes[4]!;
  return length <= TLS_RECORD_MAX ? 5 + length : null;
}

/**
 * One read of the client's first TLS record. It keeps views of its reads (`seen`, given back by
 * unshift): they must be the reader's own memory, never a shared read area (impl/clientSocket.ts
 * adopts no TLS bind's socket).
 */
function socketOnHelloData(this: net.Socket, chunk: Buffer): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'tls' || conn.tls) return;
  const held = conn.scratch;
  const seen = held ? appendToRecord(held, chunk) : chunk;
  if (firstRecordPending(seen)) {
    conn.scratch = seen;
    return;
  }
  stopReading(conn, HELLO_READER);
  this.unshift(seen);
  const t = new tls.TLSSocket(this, { isServer: true, secureContext: conn.fe.secureContext! });
  conn.tls = t;
  readers.set(t, conn);
  t.on('secure', tlsOnSecure);
  t.on('end', tlsOnEnd);
  t.on('error', tlsOnError);
}

/**
 * Returns the bytes of a first record so far, `held`, followed by `chunk`. Once the record's size
 * is known, `held` is a view on a buffer of that size, filled in place: a record sent a byte at a
 * time is copied once, not once per read. The result is a fresh buffer or a view on one; `held`
 * must not be used afterwards.
 */
function appendToRecord(held: Buffer, chunk: Buffer): Buffer {
  const total = held.length >= 5 ? firstRecordSize(held) : null;
  if (total === null || held.length + chunk.length >= total) return Buffer.concat([held, chunk]);
  let whole: Buffer;
  if (held.byteOffset === 0 && held.buffer.byteLength === total) whole = Buffer.from(held.buffer, 0, total);
  else {
    whole = Buffer.allocUnsafeSlow(total); // its own memory, of the record's size: filled in place
    held.copy(whole, 0);
  }
  chunk.copy(whole, held.length);
  return whole.subarray(0, held.length + chunk.length);
}

/** The client closed before its first TLS record was whole. */
function socketOnHelloEnd(this: net.Socket): void {
  helloEnded(this, 'CLIENT_CLOSE');
}

/** A read error (a reset) before the client's first TLS record was whole. */
function socketOnHelloError(this: net.Socket, _err: Error): void {
  helloEnded(this, 'CLIENT_RESET');
}

/** The client closed or reset `socket` while its first TLS record was read: how much it had sent decides the code. */
function helloEnded(socket: net.Socket, type: 'CLIENT_CLOSE' | 'CLIENT_RESET'): void {
  const conn = readers.get(socket);
  if (!conn || conn.phase !== 'tls' || conn.tls) return;
  const tlsRead = conn.scratch ? 'partialRecord' : 'none';
  stopReading(conn, HELLO_READER);
  conn.fe.connectionEvent(conn, { type, tlsRead });
}

/** The readers of the two handshakes: the PROXY header, then the first TLS record. */
const HEADER_READER: SocketReader = {
  data: socketOnHeaderData,
  end: socketOnHeaderEnd,
  error: socketOnHeaderError,
};
const HELLO_READER: SocketReader = {
  data: socketOnHelloData,
  end: socketOnHelloEnd,
  error: socketOnHelloError,
};

/** The TLS handshake completed. */
function tlsOnSecure(this: tls.TLSSocket): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'tls') return;
  this.pause();
  this.off('end', tlsOnEnd);
  conn.fe.connectionEvent(conn, { type: 'TLS_OK' });
}

/** The client closed during the TLS handshake. */
function tlsOnEnd(this: tls.TLSSocket): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'tls') return;
  conn.fe.connectionEvent(conn, { type: 'CLIENT_CLOSE', tlsRead: 'wholeRecords' });
}

/**
 * The TLS handshake failed, or the client reset the connection during it. An EPIPE is taken as a
 * reset too, though Node 20 never reports one here: a write of the handshake (the ServerHello) to
 * a client that closed fails with EPIPE in the kernel, node:tls drops that error and ends the
 * stream, so tlsOnEnd sees a client close (SSL_EMPTY), where 1.5-dev's failed write would be an
 * abort (SSL_ABORT; dontlognull hides both, and 2.x logs SSL_HANDSHAKE for either).
 */
function tlsOnError(this: tls.TLSSocket, err: NodeJS.ErrnoException): void {
  const conn = readers.get(this);
  if (!conn || conn.phase !== 'tls') return;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE')
    conn.fe.connectionEvent(conn, { type: 'CLIENT_RESET', tlsRead: 'wholeRecords' });
  else conn.fe.connectionEvent(conn, { type: 'TLS_ERROR', code: 'SSL_HANDSHAKE' });
}
