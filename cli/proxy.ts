/**
 * `embryonic proxy -f FILE`: runs the reference proxy (impl/) on a haproxy.cfg until SIGTERM or
 * SIGINT, then stops it cleanly, every fd closed.
 */
import type { Profile } from '../machines/config.ts';
import { ConfigError } from '../impl/config.ts';
import { parseFaultSpecs, type FaultSpec } from '../impl/pool.ts';
import { startProxy } from '../impl/proxy.ts';
import { MUTANTS } from '../machines/mutants.ts';
import { flag, has, parseArgs, UsageError, type Command } from './command.ts';

const PROFILES: readonly Profile[] = ['dev12', '2.6', '2.9'];

/** How long the process may take to exit after stop() before it reports what keeps it alive. */
const EXIT_GRACE_MS = 2000;

export const proxyCommand: Command = {
  name: 'proxy',
  summary: 'run the reference proxy on a haproxy.cfg (its lifecycle driven by the machines)',
  usage: [
    'Usage: embryonic proxy -f FILE [--trace FILE] [--monitor] [--profile dev12|2.6|2.9] [--fail-alloc SITE:N[,SITE:N]]',
    '',
    'Runs the reference proxy (impl/) on the haproxy.cfg FILE: one frontend with one bind, its backend,',
    'the stats socket. Logs go to the `log stdout|stderr` targets of global; a line on stderr says',
    'where it listens. SIGTERM or SIGINT stops it: every client and backend socket is closed, then',
    'the process exits 0.',
    '',
    'Options:',
    '  -f, --config FILE   the configuration (haproxy.cfg syntax; see impl/config.ts for the subset)',
    '  --trace FILE        write the NDJSON lifecycle trace (machines/traceFormat.ts) to FILE',
    '  --monitor           check every step against the machines as it happens (the checker of',
    '                      trace-check, on a worker thread: impl/monitorThread.ts); a divergence is',
    '                      logged on stderr, a few ms after its step, as one line "embryonic proxy:',
    '                      monitor: divergence #N at trace line L ...: <why>" plus its detail, and the',
    '                      proxy serves on; at stop, once every line is checked, one summary line',
    '  --profile P         the HAProxy to follow: dev12 (default), 2.6 or 2.9 (README "Profiles")',
    '  --fail-alloc SPEC   make the N-th allocation at SITE fail (SITE: session, task, ssl, req, rep, txn);',
    '                      comma-separated, repeatable; also read from EMBRYONIC_FAIL_ALLOC',
    '  --test-clock        tests only: deadlines and queue tasks run on a virtual clock that moves only',
    '                      when the stats socket gets `set clock advance MS` (impl/clock.ts)',
    '',
    'Environment (tests only): EMBRYONIC_MONITOR_DEFECT=ID runs the machines with the mutant ID',
    '(machines/mutants.ts) switched in, to plant a divergence for --monitor; it requires --monitor.',
    '',
    'Exit code: 0 after a clean stop, 1 on a configuration or bind error, 2 on a usage error.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, {
      switches: ['monitor', 'test-clock'],
      values: ['config', 'trace', 'profile', 'fail-alloc'],
      aliases: { '-f': 'config' },
    });
    const file = flag(parsed, 'config');
    if (!file) throw new UsageError('-f FILE is required');
    const profile = (flag(parsed, 'profile') ?? 'dev12') as Profile;
    if (!PROFILES.includes(profile))
      throw new UsageError(`--profile must be dev12, 2.6 or 2.9, not "${profile}"`);
    let faults: FaultSpec[];
    try {
      faults = [
        ...parseFaultSpecs(process.env.EMBRYONIC_FAIL_ALLOC ?? ''),
        ...(parsed.flags.get('fail-alloc') ?? []).flatMap((s) => parseFaultSpecs(s)),
      ];
    } catch (err) {
      throw new UsageError((err as Error).message);
    }

    const monitor = has(parsed, 'monitor');
    const mutant = process.env.EMBRYONIC_MONITOR_DEFECT || null;
    if (mutant !== null) {
      if (!monitor) throw new UsageError('EMBRYONIC_MONITOR_DEFECT requires --monitor');
      if (!MUTANTS.some((m) => m.id === mutant))
        throw new UsageError(`EMBRYONIC_MONITOR_DEFECT=${mutant}: no such mutant (machines/mutants.ts)`);
      console.error(
        `[WARNING] EMBRYONIC_MONITOR_DEFECT=${mutant}: the machines run with this mutant switched in; the monitor must report it`,
      );
    }

    let handle;
    try {
      handle = await startProxy(file, {
        profile,
        trace: flag(parsed, 'trace') ?? null,
        faults,
        monitor,
        mutant,
        testClock: has(parsed, 'test-clock'),
      });
    } catch (err) {
      if (err instanceof ConfigError)
        console.error(
          err.line === 0
            ? `[ALERT] config : ${err.file} : ${err.reason}`
            : `[ALERT] config : parsing [${err.file}:${err.line}] : ${err.reason}`,
        );
      else console.error(`embryonic proxy: ${(err as Error).message}`);
      return 1;
    }
    for (const w of handle.config.warnings) console.error(`[WARNING] ${w}`);
    const fe = handle.config.frontend;
    console.error(
      `embryonic proxy: ${fe.name}/${fe.bind.name ?? '1'} listening on ${fe.bind.host}:${handle.ports[0]} (profile ${profile}, pid ${process.pid})`,
    );

    const signal = await waitForSignal();
    const closed = await handle.stop();
    console.error(`embryonic proxy: ${signal}: stopped, ${closed} client connection(s) closed`);
    const watchdog = setTimeout(proxyOnExitOverdue, EXIT_GRACE_MS);
    watchdog.unref();
    return 0;
  },
};

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}

/** The process did not exit after stop(): something still holds the event loop. */
function proxyOnExitOverdue(): void {
  console.error(
    `embryonic proxy: still running ${EXIT_GRACE_MS} ms after stop: ${process.getActiveResourcesInfo().join(', ')}`,
  );
  process.exit(1);
}
