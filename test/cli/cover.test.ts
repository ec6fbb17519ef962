/**
 * `embryonic cover`: the translation of the machines' paths into scripts for the real proxy (each
 * checked by a dry run of the model here; the real runs are `embryonic cover` itself and the
 * `real-proxy coverage` verification), the reasons given for the transitions Node cannot take, and
 * the report and coverage file the command writes.
 */
import { describe, expect, it } from 'vitest';
import { coverCommand, formatReport, reportJson } from '../../cli/cover.ts';
import { UsageError } from '../../cli/command.ts';
import { parseCoverage } from '../../diagrams/coverage.ts';
import { CONFIGS } from '../impl/model/configs.ts';
import { coverageFile, summarize, type CoverageReport } from '../impl/model/coverage.ts';
import { MATRIX } from '../impl/model/matrix.ts';
import {
  allTransitions,
  IMPOSSIBLE_ON_NODE,
  machinePaths,
  realizes,
  translate,
  type MachinePath,
} from '../impl/model/paths.ts';
import { REAL_TIME_SCENARIOS } from '../impl/model/realTime.ts';
import { dryRun } from '../impl/model/script.ts';

const paths = machinePaths();

let scripted: Set<string> | null = null;
/** Every transition the dry runs of the translated paths' scripts take; computed once per file. */
function scriptedTransitions(): Set<string> {
  if (scripted !== null) return scripted;
  scripted = new Set<string>();
  for (const path of paths) {
    const t = translate(path);
    if ('script' in t)
      for (const id of dryRun(CONFIGS[t.script.config], t.script.actions).transitions.keys())
        scripted.add(id);
  }
  return scripted;
}

describe('the translation of the machine paths', () => {
  it('finds every distinct path xstate/graph generates, for each machine', () => {
    expect(paths.map((p) => p.machine)).toContain('listener');
    expect(new Set(paths.map((p) => p.machine))).toEqual(new Set(['listener', 'connection', 'session']));
    expect(paths.reduce((n, p) => n + p.generated, 0)).toBeGreaterThan(paths.length);
  });

  it('translates every path into a script whose dry run makes the model take it, unless Node cannot take it or a real-time scenario does', () => {
    const wrong: string[] = [];
    for (const path of paths) {
      const t = translate(path);
      if ('impossible' in t || 'realTime' in t) continue;
      if ('untranslated' in t) {
        wrong.push(`${path.transitions.join(' > ')}: ${t.untranslated}`);
        continue;
      }
      const m = dryRun(CONFIGS[t.script.config], t.script.actions);
      if (!realizes(path, { listener: m.lives.listener, conns: m.lives.conns.values() }))
        wrong.push(`${path.transitions.join(' > ')} on ${t.script.config}`);
    }
    expect(wrong).toEqual([]);
  });

  it('leaves no transition out: each is taken by a translated path or a real-time scenario, or listed as impossible on Node', () => {
    const taken = new Set(scriptedTransitions());
    for (const s of REAL_TIME_SCENARIOS) for (const id of s.transitions) taken.add(id);
    const missing = allTransitions().filter((id) => !taken.has(id) && !IMPOSSIBLE_ON_NODE[id]);
    expect(missing).toEqual([]);
  });

  it('leaves to the real-time scenarios only transitions that exist and that no script takes', () => {
    const all = new Set(allTransitions());
    const scripted = scriptedTransitions();
    for (const id of REAL_TIME_SCENARIOS.flatMap((s) => s.transitions)) {
      expect(all.has(id), id).toBe(true);
      expect(scripted.has(id), id).toBe(false);
    }
  });

  it('lists as impossible only transitions that exist and that no translated path takes', () => {
    const all = new Set(allTransitions());
    for (const id of Object.keys(IMPOSSIBLE_ON_NODE)) expect(all.has(id)).toBe(true);
    const reached = scriptedTransitions();
    expect(Object.keys(IMPOSSIBLE_ON_NODE).filter((id) => reached.has(id))).toEqual([]);
  });

  it('matches a listener path anywhere in the listener life, a connection path only from its accept', () => {
    const listenerPath: MachinePath = {
      machine: 'listener',
      transitions: ['listener.full|RESUME|0'],
      generated: 1,
    };
    const connPath: MachinePath = {
      machine: 'connection',
      transitions: ['connection.accepted|CLOSE|0'],
      generated: 1,
    };
    const lives = {
      listener: ['listener.ready|ACCEPT_ATTEMPT|5', 'listener.full|RESUME|0'],
      conns: [{ connection: ['connection.pending|ACCEPT|0', 'connection.accepted|CLOSE|0'], session: [] }],
    };
    expect(realizes(listenerPath, lives)).toBe(true);
    expect(realizes(connPath, lives)).toBe(false);
    expect(realizes({ ...connPath, transitions: ['connection.pending|ACCEPT|0'] }, lives)).toBe(true);
  });
});

/** A report as runCoverage returns it, with every reachable transition run `runs` times, the others never. */
function report(runs: number): CoverageReport {
  return {
    generated: 3,
    paths: [],
    scripts: 0,
    transitions: allTransitions().map((id) => {
      const impossible = IMPOSSIBLE_ON_NODE[id] ?? null;
      return { id, runs: impossible ? 0 : runs, impossible };
    }),
    matrix: null,
    scenarios: [],
    configs: ['pp'],
    seconds: 1,
  };
}

describe('the cover report', () => {
  it('prints every transition with its real runs, and 100% when every reachable one ran', () => {
    const text = formatReport(report(2));
    const reachable = allTransitions().length - Object.keys(IMPOSSIBLE_ON_NODE).length;
    expect(text).toContain(
      `${reachable}/${reachable} reachable transitions executed on the real proxy (100%)`,
    );
    expect(text).toMatch(/^session\.embryonic\|HANDSHAKE_END\|1 +2 +covered$/m);
    expect(text).toMatch(/^session\.embryonic\|TASK_WAKEUP\|1 +- +impossible on Node$/m);
    expect(text).toContain('session.embryonic|TASK_WAKEUP|1: the embryonic session task is only ever woken');
  });

  it('names the transitions no real run took', () => {
    const r = report(1);
    r.transitions.find((t) => t.id === 'listener.full|RESUME|0')!.runs = 0;
    expect(summarize(r).uncovered).toEqual(['listener.full|RESUME|0']);
    expect(formatReport(r)).toMatch(/^listener\.full\|RESUME\|0 +0 +NOT COVERED$/m);
  });

  it('writes a coverage file that diagrams/coverage.ts reads, impossible transitions at 0', () => {
    const file = parseCoverage(JSON.stringify(coverageFile(report(3))), 'property-tests.json');
    expect(file.source).toBe('property-tests');
    expect(file.transitions['session.absent|SESSION_ACCEPT|10']).toBe(3);
    expect(file.transitions['session.absent|SESSION_ACCEPT|4']).toBe(0);
  });

  it('prints the matrix with every cell and names each in the JSON report', () => {
    const r = report(1);
    r.matrix = MATRIX.filter((c) => c.script).map((cell) => ({ cell, verdict: 'pass', detail: '' }));
    const text = formatReport(r);
    expect(text).toContain('allocation failure:');
    expect(text).toMatch(/^session_complete after TLS +n\/a +n\/a +n\/a +pass +pass +pass$/m);
    expect(text).toContain(`matrix: ${r.matrix.length}/${r.matrix.length} cells pass`);
    const json = reportJson(r) as { matrix: { cell: string }[] };
    expect(json.matrix[0]!.cell).toBe('allocation failure: session × session_accept, handshake pending');
  });

  it('rejects an unknown option with a usage error', async () => {
    await expect(coverCommand.run(['--bogus'])).rejects.toBeInstanceOf(UsageError);
  });
});
