/**
 * The scenarios' own backend: a server on 127.0.0.1 whose behaviour the scenario switches (a
 * connection keeps the behaviour it met when it was accepted), and
 * which reports what it saw (connections, bytes). It is one of the independent observers of the
 * proxy: the PROXY header must never reach it, and it counts the sessions that really connected.
 *   echo     writes back what it gets; ends its side when the proxy ends its own
 *   reset    resets the connection when the first bytes arrive
 *   close    ends its side as soon as it accepts (the proxy must then end the client's)
 *   refuse   does not listen: the proxy's connect is refused
 */
import net from 'node:net';

/** How the backend treats the connections it accepts from now on. */
export type BackendMode = 'echo' | 'reset' | 'close' | 'refuse';

export const BACKEND_MODES: readonly BackendMode[] = ['echo', 'reset', 'close', 'refuse'];

/** What the backend saw since it started. */
export interface BackendSeen {
  accepted: number; // connections accepted
  open: number; //     connections open now
  bytes: number; //    bytes received
}

const owners = new WeakMap<net.Server, ScenarioBackend>();
const conns = new WeakMap<net.Socket, { backend: ScenarioBackend; mode: BackendMode }>();

/** The backend. Owns its server and the connections it accepts until close(). */
export class ScenarioBackend {
  mode: BackendMode = 'echo';
  readonly seen: BackendSeen = { accepted: 0, open: 0, bytes: 0 };
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  private constructor(public port: number) {}

  /** Starts listening on a free port of 127.0.0.1 in echo mode. */
  static async start(): Promise<ScenarioBackend> {
    const b = new ScenarioBackend(0);
    await b.listen();
    return b;
  }

  /** Switches the mode; 'refuse' stops listening, any other mode listens again on the same port. */
  async setMode(mode: BackendMode): Promise<void> {
    if (mode === this.mode) return;
    if (mode === 'refuse') await this.unlisten();
    else if (this.mode === 'refuse') await this.listen();
    this.mode = mode;
  }

  /** Takes one connection from the proxy (backendOnConnection). */
  accept(s: net.Socket): void {
    this.seen.accepted++;
    this.seen.open++;
    this.sockets.add(s);
    conns.set(s, { backend: this, mode: this.mode }); // a connection keeps the mode it met
    s.on('data', backendOnData);
    s.on('end', backendOnEnd);
    s.on('error', backendOnError);
    s.on('close', backendOnClose);
    if (this.mode === 'close') s.end();
  }

  /** Counts and answers bytes from the proxy on `s`, accepted in `mode`. */
  data(s: net.Socket, mode: BackendMode, chunk: Buffer): void {
    this.seen.bytes += chunk.length;
    if (mode === 'reset') s.resetAndDestroy();
    else if (mode === 'echo') s.write(chunk);
  }

  /** Forgets a closed connection. */
  closed(s: net.Socket): void {
    if (this.sockets.delete(s)) this.seen.open--;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await this.unlisten();
  }

  private listen(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true });
    owners.set(server, this);
    server.on('connection', backendOnConnection);
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  /**
   * Stops listening: new connections are refused at once. The connections already accepted go on
   * (net.Server's close callback would wait for them, so it is not awaited; the listening socket
   * itself is closed by the next turn of the event loop).
   */
  private unlisten(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    server.close();
    return new Promise((resolve) => setImmediate(resolve));
  }
}

function backendOnConnection(this: net.Server, s: net.Socket): void {
  const b = owners.get(this);
  if (b) b.accept(s);
  else s.destroy();
}

function backendOnData(this: net.Socket, chunk: Buffer): void {
  const c = conns.get(this);
  c?.backend.data(this, c.mode, chunk);
}

/** The proxy ended its side: the backend ends its own (every mode). */
function backendOnEnd(this: net.Socket): void {
  if (!this.writableEnded) this.end();
}

function backendOnError(this: net.Socket): void {
  this.destroy();
}

function backendOnClose(this: net.Socket): void {
  conns.get(this)?.backend.closed(this);
}
