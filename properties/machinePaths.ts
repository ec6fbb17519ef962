/**
 * Paths through each machine, generated with xstate/graph, and the transitions they take.
 *
 * Shortest paths reach every state but not every transition (toolchain.md, pitfall 5), and simple
 * paths skip self-transitions and the edges that close a cycle. So each shortest path to a state is
 * extended by every event the machine accepts, listed with its params (pitfall 1: an `events`
 * option replaces the default), under several configurations: one path per (state, event) edge.
 * Each path is replayed with the machine's own transition function to learn which transitions it
 * took (pitfall 3: the snapshot a path reports is not always the one its steps lead to).
 */
import { getShortestPaths } from 'xstate/graph';
import { makeConfig, type ModelConfig } from '../machines/config.ts';
import { MACHINES, MachineRunner, type CachedStep, type MachineName } from '../machines/compose.ts';
import { listStates, listTransitions } from '../machines/introspect.ts';

/** The events each machine is explored with: every type it accepts, with params that reach every guard. */
export const EXPLORATION_EVENTS: Record<MachineName, { type: string; [k: string]: unknown }[]> = {
  connection: [
    { type: 'ACCEPT' },
    { type: 'START_HANDSHAKE' },
    { type: 'NO_HANDSHAKE' },
    { type: 'PROXY_HEADER_OK' },
    { type: 'PROXY_HEADER_ERROR', code: 'PRX_TRUNCATED' },
    { type: 'PROXY_HEADER_ERROR', code: 'PRX_ABORT' },
    { type: 'TLS_OK' },
    { type: 'TLS_ERROR', code: 'SSL_HANDSHAKE' },
    ...(['none', 'partialRecord', 'wholeRecords'] as const).flatMap((tlsRead) => [
      { type: 'CLIENT_CLOSE', tlsRead },
      { type: 'CLIENT_RESET', tlsRead },
    ]),
    { type: 'TIMEOUT' },
    { type: 'CLOSE' },
  ],
  session: [
    ...(['plain', 'monitor', 'denied'] as const).flatMap((src) =>
      (['none', 'session', 'fcntl', 'task', 'dataInit', 'req', 'rep', 'txn', 'accept'] as const).map(
        (fail) => ({
          type: 'SESSION_ACCEPT',
          src,
          fail,
          sslconns: 0,
        }),
      ),
    ),
    // One SSL context live: at maxsslconn under the TLS configuration below.
    { type: 'SESSION_ACCEPT', src: 'plain', fail: 'none', sslconns: 1 },
    { type: 'HANDSHAKE_END', error: true, fail: 'none' },
    { type: 'HANDSHAKE_END', error: false, fail: 'none' },
    { type: 'HANDSHAKE_END', error: false, fail: 'rep' },
    { type: 'TASK_WAKEUP', timer: true },
    { type: 'TASK_WAKEUP', timer: false },
    { type: 'SESSION_END', writeTimeout: false },
    { type: 'SESSION_END', writeTimeout: true },
  ],
  listener: (() => {
    const free = { nbconn: 0, actconn: 0, feconn: 0, connRateRemain: 5, sessRateRemain: 5 };
    return [
      { type: 'ACCEPT_ATTEMPT', acceptError: false, ...free },
      { type: 'ACCEPT_ATTEMPT', acceptError: false, ...free, connRateRemain: 0 },
      { type: 'ACCEPT_ATTEMPT', acceptError: false, ...free, sessRateRemain: 0 },
      { type: 'ACCEPT_ATTEMPT', acceptError: false, ...free, actconn: 2 },
      { type: 'ACCEPT_ATTEMPT', acceptError: false, ...free, feconn: 2 },
      { type: 'ACCEPT_ATTEMPT', acceptError: true, ...free },
      { type: 'ACCEPT_RETURNED', ret: -1, ...free },
      { type: 'ACCEPT_RETURNED', ret: 0, ...free },
      { type: 'ACCEPT_RETURNED', ret: 1, ...free, nbconn: 1 },
      { type: 'ACCEPT_RETURNED', ret: 1, ...free, nbconn: 2 },
      { type: 'RESUME', ...free, nbconn: 1 },
      { type: 'DEQUEUE_GLOBAL', ...free, nbconn: 1 },
      { type: 'DEQUEUE_GLOBAL', ...free, actconn: 2 },
      { type: 'DEQUEUE_FRONTEND', ...free, nbconn: 1 },
      { type: 'DEQUEUE_FRONTEND', ...free, feconn: 2 },
      { type: 'DEQUEUE_FRONTEND', ...free, nbconn: 1, sessRateRemain: 0 },
    ];
  })(),
};

/** The configurations each machine is explored under: together they enable every guard. */
export const EXPLORATION_CONFIGS: Record<MachineName, ModelConfig[]> = {
  connection: [
    makeConfig({ acceptProxy: false, ssl: false }),
    makeConfig({ acceptProxy: true, ssl: false }),
    makeConfig({ acceptProxy: false, ssl: true }),
    makeConfig({ acceptProxy: true, ssl: true }),
  ],
  session: [
    ...(['tcp', 'http'] as const).flatMap((mode) =>
      [true, false].flatMap((acceptProxy) =>
        [true, false].flatMap((logging) =>
          (['dev12', '2.6'] as const).map((profile) => makeConfig({ mode, acceptProxy, logging, profile })),
        ),
      ),
    ),
    ...(['dev12', '2.6'] as const).map((profile) =>
      makeConfig({ acceptProxy: false, ssl: true, maxsslconn: 1, profile }),
    ),
  ],
  listener: (['dev12', '2.6'] as const).map((profile) =>
    makeConfig({
      profile,
      feMaxconn: 2,
      bindMaxconn: 2,
      globalMaxconn: 2,
      maxconnrate: 5,
      rateLimitSessions: 5,
    }),
  ),
};

/** What the generated paths of one machine reached. */
export interface MachineCoverage {
  machine: MachineName;
  paths: number; //            shortest paths extended by one event that took a transition, over every configuration
  states: string[]; //          every state id of the machine
  statesReached: string[]; //   state ids some path passed through
  transitions: string[]; //     every transition id of the machine
  transitionsTaken: string[]; // transition ids some path took
}

/**
 * One shortest path of a machine, replayed with the machine's own transition function: the steps
 * it took, and the step of each exploration event that takes a transition where it ends (its
 * extensions, one path per (state, event) edge). `runner` interns the snapshots the ids name.
 */
export interface ReplayedPath {
  runner: MachineRunner;
  start: number; //              the initial snapshot id
  steps: CachedStep[]; //        the path's own steps, in order
  extensions: CachedStep[]; //   one per exploration event that takes a transition at the path's end, in event order
}

/**
 * Generates xstate/graph's shortest path to every state of `machine` under each of its
 * exploration configurations (states told apart by value and context, the configuration aside),
 * and returns each replayed (ReplayedPath), configuration by configuration. Pure (deterministic);
 * takes well under a second per machine.
 */
export function replayedPaths(machine: MachineName): ReplayedPath[] {
  const logic = MACHINES[machine];
  const out: ReplayedPath[] = [];
  for (const config of EXPLORATION_CONFIGS[machine]) {
    const runner = new MachineRunner(machine, logic, config);
    const generated = getShortestPaths(
      logic as never,
      {
        input: { config },
        events: EXPLORATION_EVENTS[machine] as never,
        serializeState: (s: { value: unknown; context: Record<string, unknown> }) =>
          JSON.stringify([s.value, { ...s.context, config: undefined }]),
      } as never,
    );
    for (const path of generated) {
      const start = runner.initial();
      let id = start;
      const steps: CachedStep[] = [];
      for (const step of path.steps) {
        const event = step.event as { type: string };
        if (event.type === 'xstate.init') continue;
        const r = runner.step(id, event);
        steps.push(r);
        id = r.next;
      }
      const extensions = EXPLORATION_EVENTS[machine]
        .map((event) => runner.step(id, event))
        .filter((r) => r.transitions.length > 0);
      out.push({ runner, start, steps, extensions });
    }
  }
  return out;
}

/**
 * Replays the paths of `machine` (replayedPaths) and returns what they reached. Pure
 * (deterministic); takes well under a second per machine.
 */
export function machineCoverage(machine: MachineName): MachineCoverage {
  const logic = MACHINES[machine];
  const states = listStates(logic).map((s) => s.id);
  const transitions = listTransitions(logic).map((t) => t.id);
  const reached = new Set<string>();
  const taken = new Set<string>();
  let paths = 0;
  for (const { runner, start, steps, extensions } of replayedPaths(machine)) {
    markState(reached, logic.id, runner.value(start));
    for (const r of steps) {
      r.transitions.forEach((t) => taken.add(t));
      markState(reached, logic.id, runner.value(r.next));
    }
    for (const r of extensions) {
      paths++;
      r.transitions.forEach((t) => {
        taken.add(t);
        markState(reached, logic.id, t.split('|')[0]!.slice(logic.id.length + 1));
      });
      markState(reached, logic.id, runner.value(r.next));
    }
  }
  return {
    machine,
    paths,
    states,
    statesReached: states.filter((s) => reached.has(s)),
    transitions,
    transitionsTaken: transitions.filter((t) => taken.has(t)),
  };
}

/** Marks state `dotted` of machine `root` and its ancestors as reached. */
function markState(reached: Set<string>, root: string, dotted: string): void {
  const parts = dotted.split('.').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) reached.add(`${root}.${parts.slice(0, i).join('.')}`);
}
