/**
 * Transition coverage on the real proxy (`embryonic cover`): every machine path translated into a
 * script (paths.ts) and run on a proxy started with `--trace`, each run checked like a random run;
 * the transitions executed are read from the proxy's trace (the transition ids of its step lines),
 * never from the model. With `matrix`, the fault-injection matrix runs too and counts as well. The
 * transitions that need the data phase's real-time deadlines are run by the scenarios of
 * realTime.ts, each on a proxy of its own, and read from its trace the same way.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTraceLine } from '../../../machines/traceFormat.ts';
import { CONFIGS, type ConfigName } from './configs.ts';
import { MATRIX, type MatrixCell } from './matrix.ts';
import {
  allTransitions,
  IMPOSSIBLE_ON_NODE,
  machinePaths,
  realizes,
  translate,
  type MachinePath,
} from './paths.ts';
import { REAL_TIME_SCENARIOS } from './realTime.ts';
import { ProxyUnderTest } from './RealSide.ts';
import { describeAction, runScript, spendFaults, type Action } from './script.ts';

/** What became of one path. */
export interface PathRun {
  path: MachinePath;
  config: ConfigName | null;
  actions: Action[];
  outcome: 'realized' | 'not realized' | 'failed' | 'impossible' | 'real time' | 'untranslated';
  detail: string; //  the script as text, the failure, or the reason
}

/** The coverage of one transition by the real runs. */
export interface TransitionCoverage {
  id: string;
  runs: number; //          times the proxy's machines took it, over every run
  impossible: string | null; // why it cannot happen on Node, if it cannot
}

/** One matrix cell's result. */
export interface CellRun {
  cell: MatrixCell;
  verdict: 'pass' | 'FAIL';
  detail: string;
}

/** One run of a real-time scenario (realTime.ts) under one profile. */
export interface ScenarioRun {
  name: string;
  profile: 'dev12' | '2.6';
  ok: boolean;
  detail: string; // its failure, if it failed
}

/** Everything `embryonic cover` measured. */
export interface CoverageReport {
  generated: number; //   xstate/graph paths over every machine and exploration configuration
  paths: PathRun[]; //    one per distinct path
  scripts: number; //     distinct scripts run for them
  transitions: TransitionCoverage[];
  matrix: CellRun[] | null;
  scenarios: ScenarioRun[]; // the real-time scenarios' runs
  configs: ConfigName[];
  seconds: number;
}

/** The trace lines written since `offset` in `path`, and the new end offset. */
function readTraceSince(path: string, offset: number): { lines: string[]; end: number } {
  const end = statSync(path).size;
  const buf = Buffer.alloc(end - offset);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  return { lines: buf.toString('utf8').split('\n').filter(Boolean), end };
}

/** The transitions of each machine instance in `lines`, and the count of each transition. */
function livesOf(lines: string[]): {
  listener: string[];
  conns: Map<number, { connection: string[]; session: string[] }>;
  counts: Map<string, number>;
} {
  const listener: string[] = [];
  const conns = new Map<number, { connection: string[]; session: string[] }>();
  const counts = new Map<string, number>();
  for (const text of lines) {
    const parsed = parseTraceLine(text);
    if (parsed.error !== undefined || parsed.line.kind !== 'step') continue;
    const step = parsed.line;
    const ids = step.transitions ?? [];
    for (const t of ids) counts.set(t, (counts.get(t) ?? 0) + 1);
    if (step.machine === 'listener') listener.push(...ids);
    else {
      const life = conns.get(step.conn!) ?? { connection: [], session: [] };
      life[step.machine as 'connection' | 'session'].push(...ids);
      conns.set(step.conn!, life);
    }
  }
  return { listener, conns, counts };
}

/**
 * Runs every path's script (and, with `matrix`, every matrix cell) on real proxies and returns
 * what they covered. Starts and stops its proxies; `progress` gets one line per configuration.
 * Never rejects for a failing script: the failure is in the report.
 */
export async function runCoverage(
  opts: { matrix?: boolean; progress?: (line: string) => void } = {},
): Promise<CoverageReport> {
  const started = performance.now();
  const paths = machinePaths();
  const runs: PathRun[] = paths.map((path) => {
    const t = translate(path);
    if ('script' in t)
      return {
        path,
        config: t.script.config,
        actions: t.script.actions,
        outcome: 'failed',
        detail: t.script.actions.map(describeAction).join('; '),
      };
    if ('impossible' in t)
      return { path, config: null, actions: [], outcome: 'impossible', detail: t.impossible };
    if ('realTime' in t) return { path, config: null, actions: [], outcome: 'real time', detail: t.realTime };
    return { path, config: null, actions: [], outcome: 'untranslated', detail: t.untranslated };
  });
  const cells = opts.matrix ? MATRIX.filter((c) => c.script !== null) : [];
  const names = [
    ...new Set([...runs.flatMap((r) => (r.config ? [r.config] : [])), ...cells.map((c) => c.script!.config)]),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'embryonic-cover-'));
  const counts = new Map<string, number>();
  const matrix: CellRun[] = [];
  const scenarios: ScenarioRun[] = [];
  const puts: ProxyUnderTest[] = [];
  let scripts = 0;
  try {
    puts.push(
      ...(await Promise.all(
        names.map((n) => ProxyUnderTest.start(CONFIGS[n], ['--trace', join(dir, `${n}.ndjson`)])),
      )),
    );
    for (const put of puts) {
      const name = put.config.name as ConfigName;
      const trace = join(dir, `${name}.ndjson`);
      const byScript = new Map<string, PathRun[]>();
      for (const r of runs.filter((x) => x.config === name)) {
        const key = JSON.stringify(r.actions);
        byScript.set(key, [...(byScript.get(key) ?? []), r]);
      }
      for (const group of byScript.values()) {
        scripts++;
        await spendFaults(put);
        let offset = statSync(trace).size;
        try {
          await runScript(put, group[0]!.actions);
        } catch (err) {
          for (const r of group) r.detail = `${r.detail}\n${(err as Error).message}`;
          offset = readTraceSince(trace, offset).end;
          continue;
        }
        const seen = livesOf(readTraceSince(trace, offset).lines);
        for (const [t, n] of seen.counts) counts.set(t, (counts.get(t) ?? 0) + n);
        for (const r of group)
          r.outcome = realizes(r.path, { listener: seen.listener, conns: seen.conns.values() })
            ? 'realized'
            : 'not realized';
      }
      for (const cell of cells.filter((c) => c.script!.config === name)) {
        await spendFaults(put);
        const offset = statSync(trace).size;
        try {
          await runScript(put, cell.script!.actions);
          matrix.push({ cell, verdict: 'pass', detail: '' });
        } catch (err) {
          matrix.push({ cell, verdict: 'FAIL', detail: (err as Error).message });
        }
        for (const [t, n] of livesOf(readTraceSince(trace, offset).lines).counts)
          counts.set(t, (counts.get(t) ?? 0) + n);
      }
      opts.progress?.(
        `${name}: ${[...byScript.keys()].length} path script(s)${cells.length ? `, ${cells.filter((c) => c.script!.config === name).length} matrix cell(s)` : ''}`,
      );
    }
    for (const scenario of REAL_TIME_SCENARIOS)
      for (const profile of scenario.profiles) {
        const trace = join(dir, `${scenario.name}-${profile}.ndjson`);
        try {
          await scenario.run(profile, trace);
          const seen = livesOf(readTraceSince(trace, 0).lines).counts;
          const missed = scenario.transitions.filter((t) => !seen.has(t));
          for (const [t, n] of seen) counts.set(t, (counts.get(t) ?? 0) + n);
          scenarios.push({
            name: scenario.name,
            profile,
            ok: missed.length === 0,
            detail: missed.length === 0 ? '' : `its trace does not take ${missed.join(', ')}`,
          });
        } catch (err) {
          scenarios.push({ name: scenario.name, profile, ok: false, detail: (err as Error).message });
        }
        opts.progress?.(`real time: ${scenario.name} under ${profile}`);
      }
  } finally {
    await Promise.all(puts.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    generated: paths.reduce((n, p) => n + p.generated, 0),
    paths: runs,
    scripts,
    transitions: allTransitions().map((id) => ({
      id,
      runs: counts.get(id) ?? 0,
      impossible: IMPOSSIBLE_ON_NODE[id] ?? null,
    })),
    matrix: opts.matrix ? matrix : null,
    scenarios,
    configs: names,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The coverage file of `report` in diagrams/coverage.ts's format (source property-tests). Pure. */
export function coverageFile(report: CoverageReport): {
  source: 'property-tests';
  transitions: Record<string, number>;
} {
  return {
    source: 'property-tests',
    transitions: Object.fromEntries(report.transitions.map((t) => [t.id, t.runs])),
  };
}

/** The summary figures of `report`. Pure. */
export function summarize(report: CoverageReport): {
  reachable: number;
  covered: number;
  impossible: number;
  uncovered: string[]; //   reachable transitions no real run took
  badPaths: PathRun[]; //   paths whose script failed, did not realize them, or has no translation
  badCells: CellRun[];
  badScenarios: ScenarioRun[]; // real-time scenarios that failed or did not take their transitions
} {
  const reachable = report.transitions.filter((t) => t.impossible === null);
  return {
    reachable: reachable.length,
    covered: reachable.filter((t) => t.runs > 0).length,
    impossible: report.transitions.length - reachable.length,
    uncovered: reachable.filter((t) => t.runs === 0).map((t) => t.id),
    badPaths: report.paths.filter(
      (p) => p.outcome !== 'realized' && p.outcome !== 'impossible' && p.outcome !== 'real time',
    ),
    badCells: (report.matrix ?? []).filter((c) => c.verdict !== 'pass'),
    badScenarios: report.scenarios.filter((r) => !r.ok),
  };
}
