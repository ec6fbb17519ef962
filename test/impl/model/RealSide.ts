/**
 * The real side of the scenarios: one proxy child process per configuration (started once with
 * `--test-clock` and reused by every run), the scenarios' own backend, and the clients of the
 * current run; plus the run's life: begin (align the clock, take the baseline), converge (wait
 * until the observers agree with the model), finish (close everything, let time pass, check that
 * every resource came back).
 *
 * Runs compare deltas against their baseline observation, so the proxy is never reset between
 * runs; a run must leave it idle (no connection, no fd, no live pool item, the listener polling,
 * no queue task). A run that fails may not: the next begin then restarts the process.
 */
import { startProxyProcess, sleep, type ProxyProcess } from '../harness.ts';
import { ScenarioBackend } from './backend.ts';
import { ScenarioClient } from './clients.ts';
import { SOURCE_ADDRESS, DEADLINE, type ScenarioConfig } from './configs.ts';
import { formatGaps, gaps, observe, type Gap, type Observation, type RuleName } from './observe.ts';
import { ProxyModel, resetMeetsRefusal, type AllocSite } from './ProxyModel.ts';

/** How long a command may take to show its predicted effect before it fails. */
export const CONVERGE_MS = 3000;

/** A proxy child process and its backend, for one configuration. */
export class ProxyUnderTest {
  now = 0; //      the proxy's virtual time (its TestClock starts at 0; only `advance` moves it)
  queries = 0; //  CLI connections made to its stats socket
  idleFds = 0; //  /proc/<pid>/fd entries when it holds no connection
  runs = 0;
  restarts = 0;
  /**
   * The violations (host, pool, fd) the proxy had shown when its last run ended cleanly, or null
   * after a run that did not: the next run must begin with exactly those, none added in between.
   */
  violationsAtEnd: number | null = null;
  convergeMs = CONVERGE_MS; // how long a command may take to show its predicted effect

  private constructor(
    readonly config: ScenarioConfig,
    readonly backend: ScenarioBackend,
    public proxy: ProxyProcess,
    private readonly args: string[],
    private readonly env: Record<string, string>,
  ) {}

  /**
   * Starts the backend and the proxy for `config` with `--test-clock`, its profile, `extraArgs` (e.g.
   * `--trace FILE`) and `env` (e.g. a planted fault). The caller must call stop().
   */
  static async start(
    config: ScenarioConfig,
    extraArgs: string[] = [],
    env: Record<string, string> = {},
  ): Promise<ProxyUnderTest> {
    const backend = await ScenarioBackend.start();
    const args = ['--test-clock', '--profile', config.model.profile, ...extraArgs];
    try {
      const proxy = await startProxyProcess((dir) => config.text(dir, backend.port), args, env);
      const put = new ProxyUnderTest(config, backend, proxy, args, env);
      await put.measureIdle();
      return put;
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  /** Sends one CLI line to the stats socket and returns the answer. */
  query(cmd: string): Promise<string> {
    this.queries++;
    return this.proxy.query(cmd);
  }

  /** Moves the proxy's virtual clock `ms` forward (`set clock advance`). */
  async advance(ms: number): Promise<void> {
    if (ms <= 0) return;
    const answer = await this.query(`set clock advance ${ms}`);
    if (answer.trim() !== '') throw new Error(`set clock advance ${ms}: ${answer.trim()}`);
    this.now += ms;
  }

  /** Makes the next allocation at `site` fail (`set fault SITE N`, N read from the ledger). */
  async injectFault(site: AllocSite): Promise<void> {
    const pool = JSON.parse(await this.query('show pool')) as { sites: Record<string, { attempts: number }> };
    const answer = await this.query(`set fault ${site} ${pool.sites[site]!.attempts + 1}`);
    if (answer.trim() !== '') throw new Error(`set fault ${site}: ${answer.trim()}`);
  }

  /** Kills the proxy and starts it again with the same configuration and arguments (after a failed run). */
  async restart(): Promise<void> {
    await this.proxy.stop('SIGKILL');
    await this.backend.setMode('echo');
    this.proxy = await startProxyProcess(
      (dir) => this.config.text(dir, this.backend.port),
      this.args,
      this.env,
    );
    this.now = 0;
    this.queries = 0;
    this.restarts++;
    await this.measureIdle();
  }

  /**
   * Stops the proxy and the backend. SIGTERM by default; SIGKILL for a proxy that may not exit
   * on its own (a planted fault leaves a socket open).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proxy.stop(signal);
    await this.backend.close();
  }

  /** Reads the fd count of the idle proxy once it is stable (no CLI connection in flight). */
  private async measureIdle(): Promise<void> {
    await this.query('show info');
    let last = -1;
    for (let i = 0; i < 50; i++) {
      await sleep(10);
      const n = this.proxy.fdCount();
      if (n === last) break;
      last = n;
    }
    this.idleFds = last;
  }
}

/** The real side of one run: the proxy under test, its baseline, the run's clients and script. */
export class RealSide {
  readonly clients: ScenarioClient[] = [];
  readonly script: string[] = []; // the client actions so far, readable

  constructor(
    readonly put: ProxyUnderTest,
    public baseline: Observation,
  ) {}

  /** Records one line of the run's script (what a command did, with its resolved client). */
  note(line: string): void {
    this.script.push(line);
  }

  /** Connects client `id` from a source of class `src`. */
  async connect(id: number, src: 'plain' | 'denied' | 'monitor'): Promise<ScenarioClient> {
    const c = await ScenarioClient.connect(id, this.put.proxy.port, SOURCE_ADDRESS[src]);
    this.clients[id] = c;
    return c;
  }

  /** The script so far, one numbered action per line. */
  formatScript(): string {
    return this.script.map((l, i) => `  ${String(i + 1).padStart(2)}. ${l}`).join('\n');
  }
}

/** A run whose observers disagree with the model: the gaps and the script that led there. */
export class ScenarioFailure extends Error {
  constructor(
    readonly gapList: Gap[],
    readonly script: string,
    what: string,
  ) {
    super(
      `after "${what}", the real proxy does not match the model:\n${formatGaps(gapList)}\nscript:\n${script}`,
    );
  }
}

/**
 * Waits until the observers agree with `model` (no gap), polling the proxy; throws a
 * ScenarioFailure with the last gaps after `ms`. `what` names the action for the message.
 */
export async function converge(
  model: ProxyModel,
  real: RealSide,
  what: string,
  ms = real.put.convergeMs,
): Promise<void> {
  const until = performance.now() + ms;
  let delay = 1;
  for (;;) {
    const found = gaps(model, real, await observe(real.put));
    if (found.length === 0) return;
    if (performance.now() > until) throw new ScenarioFailure(found, real.formatScript(), what);
    await sleep(delay);
    delay = Math.min(delay * 2, 20);
  }
}

/**
 * Begins a run on `put` for up to `maxClients` clients: puts the backend in echo mode, as the model
 * starts (a failed run does not reach finishRun, and may leave it refusing), aligns the virtual
 * clock on the next second (a rate period: the per-second counters restart), takes the baseline
 * observation, and returns a fresh model and real side. If the proxy is not idle (a previous run
 * failed), it is restarted first. Throws if the last run ended cleanly and a violation appeared
 * since: nothing may go wrong between two runs either.
 */
export async function beginRun(
  put: ProxyUnderTest,
  maxClients: number,
): Promise<{ model: ProxyModel; real: RealSide }> {
  await put.backend.setMode('echo');
  for (let attempt = 0; ; attempt++) {
    // To a second's start after two idle seconds: no rate period runs on from the last run (2.x),
    // and the previous period counted nothing (the models start from empty rate counters).
    await put.advance(3000 - (put.now % 1000));
    const until = performance.now() + 1000;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const baseline = await observe(put);
      const shown = violationsOf(baseline);
      if (put.violationsAtEnd !== null && shown.length > put.violationsAtEnd)
        throw new Error(
          `violations appeared between two runs on ${put.config.name}: ${shown.slice(put.violationsAtEnd).join('; ')}`,
        );
      const model = new ProxyModel(put.config, maxClients, put.now);
      for (const f of baseline.pool.faults) model.injectFault(f.split(':')[0] as AllocSite);
      const real = new RealSide(put, baseline);
      const idle =
        baseline.info.CurrConns === 0 &&
        baseline.fe.scur === 0 &&
        baseline.liStatus === 'OPEN' &&
        baseline.fd.live.length === 0 &&
        baseline.fdCount === put.idleFds &&
        Object.values(baseline.pool.sites).every((s) => s.live === 0) &&
        shown.length === 0;
      if (idle && gaps(model, real, baseline).length === 0) {
        put.runs++;
        put.violationsAtEnd = null; // set again only if this run ends cleanly (finishRun)
        return { model, real };
      }
      if (performance.now() > until) break;
      await sleep(delay);
    }
    if (attempt > 0) throw new Error(`the proxy for ${put.config.name} is not idle even after a restart`);
    put.violationsAtEnd = null;
    await put.restart();
  }
}

/**
 * Ends a run: resets every client still open, one at a time, lets virtual time pass until the model has nothing
 * left (no session, no parked client, no timer), and checks at each stage that the observers agree.
 * A client still in the backlog is reset too; if its stream would then meet a refusing backend at
 * accept (resetMeetsRefusal), the backend echoes again first.
 * Then checks what must hold at the end: every fd back (the count at its idle baseline), nothing
 * live in the pool, each client's socket closed exactly once, and no violation added since the
 * baseline (`show violations`, the pool's, the fd table's). Throws a ScenarioFailure if not.
 */
export async function finishRun(model: ProxyModel, real: RealSide): Promise<void> {
  if (model.clients.some((cl) => resetMeetsRefusal(model, cl.id, model.backendMode))) {
    model.setBackend('echo');
    real.note('the backend echoes (end of the run, before a client in the backlog resets)');
    await real.put.backend.setMode('echo');
    await converge(model, real, 'the backend echoes at the end of the run');
  }
  for (const cl of model.clients) {
    const rc = real.clients[cl.id];
    if (!rc || rc.closed || rc.did === 'rst') continue;
    model.close(cl.id, 'rst');
    rc.reset();
    real.note(`c${cl.id} resets (end of the run)`);
    // One at a time: the proxy's order of work across clients is only fixed by waiting.
    await converge(model, real, `c${cl.id} reset at the end of the run`);
  }
  for (let i = 0; i < 30 && !model.idle(); i++) {
    // At least 100 ms: a 2.x frontend task re-checks a spent session rate every millisecond, until
    // the rate's period (up to a second) ends.
    const ms = Math.max(100, Math.min(model.nextTimerIn() ?? DEADLINE, DEADLINE + 1));
    model.advance(ms);
    await real.put.advance(ms);
    real.note(`${ms} ms pass (end of the run)`);
    await converge(model, real, `${ms} ms passed at the end of the run`);
  }
  if (!model.idle()) throw new Error(`the model is not idle at the end of the run:\n${real.formatScript()}`);
  const until = performance.now() + real.put.convergeMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const obs = await observe(real.put);
    const end = endGaps(real, obs);
    if (end.length === 0) {
      real.put.violationsAtEnd = violationsOf(obs).length;
      break;
    }
    if (performance.now() > until) throw new ScenarioFailure(end, real.formatScript(), 'the end of the run');
    await sleep(delay);
  }
  await real.put.backend.setMode('echo');
}

/** Every violation an observation shows: the host's, then the pool ledger's, then the fd table's. */
function violationsOf(obs: Observation): string[] {
  return [...obs.host, ...obs.pool.violations, ...obs.fd.violations];
}

/** What must hold once a run is over, beyond the model's predictions: everything came back. */
function endGaps(real: RealSide, obs: Observation): Gap[] {
  const end: Gap[] = [];
  if (obs.fdCount !== real.put.idleFds)
    end.push({ rule: 'fds', detail: `/proc fd count ${obs.fdCount}, idle baseline ${real.put.idleFds}` });
  for (const [site, s] of Object.entries(obs.pool.sites))
    if (s.live !== 0) end.push({ rule: 'pool', detail: `${s.live} ${site} item(s) still live` });
  for (const rc of real.clients)
    if (rc && rc.seen.closes !== 1)
      end.push({ rule: 'clients', detail: `c${rc.id}'s socket closed ${rc.seen.closes} times` });
  const base = real.baseline;
  const added: [RuleName, string[]][] = [
    ['host', obs.host.slice(base.host.length)],
    ['pool', obs.pool.violations.slice(base.pool.violations.length)],
    ['fds', obs.fd.violations.slice(base.fd.violations.length)],
  ];
  for (const [rule, list] of added)
    if (list.length > 0) end.push({ rule, detail: `violations at the end of the run: ${list.join('; ')}` });
  return end;
}

/** Destroys every client socket of the run (after a failure; finishRun closes them properly). */
export function disposeRun(real: RealSide): void {
  for (const rc of real.clients) rc?.destroy();
}
