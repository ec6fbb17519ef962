/**
 * The coverage picture: the diagram of each machine with every transition coloured by how often it
 * was executed, by the model checker, by the property tests on the real proxy and by the
 * conformance suite. Transitions that nothing executed are red and dashed; the others are green,
 * darker and thicker the more often they ran. Written to diagrams/coverage/<machine>.{mmd,dot,svg}
 * by `npx embryonic diagrams --coverage [DIR]`; not committed (counts change from run to run).
 *
 * The coverage files. Each producer writes one or more JSON files into reports/coverage/ (the
 * default DIR; reports/ is git-ignored), of this form:
 *
 *   {
 *     "source": "model-checker" | "property-tests" | "conformance",
 *     "transitions": { "<transition id>": <count>, ... }
 *   }
 *
 * - a transition id is machines/introspect.ts's '<source state id>|<EVENT>|<rank>', for example
 *   'session.embryonic|HANDSHAKE_END|1'; an eventless transition's EVENT is `always`;
 * - a count is how many times the transition was taken, an integer ≥ 0; a transition a file does
 *   not list was taken 0 times by that producer;
 * - every file in DIR ending in .json is read; counts of the same transition add up, per source
 *   and in total. An id that no machine has is reported, never silently dropped.
 *
 * Until the model checker writes its own file, modelCheckerCoverage() builds one from the paths
 * properties/machinePaths.ts generates (count 1 for each transition some path took, else 0), and
 * the CLI writes it as DIR/machine-paths.json when DIR holds no model-checker file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyStateMachine } from 'xstate';
import { MACHINES, type MachineName } from '../machines/compose.ts';
import { listStates, listTransitions, type StateInfo, type TransitionInfo } from '../machines/introspect.ts';
import { machineCoverage } from '../properties/machinePaths.ts';
import {
  initialLeaf,
  MACHINE_NAMES,
  renderSvg,
  toDot,
  toMermaid,
  type DiagramStyle,
  type GeneratedFile,
} from './generate.ts';

/** Who executed the transitions a coverage file counts. */
export const COVERAGE_SOURCES = ['model-checker', 'property-tests', 'conformance'] as const;
export type CoverageSource = (typeof COVERAGE_SOURCES)[number];

/** One coverage file, as the module comment defines it. */
export interface CoverageFile {
  source: CoverageSource;
  transitions: Record<string, number>;
}

/** A coverage file and where it was read from. */
export interface LoadedCoverage {
  path: string;
  data: CoverageFile;
}

/** The default directory of the coverage files, relative to the repository root. */
export const COVERAGE_DIR = 'reports/coverage';

/** The file the model-side producer writes into the coverage directory. */
export const MACHINE_PATHS_FILE = 'machine-paths.json';

/**
 * Parses the text of a coverage file read from `origin`. Returns it; throws an Error naming
 * `origin` and the first thing wrong if it is not of the documented form. Pure.
 */
export function parseCoverage(text: string, origin: string): CoverageFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${origin}: not JSON (${(err as Error).message})`, { cause: err });
  }
  const d = data as Partial<CoverageFile>;
  if (typeof d !== 'object' || d === null) throw new Error(`${origin}: not an object`);
  if (!COVERAGE_SOURCES.includes(d.source as CoverageSource))
    throw new Error(`${origin}: "source" must be one of ${COVERAGE_SOURCES.join(', ')}`);
  if (typeof d.transitions !== 'object' || d.transitions === null || Array.isArray(d.transitions))
    throw new Error(`${origin}: "transitions" must map transition ids to counts`);
  for (const [id, n] of Object.entries(d.transitions))
    if (!Number.isInteger(n) || (n as number) < 0)
      throw new Error(`${origin}: the count of ${id} must be an integer ≥ 0, not ${JSON.stringify(n)}`);
  return { source: d.source as CoverageSource, transitions: d.transitions };
}

/**
 * Reads every .json file of `dir`, in name order. Returns none if `dir` does not exist. Throws as
 * parseCoverage does on a malformed file. Reads files only.
 */
export function readCoverageDir(dir: string): LoadedCoverage[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const path = join(dir, f);
      return { path, data: parseCoverage(readFileSync(path, 'utf8'), path) };
    });
}

/** The counts of every coverage file, summed per transition and source. */
export interface CoverageTally {
  counts: Map<string, Partial<Record<CoverageSource, number>>>; // transition id → count per source
  sources: CoverageSource[]; //  the sources present, in COVERAGE_SOURCES order
  files: string[]; //            where the counts were read from
  unknown: string[]; //          ids named by a file that no machine has, sorted
}

/** Returns the tally of `files`: counts added up per transition and per source. Pure. */
export function tallyCoverage(files: LoadedCoverage[]): CoverageTally {
  const known = new Set(MACHINE_NAMES.flatMap((n) => listTransitions(MACHINES[n]).map((t) => t.id)));
  const counts = new Map<string, Partial<Record<CoverageSource, number>>>();
  const unknown = new Set<string>();
  for (const { data } of files) {
    for (const [id, n] of Object.entries(data.transitions)) {
      if (!known.has(id)) {
        unknown.add(id);
        continue;
      }
      const per = counts.get(id) ?? {};
      per[data.source] = (per[data.source] ?? 0) + n;
      counts.set(id, per);
    }
  }
  return {
    counts,
    sources: COVERAGE_SOURCES.filter((s) => files.some((f) => f.data.source === s)),
    files: files.map((f) => f.path),
    unknown: [...unknown].sort(),
  };
}

/** Returns how many times transition `id` was executed, all sources together. Pure. */
export function totalOf(tally: CoverageTally, id: string): number {
  return Object.values(tally.counts.get(id) ?? {}).reduce((a, b) => a + b, 0);
}

/** How a transition executed `min` times or more (up to the next bucket) is drawn. */
export interface CoverageBucket {
  min: number;
  name: string;
  color: string;
  colorName: string; // how the legend names the colour
  style: 'dashed' | 'solid';
  penwidth: number;
}

/** The buckets, from never executed to executed often. */
export const COVERAGE_BUCKETS: readonly CoverageBucket[] = [
  { min: 0, name: 'never run', color: '#d62728', colorName: 'red', style: 'dashed', penwidth: 2 },
  { min: 1, name: '1-9 runs', color: '#74c476', colorName: 'light green', style: 'solid', penwidth: 1.5 },
  { min: 10, name: '10-99 runs', color: '#31a354', colorName: 'green', style: 'solid', penwidth: 2.5 },
  {
    min: 100,
    name: '100 runs or more',
    color: '#006d2c',
    colorName: 'dark green',
    style: 'solid',
    penwidth: 3.5,
  },
];

/** Returns the bucket of a transition executed `count` times. Pure. */
export function bucketOf(count: number): CoverageBucket {
  return [...COVERAGE_BUCKETS].reverse().find((b) => count >= b.min)!;
}

/**
 * Returns the note a transition's label gets: `never run`, `12 runs`, or
 * `12 runs (model-checker 10, conformance 2)` when more than one source ran it. ASCII, so that
 * Graphviz can measure it.
 */
function noteOf(tally: CoverageTally, id: string): string {
  const total = totalOf(tally, id);
  if (total === 0) return 'never run';
  const per = tally.counts.get(id) ?? {};
  const parts = tally.sources.filter((s) => (per[s] ?? 0) > 0).map((s) => `${s} ${per[s]}`);
  const runs = total === 1 ? '1 run' : `${total} runs`;
  return parts.length > 1 ? `${runs} (${parts.join(', ')})` : runs;
}

/**
 * Returns the ids of the states of `machine` that no executed transition touches: neither left,
 * nor entered, nor on the way in from the initial state when anything ran at all. Pure.
 */
export function unreachedStates(machine: AnyStateMachine, tally: CoverageTally): string[] {
  const ran = listTransitions(machine).filter((t) => totalOf(tally, t.id) > 0);
  const touched = new Set<string>();
  const touch = (id: string): void => {
    const parts = id.split('.');
    for (let i = 2; i <= parts.length; i++) touched.add(parts.slice(0, i).join('.'));
  };
  for (const t of ran) [t.source, ...t.targets.map((x) => initialLeaf(machine, x))].forEach(touch);
  if (ran.length > 0) {
    const first = (Object.values(machine.root.states) as { id: string }[])[0];
    const initial = machine.root.initial?.target?.[0]?.id ?? first?.id;
    if (initial) touch(initialLeaf(machine, initial));
  }
  return listStates(machine)
    .map((s) => s.id)
    .filter((id) => !touched.has(id));
}

/** Returns the style that colours `machine`'s diagram by `tally`. Pure. */
export function coverageStyle(machine: AnyStateMachine, tally: CoverageTally): DiagramStyle {
  const transitions = listTransitions(machine);
  const run = transitions.filter((t) => totalOf(tally, t.id) > 0).length;
  const unreached = new Set(unreachedStates(machine, tally));
  const uncovered = COVERAGE_BUCKETS[0]!;
  const from = tally.sources.length > 0 ? tally.sources.join(', ') : 'no coverage file';
  const legend = COVERAGE_BUCKETS.map(
    (b) => `${b.name}: ${b.colorName}${b.style === 'dashed' ? ', dashed' : ''}`,
  );
  return {
    title: `${machine.id}: ${run}/${transitions.length} transitions run (${from})\n${legend.join('; ')}`,
    edge: (t: TransitionInfo) => {
      const b = bucketOf(totalOf(tally, t.id));
      return { color: b.color, style: b.style, penwidth: b.penwidth, note: noteOf(tally, t.id) };
    },
    state: (s: StateInfo) =>
      unreached.has(s.id) ? { color: uncovered.color, style: 'rounded,dashed', penwidth: 2 } : {},
    mermaidClasses: [
      {
        name: 'uncovered',
        style: `stroke:${uncovered.color},stroke-width:2px,stroke-dasharray:5 5`,
        states: listStates(machine)
          .filter((s) => unreached.has(s.id) && s.type !== 'compound')
          .map((s) => s.id),
      },
    ],
  };
}

/**
 * Returns the coverage variant of every machine's diagram, coloured by `tally`:
 * diagrams/coverage/<machine>.{mmd,dot,svg}. Deterministic for a given tally.
 */
export async function coverageFiles(tally: CoverageTally): Promise<GeneratedFile[]> {
  const files: GeneratedFile[] = [];
  for (const name of MACHINE_NAMES) {
    const style = coverageStyle(MACHINES[name], tally);
    const dot = toDot(MACHINES[name], style);
    files.push({ path: `diagrams/coverage/${name}.mmd`, content: toMermaid(MACHINES[name], style) });
    files.push({ path: `diagrams/coverage/${name}.dot`, content: dot });
    files.push({ path: `diagrams/coverage/${name}.svg`, content: await renderSvg(dot) });
  }
  return files;
}

/**
 * Returns a model-checker coverage file built from the paths properties/machinePaths.ts generates
 * for every machine: count 1 for each transition some path took, 0 for the others. It stands in
 * for the model checker's own counts until the explorer writes them. Pure (deterministic); takes
 * about a second.
 */
export function modelCheckerCoverage(): CoverageFile {
  const transitions: Record<string, number> = {};
  for (const name of MACHINE_NAMES as MachineName[]) {
    const c = machineCoverage(name);
    for (const id of c.transitions) transitions[id] = c.transitionsTaken.includes(id) ? 1 : 0;
  }
  return { source: 'model-checker', transitions };
}
