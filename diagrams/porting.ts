/**
 * PORTING.md, generated: one row per transition of every machine (100% of listTransitions), tying
 * the HAProxy function or flag it models (meta.haproxy, with the commit the text names) to the
 * machine state and event, the impl/ function that serves it (meta.impl), the invariants that
 * guard it, and the tests and conformance cases that cover it; then one row per state. The notes
 * for porters are hand-written prose in docs/porting-notes.md, included verbatim.
 *
 * The sources:
 * - invariants: INVARIANTS of properties/invariants.ts, each { name, doc, watches: EffectName[] }.
 *   An invariant guards a transition iff the transition emits an effect it watches (entry effects
 *   of the states it enters and the primitives of macro effects included).
 * - tests: every test/**\/*.ts that names a transition id as a string literal in its code (not in
 *   a comment: 'session.embryonic|HANDSHAKE_END|1') covers that transition.
 * - conformance cases: CASES of conformance/cases.ts, each with an `id` and `transitions: string[]`
 *   (what the model predicts its scenario takes under some profile).
 * - impl: meta.impl names one or more functions of impl/, separated by commas, each written `name`,
 *   `Class.method` or `path/file.ts#name`.
 * A reference to something that does not exist (an impl function, a transition id in a test or a
 * case) is a dangling reference: danglingReferences() lists them and a test fails on any.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { AnyStateMachine } from 'xstate';
import { CASES } from '../conformance/cases.ts';
import { DATA_PHASE_RULES } from '../impl/stream.ts';
import { PROFILES } from '../conformance/predict.ts';
import { expandEffect, MACHINES } from '../machines/compose.ts';
import { makeConfig } from '../machines/config.ts';
import { EFFECTS, type EffectName } from '../machines/effects.ts';
import { listStates, listTransitions, type TraceMeta, type TransitionInfo } from '../machines/introspect.ts';
import { INVARIANTS } from '../properties/invariants.ts';
import { DEADLINE, emittedActions, MACHINE_NAMES, stateActions } from './generate.ts';

/** One invariant as properties/invariants.ts states it. */
export interface Invariant {
  name: string;
  doc: string;
  watches: EffectName[];
}

/** One conformance case, as far as the porting table needs it. */
export interface ConformanceCase {
  id: string;
  transitions: string[];
}

/** Everything PORTING.md is generated from, besides the machines. */
export interface PortingSources {
  invariants: Invariant[];
  testRefs: Map<string, string[]>; //   transition id → test files naming it (unknown ids included)
  cases: ConformanceCase[];
  notes: string; //                     docs/porting-notes.md
  implNames: Set<string>; //            the names of the functions, methods, classes and consts defined in impl/
}

/** The files the sources are read from, relative to the repository root. */
export const SOURCE_FILES = {
  invariants: 'properties/invariants.ts',
  cases: 'conformance/cases.ts',
  notes: 'docs/porting-notes.md',
  tests: 'test',
  impl: 'impl',
} as const;

/** A transition id as a whole string literal: quote, '<state id>|<EVENT>|<rank>', the same quote. */
const TRANSITION_LITERAL =
  /(['"`])([a-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)+\|(?:[A-Z][A-Z0-9_]*|always)\|\d+)\1/g;

/**
 * Gathers the sources of PORTING.md: the invariants and the cases as this repository's modules
 * export them, the rest read from the repository at `root`. Throws if docs/porting-notes.md is
 * missing. Reads files only; changes nothing.
 */
export function loadPortingSources(root: string): PortingSources {
  return {
    invariants: INVARIANTS.map((i) => ({ name: i.name, doc: i.doc, watches: [...i.watches] })),
    testRefs: scanTestReferences(join(root, SOURCE_FILES.tests), root),
    cases: CASES.map((c) => ({ id: c.id, transitions: c.transitions })),
    notes: readFileSync(join(root, SOURCE_FILES.notes), 'utf8'),
    implNames: definedNames(join(root, SOURCE_FILES.impl)),
  };
}

/** Returns every .ts file under `dir`, sorted, or none if `dir` does not exist. */
function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/**
 * Returns, for every transition id some file under `dir` names as a string literal outside a
 * comment, the files (relative to `root`, sorted) that name it. Ids that no machine has are included: they are what
 * danglingReferences() reports. Reads files only.
 */
export function scanTestReferences(dir: string, root: string): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  for (const file of tsFiles(dir)) {
    const text = withoutComments(readFileSync(file, 'utf8'));
    const name = relative(root, file);
    for (const m of text.matchAll(TRANSITION_LITERAL)) {
      const files = refs.get(m[2]!) ?? [];
      if (!files.includes(name)) files.push(name);
      refs.set(m[2]!, files);
    }
  }
  return refs;
}

/** Returns `source` without its comments (an id in a comment is an example, not a reference). Pure. */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|\s)\/\/.*$/gm, '$1');
}

/** Returns the names the .ts files under `dir` define: functions, methods, classes, consts. Reads files only. */
export function definedNames(dir: string): Set<string> {
  const names = new Set<string>();
  const patterns = [
    /\bfunction\s*\*?\s*([A-Za-z_$][\w$]*)/g,
    /\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*[:=]/g,
    /\bclass\s+([A-Za-z_$][\w$]*)/g,
    /^\s*(?:(?:public|private|protected|static|async|override|get|set)\s+)*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*\([^)]*\)\s*(?::[^{;=]+)?\{/gm,
  ];
  for (const file of tsFiles(dir)) {
    const text = readFileSync(file, 'utf8');
    for (const re of patterns) for (const m of text.matchAll(re)) names.add(m[1]!);
  }
  return names;
}

/** Returns the function names a meta.impl text names: `a, File.ts#b, C.d` → a, b, d. Pure. */
export function implNamesOf(impl: string): string[] {
  return impl
    .split(/[,;\s]+/)
    .filter(Boolean)
    .map((token) => token.replace(/\(\)$/, ''))
    .map(
      (token) =>
        token
          .split(/[#.:/]/)
          .filter(Boolean)
          .pop() ?? token,
    );
}

/** Returns the commits a meta.haproxy text names (hex words of 7 to 40 digits, with a digit and a letter). Pure. */
export function commitsOf(text: string): string[] {
  return [...text.matchAll(/\b[0-9a-f]{7,40}\b/g)]
    .map((m) => m[0])
    .filter((w) => /[0-9]/.test(w) && /[a-f]/.test(w));
}

/** The configurations whose expansions together give every primitive of a macro: http mode, each profile, raw and TLS. */
const EXPANSION_CONFIGS = PROFILES.flatMap((profile) =>
  [false, true].map((ssl) => makeConfig({ mode: 'http', profile, ssl })),
);

/**
 * Returns every effect name transition `t` of `machine` makes its host execute, once each: its
 * own, the exit and entry effects of the states it leaves and enters, and the primitives of its
 * macro effects (each expanded by the machine that owns it, under every profile, on a raw and a
 * TLS transport, in the mode that expands them most: http). Pure.
 */
export function effectsOf(machine: AnyStateMachine, t: TransitionInfo): string[] {
  const out: string[] = [];
  for (const name of emittedActions(machine, t)) {
    const effect = { type: name as EffectName, params: { site: 'accept' } };
    const expanded =
      name in EFFECTS ? EXPANSION_CONFIGS.flatMap((config) => expandEffect(config, effect)) : [];
    for (const n of [name, ...expanded.map((e) => e.type)]) if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** One row of the transitions table. */
export interface PortingRow {
  id: string;
  machine: string;
  haproxy: string;
  commits: string[];
  state: string; //       source state path: 'handshake.proxyHeader'
  event: string;
  guard: string | null;
  targets: string[]; //   target state paths; empty: stays in its state
  description: string;
  effects: string[]; //   what the host executes, in order (context updates included)
  impl: string | null;
  invariants: string[];
  tests: string[];
  cases: string[];
}

/** Returns the rows of the transitions table, every transition of every machine, in order. Pure. */
export function portingRows(sources: PortingSources): PortingRow[] {
  const rows: PortingRow[] = [];
  for (const name of MACHINE_NAMES) {
    const machine = MACHINES[name];
    for (const t of listTransitions(machine)) {
      const effects = effectsOf(machine, t);
      rows.push({
        id: t.id,
        machine: name,
        haproxy: t.meta.haproxy,
        commits: commitsOf(t.meta.haproxy),
        state: localPath(t.source),
        event: t.event,
        guard: t.guard,
        targets: t.targets.map(localPath),
        description: t.description,
        effects: emittedActions(machine, t),
        impl: t.meta.impl ?? null,
        invariants: sources.invariants
          .filter((i) => i.watches.some((w) => effects.includes(w)))
          .map((i) => i.name),
        tests: sources.testRefs.get(t.id) ?? [],
        cases: sources.cases.filter((c) => c.transitions.includes(t.id)).map((c) => c.id),
      });
    }
  }
  return rows;
}

/** Returns a state id without its machine: 'connection.handshake.tls' → 'handshake.tls'. */
function localPath(id: string): string {
  return id.split('.').slice(1).join('.');
}

/**
 * Returns the dangling references of `sources`, one sentence each: a meta.impl naming a function
 * impl/ does not define, a transition id named by a test or a conformance case that no machine
 * has. Empty when every reference holds. Pure.
 */
export function danglingReferences(sources: PortingSources): string[] {
  const out: string[] = [];
  const known = new Set(MACHINE_NAMES.flatMap((n) => listTransitions(MACHINES[n]).map((t) => t.id)));
  for (const name of MACHINE_NAMES) {
    const machine = MACHINES[name];
    const traced: { id: string; meta: TraceMeta }[] = [...listStates(machine), ...listTransitions(machine)];
    for (const x of traced) {
      if (!x.meta.impl) continue;
      for (const fn of implNamesOf(x.meta.impl))
        if (!sources.implNames.has(fn))
          out.push(`${x.id}: meta.impl names ${fn}, which impl/ does not define`);
    }
  }
  for (const [id, files] of [...sources.testRefs].sort(([a], [b]) => a.localeCompare(b)))
    if (!known.has(id))
      out.push(
        `${files.join(', ')} name${files.length > 1 ? '' : 's'} transition ${id}, which no machine has`,
      );
  for (const c of sources.cases)
    for (const id of c.transitions)
      if (!known.has(id)) out.push(`conformance case ${c.id} covers transition ${id}, which no machine has`);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Markdown

/** Returns `text` safe inside a Markdown table cell. Pure. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function code(text: string): string {
  return `\`${cell(text)}\``;
}

function commitLinks(commits: string[]): string {
  return commits.length === 0
    ? '—'
    : commits.map((c) => `[${c}](https://github.com/haproxy/haproxy/commit/${c})`).join(', ');
}

function effectList(effects: string[]): string {
  if (effects.length === 0) return '—';
  return effects.map((e) => (e in EFFECTS ? code(e) : `*${e}*`)).join(', ');
}

function eventCell(row: PortingRow): string {
  if (row.event === 'always') return 'always (eventless)';
  if (row.event === DEADLINE.event && row.guard === DEADLINE.guard)
    return `${code(row.event)}: ${DEADLINE.reads}`;
  return code(row.event);
}

function listOrDash(items: string[], format: (s: string) => string = (s) => s): string {
  return items.length === 0 ? '—' : items.map(format).join('<br>');
}

/**
 * Returns PORTING.md: a header saying where every column comes from, the notes for porters
 * (docs/porting-notes.md, verbatim), the transitions table of each machine and the states table.
 * Pure: the same sources give the same bytes.
 */
export function portingMarkdown(sources: PortingSources): string {
  const rows = portingRows(sources);
  const counts = MACHINE_NAMES.map((n) => `${n} ${rows.filter((r) => r.machine === n).length}`).join(', ');
  const tested = rows.filter((r) => r.tests.length > 0).length;
  const out: string[] = [
    '<!-- Generated by `npx embryonic diagrams` from the machines, the tests, the conformance cases,',
    '     properties/invariants.ts and docs/porting-notes.md. Do not edit: change those, then regenerate. -->',
    '',
    "# Porting HAProxy's embryonic sessions",
    '',
    'This is the reference for porting the embryonic-session logic to another proxy. Each transition of',
    `the three machines has one row: ${rows.length} transitions (${counts}), all of them. A row ties the`,
    'HAProxy function or flag the transition models (with the commit that introduced or fixed it) to the',
    "machine's state and event, to the function of the reference proxy (`impl/`) that serves it, to the",
    'invariants that guard it, and to the tests and conformance cases that cover it.',
    '',
    'Where the columns come from:',
    '',
    '- **HAProxy**, **commit**: `meta.haproxy` of the transition; commits are links to haproxy/haproxy.',
    '- **effects**: what the transition makes its host execute, in order (`machines/effects.ts`), the entry',
    '  effects of the states it enters included; context updates of the machine are in *italics*.',
    '- **impl**: `meta.impl`, the function of `impl/` that serves the transition ("—" where the machine names none).',
    `- **invariants**: the ${sources.invariants.length} invariants of \`properties/invariants.ts\` that watch an effect the transition emits.`,
    `- **tests**: the files under test/ that name the transition's id in code: test files, and helpers such as the real-proxy scripts of test/impl/model/paths.ts; ${tested} of ${rows.length} transitions are named. A file that names an id drives or expects that transition, but the column does not say which assertion checks it.`,
    `- **conformance**: the cases of \`conformance/cases.ts\` whose scenario takes the transition under some profile whose targets serve the case's frontend, as the model predicts it (${sources.cases.length} cases; \`conformance/predict.ts\`).`,
    '',
    'Contents: [Notes for porters](#notes-for-porters) · [Transitions](#transitions) · [States](#states) ·',
    "[The data phase's rules by profile](#the-data-phases-rules-by-profile)",
    '',
    '## Notes for porters',
    '',
    sources.notes.trim(),
    '',
    '## Transitions',
    '',
    'A transition id is `<source state id>|<EVENT>|<rank>`, rank being its place among the candidates XState',
    'tries for that event in that state: the first whose guard holds is taken. `always` transitions are',
    'eventless and taken as soon as their state is entered. A transition with no target stays in its state.',
    '',
  ];
  const header =
    '| transition | HAProxy | commit | state | event | guard | target | what | effects | impl | invariants | tests | conformance |';
  for (const name of MACHINE_NAMES) {
    out.push(`### ${name}`, '', header, `|${' --- |'.repeat(13)}`);
    for (const r of rows.filter((x) => x.machine === name)) {
      out.push(
        '| ' +
          [
            code(r.id),
            cell(r.haproxy),
            commitLinks(r.commits),
            code(r.state),
            eventCell(r),
            r.guard ? code(r.guard) : '—',
            r.targets.length > 0 ? r.targets.map(code).join(', ') : '(stays)',
            cell(r.description),
            effectList(r.effects),
            r.impl ? code(r.impl) : '—',
            listOrDash(r.invariants, cell),
            listOrDash(r.tests, code),
            listOrDash(r.cases, code),
          ].join(' | ') +
          ' |',
      );
    }
    out.push('');
  }
  out.push('## States', '');
  for (const name of MACHINE_NAMES) {
    const machine = MACHINES[name];
    out.push(
      `### ${name}`,
      '',
      '| state | HAProxy | commit | what | entry / exit | impl |',
      `|${' --- |'.repeat(6)}`,
    );
    for (const s of listStates(machine)) {
      const { entry, exit } = stateActions(machine, s.id);
      const ee = [...entry.map((e) => `entry ${code(e)}`), ...exit.map((e) => `exit ${code(e)}`)];
      const kind = s.type === 'final' ? ' (final)' : s.transient ? ' (passed through)' : '';
      out.push(
        '| ' +
          [
            code(localPath(s.id)) + kind,
            cell(s.meta.haproxy),
            commitLinks(commitsOf(s.meta.haproxy)),
            cell(s.description),
            ee.length > 0 ? ee.join(', ') : '—',
            s.meta.impl ? code(s.meta.impl) : '—',
          ].join(' | ') +
          ' |',
      );
    }
    out.push('');
  }
  out.push(...dataPhaseRulesSection());
  return out.join('\n');
}

/**
 * The section of PORTING.md on the data phase's choices that differ by profile, one row per rule of
 * impl/stream.ts's DATA_PHASE_RULES, with a column per profile. Pure.
 */
function dataPhaseRulesSection(): string[] {
  const out = [
    "## The data phase's rules by profile",
    '',
    'After the handshake the reference proxy forwards bytes (`impl/stream.ts`), which the machines model',
    'only at its end (`SESSION_END`). What it does there differently under each profile is one table,',
    '`DATA_PHASE_RULES`; the notes for porters above give the measurements.',
    '',
    `| rule | what | HAProxy | ${PROFILES.join(' | ')} |`,
    `|${' --- |'.repeat(3 + PROFILES.length)}`,
  ];
  for (const [rule, info] of Object.entries(DATA_PHASE_RULES)) {
    const where = PROFILES.map((p) => (info.profiles[p] ? 'yes' : 'no'));
    out.push(`| ${code(rule)} | ${cell(info.what)} | ${cell(info.haproxy)} | ${where.join(' | ')} |`);
  }
  out.push('');
  return out;
}
