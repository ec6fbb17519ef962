/**
 * `embryonic cover`: transition coverage on the real proxy. Every path xstate/graph generates
 * through each machine is translated into client actions, allocation failures and a configuration
 * (test/impl/model/paths.ts) and run on the reference proxy, started with `--trace`; each run is
 * checked against the composed machines by the independent observers, and the transitions executed
 * are read from the proxy's trace. `--matrix` also runs the fault-injection matrix and prints it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { coverageFile, runCoverage, summarize, type CoverageReport } from '../test/impl/model/coverage.ts';
import { cellName, formatMatrix } from '../test/impl/model/matrix.ts';
import { flag, has, parseArgs, type Command } from './command.ts';
import { formatTable } from './table.ts';
import type { VerifyResult } from './verifications.ts';

/** Where the coverage file goes by default (diagrams/coverage.ts reads the directory). */
export const PROPERTY_TESTS_COVERAGE = 'reports/coverage/property-tests.json';

export const coverCommand: Command = {
  name: 'cover',
  summary: 'run every machine path on the real proxy and print per-transition coverage',
  usage: [
    'Usage: embryonic cover [--matrix] [--json FILE] [--coverage FILE]',
    '',
    'Generates the paths of the listener, connection and session machines with xstate/graph (as',
    'properties/machinePaths.ts does), translates each into client actions, allocation failures and',
    'a proxy configuration, and runs it on the reference proxy (one child process per configuration,',
    'with --test-clock and --trace). Every run is checked like a property-test run: counter balance,',
    'no buffer before the handshake ends, every fd closed once, each client closed once as predicted.',
    'The transitions executed are read from the proxy trace. Prints one line per transition: how many',
    'times the real proxy took it, or why it cannot happen on Node. A transition that needs the data',
    "phase's real-time deadlines is run by a scenario of its own (test/impl/model/realTime.ts) on a",
    'proxy without --test-clock, under dev12 and 2.6.',
    '',
    'Options:',
    '  --matrix         also run the fault-injection matrix (allocation site × state, client RST in',
    '                   every state, a backend that refuses, resets or closes) and print it',
    '  --json FILE      write the whole report (paths, scripts, transitions, matrix) as JSON',
    `  --coverage FILE  where to write the coverage file (default ${PROPERTY_TESTS_COVERAGE}), in the`,
    '                   format of diagrams/coverage.ts, for `embryonic diagrams --coverage`',
    '',
    'Exit code: 0 iff every reachable transition ran on the real proxy, every path ran as translated',
    'and passed its checks (and, with --matrix, every cell passed); 1 otherwise; 2 on a usage error.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, { switches: ['matrix'], values: ['json', 'coverage'] });
    const report = await runCoverage({
      matrix: has(parsed, 'matrix'),
      progress: (line) => process.stderr.write(`cover: ${line}\n`),
    });
    write(
      flag(parsed, 'coverage') ?? PROPERTY_TESTS_COVERAGE,
      `${JSON.stringify(coverageFile(report), null, 2)}\n`,
    );
    const json = flag(parsed, 'json');
    if (json) write(json, `${JSON.stringify(reportJson(report), null, 2)}\n`);
    console.log(formatReport(report));
    const s = summarize(report);
    return passed(s) ? 0 : 1;
  },
};

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  process.stderr.write(`cover: wrote ${file}\n`);
}

/** Returns the report as text: the transitions table, the failures, the matrix, the summary. Pure. */
export function formatReport(report: CoverageReport): string {
  const s = summarize(report);
  const rows = report.transitions.map((t) => [
    t.id,
    t.impossible ? '-' : String(t.runs),
    t.impossible ? 'impossible on Node' : t.runs > 0 ? 'covered' : 'NOT COVERED',
  ]);
  const out = [formatTable(['transition', 'real runs', 'status'], rows), ''];
  out.push('Impossible on Node:');
  for (const t of report.transitions.filter((x) => x.impossible)) out.push(`  ${t.id}: ${t.impossible}`);
  for (const p of s.badPaths)
    out.push(
      '',
      `PATH ${p.outcome.toUpperCase()}: ${p.path.machine} ${p.path.transitions.join(' > ')}`,
      `  ${p.detail}`,
    );
  for (const r of s.badScenarios)
    out.push('', `SCENARIO FAILED: ${r.name} under ${r.profile}`, `  ${r.detail}`);
  if (report.matrix) {
    const verdicts = new Map(report.matrix.map((c) => [c.cell, c.verdict]));
    out.push(
      '',
      formatMatrix((cell) => verdicts.get(cell) ?? '-'),
    );
    for (const c of s.badCells) out.push(`FAIL ${cellName(c.cell)}`, `  ${c.detail}`);
  }
  const realized = report.paths.filter((p) => p.outcome === 'realized').length;
  out.push(
    '',
    `${s.covered}/${s.reachable} reachable transitions executed on the real proxy (${pct(s.covered, s.reachable)}); ` +
      `${s.impossible} impossible on Node`,
    `${report.generated} generated paths = ${report.paths.length} distinct paths: ${realized} realized on the proxy in ${report.scripts} scripts, ` +
      `${report.paths.filter((p) => p.outcome === 'impossible').length} through a transition impossible on Node, ` +
      `${report.paths.filter((p) => p.outcome === 'real time').length} through one a real-time scenario takes` +
      (s.badPaths.length ? `, ${s.badPaths.length} FAILED` : ''),
    `real-time scenarios: ${report.scenarios.length - s.badScenarios.length}/${report.scenarios.length} pass (${report.scenarios.map((r) => `${r.name} under ${r.profile}`).join(', ')})`,
    ...(report.matrix
      ? [`matrix: ${report.matrix.length - s.badCells.length}/${report.matrix.length} cells pass`]
      : []),
    `${report.configs.length} proxy configurations (${report.configs.join(', ')}), ${report.seconds.toFixed(1)} s`,
  );
  return out.join('\n');
}

/** True iff every reachable transition ran and every path, real-time scenario and cell passed. Pure. */
function passed(s: ReturnType<typeof summarize>): boolean {
  return (
    s.uncovered.length === 0 &&
    s.badPaths.length === 0 &&
    s.badCells.length === 0 &&
    s.badScenarios.length === 0
  );
}

function pct(a: number, b: number): string {
  return `${b === 0 ? 100 : Math.floor((1000 * a) / b) / 10}%`;
}

/** The report as JSON: plain data, the matrix cells named. Pure. */
export function reportJson(report: CoverageReport): object {
  return {
    ...report,
    matrix:
      report.matrix?.map((c) => ({ cell: cellName(c.cell), verdict: c.verdict, detail: c.detail })) ?? null,
    summary: summarize(report),
  };
}

/**
 * The `embryonic verify` entry: runs every path and the matrix on the real proxy. Resolves ok iff
 * every reachable transition ran, every path was realized and every cell passed; never rejects
 * for a failing run. Writes the coverage file as `embryonic cover` does.
 */
export async function verifyRealProxyCoverage(): Promise<VerifyResult> {
  const report = await runCoverage({ matrix: true });
  mkdirSync(dirname(PROPERTY_TESTS_COVERAGE), { recursive: true });
  writeFileSync(PROPERTY_TESTS_COVERAGE, `${JSON.stringify(coverageFile(report), null, 2)}\n`);
  const s = summarize(report);
  const realized = report.paths.filter((p) => p.outcome === 'realized').length;
  const impossible = report.paths.filter((p) => p.outcome === 'impossible').length;
  const realTime = report.paths.filter((p) => p.outcome === 'real time').length;
  return {
    ok: passed(s),
    detail:
      `${s.covered}/${s.reachable} reachable transitions on the real proxy, ${s.impossible} impossible on Node; ` +
      `${realized}/${report.paths.length - impossible - realTime} paths realized (${impossible} go through one, ${realTime} through a transition a real-time scenario takes); real-time scenario runs ${report.scenarios.length - s.badScenarios.length}/${report.scenarios.length}; matrix ${report.matrix!.length - s.badCells.length}/${report.matrix!.length}` +
      (s.uncovered.length ? `; not covered: ${s.uncovered.join(', ')}` : ''),
  };
}
