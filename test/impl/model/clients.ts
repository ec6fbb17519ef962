/**
 * The scenarios' clients: real sockets on loopback that do what the commands say and record what
 * they saw (FIN, RST, bytes, when), never what the proxy thinks. A client may run TLS over its
 * socket once the proxy is in its TLS handshake.
 */
import net from 'node:net';
import tls from 'node:tls';

/** What one client saw of its connection. */
export interface ClientSeen {
  connected: boolean;
  ends: number; //      FINs received (socket 'end')
  resets: number; //    ECONNRESET errors
  errors: string[]; //  other errors, by code
  closes: number; //    'close' events of the socket
  data: Buffer[]; //    bytes received (decrypted once TLS runs)
  first: 'fin' | 'rst' | null; // how the proxy ended the connection, as first seen
  at: number | null; // performance.now() of the first FIN or RST
}

const clients = new WeakMap<net.Socket, ScenarioClient>();

/** One client. Owns its sockets until destroy(). */
export class ScenarioClient {
  readonly seen: ClientSeen = {
    connected: false,
    ends: 0,
    resets: 0,
    errors: [],
    closes: 0,
    data: [],
    first: null,
    at: null,
  };
  tls: tls.TLSSocket | null = null;
  /** What the client did to its own connection: half-closed it (FIN) or reset it. */
  did: 'fin' | 'rst' | null = null;
  sentData = 0; // bytes written in the data phase
  private readonly raw: net.Socket;

  private constructor(
    readonly id: number,
    port: number,
    readonly localAddress: string,
  ) {
    this.raw = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    clients.set(this.raw, this);
    this.raw.on('data', clientOnData);
    this.raw.on('end', clientOnEnd);
    this.raw.on('error', clientOnError);
    this.raw.on('close', clientOnClose);
  }

  /**
   * Connects client `id` to 127.0.0.1:`port` from `localAddress`. Resolves once the TCP
   * connection is established (the proxy's kernel accepted it); rejects after 3 s.
   */
  static async connect(id: number, port: number, localAddress: string): Promise<ScenarioClient> {
    const c = new ScenarioClient(id, port, localAddress);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`c${id} did not connect within 3 s`)), 3000);
      c.raw.once('connect', () => {
        clearTimeout(timer);
        c.seen.connected = true;
        resolve();
      });
      c.raw.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // The proxy accepted and reset the connection before the connect callback ran (a
        // rejected source): the connection existed, and its RST is recorded by clientOnError.
        if (e.code === 'ECONNRESET') {
          c.seen.connected = true;
          resolve();
        } else reject(e);
      });
    });
    return c;
  }

  /** True iff the socket is closed (by the proxy or by the client itself). */
  get closed(): boolean {
    return this.seen.closes > 0;
  }

  /** Everything received, as latin1 text. */
  get received(): string {
    return Buffer.concat(this.seen.data).toString('latin1');
  }

  /** Writes raw bytes (a PROXY header, garbage) on the TCP socket. */
  write(bytes: Uint8Array | string): void {
    this.raw.write(bytes);
  }

  /** Writes data-phase bytes: through TLS once it runs, else on the TCP socket. */
  send(text: string): void {
    this.sentData += Buffer.byteLength(text);
    (this.tls ?? this.raw).write(text);
  }

  /**
   * Runs a TLS handshake over the socket. Resolves true once it completed, false if the
   * connection failed first; rejects after `ms`.
   */
  handshake(ms = 3000): Promise<boolean> {
    const t = tls.connect({ socket: this.raw, rejectUnauthorized: false });
    this.tls = t;
    clients.set(t, this);
    t.on('data', clientOnData);
    t.on('end', clientOnEnd);
    t.on('error', tlsOnError);
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`c${this.id}: no TLS outcome within ${ms} ms`)), ms);
      t.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.raw.once('close', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  }

  /** Half-closes: sends a FIN (through TLS once it runs). */
  halfClose(): void {
    this.did ??= 'fin';
    (this.tls ?? this.raw).end();
  }

  /** Resets the connection (SO_LINGER 0, then close). */
  reset(): void {
    this.did = 'rst';
    if (!this.raw.destroyed) this.raw.resetAndDestroy();
    this.tls?.destroy();
  }

  /** Destroys the sockets without ceremony (cleanup after a failure). */
  destroy(): void {
    this.tls?.destroy();
    this.raw.destroy();
  }

  /** Records a FIN (clientOnEnd). */
  ended(): void {
    if (this.seen.ends > 0) return;
    this.seen.ends++;
    if (this.seen.first === null && this.did !== 'rst') {
      this.seen.first = 'fin';
      this.seen.at = performance.now();
    }
    // As a client that has nothing more to say, close our side too (the proxy may wait for it).
    if (!this.raw.writableEnded) (this.tls ?? this.raw).end();
  }

  /** Records an error (clientOnError). */
  failed(err: NodeJS.ErrnoException): void {
    if (err.code === 'ECONNRESET') {
      if (this.seen.resets > 0) return; // seen by the TCP and the TLS socket alike
      this.seen.resets++;
      if (this.seen.first === null && this.did !== 'rst') {
        this.seen.first = 'rst';
        this.seen.at = performance.now();
      }
    } else this.seen.errors.push(err.code ?? err.message);
  }
}

function clientOnData(this: net.Socket, chunk: Buffer): void {
  const c = clients.get(this);
  if (!c) return;
  // Once TLS runs, the TCP socket carries ciphertext: only the TLS socket's bytes count.
  if (c.tls && this !== c.tls) return;
  c.seen.data.push(chunk);
}

function clientOnEnd(this: net.Socket): void {
  const c = clients.get(this);
  // Once TLS runs, its socket reports the FIN.
  if (c && !(c.tls && this !== c.tls)) c.ended();
}

function clientOnError(this: net.Socket, err: NodeJS.ErrnoException): void {
  clients.get(this)?.failed(err);
}

/**
 * TLS errors. A FIN before the handshake completed comes as ECONNRESET "Client network socket
 * disconnected before secure TLS connection was established": that is a FIN.
 */
function tlsOnError(this: tls.TLSSocket, err: NodeJS.ErrnoException): void {
  const c = clients.get(this);
  if (!c) return;
  if (err.message.includes('before secure TLS connection')) c.ended();
  else if (err.code === 'ECONNRESET') c.failed(err);
  else c.seen.errors.push(`tls:${err.code ?? err.message}`);
}

function clientOnClose(this: net.Socket): void {
  const c = clients.get(this);
  if (c) c.seen.closes++;
}
