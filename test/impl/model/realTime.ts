/**
 * The transitions the scripts cannot drive, each run by a scenario of its own on a real proxy in
 * real time (`embryonic cover`). The scripts run on the proxy's virtual clock (`--test-clock`),
 * which arms the handshake deadlines and the queue tasks; the data phase's deadlines (`timeout
 * client` and `timeout server` after the handshake, impl/stream.ts) stay on Node's timers, and
 * under the scripts' configurations they would take DEADLINE ms of real time. A scenario here
 * starts its own proxy with a short `timeout client` and `--trace`, and its transitions are read
 * from that trace, as the scripts' are.
 */
import net from 'node:net';
import { proxyConfig, startProxyProcess, waitFor } from '../harness.ts';

/** One scenario: the transitions it exists for, and what it does. */
export interface RealTimeScenario {
  name: string;
  transitions: string[]; // what it must make the proxy take, under every profile it runs
  profiles: ('dev12' | '2.6')[];
  what: string;
  /** Runs it once under `profile` with the proxy's trace written to `trace`. Rejects on a failure. */
  run(profile: 'dev12' | '2.6', trace: string): Promise<void>;
}

/** The client's `timeout client` in the write-timeout scenario. */
const WRITE_TIMEOUT_MS = 200;

/** Writes 64 KiB chunks on `s` at each drain until it closes: a server that never stops sending. */
function floodOnConnection(s: net.Socket): void {
  const chunk = Buffer.alloc(65536, 0x61);
  const pump = function floodOnDrain(): void {
    while (!s.destroyed && s.write(chunk));
  };
  s.on('error', () => s.destroy());
  s.on('drain', pump);
  pump();
}

/**
 * A client that reads nothing while its server floods it: the proxy's writes to it wait until
 * `timeout client` strikes on them (a write timeout), and the stream ends with the client's side
 * NOLINGER. Resolves once the client's socket closed; rejects if it is still open after 5 s.
 */
async function runClientWriteTimeout(profile: 'dev12' | '2.6', trace: string): Promise<void> {
  const flood = net.createServer(floodOnConnection);
  await new Promise<void>((r) => flood.listen(0, '127.0.0.1', r));
  const serverPort = (flood.address() as net.AddressInfo).port;
  const proxy = await startProxyProcess(
    (dir) =>
      proxyConfig(
        dir,
        `${WRITE_TIMEOUT_MS}ms`,
        `
frontend fe_write_timeout
    bind 127.0.0.1:0
    default_backend be_flood

backend be_flood
    server flooding 127.0.0.1:${serverPort}
`,
      ),
    ['--profile', profile, '--trace', trace],
  );
  const c = net.connect(proxy.port, '127.0.0.1');
  try {
    c.pause(); // reads nothing
    c.on('error', () => {}); // an RST under dev12
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const line = await waitFor(
      'the tcplog line of the write timeout',
      () => proxy.lines(/ fe_write_timeout be_flood\/flooding /)[0],
      5000,
    );
    if (!/ cD /.test(line)) throw new Error(`the stream did not end on the client's timeout: ${line}`);
    c.resume(); // a FIN (2.x) comes after what the kernel holds
    await Promise.race([
      closed,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the client was not closed within 5 s')), 5000).unref(),
      ),
    ]);
  } finally {
    c.destroy();
    await proxy.stop();
    await new Promise<void>((r) => flood.close(() => r()));
  }
}

export const REAL_TIME_SCENARIOS: readonly RealTimeScenario[] = [
  {
    name: 'client-write-timeout',
    transitions: ['session.initialized|SESSION_END|1'],
    profiles: ['dev12', '2.6'],
    what: `a client that reads nothing while its server floods it, timeout client ${WRITE_TIMEOUT_MS}ms: the stream ends on its write timeout`,
    run: runClientWriteTimeout,
  },
];

/** The scenario that takes transition `id`, if one does. Pure. */
export function realTimeScenarioOf(id: string): RealTimeScenario | undefined {
  return REAL_TIME_SCENARIOS.find((s) => s.transitions.includes(id));
}
