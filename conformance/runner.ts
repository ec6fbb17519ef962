/**
 * Runs the conformance cases against one or more targets, one case at a time, and collects one
 * result per case and target: the verdict, every check, the byte-level wire log, what the backend
 * saw, the counters read, and the target's log lines.
 *
 * Verdicts:
 *   pass                every check of the case holds, and the target lets go of everything after it
 *   fail                a check does not hold, the case overran its budget, the target still holds
 *                       something once the case is over, or the target is broken
 *   skipped             haproxy is not installed, or the case needs a stats socket the target lacks
 *   version-difference  every check holds, and the model predicts for the target's profile
 *                       something else than for the default model (dev12) in what the target
 *                       shows (predict.ts observablyDiffer: the closes, the deadlines that kill,
 *                       the counters, and the kills logged when the runner captures the target's
 *                       log); the case's `profileDifferences` says why. Also a case whose
 *                       frontend no target of the profile serves (suite.cfg.ts servesFrontend:
 *                       fe_monitor, fe_rate_full, fe_client_hs), with the case's reason.
 *   known-bug           the target is HAProxy's own build, the case names a bug that build has
 *                       (cases.ts KnownBug: a mutant of machines/mutants.ts, for the target's
 *                       profile), and every check holds against the prediction of the model with
 *                       that mutant's defect switched in: the target does exactly what the bug
 *                       makes it do. A run that matches neither that prediction fails.
 *
 * After each case the runner waits (bounded by SETTLE_MS) until the target holds nothing, and checks
 * that it came true, as every case's last checks:
 *   "the target holds nothing once the case is over": the suite's backend has no connection left
 *       and, with a stats socket, every suite frontend's scur is 0 (every target);
 *   "the bundled proxy's ledgers are clean once nothing is connected": on each of its stats
 *       sockets, `show violations`, `show pool` and `show fd` list no violation, no pool site has a
 *       live item (live 0, allocs = frees) and no fd is live (the impl target only: HAProxy does
 *       not know these commands).
 * A failed settle check fails the case like any other. It also keeps the next case from seeing this
 * one's connections.
 *
 * The runner times everything on its own event loop, so a run during which that loop stalled (the
 * runner's process starved of CPU, as on a loaded machine) can see the target late, or act late
 * itself; and a target starved of CPU acts late however well the runner keeps time. A failed run
 * is no evidence when the runner's loop was late by more than STALL_MS at once (StallWatch), or
 * when a process the suite started for the target waited more than STALL_MS in all for a CPU
 * while it had work (CpuWaitWatch, from the kernel's /proc/PID/schedstat: a target run apart has
 * none to read). The case then runs again, at most STALL_RUNS - 1 times (the two judgements of a
 * known bug share that budget). The result is the last run's, with a note for each run before it,
 * which keeps that run's reason; a pass needs a run that passed, and the progress line says how
 * many runs it took. A target that fails a case on every run fails it, starved or not.
 *
 * The expectations beyond the case body's own checks come from the model (cases.ts predictionOf:
 * the case's scenario run on the suite config of its frontend under the target's profile):
 *   "the target closes each connection as the model predicts": the case's clients, one per
 *       connection the scenario accepts, saw as many FINs and RSTs as the model closes with
 *       (predict.ts closesCheck), on every target;
 *   "the target logs the kills the model predicts": one kill line per logged kill, with its code,
 *       from the case's frontend, and no other kill line (none for a case that kills nothing, or
 *       whose kills option dontlognull hides), judged on every target whose log the runner
 *       captures. A case that needs the log (`needs: ['log']`: what it claims is the log) is
 *       skipped where it is not captured (a HOST:PORT target).
 *
 * On a target that writes a lifecycle trace (the bundled proxy, targets.ts), the runner reads the
 * transitions the case took from the trace (trace.ts: the step lines written from the case's start
 * to the end of its settle, its connections' and its listener's) into the result's
 * `transitionsTaken` (or, when the trace cannot be read, why into `traceError`; steps of
 * connections accepted before the case are left out, and a note says how many), and adds the check
 *   "the case takes the transitions the model predicts": the transitions it took are exactly those
 *       of the prediction for the target's profile (`--profile 2.6` included), so the scenario is
 *       what the case's body made the proxy do. It fails the case naming the ones it did not take
 *       and the ones it took unpredicted.
 */
import { basename } from 'node:path';
import type { Profile } from '../machines/config.ts';
import { mutantById } from '../machines/mutants.ts';
import { ERR_CODES, errCodeMessage, type ErrCode } from '../machines/errCodes.ts';
import { WireClient, WireLog, type WireEvent } from './client.ts';
import {
  baselineProfileOf,
  predictionOf,
  profilesOf,
  type ConformanceCase,
  type ProfileDifference,
} from './cases.ts';
import { MAX_CONNECT_LAG_MS, type CaseContext, type Check } from './expect.ts';
import {
  closesCheck,
  HEADER_SOURCES,
  describeCounterDifference,
  describeDeadlineDifference,
  describeLog,
  describePrediction,
  observablyDiffer,
  tally,
  type Prediction,
  type Scenario,
} from './predict.ts';
import { readMergedStats, statsQuery, type StatsSnapshot } from './stats.ts';
import { markTraces, readTraceSince, takesPredictedCheck, type TransitionsTaken } from './trace.ts';
import { CLIENT_ADDRESS, DEADLINE_MS, FRONTENDS, servesFrontend, type FrontendName } from './suite.cfg.ts';
import {
  cpuWaitMs,
  sleep,
  startTarget,
  type Target,
  type TargetLogLine,
  type TargetSpec,
  type Unavailable,
} from './targets.ts';

/** The verdict of one case on one target. */
export type Verdict = 'pass' | 'fail' | 'skipped' | 'version-difference' | 'known-bug';

/** What the backend saw of one connection, for the report. */
export interface BackendRecord {
  name: string;
  acceptedAt: number;
  firstByteAt: number | null;
  size: number;
  closedAt: number | null;
  closedBy: 'fin' | 'rst' | null;
}

/** The counters of one read, trimmed to the fields the cases use. */
export interface StatsRecord {
  t: number;
  label: string;
  info: Record<string, string>;
  rows: Record<string, Record<string, string>>;
}

/** The result of one case on one target. */
export interface CaseResult {
  caseId: string;
  target: string;
  verdict: Verdict;
  reason?: string; //             why skipped, why version-difference, or what failed first
  startedAt: string; //           ISO time
  durationMs: number;
  checks: Check[];
  wire: WireEvent[]; //           clients and backend on the case clock
  backend: BackendRecord[];
  stats: StatsRecord[];
  targetLog: { t: number; line: string }[];
  notes: string[]; //             what the runner noticed around the case (a slow settle...), not judged
  reruns?: number; //             runs again after failed runs that stalled the runner or starved the target, both judgements of a known bug counted; absent when none
  /**
   * The transition ids the target's trace shows the case took (its connections' steps and its
   * listener's, from its start to the end of its settle), each once; absent when the target writes
   * no trace (haproxy, HOST:PORT), when the case did not run, or when the trace could not be read
   * (then `traceError` says why).
   */
  transitionsTaken?: string[];
  /**
   * Why the target's trace could not be read for the case; absent when it was read, or when the
   * target writes none. A result with it observed nothing: coverage counts nothing for it.
   */
  traceError?: string;
}

/** One target of the run, for the report. */
export interface TargetSummary {
  name: string;
  profile: Profile;
  description: string;
  unavailable: Unavailable | null;
}

/** The case list as the report shows it (everything but the run function). */
export interface CaseInfo {
  id: string;
  requirement: string;
  section?: string;
  transitions: string[]; //           taken under some profile (the union of the predictions')
  frontend: FrontendName;
  needs: string[];
  profileDifferences: ProfileDifference[];
  scenario: Scenario; //               what its clients do, as the model's events
  scenarios: Partial<Record<Profile, Scenario>>; // the events under a profile where they differ (CaseDefinition.scenarios)
  predictions: Prediction[]; //        what the model predicts under each profile that serves the case
  predictionError?: string; //         why a profile's prediction could not be made (a broken scenario)
}

/** Everything a run produced: the input of every report writer. */
export interface SuiteReport {
  tool: string;
  generatedAt: string;
  deadlineMs: number;
  durationMs: number;
  targets: TargetSummary[];
  cases: CaseInfo[];
  results: CaseResult[];
}

/** Options of runSuite(). */
export interface RunOptions {
  onProgress?: (line: string) => void; // one line per target start and per case result
  settleMs?: number; //                   how long the target may take to let go after a case (SETTLE_MS)
}

/** Counter fields kept in the report; show stat has about a hundred. */
const STAT_FIELDS = ['scur', 'smax', 'slim', 'stot', 'conn_tot', 'dcon', 'dses', 'ereq', 'status'];
const INFO_FIELDS = ['CurrConns', 'CumConns', 'MaxConn', 'Jobs', 'CurrSslConns', 'CumSslConns'];

/** How long the runner waits, after a case, for the target to hold nothing. */
export const SETTLE_MS = 2000;
/** How long runCase waits before it runs a case again without its known bug. */
const RERUN_PAUSE_MS = 2100;
/** A settle longer than this is noted in the result (not judged). */
const SLOW_SETTLE_MS = 250;
/**
 * A failed run during which the runner's event loop was late by more than this at once, or the
 * target waited for a CPU more than this in all, is run again: the longest lag a timing tolerates
 * (expect.ts MAX_CONNECT_LAG_MS, half of AT_ONCE_MS, the narrowest window a case judges a time
 * with).
 */
export const STALL_MS = MAX_CONNECT_LAG_MS;
/**
 * How many runs a case gets while its failed runs stall the runner or starve the target:
 * STALL_RUNS - 1 runs again at most, shared by the two judgements of a known bug.
 */
export const STALL_RUNS = 3;
/** The period of the runner's stall watch (StallWatch). */
const STALL_TICK_MS = 10;

/**
 * Runs <cases> against each target of <specs>, in order, one case at a time. Starts what each
 * target needs and stops it before the next. Resolves with the whole report; never rejects for a
 * case or target failure (they become verdicts).
 */
export async function runSuite(
  specs: readonly TargetSpec[],
  cases: readonly ConformanceCase[],
  options: RunOptions = {},
): Promise<SuiteReport> {
  const started = performance.now();
  const progress = options.onProgress ?? (() => {});
  const targets: TargetSummary[] = [];
  const results: CaseResult[] = [];
  for (const spec of specs) {
    const target = await startTarget(spec);
    targets.push({
      name: target.name,
      profile: target.profile,
      description: target.description,
      unavailable: target.unavailable,
    });
    if (target.unavailable) {
      progress(
        `target ${target.name}: ${target.unavailable.verdict.toUpperCase()}: ${target.unavailable.reason}`,
      );
    } else {
      progress(`target ${target.name}: ${target.description}`);
    }
    try {
      for (const c of cases) {
        const result = await runCase(target, c, options.settleMs);
        results.push(result);
        if (!target.unavailable) {
          const again = result.reruns ?? 0;
          progress(
            `  ${result.verdict.padEnd(18)} ${c.id} (${result.durationMs.toFixed(0)} ms${again > 0 ? `; ran again ${again} time(s), the runner stalled or the target was starved` : ''})`,
          );
        }
      }
    } finally {
      await target.stop();
    }
  }
  return {
    tool: 'embryonic conform',
    generatedAt: new Date().toISOString(),
    deadlineMs: DEADLINE_MS,
    durationMs: Math.round(performance.now() - started),
    targets,
    cases: cases.map(caseInfo),
    results,
  };
}

/**
 * Returns the report's view of <c>: everything but its run function, with the model's prediction
 * under each profile, and the transitions of those predictions (not the case's own `transitions`,
 * which a case built by spreading another may carry over from it). Pure.
 */
export function caseInfo(c: ConformanceCase): CaseInfo {
  const predictions: Prediction[] = [];
  let predictionError: string | undefined;
  for (const p of profilesOf(c)) {
    try {
      predictions.push(predictionOf(c, p));
    } catch (err) {
      predictionError ??= `${p}: ${(err as Error).message}`;
    }
  }
  return {
    id: c.id,
    requirement: c.requirement,
    ...(c.section ? { section: c.section } : {}),
    transitions: [...new Set(predictions.flatMap((p) => p.transitions))],
    frontend: c.frontend,
    needs: [...(c.needs ?? [])],
    profileDifferences: [...(c.profileDifferences ?? [])],
    scenario: c.scenario,
    scenarios: { ...(c.scenarios ?? {}) },
    predictions,
    ...(predictionError !== undefined ? { predictionError } : {}),
  };
}

/**
 * Runs case <c> on <target> and returns its result. Never throws: an exception or an overrun of
 * the case's budget is a failed check. Every client the case opened is destroyed, then the target
 * gets <settleMs> to hold nothing (the settle checks), before it returns.
 *
 * On HAProxy's own build, a case that names a known bug of the target's profile is judged against
 * the model with that bug first; if that fails, the case runs once more, judged against the model
 * without it: a build that has the fix (a later stable release with the backport) passes, with a
 * note saying so. If both fail, the first failure is the result. A failed run during which the
 * runner stalled or the target was starved runs again (runCaseSteadily). Each run again waits
 * <rerunPauseMs> first.
 */
export async function runCase(
  target: Target,
  c: ConformanceCase,
  settleMs = SETTLE_MS,
  rerunPauseMs = RERUN_PAUSE_MS,
): Promise<CaseResult> {
  // One budget of runs again after stalls and starvations for both judgements: STALL_RUNS - 1.
  const stallReruns = { left: STALL_RUNS - 1 };
  // The stall reruns of both judgements, on the result returned (each judgement's notes say its own).
  const withReruns = (r: CaseResult): CaseResult => {
    const reruns = STALL_RUNS - 1 - stallReruns.left;
    return reruns > 0 ? { ...r, reruns } : r;
  };
  const { result: first, judgedWithBug: bug } = await runCaseSteadily(
    target,
    c,
    settleMs,
    rerunPauseMs,
    true,
    stallReruns,
  );
  if (first.verdict !== 'fail' || bug === undefined) return withReruns(first);
  // Two idle seconds first: a rate period the first run began has ended (2.x's freq_ctr forgets it
  // after two), so the second run starts from the budget the first one had.
  await sleep(rerunPauseMs);
  const { result: again } = await runCaseSteadily(target, c, settleMs, rerunPauseMs, false, stallReruns);
  if (again.verdict === 'fail') return withReruns(first);
  return withReruns({
    ...again,
    notes: [
      ...again.notes,
      `judged first against the model with HAProxy's known bug ${bug}, which failed (${first.reason ?? 'no reason'}); judged again without it, this build does not show the bug: it may have the fix`,
    ],
  });
}

/**
 * How late the runner's event loop runs while a case runs: a timer ticks every STALL_TICK_MS from
 * the watch's start, and the longest gap between two ticks (the start and the stop count as
 * ticks) beyond that period is the stall. A stall right at the start is measured too, which
 * perf_hooks' monitorEventLoopDelay misses (its first sample has nothing to compare with).
 */
class StallWatch {
  private last = performance.now();
  private longest = 0;
  private readonly timer = setInterval(this.timerOnTick.bind(this), STALL_TICK_MS);

  private timerOnTick(): void {
    const now = performance.now();
    this.longest = Math.max(this.longest, now - this.last - STALL_TICK_MS);
    this.last = now;
  }

  /** Stops the watch and returns the longest stall it saw, in ms (0 or more). */
  stop(): number {
    clearInterval(this.timer);
    this.timerOnTick();
    return Math.max(0, this.longest);
  }
}

/**
 * How long the processes of a target waited for a CPU while a case ran: cpuWaitMs of each at the
 * watch's start and at its stop. A target with no process of the suite's (HOST:PORT) reads 0.
 */
class CpuWaitWatch {
  private readonly start: Map<number, number>;

  constructor(pids: readonly number[]) {
    this.start = new Map();
    for (const pid of pids) {
      const ms = cpuWaitMs(pid);
      if (ms !== null) this.start.set(pid, ms);
    }
  }

  /** Returns the longest wait of one process since the start, in ms (0 or more). */
  stop(): number {
    let longest = 0;
    for (const [pid, from] of this.start) {
      const now = cpuWaitMs(pid);
      if (now !== null) longest = Math.max(longest, now - from);
    }
    return longest;
  }
}

/** What kept time badly during one run of a case, in ms: the runner's loop, and the target. */
interface Starvation {
  runnerStalledMs: number; // the longest lag of the runner's event loop (StallWatch)
  targetWaitedMs: number; //  how long the target waited for a CPU in all (CpuWaitWatch)
}

/**
 * The note of a run during which the runner stalled or the target was starved beyond STALL_MS (the
 * figures rounded up: a note never shows one over STALL_MS as STALL_MS or less); null when neither.
 */
function starvationNote(s: Starvation): string | null {
  const parts = [
    ...(s.runnerStalledMs > STALL_MS
      ? [`the runner itself stalled for ${Math.ceil(s.runnerStalledMs)} ms`]
      : []),
    ...(s.targetWaitedMs > STALL_MS ? [`the target waited ${Math.ceil(s.targetWaitedMs)} ms for a CPU`] : []),
  ];
  return parts.length === 0 ? null : parts.join(', and ');
}

/**
 * runCaseOnce, run again while its runs fail and the runner's event loop stalled or the target
 * was starved during them (starvationNote), as long as <reruns>.left (which it counts down, shared
 * by runCase's two judgements) allows, each time after <rerunPauseMs> (RERUN_PAUSE_MS: a rate
 * period the failed run began has ended). Returns the last run, its notes preceded by one per
 * earlier run.
 */
async function runCaseSteadily(
  target: Target,
  c: ConformanceCase,
  settleMs: number,
  rerunPauseMs: number,
  withBug: boolean,
  reruns: { left: number },
): Promise<{ result: CaseResult; judgedWithBug?: string }> {
  const earlier: string[] = [];
  for (let n = 1; ; n++) {
    const { starvation, ...run } = await runCaseOnce(target, c, settleMs, withBug);
    const starved = starvationNote(starvation);
    if (starved !== null) run.result.notes.push(`${starved} during the case`);
    if (run.result.verdict !== 'fail' || starved === null || reruns.left === 0) {
      run.result.notes.unshift(...earlier);
      return run;
    }
    reruns.left--;
    earlier.push(
      `run ${n} failed (${run.result.reason ?? 'no reason'}) while ${starved} (more than ${STALL_MS} ms): timings taken so are no evidence, so the case ran again`,
    );
    await sleep(rerunPauseMs);
  }
}

/**
 * runCase's one run: with <withBug>, the case's known bug for the target's profile applies. Returns
 * the result, the mutant of the known bug it was judged against (none when the case ended before it
 * was judged, or named no bug for the target), and how late the runner's event loop was at worst
 * and how long the target waited for a CPU while the case ran (both 0 when the case did not run).
 */
async function runCaseOnce(
  target: Target,
  c: ConformanceCase,
  settleMs: number,
  withBug: boolean,
): Promise<{ result: CaseResult; judgedWithBug?: string; starvation: Starvation }> {
  const startedAt = new Date().toISOString();
  const result = (verdict: Verdict, reason: string): { result: CaseResult; starvation: Starvation } => ({
    starvation: { runnerStalledMs: 0, targetWaitedMs: 0 },
    result: {
      caseId: c.id,
      target: target.name,
      verdict,
      reason,
      startedAt,
      durationMs: 0,
      checks: [],
      wire: [],
      backend: [],
      stats: [],
      targetLog: [],
      notes: [],
    },
  });
  const difference = c.profileDifferences?.find((d) => d.profile === target.profile);
  if (target.unavailable) return result(target.unavailable.verdict, target.unavailable.reason);
  if (!servesFrontend(target.profile, c.frontend)) {
    return difference
      ? result(
          'version-difference',
          `not run: no target of profile ${target.profile} serves ${c.frontend}. ${difference.reason}`,
        )
      : result(
          'fail',
          `no target of profile ${target.profile} serves ${c.frontend}, and the case gives no reason for that profile`,
        );
  }
  if (c.needs?.includes('stats') && target.statsPaths.length === 0) {
    return result('skipped', 'a counter case: it needs the stats socket (--stats unix:PATH)');
  }
  if (c.needs?.includes('log') && !target.logSince) {
    return result(
      'skipped',
      "a log case: what it claims is the target's log, which the suite does not capture here (--log FILE)",
    );
  }
  const bug =
    withBug && target.haproxy ? c.knownBugs?.find((b) => b.profiles.includes(target.profile)) : undefined;
  let predicted: Prediction;
  let baseline: Prediction;
  try {
    predicted = predictionOf(c, target.profile, bug);
    baseline = predictionOf(c, baselineProfileOf(c));
  } catch (err) {
    return result('fail', `the case's scenario is not a run of the machines: ${(err as Error).message}`);
  }
  const backend = target.backend!;
  // Before the case's clock (its WireLog) and its stall watch start.
  c.prepare?.();
  const traceMark = markTraces(target.tracePaths);
  // A followed log file is read when asked: read what came before the case now, so that no line of
  // the previous case is read, and stamped, during this one.
  target.logSince?.(performance.now());
  const log = new WireLog();
  backend.attach(log);
  const clients: WireClient[] = [];
  let opened = 0;
  const checks: Check[] = [];
  const stats: StatsRecord[] = [];
  const notes: string[] = [];
  const ctx: CaseContext = {
    target: {
      name: target.name,
      profile: target.profile,
      host: target.layout.host,
      ports: target.layout.ports,
      hasStats: target.statsPaths.length > 0,
    },
    log,
    backend,
    async connect(fe, from) {
      const client = await WireClient.open(
        log,
        `client#${++opened}`,
        target.layout.host,
        target.layout.ports[fe],
        2000,
        from,
      );
      clients.push(client);
      return client;
    },
    sleep,
    sleepUntil: (t) => sleep(Math.max(0, t - log.now())),
    async stats(label) {
      if (target.statsPaths.length === 0) throw new Error('this target has no stats socket');
      const snap = await readMergedStats(target.statsPaths, label, () => log.now());
      stats.push(trimStats(snap));
      return snap;
    },
    check: (check) => void checks.push(check),
    predicted,
  };
  const budget = c.budgetMs ?? 4000;
  let timer: NodeJS.Timeout | undefined;
  const stall = new StallWatch();
  const cpuWait = new CpuWaitWatch(target.pids);
  try {
    await Promise.race([
      c.run(ctx),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the case ran longer than its budget of ${budget} ms`)),
          budget,
        );
      }),
    ]);
  } catch (err) {
    checks.push({
      what: 'the case runs to its end',
      expected: 'no error',
      actual: (err as Error).message,
      ok: false,
    });
  } finally {
    clearTimeout(timer);
  }
  const starvation: Starvation = { runnerStalledMs: stall.stop(), targetWaitedMs: cpuWait.stop() };
  const durationMs = log.now();
  checks.push(
    closesCheck(
      predicted,
      clients.map((client) => client.closedBy?.kind ?? null),
    ),
  );
  for (const client of clients) client.destroy();
  const settled = await settle(target, settleMs);
  if (settled.waitedMs > SLOW_SETTLE_MS) {
    notes.push(`the target took ${Math.round(settled.waitedMs)} ms to settle after the case`);
  }
  if (target.logSince) {
    checks.push(
      await expectKillsLogged(target.logSince, predicted.log, predicted.logFrom, c.frontend, log.origin),
    );
  } else if (predicted.kills > 0) {
    notes.push(
      `the target's log is not captured (--log FILE): the ${predicted.kills} kill(s) the model predicts (${describeLog(predicted)}) are not judged`,
    );
  }
  let taken: TransitionsTaken | Error | null = null;
  if (target.tracePaths.length > 0) {
    try {
      taken = readTraceSince(target.tracePaths, traceMark);
    } catch (err) {
      taken = err as Error;
    }
    if (!(taken instanceof Error) && taken.earlierSteps > 0) {
      notes.push(
        `${taken.earlierSteps} step(s) of ${taken.earlierConnections} connection(s) accepted before the case (a previous case's leftovers) are in its stretch of trace and are not counted as taken by it`,
      );
    }
    checks.push(takesPredictedCheck(predicted.transitions, taken));
  }
  const ok = checks.length > 0 && checks.every((k) => k.ok);
  const firstFailure = checks.find((k) => !k.ok);
  const held = settled.checks.find((k) => !k.ok);
  checks.push(...settled.checks);
  let verdict: Verdict = ok && !held ? 'pass' : 'fail';
  let reason: string | undefined;
  if (held) {
    reason = describeFailure(held);
  } else if (!ok) {
    reason = firstFailure ? describeFailure(firstFailure) : 'the case made no check';
    if (bug) reason += ` (judged against the model with HAProxy's known bug ${bug.mutant})`;
  } else if (
    bug &&
    observablyDiffer(predicted, predictionOf(c, target.profile), { log: target.logSince !== null })
  ) {
    const mutant = mutantById(bug.mutant);
    verdict = 'known-bug';
    reason = `HAProxy's known bug ${mutant.id} (${mutant.commit ?? 'no commit'}): ${mutant.title}. The model with that defect predicts what the target does: ${describePrediction(predicted)}; without it, ${describePrediction(predictionOf(c, target.profile))}.`;
  } else {
    if (bug)
      notes.push(
        `the known bug ${bug.mutant} shows only in the log, which is not captured on this target: not judged`,
      );
    if (observablyDiffer(predicted, baseline, { log: target.logSince !== null })) {
      verdict = 'version-difference';
      reason = versionDifferenceReason(predicted, baseline, difference);
    } else if (observablyDiffer(predicted, baseline)) {
      notes.push(
        `profile ${target.profile} differs from ${baseline.profile} only in the log, which is not captured on this target: not judged (${versionDifferenceReason(predicted, baseline, difference)})`,
      );
    }
  }
  const judged: CaseResult = {
    caseId: c.id,
    target: target.name,
    verdict,
    ...(reason ? { reason } : {}),
    startedAt,
    durationMs,
    checks,
    wire: log.events,
    backend: backend.connections().map((b) => ({
      name: b.name,
      acceptedAt: b.acceptedAt,
      firstByteAt: b.firstByteAt,
      size: b.byteCount,
      closedAt: b.closedAt,
      closedBy: b.closedBy,
    })),
    stats,
    targetLog: (target.logSince?.(log.origin) ?? []).map((l) => ({
      t: Math.round((l.at - log.origin) * 10) / 10,
      line: l.line,
    })),
    notes,
    ...(taken !== null && !(taken instanceof Error) ? { transitionsTaken: taken.transitions } : {}),
    ...(taken instanceof Error ? { traceError: taken.message } : {}),
  };
  return bug ? { result: judged, judgedWithBug: bug.mutant, starvation } : { result: judged, starvation };
}

/**
 * Returns the reason of a version-difference: what the model predicts for the target's profile
 * (<predicted>) against the baseline's (dev12's, or the first profile serving the case: baselineProfileOf), then the case's reason for that profile (<difference>;
 * cases.test.ts requires one wherever the predictions differ). Pure.
 */
export function versionDifferenceReason(
  predicted: Prediction,
  baseline: Prediction,
  difference: ProfileDifference | undefined,
): string {
  const more = [
    describeCounterDifference(predicted, baseline),
    describeDeadlineDifference(predicted, baseline),
  ]
    .filter((d) => d !== '')
    .map((d) => `; and that it ${d}`)
    .join('');
  return `profile ${predicted.profile}: the model predicts that the target ${describePrediction(predicted)}, where ${baseline.profile} ${describePrediction(baseline)}${more}. ${difference?.reason ?? 'The case gives no reason.'}`;
}

/** Returns the reason a failed check gives: what, expected, actual. Pure. */
function describeFailure(k: Check): string {
  return `${k.what}: expected ${k.expected}, got ${k.actual}`;
}

/** How long the kills' log lines may take to come out of the target's stderr after the case settled. */
const LOG_WAIT_MS = 500;
/**
 * How long the runner waits for kill lines it expects none of. Both proxies write a kill's line
 * before they close its connection, and the runner reads the log only once the target has let go
 * of every connection: a line that should not be there is in the pipe already.
 */
const NO_KILL_WAIT_MS = 100;

/**
 * The code of each connection error message HAProxy logs for a kill (ERR_CODES): NONE's "Success"
 * too, which 2.9 logs for a PROXY v2 header it refuses without an error code.
 */
const CODE_OF_MESSAGE = new Map((Object.keys(ERR_CODES) as ErrCode[]).map((c) => [errCodeMessage(c), c]));

/**
 * Returns the code of a kill line's message: one of ERR_CODES' messages, or SSL_HANDSHAKE with
 * OpenSSL's reason appended, as 2.8 and later log it ("SSL handshake failure (error:…)", 4adb4b990);
 * null for any other message. Pure.
 */
function codeOfMessage(text: string): ErrCode | null {
  const code = CODE_OF_MESSAGE.get(text);
  if (code !== undefined) return code;
  return text.startsWith(`${errCodeMessage('SSL_HANDSHAKE')} (`) && text.endsWith(')')
    ? 'SSL_HANDSHAKE'
    : null;
}

/** One kill line of a target's log, as killLineOf reads it. */
export interface KillLine {
  address: string; //     the session's source address, without its port
  frontend: string;
  code: ErrCode | null; // null: a message that is not one of ERR_CODES'
  text: string; //        the message
}

/**
 * Returns the kill line <line> is, or null for any other line. A kill line has the shape both
 * proxies write for an embryonic kill: "<address>:<port> [<date>] <frontend>/<bind>: <message>"
 * (impl/log.ts formatEmbryonicKill; HAProxy's kill_mini_session, and 2.6's default error log
 * format); a session's tcplog line has "<frontend> <backend>/<server>" there instead. The address
 * is IPv4 or IPv6 text followed by ":<port>", or a word without a port (2.6 writes "unknown" when
 * the session has no source address). Pure.
 */
export function killLineOf(line: string): KillLine | null {
  const m = /^(\S+?)(?::\d+)? \[[^\]]+\] ([^\s/]+)\/\S+: (.+)$/.exec(line);
  if (m === null) return null;
  return { address: m[1]!, frontend: m[2]!, code: codeOfMessage(m[3]!), text: m[3]! };
}

/**
 * Returns the check "the target logs the kills the model predicts": the kill lines (killLineOf) of
 * the target's log (<logSince>) since performance.now() <origin> must be exactly one per code of
 * <expected>, in any order, each from frontend <frontend> and naming the address <from> gives for
 * it (the client's own, CLIENT_ADDRESS, or the source its PROXY header gave, one of
 * HEADER_SOURCES): no fewer, no more, none with another message, address or frontend. Waits up
 * to LOG_WAIT_MS while fewer are there, since the log reaches the suite through a pipe; with none
 * expected, NO_KILL_WAIT_MS.
 */
export async function expectKillsLogged(
  logSince: (at: number) => TargetLogLine[],
  codes: readonly ErrCode[],
  from: readonly ('client' | 'header')[],
  frontend: FrontendName,
  origin: number,
): Promise<Check> {
  const fromHeader = " naming the header's source";
  const expected = codes.map((c, i) => `${c}${from[i] === 'header' ? fromHeader : ''}`);
  const kills = (): { key: string; line: string }[] =>
    logSince(origin).flatMap((l) => {
      const k = killLineOf(l.line);
      if (k === null) return [];
      const named =
        k.address === CLIENT_ADDRESS
          ? ''
          : Object.values<string>(HEADER_SOURCES).includes(k.address)
            ? fromHeader
            : ` naming ${k.address}`;
      const key = `${k.frontend === frontend ? '' : `${k.frontend}: `}${k.code ?? `"${k.text}"`}${named}`;
      return [{ key, line: l.line }];
    });
  if (expected.length === 0) await sleep(NO_KILL_WAIT_MS);
  const until = performance.now() + LOG_WAIT_MS;
  let seen = kills();
  while (seen.length < expected.length && performance.now() < until) {
    await sleep(20);
    seen = kills();
  }
  const sorted = (keys: readonly string[]): string => [...keys].sort().join(',');
  const describe = (keys: readonly string[]): string =>
    keys.length === 0 ? 'no kill line' : `${keys.length} kill line(s): ${tally(keys)}`;
  const others = logSince(origin).length - seen.length;
  return {
    what: 'the target logs the kills the model predicts',
    expected:
      expected.length === 0
        ? `no kill line from ${frontend}`
        : `${describe(expected)} from ${frontend} (${[...new Set(codes)].map((c) => `"${errCodeMessage(c)}"`).join(', ')})`,
    actual:
      seen.length === 0
        ? `no kill line${others > 0 ? ` (${others} other log line(s))` : ''}`
        : `${describe(seen.map((k) => k.key))}; the first: ${seen[0]!.line}`,
    ok: sorted(seen.map((k) => k.key)) === sorted(expected),
  };
}

/** What settle() saw of a target at its last look. */
export interface HeldState {
  backendOpen: number; //        the suite backend's connections still open
  hasStats: boolean; //          the target has a stats socket: its frontends' scur are judged too
  busyFrontends: string[]; //    'fe_pp (scur 1)' for each suite frontend whose scur is not 0
  statsError: string | null; //  why the stats sockets could not be read at the last look; null: they were
}

/**
 * Returns the check "the target holds nothing once the case is over" for what settle() saw last
 * (<state>) after waiting up to <settleMs>: ok iff no backend connection is open and, when the target
 * has a stats socket, it answered and every suite frontend had scur 0. Pure.
 */
export function holdsNothingCheck(state: HeldState, settleMs: number): Check {
  const problems: string[] = [];
  if (state.backendOpen > 0) problems.push(`${state.backendOpen} backend connection(s) still open`);
  if (state.hasStats && state.statsError !== null) problems.push(`no counters: ${state.statsError}`);
  if (state.hasStats && state.busyFrontends.length > 0) {
    problems.push(`scur > 0 on ${state.busyFrontends.join(', ')}`);
  }
  return {
    what: 'the target holds nothing once the case is over',
    expected: `${state.hasStats ? 'no backend connection and scur 0 on every frontend' : 'no backend connection'} within ${settleMs} ms`,
    actual: problems.length > 0 ? problems.join('; ') : 'nothing held',
    ok: problems.length === 0,
  };
}

/** What one stats socket of the bundled proxy answered to show violations, show pool and show fd. */
export interface ProxyLedgers {
  socket: string; //           the stats socket's file name
  hostViolations: string[]; // `show violations`
  poolViolations: string[]; // `show pool` violations
  fdViolations: string[]; //   `show fd` violations
  livePool: string[]; //       'session: live 1, allocs 3, frees 2' for each pool site still holding an item
  liveFds: number; //          `show fd` live: the client fds the process still holds
}

/** The three ledger commands, asked on one connection (the stats socket takes ';'-separated commands). */
const LEDGER_COMMANDS = 'show violations;show pool;show fd';

/**
 * Parses the answer of the bundled proxy's stats socket <socket> to LEDGER_COMMANDS: three JSON
 * objects, one a line ({"violations": [...]}, the pool ledger, the fd report). Returns what the
 * settle check judges. Throws an Error saying what is missing when the answer has not that shape.
 * Pure.
 */
export function parseLedgers(socket: string, answer: string): ProxyLedgers {
  const lines = answer.split('\n').filter((l) => l.trim().length > 0);
  if (lines.length !== 3) {
    throw new Error(
      `${socket}: expected 3 JSON answers to "${LEDGER_COMMANDS}", got: ${answer.slice(0, 200)}`,
    );
  }
  const [host, pool, fd] = lines.map((l) => JSON.parse(l) as unknown) as [unknown, unknown, unknown];
  const strings = (v: unknown, what: string): string[] => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new Error(`${socket}: ${what} is not a list of strings`);
    return v;
  };
  const field = (o: unknown, k: string): unknown =>
    typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined;
  const sites = field(pool, 'sites');
  if (typeof sites !== 'object' || sites === null) throw new Error(`${socket}: show pool has no sites`);
  const livePool: string[] = [];
  for (const [site, l] of Object.entries(sites)) {
    const [live, allocs, frees] = ['live', 'allocs', 'frees'].map((k) => field(l, k));
    if (typeof live !== 'number' || typeof allocs !== 'number' || typeof frees !== 'number') {
      throw new Error(`${socket}: show pool site ${site} lacks live, allocs or frees`);
    }
    if (live !== 0 || allocs !== frees)
      livePool.push(`${site}: live ${live}, allocs ${allocs}, frees ${frees}`);
  }
  const liveFds = field(fd, 'live');
  if (!Array.isArray(liveFds)) throw new Error(`${socket}: show fd has no live list`);
  return {
    socket,
    hostViolations: strings(field(host, 'violations'), 'show violations'),
    poolViolations: strings(field(pool, 'violations'), 'show pool violations'),
    fdViolations: strings(field(fd, 'violations'), 'show fd violations'),
    livePool,
    liveFds: liveFds.length,
  };
}

/**
 * Returns the check "the bundled proxy's ledgers are clean once nothing is connected" for the
 * ledgers of each of its stats sockets read at settle()'s last look (<ledgers>), or <error> when one
 * could not be read: ok iff every socket answered, no violation list has an entry, no pool site
 * holds an item and no client fd is live. Pure.
 */
export function ledgersCheck(ledgers: readonly ProxyLedgers[], error: string | null): Check {
  const problems: string[] = error === null ? [] : [error];
  for (const l of ledgers) {
    for (const [what, list] of [
      ['show violations', l.hostViolations],
      ['show pool violations', l.poolViolations],
      ['show fd violations', l.fdViolations],
    ] as const) {
      if (list.length > 0) problems.push(`${l.socket}: ${what}: ${list.join(' | ')}`);
    }
    if (l.livePool.length > 0) problems.push(`${l.socket}: pool items live: ${l.livePool.join(', ')}`);
    if (l.liveFds > 0) problems.push(`${l.socket}: ${l.liveFds} fd(s) live`);
  }
  return {
    what: "the bundled proxy's ledgers are clean once nothing is connected",
    expected: 'no violation in show violations, show pool or show fd; no live pool item; no live fd',
    actual: problems.length > 0 ? problems.join('; ') : `clean on ${ledgers.length} stats socket(s)`,
    ok: problems.length === 0,
  };
}

/** What settle() found: its checks, and how long the target took to hold nothing. */
interface Settled {
  checks: Check[];
  waitedMs: number;
}

/**
 * Waits (bounded by <settleMs> in all, each look made at least once) until <target> holds
 * nothing: the backend has no connection open, with a stats socket every suite frontend has scur 0,
 * and for the bundled proxy (target.ledgers) no pool item and no fd is live on any of its stats
 * sockets. Resolves with the settle checks (holdsNothingCheck, and ledgersCheck for the bundled
 * proxy) of the last look; never rejects.
 */
async function settle(target: Target, settleMs: number): Promise<Settled> {
  const started = performance.now();
  const remaining = (): number => Math.max(0, started + settleMs - performance.now());
  const backend = target.backend!;
  await backend.waitIdle(settleMs);
  const statsPaths = target.statsPaths;
  const state: HeldState = {
    backendOpen: 0,
    hasStats: statsPaths.length > 0,
    busyFrontends: [],
    statsError: null,
  };
  if (state.hasStats) {
    await pollUntilAsync(async () => {
      try {
        const snap = await readMergedStats(statsPaths, 'settle', () => 0);
        state.statsError = null;
        state.busyFrontends = Object.keys(FRONTENDS).flatMap((fe) => {
          const scur = Number(snap.rows[`${fe}/FRONTEND`]?.scur ?? 0);
          return scur === 0 ? [] : [`${fe} (scur ${scur})`];
        });
        return state.busyFrontends.length === 0;
      } catch (err) {
        state.statsError = (err as Error).message;
        return false;
      }
    }, remaining());
  }
  state.backendOpen = backend.openCount();
  const checks = [holdsNothingCheck(state, settleMs)];
  if (target.ledgers) {
    let ledgers: ProxyLedgers[] = [];
    let error: string | null = null;
    await pollUntilAsync(async () => {
      try {
        ledgers = await Promise.all(
          statsPaths.map(async (p) => parseLedgers(basename(p), await statsQuery(p, LEDGER_COMMANDS))),
        );
        error = null;
        return ledgers.every((l) => l.livePool.length === 0 && l.liveFds === 0);
      } catch (err) {
        ledgers = [];
        error = (err as Error).message;
        return false;
      }
    }, remaining());
    checks.push(ledgersCheck(ledgers, error));
  }
  return { checks, waitedMs: performance.now() - started };
}

async function pollUntilAsync(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (performance.now() >= until) return false;
    await sleep(20);
  }
}

function trimStats(snap: StatsSnapshot): StatsRecord {
  const rows: Record<string, Record<string, string>> = {};
  for (const [key, row] of Object.entries(snap.rows)) {
    if (!row.pxname?.startsWith('fe_') && !row.pxname?.startsWith('be_')) continue;
    rows[key] = Object.fromEntries(STAT_FIELDS.filter((f) => f in row).map((f) => [f, row[f]!]));
  }
  const info = Object.fromEntries(INFO_FIELDS.filter((f) => f in snap.info).map((f) => [f, snap.info[f]!]));
  return { t: snap.t, label: snap.label, info, rows };
}
