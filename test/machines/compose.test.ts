/**
 * The composition: how one event becomes machine steps and effects. A small Host records what the
 * composition tells it (each step, each effect, and the sender's state when the effect runs) and
 * keeps real counters, so the listener's guards see what they would see in the model.
 */
import { getMicrosteps, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { describe, expect, it, vi } from 'vitest';
import {
  Composition,
  MACHINES,
  MachineRunner,
  MESSAGE_EFFECTS,
  MicrostepRecorder,
  messagesFor,
  paramsKey,
  NO_FAILURE,
  type Defect,
  type Host,
  type Origin,
  type TransitionRecord,
  type World,
} from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { LISTENER_GAUGES } from '../../machines/listener.machine.ts';
import { applyCounterEffect, listenerGauges, zeroCounters } from '../../machines/counters.ts';
import { EFFECTS, type Effect, type EffectName } from '../../machines/effects.ts';
import { MUTANTS } from '../../machines/mutants.ts';
import { CONFIG_SPACE } from '../../properties/bounds.ts';
import { explore } from '../../properties/explore.ts';

/** One line of what the host saw: a machine step, or an effect with its sender's state at that moment. */
type Seen =
  | { kind: 'step'; machine: string; from: string; to: string; event: string; effects: number }
  | { kind: 'effect'; machine: string; type: string; senderState: string };

/**
 * A Host that applies counter effects to real counters and records every step and effect, with
 * the state the sender is in when each effect runs.
 */
class RecordingHost implements Host {
  readonly seen: Seen[] = [];
  readonly records: TransitionRecord[] = [];
  readonly counters = zeroCounters();

  constructor(
    private readonly composition: Composition,
    private readonly world: World,
    private readonly config: ModelConfig,
  ) {}

  gauges() {
    return listenerGauges(this.counters, this.config);
  }

  sslconns(): number {
    return this.counters.sslconns;
  }

  record(r: TransitionRecord): void {
    this.records.push(r);
    this.seen.push({
      kind: 'step',
      machine: r.machine,
      from: r.from,
      to: r.to,
      event: r.event.type,
      effects: r.effects.length,
    });
  }

  execute(effect: Effect, origin: Origin): void {
    applyCounterEffect(this.counters, effect.type, this.config);
    this.seen.push({
      kind: 'effect',
      machine: origin.machine,
      type: effect.type,
      senderState: this.composition.stateOf(this.world, origin.machine, origin.conn),
    });
  }
}

/** A composition with `n` pending connections and a recording host, under `partial` config. */
function setup(partial: Partial<ModelConfig> = {}, defect: Defect | null = null, n = 1) {
  const config = makeConfig(partial);
  const composition = new Composition(config, defect);
  const world = composition.initialWorld();
  for (let i = 0; i < n; i++) composition.addConnection(world, i);
  const host = new RecordingHost(composition, world, config);
  return { config, composition, world, host };
}

/** Index of the first line of `seen` matching `pred`; fails the test if there is none. */
function indexOf(seen: Seen[], pred: (s: Seen) => boolean): number {
  const i = seen.findIndex(pred);
  expect(i, 'expected line not seen').toBeGreaterThanOrEqual(0);
  return i;
}
const step = (machine: string, from: string, to: string) => (s: Seen) =>
  s.kind === 'step' && s.machine === machine && s.from === from && s.to === to;
const effect = (machine: string, type: string) => (s: Seen) =>
  s.kind === 'effect' && s.machine === machine && s.type === type;

describe('the composition', () => {
  it('routes messages depth first: a message is handled completely before the sender runs its next effect', () => {
    const { composition, world, host } = setup({ acceptProxy: false });
    composition.acceptAttempt(world, host, 0, NO_FAILURE);
    const seen = host.seen;
    // sessionAccept (the listener's last effect) starts the connection, then session_accept.
    const sessionAccept = indexOf(seen, effect('listener', 'sessionAccept'));
    expect(seen[sessionAccept + 1]).toMatchObject({ kind: 'step', machine: 'connection', to: 'accepted' });
    expect(seen[sessionAccept + 2]).toMatchObject({ kind: 'step', machine: 'session', to: 'initialized' });
    // connNoHandshake moves the connection before the session's next effect runs.
    const noHandshake = indexOf(seen, effect('session', 'connNoHandshake'));
    expect(seen[noHandshake + 1]).toMatchObject({
      kind: 'step',
      machine: 'connection',
      from: 'accepted',
      to: 'ready',
    });
    expect(seen[noHandshake + 2]).toMatchObject({ kind: 'effect', machine: 'session', type: 'listAdd' });
    // acceptReturned reaches the listener while session_accept's caller (the listener's step) is still on the stack.
    const returned = indexOf(seen, effect('session', 'acceptReturned'));
    expect(seen[returned + 1]).toMatchObject({ kind: 'step', machine: 'listener', event: 'ACCEPT_RETURNED' });
    expect(seen.at(-1)).toMatchObject({ kind: 'step', machine: 'listener', event: 'ACCEPT_RETURNED' });
  });

  it("commits the sender's snapshot before its effects run", () => {
    const { composition, world, host } = setup({ acceptProxy: true });
    composition.acceptAttempt(world, host, 0, NO_FAILURE);
    composition.dispatch(world, host, 'connection', 0, { type: 'CLIENT_CLOSE' });
    // Every step's first effect sees its sender already in the step's target state.
    let checked = 0;
    host.seen.forEach((s, i) => {
      const next = host.seen[i + 1];
      if (s.kind === 'step' && s.effects > 0) {
        expect(next).toMatchObject({ kind: 'effect', machine: s.machine, senderState: s.to });
        checked++;
      }
    });
    expect(checked).toBeGreaterThanOrEqual(4);
    // The connection's handshakeEnded kills the session, whose connClose comes back to the
    // connection: it is accepted only because the connection is already committed in `error`.
    expect(indexOf(host.seen, step('connection', 'handshake.proxyHeader', 'error'))).toBeLessThan(
      indexOf(host.seen, step('connection', 'error', 'closed')),
    );
    expect(composition.stateOf(world, 'connection', 0)).toBe('closed');
    expect(composition.stateOf(world, 'session', 0)).toBe('freed');
  });

  it('changes nothing and runs nothing for an event the machine does not accept', () => {
    const { composition, world, host } = setup();
    composition.acceptAttempt(world, host, 0, NO_FAILURE);
    const before = structuredClone(world);
    const seenBefore = host.seen.length;
    composition.dispatch(world, host, 'session', 0, { type: 'SESSION_END' });
    composition.dispatch(world, host, 'listener', null, { type: 'DEQUEUE_GLOBAL', ...host.gauges() });
    composition.dispatch(world, host, 'connection', 0, { type: 'TLS_OK' });
    expect(world).toEqual(before);
    expect(host.seen.length).toBe(seenBefore);
  });

  it("applies a Defect's guard override to the machine it names", () => {
    const plain = setup({ acceptProxy: true });
    plain.composition.acceptAttempt(plain.world, plain.host, 0, NO_FAILURE);
    expect(plain.composition.stateOf(plain.world, 'session', 0)).toBe('embryonic');

    const defect: Defect = { guards: { session: { handshakePending: () => false } } };
    const broken = setup({ acceptProxy: true }, defect);
    broken.composition.acceptAttempt(broken.world, broken.host, 0, NO_FAILURE);
    expect(broken.composition.stateOf(broken.world, 'session', 0)).toBe('initialized');
  });

  it("applies a Defect's rewrite to the effects the host records and executes", () => {
    const calls: { machine: string; transitions: string[] }[] = [];
    const defect: Defect = {
      rewrite(record, effects) {
        calls.push({ machine: record.machine, transitions: record.transitions });
        return record.machine === 'session' ? effects.filter((x) => x.type !== 'cumConnInc') : effects;
      },
    };
    const { composition, world, host } = setup({ acceptProxy: true }, defect);
    composition.acceptAttempt(world, host, 0, NO_FAILURE);
    expect(host.counters.cumConn).toBe(0);
    expect(host.counters.feconn).toBe(1);
    const session = host.records.find((r) => r.machine === 'session')!;
    expect(session.effects.map((x) => x.type)).not.toContain('cumConnInc');
    expect(calls).toContainEqual({ machine: 'session', transitions: ['session.absent|SESSION_ACCEPT|10'] });
  });

  it('leaves the connection in the backlog and the session absent when the listener limits itself instead of accepting', () => {
    const { composition, world, host } = setup({}, null, 1);
    composition.acceptAttempt(world, host, 0, NO_FAILURE, true);
    expect(composition.stateOf(world, 'listener')).toBe('limited.onGlobalQueue');
    expect(composition.stateOf(world, 'connection', 0)).toBe('pending');
    expect(composition.stateOf(world, 'session', 0)).toBe('absent');
  });
});

describe('MachineRunner', () => {
  it('returns the same snapshot id, no effect and no transition for an event the state does not accept', () => {
    const runner = new MachineRunner('session', MACHINES.session, makeConfig());
    const id = runner.initial();
    expect(runner.step(id, { type: 'SESSION_END' })).toEqual({ next: id, effects: [], transitions: [] });
  });

  it('interns equal snapshots under one id, so the same step from equal states lands on the same id', () => {
    const runner = new MachineRunner('connection', MACHINES.connection, makeConfig());
    const a = runner.step(runner.initial(), { type: 'ACCEPT' });
    const b = runner.step(runner.initial(), { type: 'ACCEPT' });
    expect(b.next).toBe(a.next);
    expect(runner.value(a.next)).toBe('accepted');
  });

  it("answers a listener event from its guards' outcomes exactly as XState answers the event itself", () => {
    // Listener events are memoised on the guards' outcomes instead of the gauges: over random gauges
    // around every limit, in every listener state, the memoised answer is XState's answer.
    const configs = [
      makeConfig(),
      makeConfig({ feMaxconn: 3, bindMaxconn: 2, globalMaxconn: 4, maxconnrate: 2, rateLimitSessions: 1 }),
      makeConfig({ unlimited: true, maxconnrate: 1 }),
    ];
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const gauge = (): number => [0, 1, 2, 3, 4, 5, Infinity][rand(7)]!;
    const types = ['ACCEPT_ATTEMPT', 'ACCEPT_RETURNED', 'RESUME', 'DEQUEUE_GLOBAL', 'DEQUEUE_FRONTEND'];
    let compared = 0;
    const statesSeen = new Set<string>();
    for (const config of configs) {
      const runner = new MachineRunner('listener', MACHINES.listener, config);
      let id = runner.initial();
      for (let i = 0; i < 3000; i++) {
        const type = types[rand(types.length)]!;
        const event = {
          type,
          ...(type === 'ACCEPT_ATTEMPT' ? { acceptError: rand(4) === 0 } : {}),
          ...(type === 'ACCEPT_RETURNED' ? { ret: [-1, 0, 1][rand(3)] } : {}),
          nbconn: gauge(),
          actconn: gauge(),
          feconn: gauge(),
          connRateRemain: gauge() - 1,
          sessRateRemain: gauge() - 1,
        };
        const memo = runner.step(id, event);
        const fresh = runner.compute(id, event);
        expect(memo).toEqual(fresh);
        statesSeen.add(runner.value(id));
        compared++;
        id = memo.next;
      }
    }
    expect(compared).toBe(9000);
    expect([...statesSeen].sort()).toEqual([
      'full',
      'limited.onFrontendQueue',
      'limited.onGlobalQueue',
      'ready',
    ]);
  });

  it('names every gauge of the listener in LISTENER_GAUGES, the fields its memo key leaves out', () => {
    expect([...LISTENER_GAUGES].sort()).toEqual(
      Object.keys(listenerGauges(zeroCounters(), makeConfig())).sort(),
    );
  });

  it('routes exactly the effects named in MESSAGE_EFFECTS: every other effect is no message', () => {
    const gauges = { gauges: () => listenerGauges(zeroCounters(), makeConfig()), sslconns: () => 0 };
    const params = { ret: 1, error: false, queue: 'global', ms: 0 };
    const routed = (Object.keys(EFFECTS) as EffectName[]).filter(
      (type) =>
        messagesFor({ type, params }, { machine: 'session', conn: 0 }, NO_FAILURE, gauges, 0).length > 0,
    );
    expect(routed.sort()).toEqual([...MESSAGE_EFFECTS].sort());
  });

  it('keys event params so that only equal params give equal keys', () => {
    const keys = [
      { type: 'E' },
      { type: 'E', a: '1' },
      { type: 'E', a: 1 },
      { type: 'E', a: true },
      { type: 'E', a: 'true' },
      { type: 'E', a: null },
      { type: 'E', a: 'x|b#1' }, // a string that looks like two fields
      { type: 'E', a: 'x', b: 1 },
      { type: 'E', a: { n: 1 } },
      { type: 'E', a: { n: '1' } },
    ].map((e) => paramsKey(e));
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys[0]).toBe('');
    expect(paramsKey({ type: 'E', a: 1, g: 5 }, new Set(['g']))).toBe(
      paramsKey({ type: 'F', a: 1, g: 6 }, new Set(['g'])),
    );
  });

  it("computes each uncached step's microsteps exactly as XState's getMicrosteps does", () => {
    // Every (snapshot, event) the reference engine asks XState about while exploring two
    // connections in every configuration of the space, and under every mutant, is asked again of
    // MicrostepRecorder and of getMicrosteps (which builds a fresh actor per call): the same
    // snapshots, in the same order, each with the same actions.
    const asked: [AnyStateMachine, AnyMachineSnapshot, { type: string }][] = [];
    const original = MachineRunner.prototype.compute;
    const spy = vi.spyOn(MachineRunner.prototype, 'compute').mockImplementation(function (
      this: MachineRunner,
      id: number,
      event: { type: string },
    ) {
      asked.push([this.machine, this.snaps[id]!, event]);
      return original.call(this, id, event);
    });
    try {
      for (const { config } of CONFIG_SPACE) explore({ config, connections: 2, engine: 'xstate' });
      const config = makeConfig();
      for (const mutant of MUTANTS)
        explore({ config, connections: 2, engine: 'xstate', defect: mutant.defect(config) });
    } finally {
      spy.mockRestore();
    }
    const shape = (steps: [AnyMachineSnapshot, { type: unknown; params?: unknown }[]][]): unknown =>
      steps.map(([snap, actions]) => ({
        value: snap.value,
        context: snap.context,
        status: snap.status,
        actions: actions.map((a) => ({ type: a.type, params: a.params })),
      }));
    const recorder = new MicrostepRecorder();
    for (const [machine, snap, event] of asked)
      expect(shape(recorder.run(machine, snap, event))).toEqual(
        shape(getMicrosteps(machine, snap, event as never)),
      );
    expect(asked.length).toBeGreaterThan(400);
    expect(new Set(asked.map(([m]) => m.id))).toEqual(new Set(['listener', 'connection', 'session']));
  });
});
