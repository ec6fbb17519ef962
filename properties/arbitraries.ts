/**
 * Random runs of the composed model with fast-check: arbitraries of configurations and of system
 * events, one fc.Command per event, and the property that every invariant holds after every
 * command. They reach what the exhaustive exploration cannot: more connections (6 to 8), longer
 * runs, every error code, and configurations outside the bounded space (limits of 1 to 4, any
 * combination of settings). fast-check shrinks a failing run to a short list of commands.
 *
 * A command names an event without its connection, and a pick: it applies to the pick-th of the
 * connections for which the event is enabled (modulo their number). So a command is enabled as
 * soon as any connection can take its event, and runs stay deep while shrinking stays meaningful.
 */
import fc from 'fast-check';
import type { Defect } from '../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../machines/config.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../machines/system.ts';
import { ALL_CODES_BOUNDS } from './bounds.ts';
import { alphabetOf, describeEvent } from './explore.ts';
import { checkInvariants, INVARIANTS, viewOf, type Invariant } from './invariants.ts';

/**
 * Returns an arbitrary of configurations: every setting of ModelConfig over small values (limits of
 * 1 to 4, timeout client and client-hs set or not, every profile; a 2.x bind without maxconn of its
 * own, which 1.5-dev12 cannot have: there it takes the frontend's). Pure.
 */
export function configArb(): fc.Arbitrary<ModelConfig> {
  return configFieldsArb().map((c) =>
    c.bindMaxconn === null && c.profile === 'dev12' ? { ...c, bindMaxconn: c.feMaxconn } : c,
  );
}

/** configArb's fields, drawn independently. Pure. */
function configFieldsArb(): fc.Arbitrary<ModelConfig> {
  return fc.record({
    profile: fc.constantFrom('dev12' as const, '2.6' as const, '2.9' as const),
    mode: fc.constantFrom('tcp' as const, 'http' as const),
    acceptProxy: fc.boolean(),
    ssl: fc.boolean(),
    timeoutClient: fc.constantFrom(300, null),
    timeoutClientHs: fc.constantFrom(null, 100),
    feMaxconn: fc.integer({ min: 1, max: 4 }),
    bindMaxconn: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null, freq: 4 }),
    globalMaxconn: fc.integer({ min: 1, max: 4 }),
    maxconnrate: fc.constantFrom(null, 2, 5),
    rateLimitSessions: fc.constantFrom(null, 1, 3),
    maxsslconn: fc.constantFrom(null, 1, 2),
    unlimited: fc.oneof(
      { arbitrary: fc.constant(false), weight: 9 },
      { arbitrary: fc.constant(true), weight: 1 },
    ),
    logging: fc.boolean(),
    dontlognull: fc.boolean(),
  });
}

/** A system event without its connection: the connection is chosen when the command runs. */
export type EventTemplate = { type: SystemEvent['type'] } & Record<string, unknown>;

/**
 * Every event template: the alphabet of the explorer with every error code, for a configuration
 * with and one without a handshake (so that the accept failures inside session_complete are in).
 */
export const EVENT_TEMPLATES: readonly EventTemplate[] = (() => {
  const seen = new Map<string, EventTemplate>();
  for (const config of [
    makeConfig({ mode: 'http', acceptProxy: true, ssl: true }),
    makeConfig({ mode: 'http', acceptProxy: false, ssl: false }),
  ])
    for (const e of alphabetOf(config, 1, ALL_CODES_BOUNDS)) {
      const { conn: _conn, ...template } = e as EventTemplate & { conn?: number };
      seen.set(JSON.stringify(template), template);
    }
  return [...seen.values()];
})();

/** The model a run drives, with what the run did. */
export interface RunState {
  model: SystemModel;
  state: SystemState;
  trace: SystemEvent[]; // the events applied, with their connections
  invariants: readonly Invariant[];
}

/** An invariant that failed during a random run, with the events that led to it. */
export class InvariantBroken extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
    readonly trace: readonly SystemEvent[],
  ) {
    super(`${invariant}: ${detail}\n  after: ${trace.map(describeEvent).join(', ')}`);
  }
}

/** One command: apply event `template` to the pick-th connection that can take it. */
export class SystemCommand implements fc.Command<RunState, RunState> {
  constructor(
    readonly template: EventTemplate,
    readonly pick: number,
  ) {}

  /** Returns the event to apply in `m`, or null if no connection can take it. Pure. */
  resolve(m: RunState): SystemEvent | null {
    if (!needsConnection(this.template)) {
      const e = this.template as SystemEvent;
      return m.model.isEnabled(m.state, e) ? e : null;
    }
    const enabled: SystemEvent[] = [];
    for (let conn = 0; conn < m.model.n; conn++) {
      const e = { ...this.template, conn } as SystemEvent;
      if (m.model.isEnabled(m.state, e)) enabled.push(e);
    }
    return enabled.length === 0 ? null : enabled[this.pick % enabled.length]!;
  }

  check(m: Readonly<RunState>): boolean {
    return this.resolve(m) !== null;
  }

  /** Applies the event and checks every invariant; throws InvariantBroken when one fails. */
  run(m: RunState): void {
    const event = this.resolve(m)!;
    const r = m.model.step(m.state, event)!;
    m.trace.push(event);
    const ctx = {
      model: m.model,
      config: m.model.config,
      next: viewOf(m.model, r.state),
      prev: viewOf(m.model, m.state),
      event,
      records: r.records,
    };
    const broken = checkInvariants(ctx, m.invariants);
    m.state = r.state;
    if (broken.length > 0) throw new InvariantBroken(broken[0]!.invariant, broken[0]!.message, m.trace);
  }

  toString(): string {
    return `${describeEvent(this.template as SystemEvent)}${needsConnection(this.template) ? ` @${this.pick}` : ''}`;
  }
}

function needsConnection(t: EventTemplate): boolean {
  return !['ACCEPT', 'QUEUE_TASK', 'RATE_PERIOD'].includes(t.type);
}

/** The commands of a run: up to `maxCommands` of them, over every event template. */
export function commandsArb(maxCommands: number): fc.Arbitrary<Iterable<fc.Command<RunState, RunState>>> {
  return fc.commands(
    EVENT_TEMPLATES.map((template) => fc.nat({ max: 7 }).map((pick) => new SystemCommand(template, pick))),
    { maxCommands, size: 'max' },
  );
}

/** How to run the random checks. */
export interface RandomCheckOptions {
  numRuns: number;
  maxCommands: number; //                  per run
  minConnections: number;
  maxConnections: number;
  seed?: number;
  defectFor?: (config: ModelConfig) => Defect | null; // a mutant switched into the model
  invariants?: readonly Invariant[];
}

/** What the random checks found. */
export interface RandomCheckResult {
  runs: number;
  steps: number; //     events applied over every run
  maxDepth: number; //  the most events applied in one run
  seconds: number;
  seed: number;
  failure: {
    invariant: string;
    message: string;
    events: SystemEvent[]; // the shrunk run, with its connections
    config: ModelConfig;
    connections: number;
    replay: string; //        fast-check's path, to replay with { seed, path }
  } | null;
}

/**
 * Runs `numRuns` random runs (random configuration, connections, commands) and checks every
 * invariant after every command, shrinking the first failure. Returns the counts and the shrunk
 * failure, if any. Deterministic for a given seed.
 */
export function randomCheck(opts: RandomCheckOptions): RandomCheckResult {
  const started = performance.now();
  const invariants = opts.invariants ?? INVARIANTS;
  const totals = { runs: 0, steps: 0, maxDepth: 0 };
  // The last run that broke an invariant: when fast-check stops shrinking, it is the shrunk one.
  const broken: {
    last: {
      invariant: string;
      message: string;
      events: SystemEvent[];
      config: ModelConfig;
      n: number;
    } | null;
  } = { last: null };
  const property = fc.property(
    configArb(),
    fc.integer({ min: opts.minConnections, max: opts.maxConnections }),
    commandsArb(opts.maxCommands),
    (config, n, commands) => {
      const run: RunState = {
        model: new SystemModel(config, n, opts.defectFor?.(config) ?? null),
        state: null as never,
        trace: [],
        invariants,
      };
      run.state = run.model.initial();
      try {
        fc.modelRun(() => ({ model: run, real: run }), commands);
      } catch (err) {
        if (err instanceof InvariantBroken)
          broken.last = { invariant: err.invariant, message: err.detail, events: [...err.trace], config, n };
        throw err;
      } finally {
        totals.runs++;
        totals.steps += run.trace.length;
        totals.maxDepth = Math.max(totals.maxDepth, run.trace.length);
      }
    },
  );
  const details = fc.check(property, {
    numRuns: opts.numRuns,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  const found = broken.last;
  return {
    ...totals,
    seconds: (performance.now() - started) / 1000,
    seed: details.seed,
    failure:
      details.failed && found
        ? {
            invariant: found.invariant,
            message: found.message,
            events: found.events,
            config: found.config,
            connections: found.n,
            replay: details.counterexamplePath ?? '',
          }
        : details.failed
          ? {
              invariant: 'crash',
              message: String((details.errorInstance as Error | null)?.message ?? details.errorInstance),
              events: [],
              config: makeConfig({}),
              connections: 0,
              replay: details.counterexamplePath ?? '',
            }
          : null,
  };
}
