/**
 * The machines as data: every state and every transition, with its description and meta, listed
 * in a stable order. Diagrams, coverage, the porting table and the conformance cases all derive
 * from these lists, so none of them is written twice by hand.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/** What `meta` carries on every state and transition. */
export interface TraceMeta {
  haproxy: string; // the HAProxy function (and flag or commit) this state or transition models
  impl?: string; //   the impl/ function that serves it, once impl/ exists
}

/** One state node of a machine. */
export interface StateInfo {
  id: string; //             XState id, e.g. 'connection.handshake.proxyHeader'
  path: string[]; //         the keys from the root, e.g. ['handshake', 'proxyHeader']
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  transient: boolean; //     has `always` transitions: passed through within one step
  description: string;
  meta: TraceMeta;
}

/** One transition of a machine, identified by source, event and its rank among that event's candidates. */
export interface TransitionInfo {
  id: string; //              '<source id>|<event>|<rank>', e.g. 'session.embryonic|HANDSHAKE_END|1'
  machine: string; //         the machine id
  source: string; //          source state id
  event: string; //           event type, or 'always' for an eventless transition
  rank: number; //            0-based position among the candidates of `event` in `source`
  targets: string[]; //       target state ids; empty for a targetless (self) transition
  guard: string | null; //    the named guard, or null
  actions: string[]; //       the effect names, in order (assign actions included)
  description: string;
  meta: TraceMeta;
}

/**
 * Returns every state node of `machine` (the root excluded), depth first in document order.
 * Pure; throws only if a state lacks a description or meta.haproxy (a programmer error).
 */
export function listStates(machine: AnyStateMachine): StateInfo[] {
  const out: StateInfo[] = [];
  const walk = (node: AnyStateNode): void => {
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      out.push({
        id: child.id,
        path: child.path,
        type: child.type,
        transient: (child.always?.length ?? 0) > 0,
        description: requireText(child.description, `state ${child.id} has no description`),
        meta: requireMeta(child.meta, `state ${child.id}`),
      });
      walk(child);
    }
  };
  walk(machine.root);
  return out;
}

/**
 * Returns every transition of `machine`, in document order of their source states, and within a
 * state in the order XState tries them. Pure; throws only on a missing description or meta.
 */
export function listTransitions(machine: AnyStateMachine): TransitionInfo[] {
  const out: TransitionInfo[] = [];
  const walk = (node: AnyStateNode): void => {
    for (const [event, candidates] of node.transitions) {
      candidates.forEach((t, rank) => out.push(describe(machine, node, event, rank, t)));
    }
    (node.always ?? []).forEach((t, rank) => out.push(describe(machine, node, 'always', rank, t)));
    for (const child of Object.values(node.states) as AnyStateNode[]) walk(child);
  };
  walk(machine.root);
  return out;
}

/** Returns the id '<source id>|<event>|<rank>' of a transition. Pure. */
export function transitionId(source: string, event: string, rank: number): string {
  return `${source}|${event}|${rank}`;
}

function describe(
  machine: AnyStateMachine,
  node: AnyStateNode,
  event: string,
  rank: number,
  t: AnyTransitionDefinition,
): TransitionInfo {
  const id = transitionId(node.id, event, rank);
  return {
    id,
    machine: machine.id,
    source: node.id,
    event,
    rank,
    targets: (t.target ?? []).map((s: AnyStateNode) => s.id),
    guard: guardName(t.guard),
    actions: t.actions.map(actionName),
    description: requireText(t.description, `transition ${id} has no description`),
    meta: requireMeta(t.meta, `transition ${id}`),
  };
}

/** Returns the name of a guard reference, or null for none. */
function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  return 'inline';
}

/** Returns the name of an action reference. */
export function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'object' && action !== null && 'type' in action) {
    return String((action as { type: unknown }).type);
  }
  if (typeof action === 'function' && 'type' in action) return String((action as { type: unknown }).type);
  return 'inline';
}

function requireText(text: string | undefined, what: string): string {
  if (!text) throw new Error(what);
  return text;
}

function requireMeta(meta: unknown, what: string): TraceMeta {
  const m = meta as Partial<TraceMeta> | undefined;
  if (!m || typeof m.haproxy !== 'string' || m.haproxy.length === 0)
    throw new Error(`${what} has no meta.haproxy`);
  return { haproxy: m.haproxy, ...(m.impl ? { impl: m.impl } : {}) };
}
