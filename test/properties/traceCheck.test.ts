import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { MUTANTS, mutantById } from '../../machines/mutants.ts';
import { formatTraceLine, type TraceLine } from '../../machines/traceFormat.ts';
import {
  checkTraceLines,
  formatDivergence,
  TraceMonitor,
  type TraceMonitorOptions,
} from '../../properties/traceCheck.ts';
import {
  randomTrace,
  scriptedTrace,
  type ScriptEvent,
  type TraceGenOptions,
} from '../../properties/traceGen.ts';

/** tcp, accept-proxy, a 300 ms deadline, logging, four slots. */
const CONFIG = makeConfig({ feMaxconn: 4, globalMaxconn: 4 });

/**
 * Three connections under arbitrary ids: 10 completes and ends, 20 fails its PROXY header and is
 * killed, 30 is killed by its deadline.
 */
const SCRIPT: ScriptEvent[] = [
  { type: 'ACCEPT', conn: 10 },
  { type: 'ACCEPT', conn: 20 },
  { type: 'PROXY_HEADER_OK', conn: 10 },
  { type: 'PROXY_HEADER_ERROR', conn: 20, code: 'PRX_BAD_HDR' },
  { type: 'ACCEPT', conn: 30 },
  { type: 'TIMER_EXPIRE', conn: 30 },
  { type: 'SESSION_END', conn: 10 },
];

const TRACE = scriptedTrace(CONFIG, SCRIPT);

function check(lines: readonly TraceLine[], options: TraceMonitorOptions = {}, config: ModelConfig = CONFIG) {
  return checkTraceLines(lines.map(formatTraceLine), config, options);
}

/** The index of the first line at or after `from` that `pred` selects; throws if none. */
function find(lines: readonly TraceLine[], pred: (l: TraceLine) => boolean, from = 0): number {
  const i = lines.findIndex((l, at) => at >= from && pred(l));
  if (i < 0) throw new Error('no such line');
  return i;
}

const isEffect =
  (name: string, conn: number) =>
  (l: TraceLine): boolean =>
    l.kind === 'effect' && l.name === name && l.conn === conn;
const isInput =
  (name: string, conn: number | null) =>
  (l: TraceLine): boolean =>
    l.kind === 'input' && l.name === name && l.conn === conn;

/** `lines` with `count` lines removed at `at` and `added` inserted there. */
function splice(lines: readonly TraceLine[], at: number, count: number, ...added: TraceLine[]): TraceLine[] {
  const out = lines.map((l) => structuredClone(l));
  out.splice(at, count, ...added.map((l) => structuredClone(l)));
  return out;
}

/** Configurations that reach every kind of step between them. */
const configs: [string, ModelConfig][] = [
  ['tcp with accept-proxy', makeConfig({ feMaxconn: 3, globalMaxconn: 3 })],
  [
    'http without handshake',
    makeConfig({ mode: 'http', acceptProxy: false, feMaxconn: 3, globalMaxconn: 3 }),
  ],
  ['http with accept-proxy and ssl', makeConfig({ mode: 'http', ssl: true, feMaxconn: 5, globalMaxconn: 5 })],
  [
    'ssl only, profile 2.9 with client-hs',
    makeConfig({ profile: '2.9', ssl: true, acceptProxy: false, timeoutClientHs: 50 }),
  ],
  [
    'profile 2.6, http, no logging',
    makeConfig({ profile: '2.6', mode: 'http', acceptProxy: false, logging: false }),
  ],
  [
    'no timeout, a bind maxconn below the frontend',
    makeConfig({ timeoutClient: null, feMaxconn: 4, bindMaxconn: 2, globalMaxconn: 4 }),
  ],
  ['rate limits', makeConfig({ feMaxconn: 8, globalMaxconn: 8, maxconnrate: 5, rateLimitSessions: 3 })],
  ['an unlimited listener', makeConfig({ unlimited: true, feMaxconn: 3, globalMaxconn: 1 })],
];

describe('traces of the reference model', () => {
  it('conform when every input, step, effect and counter is logged', () => {
    const r = check(TRACE);
    expect(r.verdict).toBe('conforms');
    expect(r.stats).toMatchObject({ inputs: SCRIPT.length, accepted: 3, ended: 3, maxStates: 1 });
  });

  it.each(configs)('conform under %s, with failures at every site', (_name, config) => {
    const lines: TraceLine[] = [];
    const run = randomTrace(config, { connections: 50, seed: 3, failures: 0.35 }, (l) => lines.push(l));
    expect(run.stuck).toBe(false);
    const r = check(lines, {}, config);
    expect(r.divergence && formatDivergence(r.divergence)).toBeNull();
    expect(r.stats.accepted).toBe(run.accepted);
  });

  const partial: [string, TraceGenOptions][] = [
    ['inputs only, with their params and StepInputs', { steps: false, effects: false, counters: false }],
    ['steps without transition ids, and no effects', { transitions: false, effects: false }],
    ['effects and counters, but no StepInputs', { steps: false, inputs: 'none' }],
    [
      'half the params and StepInputs left out, with counters',
      { steps: false, effects: false, inputs: 'partial' },
    ],
    ['no params, no StepInputs, but every step', { effects: false, counters: false, inputs: 'none' }],
  ];
  it.each(partial)('conform when they log %s: the unknowns branch', (_name, options) => {
    const lines: TraceLine[] = [];
    randomTrace(CONFIG, { connections: 30, seed: 8, failures: 0.3 }, (l) => lines.push(l), options);
    const r = check(lines);
    expect(r.divergence && formatDivergence(r.divergence)).toBeNull();
  });

  it('branches over what an input leaves unknown, and the logged effects decide', () => {
    const lines = scriptedTrace(CONFIG, [{ type: 'ACCEPT', conn: 1, src: 'denied' }], { inputs: 'none' });
    const monitor = new TraceMonitor(CONFIG);
    const input = find(lines, isInput('ACCEPT_ATTEMPT', 1));
    lines.slice(0, input + 1).forEach((l) => expect(monitor.feed(l)).toBeNull());
    expect(monitor.possibleStates).toBeGreaterThan(10);
    for (const l of lines.slice(input + 1)) expect(monitor.feed(l)).toBeNull();
    expect(monitor.possibleStates).toBe(1);
  });

  it('accepts an id again when the listener did not take it, and reports an id that is already live', () => {
    const config = makeConfig({ feMaxconn: 1, globalMaxconn: 1 });
    const ok = scriptedTrace(config, [
      { type: 'ACCEPT', conn: 5, acceptError: true },
      { type: 'QUEUE_TASK', queue: 'global' },
      { type: 'ACCEPT', conn: 5 },
    ]);
    expect(check(ok, {}, config).verdict).toBe('conforms');
    const twice = scriptedTrace(CONFIG, [{ type: 'ACCEPT', conn: 5 }]);
    const again = { ...twice[find(twice, isInput('ACCEPT_ATTEMPT', 5))]!, t: 9 };
    const r = check([...twice, again]);
    expect(r.divergence).toMatchObject({ line: twice.length + 1, verdict: 'diverges' });
    expect(r.divergence!.message).toMatch(/connection 5 is already accepted \(line 2\)/);
  });
});

describe('mutated traces', () => {
  it('a missing close (fdClose deleted) fails at the line where the close should be', () => {
    const at = find(TRACE, isEffect('fdClose', 20));
    const mutated = splice(TRACE, at, 1);
    const r = check(mutated);
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: at + 1 });
    expect(r.divergence!.message).toBe(
      'effect fdClose{site=kill_mini_session} (session 20) is missing before this line, and the trace logs every effect',
    );
    expect(r.divergence!.expected[0]).toMatch(/^effect fdClose\{site=kill_mini_session\} \(session 20\)/);
    // Without the header's promise that every effect is logged, the missing line is tolerated.
    expect(check(mutated, { complete: [] }).verdict).toBe('conforms');
  });

  it('a buffer allocation before the handshake ends fails at the inserted line', () => {
    const at = find(TRACE, isEffect('armDeadline', 20)) + 1;
    const bufAlloc: TraceLine = {
      v: 1,
      t: 2,
      conn: 20,
      kind: 'effect',
      machine: 'session',
      name: 'bufAlloc',
      params: { buf: 'req' },
    };
    const mutated = splice(TRACE, at, 0, bufAlloc);
    for (const options of [{}, { complete: [] }]) {
      const r = check(mutated, options);
      expect(r.divergence).toMatchObject({ verdict: 'diverges', line: at + 1 });
      expect(r.divergence!.message).toMatch(/has no effect bufAlloc\{buf=req\} \(session 20\) here/);
    }
  });

  it("a double kill (a connection's kill effects repeated) fails at the first repeated line", () => {
    const start = find(TRACE, isEffect('connClose', 20));
    const end = find(TRACE, isEffect('sessionFree', 20), start);
    const block = TRACE.slice(start, end + 1);
    const mutated = splice(TRACE, end + 1, 0, ...block);
    const r = check(mutated);
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: end + 2 });
    expect(r.divergence!.message).toMatch(/no effect connClose \(session 20\)/);
  });

  it('a double kill (the deadline striking again after the kill) fails at the second TASK_WAKEUP', () => {
    const kill = find(TRACE, isInput('TASK_WAKEUP', 30));
    const at = find(TRACE, (l) => l.kind === 'counters', kill) + 1;
    const mutated = splice(TRACE, at, 0, { ...TRACE[kill]! });
    const r = check(mutated);
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: at + 1 });
    expect(r.divergence!.message).toMatch(
      new RegExp(`connection 30 was closed and freed at line ${kill + 1}: nothing can happen to it any more`),
    );
  });

  it('a counter out of step (feconn + 1) fails at its counters line', () => {
    const at = find(TRACE, (l) => l.kind === 'counters', find(TRACE, isInput('ACCEPT_ATTEMPT', 20)));
    const line = structuredClone(TRACE[at]!) as Extract<TraceLine, { kind: 'counters' }>;
    line.counters.feconn! += 1;
    const r = check(splice(TRACE, at, 1, line));
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: at + 1 });
    expect(r.divergence!.message).toMatch(/"feconn":3.*are not the model's/);
    expect(r.divergence!.possible[0]!.counters.feconn).toBe(1);
  });

  it('a reordered completion (the completion logged before its handshake input) fails at the first moved line', () => {
    const input = find(TRACE, isInput('PROXY_HEADER_OK', 10));
    const end = find(TRACE, (l) => l.kind === 'counters', input);
    const completion = TRACE.slice(input + 1, end); // the steps and effects of the completion
    const mutated = [...TRACE.slice(0, input), ...completion, TRACE[input]!, ...TRACE.slice(end)].map(
      (l) => ({
        ...l,
        t: 1,
      }),
    );
    const r = check(mutated);
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: input + 1 });
    expect(r.divergence!.text).toMatch(/"PROXY_HEADER_OK"/);
  });

  it('a reordered completion (cumSessInc logged before listAdd) fails where the order breaks', () => {
    const listAdd = find(TRACE, isEffect('listAdd', 10));
    const cumSess = find(TRACE, isEffect('cumSessInc', 10));
    expect(cumSess).toBeGreaterThan(listAdd);
    const mutated = TRACE.map((l, i) =>
      structuredClone(i === listAdd ? TRACE[cumSess]! : i === cumSess ? TRACE[listAdd]! : l),
    );
    // Every effect logged: cumSessInc cannot come first, listAdd is missing before it.
    const strict = check(mutated).divergence;
    expect(strict).toMatchObject({ verdict: 'diverges', line: listAdd + 1 });
    expect(strict!.message).toMatch(/^effect listAdd \(session 10\) is missing before this line/);
    // Effects logged selectively: cumSessInc may come first, but then nothing brings listAdd back.
    const lenient = check(mutated, { complete: [] }).divergence;
    expect(lenient!.line).toBeGreaterThan(listAdd + 1);
    expect(lenient!.line).toBeLessThanOrEqual(cumSess + 1);
  });
});

describe('traces of mutant models', () => {
  const cases: [string, ModelConfig][] = [
    ['buffers-at-accept', CONFIG],
    ['feconn-kept-on-kill', CONFIG],
    ['no-list-del-on-completion-failure', makeConfig({ mode: 'http', acceptProxy: false })],
    ['seed-completes-on-error', CONFIG],
    ['maxconn-off-by-one', makeConfig({ feMaxconn: 3, globalMaxconn: 3 })],
    ['fd-leak-tracked-xprt', makeConfig({ ssl: true, feMaxconn: 3, globalMaxconn: 3 })],
  ];
  it.each(cases)('diverge from the reference machines (%s)', (id, config) => {
    const lines: TraceLine[] = [];
    randomTrace(config, { connections: 40, seed: 7, failures: 0.3 }, (l) => lines.push(l), {
      defect: mutantById(id).defect(config),
    });
    expect(check(lines, {}, config).verdict).toBe('diverges');
  });

  it('violate an invariant when checked against the mutant model itself', () => {
    const defect = mutantById('feconn-kept-on-kill').defect(CONFIG);
    const lines = scriptedTrace(CONFIG, SCRIPT, { defect });
    const r = check(lines, { defect });
    expect(r.divergence).toMatchObject({
      verdict: 'violates',
      line: find(lines, isInput('PROXY_HEADER_ERROR', 20)) + 1,
    });
    expect(r.divergence!.message).toMatch(/^invariant feconnBalance fails/);
  });
});

describe('the checker', () => {
  it('reports an invalid line with its line number, a time that goes back, and a header that is not first', () => {
    const texts = TRACE.map(formatTraceLine);
    const broken = [...texts.slice(0, 5), '{"v":1,"t":2,"kind":"effect"', ...texts.slice(5)];
    expect(checkTraceLines(broken, CONFIG).divergence).toMatchObject({ verdict: 'invalid', line: 6 });
    const back = [...texts.slice(0, 30), formatTraceLine({ ...TRACE[30]!, t: 0 }), ...texts.slice(31)];
    expect(checkTraceLines(back, CONFIG).divergence).toMatchObject({ verdict: 'invalid', line: 31 });
    const late = [...texts.slice(1, 4), formatTraceLine({ ...TRACE[0]!, t: 5 })];
    expect(checkTraceLines(late, CONFIG).divergence).toMatchObject({
      verdict: 'invalid',
      line: 4,
      message: 'a header must be the first line',
    });
  });

  it('refuses a timer that strikes before the deadline, and, with a slack, an input long after it', () => {
    const lines = scriptedTrace(CONFIG, [
      { type: 'ACCEPT', conn: 1 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ]);
    const at = find(lines, isInput('TASK_WAKEUP', 1));
    const early = lines.map((l, i) => (i >= at ? { ...l, t: 200 } : l));
    expect(check(early).divergence!.message).toMatch(
      /struck early: armed at t=1 for 300 ms, it fired at t=200/,
    );
    const slow = scriptedTrace(CONFIG, [
      { type: 'ACCEPT', conn: 1 },
      { type: 'PROXY_HEADER_OK', conn: 1, dt: 400 },
    ]);
    expect(check(slow).verdict).toBe('conforms');
    expect(check(slow, { deadlineSlackMs: 50 }).divergence!.message).toMatch(
      /still embryonic at t=401, 100 ms after/,
    );
  });

  it('takes a timer up to 2 ms before its deadline, and an input exactly at the end of the slack', () => {
    const lines = scriptedTrace(CONFIG, [
      { type: 'ACCEPT', conn: 1 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ]);
    const at = find(lines, isInput('TASK_WAKEUP', 1));
    const due = 301; // armed at t=1 for 300 ms
    const struck = (t: number) => check(lines.map((l, i) => (i >= at ? { ...l, t } : l))).verdict;
    expect([struck(due - 2), struck(due - 3)]).toEqual(['conforms', 'diverges']);
    const late = (dt: number) =>
      check(
        scriptedTrace(CONFIG, [
          { type: 'ACCEPT', conn: 1 },
          { type: 'PROXY_HEADER_OK', conn: 1, dt },
        ]),
        {
          deadlineSlackMs: 50,
        },
      ).verdict;
    expect([late(350), late(351)]).toEqual(['conforms', 'diverges']);
  });

  it('refuses an effect line that names another machine than the one whose step emitted it', () => {
    const at = find(TRACE, (l) => l.kind === 'effect' && l.machine === 'session');
    const moved = TRACE.map((l, i) => (i === at ? { ...l, machine: 'connection' as const } : l));
    expect(check(moved).divergence).toMatchObject({ line: at + 1 });
    expect(check(moved).verdict).not.toBe('conforms');
  });

  it.each([
    [
      'fd-leak-tracked-xprt',
      makeConfig({ ssl: true, feMaxconn: 3, globalMaxconn: 3 }),
      /ended, but its fd was closed 0 times, not exactly once/,
    ],
    [
      'no-list-del-on-completion-failure',
      makeConfig({ mode: 'http', acceptProxy: false }),
      /ended, but its session is still in the sessions list/,
    ],
    [
      'kill-logged-twice',
      makeConfig({ logging: true }),
      /ended, but it logged 2 kill lines, not at most one/,
    ],
  ] as const)(
    'checks the end of each connection of a %s trace itself, with no invariant',
    (id, config, message) => {
      const defect = mutantById(id).defect(config);
      const lines: TraceLine[] = [];
      randomTrace(config, { connections: 40, seed: 7, failures: 0.3 }, (l) => lines.push(l), { defect });
      const r = check(lines, { defect, invariants: [] }, config);
      expect(r.verdict).not.toBe('conforms');
      expect(r.divergence!.message).toMatch(message);
    },
  );

  it('gives up on a trace too ambiguous to decide', () => {
    const lines: TraceLine[] = [];
    randomTrace(CONFIG, { connections: 30, seed: 2, failures: 0.3 }, (l) => lines.push(l), {
      inputs: 'none',
      steps: false,
      effects: false,
      counters: false,
    });
    expect(check(lines, { maxStates: 16 }).verdict).toBe('ambiguous');
  });

  it('says where the trace stops short of an effect the header promises', () => {
    const end = TRACE.length - 2; // the last effect of the last step, before its counters line
    expect(TRACE[end]!.kind).toBe('effect');
    const cut = TRACE.slice(0, end);
    const r = check(cut);
    expect(r.divergence).toMatchObject({ verdict: 'diverges', line: end + 1 });
    expect(r.divergence!.message).toMatch(/the trace ends, but the step of line \d+ is missing effect/);
  });

  it('prints a divergence with the possible states, what the model expected and the last 10 lines', () => {
    const at = find(TRACE, isEffect('fdClose', 20));
    const d = check(splice(TRACE, at, 1)).divergence!;
    expect(d.recent).toHaveLength(10);
    expect(d.recent[9]!.line).toBe(at + 1);
    const text = formatDivergence(d);
    expect(text).toMatch(new RegExp(`^line ${at + 1} diverges`));
    expect(text).toMatch(/conn 20: connection handshake\.proxyHeader, session embryonic/);
    expect(text).toMatch(/the model would log next:\n {2}effect fdClose/);
  });

  it('shows the lines seen so far, oldest first, whether the trace is shorter or longer than 10 lines', () => {
    const texts = TRACE.map(formatTraceLine);
    const early = checkTraceLines([...texts.slice(0, 3), 'not json'], CONFIG).divergence!;
    expect(early.recent).toEqual([
      ...texts.slice(0, 3).map((text, i) => ({ line: i + 1, text })),
      { line: 4, text: 'not json' },
    ]);
    expect(early.text).toBe('not json');
    const late = checkTraceLines([...texts.slice(0, 25), 'not json'], CONFIG).divergence!;
    expect(late.recent).toEqual([
      ...texts.slice(16, 25).map((text, i) => ({ line: i + 17, text })),
      { line: 26, text: 'not json' },
    ]);
  });
});

describe('the step memo', () => {
  /** The lines of a random run of `connections` under `config`, everything logged unless `options` say. */
  function run(
    config: ModelConfig,
    connections: number,
    seed: number,
    options: TraceGenOptions = {},
  ): TraceLine[] {
    const lines: TraceLine[] = [];
    randomTrace(config, { connections, seed, failures: 0.35 }, (l) => lines.push(l), options);
    return lines;
  }

  it.each(configs)(
    'gives on every hit the outcome the model computes again, its write-only counters moved, under %s',
    (_name, config) => {
      const monitor = new TraceMonitor(config, { memo: 'verify' });
      const lines = run(config, 120, 11);
      for (const l of lines) expect(monitor.feed(l)).toBeNull();
      expect(monitor.finish()).toBeNull();
      expect(monitor.memoHits).toBeGreaterThan(lines.filter((l) => l.kind === 'input').length / 4);
    },
  );

  it('gives the outcome the model computes again when inputs leave unknowns, and the candidates branch', () => {
    const monitor = new TraceMonitor(CONFIG, { memo: 'verify' });
    for (const l of run(CONFIG, 60, 12, { steps: false, effects: false, inputs: 'partial' }))
      expect(monitor.feed(l)).toBeNull();
    expect(monitor.finish()).toBeNull();
    expect(monitor.stats.maxStates).toBeGreaterThan(1);
    expect(monitor.memoHits).toBeGreaterThan(0);
  });

  it.each(MUTANTS.map((m) => [m.id, m] as const))(
    'holds for the mutant %s as for the reference model',
    (_id, mutant) => {
      const config = makeConfig({ ssl: true, feMaxconn: 3, globalMaxconn: 3, maxsslconn: 2 });
      const defect = mutant.defect(config);
      const lines = run(config, 40, 13, { defect });
      const monitor = new TraceMonitor(config, { memo: 'verify', defect });
      for (const l of lines) monitor.feed(l);
      monitor.finish();
      expect(monitor.memoHits).toBeGreaterThan(0);
    },
  );

  it('finds the same verdicts, lines and messages as the model without it, on mutated traces', () => {
    // A long random trace, so that the memo gives most steps, and the short TRACE (no hit at all).
    const long = run(CONFIG, 80, 15);
    const close = find(long, isEffect('fdClose', 1000 + 7 * 60));
    const counters = find(long, (l) => l.kind === 'counters', close);
    const feconn = (long[counters] as Extract<TraceLine, { kind: 'counters' }>).counters.feconn!;
    const at = find(TRACE, isEffect('fdClose', 20));
    const traces = [
      TRACE,
      splice(TRACE, at, 1),
      splice(TRACE, at, 0, TRACE[at]!),
      long,
      splice(long, close, 1),
      splice(long, counters, 1, {
        ...(long[counters] as Extract<TraceLine, { kind: 'counters' }>),
        counters: { feconn: feconn + 1 },
      }),
    ];
    const verdicts = traces.map((t) => {
      const monitor = new TraceMonitor(CONFIG);
      const on = check(t, { memo: 'on' });
      const off = check(t, { memo: 'off' });
      expect(on.divergence).toEqual(off.divergence);
      expect(on.stats).toEqual(off.stats);
      for (const l of t) monitor.feed(l);
      return [on.verdict, monitor.memoHits > 0];
    });
    expect(verdicts).toEqual([
      ['conforms', false],
      ['diverges', false],
      ['diverges', false],
      ['conforms', true],
      ['diverges', true],
      ['diverges', true],
    ]);
  });

  it.each([5, 12, 40])(
    "starts again when it holds %i outcomes, and gives the model's outcomes after that",
    (limit) => {
      const lines = run(CONFIG, 60, 16);
      const monitor = new TraceMonitor(CONFIG, { memo: 'verify', memoLimit: limit });
      for (const l of lines) expect(monitor.feed(l)).toBeNull();
      expect(monitor.finish()).toBeNull();
      expect(monitor.memoHits).toBeGreaterThan(0);
    },
  );

  it("fails its verification when an outcome it gives is not the model's", () => {
    const lines = run(CONFIG, 30, 14);
    const monitor = new TraceMonitor(CONFIG, { memo: 'verify' });
    const half = Math.floor(lines.length / 2);
    for (const l of lines.slice(0, half)) monitor.feed(l);
    // Corrupt every outcome the memo keeps: the step no longer arms a deadline.
    const memo = (monitor as unknown as { memo: Map<string, { armed: boolean } | null> }).memo;
    for (const o of memo.values()) if (o) o.armed = !o.armed;
    expect(() => {
      for (const l of lines.slice(half)) monitor.feed(l);
    }).toThrow(/^step memo: the outcome of .* differs: armed$/);
  });

  it('fails its verification when a counter it gives after a step is off by one', () => {
    const lines = run(CONFIG, 30, 14);
    const monitor = new TraceMonitor(CONFIG, { memo: 'verify' });
    const half = Math.floor(lines.length / 2);
    for (const l of lines.slice(0, half)) monitor.feed(l);
    // A write-only counter one too high in every outcome the memo keeps, at the end of the step.
    const memo = (monitor as unknown as { memo: Map<string, { counters: { cumConn: number } } | null> }).memo;
    for (const o of memo.values()) if (o) o.counters = { ...o.counters, cumConn: o.counters.cumConn + 1 };
    expect(() => {
      for (const l of lines.slice(half)) monitor.feed(l);
    }).toThrow(/differs: the counters after$/);
  });

  it('counts every end of a connection, and remembers the ids of the last 4096 ends', () => {
    // One id ends, is accepted again and ends again: two ends.
    const config = makeConfig({ feMaxconn: 2, globalMaxconn: 2 });
    const again = scriptedTrace(config, [
      { type: 'ACCEPT', conn: 5 },
      { type: 'PROXY_HEADER_ERROR', conn: 5, code: 'PRX_BAD_HDR' },
      { type: 'ACCEPT', conn: 5 },
      { type: 'PROXY_HEADER_ERROR', conn: 5, code: 'PRX_BAD_HDR' },
    ]);
    expect(check(again, {}, config).stats).toMatchObject({ accepted: 2, ended: 2 });
    // 5000 connections end; a line naming the first afterwards is only "never accepted".
    const lines = run(makeConfig({ feMaxconn: 4, globalMaxconn: 4 }), 5000, 17);
    const monitor = new TraceMonitor(makeConfig({ feMaxconn: 4, globalMaxconn: 4 }));
    for (const l of lines) monitor.feed(l);
    expect(monitor.finish()).toBeNull();
    expect(monitor.stats.ended).toBe(5000);
    const input = (conn: number): TraceLine => ({
      v: 1,
      t: lines[lines.length - 1]!.t + 1,
      conn,
      kind: 'input',
      machine: 'session',
      name: 'SESSION_END',
    });
    expect(monitor.feed(input(1000))!.message).toBe('connection 1000 was never accepted');
    const last = 1000 + 7 * 4999; // randomTrace's ids: from 1000, 7 apart
    expect(monitor.feed(input(last))!.message).toMatch(
      new RegExp(`^connection ${last} was closed and freed at line \\d+: nothing can happen to it any more$`),
    );
  });
});

describe('the counts of a trace that leaves what the model chose unknown', () => {
  // Only the inputs, none of their inputs: PROXY_HEADER_OK may complete the session, or fail to
  // and kill it, so connection 5 ends at that line in some histories and at SESSION_END in others.
  const config = makeConfig({ feMaxconn: 2, globalMaxconn: 2 });
  const bare = scriptedTrace(config, [
    { type: 'ACCEPT', conn: 5 },
    { type: 'PROXY_HEADER_OK', conn: 5 },
    { type: 'SESSION_END', conn: 5 },
  ])
    .filter((l) => l.kind === 'header' || l.kind === 'input')
    .map((l) => (l.kind === 'header' ? { ...l, complete: [] } : { ...l, inputs: undefined }));

  it('counts a connection once when the histories end it at different lines', () => {
    const r = check(bare, {}, config);
    expect(r.verdict).toBe('conforms');
    expect(r.stats.maxStates).toBeGreaterThan(1);
    expect(r.stats).toMatchObject({ inputs: 3, accepted: 1, ended: 1 });
  });

  it('counts no end while a history consistent with the trace keeps the connection', () => {
    const r = check(bare.slice(0, -1), {}, config);
    expect(r.verdict).toBe('conforms');
    expect(r.stats).toMatchObject({ inputs: 2, accepted: 1, ended: 0 });
  });
});

describe('the live monitor', () => {
  it('reports a divergence as it happens and goes on checking the lines after it', () => {
    const at = find(TRACE, isEffect('armDeadline', 20)) + 1;
    const bogus: TraceLine = {
      v: 1,
      t: 2,
      conn: 20,
      kind: 'effect',
      machine: 'session',
      name: 'bufAlloc',
      params: { buf: 'req' },
    };
    const monitor = new TraceMonitor(CONFIG);
    const seen = splice(TRACE, at, 0, bogus).map((l) => monitor.feed(l));
    expect(seen.map((d, i) => (d ? i + 1 : 0)).filter(Boolean)).toEqual([at + 1]);
    expect(monitor.finish()).toBeNull();
    expect(monitor.stats.ended).toBe(3);
  });

  it('never throws, whatever it is fed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.json(), fc.constantFrom(...TRACE.map(formatTraceLine)))),
        (texts) => {
          const monitor = new TraceMonitor(CONFIG);
          for (const t of texts) monitor.feed(t);
          monitor.finish();
        },
      ),
      { numRuns: 100 },
    );
  });
});
