import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Composition, NO_FAILURE, type Host, type TransitionRecord } from '../../machines/compose.ts';
import { makeConfig } from '../../machines/config.ts';
import { listenerGauges, zeroCounters } from '../../machines/counters.ts';
import { EFFECTS, type Effect } from '../../machines/effects.ts';
import {
  countersLine,
  effectLine,
  formatTraceLine,
  headerLine,
  inputLine,
  INPUTS,
  parseTraceLine,
  stepLine,
  traceSchema,
  tracingHost,
  validateTraceLine,
  type TraceLine,
} from '../../machines/traceFormat.ts';
import { randomTrace, scriptedTrace } from '../../properties/traceGen.ts';

const ROOT = join(import.meta.dirname, '../..');

// ---------------------------------------------------------------------------------------------
// A small JSON Schema (draft 2020-12) validator, for the keywords docs/trace.schema.json uses:
// $ref (local), allOf, oneOf, if/then, type, const, enum, properties, required,
// additionalProperties: false, minimum, items, uniqueItems. Anything else in the schema fails the
// test, so the schema cannot silently rely on a keyword this validator ignores.

type Schema = Record<string, unknown>;
const KNOWN = new Set([
  '$schema',
  '$id',
  '$defs',
  '$ref',
  'title',
  'description',
  'allOf',
  'oneOf',
  'if',
  'then',
  'type',
  'const',
  'enum',
  'properties',
  'required',
  'additionalProperties',
  'minimum',
  'items',
  'uniqueItems',
]);

function typeOk(v: unknown, t: string): boolean {
  switch (t) {
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'null':
      return v === null;
    default:
      return typeof v === t;
  }
}

function schemaAccepts(root: Schema, schema: Schema, v: unknown): boolean {
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new Error(`unsupported keyword ${k}`);
  if (schema.$ref !== undefined) {
    const name = (schema.$ref as string).replace('#/$defs/', '');
    if (!schemaAccepts(root, (root.$defs as Record<string, Schema>)[name]!, v)) return false;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => typeOk(v, t))) return false;
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(v)) return false;
  if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => e === v)) return false;
  if (schema.minimum !== undefined && typeof v === 'number' && v < (schema.minimum as number)) return false;
  if (typeOk(v, 'object')) {
    const o = v as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in o)) return false;
    for (const [k, val] of Object.entries(o)) {
      if (props[k]) {
        if (!schemaAccepts(root, props[k], val)) return false;
      } else if (schema.additionalProperties === false) return false;
    }
  }
  if (Array.isArray(v)) {
    if (schema.items && !v.every((x) => schemaAccepts(root, schema.items as Schema, x))) return false;
    if (schema.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) return false;
  }
  if (schema.allOf && !(schema.allOf as Schema[]).every((s) => schemaAccepts(root, s, v))) return false;
  if (schema.oneOf && (schema.oneOf as Schema[]).filter((s) => schemaAccepts(root, s, v)).length !== 1)
    return false;
  if (schema.if && schemaAccepts(root, schema.if as Schema, v) && schema.then)
    if (!schemaAccepts(root, schema.then as Schema, v)) return false;
  return true;
}

const SCHEMA = JSON.parse(readFileSync(join(ROOT, 'docs/trace.schema.json'), 'utf8')) as Schema;
const bySchema = (v: unknown): boolean => schemaAccepts(SCHEMA, SCHEMA, v);

// ---------------------------------------------------------------------------------------------
// The corpus: every line kind the generator writes, and invalid variants of them.

const CONFIG = makeConfig({ mode: 'http', feMaxconn: 3, globalMaxconn: 3, maxconnrate: 50 });

function corpus(): TraceLine[] {
  const lines: TraceLine[] = [];
  for (const inputs of ['full', 'partial', 'none'] as const)
    randomTrace(CONFIG, { connections: 25, seed: 11, failures: 0.4 }, (l) => lines.push(l), { inputs });
  return lines;
}

const VALID = corpus();
const first = (pred: (l: TraceLine) => boolean): TraceLine => structuredClone(VALID.find(pred)!);
const anInput = first((l) => l.kind === 'input' && l.name === 'ACCEPT_ATTEMPT' && l.inputs !== undefined);
const aStep = first((l) => l.kind === 'step' && l.machine === 'session');
const aListenerStep = first((l) => l.kind === 'step' && l.machine === 'listener');
const anEffect = first((l) => l.kind === 'effect' && l.name === 'bufAlloc');
const aBareEffect = first((l) => l.kind === 'effect' && l.name === 'jobsInc');
const aCounters = first((l) => l.kind === 'counters');
const aHeader = first((l) => l.kind === 'header');

/** Invalid lines, each with the reason it must be rejected. */
const INVALID: [string, unknown][] = [
  ['a number instead of an object', 42],
  ['an array', [anInput]],
  ['no version', { ...anInput, v: undefined }],
  ['version 2', { ...anInput, v: 2 }],
  ['a negative time', { ...anInput, t: -1 }],
  ['a time as text', { ...anInput, t: '12' }],
  ['an unknown kind', { ...anInput, kind: 'event' }],
  ['an unknown top-level field', { ...anInput, note: 'hi' }],
  ['extensions that are not an object', { ...anInput, x: 3 }],
  ['a fractional connection id', { ...anInput, conn: 1.5 }],
  ['a negative connection id', { ...anInput, conn: -2 }],
  ['an input to the wrong machine', { ...anInput, machine: 'session' }],
  ['an unknown input', { ...anInput, name: 'ACCEPT' }],
  [
    'a connection input without a connection',
    { v: 1, t: 1, conn: null, kind: 'input', machine: 'connection', name: 'TLS_OK' },
  ],
  [
    'a queue input with a connection',
    { v: 1, t: 1, conn: 3, kind: 'input', machine: 'listener', name: 'DEQUEUE_GLOBAL' },
  ],
  ['an unknown input param', { ...anInput, params: { acceptError: false, nbconn: 2 } }],
  [
    'a PROXY error with an SSL code',
    {
      v: 1,
      t: 1,
      conn: 3,
      kind: 'input',
      machine: 'connection',
      name: 'PROXY_HEADER_ERROR',
      params: { code: 'SSL_EMPTY' },
    },
  ],
  ['an unknown source class', { ...anInput, inputs: { src: 'evil' } }],
  ['an unknown StepInputs field', { ...anInput, inputs: { when: 'now' } }],
  ['a step event the machine does not have', { ...aStep, event: { type: 'PROXY_HEADER_OK' } }],
  ['a step from a state of another machine', { ...aStep, from: 'handshake.tls' }],
  ['a step to a state that does not exist', { ...aStep, to: 'zombie' }],
  ['step transitions that are not a list', { ...aStep, transitions: 'session.absent|SESSION_ACCEPT|10' }],
  [
    'a step with an unknown event param',
    { ...aStep, event: { ...(aStep as { event: object }).event, extra: 1 } },
  ],
  ['a listener step with a connection', { ...aListenerStep, conn: 4 }],
  ['a listener gauge as text', { ...aListenerStep, event: { type: 'RESUME', nbconn: '2' } }],
  ['an unknown effect', { ...anEffect, name: 'bufAllocate' }],
  ['a bufAlloc without its buffer', { ...anEffect, params: {} }],
  ['a bufAlloc of an unknown buffer', { ...anEffect, params: { buf: 'res' } }],
  ['params on an effect that takes none', { ...aBareEffect, params: { n: 1 } }],
  ['an effect of a session without a connection', { ...anEffect, conn: null }],
  ['an effect of the listener with a connection', { ...aBareEffect, machine: 'listener', conn: 7 }],
  ['an unknown counter', { ...aCounters, counters: { sessions: 1 } }],
  ['a counter that is not an integer', { ...aCounters, counters: { feconn: 1.5 } }],
  ['a counters line with a connection', { ...aCounters, conn: 1 }],
  ['a header with a connection', { ...aHeader, conn: 0 }],
  ['a header declaring an unknown kind complete', { ...aHeader, complete: ['input'] }],
  ['a header declaring a kind twice', { ...aHeader, complete: ['step', 'step'] }],
  ['a header with an unknown config field', { ...aHeader, config: { maxconn: 3 } }],
  ['a header with a negative timeout', { ...aHeader, config: { timeoutClient: -5 } }],
];

/** Valid lines the generator does not write: minimal forms and extensions. */
const ALSO_VALID: [string, unknown][] = [
  [
    'an input with nothing but its name',
    { v: 1, t: 0, conn: 9, kind: 'input', machine: 'connection', name: 'CLIENT_RESET' },
  ],
  [
    'RATE_PERIOD, for no machine',
    { v: 1, t: 0, conn: null, kind: 'input', machine: null, name: 'RATE_PERIOD' },
  ],
  ['a line with extensions', { ...anInput, x: { pid: 7, note: ['anything'] } }],
  ['a step without transitions', { ...aStep, transitions: undefined }],
  ['a listener step without gauges', { ...aListenerStep, event: { type: 'ACCEPT_ATTEMPT' } }],
  ['an effect without params', { ...anEffect, params: undefined }],
  ['params {} on an effect that takes none', { ...aBareEffect, params: {} }],
  ['one counter', { ...aCounters, counters: { jobs: 0 } }],
  ['a bare header', { v: 1, t: 0, conn: null, kind: 'header' }],
];

/** Drops the fields set to undefined, as JSON would. */
const asJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

describe('the trace format', () => {
  it('writes lines that the validator and the JSON Schema both accept, for every line kind', () => {
    expect(new Set(VALID.map((l) => l.kind))).toEqual(
      new Set(['header', 'input', 'step', 'effect', 'counters']),
    );
    for (const line of VALID) {
      expect(validateTraceLine(line), formatTraceLine(line)).toBeNull();
      expect(bySchema(asJson(line)), formatTraceLine(line)).toBe(true);
    }
  });

  it.each(INVALID)('rejects %s, in the validator and in the JSON Schema', (_why, line) => {
    const obj = asJson(line);
    expect(validateTraceLine(obj)).toEqual(expect.any(String));
    expect(bySchema(obj)).toBe(false);
  });

  it.each(ALSO_VALID)('accepts %s, in the validator and in the JSON Schema', (_why, line) => {
    const obj = asJson(line);
    expect(validateTraceLine(obj)).toBeNull();
    expect(bySchema(obj)).toBe(true);
  });

  it('publishes the schema that traceSchema() generates (npx embryonic trace-check --schema)', () => {
    expect(SCHEMA).toEqual(traceSchema());
  });

  it('names every effect and every input in the schema', () => {
    const effect = (SCHEMA.$defs as Record<string, Schema>).effect!;
    const names = ((effect.properties as Record<string, Schema>).name!.oneOf as { const: string }[]).map(
      (s) => s.const,
    );
    expect(names).toEqual(Object.keys(EFFECTS));
    const inputs = ((SCHEMA.$defs as Record<string, Schema>).input!.oneOf as Schema[]).map(
      (s) => ((s.properties as Record<string, Schema>).name as { const: string }).const,
    );
    expect(inputs).toEqual(Object.keys(INPUTS));
  });

  it('never throws while validating, whatever it is given, and agrees with the schema', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.constantFrom(...VALID).map((l) => ({ ...l, t: 1 })),
        ),
        (v) => {
          const verdict = validateTraceLine(v);
          expect(verdict === null || typeof verdict === 'string').toBe(true);
          const json = JSON.stringify(v);
          if (json !== undefined && verdict === null) expect(bySchema(JSON.parse(json))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses an NDJSON line back into the line it was formatted from', () => {
    for (const line of VALID.slice(0, 200))
      expect(parseTraceLine(formatTraceLine(line))).toEqual({ line: asJson(line) });
    expect(parseTraceLine('{"v":1')).toEqual({ error: expect.stringMatching(/^not JSON/) });
    expect(parseTraceLine('{"v":1,"t":0,"conn":null,"kind":"nope"}')).toEqual({
      error: expect.stringMatching(/kind/),
    });
  });
});

describe('the trace writers', () => {
  it("drops the listener's gauges from an input, and keeps the event's own params", () => {
    const gauges = listenerGauges(zeroCounters(), CONFIG);
    const line = inputLine(
      5,
      'listener',
      12,
      { type: 'ACCEPT_ATTEMPT', acceptError: true, ...gauges },
      NO_FAILURE,
    );
    expect(line).toEqual({
      v: 1,
      t: 5,
      conn: 12,
      kind: 'input',
      machine: 'listener',
      name: 'ACCEPT_ATTEMPT',
      params: { acceptError: true },
      inputs: NO_FAILURE,
    });
    expect(inputLine(6, 'listener', null, { type: 'DEQUEUE_GLOBAL', ...gauges })).not.toHaveProperty(
      'params',
    );
  });

  it('writes an unlimited rate budget (Infinity) as null, which JSON can carry', () => {
    const record: TransitionRecord = {
      machine: 'listener',
      conn: null,
      event: { type: 'RESUME', ...listenerGauges(zeroCounters(), makeConfig({})) },
      from: 'full',
      to: 'ready',
      transitions: ['listener.full|RESUME|0'],
      effects: [],
    };
    const line = stepLine(3, record);
    expect(line.event.connRateRemain).toBeNull();
    expect(validateTraceLine(line)).toBeNull();
    expect(stepLine(3, record, false)).not.toHaveProperty('transitions');
  });

  it('writes an effect with its params and its origin', () => {
    const effect: Effect = { type: 'fdClose', params: { site: 'kill_mini_session' } };
    expect(effectLine(9, effect, { machine: 'session', conn: 4 })).toEqual({
      v: 1,
      t: 9,
      conn: 4,
      kind: 'effect',
      machine: 'session',
      name: 'fdClose',
      params: { site: 'kill_mini_session' },
    });
    expect(countersLine(9, { feconn: 2 })).toEqual({
      v: 1,
      t: 9,
      conn: null,
      kind: 'counters',
      counters: { feconn: 2 },
    });
    expect(headerLine(0, null, [])).toEqual({ v: 1, t: 0, conn: null, kind: 'header' });
  });

  it('wraps a host so that it still executes every effect and the trace holds each step and effect in order', () => {
    const config = makeConfig({ acceptProxy: true });
    const composition = new Composition(config);
    const world = composition.initialWorld();
    composition.addConnection(world, 77);
    const executed: string[] = [];
    const counters = zeroCounters();
    const inner: Host = {
      gauges: () => listenerGauges(counters, config),
      sslconns: () => counters.sslconns,
      execute: (e) => void executed.push(e.type),
    };
    const lines: TraceLine[] = [];
    const host = tracingHost(
      inner,
      (l) => lines.push(l),
      () => 42,
    );
    composition.acceptAttempt(world, host, 77, NO_FAILURE);
    expect(lines.filter((l) => l.kind === 'effect').map((l) => (l as { name: string }).name)).toEqual(
      executed,
    );
    expect(lines[0]).toMatchObject({ kind: 'step', machine: 'listener', event: { type: 'ACCEPT_ATTEMPT' } });
    expect(lines.every((l) => l.t === 42 && validateTraceLine(l) === null)).toBe(true);
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'effect', conn: 77, name: 'armDeadline' }));
  });

  it('writes the same lines for a scripted scenario as for the same scenario run again', () => {
    const script = [
      { type: 'ACCEPT', conn: 3 },
      { type: 'PROXY_HEADER_ERROR', conn: 3, code: 'PRX_BAD_HDR' },
    ] as const;
    expect(scriptedTrace(CONFIG, script)).toEqual(scriptedTrace(CONFIG, script));
  });
});
