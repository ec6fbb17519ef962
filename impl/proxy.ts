/**
 * The reference proxy, assembled: configuration, pool, fd table, logs, trace, the frontend and
 * the stats socket. `embryonic proxy` (cli/proxy.ts) runs it; tests run that as a child process.
 */
import type { Profile } from '../machines/config.ts';
import { loadConfig, modelConfigOf, type ProxyConfig } from './config.ts';
import { Frontend } from './driver.ts';
import { FdTab } from './fdtab.ts';
import { Logger } from './log.ts';
import { Pool, type FaultSpec } from './pool.ts';
import { StatsServer } from './stats.ts';
import { Trace } from './trace.ts';

/** How to start the proxy. */
export interface ProxyOptions {
  profile?: Profile; //           which HAProxy to follow (default dev12); ignored for a parsed config
  trace?: string | null; //       NDJSON lifecycle trace file
  faults?: readonly FaultSpec[]; // allocation failures to inject (impl/pool.ts)
  log?: (to: 'stdout' | 'stderr', text: string) => void; // where log lines go (default: the process's)
}

/** A running proxy. */
export interface ProxyHandle {
  readonly config: ProxyConfig;
  readonly frontend: Frontend;
  readonly ports: number[]; //   the bound port of each bind (one)
  /** Stops as a hard stop: every client and backend socket is closed. Resolves with the number of client fds closed. */
  stop(): Promise<number>;
}

/**
 * Starts the proxy for `config` (a file path, or a parsed configuration) with `opts`.
 * Resolves once the bind and the stats socket listen; rejects with a ConfigError for a bad file
 * or with the bind's error. The caller owns the handle and must call stop().
 */
export async function startProxy(
  config: string | ProxyConfig,
  opts: ProxyOptions = {},
): Promise<ProxyHandle> {
  const cfg = typeof config === 'string' ? loadConfig(config, opts.profile ?? 'dev12') : config;
  const pool = new Pool(cfg.global.bufsize, opts.faults ?? []);
  const trace = opts.trace ? new Trace(opts.trace, modelConfigOf(cfg), 'embryonic proxy (impl/)') : null;
  const frontend = new Frontend(cfg, {
    pool,
    fdtab: new FdTab(),
    logger: new Logger(cfg.global.logs, opts.log),
    trace,
  });
  let stats: StatsServer | null = null;
  try {
    const port = await frontend.listen();
    if (cfg.global.stats) {
      stats = new StatsServer(cfg.global.stats.path, cfg.global.stats.mode, frontend);
      await stats.listen();
    }
    let stopped: Promise<number> | null = null;
    return {
      config: cfg,
      frontend,
      ports: [port],
      stop() {
        stopped ??= (async () => {
          const closed = await frontend.stop();
          await stats?.close();
          trace?.close();
          return closed;
        })();
        return stopped;
      },
    };
  } catch (err) {
    await frontend.stop();
    await stats?.close();
    trace?.close();
    throw err;
  }
}
