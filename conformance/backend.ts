/**
 * The suite's backend: an echo server on 127.0.0.1 that the target forwards initialized sessions to.
 * It records, for each connection the target opens, when it was accepted, every byte and when it
 * came, and how it ended, into the current case's wire log (same clock as the clients).
 *
 * The suite owns the backend: start() it before the target, attach() it to each case's log, and
 * stop() it at the end, which closes the server and destroys every connection it still holds.
 * It closes its side when the target closes its own (a FIN for a FIN), but for a connection held
 * (HOLD_REQUEST).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ByteAccumulator, type WireLog } from './client.ts';

/**
 * The line that makes the backend hold a connection: a connection whose first bytes are these
 * echoes as any other, but keeps its own side open after the target's FIN, as a server that never
 * closes first, until the next case begins (attach) or release() (fe_data's cases).
 */
export const HOLD_REQUEST = 'embryonic backend: hold your side open\n';

/** One connection the target opened to the backend. */
export interface BackendConnection {
  name: string; //                  'backend#1', numbered per case
  acceptedAt: number; //            ms since the case's origin
  firstByteAt: number | null; //    when the first byte came, if one did
  readonly bytes: Buffer; //        every byte received (and echoed back), joined when read
  readonly byteCount: number; //    how many, without joining them
  closedAt: number | null; //       when the target closed or reset it
  closedBy: 'fin' | 'rst' | null;
  held: boolean; //                 its first bytes were HOLD_REQUEST: its side stays open
}

/** The echo backend of one target. */
export class EchoBackend {
  readonly port: number;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly heldOpen = new Set<Socket>(); // held connections whose target sent its FIN
  private log: WireLog | null = null;
  private current: BackendConnection[] = [];

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
  }

  /**
   * Starts an echo server on <host>:<port> (0: any free port). Resolves once it listens; rejects
   * with the listen error (EADDRINUSE...) or after <timeoutMs>. The caller owns it and stops it.
   */
  static start(host: string, port: number, timeoutMs = 2000): Promise<EchoBackend> {
    const server = createServer({ allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        server.close();
        reject(new Error(`the backend did not listen on ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      server.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      server.listen({ host, port, exclusive: true }, () => {
        clearTimeout(timer);
        const address = server.address();
        const backend = new EchoBackend(server, typeof address === 'object' && address ? address.port : port);
        server.on('connection', function serverOnConnection(socket: Socket) {
          backend.serverOnConnection(socket);
        });
        resolve(backend);
      });
    });
  }

  /**
   * Records the connections from now on into <log>, as a fresh list, and releases what the last
   * case still held. Returns nothing.
   */
  attach(log: WireLog): void {
    this.release();
    this.log = log;
    this.current = [];
  }

  /**
   * Closes the backend's side of every held connection whose target already sent its FIN (a FIN
   * for a FIN, as any other connection gets at once). Returns nothing.
   */
  release(): void {
    for (const s of this.heldOpen) s.end();
    this.heldOpen.clear();
  }

  /** The connections accepted since the last attach(), in order. */
  connections(): readonly BackendConnection[] {
    return this.current;
  }

  /** The number of connections the target still holds open to the backend. */
  openCount(): number {
    return this.sockets.size;
  }

  /**
   * Waits until at least <count> connections were accepted since attach(), or <timeoutMs> passed.
   * Resolves with true iff they were; never rejects.
   */
  async waitForConnections(count: number, timeoutMs: number): Promise<boolean> {
    return pollUntil(() => this.current.length >= count, timeoutMs);
  }

  /**
   * Waits until the target has closed every connection to the backend, or <timeoutMs> passed.
   * Resolves with true iff none is left open; never rejects.
   */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    return pollUntil(() => this.sockets.size === 0, timeoutMs);
  }

  /** Closes the server and destroys every connection. Resolves once the server is closed (bounded). */
  async stop(timeoutMs = 2000): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private serverOnConnection(socket: Socket): void {
    const log = this.log;
    const heldOpen = this.heldOpen;
    const received = new ByteAccumulator();
    const conn: BackendConnection = {
      name: `backend#${this.current.length + 1}`,
      acceptedAt: log ? log.add(`backend#${this.current.length + 1}`, 'accepted') : 0,
      firstByteAt: null,
      get bytes(): Buffer {
        return received.bytes();
      },
      get byteCount(): number {
        return received.length;
      },
      closedAt: null,
      closedBy: null,
      held: false,
    };
    this.current.push(conn);
    this.sockets.add(socket);
    socket.on('data', function socketOnData(chunk: Buffer) {
      const at = log ? log.add(conn.name, 'read', chunk) : 0;
      conn.firstByteAt ??= at;
      const before = received.length;
      received.append(chunk);
      // Its first bytes decide, once they are all in.
      if (before < HOLD.length && received.length >= HOLD.length)
        conn.held = received.bytes().subarray(0, HOLD.length).equals(HOLD);
      log?.add(conn.name, 'write', chunk);
      socket.write(chunk);
    });
    socket.on('end', function socketOnEnd() {
      const at = log ? log.add(conn.name, 'fin-received') : 0;
      if (conn.closedBy === null) Object.assign(conn, { closedBy: 'fin', closedAt: at });
      if (conn.held) heldOpen.add(socket);
      else socket.end();
    });
    socket.on('error', function socketOnError(err: NodeJS.ErrnoException) {
      const at = log ? log.add(conn.name, 'rst-received', undefined, err.code ?? err.message) : 0;
      if (conn.closedBy === null) Object.assign(conn, { closedBy: 'rst', closedAt: at });
    });
    const sockets = this.sockets;
    socket.on('close', function socketOnClose() {
      sockets.delete(socket);
      heldOpen.delete(socket);
    });
  }
}

const HOLD = Buffer.from(HOLD_REQUEST);

/**
 * Polls <done> every <everyMs> (5 by default) until it holds or <timeoutMs> passed; resolves with
 * its last value.
 */
export async function pollUntil(done: () => boolean, timeoutMs: number, everyMs = 5): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() >= until) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}
