/**
 * Replays a list of system events on the composed model and reports what happened.
 */
import type { ModelConfig } from '../machines/config.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../machines/system.ts';
import type { TransitionRecord } from '../machines/compose.ts';
import type { HistoryPath } from './historyPaths.ts';
import type { Counters } from '../machines/counters.ts';

/** The end of a replay: the model, its last state and every machine step taken. */
export interface Replay {
  model: SystemModel;
  state: SystemState;
  records: TransitionRecord[];
}

/**
 * Replays `events` from the initial state of a model of `n` connections under `config`.
 * Returns the end state and the steps. Throws if an event is not enabled where it is replayed
 * (a path that cannot happen is a mistake in the path, not a result).
 */
export function replay(config: ModelConfig, events: readonly SystemEvent[], n = 1): Replay {
  const model = new SystemModel(config, n);
  let state = model.initial();
  const records: TransitionRecord[] = [];
  events.forEach((event, i) => {
    const r = model.step(state, event);
    if (!r) throw new Error(`event ${i} (${JSON.stringify(event)}) cannot happen here`);
    state = r.state;
    records.push(...r.records);
  });
  return { model, state, records };
}

/**
 * Compares the end of replaying `path` with the path's expectations. Returns the list of
 * mismatches, each a sentence; an empty list means the path replays exactly.
 */
export function checkHistoryPath(path: HistoryPath): string[] {
  const { model, state } = replay(path.config, path.events);
  const problems: string[] = [];
  for (const [k, actual] of Object.entries(state.counters) as [keyof Counters, number][]) {
    const expected = path.counters[k] ?? 0;
    if (actual !== expected) problems.push(`${k} is ${actual}, expected ${expected}`);
  }
  const listener = model.state(state, 'listener');
  if (listener !== path.listener) problems.push(`listener is ${listener}, expected ${path.listener}`);
  const mem = state.memory[0]!;
  if (mem.fdCloses !== 1) problems.push(`fd closed ${mem.fdCloses} times, expected once`);
  if (mem.closedWith !== path.closedWith)
    problems.push(`closed with ${mem.closedWith}, expected ${path.closedWith}`);
  if (JSON.stringify(mem.sent) !== JSON.stringify(path.sent))
    problems.push(`sent ${JSON.stringify(mem.sent)}, expected ${JSON.stringify(path.sent)}`);
  const everAllocated = mem.bufs.req !== 'none';
  if (everAllocated !== path.buffersEverAllocated)
    problems.push(`buffers ever allocated: ${everAllocated}, expected ${path.buffersEverAllocated}`);
  if (mem.faults.length > 0) problems.push(`memory faults: ${mem.faults.join('; ')}`);
  if (mem.inList) problems.push('the session is still in the sessions list');
  if (model.state(state, 'session', 0) !== 'freed')
    problems.push(`session is ${model.state(state, 'session', 0)}, expected freed`);
  if (model.state(state, 'connection', 0) !== 'closed')
    problems.push(`connection is ${model.state(state, 'connection', 0)}, expected closed`);
  return problems;
}
