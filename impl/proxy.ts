/**
 * The reference proxy, assembled: configuration, pool, fd table, logs, trace, the frontend and
 * the stats socket. `embryonic proxy` (cli/proxy.ts) runs it; tests run that as a child process.
 */
import type { ModelConfig, Profile } from '../machines/config.ts';
import { mutantById } from '../machines/mutants.ts';
import { loadConfig, modelConfigOf, type ProxyConfig } from './config.ts';
import { Frontend } from './driver.ts';
import { FdTab } from './fdtab.ts';
import { Logger } from './log.ts';
import { ThreadedMonitor } from './monitorThread.ts';
import { Pool, type FaultSpec } from './pool.ts';
import { StatsServer } from './stats.ts';
import { Trace } from './trace.ts';
import { TestClock } from './clock.ts';
import { PLANTED_FAULT_ENV, plantedFault } from './faults.ts';

/** How to start the proxy. */
export interface ProxyOptions {
  profile?: Profile; //           which HAProxy to follow (default dev12); ignored for a parsed config
  trace?: string | null; //       NDJSON lifecycle trace file
  faults?: readonly FaultSpec[]; // allocation failures to inject (impl/pool.ts)
  log?: (to: 'stdout' | 'stderr', text: string) => void; // where log lines go (default: the process's)
  monitor?: boolean; //           check the trace live against the machines (impl/monitor.ts)
  mutant?: string | null; //      tests only: run the machines with this mutant (machines/mutants.ts) switched in
  testClock?: boolean; //         tests only: virtual time (impl/clock.ts), moved by `set clock advance MS`
}

/** A running proxy. */
export interface ProxyHandle {
  readonly config: ProxyConfig;
  readonly frontend: Frontend;
  readonly ports: number[]; //   the bound port of each bind (one)
  readonly monitor: ThreadedMonitor | null; // the live monitor, with --monitor
  /** Stops as a hard stop: every client and backend socket is closed. Resolves with the number of client fds closed. */
  stop(): Promise<number>;
}

/**
 * Starts the proxy for `config` (a file path, or a parsed configuration) with `opts`.
 * Resolves once the bind and the stats socket listen; rejects with a ConfigError for a bad file,
 * with the open's error for a trace file that cannot be created, or with the bind's error. The
 * caller owns the handle and must call stop(). On a rejection nothing is left running: the trace
 * is opened before the live monitor's worker starts, and every later failure closes the trace and
 * ends that worker (ThreadedMonitor.finish) before the promise rejects.
 */
export async function startProxy(
  config: string | ProxyConfig,
  opts: ProxyOptions = {},
): Promise<ProxyHandle> {
  const cfg = typeof config === 'string' ? loadConfig(config, opts.profile ?? 'dev12') : config;
  const pool = new Pool(cfg.global.bufsize, opts.faults ?? []);
  const model = modelConfigOf(cfg);
  const write = opts.log ?? writeStd;
  // The trace opens its file first: a bad path then fails before the monitor's worker exists.
  const trace =
    opts.trace || opts.monitor ? new Trace(opts.trace ?? null, model, 'embryonic proxy (impl/)') : null;
  let monitor: ThreadedMonitor | null = null;
  try {
    if (opts.monitor) {
      monitor = new ThreadedMonitor(model, (text) => write('stderr', `${text}\n`));
      trace!.takeRawTap(monitor);
    }
    return await serve(cfg, opts, pool, model, write, trace, monitor);
  } catch (err) {
    trace?.close();
    await monitor?.finish(); // ends the worker; the proxy never served, its summary says nothing
    throw err;
  }
}

/**
 * startProxy once the configuration is read, the trace open and the monitor (if any) started:
 * builds the frontend and the stats socket, and listens. Rejects after closing what it opened (the
 * frontend, the stats socket); the trace and the monitor are the caller's to end then.
 */
async function serve(
  cfg: ProxyConfig,
  opts: ProxyOptions,
  pool: Pool,
  model: ModelConfig,
  write: (to: 'stdout' | 'stderr', text: string) => void,
  trace: Trace | null,
  monitor: ThreadedMonitor | null,
): Promise<ProxyHandle> {
  const clock = opts.testClock ? new TestClock() : null;
  if (plantedFault())
    cfg.warnings.push(`${PLANTED_FAULT_ENV}=${plantedFault()}: this proxy carries a planted bug`);
  const frontend = new Frontend(cfg, {
    pool,
    fdtab: new FdTab(),
    logger: new Logger(cfg.global.logs, opts.log),
    trace,
    ...(clock ? { clock } : {}),
    defect: opts.mutant ? mutantById(opts.mutant).defect(model) : null,
  });
  let stats: StatsServer | null = null;
  try {
    const port = await frontend.listen();
    if (cfg.global.stats) {
      stats = new StatsServer(cfg.global.stats.path, cfg.global.stats.mode, frontend, {
        ...(cfg.global.stats.level === 'admin' ? { setFault: (site, n) => pool.failAt(site, n) } : {}),
        ...(clock ? { advanceClock: (ms) => clock.advance(ms) } : {}),
        ...(monitor ? { monitorStatus: () => monitor.status() } : {}),
      });
      await stats.listen();
    }
    let stopped: Promise<number> | null = null;
    return {
      config: cfg,
      frontend,
      ports: [port],
      monitor,
      stop() {
        stopped ??= (async () => {
          const closed = await frontend.stop();
          await stats?.close();
          trace?.close();
          if (monitor) write('stderr', `${await monitor.finish()}\n`);
          return closed;
        })();
        return stopped;
      },
    };
  } catch (err) {
    await frontend.stop();
    await stats?.close();
    throw err;
  }
}

function writeStd(to: 'stdout' | 'stderr', text: string): void {
  (to === 'stdout' ? process.stdout : process.stderr).write(text);
}
