/**
 * The composition of the three machines: one listener, and a connection and a session machine per
 * accepted socket. This is the only module that calls XState's transition functions. The model
 * (machines/system.ts) and the reference proxy (impl/) both step the machines through it, each with
 * its own Host that executes the effects: the model on counters and a model of memory, the proxy
 * on real sockets, pools and timers.
 *
 * Messages between machines (effects such as sessionAccept or handshakeEnded) are delivered at once,
 * depth first, like the function calls they stand for in HAProxy; the sender's snapshot is committed
 * before its effects run, so a message that comes back finds the sender in its new state.
 */
import type {
  AnyActorScope,
  AnyMachineSnapshot,
  AnyStateMachine,
  AnyStateNode,
  InspectionEvent,
} from 'xstate';
import type { ModelConfig } from './config.ts';
import { connectionMachine } from './connection.machine.ts';
import { isMacroEffect, macroOwner, type Effect, type EffectName, type MacroOwner } from './effects.ts';
import type { ErrCode } from './errCodes.ts';
import { transitionId } from './introspect.ts';
import {
  expandListenerEffect,
  LISTENER_GAUGES,
  listenerMachine,
  type ListenerGauges,
} from './listener.machine.ts';
import {
  expandSessionEffect,
  sessionMachine,
  type AcceptFailSite,
  type CompleteFailSite,
  type SourceClass,
} from './session.machine.ts';

/** The three machines by name. */
export const MACHINES = {
  listener: listenerMachine,
  connection: connectionMachine,
  session: sessionMachine,
} as const;

export type MachineName = keyof typeof MACHINES;

/** Who emitted an effect: a machine, and the connection it belongs to (null for the listener). */
export interface Origin {
  machine: MachineName;
  conn: number | null;
}

/** One step of one machine, as the composition saw it. */
export interface TransitionRecord {
  machine: MachineName;
  conn: number | null;
  event: { type: string } & Record<string, unknown>;
  from: string; //          state value before, as a dotted path ('handshake.proxyHeader')
  to: string; //            state value after
  transitions: string[]; // ids of the transitions taken (introspect.ts), eventless ones included
  effects: Effect[]; //     effects emitted, macros expanded, in order
}

/** What the composition needs from whoever runs it. */
export interface Host {
  /** The counters the listener's guards compare, as they are now. */
  gauges(): ListenerGauges;
  /** sslconns as it is now (the live SSL contexts): what session_accept's ssl_sock_init compares with maxsslconn. */
  sslconns(): number;
  /** Executes one effect. Called for every effect, messages included, in emission order. */
  execute(effect: Effect, origin: Origin): void;
  /** Told of every machine step, after its snapshot is committed and before its effects run. */
  record?(record: TransitionRecord): void;
}

/** The machine snapshots of one accepted socket, as interned snapshot ids. */
export interface ConnSlots {
  connection: number;
  session: number;
}

/** The state of every machine, as interned snapshot ids. Mutated in place by `dispatch`. */
export interface World {
  listener: number;
  conns: Map<number, ConnSlots>;
}

/** What the environment decides for the current step: where setup fails and what the source matched. */
export interface StepInputs {
  src: SourceClass; //                   what the source address matched (acl.ts)
  acceptFail: AcceptFailSite; //         where session_accept fails, 'none' if nowhere
  completeFail: CompleteFailSite | 'none'; // where session_complete fails after a handshake
}

export const NO_FAILURE: StepInputs = { src: 'plain', acceptFail: 'none', completeFail: 'none' };

/**
 * A defect switched into the model (a mutant): whole machines replaced (a structural defect), guard
 * overrides (applied to the replaced machine too), and a rewrite of emitted effects.
 */
export interface Defect {
  machines?: Partial<Record<MachineName, AnyStateMachine>>;
  guards?: Partial<
    Record<MachineName, Record<string, (args: { context: unknown; event: unknown }) => boolean>>
  >;
  rewrite?(record: Omit<TransitionRecord, 'effects'>, effects: Effect[]): Effect[];
}

const LISTENER_GAUGE_SET: ReadonlySet<string> = new Set(LISTENER_GAUGES);

/** How the machine that owns a macro (EFFECTS[name].macro) expands it, per profile. */
const MACRO_EXPANDERS: Record<MacroOwner, (config: ModelConfig, effect: Effect) => Effect[]> = {
  session: expandSessionEffect,
  listener: expandListenerEffect,
};

/**
 * Returns `effect` as a host executes it under `config`: a macro expanded into primitives by the
 * expander of the machine that owns it, any other effect as itself. Pure; the result is a new
 * array, whose effects may be shared with the machines' definitions.
 */
export function expandEffect(config: ModelConfig, effect: Effect): Effect[] {
  return isMacroEffect(effect.type) ? MACRO_EXPANDERS[macroOwner(effect.type)](config, effect) : [effect];
}

/**
 * Returns the params of `event` (every field but `type` and those `skip` names) as a string, each
 * with a type tag: '$' and the length for a string, '#' for anything else String prints, '=' and
 * JSON for an object. Two events of one type get equal strings iff their params are equal; an
 * event with no params gets ''. Pure.
 */
export function paramsKey(
  event: { type: string } & Record<string, unknown>,
  skip: ReadonlySet<string> | null = null,
): string {
  let key = '';
  for (const k in event) {
    if (k === 'type' || (skip !== null && skip.has(k))) continue;
    const v = event[k];
    key +=
      typeof v === 'string'
        ? `|${k}$${v.length}:${v}`
        : typeof v === 'object' && v !== null
          ? `|${k}=${JSON.stringify(v)}`
          : `|${k}#${String(v)}`;
  }
  return key;
}

/**
 * The most event answers a MachineRunner keeps per snapshot before starting that table again (which
 * costs only recomputation). The keys are finite (listener events are keyed on their guards'
 * outcomes, not on the gauges), so the limit is a guard against a host that sends unbounded event
 * params, not a working bound.
 */
const TABLE_LIMIT = 4096;

/** One machine's answer to one event in one snapshot, as a MachineRunner keeps it. Never mutated. */
export interface CachedStep {
  next: number; //          the snapshot id it leads to (the same id when nothing happens)
  effects: Effect[]; //     the effects emitted, session macros expanded, in order
  transitions: string[]; // ids of the transitions taken, eventless ones included; empty: not accepted
}

/**
 * One machine with its snapshots interned: a snapshot is an integer id, and each (snapshot, event)
 * pair is computed by XState once and then read from a table. The table is exactly XState's
 * answer, memoised; it never holds a transition XState did not compute.
 */
export class MachineRunner {
  readonly snaps: AnyMachineSnapshot[] = [];
  readonly values: string[] = [];
  private readonly ids = new Map<string, number>();
  private readonly tables: (Map<string, CachedStep> | undefined)[] = []; // by snapshot id
  private initialId = -1;
  private readonly steps = new MicrostepRecorder();
  /** The listener's guards (overrides of a defect included), evaluated to key its steps. */
  private readonly gaugeGuards: ((args: { context: unknown; event: unknown }) => boolean)[];

  constructor(
    readonly name: MachineName,
    readonly machine: AnyStateMachine,
    private readonly config: ModelConfig,
    /** false: every step is computed by XState (`compute`), none read from a table. */
    private readonly memoise = true,
  ) {
    const guards = machine.implementations.guards as Record<
      string,
      (args: { context: unknown; event: unknown }) => boolean
    >;
    this.gaugeGuards =
      name === 'listener'
        ? Object.keys(guards)
            .sort()
            .map((g) => guards[g]!)
        : [];
  }

  /** Returns the id of the machine's initial snapshot (computed by XState once). */
  initial(): number {
    if (this.initialId < 0)
      this.initialId = this.intern(
        this.machine.getInitialSnapshot(this.steps.scope, { config: this.config }),
      );
    return this.initialId;
  }

  /**
   * Returns the key of `event` in the table of snapshot `id`: the event's type, then its params
   * (paramsKey), so two keys are equal only for equal events; an event with no params is keyed by
   * its type alone. The listener's gauges (LISTENER_GAUGES) are read by its guards only, so two
   * listener events that differ only in gauges on which every guard agrees take the same
   * transitions with the same effects: the key holds the guards' outcomes in place of the gauges,
   * and the table stays finite however the counters move.
   */
  private keyOf(id: number, event: { type: string }): string {
    const listener = this.gaugeGuards.length > 0;
    let key = event.type + paramsKey(event, listener ? LISTENER_GAUGE_SET : null);
    if (listener) {
      const args = { context: this.snaps[id]!.context, event };
      key += '|';
      for (const guard of this.gaugeGuards) key += guard(args) ? '1' : '0';
    }
    return key;
  }

  /** Returns the next snapshot id, the effects and the transitions for `event` in snapshot `id`. */
  step(id: number, event: { type: string }): CachedStep {
    if (!this.memoise) return this.compute(id, event);
    const key = this.keyOf(id, event);
    let table = this.tables[id];
    if (table === undefined) {
      table = new Map();
      this.tables[id] = table;
    }
    const hit = table.get(key);
    if (hit) return hit;
    const answer = this.compute(id, event);
    if (table.size >= TABLE_LIMIT) table.clear();
    table.set(key, answer);
    return answer;
  }

  /**
   * Returns XState's answer for `event` in snapshot `id`, computed now and not memoised: what
   * `step` returns on a miss. Interns the snapshot it reaches.
   */
  compute(id: number, event: { type: string }): CachedStep {
    const snap = this.snaps[id]!;
    if (this.machine.getTransitionData(snap as never, event as never).length === 0) {
      // The machine does not accept this event in this state: nothing happens.
      return { next: id, effects: [], transitions: [] };
    }
    const micro = this.steps.run(this.machine, snap, event);
    const effects: Effect[] = [];
    const transitions: string[] = [];
    let prev = snap;
    micro.forEach(([next, actions], i) => {
      transitions.push(
        i === 0 ? takenTransition(this.machine, prev, event) : takenAlways(this.machine, prev, next),
      );
      for (const a of actions) {
        if (typeof a.type !== 'string' || a.type.startsWith('xstate.')) continue;
        const effect: Effect =
          a.params === undefined
            ? { type: a.type as EffectName }
            : { type: a.type as EffectName, params: a.params as Record<string, unknown> };
        effects.push(...expandEffect(this.config, effect));
      }
      prev = next;
    });
    return { next: micro.length === 0 ? id : this.intern(prev), effects, transitions };
  }

  /** Returns the dotted state value of snapshot `id`. */
  value(id: number): string {
    return this.values[id]!;
  }

  private intern(snap: AnyMachineSnapshot): number {
    const { config: _config, ...rest } = snap.context as Record<string, unknown>;
    const key = `${JSON.stringify(snap.value)}${JSON.stringify(rest)}`;
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const id = this.snaps.length;
    this.snaps.push(snap);
    this.values.push(dotted(snap.value));
    this.ids.set(key, id);
    return id;
  }
}

/** One microstep of a macrostep: the snapshot it reached and the actions it executed, in order. */
export type Microstep = [AnyMachineSnapshot, { type: unknown; params?: unknown }[]];

/**
 * Runs XState's macrostep of a machine in one actor scope built once, and returns its microsteps,
 * as XState's getMicrosteps does. getMicrosteps builds a throwaway actor per call (an Actor, its
 * system, and the initial snapshot the Actor computes eagerly): half of an uncached step's time.
 * The scope here is inert like the one getMicrosteps builds: actions are recorded, never executed;
 * nothing is deferred, spawned or emitted (these machines spawn no child and have no delayed
 * transition). XState reports each microstep through the system's inspection hook after running
 * its actions, so the actions recorded since the previous report are that microstep's. That hook
 * (`system._sendInspectionEvent`, what XState's `inspect` option is built on) is internal to
 * XState 5: should a later version rename it, no microstep would be recorded, and the test that
 * compares this recorder with getMicrosteps on every step the model checker asks would fail.
 * Not reentrant: one run at a time (a machine step never starts another).
 */
export class MicrostepRecorder {
  private actions: Microstep[1] = [];
  private microsteps: Microstep[] = [];
  /** The inert scope; MachineRunner.initial computes its machine's initial snapshot in it too. */
  readonly scope: AnyActorScope;

  constructor() {
    const onAction = (action: { type: unknown; params?: unknown }): void => {
      this.actions.push(action);
    };
    const onInspect = (e: InspectionEvent): void => {
      if (e.type !== '@xstate.microstep') return;
      this.microsteps.push([e.snapshot as AnyMachineSnapshot, this.actions]);
      this.actions = [];
    };
    this.scope = {
      self: {},
      id: '',
      sessionId: '',
      logger: () => {},
      defer: () => {},
      emit: () => {},
      stopChild: () => {},
      system: { _sendInspectionEvent: onInspect },
      actionExecutor: onAction,
    } as unknown as AnyActorScope;
  }

  /** Returns the microsteps of `event` in `snap`, each with its actions, as getMicrosteps would. */
  run(machine: AnyStateMachine, snap: AnyMachineSnapshot, event: { type: string }): Microstep[] {
    this.actions = [];
    this.microsteps = [];
    machine.transition(snap, event as never, this.scope);
    const out = this.microsteps;
    this.microsteps = [];
    return out;
  }
}

/** Returns a state value as a dotted path: 'handshake.proxyHeader'. */
export function dotted(value: unknown): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value as Record<string, unknown>)[0]!;
  return `${k}.${dotted(v)}`;
}

function takenTransition(
  machine: AnyStateMachine,
  snap: AnyMachineSnapshot,
  event: { type: string },
): string {
  const chosen = machine.getTransitionData(snap as never, event as never)[0];
  if (!chosen) return `${machine.id}|${event.type}|?`;
  const node = chosen.source as AnyStateNode;
  const rank = (node.transitions.get(chosen.eventType) ?? []).indexOf(chosen);
  return transitionId(node.id, chosen.eventType, rank);
}

function takenAlways(machine: AnyStateMachine, prev: AnyMachineSnapshot, _next: AnyMachineSnapshot): string {
  // The eventless transition taken is the first candidate of the entered state whose guard holds,
  // evaluated on the snapshot it was taken from, as XState does.
  const node = machine.getStateNodeById(`${machine.id}.${dotted(prev.value)}`) as AnyStateNode;
  const candidates = node.always ?? [];
  const guards = machine.implementations.guards as Record<string, (a: unknown, p: unknown) => boolean>;
  const rank = candidates.findIndex((t) => {
    if (!t.guard) return true;
    const name = typeof t.guard === 'string' ? t.guard : (t.guard as { type: string }).type;
    return guards[name]!({ context: prev.context, event: { type: '' } }, undefined);
  });
  return transitionId(node.id, 'always', rank);
}

/**
 * The three machines for one configuration, with the routing of their messages.
 * Requires a complete ModelConfig. Owns nothing outside itself: a World it steps belongs to the
 * caller, and effects go to the caller's Host.
 */
export class Composition {
  readonly runners: Record<MachineName, MachineRunner>;

  constructor(
    readonly config: ModelConfig,
    private readonly defect: Defect | null = null,
    /** false: XState computes every machine step; no step is read from a table (an anchor). */
    memoise = true,
  ) {
    const build = (name: MachineName): MachineRunner => {
      const base = (defect?.machines?.[name] ?? MACHINES[name]) as AnyStateMachine;
      const overrides = defect?.guards?.[name];
      const machine = overrides ? base.provide({ guards: overrides as never }) : base;
      return new MachineRunner(name, machine as AnyStateMachine, config, memoise);
    };
    this.runners = {
      listener: build('listener'),
      connection: build('connection'),
      session: build('session'),
    };
  }

  /** Returns a World with the listener ready and no connection. Pure. */
  initialWorld(): World {
    return { listener: this.runners.listener.initial(), conns: new Map() };
  }

  /**
   * Adds connection `conn` to `world`, in the listen backlog (connection pending, session absent).
   * Requires that `conn` is not in the world yet.
   */
  addConnection(world: World, conn: number): void {
    world.conns.set(conn, {
      connection: this.runners.connection.initial(),
      session: this.runners.session.initial(),
    });
  }

  /** Returns the dotted state of `machine` (of connection `conn`, unless the listener) in `world`. */
  stateOf(world: World, machine: MachineName, conn: number | null = null): string {
    if (machine === 'listener') return this.runners.listener.value(world.listener);
    const slots = world.conns.get(conn!);
    if (!slots) throw new Error(`no connection ${conn}`);
    return this.runners[machine].value(slots[machine]);
  }

  /** Returns the context of `machine` of connection `conn` (or the listener's) in `world`. */
  contextOf(world: World, machine: MachineName, conn: number | null = null): Record<string, unknown> {
    const id = machine === 'listener' ? world.listener : world.conns.get(conn!)![machine];
    return this.runners[machine].snaps[id]!.context as Record<string, unknown>;
  }

  /**
   * Delivers `event` to `machine` (of connection `conn`), commits its new snapshot into `world`,
   * then executes its effects through `host`, routing the messages among them to the other
   * machines depth first. Returns nothing; `world` is updated in place. An event the machine does
   * not accept in its state changes nothing and emits nothing.
   */
  dispatch(
    world: World,
    host: Host,
    machine: MachineName,
    conn: number | null,
    event: { type: string } & Record<string, unknown>,
    inputs: StepInputs = NO_FAILURE,
  ): void {
    const runner = this.runners[machine];
    const slots = conn === null ? undefined : world.conns.get(conn);
    if (machine !== 'listener' && slots === undefined) throw new Error(`no connection ${conn}`);
    const from = machine === 'listener' ? world.listener : slots![machine as 'connection' | 'session'];
    const answer = runner.step(from, event);
    const transitions = answer.transitions;
    if (transitions.length === 0) return;
    const next = answer.next;
    if (machine === 'listener') world.listener = next;
    else slots![machine as 'connection' | 'session'] = next;
    let effects = answer.effects;
    const rewrite = this.defect?.rewrite;
    if (host.record !== undefined || rewrite !== undefined) {
      const fromValue = runner.values[from]!;
      const toValue = runner.values[next]!;
      if (rewrite !== undefined)
        effects = rewrite({ machine, conn, event, from: fromValue, to: toValue, transitions }, effects);
      host.record?.({ machine, conn, event, from: fromValue, to: toValue, transitions, effects });
    }
    const origin: Origin = { machine, conn };
    for (let i = 0; i < effects.length; i++) {
      const effect = effects[i]!;
      host.execute(effect, origin);
      if (MESSAGE_EFFECTS.has(effect.type)) this.route(world, host, effect, origin, inputs);
    }
  }

  private route(world: World, host: Host, effect: Effect, origin: Origin, inputs: StepInputs): void {
    const messages = messagesFor(effect, origin, inputs, host, this.accepting);
    for (const m of messages) this.dispatch(world, host, m.machine, m.conn, m.event, inputs);
  }

  /** The connection listener_accept is taking from the backlog during the current accept. */
  private accepting: number | null = null;

  /**
   * listener_accept for connection `conn`, the oldest one in the backlog: the listener decides
   * whether to accept it (or to become full or limited, leaving it in the backlog), and if it does,
   * session_accept runs for it. Requires `conn` to be in `world` and pending.
   */
  acceptAttempt(world: World, host: Host, conn: number, inputs: StepInputs, acceptError = false): void {
    this.accepting = conn;
    try {
      this.dispatch(
        world,
        host,
        'listener',
        null,
        { type: 'ACCEPT_ATTEMPT', acceptError, ...host.gauges() },
        inputs,
      );
    } finally {
      this.accepting = null;
    }
  }
}

/**
 * The effects that are messages: those messagesFor turns into events for other machines. Every
 * other effect routes nowhere (tested against messagesFor over the whole effect vocabulary).
 */
export const MESSAGE_EFFECTS: ReadonlySet<string> = new Set<EffectName>([
  'sessionAccept',
  'acceptReturned',
  'connStartHandshake',
  'connNoHandshake',
  'connTimeout',
  'connClose',
  'handshakeEnded',
  'resumeListener',
  'dequeueGlobal',
  'dequeueFrontend',
]);

/** A message: an effect of one machine delivered as an event to another machine. */
export interface Message {
  machine: MachineName;
  conn: number | null;
  event: { type: string } & Record<string, unknown>;
}

/**
 * Returns the messages effect `effect`, emitted by `origin`, stands for: the events the other
 * machines receive for it, in order. Returns an empty list for an effect that is not a message.
 * `host` is read for the listener's gauges and for sslconns at the moment of routing (after the
 * effects before it ran); `accepting` is the connection listener_accept is taking, for sessionAccept. Pure otherwise.
 */
export function messagesFor(
  effect: Effect,
  origin: Origin,
  inputs: StepInputs,
  host: Pick<Host, 'gauges' | 'sslconns'>,
  accepting: number | null,
): Message[] {
  const conn = origin.conn;
  switch (effect.type) {
    case 'sessionAccept':
      // listener_accept → l->accept(): the connection is the one being taken from the backlog.
      return [
        { machine: 'connection', conn: accepting, event: { type: 'ACCEPT' } },
        {
          machine: 'session',
          conn: accepting,
          event: {
            type: 'SESSION_ACCEPT',
            src: inputs.src,
            fail: inputs.acceptFail,
            sslconns: host.sslconns(),
          },
        },
      ];
    case 'acceptReturned':
      return [
        {
          machine: 'listener',
          conn: null,
          event: {
            type: 'ACCEPT_RETURNED',
            ret: (effect.params as { ret: -1 | 0 | 1 }).ret,
            ...host.gauges(),
          },
        },
      ];
    case 'connStartHandshake':
      return [{ machine: 'connection', conn, event: { type: 'START_HANDSHAKE' } }];
    case 'connNoHandshake':
      return [{ machine: 'connection', conn, event: { type: 'NO_HANDSHAKE' } }];
    case 'connTimeout':
      return [{ machine: 'connection', conn, event: { type: 'TIMEOUT' } }];
    case 'connClose':
      return [{ machine: 'connection', conn, event: { type: 'CLOSE' } }];
    case 'handshakeEnded':
      return [
        {
          machine: 'session',
          conn,
          event: {
            type: 'HANDSHAKE_END',
            error: (effect.params as { error: boolean }).error,
            code: (effect.params as { code: ErrCode }).code,
            fail: inputs.completeFail,
          },
        },
      ];
    case 'resumeListener':
      return [{ machine: 'listener', conn: null, event: { type: 'RESUME', ...host.gauges() } }];
    case 'dequeueGlobal':
      return [{ machine: 'listener', conn: null, event: { type: 'DEQUEUE_GLOBAL', ...host.gauges() } }];
    case 'dequeueFrontend':
      return [{ machine: 'listener', conn: null, event: { type: 'DEQUEUE_FRONTEND', ...host.gauges() } }];
    default:
      return [];
  }
}
