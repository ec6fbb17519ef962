/**
 * The processes a benchmark runs, and the arithmetic of its figures.
 *
 * Processes. Every one is a child of the driver (bench/run.ts), on 127.0.0.1 only:
 *   the proxy under test   the bundled proxy: the `embryonic proxy -f CFG` command (cli/proxy.ts)
 *                          run by `node --import tsx -e` (commandArgs): node itself is the child,
 *                          so its pid is the proxy's (tsx's own CLI would add a wrapper process);
 *                          or Debian's `haproxy -db -f CFG`. Both run the same generated
 *                          configuration (benchConfig: one frontend with an accept-proxy bind,
 *                          nbthread 1, a stats socket, one server);
 *   the echo backend       the `embryonic echo 0` command (cli/echo.ts), the same way;
 *   the load generator     bench/load.ts, driven over its stdin/stdout, one JSON object a line.
 * Each is started through `sh -c 'ulimit -n HARD; exec ...'` (the soft fd limit raised to the hard
 * one, the pid unchanged by exec), recorded by trackChild (conformance/targets.ts), and stopped by
 * its stop() in the caller's finally; an exit handler SIGKILLs whatever is left if the driver
 * itself dies.
 *
 * Measures from outside: a process's RSS is VmRSS in /proc/<pid>/status, its CPU time utime+stime
 * in /proc/<pid>/stat. The JS heap of the bundled proxy is read without touching impl/: it is
 * started with `--heapsnapshot-signal=SIGUSR2 --report-on-signal --report-signal=SIGXCPU` (and
 * both files go to its temporary directory); a heap
 * snapshot (which runs a full, compacting GC first) then a diagnostic report give the heap in use
 * after the GC (the report's javascriptHeap.usedMemory). Started with the report signal alone
 * (reportProbe), it gives V8's heap as it is, without a GC: the memory its spaces have committed
 * (the pages that count in the RSS), the young generation's apart, and the bytes of objects in it.
 *
 * Figures: each is the median of repeated runs with its min and max (summarize); each ratio is
 * computed pair by pair within one run (pairRatios), then summarized.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseShowInfo, statsQuery } from '../conformance/stats.ts';
import { makeTempDir, removeTempDir, stopProcess, trackChild } from '../conformance/targets.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The PROXY v1 header every benchmark client sends (the same bytes to both proxies). */
export const BENCH_HEADER = 'PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\n';

/**
 * The source addresses the load generator spreads its connections over: none, the kernel's choice.
 * A source address makes node bind() before connect(), and a bind picks its port without the
 * kernel's TIME_WAIT reuse (net.ipv4.tcp_tw_reuse, on for loopback): after the floods, the accept
 * runs then spent their time in the load generator's port search. Without one, connect() picks the
 * port per destination, and every flood goes to a fresh proxy port: 28k ports are enough for a
 * 10k flood. bench/load.ts still takes a list (127.0.0.x) for a machine that would need it.
 */
export const BENCH_SOURCES: readonly string[] = [];

/** How long a started process may take until it answers (stats socket, first line). */
export const START_TIMEOUT_MS = 15_000;
/** How long a process may take to exit after SIGTERM before it gets SIGKILL. */
export const STOP_TIMEOUT_MS = 3000;

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/** A figure over repeated runs: median, min, max, and every run in order. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

/** A goal and whether the measured figure meets it (null: not measured). */
export interface Goal {
  text: string; //  '≥ 0.5× HAProxy'
  met: boolean | null;
}

/** One row of the results table. */
export interface BenchRow {
  row: number; //             the row: 1 memory, 2 accept, 3 throughput, 4 monitor, 5 explorer, 6 npm test
  figure: string; //          what is measured: 'accept + PROXY v1 + close'
  unit: string; //            'conn/s', 'B/conn', 'MB/s', 's', ...
  subject: string; //         what it is measured on: 'impl', 'impl, embryonic, 1k'
  value: Summary | null;
  anchor: { name: string; value: Summary | null } | null;
  ratio: Summary | null; //   subject / anchor, pair by pair (or the ratio the figure is about)
  goal: Goal | null;
  notes: string[];
  time?: Summary | null; //   row 5: the wall time to exhaust the space, each run; null if a run stopped short
}

/** A row that could not run, and why. */
export interface SkippedRow {
  row: number;
  figure: string;
  reason: string;
}

/** What one benchmark returns. */
export interface BenchResult {
  rows: BenchRow[];
  skipped: SkippedRow[];
}

/**
 * Summarizes <values>: their median (the mean of the two middle ones for an even count), min and
 * max, and the values in order. Returns null when no value is finite. Non-finite values are
 * dropped. Pure.
 */
export function summarize(values: readonly number[]): Summary | null {
  const runs = values.filter((v) => Number.isFinite(v));
  if (runs.length === 0) return null;
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs };
}

/**
 * Returns a[i] / b[i] for each pair where both are finite and b[i] is not 0: the ratios of one run
 * each, to be summarized (the median of ratios, not the ratio of medians). Pure.
 */
export function pairRatios(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isFinite(x) && Number.isFinite(y) && y !== 0) out.push(x / y);
  }
  return out;
}

/**
 * The figures of the rows the goals are judged on, as their builders name them and
 * bench/summary.ts finds them: one string for both.
 */
export const FIGURE = {
  ratioRss: 'embryonic / full, RSS per connection',
  ratioHeap: 'embryonic / full, JS heap per connection',
  ratioAllocated: 'embryonic / full, allocated memory per connection',
  heap: 'JS heap growth per connection',
  floorRss: 'node:net floor / full session, RSS per connection',
  floorHeap: 'node:net floor / full session, JS heap per connection',
  accept: 'accept + PROXY v1 header + close',
  forwarding: 'forwarding throughput after the handshake',
  monitor: 'live trace monitor overhead on the accept rate',
  npmTest: '`npm test` wall time on 2 cores',
} as const;

/** The figure of a rate row's companion: the same rate per CPU-second of the proxy. Pure. */
export function perCpuFigure(figure: string): string {
  return `${figure}, per CPU-second of the proxy`;
}

/** Formats a number for the table: 3 significant digits, thousands with k/M. Pure. */
export function fmtNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toPrecision(3);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

/** "median [min–max]" of a summary, or "—". Pure. */
export function fmtSummary(s: Summary | null): string {
  if (!s) return '—';
  if (s.runs.length === 1) return fmtNumber(s.median);
  return `${fmtNumber(s.median)} [${fmtNumber(s.min)}–${fmtNumber(s.max)}]`;
}

/** '8.3%', '12%' (one decimal below 10), or 'unknown' for null: a CPU steal. Pure. */
export function fmtStealPercent(v: number | null): string {
  return v === null ? 'unknown' : `${v.toFixed(v < 10 ? 1 : 0)}%`;
}

/** <s> as the text of one Markdown table cell: its pipes escaped. Pure. */
export function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** Returns a BenchRow with the given fields and no anchor, ratio, goal or notes unless given. Pure. */
export function benchRow(
  fields: Partial<BenchRow> & Pick<BenchRow, 'row' | 'figure' | 'unit' | 'subject'>,
): BenchRow {
  return { value: null, anchor: null, ratio: null, goal: null, notes: [], ...fields };
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/** The open-files limits of this process ("Max open files" in /proc/self/limits). */
export function fdLimits(): { soft: number; hard: number } {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const m = line ? /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(line) : null;
    const n = (s: string | undefined): number => (s === undefined || s === 'unlimited' ? 1 << 20 : Number(s));
    if (m) return { soft: n(m[1]), hard: n(m[2]) };
  } catch {
    // not Linux: fall through
  }
  return { soft: 1024, hard: 1024 };
}

/** Returns the first line of `haproxy -v`, or null when haproxy cannot run. */
export async function haproxyVersion(): Promise<string | null> {
  const out = await runCapture('haproxy', ['-v'], 5000);
  if (out === null || out.code !== 0) return null;
  return out.stdout.split('\n')[0]?.trim() || null;
}

/**
 * Returns the `--help` text of the bundled proxy (what `embryonic proxy --help` prints: the usage
 * of cli/proxy.ts's command, read in this process), or null when the command does not exist or
 * its module does not load (the proxy is missing or broken).
 */
export async function proxyHelp(): Promise<string | null> {
  const file = join(ROOT, 'cli/proxy.ts');
  if (!existsSync(file)) return null;
  try {
    const mod = (await import(pathToFileURL(file).href)) as { proxyCommand?: { usage?: unknown } };
    const usage = mod.proxyCommand?.usage;
    return typeof usage === 'string' && usage.includes('proxy') ? usage : null;
  } catch {
    return null;
  }
}

/**
 * Returns the node arguments that run the CLI command exported as <exportName> by <module>
 * (relative to the project root) with <args>, through tsx's loader and without the rest of the
 * CLI: `--import tsx --input-type=module -e <script> -- <args>`. The script sets the exit code
 * to what the command returns, as bin/embryonic.js does. Pure.
 */
export function commandArgs(module: string, exportName: string, args: readonly string[]): string[] {
  const url = pathToFileURL(join(ROOT, module)).href;
  const script = `import { ${exportName} } from ${JSON.stringify(url)}; process.exitCode = await ${exportName}.run(process.argv.slice(1));`;
  return ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args];
}

/**
 * Runs <file> <args> to completion (bounded by <timeoutMs>, then SIGKILL) and resolves with its
 * exit code and output, or null when it cannot start. Never rejects.
 */
export function runCapture(
  file: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string } | null> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      resolve(null);
      return;
    }
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', function captureOnStdout(s: string) {
      stdout += s;
    });
    child.stderr?.setEncoding('utf8').on('data', function captureOnStderr(s: string) {
      stderr += s;
    });
    const timer = setTimeout(function captureOnTimeout() {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', function captureOnError() {
      clearTimeout(timer);
      resolve(null);
    });
    child.once('close', function captureOnClose(code) {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/** Returns the resident set size of process <pid> in bytes (VmRSS), or null if it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

/** Returns the CPU time process <pid> used so far (user + system), in ms, or null if it is gone. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  } catch {
    return null;
  }
}

/** The machine's CPU time so far, in clock ticks, from the aggregate `cpu` line of /proc/stat. */
export interface CpuTimes {
  busy: number; //  user, nice, system, irq, softirq (guest time is inside user and nice)
  idle: number; //  idle and iowait
  steal: number; // time a virtual CPU was ready to run while the hypervisor ran another guest
}

/** Parses the aggregate `cpu` line of /proc/stat's <text>; null when it has none. Pure. */
export function parseCpuTimes(text: string): CpuTimes | null {
  const m = /^cpu\s+(.+)$/m.exec(text);
  if (!m) return null;
  const f = m[1]!.trim().split(/\s+/).map(Number);
  if (f.length < 8 || f.slice(0, 8).some((v) => !Number.isFinite(v))) return null;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
}

/** The machine's CPU times now (/proc/stat), null off Linux. */
export function cpuTimes(): CpuTimes | null {
  try {
    return parseCpuTimes(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/**
 * The CPU steal between readings <a> and <b>: of the CPU time the machine wanted (busy + steal),
 * the share in percent the hypervisor gave to other guests instead. On a virtual machine whose
 * host is shared, every rate measured meanwhile is lowered by about that share. Null when a
 * reading is missing or nothing ran. Pure.
 */
export function stealPercent(a: CpuTimes | null, b: CpuTimes | null): number | null {
  if (!a || !b) return null;
  const wanted = b.busy - a.busy + (b.steal - a.steal);
  return wanted > 0 ? (100 * (b.steal - a.steal)) / wanted : null;
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

// Started processes and temporary directories are recorded by conformance/targets.ts
// (trackChild, makeTempDir), whose killStartedProcesses is the last resort of both harnesses.
export { killStartedProcesses, liveProcessCount } from '../conformance/targets.ts';

/**
 * Spawns <file> <args> in the project root with the soft fd limit raised to the hard one (through
 * `sh -c 'ulimit -n ...; exec "$0" "$@"'`, so that the child's pid is the program's). The child is
 * tracked; the caller owns it and must stop it (stopProcess).
 */
export function spawnRaised(file: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const script = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';
  const child = spawn('/bin/sh', ['-c', script, file, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: env ?? process.env,
  });
  trackChild(child);
  return child;
}

/** Keeps the last <max> lines written on <streams> (a child's stdout, stderr) in <lines>. */
function collectLines(streams: readonly (NodeJS.ReadableStream | null)[], lines: string[], max = 200): void {
  for (const stream of streams) {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', function streamOnData(chunk: string) {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) if (line.trim()) lines.push(line);
      if (lines.length > max) lines.splice(0, lines.length - max);
    });
  }
}

/** The ports findFreePort has handed out. */
const GIVEN_PORTS = new Set<number>();

/**
 * Finds a free TCP port on 127.0.0.1 below Linux's ephemeral range (so that the clients' own
 * ports never collide with it). Resolves with it; rejects after 50 attempts. The port is free
 * when checked; the caller binds it at once.
 */
export async function findFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (GIVEN_PORTS.has(port)) continue;
    GIVEN_PORTS.add(port); // never given twice by this process: proxies start in parallel
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port on 127.0.0.1 after 50 attempts');
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Waits <ms>. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// The echo backend
// ---------------------------------------------------------------------------------------------

/** A running echo backend. */
export interface EchoProcess {
  pid: number;
  port: number;
  /** Stops it (SIGTERM, then SIGKILL); idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the echo backend (`embryonic echo 0`) and resolves once it listens, with its port.
 * Rejects if it does not within START_TIMEOUT_MS. The caller must call stop().
 */
export async function startEcho(): Promise<EchoProcess> {
  const child = spawnRaised(process.execPath, commandArgs('cli/echo.ts', 'echoCommand', ['0']));
  child.stdin?.end();
  const lines: string[] = [];
  collectLines([child.stdout, child.stderr], lines);
  const stop = once(() => stopProcess(child));
  const until = performance.now() + START_TIMEOUT_MS;
  while (performance.now() < until && child.exitCode === null) {
    const m = lines.map((l) => /listening on 127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean);
    if (m) return { pid: child.pid!, port: Number(m[1]), stop };
    await sleep(20);
  }
  await stop();
  throw new Error(`the echo backend did not start: ${lines.slice(-5).join(' | ') || 'no output'}`);
}

// ---------------------------------------------------------------------------------------------
// The proxies under test
// ---------------------------------------------------------------------------------------------

/**
 * Which proxy: the bundled proxy, Debian's HAProxy, or row 1's node:net floor (bench/floor.ts: a
 * bare server holding and reading each connection, no proxy logic; no stats socket, its
 * connections counted in /proc).
 */
export type ProxyKind = 'impl' | 'haproxy' | 'floor';

/** How to start a proxy under test. */
export interface ProxySpec {
  kind: ProxyKind;
  backendPort: number; //    the echo backend
  maxconn: number; //        global and frontend maxconn
  timeoutClient: string; //  `timeout client` (and server): '10m' keeps idle floods open
  heapProbe?: boolean; //    impl, floor: start node with the heap snapshot and report signals
  reportProbe?: boolean; //  impl, floor: start node with the report signal only (v8Heap, no GC)
  monitor?: boolean; //      impl: pass --monitor (the live trace monitor)
}

/** A running proxy under test. */
export interface ProxyProcess {
  kind: ProxyKind;
  label: string; //          'impl', 'impl --monitor', 'haproxy', 'floor'
  pid: number;
  port: number; //           its bind on 127.0.0.1
  statsPath: string; //      '' for the floor, which has none
  output: string[]; //       its last lines of output
  /** `show info` of its stats socket, by name. Rejects if the socket does not answer (always for the floor). */
  info(): Promise<Record<string, string>>;
  /**
   * CurrConns from `show info`; for the floor, the sockets among its fds (/proc/<pid>/fd) beyond
   * those it had once listening.
   */
  currConns(): Promise<number>;
  /** Its RSS in bytes, null if it is gone. */
  rss(): number | null;
  /** Its CPU time so far in ms, null if it is gone. */
  cpu(): number | null;
  /**
   * Its JS heap in use after a full GC, and the external memory V8 accounts beside it (the
   * ArrayBuffer backing stores: every Buffer's bytes, the pool's channel buffers included), in
   * bytes (impl or floor started with heapProbe), else null. Takes a heap snapshot (blocking the proxy for a
   * while; its RSS may grow) and a report.
   */
  jsHeap(): Promise<JsHeap | null>;
  /**
   * V8's heap as it is, without a GC (impl or floor started with reportProbe or heapProbe), else null:
   * takes a diagnostic report, which allocates a little, so a caller measuring growth takes it
   * outside the span it measures.
   */
  v8Heap(): Promise<V8Heap | null>;
  /** Stops it and removes its directory; idempotent. */
  stop(): Promise<void>;
}

/**
 * Returns the configuration the benchmarks run both proxies on: one frontend `fe_bench` with one
 * accept-proxy bind on 127.0.0.1:<port>, nbthread 1, the stats socket, no log, `timeout client`
 * and `timeout server` <timeoutClient>, one server on 127.0.0.1:<backendPort>. Pure.
 */
export function benchConfig(o: {
  port: number;
  statsPath: string;
  backendPort: number;
  maxconn: number;
  timeoutClient: string;
}): string {
  return [
    '# Generated by bench/targets.ts: the configuration both proxies run in the benchmarks.',
    'global',
    `    maxconn ${o.maxconn}`,
    '    nbthread 1',
    `    stats socket ${o.statsPath} mode 600 level admin`,
    '',
    'defaults',
    '    mode tcp',
    '    timeout connect 5s',
    `    timeout client ${o.timeoutClient}`,
    `    timeout server ${o.timeoutClient}`,
    '',
    'frontend fe_bench',
    `    bind 127.0.0.1:${o.port} accept-proxy name bench`,
    `    maxconn ${o.maxconn}`,
    '    default_backend be_bench',
    '',
    'backend be_bench',
    `    server echo1 127.0.0.1:${o.backendPort}`,
    '',
  ].join('\n');
}

/**
 * Starts the proxy of <spec> on a free port with a generated configuration in a fresh temporary
 * directory, and resolves once its stats socket answers `show info` (the floor, which reads no
 * configuration and has no stats socket: once it prints its listening line). Rejects (after
 * stopping it) with its last output if it exits or is not ready within START_TIMEOUT_MS. The
 * caller owns the proxy and must call stop().
 */
export async function startProxyProcess(spec: ProxySpec): Promise<ProxyProcess> {
  const dir = makeTempDir(`bench-${spec.kind}`);
  const statsPath = join(dir, 'stats.sock');
  const cfgPath = join(dir, 'bench.cfg');
  const port = await findFreePort();
  writeFileSync(
    cfgPath,
    benchConfig({
      port,
      statsPath,
      backendPort: spec.backendPort,
      maxconn: spec.maxconn,
      timeoutClient: spec.timeoutClient,
    }),
  );
  let file: string;
  let args: string[];
  if (spec.kind === 'haproxy') {
    file = 'haproxy';
    args = ['-db', '-f', cfgPath];
  } else {
    file = process.execPath;
    const probe =
      spec.heapProbe || spec.reportProbe
        ? [
            ...(spec.heapProbe ? ['--heapsnapshot-signal=SIGUSR2'] : []),
            '--report-on-signal',
            '--report-signal=SIGXCPU',
            `--diagnostic-dir=${dir}`,
            `--report-directory=${dir}`,
            '--report-exclude-network', // no reverse DNS lookup per socket (a report with 10k sockets would take minutes)
          ]
        : [];
    const command =
      spec.kind === 'floor'
        ? commandArgs('bench/floor.ts', 'floorServer', ['--port', String(port)])
        : commandArgs('cli/proxy.ts', 'proxyCommand', [
            '-f',
            cfgPath,
            ...(spec.monitor ? ['--monitor'] : []),
          ]);
    args = [...probe, ...command];
  }
  const child = spawnRaised(file, args);
  child.stdin?.end();
  const output: string[] = [];
  collectLines([child.stdout, child.stderr], output);
  let exited: string | null = null;
  child.once('error', function proxyOnError(err) {
    exited = `${file} could not start: ${err.message}`;
  });
  child.once('exit', function proxyOnExitAtStart(code, signal) {
    exited ??= `${spec.kind} exited at start (code ${code}, signal ${signal})`;
  });
  const stop = once(async () => {
    await stopProcess(child);
    removeTempDir(dir);
  });
  // Ready: the stats socket answers, or the floor (which has none) says it listens.
  const isReady = (): Promise<boolean> =>
    spec.kind === 'floor'
      ? Promise.resolve(output.includes(`listening ${port}`))
      : existsSync(statsPath)
        ? statsQuery(statsPath, 'show info', 1000).then(
            () => true,
            () => false,
          )
        : Promise.resolve(false);
  const until = performance.now() + START_TIMEOUT_MS;
  let ready = false;
  while (!ready && exited === null && performance.now() < until) {
    await sleep(30);
    ready = await isReady();
  }
  if (!ready) {
    await stop();
    const why = exited ?? `it was not ready (stats socket or listening line) within ${START_TIMEOUT_MS} ms`;
    throw new Error([why, ...output.slice(-8).map((l) => `  ${l}`)].join('\n'));
  }
  const pid = child.pid!;
  const info = async (): Promise<Record<string, string>> =>
    spec.kind === 'floor'
      ? Promise.reject(new Error('the floor has no stats socket'))
      : parseShowInfo(await statsQuery(statsPath, 'show info', 5000));
  const idleSockets = spec.kind === 'floor' ? (socketFdCount(pid) ?? 0) : 0;
  const node = spec.kind !== 'haproxy';
  return {
    kind: spec.kind,
    label: spec.kind === 'impl' && spec.monitor ? 'impl --monitor' : spec.kind,
    pid,
    port,
    statsPath: spec.kind === 'floor' ? '' : statsPath,
    output,
    info,
    currConns:
      spec.kind === 'floor'
        ? () => Promise.resolve((socketFdCount(pid) ?? NaN) - idleSockets)
        : async () => Number((await info()).CurrConns ?? NaN),
    rss: () => rssBytes(pid),
    cpu: () => cpuMs(pid),
    jsHeap: () => (node && spec.heapProbe ? readJsHeap(pid, dir) : Promise.resolve(null)),
    v8Heap: () =>
      node && (spec.heapProbe || spec.reportProbe) ? readV8Heap(pid, dir) : Promise.resolve(null),
    stop,
  };
}

/** How many of process <pid>'s fds are sockets (/proc/<pid>/fd links `socket:[…]`), null if it is gone. */
export function socketFdCount(pid: number): number | null {
  const dir = `/proc/${pid}/fd`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  let sockets = 0;
  for (const name of names) {
    try {
      if (readlinkSync(join(dir, name)).startsWith('socket:')) sockets++;
    } catch {
      // closed since the listing
    }
  }
  return sockets;
}

/** How long a heap snapshot and its report may take (a 10k-connection heap takes seconds). */
const HEAP_TIMEOUT_MS = 120_000;

/** The JS heap of a node process after a full GC, from its diagnostic report. */
export interface JsHeap {
  used: number; //     javascriptHeap.usedMemory: bytes of live JS objects
  external: number; // javascriptHeap.externalMemory: bytes allocated outside the heap for them (Buffers)
}

/** V8's heap of a node process without a GC, from its diagnostic report (javascriptHeap), in bytes. */
export interface V8Heap {
  committed: number; //      totalCommittedMemory: the pages V8's spaces hold, resident or about to be
  youngCommitted: number; // the young generation's (new_space and new_large_object_space)
  used: number; //           usedMemory: bytes of objects, live or not yet collected
}

/** The javascriptHeap section of a diagnostic report, as far as the benchmarks read it. */
interface ReportHeap {
  usedMemory?: number;
  externalMemory?: number;
  totalCommittedMemory?: number;
  heapSpaces?: Record<string, { committedMemory?: number }>;
}

/**
 * Reads the JS heap of the node process <pid> started with the heap probe flags, whose diagnostic
 * directory is <dir>: SIGUSR2 writes a heap snapshot (after a full GC); once its file exists (the
 * snapshot has begun), SIGXCPU asks for a report, whose javascriptHeap.usedMemory and
 * externalMemory are the answer.
 * Both signals are handled by listeners on the process's main thread, in order, and the snapshot
 * is written synchronously: the report is taken after the snapshot's GC, whatever the timing. Both
 * files are removed. Resolves with the bytes, or null when the process is gone or the files do not
 * come within HEAP_TIMEOUT_MS.
 */
async function readJsHeap(pid: number, dir: string): Promise<JsHeap | null> {
  const heap = await askReport(pid, dir, true);
  const used = heap?.usedMemory;
  const external = heap?.externalMemory;
  return typeof used === 'number' && typeof external === 'number' ? { used, external } : null;
}

/**
 * Reads V8's heap of the node process <pid> started with the report flags (diagnostic directory
 * <dir>) as it is, without a GC: SIGXCPU asks for a report. Resolves with its figures, or null when
 * the process is gone, the report does not come within HEAP_TIMEOUT_MS, or lacks a figure.
 */
async function readV8Heap(pid: number, dir: string): Promise<V8Heap | null> {
  const heap = await askReport(pid, dir, false);
  const spaces = heap?.heapSpaces;
  const young = [spaces?.new_space?.committedMemory, spaces?.new_large_object_space?.committedMemory];
  const committed = heap?.totalCommittedMemory;
  const used = heap?.usedMemory;
  if (typeof committed !== 'number' || typeof used !== 'number' || typeof young[0] !== 'number') return null;
  return { committed, used, youngCommitted: young[0] + (young[1] ?? 0) };
}

/**
 * Asks the node process <pid> for a diagnostic report in <dir> (SIGXCPU), after a heap snapshot
 * (SIGUSR2, which runs a full GC first) when <snapshot>, and resolves with the report's
 * javascriptHeap section; null when the process is gone or a file does not come within
 * HEAP_TIMEOUT_MS. Removes the files it caused.
 */
async function askReport(pid: number, dir: string, snapshot: boolean): Promise<ReportHeap | null> {
  const before = new Set(readdirSync(dir));
  const fresh = (suffix: string): string | undefined =>
    readdirSync(dir).find((f) => f.endsWith(suffix) && !before.has(f));
  const until = performance.now() + HEAP_TIMEOUT_MS;
  try {
    if (snapshot) {
      process.kill(pid, 'SIGUSR2');
      while (!fresh('.heapsnapshot')) {
        if (performance.now() >= until) return null;
        await sleep(10);
      }
    }
    process.kill(pid, 'SIGXCPU');
    while (performance.now() < until) {
      await sleep(25);
      const report = fresh('.json');
      if (!report) continue;
      try {
        const parsed = JSON.parse(readFileSync(join(dir, report), 'utf8')) as { javascriptHeap?: ReportHeap };
        return parsed.javascriptHeap ?? null;
      } catch {
        // still being written
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    for (const f of readdirSync(dir))
      if (!before.has(f) && (f.endsWith('.heapsnapshot') || f.endsWith('.json')))
        rmSync(join(dir, f), { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------

/** A running load generator (bench/load.ts), driven over its stdin/stdout. */
export interface Loader {
  pid: number;
  /**
   * Sends the request <op> with <params> and resolves with its result. Rejects with the
   * generator's error, or when no answer comes within <timeoutMs>.
   */
  request<T>(op: string, params: Record<string, unknown>, timeoutMs: number): Promise<T>;
  /** Closes its stdin (it closes every socket and exits), then stops it; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the load generator as its own process (`node --import tsx bench/load.ts`) and resolves
 * once it answered `hello`. Rejects if it does not within START_TIMEOUT_MS. The caller must call
 * stop().
 */
export async function startLoader(): Promise<Loader> {
  const child = spawnRaised(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/load.ts')]);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const stderr: string[] = [];
  let nextId = 1;
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', function loaderOnStdout(chunk: string) {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.trim()) continue;
      let answer: { id?: number; ok?: boolean; result?: unknown; error?: string };
      try {
        answer = JSON.parse(line) as typeof answer;
      } catch {
        stderr.push(`(stdout) ${line}`);
        continue;
      }
      const waiter = answer.id === undefined ? undefined : pending.get(answer.id);
      if (!waiter) continue;
      pending.delete(answer.id!);
      if (answer.ok) waiter.resolve(answer.result);
      else waiter.reject(new Error(`load generator: ${answer.error ?? 'failed'}`));
    }
  });
  collectLines([child.stderr], stderr, 50);
  child.once('exit', function loaderOnExit(code, signal) {
    for (const w of pending.values())
      w.reject(
        new Error(`load generator exited (code ${code}, signal ${signal}): ${stderr.slice(-3).join(' | ')}`),
      );
    pending.clear();
  });
  child.stdin?.on('error', function loaderStdinOnError() {
    // the generator exited; its pending requests are rejected by loaderOnExit
  });
  const request = <T>(op: string, params: Record<string, unknown>, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        reject(new Error(`load generator is not running: ${stderr.slice(-3).join(' | ')}`));
        return;
      }
      const id = nextId++;
      const timer = setTimeout(function requestOnTimeout() {
        pending.delete(id);
        reject(new Error(`load generator: no answer to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.stdin?.write(`${JSON.stringify({ id, op, ...params })}\n`);
    });
  const stop = once(async () => {
    child.stdin?.end();
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const clean = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
    if (!clean) await stopProcess(child);
  });
  try {
    await request('hello', {}, START_TIMEOUT_MS);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, request, stop };
}

/** Returns fn memoized: the first call runs it, every later call gets the same promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= fn());
}

// ---------------------------------------------------------------------------------------------
// What every benchmark gets from the driver
// ---------------------------------------------------------------------------------------------

/** The processes and facts shared by the benchmarks of one run (bench/run.ts owns them). */
export interface BenchContext {
  loader: Loader;
  echo: EchoProcess;
  implMissing: string | null; //     why the bundled proxy cannot run; null: it can
  haproxyMissing: string | null; //  why HAProxy cannot run; null: it can
  fdHard: number; //                 the hard fd limit every child runs with
  log(line: string): void; //        progress, for the human watching
  /**
   * The proxies rows 2, 3 and 4 share: started together at the first call (the same promise for
   * every later call), stopped by the driver at the end. Never rejects.
   */
  rateProxies(): Promise<RateProxies>;
}

/** The proxies of the rate rows (2, 3, 4), one process each, on the same configuration. */
export interface RateProxies {
  impl: ProxyProcess | null; //       null: it did not start (see failures)
  haproxy: ProxyProcess | null; //    null: missing (BenchContext.haproxyMissing) or did not start
  monitored: ProxyProcess | null; //  impl --monitor; null: not asked for, no such option, or did not start
  /**
   * The bundled proxy without --monitor that row 4 compares `monitored` with: started with it and,
   * like it, serving nothing before row 4, so that neither side of a pair has served rows 2 and 3
   * (the run of 00:49 had the shared `impl` as the anchor: the monitored proxy's first pairs,
   * fresh against a proxy warm from 80k connections, were its lowest). Null when `monitored` is.
   */
  unmonitored: ProxyProcess | null;
  failures: { kind: ProxyKind; reason: string }[];
}

/** The configuration of the rate proxies: room for the accept loops, idle sessions kept 30 s. */
export const RATE_MAXCONN = 4096;
export const RATE_TIMEOUT = '30s';

/**
 * Starts the rate proxies for <ctx>: the bundled proxy, HAProxy unless it is missing, and when
 * <monitor> the bundled proxy with --monitor and one more without (row 4's pair), all at once.
 * Resolves with them; never rejects. The caller must stop every one (stopAll).
 */
export async function startRateProxies(
  ctx: Pick<BenchContext, 'echo' | 'haproxyMissing' | 'implMissing'>,
  monitor: boolean,
): Promise<RateProxies> {
  if (ctx.implMissing) return { impl: null, haproxy: null, monitored: null, unmonitored: null, failures: [] };
  const base = { backendPort: ctx.echo.port, maxconn: RATE_MAXCONN, timeoutClient: RATE_TIMEOUT };
  const specs: ProxySpec[] = [{ kind: 'impl', ...base }];
  const haproxyAt = ctx.haproxyMissing ? -1 : specs.push({ kind: 'haproxy', ...base }) - 1;
  const monitoredAt = monitor ? specs.push({ kind: 'impl', ...base, monitor: true }) - 1 : -1;
  const unmonitoredAt = monitor ? specs.push({ kind: 'impl', ...base }) - 1 : -1;
  const { bySpec, failures } = await startProxies(specs);
  const at = (i: number): ProxyProcess | null => (i < 0 ? null : (bySpec[i] ?? null));
  return {
    impl: at(0),
    haproxy: at(haproxyAt),
    monitored: at(monitoredAt),
    unmonitored: at(unmonitoredAt),
    failures,
  };
}

/**
 * Polls <probe> every <intervalMs> until it resolves true or <timeoutMs> passed. Resolves true if
 * it did, false at the timeout. A probe that rejects counts as false.
 */
export async function waitUntil(
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const ok = await Promise.resolve()
      .then(probe)
      .catch(() => false);
    if (ok) return true;
    if (performance.now() >= until) return false;
    await sleep(intervalMs);
  }
}

/** The order of the proxies in repetition <rep>: alternated, so that neither always runs first. Pure. */
export function alternate<T>(items: readonly T[], rep: number): T[] {
  return rep % 2 === 0 ? [...items] : [...items].reverse();
}

/**
 * Starts one proxy per spec of <specs>, all at once. Resolves with the ones that started (in the
 * order of <specs>), <bySpec> (the proxy of each spec, null for one that did not start) and, for
 * each that did not, the reason (its first error lines); never rejects. The caller must stop every
 * proxy returned (stopAll).
 */
export async function startProxies(specs: readonly ProxySpec[]): Promise<{
  proxies: ProxyProcess[];
  bySpec: (ProxyProcess | null)[];
  failures: { kind: ProxyKind; reason: string }[];
}> {
  const failures: { kind: ProxyKind; reason: string }[] = [];
  const bySpec = await Promise.all(
    specs.map((spec) =>
      startProxyProcess(spec).catch((err: Error) => {
        failures.push({ kind: spec.kind, reason: err.message.split('\n').slice(0, 4).join(' / ') });
        return null;
      }),
    ),
  );
  return { proxies: bySpec.filter((p): p is ProxyProcess => p !== null), bySpec, failures };
}

/** Stops every proxy of <proxies> (in parallel) and resolves once all exited. Never rejects. */
export async function stopAll(proxies: readonly { stop(): Promise<void> }[]): Promise<void> {
  await Promise.all(proxies.map((p) => p.stop().catch(() => undefined)));
}
