import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeCoverage } from '../../cli/diagrams.ts';
import {
  bucketOf,
  COVERAGE_BUCKETS,
  coverageStyle,
  MACHINE_PATHS_FILE,
  modelCheckerCoverage,
  parseCoverage,
  tallyCoverage,
  totalOf,
  unreachedStates,
  type CoverageFile,
} from '../../diagrams/coverage.ts';
import { MACHINE_NAMES, renderSvg, toDot, toMermaid } from '../../diagrams/generate.ts';
import { MACHINES } from '../../machines/compose.ts';
import { listStates, listTransitions } from '../../machines/introspect.ts';

/** The model-side coverage, built once: every transition some generated path took counts 1. */
let model: CoverageFile;

beforeAll(() => {
  model = modelCheckerCoverage();
});

/** Returns the DOT attribute list of the edge (or internal row) of transition `id` in `dot`. */
function edgeOf(dot: string, id: string): string {
  const line = dot.split('\n').find((l) => l.includes(`id="edge:${id}"`) || l.includes(`ID="edge:${id}"`));
  if (!line) throw new Error(`no edge ${id}`);
  if (line.includes(`id="edge:${id}"`)) return line;
  const row = line.split('<TR>').find((r) => r.includes(`ID="edge:${id}"`))!;
  return row;
}

/** Returns the SVG group of the edge (or internal row) of transition `id`. */
function svgGroupOf(svg: string, id: string): string {
  const start =
    svg.indexOf(`id="edge:${id}"`) >= 0 ? svg.indexOf(`id="edge:${id}"`) : svg.indexOf(`id="a_edge:${id}"`);
  expect(start, id).toBeGreaterThanOrEqual(0);
  return svg.slice(start, svg.indexOf('</g>', svg.indexOf('</a>', start)));
}

describe('a coverage file', () => {
  it('is read when it has a known source and integer counts', () => {
    const text = JSON.stringify({ source: 'conformance', transitions: { a: 0, b: 3 } });
    expect(parseCoverage(text, 'x.json')).toEqual({ source: 'conformance', transitions: { a: 0, b: 3 } });
  });

  it('is refused, naming the file, when its source is unknown, a count is negative or it is not JSON', () => {
    expect(() => parseCoverage('{"source":"fuzzer","transitions":{}}', 'a.json')).toThrow(/a\.json.*source/);
    expect(() => parseCoverage('{"source":"conformance","transitions":{"t":-1}}', 'b.json')).toThrow(
      /b\.json.*count of t/,
    );
    expect(() => parseCoverage('{"source":"conformance","transitions":{"t":1.5}}', 'c.json')).toThrow(
      /c\.json/,
    );
    expect(() => parseCoverage('nope', 'd.json')).toThrow(/d\.json: not JSON/);
  });

  it('adds up with the others per transition and per source, and reports ids no machine has', () => {
    const [a, b] = listTransitions(MACHINES.session).map((t) => t.id);
    const ghost = [a!.split('|')[0], 'NO_SUCH_EVENT', 0].join('|');
    const tally = tallyCoverage([
      { path: '1.json', data: { source: 'model-checker', transitions: { [a!]: 2, [b!]: 1 } } },
      { path: '2.json', data: { source: 'conformance', transitions: { [a!]: 5, [ghost]: 7 } } },
      { path: '3.json', data: { source: 'model-checker', transitions: { [a!]: 1 } } },
    ]);
    expect(tally.counts.get(a!)).toEqual({ 'model-checker': 3, conformance: 5 });
    expect(totalOf(tally, a!)).toBe(8);
    expect(totalOf(tally, b!)).toBe(1);
    expect(tally.sources).toEqual(['model-checker', 'conformance']);
    expect(tally.unknown).toEqual([ghost]);
  });
});

describe('the model-side producer', () => {
  it('counts every transition of every machine, from the model checker', () => {
    expect(model.source).toBe('model-checker');
    const ids = MACHINE_NAMES.flatMap((n) => listTransitions(MACHINES[n]).map((t) => t.id));
    expect(Object.keys(model.transitions).sort()).toEqual([...ids].sort());
    expect(Object.values(model.transitions).every((n) => n === 0 || n === 1)).toBe(true);
  });
});

describe('the coverage colours', () => {
  it('put every count in the bucket whose range holds it', () => {
    for (const [i, b] of COVERAGE_BUCKETS.entries()) {
      expect(bucketOf(b.min)).toBe(b);
      const next = COVERAGE_BUCKETS[i + 1];
      if (next) expect(bucketOf(next.min - 1)).toBe(b);
    }
    expect(bucketOf(1_000_000)).toBe(COVERAGE_BUCKETS[COVERAGE_BUCKETS.length - 1]);
    expect(COVERAGE_BUCKETS[0]!.min).toBe(0);
    expect(COVERAGE_BUCKETS[0]!.style).toBe('dashed');
  });

  it('draw a transition executed 0 times red and dashed, and the others by their count', async () => {
    const machine = MACHINES.session;
    const targeted = listTransitions(machine).filter((t) => t.targets.length > 0);
    const never = targeted[0]!.id;
    const often = targeted[1]!.id;
    const counts = { ...model.transitions, [never]: 0, [often]: 150 };
    const tally = tallyCoverage([{ path: 'm.json', data: { source: 'model-checker', transitions: counts } }]);
    const dot = toDot(machine, coverageStyle(machine, tally));
    const svg = await renderSvg(dot);
    const uncovered = COVERAGE_BUCKETS[0]!;
    for (const t of listTransitions(machine).filter((x) => x.targets.length > 0)) {
      const b = bucketOf(totalOf(tally, t.id));
      const edge = edgeOf(dot, t.id);
      expect(edge, t.id).toContain(`color="${b.color}"`);
      expect(edge.includes('style="dashed"'), t.id).toBe(b === uncovered);
      const group = svgGroupOf(svg, t.id);
      expect(group, t.id).toContain(`stroke="${b.color}"`);
      expect(group.includes('stroke-dasharray'), t.id).toBe(b === uncovered);
    }
    expect(bucketOf(totalOf(tally, never))).toBe(uncovered);
    expect(bucketOf(totalOf(tally, often)).min).toBe(100);
    expect(edgeOf(dot, never)).toContain('never run');
    expect(edgeOf(dot, often)).toContain('150 runs');
  });

  it('write a transition that stays in its state, executed 0 times, in red inside its state', async () => {
    const machine = MACHINES.listener;
    const internal = listTransitions(machine).find((t) => t.targets.length === 0)!;
    const counts = { ...model.transitions, [internal.id]: 0 };
    const tally = tallyCoverage([{ path: 'm.json', data: { source: 'model-checker', transitions: counts } }]);
    const dot = toDot(machine, coverageStyle(machine, tally));
    const red = COVERAGE_BUCKETS[0]!.color;
    expect(edgeOf(dot, internal.id)).toContain(`<FONT COLOR="${red}">`);
    expect(svgGroupOf(await renderSvg(dot), internal.id)).toContain(`fill="${red}"`);
  });

  it('mark the states no executed transition reaches, in DOT and in Mermaid', () => {
    const machine = MACHINES.session;
    const states = listStates(machine).filter((s) => s.path.length === 1);
    const target = states.find((s) => s.transient)!;
    const touching = listTransitions(machine).filter(
      (t) => t.source === target.id || t.targets.includes(target.id),
    );
    const counts = { ...model.transitions };
    for (const t of touching) counts[t.id] = 0;
    const tally = tallyCoverage([{ path: 'm.json', data: { source: 'model-checker', transitions: counts } }]);
    expect(unreachedStates(machine, tally)).toEqual([target.id]);
    const style = coverageStyle(machine, tally);
    const dot = toDot(machine, style);
    const node = dot.split('\n').find((l) => l.trim().startsWith(`"${target.id}" [`))!;
    expect(node).toContain(`color="${COVERAGE_BUCKETS[0]!.color}"`);
    expect(node).toContain('dashed');
    const key = target.path[0]!;
    expect(toMermaid(machine, style)).toContain(`class ${key} uncovered`);
  });
});

describe('embryonic diagrams --coverage', () => {
  it('writes the model-side file when none exists, then the coverage diagrams of every machine', async () => {
    const root = mkdtempSync(join(tmpdir(), 'embryonic-coverage-'));
    try {
      const dir = join(root, 'reports', 'coverage');
      const lines = await writeCoverage(root, dir);
      expect(existsSync(join(dir, MACHINE_PATHS_FILE))).toBe(true);
      expect(lines.some((l) => l.includes(MACHINE_PATHS_FILE))).toBe(true);
      expect(lines.some((l) => l.includes('had no file from the model checker'))).toBe(true);
      for (const name of MACHINE_NAMES)
        for (const ext of ['mmd', 'dot', 'svg'])
          expect(existsSync(join(root, 'diagrams', 'coverage', `${name}.${ext}`)), `${name}.${ext}`).toBe(
            true,
          );
      const svg = readFileSync(join(root, 'diagrams', 'coverage', 'session.svg'), 'utf8');
      expect(svg).toContain(`stroke="${bucketOf(1).color}"`);

      writeFileSync(
        join(dir, 'conformance.json'),
        JSON.stringify({
          source: 'conformance',
          transitions: { [listTransitions(MACHINES.session)[0]!.id]: 3 },
        }),
      );
      const again = await writeCoverage(root, dir);
      expect(again.some((l) => l.includes('had no file from the model checker'))).toBe(false);
      expect(again.some((l) => l.includes('conformance.json'))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
