/**
 * The verifications of the machines themselves, as `embryonic verify` runs them.
 */
import { MACHINES, type MachineName } from '../machines/compose.ts';
import { listStates, listTransitions } from '../machines/introspect.ts';
import { HISTORY_PATHS } from '../properties/historyPaths.ts';
import { machineCoverage } from '../properties/machinePaths.ts';
import { checkHistoryPath } from '../properties/replay.ts';
import type { VerifyResult } from './verifications.ts';

const NAMES = Object.keys(MACHINES) as MachineName[];

/** Every state and transition carries a description and meta.haproxy (listStates throws otherwise). */
export async function verifyTraceability(): Promise<VerifyResult> {
  let states = 0;
  let transitions = 0;
  for (const name of NAMES) {
    states += listStates(MACHINES[name]).length;
    transitions += listTransitions(MACHINES[name]).length;
  }
  return {
    ok: true,
    detail: `${NAMES.length} machines, ${states} states, ${transitions} transitions traced`,
  };
}

/** The generated paths reach every state and every transition of every machine. */
export async function verifyMachineCoverage(): Promise<VerifyResult> {
  const parts: string[] = [];
  let ok = true;
  for (const name of NAMES) {
    const c = machineCoverage(name);
    ok &&= c.statesReached.length === c.states.length && c.transitionsTaken.length === c.transitions.length;
    parts.push(
      `${name} ${c.statesReached.length}/${c.states.length} states ${c.transitionsTaken.length}/${c.transitions.length} transitions`,
    );
  }
  return { ok, detail: parts.join('; ') };
}

/** Each path of haproxy-history.md §3 replays on the composed model with its exact counters. */
export async function verifyHistoryPaths(): Promise<VerifyResult> {
  const failing = HISTORY_PATHS.map((p) => ({ p, problems: checkHistoryPath(p) })).filter(
    (x) => x.problems.length > 0,
  );
  return {
    ok: failing.length === 0,
    detail:
      failing.length === 0
        ? `${HISTORY_PATHS.length}/${HISTORY_PATHS.length} paths exact`
        : failing.map((f) => `${f.p.name}: ${f.problems[0]}`).join('; '),
  };
}
