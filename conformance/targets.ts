/**
 * The proxies the suite runs against:
 *   impl        the bundled proxy, started as `node bin/embryonic.js proxy -f <suite cfg> --trace FILE`
 *   haproxy     Debian's haproxy from PATH, or the build --haproxy names, started as
 *               `haproxy -db -f <suite cfg>` (nbthread 1), judged as its version says or as
 *               haproxy@PROFILE says, with HAProxy's known bugs
 *   HOST:PORT   a proxy already running the documented config with base port PORT; its stats
 *               socket only if given (--stats unix:PATH)
 *
 * For the two it starts, the suite writes the config, the certificate and the stats socket into a
 * fresh temporary directory, picks free loopback ports, waits (bounded) until the stats socket
 * answers, and at the end stops the process (SIGTERM, then SIGKILL after a bound) and removes the
 * directory. The bundled proxy serves one frontend per process (impl/config.ts: its machines model
 * one listener), so the impl target is one process per frontend, each from its slice of the same
 * config, and its counters are the merged answers of their stats sockets (stats.ts). Each of its
 * processes writes its lifecycle trace (docs/TRACE.md) into the temporary directory, from which the
 * runner reads the transitions each case took (trace.ts). A target that cannot run says why in
 * `unavailable`: its cases are then skipped when no haproxy is in PATH (a machine may lack it),
 * failed in every other case (a --haproxy build that does not run or is older than 2.3 without a
 * profile named, a proxy that does not start: the bundled proxy always exists), never silently
 * dropped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Profile } from '../machines/config.ts';
import { EchoBackend } from './backend.ts';
import { statsQuery } from './stats.ts';
import {
  frontendsOf,
  FRONTENDS,
  servesFrontend,
  statsPathOf,
  suiteConfig,
  suiteLayout,
  writeSuiteFiles,
  type FrontendName,
  type SuiteLayout,
} from './suite.cfg.ts';

/** What the user named with --target. */
export type TargetSpec =
  | {
      kind: 'impl';
      frontends?: FrontendName[]; //           start only these (tests); default all
      profile?: Profile; //                    the proxy's --profile (`--target impl@2.6`); default dev12
      args?: (fe: FrontendName) => string[]; // extra arguments of the process serving fe (tests); a
      //                                          --trace FILE here is the trace the runner reads,
      //                                          and the caller's to remove
    }
  | {
      kind: 'haproxy';
      perFrontend?: boolean; // as the impl runs, one process per frontend (tests)
      profile?: Profile; //     what it is judged against (haproxy@2.9); default: by its version
      bin?: string; //          the HAProxy binary (--haproxy PATH); default `haproxy` from PATH
    }
  | {
      kind: 'address';
      host: string;
      port: number;
      stats: string | null;
      profile?: Profile; // what it is judged against (HOST:PORT@2.6); default dev12
      log?: string; //     the file its log is written to (--log FILE), followed by the suite
      traces?: string[]; // the lifecycle traces it writes (--trace FILE), docs/TRACE.md
    };

/** Why a target cannot run its cases: 'skipped' when haproxy is not installed, 'fail' when a proxy is broken. */
export interface Unavailable {
  verdict: 'skipped' | 'fail';
  reason: string;
}

/** One line a started target wrote on stdout or stderr. */
export interface TargetLogLine {
  at: number; // performance.now() when it arrived
  line: string;
}

/** A target ready for the cases (or unavailable, with the reason). */
export interface Target {
  name: string; //                      'impl[@P]', 'haproxy[@P]' or 'HOST:PORT[@P]'
  profile: Profile; //                  the model profile its behaviour is expected to follow
  description: string; //               what it is: 'HAProxy version 2.6.12-1+deb12u4', ...
  layout: SuiteLayout; //               its ports, stats socket and certificate
  statsPaths: string[]; //              its stats sockets, one per process; none: counter cases are skipped
  ledgers: boolean; //                  its stats sockets also answer show pool, show fd and show violations
  //                                    (the bundled proxy only: HAProxy does not know these commands)
  haproxy: boolean; //                  it is HAProxy's own build, started by the suite: its known bugs
  //                                    apply (cases.ts KnownBug); false for the bundled proxy and HOST:PORT
  backend: EchoBackend | null; //       the echo backend the suite runs for it
  tracePaths: string[]; //              its lifecycle traces, one per process (the bundled proxy only);
  //                                    none: what transitions a case takes is not known
  pids: number[]; //                    the processes the suite started for it (none for HOST:PORT): the
  //                                    runner reads from the kernel how long they waited for a CPU
  unavailable: Unavailable | null;
  /** Its log lines from performance.now() <at> on; null when they are not captured (not started by the suite). */
  logSince: ((at: number) => TargetLogLine[]) | null;
  stop(): Promise<void>; //             stops what the suite started for it; idempotent
}

/** How long a started target may take to answer on its stats socket. */
export const START_TIMEOUT_MS = 15_000;
/** How long a target may take to exit after SIGTERM before it gets SIGKILL. */
export const STOP_TIMEOUT_MS = 3000;

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What the command line says of a proxy run apart (a HOST:PORT target), and of a haproxy target's binary. */
export interface RunApartOptions {
  stats?: string | null; //        --stats unix:PATH
  log?: string; //                 --log FILE
  traces?: readonly string[]; //   --trace FILE, repeated
  haproxy?: string; //             --haproxy PATH: the binary a haproxy target runs
}

/**
 * Returns the profile a HAProxy build is judged against by default, from the first line of its
 * `haproxy -v` ("HAProxy version 2.9.0-fddb8c13b 2023/12/05 ..."): 2.9 from 2.9 on (`timeout
 * client-hs`), 2.6 for 2.3 to 2.8 (monitor-net is gone since 2.3); null for an older version or a
 * line it cannot read, which must be judged with an explicit haproxy@PROFILE. Pure.
 */
export function profileOfHaproxy(versionLine: string): Profile | null {
  const m = /HAProxy version (\d+)\.(\d+)/.exec(versionLine);
  if (!m) return null;
  const version = Number(m[1]) * 1000 + Number(m[2]);
  if (version >= 2009) return '2.9';
  if (version >= 2003) return '2.6';
  return null;
}

/** The profiles a --target may name after '@'. */
const TARGET_PROFILES: readonly Profile[] = ['dev12', '2.6', '2.9'];

/**
 * Parses one --target value: 'impl', 'haproxy', or HOST:PORT ('127.0.0.1:18443', '[::1]:18443');
 * each may end with '@PROFILE' (dev12, 2.6 or 2.9; haproxy: 2.6 or 2.9): the bundled proxy run
 * with `--profile PROFILE`, or a HAProxy build or a running proxy judged against that profile's
 * predictions. <apart> is what the command line says of a proxy run apart, used by a HOST:PORT
 * target only (the --stats value, 'unix:PATH', the --log file and the --trace files), and the
 * --haproxy binary, used by a haproxy target only. Returns the spec, or a string saying what is
 * wrong with the value. Pure.
 */
export function parseTargetSpec(text: string, apart: RunApartOptions = {}): TargetSpec | string {
  const stats = apart.stats ?? null;
  const at = text.lastIndexOf('@');
  const base = at < 0 ? text : text.slice(0, at);
  const named = at < 0 ? null : text.slice(at + 1);
  if (named !== null && !TARGET_PROFILES.includes(named as Profile))
    return `the profile after '@' must be ${TARGET_PROFILES.join(', ')}, not "${named}"`;
  const profile = named === null ? {} : { profile: named as Profile };
  if (base === 'haproxy') {
    if (named === 'dev12')
      return 'no HAProxy build follows dev12 (1.5-dev12): judge HAProxy as haproxy@2.6 or haproxy@2.9';
    return { kind: 'haproxy', ...profile, ...(apart.haproxy !== undefined ? { bin: apart.haproxy } : {}) };
  }
  if (base === 'impl') return { kind: 'impl', ...profile };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(base);
  if (!m) return `--target must be impl[@PROFILE], haproxy or HOST:PORT[@PROFILE], not "${text}"`;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `port ${port} is out of range`;
  let statsPath: string | null = null;
  if (stats !== null) {
    if (!stats.startsWith('unix:') || stats.length <= 5) return `--stats must be unix:PATH, not "${stats}"`;
    statsPath = stats.slice(5);
  }
  return {
    kind: 'address',
    host: m[1] ?? m[2]!,
    port,
    stats: statsPath,
    ...profile,
    ...(apart.log !== undefined ? { log: apart.log } : {}),
    ...(apart.traces !== undefined && apart.traces.length > 0 ? { traces: [...apart.traces] } : {}),
  };
}

/**
 * Returns the display name of a target spec: 'impl', 'haproxy' or 'HOST:PORT', with '@PROFILE'
 * when it names a profile other than dev12 (haproxy: when it names one). Pure.
 */
export function targetName(spec: TargetSpec): string {
  if (spec.kind === 'haproxy') return spec.profile === undefined ? 'haproxy' : `haproxy@${spec.profile}`;
  const suffix = spec.profile !== undefined && spec.profile !== 'dev12' ? `@${spec.profile}` : '';
  if (spec.kind === 'impl') return `impl${suffix}`;
  return `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}${suffix}`;
}

/**
 * Prepares the target of <spec>: starts its echo backend, and for impl and haproxy writes the
 * suite's files and starts the proxy, waiting until its stats socket answers. Resolves with the
 * target, unavailable (with the reason) if it cannot run; never rejects. The caller must call
 * stop() on it, which stops everything started here.
 */
export async function startTarget(spec: TargetSpec): Promise<Target> {
  if (spec.kind === 'address') return startAddressTarget(spec);
  if (spec.kind === 'haproxy') {
    const name = spec.perFrontend ? 'haproxy-per-frontend' : targetName(spec);
    const bin = spec.bin ?? 'haproxy';
    const probe = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
    if (probe.error || probe.status !== 0) {
      // No haproxy in PATH is a machine without it; a --haproxy build that does not run is a mistake.
      return unavailableTarget(
        name,
        spec.profile ?? '2.6',
        spec.bin === undefined
          ? {
              verdict: 'skipped',
              reason: 'haproxy is not installed (no `haproxy` in PATH): `apt-get install -y haproxy`',
            }
          : {
              verdict: 'fail',
              reason: `${bin} -v failed (${probe.error?.message ?? `exit ${probe.status}`}): --haproxy names no HAProxy build that runs`,
            },
      );
    }
    const version = probe.stdout.split('\n')[0] || `${bin} (no version line)`;
    const profile = spec.profile ?? profileOfHaproxy(version);
    if (profile === null) {
      return unavailableTarget(name, '2.6', {
        verdict: 'fail',
        reason: `${version}: the suite judges HAProxy 2.3 and later by its version (2.6, or 2.9 from 2.9 on); name a profile to judge this one anyway (haproxy@2.6)`,
      });
    }
    return startProcessTarget(name, profile, version, !!spec.perFrontend, false, true, (cfg) => [
      bin,
      ['-db', '-f', cfg],
    ]);
  }
  const profile = spec.profile ?? 'dev12';
  return startProcessTarget(
    targetName(spec),
    profile,
    `the bundled proxy (embryonic proxy${profile === 'dev12' ? '' : ` --profile ${profile}`})`,
    spec.frontends ?? true,
    true,
    false,
    (cfg, fe) => {
      const extra = fe && spec.args ? spec.args(fe) : [];
      // The proxy takes the last --trace: a caller's own file replaces the suite's.
      const own = lastValueOf(extra, '--trace');
      const trace =
        own === undefined ? join(dirname(cfg), `trace-${fe ?? 'all'}.ndjson`) : resolve(ROOT, own);
      return [
        process.execPath,
        [
          join(ROOT, 'bin/embryonic.js'),
          'proxy',
          '-f',
          cfg,
          '--trace',
          trace,
          ...(profile === 'dev12' ? [] : ['--profile', profile]),
          ...extra,
        ],
        trace,
      ];
    },
  );
}

/** Returns the value after the last <name> in <args> (also read as <name>=VALUE), or undefined. Pure. */
export function lastValueOf(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const [i, a] of args.entries()) {
    if (a === name) value = args[i + 1] ?? value;
    else if (a.startsWith(`${name}=`)) value = a.slice(name.length + 1);
  }
  return value;
}

async function startAddressTarget(spec: Extract<TargetSpec, { kind: 'address' }>): Promise<Target> {
  const name = targetName(spec);
  const profile = spec.profile ?? 'dev12';
  const layout = suiteLayout(spec.port, spec.stats ? dirname(spec.stats) : tmpdir());
  if (spec.stats) layout.statsPath = spec.stats;
  let backend: EchoBackend;
  try {
    backend = await EchoBackend.start('127.0.0.1', layout.backendPort);
  } catch (err) {
    return unavailableTarget(name, profile, {
      verdict: 'fail',
      reason: `the suite's backend cannot listen on 127.0.0.1:${layout.backendPort}: ${(err as Error).message}`,
    });
  }
  if (spec.stats) {
    try {
      await statsQuery(spec.stats, 'show info');
    } catch (err) {
      await backend.stop();
      return unavailableTarget(name, profile, { verdict: 'fail', reason: (err as Error).message });
    }
  }
  let log: LogFollower | null = null;
  if (spec.log !== undefined) {
    try {
      log = followLog(spec.log);
    } catch (err) {
      await backend.stop();
      return unavailableTarget(name, profile, {
        verdict: 'fail',
        reason: `its log ${spec.log} cannot be read: ${(err as Error).message}`,
      });
    }
  }
  return {
    name,
    profile,
    description: `a running proxy at ${name} (documented config, base port ${spec.port}${spec.log ? `, its log in ${spec.log}` : ''})`,
    layout: { ...layout, host: spec.host },
    statsPaths: spec.stats ? [spec.stats] : [],
    ledgers: false,
    haproxy: false,
    backend,
    tracePaths: [...(spec.traces ?? [])],
    pids: [],
    unavailable: null,
    logSince: log === null ? null : log.since,
    stop: once(() => backend.stop()),
  };
}

/** A log file followed by the suite: its lines, each with the moment the suite read it. */
interface LogFollower {
  /** Reads what was appended since the last call, then returns the lines read from <at> on. */
  since(at: number): TargetLogLine[];
}

/**
 * Follows the log file at <path> from its current end (what is there already belongs to no case):
 * each call of since() reads what was appended, splits it into lines and stamps each with
 * performance.now(); a file that shrank (truncated or rotated) is read again from its start.
 * Throws if the file cannot be read now; a later read error leaves the lines as they were. Holds
 * no descriptor between calls.
 */
function followLog(path: string): LogFollower {
  let offset = statSync(path).size;
  let partial = '';
  const lines: TargetLogLine[] = [];
  return {
    since(at) {
      try {
        const size = statSync(path).size;
        if (size < offset) offset = 0;
        if (size > offset) {
          const fd = openSync(path, 'r');
          try {
            const chunk = Buffer.alloc(size - offset);
            readSync(fd, chunk, 0, chunk.length, offset);
            offset = size;
            partial = appendLogLines(lines, partial, chunk.toString('utf8'));
          } finally {
            closeSync(fd);
          }
        }
      } catch {
        // The file is gone or unreadable for now: the lines read so far stand.
      }
      return lines.filter((l) => l.at >= at);
    },
  };
}

/**
 * The argv of one process a started target runs, for its config file and the frontend it serves
 * (undefined: all), and the lifecycle trace it writes, if it writes one.
 */
type ProcessPlan = (
  cfgPath: string,
  fe: FrontendName | undefined,
) => [file: string, args: string[], trace?: string];

/**
 * Starts the proxy processes of a target: one for the whole suite config when <perFrontend> is
 * false (haproxy), else one per frontend (or per frontend listed), each from its slice of the
 * config with its own stats socket (the bundled proxy serves one frontend per process). <ledgers>:
 * its stats sockets answer show pool, show fd and show violations. <haproxy>: the processes are
 * HAProxy's own build, whose known bugs apply (Target.haproxy). Waits until every stats socket
 * answers. Resolves with the target, or unavailable 'fail' with the reason and the processes'
 * last output; never rejects.
 */
async function startProcessTarget(
  name: string,
  profile: Profile,
  description: string,
  perFrontend: boolean | FrontendName[],
  ledgers: boolean,
  haproxy: boolean,
  command: ProcessPlan,
): Promise<Target> {
  const dir = makeTempDir(`conform-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`);
  const lines: TargetLogLine[] = [];
  let backend: EchoBackend | null = null;
  const children: ChildProcess[] = [];
  const stop = once(async () => {
    await Promise.all(children.map((child) => stopProcess(child)));
    if (backend) await backend.stop();
    removeTempDir(dir);
  });
  const broken = async (reason: string): Promise<Target> => {
    const tail = lines.slice(-15).map((l) => `  ${l.line}`);
    await stop();
    return unavailableTarget(name, profile, {
      verdict: 'fail',
      reason: [reason, ...(tail.length ? ['its output:', ...tail] : [])].join('\n'),
    });
  };
  try {
    backend = await EchoBackend.start('127.0.0.1', 0);
    const basePort = await findFreePortBlock(Math.max(...Object.values(FRONTENDS).map((f) => f.offset)) + 1);
    const layout = suiteLayout(basePort, dir, backend.port);
    const slices: (FrontendName | undefined)[] = Array.isArray(perFrontend)
      ? perFrontend.filter((fe) => servesFrontend(profile, fe))
      : perFrontend
        ? frontendsOf(profile)
        : [undefined];
    const statsPaths = slices.map((fe) => (fe ? statsPathOf(layout, fe) : layout.statsPath));
    let exited: string | null = null;
    // Every file first, then the processes: a process must never read a file still being written.
    writeSuiteFiles(layout);
    const cfgPaths = slices.map((fe) => join(dir, fe ? `suite-${fe}.cfg` : 'suite.cfg'));
    slices.forEach((fe, i) => writeFileSync(cfgPaths[i]!, suiteConfig(layout, fe, profile)));
    const tracePaths: string[] = [];
    for (const [i, fe] of slices.entries()) {
      const cfgPath = cfgPaths[i]!;
      const [file, args, trace] = command(cfgPath, fe);
      if (trace !== undefined) tracePaths.push(trace);
      const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      trackChild(child);
      collectLines(child, lines);
      const what = fe ? `${file} (${fe})` : file;
      child.once('error', function childOnError(err) {
        exited = `${what} could not start: ${err.message}`;
      });
      child.once('exit', function childOnExitAtStart(code, signal) {
        exited ??= `${what} exited at start (code ${code}, signal ${signal})`;
      });
    }
    const pending = new Set(statsPaths);
    const until = performance.now() + START_TIMEOUT_MS;
    while (pending.size > 0 && exited === null && performance.now() < until) {
      await sleep(50);
      for (const path of [...pending]) {
        if (!existsSync(path)) continue;
        const answered = await statsQuery(path, 'show info', 1000).then(
          () => true,
          () => false,
        );
        if (answered) pending.delete(path);
      }
    }
    if (exited !== null) return await broken(exited);
    if (pending.size > 0) {
      return await broken(
        `stats socket(s) ${[...pending].join(', ')} did not answer within ${START_TIMEOUT_MS} ms`,
      );
    }
    const ready = backend;
    return {
      name,
      profile,
      description: perFrontend ? `${description}, one process per frontend` : description,
      layout,
      statsPaths,
      ledgers,
      haproxy,
      backend: ready,
      tracePaths,
      pids: children.flatMap((child) => child.pid ?? []),
      unavailable: null,
      logSince: (at) => lines.filter((l) => l.at >= at),
      stop,
    };
  } catch (err) {
    return await broken((err as Error).message);
  }
}

function unavailableTarget(name: string, profile: Profile, unavailable: Unavailable): Target {
  return {
    name,
    profile,
    description: unavailable.reason.split('\n')[0]!,
    layout: suiteLayout(1, tmpdir()),
    statsPaths: [],
    ledgers: false,
    haproxy: false,
    backend: null,
    tracePaths: [],
    pids: [],
    unavailable,
    logSince: null,
    stop: async () => {},
  };
}

/**
 * How long the main thread of process <pid> has waited for a CPU while it could run, in ms, since
 * it started: the second field of /proc/<pid>/schedstat (the scheduler's run-queue wait, in ns).
 * The main thread is the event loop of the bundled proxy and HAProxy's only thread at nbthread 1.
 * A process asleep on its sockets does not wait; one that has work on a CPU that another process
 * holds does. Returns null when the file cannot be read (the process is gone, or no Linux /proc).
 */
export function cpuWaitMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ');
    const ns = Number(fields[1]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}

/**
 * Every process a harness of this project started (the conformance targets, the benchmarks'
 * proxies and load generators) and that has not exited yet: killed if the harness itself exits.
 */
const LIVE = new Set<ChildProcess>();
/** Every temporary directory of a started process not removed yet. */
const LIVE_DIRS = new Set<string>();
process.once('exit', killStartedProcesses);

/** Records `child` as started: killStartedProcesses kills it unless it has exited by then. */
export function trackChild(child: ChildProcess): void {
  LIVE.add(child);
  child.once('exit', function childOnExit() {
    LIVE.delete(child);
  });
  // A child that could not start (ENOENT, EACCES) emits 'error' and never 'exit'.
  child.once('error', function childOnError() {
    if (child.pid === undefined) LIVE.delete(child);
  });
}

/**
 * Creates a temporary directory named `embryonic-<what>-…` and records it: killStartedProcesses
 * removes it unless removeTempDir did first. Returns its path; the caller removes it.
 */
export function makeTempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `embryonic-${what}-`));
  LIVE_DIRS.add(dir);
  return dir;
}

/** Removes a directory of makeTempDir and all it holds. Never throws on a missing one. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  LIVE_DIRS.delete(dir);
}

/**
 * Kills (SIGKILL) every started process still running (trackChild), and removes the temporary
 * directories (makeTempDir): the last resort when a harness is interrupted. Returns how many
 * processes it signalled.
 */
export function killStartedProcesses(): number {
  const n = LIVE.size;
  for (const child of LIVE) child.kill('SIGKILL');
  LIVE.clear();
  for (const dir of LIVE_DIRS) rmSync(dir, { recursive: true, force: true });
  LIVE_DIRS.clear();
  return n;
}

/** How many started processes (trackChild) are still running: tests check it is 0 at the end. */
export function liveProcessCount(): number {
  return LIVE.size;
}

/**
 * Stops <child>: SIGTERM, then SIGKILL if it has not exited after <timeoutMs>. Resolves once it
 * exited (or 2 s after the SIGKILL at worst); never rejects.
 */
export async function stopProcess(child: ChildProcess, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const first = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (first) return;
  child.kill('SIGKILL');
  await Promise.race([exited, sleep(2000)]);
}

/**
 * Finds <count> consecutive free TCP ports on 127.0.0.1, below Linux's ephemeral range so that the
 * clients' own ports never collide with them. Resolves with the first; rejects after 50 attempts.
 * The ports are free when checked; the caller binds them at once (a race is possible, not likely).
 */
export async function findFreePortBlock(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (32000 - 20000 - count));
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await portIsFree(p);
    if (free) return base;
  }
  throw new Error(`no block of ${count} free ports on 127.0.0.1 after 50 attempts`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function collectLines(child: ChildProcess, lines: TargetLogLine[]): void {
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', function streamOnData(chunk: string) {
      partial = appendLogLines(lines, partial, chunk);
    });
  }
}

/** How many of a target's log lines the suite keeps: the oldest go first. */
const MAX_LOG_LINES = 20000;

/**
 * Appends to <lines> the whole lines of <partial> followed by <chunk>, each stamped with
 * performance.now() (blank ones left out), keeping the last MAX_LOG_LINES. Returns the unfinished
 * last line, which the next chunk continues.
 */
function appendLogLines(lines: TargetLogLine[], partial: string, chunk: string): string {
  const parts = (partial + chunk).split('\n');
  const rest = parts.pop() ?? '';
  const at = performance.now();
  for (const line of parts) if (line.trim()) lines.push({ at, line });
  if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
  return rest;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= fn());
}

/** Waits <ms>; re-exported for the runner. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
