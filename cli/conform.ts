/**
 * `embryonic conform`: the black-box conformance suite, case by case, against the bundled proxy,
 * Debian's HAProxy, or any proxy running the documented config; one report for every target.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CASES, selectCases } from '../conformance/cases.ts';
import { summarize, toCoverage, toHtml, toJson, toJunit } from '../conformance/report.ts';
import { runSuite, type SuiteReport } from '../conformance/runner.ts';
import {
  DEFAULT_BASE_PORT,
  DEFAULT_CONFIG_DIR,
  suiteConfig,
  suiteLayout,
  writeSuiteFiles,
} from '../conformance/suite.cfg.ts';
import {
  killStartedProcesses,
  parseTargetSpec,
  targetName,
  type TargetSpec,
} from '../conformance/targets.ts';
import type { Profile } from '../machines/config.ts';
import { flag, has, parseArgs, UsageError, type Command } from './command.ts';
import { formatTable } from './table.ts';
import type { VerifyResult } from './verifications.ts';

export const conformCommand: Command = {
  name: 'conform',
  summary: 'run the black-box conformance suite against a proxy, side by side with HAProxy',
  usage: [
    'Usage: embryonic conform [--target impl[@PROFILE]|haproxy[@PROFILE]|HOST:PORT[@PROFILE]]...',
    '                         [--haproxy PATH] [--stats unix:PATH] [--log FILE] [--trace FILE]...',
    '                         [--cases GLOB]...',
    '                         [--json FILE] [--junit FILE] [--html FILE] [--coverage FILE] [--strict]',
    '       embryonic conform --print-config [--target HOST:PORT[@PROFILE]] [--stats unix:PATH]',
    '',
    `Runs ${CASES.length} cases (PROXY v1 §2.1, v2 §2.2, the handshake lifecycle, limits, counters) against`,
    'each target, one case at a time, and prints a verdict per case: pass, fail, skipped,',
    'version-difference, or known-bug (on haproxy, a case that shows a bug of HAProxy itself, judged',
    'against the model with that bug, a mutant of docs/MUTANTS.md). After each case it checks that',
    'the target holds nothing (no backend connection, every frontend scur 0) and, for impl only,',
    'that its ledgers are clean (show violations, show pool, show fd: no violation, no live pool',
    'item, no live fd). On impl it',
    "also reads the proxy's trace and fails a case that does not take exactly the transitions the",
    "model predicts for it under the target's profile (the kills each target must log, the close",
    'of each connection and the counters are predicted the same way); --coverage then counts the',
    'transitions the passing cases took there (the predicted ones on targets that write no trace).',
    '',
    'Targets (repeat --target for several; one report covers them all):',
    '  impl        the bundled proxy, started with the suite config (the default)',
    '  impl@PROFILE  the same, run with --profile PROFILE (dev12, 2.6, 2.9) and judged against',
    "              that profile's predictions: impl@2.6 must do what Debian's haproxy does",
    "  haproxy     Debian's haproxy from PATH (or the binary --haproxy names), started with the",
    '              same config (nbthread 1), judged as its version says (2.3 to 2.8: 2.6; 2.9 and',
    "              later: 2.9) with HAProxy's known bugs; haproxy@PROFILE (2.6 or 2.9) names the",
    '              profile, which a build older than 2.3 needs; skipped with a message when',
    '              haproxy is not installed. One --haproxy serves every haproxy target of a run',
    '  HOST:PORT   a proxy already running the documented config with base port PORT',
    '              (see --print-config); counter cases need --stats and are skipped without it;',
    '              without --log its log is not captured: the kills it logs are not judged, and',
    '              the cases about the log are skipped. HOST:PORT@PROFILE judges it against that',
    "              profile's predictions (default dev12). A dev12 target also serves fe_monitor",
    '              (PORT+8, monitor-net 127.0.0.0/8, closed with a FIN at accept); a proxy',
    '              without monitor-net, such as HAProxy 2.3 and later, is judged with @2.6 or',
    '              @2.9. A 2.9 target also serves fe_client_hs (PORT+14, timeout client-hs)',
    '',
    'The stats socket of a HOST:PORT target (--stats unix:PATH) is asked one command per',
    "connection, the answer ending when the proxy closes it, as HAProxy's CLI does:",
    '  show info   "Name: value" lines, with CurrConns, CumConns, MaxConn, Jobs, CurrSslConns and',
    '              CumSslConns (2.x and later): the cases read each of them',
    '  show stat   CSV under a "# pxname,svname,..." header: a <frontend>/FRONTEND row for each',
    '              frontend of the config (scur, smax, slim, stot, conn_tot, dcon) and a',
    '              be_echo/BACKEND row (stot, scur)',
    '',
    'Options:',
    '  --haproxy PATH     the HAProxy binary of the haproxy target (a build of your own, e.g. 2.9)',
    '  --stats unix:PATH  the stats socket of the HOST:PORT target',
    '  --log FILE         the file the HOST:PORT target writes its log to (the printed config logs to',
    '                     stderr: run it with 2>FILE); the suite follows it, and judges the kills',
    "                     it logs as it does impl's and haproxy's",
    '  --trace FILE       a lifecycle trace the HOST:PORT target writes (docs/TRACE.md, its step lines',
    '                     with their transition ids; repeatable, one per process): each case must',
    '                     take exactly the transitions the model predicts, as on impl',
    "  --cases GLOB       run only the cases whose id matches ('*' matches anything, '/' included;",
    '                     repeatable), e.g. --cases "pp1/*" --cases "cnt/*"',
    '  --json FILE        write every result (per case: checks, wire log, backend, counters) as JSON',
    '  --junit FILE       write JUnit XML: one testsuite per target, one testcase per case',
    '  --html FILE        write one self-contained HTML page: the targets × cases matrix and a detail',
    '                     view per case with its wire log',
    '  --coverage FILE    write the transitions the passing cases exercised, for',
    '                     `embryonic diagrams --coverage` (e.g. reports/coverage/conformance.json)',
    '  --strict           also exit 1 when a case is skipped (CI: every case must pass, be a',
    '                     version-difference with a written reason, or a known-bug)',
    '  --print-config     print the suite config as haproxy.cfg and exit; it also writes the test',
    `                     certificate it names (under ${DEFAULT_CONFIG_DIR} unless --stats says where).`,
    "                     It is the config of the first target's profile (haproxy: 2.6; default",
    '                     dev12): with @2.6 or @2.9 (HAProxy 2.3 and later) it leaves out fe_monitor,',
    '                     whose monitor-net those versions refuse; only @2.9 has fe_client_hs',
    '                     (for a haproxy target, name its profile: haproxy@2.9)',
    '',
    'Exit code: 0 if no case failed (and, with --strict, none was skipped), 1 otherwise, 2 on a',
    'usage error.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, {
      switches: ['print-config', 'strict'],
      values: ['target', 'haproxy', 'stats', 'log', 'trace', 'cases', 'json', 'junit', 'html', 'coverage'],
    });
    const stats = flag(parsed, 'stats') ?? null;
    const log = flag(parsed, 'log');
    const traces = parsed.flags.get('trace') ?? [];
    const haproxy = flag(parsed, 'haproxy');
    const specs: TargetSpec[] = [];
    for (const text of parsed.flags.get('target') ?? ['impl']) {
      const spec = parseTargetSpec(text, {
        stats,
        ...(log !== undefined ? { log } : {}),
        traces,
        ...(haproxy !== undefined ? { haproxy } : {}),
      });
      if (typeof spec === 'string') throw new UsageError(spec);
      specs.push(spec);
    }
    const names = specs.map(targetName);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined)
      throw new UsageError(`--target ${twice} is given twice: the reports key results by target`);
    if (has(parsed, 'print-config')) return printConfig(specs, stats);
    if (haproxy !== undefined && !specs.some((s) => s.kind === 'haproxy')) {
      throw new UsageError('--haproxy is for a haproxy target (--target haproxy[@PROFILE])');
    }
    if (stats !== null && !specs.some((s) => s.kind === 'address')) {
      throw new UsageError('--stats is for a HOST:PORT target (impl and haproxy get their own socket)');
    }
    if ((log !== undefined || traces.length > 0) && !specs.some((s) => s.kind === 'address')) {
      throw new UsageError(
        '--log and --trace are for a HOST:PORT target (the suite reads those of impl and haproxy itself)',
      );
    }
    const cases = selectCases(CASES, parsed.flags.get('cases') ?? []);
    if (cases.length === 0) throw new UsageError('--cases matches no case');

    // Interrupted, the suite still stops what it started: the proxies it spawned get SIGKILL.
    const onSignal = (signal: NodeJS.Signals): void => {
      process.stderr.write(`conform: ${signal}: killing ${killStartedProcesses()} started process(es)\n`);
      process.exit(130);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let report: SuiteReport;
    try {
      report = await runSuite(specs, cases, {
        onProgress: (line) => process.stderr.write(`conform: ${line}\n`),
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    writeReports(report, [
      [flag(parsed, 'json'), toJson],
      [flag(parsed, 'junit'), toJunit],
      [flag(parsed, 'html'), toHtml],
      [flag(parsed, 'coverage'), toCoverage],
    ]);
    printSummary(report);
    const counts = summarize(report);
    const bad = counts.fail + (has(parsed, 'strict') ? counts.skipped : 0);
    return bad === 0 ? 0 : 1;
  },
};

/**
 * Returns the profile whose config --print-config prints for <specs>: that of the first target
 * that names one (HOST:PORT@P, impl@P or haproxy@P: P; haproxy: 2.6), else dev12. Pure.
 */
export function printedProfile(specs: readonly TargetSpec[]): Profile {
  for (const s of specs) {
    if (s.profile !== undefined) return s.profile;
    if (s.kind === 'haproxy') return '2.6';
  }
  return 'dev12';
}

function printConfig(specs: TargetSpec[], stats: string | null): number {
  const address = specs.find((s) => s.kind === 'address');
  const base = address?.kind === 'address' ? address.port : DEFAULT_BASE_PORT;
  const dir = stats ? dirname(stats.replace(/^unix:/, '')) : DEFAULT_CONFIG_DIR;
  const layout = suiteLayout(base, dir);
  if (stats) layout.statsPath = stats.replace(/^unix:/, '');
  writeSuiteFiles(layout);
  process.stderr.write(`conform: wrote the test certificate to ${layout.certPath}\n`);
  process.stdout.write(suiteConfig(layout, undefined, printedProfile(specs)));
  return 0;
}

function writeReports(
  report: SuiteReport,
  outputs: [string | undefined, (r: SuiteReport) => string][],
): void {
  for (const [file, render] of outputs) {
    if (!file) continue;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, render(report));
    process.stderr.write(`conform: wrote ${file}\n`);
  }
}

/** Returns <text> up to the end of its first sentence (". " or the end). Pure. */
function firstSentence(text: string): string {
  const end = text.indexOf('. ');
  return end < 0 ? text : text.slice(0, end + 1);
}

function printSummary(report: SuiteReport): void {
  const rows = report.cases.map((c) => [
    c.id,
    ...report.targets.map(
      (t) => report.results.find((r) => r.caseId === c.id && r.target === t.name)?.verdict ?? '-',
    ),
  ]);
  console.log(formatTable(['case', ...report.targets.map((t) => t.name)], rows));
  for (const t of report.targets) {
    if (t.unavailable) console.log(`\n${t.name}: ${t.unavailable.verdict}: ${t.unavailable.reason}`);
  }
  // A target that could not run its cases was named once above: its cases are not listed again.
  const unavailable = new Set(report.targets.filter((t) => t.unavailable).map((t) => t.name));
  const listed = report.results.filter((r) => !unavailable.has(r.target));
  for (const f of listed.filter((r) => r.verdict === 'fail'))
    console.log(`\nFAIL ${f.target} ${f.caseId}\n  ${f.reason ?? ''}`);
  const other = listed.filter(
    (r) => r.verdict === 'skipped' || r.verdict === 'version-difference' || r.verdict === 'known-bug',
  );
  if (other.length > 0) console.log('');
  for (const r of other)
    console.log(`${r.verdict.toUpperCase()} ${r.target} ${r.caseId}: ${firstSentence(r.reason ?? '')}`);
  const noted = listed.filter((r) => r.notes.length > 0);
  if (noted.length > 0) {
    const kinds = [...new Set(noted.flatMap((r) => r.notes.map((n) => n.split(':')[0]!)))];
    console.log(
      `\n${noted.length} result(s) carry notes, not judged (${kinds.join('; ')}): --json and --html show them`,
    );
  }
  const c = summarize(report);
  console.log(
    `\n${c.pass} passed, ${c.fail} failed, ${c.skipped} skipped, ${c['version-difference']} version-difference, ${c['known-bug']} known-bug` +
      ` (${report.cases.length} cases × ${report.targets.length} target(s), ${(report.durationMs / 1000).toFixed(1)} s)`,
  );
}

/**
 * The `embryonic verify` entry: runs every case against the bundled proxy, as dev12 (the default
 * model), with --profile 2.6 (what Debian's HAProxy 2.6 does) and with --profile 2.9 (the only
 * target here that serves fe_client_hs), each judged against its profile's predictions. Resolves
 * ok iff, on all three, every case passes or is a version-difference; a
 * proxy that does not start fails every case, and so the verification. Never rejects for a case
 * failure. Starts and stops the proxies itself.
 */
export async function verifyConformance(): Promise<VerifyResult> {
  const report = await runSuite(
    [{ kind: 'impl' }, { kind: 'impl', profile: '2.6' }, { kind: 'impl', profile: '2.9' }],
    CASES,
  );
  const bad = report.results.filter((r) => r.verdict === 'fail' || r.verdict === 'skipped');
  const parts = report.targets.map((target) => {
    const c = summarize(report, target.name);
    return (
      `${target.name}: ${c.pass} pass, ${c['version-difference']} version-difference, ${c.fail} fail, ${c.skipped} skipped` +
      (target.unavailable ? ` (${target.unavailable.reason.split('\n')[0]})` : '')
    );
  });
  const detail =
    `${parts.join('; ')} (${report.cases.length} cases, ${(report.durationMs / 1000).toFixed(1)} s)` +
    (bad.length ? `; not passing: ${bad.map((r) => `${r.target} ${r.caseId}`).join(', ')}` : '');
  return { ok: bad.length === 0, detail };
}
