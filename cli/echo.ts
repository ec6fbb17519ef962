/**
 * `embryonic echo PORT`: a tiny echo server on 127.0.0.1, the backend of examples/haproxy.cfg.
 */
import net from 'node:net';
import { expectOnly, flag, parseArgs, UsageError, type Command } from './command.ts';

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
    const parsed = parseArgs(args);
    expectOnly(parsed, ['host']);
    const [portText, extra] = parsed.positionals;
    if (portText === undefined || extra !== undefined) throw new UsageError('exactly one PORT is needed');
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`"${portText}" is not a port`);
    const host = flag(parsed, 'host') ?? '127.0.0.1';
    const server = net.createServer({ allowHalfOpen: true });
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

function echoOnConnection(socket: net.Socket): void {
  open.add(socket);
  socket.on('error', echoOnError);
  socket.on('close', echoOnClose);
  socket.pipe(socket);
}

function echoOnError(this: net.Socket): void {
  this.destroy();
}

function echoOnClose(this: net.Socket): void {
  open.delete(this);
}
