/**
 * Runs the conformance cases against one or more targets, one case at a time, and collects one
 * result per case and target: the verdict, every check, the byte-level wire log, what the backend
 * saw, the counters read, and the target's log lines.
 *
 * Verdicts:
 *   pass                every check of the case holds
 *   fail                a check does not hold, the case overran its budget, or the target is broken
 *   skipped             the target is absent, or the case needs a stats socket it lacks
 *   version-difference  the case documents that the target's profile departs from the default
 *                       model, and the run departed (or the case cannot run on the suite's config)
 *
 * Between cases the runner waits (bounded) until the backend has no connection left and, with a
 * stats socket, until every frontend's scur is 0, so that no case sees another's connections.
 */
import type { Profile } from '../machines/config.ts';
import { errCodeMessage, type ErrCode } from '../machines/errCodes.ts';
import { WireClient, WireLog, type WireEvent } from './client.ts';
import type { ConformanceCase, ProfileDifference } from './cases.ts';
import type { CaseContext, Check } from './expect.ts';
import { readMergedStats, type StatsSnapshot } from './stats.ts';
import { DEADLINE_MS, FRONTENDS, type FrontendName } from './suite.cfg.ts';
import {
  sleep,
  startTarget,
  type Target,
  type TargetLogLine,
  type TargetSpec,
  type Unavailable,
} from './targets.ts';

/** The verdict of one case on one target. */
export type Verdict = 'pass' | 'fail' | 'skipped' | 'version-difference';

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
  notes: string[]; //             what the runner noticed around the case (a slow settle...)
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
  transitions: string[];
  frontend: FrontendName | null;
  needs: string[];
  log?: string;
  notRunnable?: string;
  profileDifferences: ProfileDifference[];
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
}

/** Counter fields kept in the report; show stat has about a hundred. */
const STAT_FIELDS = ['scur', 'smax', 'slim', 'stot', 'conn_tot', 'dcon', 'dses', 'ereq', 'status'];
const INFO_FIELDS = ['CurrConns', 'CumConns', 'MaxConn', 'Jobs', 'CurrSslConns', 'CumSslConns'];

/** How long the runner waits, after a case, for the target to have no connection left. */
const SETTLE_MS = 2000;

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
        const result = await runCase(target, c);
        results.push(result);
        if (!target.unavailable) {
          progress(`  ${result.verdict.padEnd(18)} ${c.id} (${result.durationMs.toFixed(0)} ms)`);
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

/** Returns the report's view of <c>: everything but its run function. Pure. */
export function caseInfo(c: ConformanceCase): CaseInfo {
  return {
    id: c.id,
    requirement: c.requirement,
    ...(c.section ? { section: c.section } : {}),
    transitions: [...c.transitions],
    frontend: c.frontend,
    needs: [...(c.needs ?? [])],
    ...(c.log ? { log: c.log } : {}),
    ...(c.notRunnable ? { notRunnable: c.notRunnable } : {}),
    profileDifferences: [...(c.profileDifferences ?? [])],
  };
}

/**
 * Runs case <c> on <target> and returns its result. Never throws: an exception or an overrun of
 * the case's budget is a failed check. Every client the case opened is destroyed before it returns.
 */
export async function runCase(target: Target, c: ConformanceCase): Promise<CaseResult> {
  const startedAt = new Date().toISOString();
  const result = (verdict: Verdict, reason: string): CaseResult => ({
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
  });
  const difference = c.profileDifferences?.find((d) => d.profile === target.profile);
  if (target.unavailable) return result(target.unavailable.verdict, target.unavailable.reason);
  if (c.notRunnable) {
    return result(
      'version-difference',
      difference ? `profile ${target.profile}: ${difference.reason}` : `not run: ${c.notRunnable}`,
    );
  }
  if (c.needs?.includes('stats') && target.statsPaths.length === 0) {
    return result('skipped', 'a counter case: it needs the stats socket (--stats unix:PATH)');
  }
  const backend = target.backend!;
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
    async connect(fe) {
      const client = await WireClient.open(
        log,
        `client#${++opened}`,
        target.layout.host,
        target.layout.ports[fe],
        2000,
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
  };
  const budget = c.budgetMs ?? 4000;
  let timer: NodeJS.Timeout | undefined;
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
  const durationMs = log.now();
  for (const client of clients) client.destroy();
  notes.push(...(await settle(target)));
  if (c.log && target.logSince) checks.push(await expectKillLogged(target.logSince, c.log, log.origin));
  const ok = checks.length > 0 && checks.every((k) => k.ok);
  const firstFailure = checks.find((k) => !k.ok);
  let verdict: Verdict = ok ? 'pass' : 'fail';
  let reason: string | undefined;
  if (!ok && difference) {
    verdict = 'version-difference';
    reason = `profile ${target.profile}: ${difference.reason}`;
  } else if (!ok) {
    reason = firstFailure
      ? `${firstFailure.what}: expected ${firstFailure.expected}, got ${firstFailure.actual}`
      : 'the case made no check';
  }
  return {
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
      size: b.bytes.length,
      closedAt: b.closedAt,
      closedBy: b.closedBy,
    })),
    stats,
    targetLog: (target.logSince?.(log.origin) ?? []).map((l) => ({
      t: Math.round((l.at - log.origin) * 10) / 10,
      line: l.line,
    })),
    notes,
  };
}

/** How long the kill's log line may take to come out of the target's stderr after the case settled. */
const LOG_WAIT_MS = 500;

/**
 * Returns the check that the target whose log <logSince> reads logged the embryonic kill <code>
 * since performance.now() <origin>: a line with the message HAProxy prints for it (machines/errCodes.ts). Waits up to
 * LOG_WAIT_MS for the line, since the log reaches the suite through a pipe.
 */
async function expectKillLogged(
  logSince: (at: number) => TargetLogLine[],
  code: ErrCode,
  origin: number,
): Promise<Check> {
  const message = errCodeMessage(code);
  const until = performance.now() + LOG_WAIT_MS;
  let lines = logSince(origin);
  while (!lines.some((l) => l.line.includes(message)) && performance.now() < until) {
    await sleep(20);
    lines = logSince(origin);
  }
  const found = lines.find((l) => l.line.includes(message));
  return {
    what: `the target logs the kill ${code}`,
    expected: `a log line with "${message}"`,
    actual: found
      ? found.line
      : lines.length === 0
        ? 'no log line'
        : `${lines.length} log line(s), none with it; the last: ${lines[lines.length - 1]!.line}`,
    ok: found !== undefined,
  };
}

/**
 * Waits until <target> holds no connection: the backend has none open and, with a stats socket,
 * every suite frontend has scur 0. Bounded by SETTLE_MS. Returns a note per condition that did not
 * come true in time.
 */
async function settle(target: Target): Promise<string[]> {
  const notes: string[] = [];
  const until = performance.now() + SETTLE_MS;
  if (!(await target.backend!.waitIdle(SETTLE_MS))) {
    notes.push(
      `the target still held ${target.backend!.openCount()} backend connection(s) ${SETTLE_MS} ms after the case`,
    );
  }
  if (target.statsPaths.length === 0) return notes;
  const statsPaths = target.statsPaths;
  let busy: string[] = [];
  const idle = await pollUntilAsync(
    async () => {
      const snap = await readMergedStats(statsPaths, 'settle', () => 0).catch(() => null);
      if (!snap) return false;
      busy = Object.keys(FRONTENDS).filter((fe) => Number(snap.rows[`${fe}/FRONTEND`]?.scur ?? 0) !== 0);
      return busy.length === 0;
    },
    Math.max(0, until - performance.now()),
  );
  if (!idle) notes.push(`frontends still had scur > 0 after the case: ${busy.join(', ')}`);
  return notes;
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
