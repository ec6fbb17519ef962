/**
 * Writes bench/promela/embryonic.pml: the composed model of one configuration as a Promela model
 * for SPIN, generated from the compiled tables of properties/compiled.ts, which are XState's own
 * answers (SystemModel.step) and are tested against them on every reachable state. Nothing in the
 * Promela model is written by hand: a change to a machine changes the tables, and the test of this
 * file fails until the model is regenerated.
 *
 * The Promela state is the explorer's compact state with symmetry reduction off: `a` is the
 * abstract global (listener snapshot, queue tasks, the counters a step reads), `w[]` the write-only
 * counters, `l[c]` connection c's local id (its two machine snapshots and its memory). `np`, the
 * number of connections still in the backlog, is a function of `l[]`, kept so that ACCEPT's guard is
 * an expression; it adds no state. One process loops over one option per event (each global event,
 * each event kind of each connection), each a d_step: the guard is the enabling condition read from
 * the tables, the body looks the step up and applies it. A state SPIN reaches that the tables do not
 * cover fails an assertion, so SPIN can never explore silently past the explorer's model.
 *
 * The tables are those reachable with TABLE_CONNECTIONS connections. They hold every entry any N
 * reaches (a step touches one connection and reads only the counters the abstract global keeps, so
 * more connections only repeat entries; measured: no entry is added from 4 to 5 connections); for
 * a larger N a missing entry would stop SPIN at its assertion rather than be explored wrongly.
 *
 * Run: `node --import tsx bench/promela/generate.ts [--check]` (--check: exit 1 if the file on disk
 * differs from what the machines generate).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SystemModel } from '../../machines/system.ts';
import { CONFIG_SPACE, DEFAULT_BOUNDS, type NamedConfig } from '../../properties/bounds.ts';
import {
  CompiledModel,
  walkCompiled,
  type Alphabet,
  type CompiledTables,
} from '../../properties/compiled.ts';
import { buildAlphabet, describeEvent } from '../../properties/explore.ts';

/** The configuration the committed model renders, and the N its tables are filled with. */
export const PROMELA_CONFIG = 'tcp-proxy';
export const TABLE_CONNECTIONS = 4;
export const PML_FILE = join(dirname(fileURLToPath(import.meta.url)), 'embryonic.pml');

/**
 * Fills a compiled model of `named` with `n` connections by exploring every state it reaches (with
 * symmetry reduction: the same table entries as without). Returns the model and its alphabet; the
 * caller owns both.
 */
export function compileReachable(
  named: NamedConfig,
  n: number,
): { compiled: CompiledModel; alphabet: Alphabet } {
  const alphabet = buildAlphabet(named.config, n, DEFAULT_BOUNDS);
  const compiled = new CompiledModel(new SystemModel(named.config, n), alphabet);
  walkCompiled(compiled);
  return { compiled, alphabet };
}

/** `x == 1 || x == 4 …` over `values`, or `false` for none. */
function anyOf(x: string, values: readonly number[]): string {
  return values.length === 0 ? 'false' : values.map((v) => `${x} == ${v}`).join(' || ');
}

/**
 * Returns the Promela source of the composed model of `named` (see the header), with tables filled
 * by exploring `tableConnections` connections. The number of connections is the macro N (default
 * 3; `spin -DN=4`). Pure apart from exploring.
 */
export function promelaModel(named: NamedConfig, tableConnections = TABLE_CONNECTIONS): string {
  const { compiled, alphabet } = compileReachable(named, tableConnections);
  const t: CompiledTables = compiled.tables();
  // The Promela model starts from a = 0, w[] = 0, l[] = 0: the explorer's initial state must be that.
  const init = compiled.initial();
  if (init.some((v) => v !== 0) || t.initialW.some((v) => v !== 0))
    throw new Error('the initial state is not global 0 with zero counters and local 0 everywhere');
  const pendingLids = t.locals.flatMap((l, i) => (l.pending ? [i] : []));
  const pend = (lid: number): number => (pendingLids.includes(lid) ? 1 : 0);
  const aType = t.abstracts.length <= 255 ? 'byte' : 'short';
  if (t.locals.length > 255) throw new Error('more than 255 local ids: l[] must widen');
  const out: string[] = [];
  const o = (line = ''): number => out.push(line);

  /** The body that applies `step` (a row of t.steps) to connection `c` (null: none). */
  const apply = (s: CompiledTables['steps'][number], c: string | null): string => {
    const parts = [`a = ${s.toAbs}`];
    if (c !== null) {
      parts.push(`l[${c}] = ${s.toLocal}`);
      const dp = pend(s.toLocal) - pend(s.local);
      if (dp !== 0) parts.push(`np = np ${dp > 0 ? '+' : '-'} ${Math.abs(dp)}`);
    }
    s.dw.forEach((d, i) => {
      if (d !== 0) parts.push(`w[${i}] = w[${i}] ${d > 0 ? '+' : '-'} ${Math.abs(d)}`);
    });
    return parts.join('; ');
  };

  o(`/*`);
  o(` * GENERATED by bench/promela/generate.ts from the compiled tables of properties/compiled.ts`);
  o(` * (XState's answers through SystemModel.step). Do not edit: regenerate.`);
  o(` *`);
  o(` * Configuration ${named.name}: ${named.why}.`);
  o(
    ` * Tables filled with ${tableConnections} connections: ${t.steps.length} steps, ${t.abstracts.length} abstract globals, ${t.locals.length} local ids.`,
  );
  o(` * State: a = abstract global, w[] = write-only counters (${t.writeOnly.join(', ')}),`);
  o(
    ` * l[c] = local id of connection c (0 = in the backlog), np = connections in the backlog (a function of l[]).`,
  );
  o(` * Symmetry reduction is off: the same states as \`explore({ symmetry: false })\`.`);
  o(` */`);
  o(`#ifndef N`);
  o(`#define N 3`);
  o(`#endif`);
  o();
  o(`${aType} a = 0;`);
  o(`byte w[${Math.max(1, t.writeOnly.length)}];`);
  o(`byte l[N];`);
  o(`byte np = N;`);
  o(`hidden byte c;`);
  o();
  o(`#define PENDING(x) (${anyOf('x', pendingLids)})`);
  o();

  // Global events: enabled by (a, np > 0); a step touches the oldest pending connection or none.
  alphabet.global.forEach((id, i) => {
    // Enabled where the tables say 1, and where they never looked (-1): that fails an assertion.
    const where = (p: number, values: number[]): number[] =>
      t.abstracts.flatMap((abs, k) => (values.includes(abs.enabled[2 * i + p]!) ? [k] : []));
    const when = (values: number[]): string =>
      `(np > 0 && (${anyOf('a', where(1, values))})) || (np == 0 && (${anyOf('a', where(0, values))}))`;
    o(`/* ${describeEvent(alphabet.events[id]!)} */`);
    o(`#define EN_G${id} (${when([1, -1])})`);
    const steps = t.steps.filter((s) => s.event === id);
    const touches = steps.some((s) => s.local >= 0);
    o(`inline ST_G${id}() {`);
    if (where(0, [-1]).length + where(1, [-1]).length > 0) o(`  assert(!(${when([-1])}));`);
    if (touches) {
      o(`  c = 0;`);
      o(`  do`);
      o(`  :: c < N && !PENDING(l[c]) -> c++`);
      o(`  :: else -> break`);
      o(`  od;`);
      o(`  if`);
      for (const s of steps) o(`  :: c < N && l[c] == ${s.local} && a == ${s.abs} -> ${apply(s, 'c')}`);
      o(`  :: else -> assert(false)`);
      o(`  fi;`);
      o(`  c = 0`);
    } else {
      o(`  if`);
      for (const s of steps) o(`  :: a == ${s.abs} -> ${apply(s, null)}`);
      o(`  :: else -> assert(false)`);
      o(`  fi`);
    }
    o(`}`);
    o();
  });

  // Connection events: enabled by the connection's local id alone.
  const kinds = alphabet.perConn[0]!.length;
  for (let k = 0; k < kinds; k++) {
    const where = (values: number[]): number[] =>
      t.locals.flatMap((l, lid) => (values.includes(l.enabled[k]!) ? [lid] : []));
    o(`/* ${describeEvent(alphabet.events[alphabet.perConn[0]![k]!]!).replace('conn=0', 'conn=c')} */`);
    o(`#define EN_C${k}(x) (${anyOf('x', where([1, -1]))})`);
    o(`inline ST_C${k}(c) {`);
    if (where([-1]).length > 0) o(`  assert(!(${anyOf(`l[c]`, where([-1]))}));`);
    o(`  if`);
    for (const s of t.steps.filter((s) => s.connKind === k))
      o(`  :: l[c] == ${s.local} && a == ${s.abs} -> ${apply(s, 'c')}`);
    o(`  :: else -> assert(false)`);
    o(`  fi`);
    o(`}`);
    o();
  }

  const maxN = 8;
  o(`active proctype system() {`);
  o(`end:`);
  o(`  do`);
  for (const id of alphabet.global) o(`  :: d_step { EN_G${id} -> ST_G${id}() }`);
  for (let conn = 0; conn < maxN; conn++) {
    o(`#if N > ${conn}`);
    for (let k = 0; k < kinds; k++) o(`  :: d_step { EN_C${k}(l[${conn}]) -> ST_C${k}(${conn}) }`);
    o(`#endif`);
  }
  o(`  od`);
  o(`}`);
  o();
  return out.join('\n');
}

/** Writes (or with `check`, compares) PML_FILE. Returns the process exit code. */
function main(argv: string[]): number {
  const named = CONFIG_SPACE.find((c) => c.name === PROMELA_CONFIG)!;
  const text = promelaModel(named);
  if (argv.includes('--check')) {
    let onDisk = '';
    try {
      onDisk = readFileSync(PML_FILE, 'utf8');
    } catch {
      // missing: differs
    }
    if (onDisk === text) return 0;
    console.error(`${PML_FILE} is out of date: run node --import tsx bench/promela/generate.ts`);
    return 1;
  }
  writeFileSync(PML_FILE, text);
  console.log(`wrote ${PML_FILE}`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
