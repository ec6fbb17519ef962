/**
 * `embryonic check`: the bounded model checker. Explores every reachable state of the composed
 * model for N connections under each configuration of the space, checks every invariant in every
 * state and on every step, and prints TLC-style stats, or the shortest counterexample with a
 * regression test ready to paste.
 */
import type { Profile } from '../machines/config.ts';
import {
  ALL_CODES_BOUNDS,
  CONFIG_SPACE,
  DEFAULT_BOUNDS,
  FULL_CONNECTIONS,
  overrideSpace,
  type NamedConfig,
  type SpaceOverrides,
} from '../properties/bounds.ts';
import { exploreSpace, type ExploreStats, type SpaceResult } from '../properties/explore.ts';
import { INVARIANTS } from '../properties/invariants.ts';
import { randomCheck, type RandomCheckResult } from '../properties/arbitraries.ts';
import {
  flag,
  has,
  intFlag,
  parseArgs,
  UsageError,
  type ArgSpec,
  type Command,
  type ParsedArgs,
} from './command.ts';
import { formatTable } from './table.ts';
import type { VerifyResult } from './verifications.ts';

const PROFILES: readonly Profile[] = ['dev12', '2.6', '2.9'];

/**
 * Returns the configuration space the flags select: CONFIG_SPACE with --maxconn, --profile,
 * --mode, --ssl and --maxsslconn applied to every configuration, and --config keeping only the named ones.
 * Throws a UsageError on a value it does not know.
 */
export function spaceFromFlags(parsed: ParsedArgs): NamedConfig[] {
  const overrides: SpaceOverrides = {};
  const maxconn = flag(parsed, 'maxconn');
  if (maxconn !== undefined) overrides.maxconn = intFlag(parsed, 'maxconn', 2, 1);
  const profile = flag(parsed, 'profile');
  if (profile !== undefined) {
    if (!PROFILES.includes(profile as Profile))
      throw new UsageError(`--profile must be one of ${PROFILES.join(', ')}, not "${profile}"`);
    overrides.profile = profile as Profile;
  }
  const mode = flag(parsed, 'mode');
  if (mode !== undefined) {
    if (mode !== 'tcp' && mode !== 'http') throw new UsageError(`--mode must be tcp or http, not "${mode}"`);
    overrides.mode = mode;
  }
  if (has(parsed, 'ssl')) overrides.ssl = true;
  if (flag(parsed, 'maxsslconn') !== undefined)
    overrides.maxsslconn = intFlag(parsed, 'maxsslconn', 0, 0) || null;
  let space = overrideSpace(CONFIG_SPACE, overrides);
  const only = parsed.flags.get('config');
  if (only) {
    const unknown = only.filter((n) => !CONFIG_SPACE.some((c) => c.name === n));
    if (unknown.length > 0)
      throw new UsageError(
        `unknown --config ${unknown.join(', ')}; known: ${CONFIG_SPACE.map((c) => c.name).join(', ')}`,
      );
    space = space.filter((c) => only.includes(c.name));
  }
  return space;
}

/** Prints a progress line on stderr for a long exploration. */
function progressLine(config: string, s: ExploreStats): void {
  process.stderr.write(
    `check: ${config}: depth ${s.depth}, ${s.distinct} distinct, ${s.generated} generated, ${s.statesPerSecond} states/s\n`,
  );
}

/** Returns the text report of a space exploration. Pure. */
export function formatSpaceResult(r: SpaceResult): string {
  const rows = r.configs.map((c) => [
    c.name,
    c.generated,
    c.distinct,
    c.depth,
    c.seconds.toFixed(2),
    c.statesPerSecond,
    c.violation ? `VIOLATED: ${c.violation.invariant}` : c.complete ? 'ok' : 'cut',
  ]);
  rows.push([
    'total',
    r.generated,
    r.distinct,
    r.depth,
    r.seconds.toFixed(2),
    r.statesPerSecond,
    `${r.violations.length} violation(s)`,
  ]);
  const out = [
    `N = ${r.connections} connections, ${r.configs.length} configurations, ${INVARIANTS.length} invariants`,
    '',
    formatTable(['configuration', 'generated', 'distinct', 'depth', 'seconds', 'states/s', 'verdict'], rows),
  ];
  for (const v of r.violations) {
    out.push(
      '',
      `${v.invariant} is violated in ${v.configName} (N = ${v.connections}): ${v.message}`,
      ...v.alsoViolated.map((a) => `  also ${a.invariant}: ${a.message}`),
      'Shortest counterexample:',
      ...v.readable.map((e, i) => `  ${i + 1}. ${e}`),
      'Regression test:',
      v.test,
    );
  }
  if (r.violations.length === 0) out.push('', `Every invariant holds in every reachable state.`);
  return out.join('\n');
}

/**
 * The JSON report: the stats, the invariants checked, the violations, and per configuration what
 * was explored. Pure.
 */
export function spaceResultJson(r: SpaceResult): object {
  return {
    connections: r.connections,
    generated: r.generated,
    distinct: r.distinct,
    depth: r.depth,
    seconds: Number(r.seconds.toFixed(3)),
    statesPerSecond: r.statesPerSecond,
    invariants: INVARIANTS.map((i) => i.name),
    violations: r.violations.map((v) => ({
      invariant: v.invariant,
      message: v.message,
      alsoViolated: v.alsoViolated,
      config: v.configName,
      connections: v.connections,
      events: v.events,
      readable: v.readable,
      test: v.test,
    })),
    configs: r.configs.map((c) => ({
      name: c.name,
      config: c.config,
      generated: c.generated,
      distinct: c.distinct,
      depth: c.depth,
      seconds: Number(c.seconds.toFixed(3)),
      complete: c.complete,
    })),
  };
}

/** The flags of `embryonic check`. */
export const CHECK_ARGS: ArgSpec = {
  switches: ['ssl', 'json', 'all-codes'],
  values: ['connections', 'maxconn', 'profile', 'mode', 'maxsslconn', 'config'],
};

export const checkCommand: Command = {
  name: 'check',
  summary: 'model-check every invariant in every reachable state (bounded, exhaustive)',
  usage: [
    'Usage: embryonic check [--connections N] [--maxconn M] [--profile P] [--mode tcp|http] [--ssl]',
    '                       [--maxsslconn S] [--config NAME]... [--all-codes] [--json]',
    '',
    'Explores breadth first every state of the composed model reachable with N connections, under',
    'each configuration of the space, and checks every invariant of properties/invariants.ts in every',
    'state and on every step. Prints generated/distinct states, depth, time and states/s per',
    'configuration; on a violation, the shortest counterexample and a vitest regression test.',
    '',
    'The space (properties/bounds.ts):',
    ...CONFIG_SPACE.map((c) => `  ${c.name.padEnd(26)} ${c.why}`),
    '',
    'Options:',
    `  --connections N  number of connections (default ${FULL_CONNECTIONS})`,
    '  --maxconn M      set the frontend, bind and global maxconn of every configuration to M',
    '  --profile P      run every configuration as profile P (dev12, 2.6, 2.9)',
    '  --mode M         run every configuration in mode M (tcp, http)',
    '  --ssl            put every configuration on a TLS listener',
    '  --maxsslconn S   set the global maxsslconn of every configuration to S (0: no limit)',
    '  --config NAME    explore only the named configuration (repeatable)',
    '  --all-codes      try every PROXY and SSL error code, not one per behaviour class',
    '  --json           print {generated, distinct, depth, seconds, violations, ...} as JSON',
    '',
    'Progress goes to stderr during long runs. Exit code: 0 iff every invariant holds.',
  ].join('\n'),
  async run(args) {
    const parsed = parseArgs(args, CHECK_ARGS);
    const connections = intFlag(parsed, 'connections', FULL_CONNECTIONS, 1);
    const space = spaceFromFlags(parsed);
    const r = exploreSpace(space, connections, {
      bounds: has(parsed, 'all-codes') ? ALL_CODES_BOUNDS : DEFAULT_BOUNDS,
      onProgress: progressLine,
    });
    console.log(has(parsed, 'json') ? JSON.stringify(spaceResultJson(r), null, 2) : formatSpaceResult(r));
    return r.violations.length === 0 ? 0 : 1;
  },
};

/** `embryonic verify`: the full check, N = 3 over the whole space. */
export async function verifyModelCheck(): Promise<VerifyResult> {
  const r = exploreSpace(CONFIG_SPACE, FULL_CONNECTIONS);
  const v = r.violations[0];
  return {
    ok: r.violations.length === 0,
    detail: v
      ? `${v.invariant} violated in ${v.configName}: ${v.message} after ${v.readable.join(', ')}`
      : `N=${FULL_CONNECTIONS}, ${r.configs.length} configs: ${r.distinct} distinct states, ${r.generated} generated, depth ${r.depth}, ${INVARIANTS.length} invariants hold`,
  };
}

/** Returns one line on a random-check result. Pure. */
export function randomCheckLine(r: RandomCheckResult): string {
  const f = r.failure;
  return f
    ? `${f.invariant} violated (N=${f.connections}): ${f.message}; seed ${r.seed}, path ${f.replay}`
    : `${r.runs} runs, ${r.steps} steps, deepest ${r.maxDepth}, every invariant after every step (seed ${r.seed})`;
}

/** `embryonic verify`: the bounded random runs over 6 to 8 connections. */
export async function verifyRandomRuns(): Promise<VerifyResult> {
  const r = randomCheck({ numRuns: 200, maxCommands: 200, minConnections: 6, maxConnections: 8 });
  return { ok: r.failure === null, detail: randomCheckLine(r) };
}
