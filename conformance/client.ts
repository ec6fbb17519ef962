/**
 * The suite's client: a raw TCP connection (optionally carrying TLS) that records everything it
 * does and sees as a byte-level wire log with timestamps: connect, each write, each read, the FIN
 * or RST it receives, the FIN or RST it sends, and the TLS milestones.
 *
 * TLS runs over a Duplex the client feeds itself, never over the socket's own handle, so the raw
 * socket keeps reporting every ciphertext byte and, above all, whether the target closed with a
 * FIN ('end') or an RST (ECONNRESET) — which node:tls would otherwise blur into one error.
 *
 * A client can stop reading (stopReading): the target's bytes then wait in the kernels, and so does
 * its FIN, behind them. A paused socket sees no RST until it reads again, and may then read it as
 * an EOF (libuv ends a partial read on POLLHUP), so such a close is read from the kernel's table
 * of TCP sockets instead (closeInKernel, /proc/net/tcp).
 *
 * Every wait is bounded by a timeout given by the caller. The caller owns each WireClient and
 * destroys it (destroy()) when the case ends; destroy() is idempotent.
 */
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** What one wire-log entry records. */
export type WireEventKind =
  | 'connect' //          the client called connect()
  | 'connected' //        the kernel completed the TCP handshake (the target may not have accepted yet)
  | 'connect-error' //    connect() failed
  | 'write' //            bytes handed to the socket (ciphertext once TLS runs)
  | 'write-error' //      a write failed (EPIPE, ECONNRESET)
  | 'read' //             bytes received (ciphertext once TLS runs)
  | 'fin-received' //     the target closed its side cleanly
  | 'rst-received' //     the target reset the connection
  | 'read-stopped' //     the client stopped reading (stopReading)
  | 'read-resumed' //     the client reads again (resumeReading)
  | 'fin-sent' //         the client half-closed (end())
  | 'rst-sent' //         the client reset the connection (resetAndDestroy())
  | 'tls-start' //        the client began a TLS handshake over the connection
  | 'tls-established' //  the TLS handshake completed
  | 'tls-error' //        the TLS layer failed
  | 'tls-write' //        plaintext written through TLS
  | 'tls-read' //         plaintext received through TLS
  | 'accepted' //         (backend) the suite's backend accepted a connection from the target
  | 'closed'; //          the socket is gone

/** One entry of a wire log. */
export interface WireEvent {
  t: number; //           ms since the case's origin, to 0.1 ms
  conn: string; //        'client#1', 'backend#1', ...
  kind: WireEventKind;
  size?: number; //       byte count, for writes and reads
  hex?: string; //        the bytes in hex, at most WIRE_HEX_LIMIT bytes of them
  text?: string; //       the same bytes as printable ASCII, '.' for the rest
  note?: string; //       an error code, a reason
}

/** At most this many bytes of each write or read are kept in the log (the size is always kept). */
export const WIRE_HEX_LIMIT = 512;

/** The wire log of one case: one clock origin shared by the clients and the backend. */
export class WireLog {
  readonly origin: number; // performance.now() at the start of the case
  readonly events: WireEvent[] = [];

  constructor(origin = performance.now()) {
    this.origin = origin;
  }

  /** Returns the ms elapsed since the origin, to 0.1 ms. */
  now(): number {
    return round1(performance.now() - this.origin);
  }

  /** Appends an event for <conn> at the current time, with <bytes> when given; returns its time. */
  add(conn: string, kind: WireEventKind, bytes?: Uint8Array, note?: string): number {
    const t = this.now();
    const event: WireEvent = { t, conn, kind };
    if (bytes) Object.assign(event, describeBytes(bytes));
    if (note) event.note = note;
    this.events.push(event);
    return t;
  }
}

/** How the target ended a connection, as the client saw it first. */
export interface CloseSeen {
  kind: 'fin' | 'rst';
  at: number; // ms since the origin
}

/** The outcome of startTls(). */
export type TlsOutcome = { ok: true; at: number } | { ok: false; at: number; error: string };

/**
 * One client connection with its wire log. Create it with WireClient.open(); every method that
 * waits takes a bound in ms.
 */
export class WireClient {
  readonly name: string;
  readonly log: WireLog;
  /** ms since the origin when the client called connect(). */
  connectStartedAt = 0;
  /** ms since the origin when the kernel completed the TCP handshake; null if it never did. */
  connectedAt: number | null = null;
  /** The first close the target made, FIN or RST; null while the connection stands. */
  closedBy: CloseSeen | null = null;

  private readonly socket: Socket;
  private readonly receivedBytes = new ByteAccumulator();
  private tlsFeed: Duplex | null = null;
  private tls: TLSSocket | null = null;
  private waiters: (() => boolean)[] = [];
  private destroyed = false;

  private constructor(name: string, log: WireLog, socket: Socket) {
    this.name = name;
    this.log = log;
    this.socket = socket;
  }

  /** Every byte received, as plaintext once TLS is established (ciphertext is only logged). */
  get received(): Buffer {
    return this.receivedBytes.bytes();
  }

  /**
   * Connects to <host>:<port>, from <localAddress> when given (a loopback address other than the
   * default one, for a target whose rules tell sources apart), and resolves once the kernel
   * completed the TCP handshake (the target may still hold it in its listen backlog). Rejects with
   * the connect error, or after <timeoutMs>. The caller owns the returned client and destroys it.
   */
  static open(
    log: WireLog,
    name: string,
    host: string,
    port: number,
    timeoutMs: number,
    localAddress?: string,
  ): Promise<WireClient> {
    const socket = new Socket({ allowHalfOpen: true });
    const client = new WireClient(name, log, socket);
    const startedAt = log.add(
      name,
      'connect',
      undefined,
      `${host}:${port}${localAddress ? ` from ${localAddress}` : ''}`,
    );
    client.connectStartedAt = startedAt;
    socket.on('data', client.socketOnData.bind(client));
    socket.on('end', client.socketOnEnd.bind(client));
    socket.on('error', client.socketOnError.bind(client));
    socket.on('close', client.socketOnClose.bind(client));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(function timerOnExpire() {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', function socketOnConnect() {
        clearTimeout(timer);
        client.connectedAt = log.add(name, 'connected', undefined, `local port ${socket.localPort}`);
        resolve(client);
      });
      socket.once('error', function socketOnConnectError(err) {
        clearTimeout(timer);
        if (client.connectedAt !== null) return;
        const code = errorCode(err);
        if (code === 'ECONNRESET') {
          // The TCP handshake completed (a refused connect is ECONNREFUSED) and the target reset
          // the connection before the client saw it complete: connected, then reset, at once.
          client.connectedAt = startedAt;
          const at = log.add(name, 'rst-received', undefined, 'ECONNRESET before the connect completed');
          client.closedBy = { kind: 'rst', at };
          resolve(client);
          return;
        }
        log.add(name, 'connect-error', undefined, code);
        reject(err);
      });
      socket.connect(localAddress ? { host, port, localAddress } : { host, port });
    });
  }

  /**
   * Writes <data> (through TLS once it is established). Resolves when the kernel took the bytes,
   * with true, or with false if the write failed (the target had reset or closed); never rejects.
   */
  write(data: Uint8Array | string): Promise<boolean> {
    // A view of the caller's bytes, not a copy (the caller does not change them afterwards).
    const bytes =
      typeof data === 'string'
        ? Buffer.from(data, 'latin1')
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (err?: Error | null): void => {
        if (err) this.log.add(this.name, 'write-error', undefined, errorCode(err));
        resolve(!err);
      };
      if (this.tls) {
        this.log.add(this.name, 'tls-write', bytes);
        this.tls.write(bytes, done);
      } else {
        this.log.add(this.name, 'write', bytes);
        this.socket.write(bytes, done);
      }
    });
  }

  /** Half-closes the connection: the client sends its FIN. Returns nothing. */
  end(): void {
    if (this.destroyed) return;
    this.log.add(this.name, 'fin-sent');
    this.socket.end();
  }

  /** Resets the connection: the client sends an RST and the socket is gone. Returns nothing. */
  reset(): void {
    if (this.destroyed) return;
    this.log.add(this.name, 'rst-sent');
    this.destroyed = true;
    this.socket.resetAndDestroy();
  }

  /**
   * Starts a TLS handshake over the connection (the PROXY header, if any, was written before).
   * Resolves when it completes or fails, or after <timeoutMs> (a failure "timed out"); never
   * rejects. The certificate is not checked: the suite's is self-signed.
   */
  startTls(timeoutMs: number): Promise<TlsOutcome> {
    const { socket, log, name } = this;
    const feed = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        log.add(name, 'write', chunk);
        socket.write(chunk, callback);
      },
      final(callback) {
        socket.end();
        callback();
      },
    });
    this.tlsFeed = feed;
    this.log.add(this.name, 'tls-start');
    const tls = tlsConnect({ socket: feed, rejectUnauthorized: false, servername: '' });
    this.tls = tls;
    tls.on('data', this.tlsOnData.bind(this));
    return new Promise((resolve) => {
      const timer = setTimeout(function timerOnExpire() {
        finish({ ok: false, at: log.now(), error: 'timed out' });
      }, timeoutMs);
      function finish(outcome: TlsOutcome): void {
        clearTimeout(timer);
        resolve(outcome);
      }
      tls.once('secureConnect', function tlsOnSecureConnect() {
        finish({ ok: true, at: log.add(name, 'tls-established') });
      });
      tls.on('error', function tlsOnError(err: Error) {
        finish({ ok: false, at: log.add(name, 'tls-error', undefined, err.message), error: err.message });
      });
    });
  }

  /**
   * Waits until the target closes the connection (FIN or RST). Resolves with what was seen first,
   * or null if nothing came within <timeoutMs>; never rejects.
   */
  waitForClose(timeoutMs: number): Promise<CloseSeen | null> {
    return this.waitUntil(() => this.closedBy !== null, timeoutMs).then(() => this.closedBy);
  }

  /**
   * Waits until at least <count> bytes were received in total. Resolves with true, or false if the
   * connection closed first or <timeoutMs> passed; never rejects.
   */
  waitForBytes(count: number, timeoutMs: number): Promise<boolean> {
    return this.waitUntil(() => this.receivedBytes.length >= count || this.closedBy !== null, timeoutMs).then(
      () => this.receivedBytes.length >= count,
    );
  }

  /** Stops reading: what the target sends waits in the kernels, and the client's window closes. */
  stopReading(): void {
    this.log.add(this.name, 'read-stopped');
    this.socket.pause();
  }

  /** Reads again after stopReading(). Returns nothing. */
  resumeReading(): void {
    this.log.add(this.name, 'read-resumed');
    this.socket.resume();
  }

  /**
   * How the target has closed the connection, read from the kernel's table of IPv4 TCP sockets
   * while the client does not read: 'rst' when the kernel dropped the client's socket (the
   * target's RST; the client has not closed it), 'fin' when the target's socket has left
   * ESTABLISHED while the client's has not (its close sent, or queued behind the bytes the client
   * did not take), null while both stand. A 'rst' is recorded as the close, as the client would
   * have seen it reading. Requires an IPv4 connection that is still open on the client's side.
   */
  closeInKernel(): 'fin' | 'rst' | null {
    const rows = this.kernelRows();
    if (rows === null) return null;
    if (rows.mine === null) {
      const at = this.log.add(this.name, 'rst-received', undefined, 'the kernel dropped the socket');
      this.closedBy ??= { kind: 'rst', at };
      return 'rst';
    }
    return rows.theirs !== null && rows.theirs.state !== TCP_ESTABLISHED ? 'fin' : null;
  }

  /**
   * The bytes on their way from the target to the client in the kernel: those the client has not
   * read (its socket's receive queue) and those the target's socket still holds (its send queue),
   * from /proc/net/tcp; they grow while the target's writes to the client progress. A byte the
   * client's kernel has and the target's has not seen acknowledged yet counts twice. Null unless
   * both sockets are in the table. Requires an IPv4 connection.
   */
  queuedInKernel(): number | null {
    const rows = this.kernelRows();
    if (rows === null || rows.mine === null || rows.theirs === null) return null;
    return rows.mine.rxQueue + rows.theirs.txQueue;
  }

  /**
   * The bytes the client's socket took from the kernel but has not delivered, held while it does
   * not read: Node reads a chunk (up to 64 KiB) after stopReading() before it stops asking the
   * kernel. queuedInKernel() does not count them. Returns a byte count, 0 while the client reads.
   */
  heldUnread(): number {
    return this.socket.readableLength;
  }

  /**
   * The rows of the client's socket and of the target's end of the connection in /proc/net/tcp
   * (null for a socket the kernel no longer has); null before the socket has its ports. The
   * kernel lists the table a read() at a time, and a row can be skipped when sockets come or go
   * between two of them (a table of many TIME_WAIT sockets, late in a run of the suite): a row
   * missing from one read of the table is looked for in a second before it counts as gone.
   */
  private kernelRows(): { mine: TcpRow | null; theirs: TcpRow | null } | null {
    const local = this.socket.localPort;
    const remote = this.socket.remotePort;
    if (local === undefined || remote === undefined) return null;
    const look = (): { mine: TcpRow | null; theirs: TcpRow | null } => {
      const table = readTcpTable();
      return {
        mine: table.get(`${local}>${remote}`) ?? null,
        theirs: table.get(`${remote}>${local}`) ?? null,
      };
    };
    const rows = look();
    return rows.mine !== null && rows.theirs !== null ? rows : look();
  }

  /** Destroys the socket if it still exists. Idempotent; returns nothing. */
  destroy(): void {
    if (!this.destroyed) {
      this.destroyed = true;
      this.tls?.destroy();
      this.socket.destroy();
    }
    this.wake();
  }

  private waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done() || this.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = (): boolean => {
        if (!done() && !this.destroyed) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve();
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Runs every waiter; keeps those whose condition does not hold yet. */
  private wake(): void {
    this.waiters = this.waiters.filter((w) => !w());
  }

  private socketOnData(chunk: Buffer): void {
    this.log.add(this.name, 'read', chunk);
    if (this.tlsFeed) this.tlsFeed.push(chunk);
    else this.receivedBytes.append(chunk);
    this.wake();
  }

  private socketOnEnd(): void {
    const at = this.log.add(this.name, 'fin-received');
    this.closedBy ??= { kind: 'fin', at };
    this.tlsFeed?.push(null);
    this.wake();
  }

  private socketOnError(err: NodeJS.ErrnoException): void {
    const code = errorCode(err);
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      const at = this.log.add(this.name, 'rst-received', undefined, code);
      this.closedBy ??= { kind: 'rst', at };
    } else if (this.connectedAt !== null) {
      this.log.add(this.name, 'write-error', undefined, code);
    }
    this.tlsFeed?.destroy(err);
    this.wake();
  }

  private socketOnClose(): void {
    if (this.connectedAt !== null) this.log.add(this.name, 'closed');
    this.destroyed = true;
    this.wake();
  }

  private tlsOnData(chunk: Buffer): void {
    this.log.add(this.name, 'tls-read', chunk);
    this.receivedBytes.append(chunk);
    this.wake();
  }
}

/** Returns the size, hex and printable text of <bytes> for a wire-log entry. Pure. */
export function describeBytes(bytes: Uint8Array): { size: number; hex: string; text: string } {
  const shown = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, WIRE_HEX_LIMIT));
  // latin1 maps each byte to one character; those outside printable ASCII become dots.
  const text = shown.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return { size: bytes.length, hex: shown.toString('hex'), text };
}

function errorCode(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The first 11 bytes of a ClientHello record announcing 300 bytes: a TLS record left half sent. */
export const HALF_RECORD = Uint8Array.from([22, 3, 1, 1, 44, 1, 0, 1, 40, 3, 3]);

/**
 * Resolves with a whole TLS ClientHello record, as node:tls writes it for a client: the first
 * write of a client TLS socket over a stream that keeps what it is given and answers nothing.
 * Rejects if node:tls writes nothing. Leaves nothing open.
 */
export function clientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let hello: Buffer | null = null;
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        hello ??= Buffer.from(chunk);
        done();
      },
    });
    const tlsClient = tlsConnect({ socket: wire, rejectUnauthorized: false, servername: 'embryonic.test' });
    tlsClient.on('error', reject);
    setImmediate(() => {
      tlsClient.destroy();
      if (hello) resolve(hello);
      else reject(new Error('node:tls wrote no ClientHello'));
    });
  });
}

/** The state code of an established TCP socket in /proc/net/tcp. */
const TCP_ESTABLISHED = '01';

/** One IPv4 TCP socket's row of /proc/net/tcp: its state code and its queues, in bytes. */
export interface TcpRow {
  state: string; //   hex: '01' ESTABLISHED, '04' FIN_WAIT1...
  txQueue: number; // sent or queued, not yet acknowledged
  rxQueue: number; // received, not yet read by its process
}

/**
 * The row of the IPv4 TCP socket bound to local port <local> and connected to port <remote> in
 * /proc/net/tcp; null if the kernel has no such socket (an RST closed it). Both ports are needed:
 * Linux gives one ephemeral port to connections to different addresses. Reads the OS, nothing
 * else.
 */
export function tcpRowOf(local: number, remote: number): TcpRow | null {
  return readTcpTable().get(`${local}>${remote}`) ?? null;
}

/**
 * Reads /proc/net/tcp once: each socket's row by "<local port>><remote port>" (the first row of
 * a pair wins, as a scan of the table would find it).
 */
function readTcpTable(): Map<string, TcpRow> {
  const table = new Map<string, TcpRow>();
  const port = (address: string | undefined): number => parseInt(address?.split(':')[1] ?? '', 16);
  for (const row of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f.length < 5) continue;
    const key = `${port(f[1])}>${port(f[2])}`;
    if (!table.has(key))
      table.set(key, {
        state: f[3] ?? '',
        txQueue: parseInt(f[4]?.split(':')[0] ?? '0', 16),
        rxQueue: parseInt(f[4]?.split(':')[1] ?? '0', 16),
      });
  }
  return table;
}

/**
 * When the target's writes to a client that does not read last progressed, read from samples of
 * WireClient.queuedInKernel(), taken by polling. A sample counts twice the bytes the client's
 * kernel has received and the target's has not seen acknowledged yet (a delayed ACK holds them
 * for tens of ms), so a sample can show a growth that a later one takes back: Debian's HAProxy
 * 2.6.12 and the bundled proxy both showed 13 to 29 KiB more about 200 ms after their last write,
 * gone 40 ms later. Those bytes only ever leave the count, since the client reads nothing: what
 * the target had written by a sample is at most the least of that sample and of every later one,
 * and growths are read from that floor.
 */
export class WriteProgress {
  private readonly polls: { t: number; queued: number | null }[] = [];

  /** Records one poll at case time <t>: queuedInKernel()'s answer, null included. Returns nothing. */
  add(t: number, queued: number | null): void {
    this.polls.push({ t, queued });
  }

  /**
   * The last poll at which the floor of the samples grew by <step> bytes or more over the growth
   * before it (the first, over 0): its time (`at`) and the time of the poll before it (`since`),
   * between which the write came; null while there is no such growth. Pure over the polls so far.
   */
  lastGrowth(step = 16384): { at: number; since: number } | null {
    const floor: (number | null)[] = new Array<number | null>(this.polls.length).fill(null);
    let least = Infinity;
    for (let i = this.polls.length - 1; i >= 0; i--) {
      const q = this.polls[i]!.queued;
      if (q !== null) floor[i] = least = Math.min(least, q);
    }
    let base = 0;
    let found: { at: number; since: number } | null = null;
    for (let i = 0; i < this.polls.length; i++) {
      const f = floor[i];
      if (f === null || f === undefined || f < base + step) continue;
      base = f;
      found = { at: this.polls[i]!.t, since: this.polls[Math.max(0, i - 1)]!.t };
    }
    return found;
  }
}

/**
 * Bytes that come chunk by chunk: each chunk is kept as it came (it must not change afterwards),
 * and bytes() joins them only when asked, once for the chunks appended since the last time. A
 * flood of n bytes then costs its reader no copy until the end (a Buffer.concat per chunk copied
 * everything received each time, and a buffer that doubled copied it again at each growth, the
 * runner's longest stalls in the write-timeout cases).
 */
export class ByteAccumulator {
  private joined = Buffer.alloc(0);
  private pending: Uint8Array[] = [];
  private total = 0;

  /** Appends <chunk>, kept by reference. Returns nothing. */
  append(chunk: Uint8Array): void {
    this.pending.push(chunk);
    this.total += chunk.length;
  }

  /** The number of bytes appended so far. */
  get length(): number {
    return this.total;
  }

  /** Every byte appended so far, in order; valid until the next append. */
  bytes(): Buffer {
    if (this.pending.length > 0) {
      this.joined = Buffer.concat([this.joined, ...this.pending], this.total);
      this.pending = [];
    }
    return this.joined;
  }
}
