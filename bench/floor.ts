/**
 * The node:net floor of row 1: a bare server that holds each accepted connection and waits for its
 * first bytes, and does nothing else: no PROXY parser, no session, no deadline, no counters, no
 * fd table. It is what any proxy built on node:net pays per connection before it has any state of
 * its own (the Socket, its stream states, its handle and its listeners), measured by the same
 * floods as the proxies: the part of an embryonic connection's memory that the bundled proxy
 * cannot shrink without leaving node:net.
 *
 * It is created as the bundled proxy's listener is (pauseOnConnect, allowHalfOpen), and each
 * connection is read at once, as the proxy reads a connection waiting for its header. Bytes read
 * are dropped. It prints `listening <port>` once bound, and stops on SIGTERM.
 */
import net from 'node:net';

/** The connections held, until they close. */
const held = new Set<net.Socket>();

/** Drops what a held connection sends. */
function socketOnData(): void {}

/** Forgets a connection once it is closed (by the load generator). */
function socketOnClose(this: net.Socket): void {
  held.delete(this);
}

/** A reset or other error: the close that follows forgets it. */
function socketOnError(): void {}

/** Holds a new connection and starts reading it. */
function serverOnConnection(socket: net.Socket): void {
  held.add(socket);
  socket.on('data', socketOnData);
  socket.on('close', socketOnClose);
  socket.on('error', socketOnError);
  socket.resume();
}

/**
 * `floorServer.run(['--port', PORT])`: listens on 127.0.0.1:PORT and holds every connection until
 * SIGTERM. Resolves with the exit code: 0 after SIGTERM (the listener and every held connection
 * closed), 2 when the arguments are wrong; rejects if it cannot listen.
 */
export const floorServer = {
  async run(argv: readonly string[]): Promise<number> {
    const at = argv.indexOf('--port');
    const port = at >= 0 ? Number(argv[at + 1]) : NaN;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      console.error('usage: floor --port PORT');
      return 2;
    }
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, serverOnConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    console.log(`listening ${port}`);
    await new Promise<void>((resolve) => process.once('SIGTERM', resolve));
    server.close();
    for (const socket of held) socket.destroy();
    return 0;
  },
};
