/**
 * The live monitor (`embryonic proxy --monitor`, impl/monitor.ts): fed the lines of a trace in
 * memory, it reports each divergence and goes on; on a running proxy it stays silent while the
 * proxy follows the machines, and reports a planted divergence (a mutant switched into the proxy's
 * machines through EMBRYONIC_MONITOR_DEFECT, set by this test only) while the proxy serves on.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandArgs } from '../../bench/targets.ts';
import { checkTraceFile } from '../../cli/traceCheck.ts';
import { makeConfig } from '../../machines/config.ts';
import type { TraceLine } from '../../machines/traceFormat.ts';
import { randomTrace } from '../../properties/traceGen.ts';
import { UsageError } from '../../cli/command.ts';
import { proxyCommand } from '../../cli/proxy.ts';
import { Monitor, MONITOR_DETAIL_LIMIT, MONITOR_PREFIX } from '../../impl/monitor.ts';
import type { MonitorStatus } from '../../impl/monitorThread.ts';
import { buildV1 } from '../../impl/proxy/build.ts';
import {
  CERT,
  client,
  expectNoViolations,
  poolBalanced,
  proxyConfig,
  startBackend,
  startProxyProcess,
  waitFor,
  type Backend,
  type Client,
  type ProxyProcess,
} from './harness.ts';

const CONFIG = makeConfig({ feMaxconn: 4, bindMaxconn: 4, globalMaxconn: 4 });

/** How long the live monitor's checker may take to catch up with the trace once the clients are done. */
const CATCH_UP_MS = 20_000;

/** The lines of a reference trace of `connections` connections (properties/traceGen.ts). */
function referenceTrace(connections: number, seed: number): TraceLine[] {
  const lines: TraceLine[] = [];
  randomTrace(CONFIG, { connections, seed }, (line) => lines.push(line));
  return lines;
}

/** A monitor whose reports are collected. */
function collectingMonitor(): { monitor: Monitor; reports: string[] } {
  const reports: string[] = [];
  return { monitor: new Monitor(CONFIG, (text) => reports.push(text)), reports };
}

describe('the monitor fed in memory', () => {
  it('reports nothing for a trace that follows the machines, and says so at the end', () => {
    const lines = referenceTrace(15, 7);
    const { monitor, reports } = collectingMonitor();
    for (const l of lines) monitor.line(l);
    expect(reports).toEqual([]);
    expect(monitor.finish()).toBe(
      `${MONITOR_PREFIX} ${lines.length} trace lines checked, 15 connections, 0 divergences`,
    );
  });

  it('reports a corrupted counters line at its line number, with the detail, and goes on', () => {
    const lines = referenceTrace(15, 7);
    const at = lines.findIndex((l, i) => i > lines.length / 2 && l.kind === 'counters');
    const bad = structuredClone(lines[at]!) as Extract<TraceLine, { kind: 'counters' }>;
    bad.counters.cumConn = (bad.counters.cumConn ?? 0) + 5;
    const { monitor, reports } = collectingMonitor();
    lines.forEach((l, i) => monitor.line(i === at ? bad : l));
    expect(reports).toHaveLength(1);
    const [head, ...detail] = reports[0]!.split('\n');
    expect(head).toMatch(
      new RegExp(
        `^${MONITOR_PREFIX} divergence #1 at trace line ${at + 1}: diverges: counters .* are not the model's`,
      ),
    );
    expect(detail.join('\n')).toMatch(/possible model states before this step: 1/);
    expect(detail.join('\n')).toMatch(/last lines:/);
    expect(monitor.divergences).toBe(1);
    expect(monitor.finish()).toMatch(/15 connections, 1 divergence$/);
  });

  it('reports lines that are not trace lines as invalid, without throwing, and keeps checking', () => {
    const lines = referenceTrace(5, 3);
    const { monitor, reports } = collectingMonitor();
    monitor.line(lines[0]!);
    for (const junk of [null, { kind: 'bogus' }, 42]) monitor.line(junk as unknown as TraceLine);
    for (const l of lines.slice(1)) monitor.line(l);
    expect(reports.map((r) => r.split('\n')[0])).toEqual([
      expect.stringMatching(/divergence #1 at trace line 2: invalid: /),
      expect.stringMatching(/divergence #2 at trace line 3: invalid: /),
      expect.stringMatching(/divergence #3 at trace line 4: invalid: /),
    ]);
    expect(monitor.finish()).toMatch(/5 connections, 3 divergences$/);
  });

  it(`gives the detail of the first ${MONITOR_DETAIL_LIMIT} divergences only, then one line each`, () => {
    const { monitor, reports } = collectingMonitor();
    for (let i = 0; i < MONITOR_DETAIL_LIMIT + 2; i++)
      monitor.line({ kind: 'bogus' } as unknown as TraceLine);
    expect(reports.map((r) => r.split('\n').length > 1)).toEqual([
      ...Array<boolean>(MONITOR_DETAIL_LIMIT).fill(true),
      false,
      false,
    ]);
  });
});

const D = 150;

const config = (backendPort: number, bind: string) => (dir: string) =>
  proxyConfig(
    dir,
    `${D}ms`,
    `
frontend fe_mon
    bind 127.0.0.1:0 ${bind}
    default_backend be_echo

backend be_echo
    server echo1 127.0.0.1:${backendPort}
`,
  );

const HEADER = buildV1({
  family: 'TCP4',
  source: { address: '10.1.2.3', port: 40000 },
  destination: { address: '10.0.0.1', port: 443 },
});

/** One session forwarded through the proxy: resolves once the data came back and the close ended. */
async function served(proxy: ProxyProcess): Promise<string> {
  const c = client(proxy.port, { first: Buffer.concat([HEADER, Buffer.from('ping')]) });
  await waitFor('the echo', () => (c.socket.bytesRead >= 4 ? true : undefined));
  c.socket.end();
  return (await c.outcome).data;
}

/** What a client of the random run does on an accept-proxy ssl bind; each ends its connection. */
const ACTIONS = {
  /** The header, a TLS handshake, one echo, then a FIN. */
  async tls(port: number): Promise<void> {
    const c = client(port, { first: HEADER });
    await c.connected;
    const t = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    t.on('error', () => t.destroy());
    t.once('secureConnect', () => t.write('ping'));
    t.once('data', () => t.end());
    await c.outcome;
  },
  /** The header, then plaintext where TLS is due: SSL_HANDSHAKE. */
  garbage: (port: number) =>
    ended(client(port, { first: Buffer.concat([HEADER, Buffer.from('GET /\r\n')]) })),
  /** No header: PRX_NOT_HDR. */
  notHeader: (port: number) => ended(client(port, { first: 'GET / HTTP/1.0\r\n\r\n' })),
  /** Part of the header in one read: PRX_TRUNCATED. */
  split: (port: number) => ended(client(port, { first: HEADER.subarray(0, 10) })),
  /** Nothing: PRX_TIMEOUT at the deadline. */
  silent: (port: number) => ended(client(port)),
  /** The header, then nothing: SSL_TIMEOUT at the deadline. */
  headerOnly: (port: number) => ended(client(port, { first: HEADER })),
  /** A FIN before anything: PRX_EMPTY. */
  async close(port: number): Promise<void> {
    const c = client(port);
    await c.connected;
    c.socket.end();
    await c.outcome;
  },
  /** An RST before anything: PRX_ABORT. */
  async reset(port: number): Promise<void> {
    const c = client(port);
    await c.connected;
    c.socket.resetAndDestroy();
    await c.outcome;
  },
};
type Action = keyof typeof ACTIONS;

async function ended(c: Client): Promise<void> {
  await c.outcome;
}

/**
 * The random run: waves of 2 to 6 concurrent clients (the bind has maxconn 3, so some wait in the
 * listen backlog). Seed 4 draws every action; EMBRYONIC_DEEP=1 runs 40 waves instead of 6.
 */
const SEED = 4;
const WAVE_COUNT = process.env.EMBRYONIC_DEEP === '1' ? 40 : 6;
const WAVES = fc.sample(
  fc.array(fc.array(fc.constantFrom(...(Object.keys(ACTIONS) as Action[])), { minLength: 2, maxLength: 6 }), {
    minLength: WAVE_COUNT,
    maxLength: WAVE_COUNT,
  }),
  { seed: SEED, numRuns: 1 },
)[0]!;

describe('embryonic proxy --monitor', () => {
  let echo: Backend;
  let sound: ProxyProcess;
  let planted: ProxyProcess;
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-monitor-'));
  const traceFile = join(dir, 'trace.ndjson');

  beforeAll(async () => {
    echo = await startBackend('echo');
    [sound, planted] = await Promise.all([
      startProxyProcess(config(echo.port, `accept-proxy ssl crt ${CERT} maxconn 3`), [
        '--monitor',
        '--trace',
        traceFile,
      ]),
      startProxyProcess(config(echo.port, 'accept-proxy'), ['--monitor'], {
        EMBRYONIC_MONITOR_DEFECT: 'feconn-kept-on-kill',
      }),
    ]);
  });

  afterAll(async () => {
    await sound?.stop();
    await planted?.stop();
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    `logs no divergence over a random client run (seed ${SEED}), and trace-check passes the run's --trace file`,
    { timeout: 20_000 + CATCH_UP_MS },
    async () => {
      const clients = WAVES.flat().length;
      for (const wave of WAVES) await Promise.all(wave.map((action) => ACTIONS[action](sound.port)));
      await waitFor('the proxy to be idle', async () =>
        (await sound.info()).CurrConns === '0' ? true : undefined,
      );
      await expectNoViolations(sound);
      expect(poolBalanced(await sound.pool())).toBe(true);
      // The stats socket says the monitor checks, and its checker caught up with the trace. The
      // checker's thread runs at the lowest priority (nice 19): while the rest of the suite keeps
      // both cores busy it gets about 1.5% of one, so catching up may take seconds.
      const status = await waitFor(
        'the monitor to catch up',
        async () => {
          const { monitor } = JSON.parse(await sound.query('show monitor')) as { monitor: MonitorStatus };
          return monitor.behind.numbers === 0 ? monitor : undefined;
        },
        CATCH_UP_MS,
      );
      expect(status).toMatchObject({ state: 'checking', behind: { numbers: 0, ms: 0 }, why: null });
      expect(status.lines).toBeGreaterThan(0);
      expect(status.lines).toBeLessThanOrEqual(readFileSync(traceFile, 'utf8').trim().split('\n').length);
      expect((await sound.stop()).code).toBe(0);
      expect(sound.lines(/monitor: divergence/)).toEqual([]);
      const summary = sound.lines(/monitor: \d+ trace lines checked/);
      expect(summary).toEqual([
        expect.stringMatching(
          new RegExp(
            `^embryonic proxy: monitor: \\d+ trace lines checked, ${clients} connections, 0 divergences$`,
          ),
        ),
      ]);
      // The monitor saw exactly the lines the file got; trace-check passes the file.
      const lines = readFileSync(traceFile, 'utf8').trim().split('\n').length;
      expect(summary[0]).toContain(` ${lines} trace lines checked`);
      const checked = await checkTraceFile(traceFile, {}, { deadlineSlackMs: 100 });
      expect([checked.verdict, checked.divergence?.message]).toEqual(['conforms', undefined]);
      expect(checked.stats).toMatchObject({ accepted: clients, ended: clients });
    },
  );

  it('logs a planted divergence with its detail, and the proxy keeps serving', async () => {
    expect(planted.lines(/^\[WARNING\] EMBRYONIC_MONITOR_DEFECT=feconn-kept-on-kill/)).toHaveLength(1);
    expect(await served(planted)).toBe('ping');
    expect(planted.lines(/monitor: divergence/)).toEqual([]);
    // The mutant forgets feconn-- when it kills an embryonic session.
    expect((await client(planted.port, { first: 'GET / HTTP/1.0\r\n\r\n' }).outcome).how).toBe('rst');
    const first = await waitFor('the divergence', () => planted.lines(/monitor: divergence #1 /)[0]);
    expect(first).toMatch(
      /^embryonic proxy: monitor: divergence #1 at trace line \d+ \(connection 2\): diverges: effect feconnDec\{site=kill_mini_session\} \(session 2\) is missing/,
    );
    expect(planted.stderr()).toMatch(/\n {4}the model would log next:\n {6}effect feconnDec/);
    // Still serving, and still answering on the stats socket.
    expect(await served(planted)).toBe('ping');
    expect((await planted.info()).CurrConns).toBe('0');
    expect((await planted.stop()).code).toBe(0);
    expect(planted.lines(/monitor: \d+ trace lines checked/)).toEqual([
      expect.stringMatching(/, 3 connections, [1-9]\d* divergences?$/),
    ]);
  });
});

describe('EMBRYONIC_MONITOR_DEFECT', () => {
  it('is refused without --monitor, and for an id that names no mutant', async () => {
    const saved = process.env.EMBRYONIC_MONITOR_DEFECT;
    try {
      process.env.EMBRYONIC_MONITOR_DEFECT = 'feconn-kept-on-kill';
      await expect(proxyCommand.run(['-f', 'unused.cfg'])).rejects.toThrow(
        new UsageError('EMBRYONIC_MONITOR_DEFECT requires --monitor'),
      );
      process.env.EMBRYONIC_MONITOR_DEFECT = 'no-such-mutant';
      await expect(proxyCommand.run(['-f', 'unused.cfg', '--monitor'])).rejects.toThrow(/no such mutant/);
    } finally {
      if (saved === undefined) delete process.env.EMBRYONIC_MONITOR_DEFECT;
      else process.env.EMBRYONIC_MONITOR_DEFECT = saved;
    }
  });
});

describe('the monitor of a proxy started as an ES module script, as the benchmarks start it', () => {
  let echo: Backend;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    echo = await startBackend('echo');
    // node --import tsx --input-type=module -e '…proxyCommand.run(…)': the monitor's worker
    // inherits --input-type=module, so its bootstrap runs as a module.
    proxy = await startProxyProcess(
      config(echo.port, 'accept-proxy'),
      ['--monitor'],
      {},
      commandArgs('cli/proxy.ts', 'proxyCommand', []),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  it('checks every connection on its worker thread, which starts whatever module type it inherits', async () => {
    expect(await served(proxy)).toBe('ping');
    expect(await served(proxy)).toBe('ping');
    await waitFor('the proxy to be idle', async () =>
      (await proxy.info()).CurrConns === '0' ? true : undefined,
    );
    expect((await proxy.stop()).code).toBe(0);
    expect(proxy.lines(/monitor: internal error|monitoring stops/)).toEqual([]);
    expect(proxy.lines(/monitor: \d+ trace lines checked/)).toEqual([
      expect.stringMatching(/, 2 connections, 0 divergences$/),
    ]);
  });
});
