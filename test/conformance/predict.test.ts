import { describe, expect, it } from 'vitest';
import { transitionOf } from '../../conformance/cases.ts';
import {
  closesCheck,
  describeDeadlineDifference,
  describePrediction,
  describeScenario,
  observablyDiffer,
  predict,
  suiteFrontendConfig,
  type Prediction,
} from '../../conformance/predict.ts';
import { modelConfigOf } from '../../impl/config.ts';
import { CLIENT_HS_MS, DEADLINE_MS } from '../../conformance/suite.cfg.ts';

const ACCEPT = { type: 'ACCEPT' } as const;

describe('the configuration a prediction runs', () => {
  it("is the suite config's slice for the frontend, parsed by the bundled proxy's parser for the profile", () => {
    expect(modelConfigOf(suiteFrontendConfig('fe_pp_tls', '2.6'))).toMatchObject({
      profile: '2.6',
      acceptProxy: true,
      ssl: true,
      timeoutClient: 300,
      dontlognull: false,
    });
    expect(modelConfigOf(suiteFrontendConfig('fe_pp_nulllog', 'dev12'))).toMatchObject({ dontlognull: true });
    expect(modelConfigOf(suiteFrontendConfig('fe_queue', 'dev12'))).toMatchObject({ feMaxconn: 10 });
    expect(modelConfigOf(suiteFrontendConfig('fe_plain', '2.9'))).toMatchObject({
      acceptProxy: false,
      ssl: false,
    });
    expect(suiteFrontendConfig('fe_reject', 'dev12').frontend.rejects).toHaveLength(1);
  });
});

describe('a prediction', () => {
  it("classifies the suite's source address by the frontend's rules when the scenario does not say", () => {
    expect(predict({ events: [ACCEPT] }, 'fe_reject', 'dev12')).toMatchObject({
      transitions: expect.arrayContaining([transitionOf('session.absent', 'SESSION_ACCEPT', 'sourceDenied')]),
      kills: 0,
      log: [],
      closes: ['rst'],
    });
    expect(predict({ events: [ACCEPT] }, 'fe_pp', 'dev12').transitions).toContain(
      transitionOf('session.absent', 'SESSION_ACCEPT', 'handshakePending'),
    );
  });

  it('classes every loopback source as a monitor on fe_monitor, by its monitor-net', () => {
    expect(predict({ events: [ACCEPT] }, 'fe_monitor', 'dev12')).toMatchObject({
      transitions: expect.arrayContaining([
        transitionOf('session.absent', 'SESSION_ACCEPT', 'sourceIsMonitor'),
      ]),
      kills: 0,
      closes: ['fin'],
    });
  });

  it("names the header's source in the kill of a connection whose header was read, or whose addresses were taken", () => {
    const p = predict(
      {
        events: [
          ACCEPT,
          ACCEPT,
          { type: 'PROXY_HEADER_OK', conn: 0 },
          { type: 'TLS_ERROR', conn: 0, code: 'SSL_HANDSHAKE' },
          { type: 'PROXY_HEADER_ERROR', conn: 1, code: 'PRX_BAD_HDR' },
        ],
      },
      'fe_pp_tls',
      'dev12',
    );
    expect(p.log).toEqual(['SSL_HANDSHAKE', 'PRX_BAD_HDR']);
    expect(p.logFrom).toEqual(['header', 'client']);
    const taken = predict(
      { events: [ACCEPT, { type: 'PROXY_HEADER_ERROR', code: 'PRX_BAD_HDR' }], addressesTaken: [0] },
      'fe_pp',
      'dev12',
    );
    expect(taken.logFrom).toEqual(['header']);
  });

  it('gives the code of each logged kill, once per kill in their order, with connection 0 when an event names none', () => {
    const p = predict(
      {
        events: [
          ACCEPT,
          ACCEPT,
          { type: 'PROXY_HEADER_ERROR', code: 'PRX_BAD_HDR' },
          { type: 'TIMER_EXPIRE', conn: 1 },
          ACCEPT,
          { type: 'PROXY_HEADER_ERROR', code: 'PRX_BAD_HDR', conn: 2 },
        ],
      },
      'fe_pp',
      'dev12',
    );
    expect(p).toEqual({
      profile: 'dev12',
      transitions: expect.arrayContaining([transitionOf('connection.handshake.proxyHeader', 'TIMEOUT')]),
      kills: 3,
      log: ['PRX_BAD_HDR', 'PRX_TIMEOUT', 'PRX_BAD_HDR'],
      logFrom: ['client', 'client', 'client'],
      closes: ['rst', 'fin', 'rst'],
      deadlines: [null, DEADLINE_MS, null],
      backlog: 0,
      counters: expect.any(Array),
    });
    expect(p.counters).toHaveLength(7);
  });

  it('counts the kills that dontlognull hides apart from those it logs, and nothing when nothing is killed', () => {
    const close = { events: [ACCEPT, { type: 'CLIENT_CLOSE' }] } as const;
    expect(predict(close, 'fe_pp_nulllog', 'dev12')).toMatchObject({ kills: 1, log: [] });
    expect(predict(close, 'fe_pp', 'dev12')).toMatchObject({ kills: 1, log: ['PRX_EMPTY'] });
    const ok = predict({ events: [ACCEPT, { type: 'PROXY_HEADER_OK' }] }, 'fe_pp', 'dev12');
    expect(ok).toMatchObject({ kills: 0, log: [], closes: [null] });
  });

  it('marks a connection the client resets itself, whose close the client never sees', () => {
    expect(predict({ events: [ACCEPT, { type: 'CLIENT_RESET' }] }, 'fe_pp', 'dev12').closes).toEqual([
      'reset',
    ]);
  });

  it('leaves out an accept the listener refused: it took no connection', () => {
    const fill = Array.from({ length: 10 }, () => ACCEPT);
    const refused = predict({ events: [...fill, ACCEPT] }, 'fe_fe_queue', 'dev12');
    expect(refused.closes).toHaveLength(10);
    expect(refused.transitions).toContain(transitionOf('listener.ready', 'ACCEPT_ATTEMPT', 'frontendFull'));
  });

  it('attempts a pending connection only where the listener polls: dev12 is full on fe_queue, 2.x waits on the frontend queue', () => {
    const fill = Array.from({ length: 10 }, () => ACCEPT);
    const scenario = { events: [...fill, { type: 'PENDING' }] } as const;
    const frontendFull = transitionOf('listener.ready', 'ACCEPT_ATTEMPT', 'frontendFull');
    const dev12 = predict(scenario, 'fe_queue', 'dev12');
    expect(dev12.transitions).not.toContain(frontendFull);
    expect(dev12.transitions).toContain(transitionOf('listener.ready', 'ACCEPT_RETURNED', 'listenerFull'));
    expect(dev12.counters).toHaveLength(12); // the skipped PENDING keeps its moment
    expect(predict(scenario, 'fe_queue', '2.6').transitions).toContain(frontendFull);
    // An ACCEPT there would not be a run of the dev12 machines: the listener does not poll.
    expect(() => predict({ events: [...fill, ACCEPT] }, 'fe_queue', 'dev12')).toThrow(/cannot happen/);
  });

  it("follows the profile's own guards: a close after a whole ClientHello is SSL_EMPTY for dev12, SSL_HANDSHAKE for 2.6", () => {
    const scenario = {
      events: [ACCEPT, { type: 'PROXY_HEADER_OK' }, { type: 'CLIENT_CLOSE', tlsRead: 'wholeRecords' }],
    } as const;
    expect(predict(scenario, 'fe_pp_tls', 'dev12').log).toEqual(['SSL_EMPTY']);
    expect(predict(scenario, 'fe_pp_tls', '2.6').log).toEqual(['SSL_HANDSHAKE']);
    expect(predict(scenario, 'fe_pp_tls', '2.6').transitions).toContain(
      transitionOf('connection.handshake.tls', 'CLIENT_CLOSE', 'tlsHandshakeNotEmpty'),
    );
  });

  it('throws, naming the event and the states, when a scenario is not a run of the machines', () => {
    expect(() => predict({ events: [ACCEPT, { type: 'TLS_OK' }] }, 'fe_pp', 'dev12')).toThrow(
      /^scenario event 2, \{"type":"TLS_OK","conn":0\}, cannot happen under dev12 \(connection 0 is handshake\.proxyHeader \/ session embryonic\)/,
    );
    expect(() => predict({ events: [{ type: 'TIMER_EXPIRE', conn: 3 }] }, 'fe_pp', 'dev12')).toThrow(
      /connection 3 is not in the scenario/,
    );
    // fe_queue has 10 slots: an 11th connection waits in the backlog until one frees.
    const eleven = Array.from({ length: 11 }, () => ACCEPT);
    expect(() => predict({ events: eleven }, 'fe_queue', 'dev12')).toThrow(
      /scenario event 11, .*listener full/,
    );
  });
});

describe('the deadlines of a prediction', () => {
  it('are timeout client-hs on fe_client_hs under 2.9, and timeout client elsewhere', () => {
    const silent = { events: [ACCEPT, { type: 'TIMER_EXPIRE' as const }] };
    expect(predict(silent, 'fe_client_hs', '2.9').deadlines).toEqual([CLIENT_HS_MS]);
    expect(predict(silent, 'fe_pp', '2.9').deadlines).toEqual([DEADLINE_MS]);
    expect(predict(silent, 'fe_pp', 'dev12').deadlines).toEqual([DEADLINE_MS]);
    expect(() => predict(silent, 'fe_client_hs', '2.6')).toThrow(/fe_client_hs/);
  });

  it('name only the deadlines that strike, for the connections accepted', () => {
    const header = { type: 'PROXY_HEADER_OK' as const, conn: 0 };
    expect(predict({ events: [ACCEPT, header] }, 'fe_client_hs', '2.9').deadlines).toEqual([null]);
    // Eleven clients on fe_queue's ten slots: the eleventh waits in the backlog, accepted by no one.
    const held = Array.from({ length: 11 }, () => ({ type: 'PENDING' as const }));
    const p = predict({ events: [...held, { type: 'TIMER_EXPIRE' as const, conn: 0 }] }, 'fe_queue', 'dev12');
    expect(p.deadlines).toEqual([DEADLINE_MS, ...Array.from({ length: 9 }, () => null)]);
    expect(p.deadlines).toHaveLength(p.closes.length);
  });
});

describe('two predictions', () => {
  const base: Prediction = {
    profile: 'dev12',
    transitions: ['a'],
    kills: 1,
    log: ['SSL_EMPTY'],
    logFrom: ['client'],
    closes: ['fin'],
    deadlines: [300],
    backlog: 0,
    counters: [],
  };

  it('differ for a target when a deadline differs, and say how', () => {
    const clientHs = { ...base, profile: '2.9' as const, deadlines: [100] };
    expect(observablyDiffer(clientHs, base)).toBe(true);
    expect(describeDeadlineDifference(clientHs, base)).toBe('arms deadlines of 100 ms, where dev12 300 ms');
    expect(describeDeadlineDifference(base, { ...base, deadlines: [300] })).toBe('');
    expect(describeDeadlineDifference({ ...base, deadlines: [null, 300] }, base)).toBe(
      'arms deadlines of none, 300 ms, where dev12 300 ms',
    );
  });

  it('differ for a target when the log or a close differs, not when only the transitions do', () => {
    expect(observablyDiffer(base, { ...base, profile: '2.6', transitions: ['b'] })).toBe(false);
    expect(observablyDiffer(base, { ...base, log: ['SSL_HANDSHAKE'] })).toBe(true);
    expect(observablyDiffer(base, { ...base, log: [] })).toBe(true);
    expect(observablyDiffer(base, { ...base, backlog: 1 })).toBe(true);
    expect(observablyDiffer(base, { ...base, closes: ['rst'] })).toBe(true);
  });

  it("leave the log out when the target's log is not judged", () => {
    expect(observablyDiffer(base, { ...base, log: ['SSL_HANDSHAKE'] }, { log: false })).toBe(false);
    expect(observablyDiffer(base, { ...base, closes: ['rst'] }, { log: false })).toBe(true);
  });

  it('read as one line each, with each code and close counted', () => {
    expect(describePrediction(base)).toBe('logs SSL_EMPTY; closes with FIN');
    expect(describePrediction({ ...base, kills: 2, log: [], closes: ['fin', 'fin'] })).toBe(
      'logs no kill; closes with FIN × 2',
    );
    expect(
      describePrediction({
        ...base,
        kills: 3,
        log: ['PRX_TIMEOUT', 'PRX_TIMEOUT'],
        closes: ['fin', 'reset'],
      }),
    ).toBe('logs PRX_TIMEOUT × 2 (1 kill(s) not logged); closes with FIN, a reset by the client');
    expect(describePrediction({ ...base, kills: 0, log: [], closes: ['rst', null] })).toBe(
      'kills nothing; closes with RST, nothing (still open)',
    );
  });
});

describe('a scenario', () => {
  it('reads as one line: each event with its parameters', () => {
    expect(
      describeScenario({
        events: [
          { type: 'ACCEPT', src: 'monitor' },
          { type: 'PROXY_HEADER_ERROR', code: 'PRX_BAD_HDR' },
          { type: 'TIMER_EXPIRE', conn: 1 },
        ],
      }),
    ).toBe('ACCEPT src=monitor, PROXY_HEADER_ERROR code=PRX_BAD_HDR, TIMER_EXPIRE conn=1');
  });
});

describe('the check that the target closes each connection as the model predicts', () => {
  const headerError = {
    events: [
      ACCEPT,
      { type: 'PROXY_HEADER_ERROR', code: 'PRX_NOT_HDR' },
      ACCEPT,
      { type: 'TIMER_EXPIRE', conn: 1 },
    ],
  } as const;
  const predicted = predict(headerError, 'fe_pp', 'dev12');

  it('holds when the clients saw as many FINs and RSTs as predicted, in any order', () => {
    expect(closesCheck(predicted, ['fin', 'rst'])).toEqual({
      what: 'the target closes each connection as the model predicts',
      expected: '2 connection(s): 1 × FIN, 1 × RST, 0 with no close from the target',
      actual: '2 connection(s): 1 × FIN, 1 × RST, 0 with no close from the target',
      ok: true,
    });
  });

  it('fails on a FIN where an RST is predicted, and on a client the scenario does not accept', () => {
    expect(closesCheck(predicted, ['fin', 'fin'])).toMatchObject({
      actual: '2 connection(s): 2 × FIN, 0 × RST, 0 with no close from the target',
      ok: false,
    });
    expect(closesCheck(predicted, ['fin', 'rst', 'fin']).ok).toBe(false);
    expect(closesCheck(predicted, ['rst', null]).ok).toBe(false);
    expect(closesCheck(predicted, ['fin', null]).ok).toBe(false); // the RST never came
  });

  it('expects no close from the target on a connection the client resets itself, or one left open', () => {
    const reset = predict({ events: [ACCEPT, { type: 'CLIENT_RESET' }] }, 'fe_pp', 'dev12');
    expect(closesCheck(reset, [null])).toMatchObject({
      expected: '1 connection(s): 0 × FIN, 0 × RST, 1 with no close from the target (1 reset by the client)',
      ok: true,
    });
    const open = predict({ events: [ACCEPT, { type: 'PROXY_HEADER_OK' }] }, 'fe_pp', 'dev12');
    expect(closesCheck(open, [null]).ok).toBe(true);
    expect(closesCheck(open, ['fin']).ok).toBe(false);
  });

  it('counts the clients a scenario leaves in the listen backlog, which see no close', () => {
    const waiting = predict({ events: [ACCEPT, { type: 'TIMER_EXPIRE' }], backlog: 1 }, 'fe_pp', 'dev12');
    expect(waiting.backlog).toBe(1);
    expect(closesCheck(waiting, ['fin', null])).toMatchObject({
      expected: '2 connection(s): 1 × FIN, 0 × RST, 1 with no close from the target (1 never accepted)',
      ok: true,
    });
    expect(closesCheck(waiting, ['fin']).ok).toBe(false);
    expect(closesCheck(waiting, ['fin', 'fin']).ok).toBe(false);
  });
});
