/**
 * The lifecycle trace: what a host saw, one JSON object per line (NDJSON), format version 1.
 *
 * A host (the model, the reference proxy, or any port of the lifecycle) writes one line for each
 * environment event it feeds to the machines ("input"), and may add, as evidence, each machine
 * transition ("step"), each effect it executed ("effect") and snapshots of its counters
 * ("counters"). An optional first line ("header") names the configuration and says which kinds the
 * host logs exhaustively. properties/traceCheck.ts replays a trace through the composed machines.
 * docs/TRACE.md explains the format for porters; docs/trace.schema.json is `traceSchema()`.
 *
 * This module holds the types of a line, the pure functions that turn what a Host sees into lines
 * (the proxy's one-line switch to this format), a strict validator that never throws, and the
 * JSON Schema of a line, all derived from the same field tables so they cannot disagree.
 */
import { MACHINES, type Host, type MachineName, type Origin, type StepInputs } from './compose.ts';
import type { TransitionRecord } from './compose.ts';
import type { ModelConfig } from './config.ts';
import type { TlsRead } from './connection.machine.ts';
import { zeroCounters, type Counters } from './counters.ts';
import { EFFECTS, type Effect, type EffectName } from './effects.ts';
import { ERR_CODES } from './errCodes.ts';
import { listStates, listTransitions } from './introspect.ts';

/** The format version every line carries in `v`. */
export const TRACE_VERSION = 1;

/** A value a trace line may carry in params: JSON scalars only. */
export type JsonScalar = string | number | boolean | null;

/** The kinds a header may declare complete: every line of that kind is logged, none omitted. */
export type CompleteKind = 'step' | 'effect';

/** The fields every line has. */
interface LineBase {
  v: 1; //                             format version
  t: number; //                        ms since an origin of the host's choice; never decreases
  conn: number | null; //              connection id (an integer ≥ 0), or null for the listener
  x?: Record<string, unknown>; //      extensions: anything, ignored by the checker
}

/** Optional first line: the configuration the host runs and the kinds it logs exhaustively. */
export interface HeaderLine extends LineBase {
  kind: 'header';
  conn: null;
  config?: Partial<ModelConfig>; //    ModelConfig fields; the checker fills the rest from its defaults
  complete?: CompleteKind[]; //        kinds logged exhaustively: a missing line of that kind is a divergence
  implementation?: string; //          free text naming the emitter, e.g. "embryonic proxy 0.1.0"
}

/** An environment event fed to the machines: one call of acceptAttempt or dispatch by the host. */
export interface InputLine extends LineBase {
  kind: 'input';
  machine: MachineName | null; //      the machine the event is dispatched to; null for RATE_PERIOD
  name: InputName; //                  the event type as dispatched
  params?: Record<string, JsonScalar>; // the event's own params (never the listener's gauges); absent = unknown
  inputs?: Partial<StepInputs>; //     what the environment decided for this step; a missing field = unknown
}

/** One machine transition, as Host.record saw it. */
export interface StepLine extends LineBase {
  kind: 'step';
  machine: MachineName;
  event: { type: string } & Record<string, JsonScalar>; // the event the machine got; a missing param = not logged
  from: string; //                     dotted state before ('handshake.proxyHeader')
  to: string; //                       dotted state after
  transitions?: string[]; //           transition ids (introspect.ts); absent = not logged
}

/** One effect the host executed, as Host.execute saw it. */
export interface EffectLine extends LineBase {
  kind: 'effect';
  machine: MachineName; //             the machine that emitted it
  name: EffectName;
  params?: Record<string, JsonScalar>; // absent = not logged
}

/** A snapshot of the host's counters: any subset of the Counters fields. */
export interface CountersLine extends LineBase {
  kind: 'counters';
  conn: null;
  counters: Partial<Counters>;
}

/** One line of a trace. */
export type TraceLine = HeaderLine | InputLine | StepLine | EffectLine | CountersLine;

// ---------------------------------------------------------------------------------------------
// Field tables: the single description the validator, the schema and the checker share.
// ---------------------------------------------------------------------------------------------

/** The type of one field. `nullable` admits null as well. */
export type FieldType =
  | { type: 'boolean' }
  | { type: 'integer'; min?: number; nullable?: true }
  | { type: 'number'; min?: number; nullable?: true }
  | { type: 'string' }
  | { type: 'enum'; values: readonly (string | number)[] };

/** One field of an object: its type, whether it must be present, and what it means. */
export interface FieldSpec {
  of: FieldType;
  required?: true;
  doc: string;
}

/** The fields an object may have. Any other field is an error. */
export type Fields = Record<string, FieldSpec>;

const bool = (doc: string): FieldSpec => ({ of: { type: 'boolean' }, doc });
const oneOfValues = (values: readonly (string | number)[], doc: string): FieldSpec => ({
  of: { type: 'enum', values },
  doc,
});

const PROXY_CODES = [...Object.keys(ERR_CODES).filter((c) => c.startsWith('PRX_')), 'NONE'];
const SSL_CODES = Object.keys(ERR_CODES).filter((c) => c.startsWith('SSL_'));
const ERR_CODE_NAMES = Object.keys(ERR_CODES);
const TLS_READS: readonly TlsRead[] = ['none', 'partialRecord', 'wholeRecords'];

/** What session_accept's source rules can answer (session.machine.ts SourceClass). */
export const SOURCE_CLASSES = ['plain', 'monitor', 'denied'] as const;
/** Where session_accept can fail (session.machine.ts AcceptFailSite). */
export const ACCEPT_FAIL_SITES = [
  'none',
  'session',
  'fcntl',
  'task',
  'dataInit',
  'req',
  'rep',
  'txn',
  'accept',
] as const;
/** Where session_complete can fail after a handshake, or 'none'. */
export const COMPLETE_FAIL_SITES = ['none', 'req', 'rep', 'txn', 'accept'] as const;

/** StepInputs as a trace carries them: every field optional (absent = unknown). */
export const STEP_INPUT_FIELDS: Fields = {
  src: oneOfValues(SOURCE_CLASSES, 'what the source address matched at accept (acl.ts)'),
  acceptFail: oneOfValues(ACCEPT_FAIL_SITES, "where session_accept fails in this step, 'none' if nowhere"),
  completeFail: oneOfValues(
    COMPLETE_FAIL_SITES,
    "where session_complete fails after the handshake ends in this step, 'none' if nowhere",
  ),
};

/** One kind of environment input: the machine it goes to, its connection, its params. */
export interface InputSpec {
  machine: MachineName | null; //        null: no machine (RATE_PERIOD rotates the rate counters)
  conn: 'id' | 'null'; //                 whether the line names a connection
  params: Fields; //                      the event's own params (all optional: absent = unknown)
  uses: (keyof StepInputs)[]; //          the StepInputs fields that can change this input's outcome
  doc: string;
}

/** Every environment input a host feeds to the machines. */
export const INPUTS = {
  ACCEPT_ATTEMPT: {
    machine: 'listener',
    conn: 'id',
    params: { acceptError: bool('accept() failed for lack of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM)') },
    uses: ['src', 'acceptFail'],
    doc: 'listener_accept for the oldest connection in the backlog; conn is the id it gets if accepted (the same id may be offered again if it is not)',
  },
  PROXY_HEADER_OK: {
    machine: 'connection',
    conn: 'id',
    params: {},
    uses: ['completeFail'],
    doc: 'a valid PROXY header was consumed',
  },
  PROXY_HEADER_ERROR: {
    machine: 'connection',
    conn: 'id',
    params: {
      code: oneOfValues(
        PROXY_CODES,
        "the PROXY parser's error code (errCodes.ts); NONE: it failed without one",
      ),
    },
    uses: [],
    doc: 'the PROXY header reader failed',
  },
  TLS_OK: {
    machine: 'connection',
    conn: 'id',
    params: {},
    uses: ['completeFail'],
    doc: 'the TLS handshake completed',
  },
  TLS_ERROR: {
    machine: 'connection',
    conn: 'id',
    params: { code: oneOfValues(SSL_CODES, "the TLS handshake's error code (errCodes.ts)") },
    uses: [],
    doc: 'the TLS handshake failed',
  },
  CLIENT_CLOSE: {
    machine: 'connection',
    conn: 'id',
    params: {
      tlsRead: oneOfValues(
        TLS_READS,
        'what the client had sent of its TLS handshake: none (always before TLS starts), partialRecord (part of a record), wholeRecords (its ClientHello was processed)',
      ),
    },
    uses: [],
    doc: 'the client closed during the handshake (recv() == 0)',
  },
  CLIENT_RESET: {
    machine: 'connection',
    conn: 'id',
    params: {
      tlsRead: oneOfValues(
        TLS_READS,
        'what the client had sent of its TLS handshake: none (always before TLS starts), partialRecord (part of a record), wholeRecords (its ClientHello was processed)',
      ),
    },
    uses: [],
    doc: 'the client reset the connection during the handshake (recv() < 0)',
  },
  TASK_WAKEUP: {
    machine: 'session',
    conn: 'id',
    params: { timer: bool('woken by its timer (TASK_WOKEN_TIMER): the handshake deadline struck') },
    uses: [],
    doc: "the session's task was woken",
  },
  SESSION_END: {
    machine: 'session',
    conn: 'id',
    params: {
      writeTimeout: bool(
        "it ended on the client's write timeout (CF_WRITE_TIMEOUT on the rep channel): the client's side is NOLINGER",
      ),
    },
    uses: [],
    doc: 'process_session ended the stream of an initialized session',
  },
  DEQUEUE_GLOBAL: {
    machine: 'listener',
    conn: 'null',
    params: {},
    uses: [],
    doc: 'the global queue task fired',
  },
  DEQUEUE_FRONTEND: {
    machine: 'listener',
    conn: 'null',
    params: {},
    uses: [],
    doc: "the frontend's queue task fired",
  },
  RATE_PERIOD: {
    machine: null,
    conn: 'null',
    params: {},
    uses: [],
    doc: 'one second elapsed: the per-second rate counters restart from zero',
  },
} as const satisfies Record<string, InputSpec>;

/** The name of an environment input. */
export type InputName = keyof typeof INPUTS;

/** The counters the listener's guards read; the host adds them to listener events. */
export const GAUGE_FIELDS: Fields = {
  nbconn: { of: { type: 'integer' }, doc: 'l->nbconn when the event was sent' },
  actconn: { of: { type: 'integer' }, doc: 'actconn when the event was sent' },
  feconn: { of: { type: 'integer' }, doc: 'p->feconn when the event was sent' },
  connRateRemain: {
    of: { type: 'number', nullable: true },
    doc: 'budget left in global.conn_per_sec this second; null = no limit (Infinity)',
  },
  sessRateRemain: {
    of: { type: 'number', nullable: true },
    doc: 'budget left in p->fe_sess_per_sec this second; null = no limit (Infinity)',
  },
};

/** Every event each machine accepts, with its params (all optional in a step line). */
export const MACHINE_EVENTS: Record<MachineName, Record<string, Fields>> = {
  listener: {
    ACCEPT_ATTEMPT: { acceptError: bool('accept() failed'), ...GAUGE_FIELDS },
    ACCEPT_RETURNED: { ret: oneOfValues([-1, 0, 1], 'what session_accept returned'), ...GAUGE_FIELDS },
    RESUME: { ...GAUGE_FIELDS },
    DEQUEUE_GLOBAL: { ...GAUGE_FIELDS },
    DEQUEUE_FRONTEND: { ...GAUGE_FIELDS },
  },
  connection: {
    ACCEPT: {},
    START_HANDSHAKE: {},
    NO_HANDSHAKE: {},
    PROXY_HEADER_OK: {},
    PROXY_HEADER_ERROR: { code: oneOfValues(PROXY_CODES, "the PROXY parser's error code (NONE: none set)") },
    TLS_OK: {},
    TLS_ERROR: { code: oneOfValues(SSL_CODES, "the TLS handshake's error code") },
    CLIENT_CLOSE: { tlsRead: oneOfValues(TLS_READS, 'what the client had sent of its TLS handshake') },
    CLIENT_RESET: { tlsRead: oneOfValues(TLS_READS, 'what the client had sent of its TLS handshake') },
    TIMEOUT: {},
    CLOSE: {},
  },
  session: {
    SESSION_ACCEPT: {
      src: oneOfValues(SOURCE_CLASSES, 'what the source matched'),
      fail: oneOfValues(ACCEPT_FAIL_SITES, 'where session_accept fails'),
      sslconns: { of: { type: 'integer', min: 0 }, doc: 'global.sslconns when the event was sent' },
    },
    HANDSHAKE_END: {
      error: bool('CO_FL_ERROR is set'),
      code: oneOfValues(ERR_CODE_NAMES, "the connection's err_code (NONE without an error)"),
      fail: oneOfValues(COMPLETE_FAIL_SITES, 'where session_complete fails'),
    },
    TASK_WAKEUP: { timer: bool('TASK_WOKEN_TIMER') },
    SESSION_END: { writeTimeout: bool("the client's write timeout ended the stream") },
  },
};

const site = (doc: string): Fields => ({ site: { of: { type: 'string' }, required: true, doc } });
const bufField: Fields = {
  buf: {
    of: { type: 'enum', values: ['req', 'rep', 'txn'] },
    required: true,
    doc: 'which allocation: the req or rep channel, or the http txn',
  },
};

/** The params of the effects that take some (effects.ts EffectParams); every other effect takes none. */
export const EFFECT_PARAMS: Partial<Record<EffectName, Fields>> = {
  bufAlloc: bufField,
  bufFree: bufField,
  armDeadline: {
    ms: {
      of: { type: 'integer', min: 0, nullable: true },
      required: true,
      doc: 'the deadline in ms after now; null = none (TICK_ETERNITY)',
    },
  },
  acceptReturned: {
    ret: { of: { type: 'enum', values: [-1, 0, 1] }, required: true, doc: 'what session_accept returned' },
  },
  scheduleQueueTask: {
    queue: {
      of: { type: 'enum', values: ['global', 'frontend'] },
      required: true,
      doc: 'which queue task is armed',
    },
    ms: {
      of: { type: 'integer', min: 0 },
      required: true,
      doc: 'in how many ms it fires (with rate: nominal, one period)',
    },
    rate: {
      of: { type: 'enum', values: ['conn', 'sess'] },
      doc: 'it fires when this rate allows the next event (next_event_delay): conn = global.conn_per_sec, sess = the frontend session rate',
    },
  },
  handshakeEnded: {
    error: { of: { type: 'boolean' }, required: true, doc: 'CO_FL_ERROR is set' },
    code: {
      of: { type: 'enum', values: ERR_CODE_NAMES },
      required: true,
      doc: "the connection's err_code (NONE without an error): what kill_mini_session's dontlognull test reads",
    },
  },
  logEmbryonicKill: {
    byDeadline: {
      of: { type: 'boolean' },
      required: true,
      doc: 'the kill is the deadline\'s (which dontlognull judged as "no error")',
    },
  },
  fdClose: site('which path closed the fd (kill_mini_session, out_close, process_session)'),
  sessionFree: site('which path freed the session'),
  listDel: site('which path unlinked the session'),
  feconnDec: site('which path released the frontend slot'),
  completeFailure: {
    site: {
      of: { type: 'enum', values: ['req', 'rep', 'txn', 'accept'] },
      required: true,
      doc: 'where session_complete failed (a macro: hosts see it expanded, never as such)',
    },
  },
};

/** The Counters fields a counters line may carry, each an integer. */
export const COUNTER_FIELDS: Fields = Object.fromEntries(
  Object.keys(zeroCounters()).map((k) => [k, { of: { type: 'integer' }, doc: `Counters.${k}` } as FieldSpec]),
);

/** The ModelConfig fields a header may carry. */
export const CONFIG_FIELDS: Fields = {
  profile: oneOfValues(['dev12', '2.6', '2.9'], 'which HAProxy is modelled (README "Profiles")'),
  mode: oneOfValues(['tcp', 'http'], '`mode`'),
  acceptProxy: bool('`bind ... accept-proxy`'),
  ssl: bool('`bind ... ssl`'),
  timeoutClient: {
    of: { type: 'integer', min: 0, nullable: true },
    doc: '`timeout client` in ms; null or 0 = unset',
  },
  timeoutClientHs: {
    of: { type: 'integer', min: 0, nullable: true },
    doc: '`timeout client-hs` in ms (2.9); null or 0 = unset',
  },
  feMaxconn: { of: { type: 'integer', min: 0 }, doc: 'frontend `maxconn`' },
  bindMaxconn: {
    of: { type: 'integer', min: 0, nullable: true },
    doc: '`bind ... maxconn`; null = none of its own (2.x)',
  },
  globalMaxconn: { of: { type: 'integer', min: 0 }, doc: 'global `maxconn`' },
  maxconnrate: { of: { type: 'integer', min: 0, nullable: true }, doc: 'global `maxconnrate`; null = none' },
  rateLimitSessions: {
    of: { type: 'integer', min: 0, nullable: true },
    doc: 'frontend `rate-limit sessions`; null = none',
  },
  maxsslconn: {
    of: { type: 'integer', min: 0, nullable: true },
    doc: 'global `maxsslconn`; null or 0 = none',
  },
  unlimited: bool('listener option LI_O_UNLIMITED'),
  logging: bool('the frontend logs'),
  dontlognull: bool('`option dontlognull`'),
};

/** The dotted leaf states of each machine: what `from` and `to` of a step line may be. */
export const STATE_VALUES: Record<MachineName, string[]> = Object.fromEntries(
  (Object.keys(MACHINES) as MachineName[]).map((m) => [
    m,
    listStates(MACHINES[m])
      .filter((s) => s.type === 'atomic' || s.type === 'final')
      .map((s) => s.path.join('.')),
  ]),
) as Record<MachineName, string[]>;

/** The transition ids of each machine (introspect.ts): what `transitions` of a step line may name. */
export const TRANSITION_VALUES: Record<MachineName, string[]> = Object.fromEntries(
  (Object.keys(MACHINES) as MachineName[]).map((m) => [m, listTransitions(MACHINES[m]).map((t) => t.id)]),
) as Record<MachineName, string[]>;

const MACHINE_NAMES = Object.keys(MACHINES) as MachineName[];
const EFFECT_NAMES = Object.keys(EFFECTS) as EffectName[];
const KINDS = ['header', 'input', 'step', 'effect', 'counters'] as const;

// ---------------------------------------------------------------------------------------------
// Writers: what a Host sees, as lines. All pure.
// ---------------------------------------------------------------------------------------------

/**
 * Returns the header line for a host running `config` that logs the kinds in `complete`
 * exhaustively. Pure. Write it first, before any other line.
 */
export function headerLine(
  t: number,
  config: Partial<ModelConfig> | null,
  complete: readonly CompleteKind[],
  implementation?: string,
): HeaderLine {
  const line: HeaderLine = { v: TRACE_VERSION, t, conn: null, kind: 'header' };
  if (config) line.config = { ...config };
  if (complete.length > 0) line.complete = [...complete];
  if (implementation !== undefined) line.implementation = implementation;
  return line;
}

/**
 * Returns the input line for one environment event the host is about to feed to the machines:
 * `event` as it dispatches it (for ACCEPT_ATTEMPT: `{ type, acceptError }`, the call of
 * Composition.acceptAttempt with `conn`), with the StepInputs it passes, or the part of them it
 * knows. The listener's gauges in `event` are dropped: the checker derives them from the counters.
 * Pure. Requires event.type to be an InputName; the line is then valid iff the params are.
 */
export function inputLine(
  t: number,
  machine: MachineName | null,
  conn: number | null,
  event: { type: string } & Record<string, unknown>,
  inputs?: Partial<StepInputs>,
): InputLine {
  // for-in rather than a rest pattern and Object.entries: the live monitor builds a line per step.
  const params: Record<string, JsonScalar> = {};
  let count = 0;
  for (const k in event) {
    if (k === 'type' || (machine === 'listener' && k in GAUGE_FIELDS)) continue;
    params[k] = jsonScalar(event[k]);
    count++;
  }
  const line: InputLine = {
    v: TRACE_VERSION,
    t,
    conn,
    kind: 'input',
    machine,
    name: event.type as InputName,
  };
  if (count > 0) line.params = params;
  if (inputs !== undefined) line.inputs = { ...inputs };
  return line;
}

/**
 * Returns the step line for `record` (what Host.record receives), with its transition ids unless
 * `withTransitions` is false. Pure. Non-finite gauges (Infinity: no limit) become null.
 */
export function stepLine(t: number, record: TransitionRecord, withTransitions = true): StepLine {
  const event = {} as StepLine['event'];
  const from = record.event as Record<string, unknown>;
  for (const k in from) event[k] = jsonScalar(from[k]);
  const line: StepLine = {
    v: TRACE_VERSION,
    t,
    conn: record.conn,
    kind: 'step',
    machine: record.machine,
    event,
    from: record.from,
    to: record.to,
  };
  if (withTransitions) line.transitions = [...record.transitions];
  return line;
}

/** Returns the effect line for `effect` executed for `origin` (what Host.execute receives). Pure. */
export function effectLine(t: number, effect: Effect, origin: Origin): EffectLine {
  const line: EffectLine = {
    v: TRACE_VERSION,
    t,
    conn: origin.conn,
    kind: 'effect',
    machine: origin.machine,
    name: effect.type,
  };
  if (effect.params !== undefined) {
    const params: Record<string, JsonScalar> = {};
    const from = effect.params as Record<string, unknown>;
    for (const k in from) params[k] = jsonScalar(from[k]);
    line.params = params;
  }
  return line;
}

/** Returns a counters line with the fields of `counters` (all of them, or any subset). Pure. */
export function countersLine(t: number, counters: Partial<Counters>): CountersLine {
  return { v: TRACE_VERSION, t, conn: null, kind: 'counters', counters: { ...counters } };
}

/** Returns `line` as one NDJSON line, without the newline. Pure. */
export function formatTraceLine(line: TraceLine): string {
  return JSON.stringify(line);
}

/**
 * Wraps `host` so that every step and effect it sees is also written as a line to `emit`, stamped
 * with `now()`. Returns the wrapping Host; `host` still receives every call, first. The caller
 * writes the input lines (inputLine) before each acceptAttempt/dispatch and, if it wants, a
 * counters line after. Owns nothing: `emit` belongs to the caller.
 */
export function tracingHost(
  host: Host,
  emit: (line: TraceLine) => void,
  now: () => number,
  options: { steps?: boolean; effects?: boolean; transitions?: boolean } = {},
): Host {
  const { steps = true, effects = true, transitions = true } = options;
  return {
    gauges: () => host.gauges(),
    sslconns: () => host.sslconns(),
    record(record: TransitionRecord): void {
      host.record?.(record);
      if (steps) emit(stepLine(now(), record, transitions));
    },
    execute(effect: Effect, origin: Origin): void {
      host.execute(effect, origin);
      if (effects) emit(effectLine(now(), effect, origin));
    },
  };
}

function jsonScalar(value: unknown): JsonScalar {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value;
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// The validator.
// ---------------------------------------------------------------------------------------------

/**
 * Returns null if `obj` is a valid trace line, else one sentence saying what is wrong with it.
 * Strict: every field must be known (extensions go under `x`), typed, and consistent with the
 * line's kind, machine and name. Pure; never throws, whatever `obj` is.
 */
export function validateTraceLine(obj: unknown): string | null {
  try {
    return validate(obj);
  } catch (err) {
    return `unreadable line: ${(err as Error).message}`;
  }
}

/**
 * Parses one NDJSON line. Returns the line, or a sentence saying why it is not one. Pure; never
 * throws.
 */
export function parseTraceLine(text: string): { line: TraceLine; error?: undefined } | { error: string } {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
  const error = validateTraceLine(obj);
  return error === null ? { line: obj as TraceLine } : { error };
}

const BASE_FIELDS = ['v', 't', 'conn', 'kind', 'x'];

function validate(obj: unknown): string | null {
  if (!isObject(obj)) return 'a line must be a JSON object';
  if (obj.v !== TRACE_VERSION) return `v must be ${TRACE_VERSION}`;
  if (typeof obj.t !== 'number' || !Number.isFinite(obj.t) || obj.t < 0)
    return 't must be a finite number of ms ≥ 0';
  if (!KINDS.includes(obj.kind as never)) return `kind must be one of ${KINDS.join(', ')}`;
  if (obj.x !== undefined && !isObject(obj.x)) return 'x (extensions) must be an object';
  if (obj.conn !== null && !isConnId(obj.conn)) return 'conn must be an integer ≥ 0 or null';
  switch (obj.kind as TraceLine['kind']) {
    case 'header':
      return (
        onlyFields(obj, ['config', 'complete', 'implementation']) ??
        (obj.conn !== null ? 'a header has conn null' : null) ??
        (obj.config === undefined ? null : checkFields(obj.config, CONFIG_FIELDS, 'config')) ??
        checkComplete(obj.complete) ??
        (obj.implementation === undefined || typeof obj.implementation === 'string'
          ? null
          : 'implementation must be a string')
      );
    case 'input':
      return validateInput(obj);
    case 'step':
      return validateStep(obj);
    case 'effect':
      return validateEffect(obj);
    case 'counters':
      return (
        onlyFields(obj, ['counters']) ??
        (obj.conn !== null ? 'a counters line has conn null' : null) ??
        (obj.counters === undefined ? 'a counters line needs counters' : null) ??
        checkFields(obj.counters, COUNTER_FIELDS, 'counters')
      );
  }
}

function validateInput(obj: Record<string, unknown>): string | null {
  const unknown = onlyFields(obj, ['machine', 'name', 'params', 'inputs']);
  if (unknown) return unknown;
  if (typeof obj.name !== 'string' || !Object.hasOwn(INPUTS, obj.name))
    return `input name must be one of ${Object.keys(INPUTS).join(', ')}`;
  const spec: InputSpec = INPUTS[obj.name as InputName];
  if (obj.machine !== spec.machine) return `${obj.name} goes to machine ${JSON.stringify(spec.machine)}`;
  if (spec.conn === 'id' && obj.conn === null) return `${obj.name} needs a connection id in conn`;
  if (spec.conn === 'null' && obj.conn !== null) return `${obj.name} has conn null`;
  if (obj.params !== undefined) {
    const bad = checkFields(obj.params, spec.params, `params of ${obj.name}`);
    if (bad) return bad;
  }
  if (obj.inputs !== undefined) return checkFields(obj.inputs, STEP_INPUT_FIELDS, 'inputs');
  return null;
}

function validateStep(obj: Record<string, unknown>): string | null {
  const unknown = onlyFields(obj, ['machine', 'event', 'from', 'to', 'transitions']);
  if (unknown) return unknown;
  const machine = obj.machine as MachineName;
  if (!MACHINE_NAMES.includes(machine)) return `machine must be one of ${MACHINE_NAMES.join(', ')}`;
  const connBad = checkOriginConn(machine, obj.conn);
  if (connBad) return connBad;
  if (!isObject(obj.event) || typeof obj.event.type !== 'string')
    return 'event must be an object with a type';
  const fields = MACHINE_EVENTS[machine][obj.event.type];
  if (!fields) return `the ${machine} machine has no event ${obj.event.type}`;
  const { type: _type, ...params } = obj.event;
  const bad = checkFields(params, fields, `event ${obj.event.type}`);
  if (bad) return bad;
  for (const k of ['from', 'to'] as const) {
    if (typeof obj[k] !== 'string' || !STATE_VALUES[machine].includes(obj[k]))
      return `${k} must be a state of the ${machine} machine: ${STATE_VALUES[machine].join(', ')}`;
  }
  if (
    obj.transitions !== undefined &&
    !(Array.isArray(obj.transitions) && obj.transitions.every((s) => typeof s === 'string'))
  )
    return 'transitions must be an array of transition ids';
  const unknownId = (obj.transitions as string[] | undefined)?.find(
    (id) => !TRANSITION_VALUES[machine].includes(id),
  );
  if (unknownId !== undefined)
    return `transitions: the ${machine} machine has no transition ${JSON.stringify(unknownId)} (docs/trace.schema.json lists them)`;
  return null;
}

function validateEffect(obj: Record<string, unknown>): string | null {
  const unknown = onlyFields(obj, ['machine', 'name', 'params']);
  if (unknown) return unknown;
  const machine = obj.machine as MachineName;
  if (!MACHINE_NAMES.includes(machine)) return `machine must be one of ${MACHINE_NAMES.join(', ')}`;
  const connBad = checkOriginConn(machine, obj.conn);
  if (connBad) return connBad;
  if (typeof obj.name !== 'string' || !Object.hasOwn(EFFECTS, obj.name))
    return `effect name must be an EffectName (effects.ts), not ${JSON.stringify(obj.name)}`;
  if (obj.params === undefined) return null;
  return checkFields(obj.params, EFFECT_PARAMS[obj.name as EffectName] ?? {}, `params of ${obj.name}`, true);
}

function checkOriginConn(machine: MachineName, conn: unknown): string | null {
  if (machine === 'listener' && conn !== null) return "the listener's lines have conn null";
  if (machine !== 'listener' && conn === null) return `the ${machine} machine's lines name their connection`;
  return null;
}

function checkComplete(complete: unknown): string | null {
  if (complete === undefined) return null;
  if (
    !Array.isArray(complete) ||
    !complete.every((k) => k === 'step' || k === 'effect') ||
    new Set(complete).size !== complete.length
  )
    return 'complete must list distinct kinds among "step", "effect"';
  return null;
}

/** Checks that `obj` has only the base fields and `extra`. */
function onlyFields(obj: Record<string, unknown>, extra: readonly string[]): string | null {
  for (const k of Object.keys(obj)) {
    if (!BASE_FIELDS.includes(k) && !extra.includes(k))
      return `unknown field "${k}" in a ${String(obj.kind)} line (extensions go under x)`;
  }
  return null;
}

/** Checks `value` against `fields`: an object with only those fields, each of its type. */
function checkFields(value: unknown, fields: Fields, where: string, enforceRequired = true): string | null {
  if (!isObject(value)) return `${where} must be an object`;
  for (const [k, v] of Object.entries(value)) {
    const spec = fields[k];
    if (!spec) return `unknown field "${k}" in ${where}`;
    const bad = checkType(v, spec.of);
    if (bad) return `${where}.${k} ${bad}`;
  }
  if (enforceRequired) {
    for (const [k, spec] of Object.entries(fields)) {
      if (spec.required && !(k in value)) return `${where} needs ${k}`;
    }
  }
  return null;
}

function checkType(v: unknown, of: FieldType): string | null {
  switch (of.type) {
    case 'boolean':
      return typeof v === 'boolean' ? null : 'must be a boolean';
    case 'string':
      return typeof v === 'string' ? null : 'must be a string';
    case 'enum':
      return of.values.includes(v as never)
        ? null
        : `must be one of ${of.values.map((x) => JSON.stringify(x)).join(', ')}`;
    case 'integer':
    case 'number': {
      if (v === null && of.nullable) return null;
      const ok =
        of.type === 'integer' ? Number.isSafeInteger(v) : typeof v === 'number' && Number.isFinite(v);
      if (!ok)
        return `must be ${of.type === 'integer' ? 'an integer' : 'a number'}${of.nullable ? ' or null' : ''}`;
      if (of.min !== undefined && (v as number) < of.min) return `must be ≥ ${of.min}`;
      return null;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isConnId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

// ---------------------------------------------------------------------------------------------
// The JSON Schema (draft 2020-12) of one line, generated from the same tables.
// ---------------------------------------------------------------------------------------------

type Schema = Record<string, unknown>;

function typeSchema(of: FieldType, doc: string): Schema {
  switch (of.type) {
    case 'boolean':
      return { description: doc, type: 'boolean' };
    case 'string':
      return { description: doc, type: 'string' };
    case 'enum':
      return { description: doc, enum: [...of.values] };
    case 'integer':
    case 'number': {
      const s: Schema = { description: doc, type: of.nullable ? [of.type, 'null'] : of.type };
      if (of.min !== undefined) s.minimum = of.min;
      return s;
    }
  }
}

function objectSchema(fields: Fields, doc: string): Schema {
  const required = Object.entries(fields)
    .filter(([, f]) => f.required)
    .map(([k]) => k);
  return {
    description: doc,
    type: 'object',
    properties: Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, typeSchema(f.of, f.doc)])),
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

const ref = (name: string): Schema => ({ $ref: `#/$defs/${name}` });

function lineSchema(kind: string, doc: string, props: Record<string, Schema>, required: string[]): Schema {
  return {
    description: doc,
    type: 'object',
    properties: {
      v: ref('v'),
      t: ref('t'),
      kind: { const: kind },
      ...props,
      x: ref('x'),
    },
    required: ['v', 't', 'conn', 'kind', ...required],
    additionalProperties: false,
  };
}

/**
 * Returns the JSON Schema (draft 2020-12) of one trace line, documenting every field. Pure.
 * docs/trace.schema.json is this object, pretty-printed; a test keeps them equal.
 */
export function traceSchema(): Schema {
  const connId = (doc: string): Schema => ({ description: doc, type: 'integer', minimum: 0 });
  const connNull = (doc: string): Schema => ({ description: doc, type: 'null' });
  const inputs = Object.entries(INPUTS).map(([name, s]) =>
    lineSchema(
      'input',
      `${name}: ${s.doc}`,
      {
        conn:
          s.conn === 'id'
            ? connId('the connection the event is for')
            : connNull('no connection: the event is for the listener or the whole process'),
        machine: { description: 'the machine the event is dispatched to', const: s.machine },
        name: { description: 'the event type as dispatched', const: name },
        params: objectSchema(s.params, "the event's own params; an absent param is unknown"),
        inputs: ref('stepInputs'),
      },
      ['machine', 'name'],
    ),
  );
  const steps = MACHINE_NAMES.map((m) =>
    lineSchema(
      'step',
      `one transition of the ${m} machine`,
      {
        conn:
          m === 'listener'
            ? connNull('the listener has no connection')
            : connId('the connection whose machine stepped'),
        machine: { const: m },
        event: {
          description: 'the event the machine got; a param absent here is not logged',
          oneOf: Object.entries(MACHINE_EVENTS[m]).map(([type, fields]) => {
            const o = objectSchema(fields, type);
            (o.properties as Schema).type = { const: type };
            o.required = ['type'];
            return o;
          }),
        },
        from: { description: 'dotted state before', enum: STATE_VALUES[m] },
        to: { description: 'dotted state after', enum: STATE_VALUES[m] },
        transitions: {
          description: 'the ids of the transitions taken (introspect.ts), eventless ones included; optional',
          type: 'array',
          items: { enum: TRANSITION_VALUES[m] },
        },
      },
      ['machine', 'event', 'from', 'to'],
    ),
  );
  const withParams = EFFECT_NAMES.filter((n) => EFFECT_PARAMS[n] !== undefined);
  const effect = {
    ...lineSchema(
      'effect',
      'an executed effect (Host.execute)',
      {
        conn: {
          description: 'the connection of the emitting machine; null for the listener',
          type: ['integer', 'null'],
          minimum: 0,
        },
        machine: { description: 'the machine that emitted the effect', enum: MACHINE_NAMES },
        name: {
          description: 'the effect (machines/effects.ts)',
          oneOf: EFFECT_NAMES.map((n) => ({
            const: n,
            description: `${EFFECTS[n].does} (${EFFECTS[n].haproxy})`,
          })),
        },
        params: { description: 'the effect params; absent = not logged', type: 'object' },
      },
      ['machine', 'name'],
    ),
    allOf: [
      ref('origin'),
      ...withParams.map((n) => ({
        if: { properties: { name: { const: n } }, required: ['name'] },
        then: { properties: { params: objectSchema(EFFECT_PARAMS[n]!, `the params of ${n}`) } },
      })),
      {
        if: {
          properties: { name: { enum: EFFECT_NAMES.filter((n) => !withParams.includes(n)) } },
          required: ['name'],
        },
        then: {
          properties: { params: objectSchema({}, 'these effects take no params: {} at most') },
        },
      },
    ],
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://embryonic.invalid/docs/trace.schema.json',
    title: 'embryonic lifecycle trace, one line (format v1)',
    description:
      'One line of an NDJSON lifecycle trace: an environment input, a machine step, an effect, a counters snapshot, or the optional header. See docs/TRACE.md.',
    oneOf: [ref('header'), ref('input'), ref('step'), ref('effect'), ref('counters')],
    $defs: {
      v: { description: 'format version', const: TRACE_VERSION },
      t: {
        description: 'time in ms since an origin of the host’s choice; never decreases from line to line',
        type: 'number',
        minimum: 0,
      },
      x: { description: 'extensions: any object, ignored by the checker', type: 'object' },
      stepInputs: objectSchema(
        STEP_INPUT_FIELDS,
        'StepInputs (compose.ts): what the environment decided for this step; an absent field is unknown',
      ),
      origin: {
        description: "the listener's lines have conn null; a connection's or session's name the connection",
        oneOf: [
          { properties: { machine: { const: 'listener' }, conn: { type: 'null' } } },
          {
            properties: { machine: { enum: ['connection', 'session'] }, conn: { type: 'integer' } },
          },
        ],
      },
      header: lineSchema(
        'header',
        'optional first line: the configuration and the kinds logged exhaustively',
        {
          conn: connNull('always null'),
          config: objectSchema(CONFIG_FIELDS, 'ModelConfig fields (config.ts); the rest take their defaults'),
          complete: {
            description: 'kinds the host logs exhaustively: a missing line of such a kind is a divergence',
            type: 'array',
            items: { enum: ['step', 'effect'] },
            uniqueItems: true,
          },
          implementation: { description: 'free text naming the emitter', type: 'string' },
        },
        [],
      ),
      input: { description: 'an environment event fed to the machines', oneOf: inputs },
      step: { description: 'a machine transition (Host.record)', oneOf: steps },
      effect,
      counters: lineSchema(
        'counters',
        "a snapshot of the host's counters: any subset of the fields",
        {
          conn: connNull('always null'),
          counters: objectSchema(COUNTER_FIELDS, 'Counters fields (counters.ts)'),
        },
        ['counters'],
      ),
    },
  };
}
