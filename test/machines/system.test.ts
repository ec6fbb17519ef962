/**
 * The composed model: which environment events can happen where, purity of `step`, the memory
 * faults the model host records, and the listener's behaviour under its limits, replayed through
 * real events from the initial state.
 */
import { describe, expect, it } from 'vitest';
import type { Defect } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { SystemModel, type SystemEvent } from '../../machines/system.ts';

/**
 * Builds a model of `n` connections under `partial` config and replays `events` from its initial
 * state. Throws if an event cannot happen where it is replayed.
 */
function run(partial: Partial<ModelConfig>, events: SystemEvent[], n = 1, defect: Defect | null = null) {
  const model = new SystemModel(makeConfig(partial), n, defect);
  let state = model.initial();
  for (const event of events) {
    const next = model.step(state, event);
    if (!next) throw new Error(`${JSON.stringify(event)} cannot happen here`);
    state = next.state;
  }
  return { model, state };
}

const ACCEPT: SystemEvent = { type: 'ACCEPT' };

/** One case of isEnabled: a state reached by `events`, and whether `probe` can happen there. */
interface EnabledCase {
  says: string;
  config: Partial<ModelConfig>;
  n: number;
  events: SystemEvent[];
  probe: SystemEvent;
  enabled: boolean;
}

const ENABLED: EnabledCase[] = [
  {
    says: 'ACCEPT while the listener is ready and a connection waits',
    config: {},
    n: 1,
    events: [],
    probe: ACCEPT,
    enabled: true,
  },
  {
    says: 'ACCEPT with an fcntl failure under 2.6, whose session_accept_fd makes no fcntl call',
    config: { profile: '2.6' },
    n: 1,
    events: [],
    probe: { type: 'ACCEPT', fail: 'fcntl' },
    enabled: false,
  },
  {
    says: 'ACCEPT with an fcntl failure under dev12',
    config: {},
    n: 1,
    events: [],
    probe: { type: 'ACCEPT', fail: 'fcntl' },
    enabled: true,
  },
  {
    says: 'ACCEPT with a data init failure on a raw transport, which has no data init',
    config: { ssl: false },
    n: 1,
    events: [],
    probe: { type: 'ACCEPT', fail: 'dataInit' },
    enabled: false,
  },
  {
    says: 'ACCEPT from a monitor-net source under 2.6, which has no monitor-net',
    config: { profile: '2.6' },
    n: 1,
    events: [],
    probe: { type: 'ACCEPT', src: 'monitor' },
    enabled: false,
  },
  {
    says: 'ACCEPT with a completion failure when a handshake comes first',
    config: { acceptProxy: true },
    n: 1,
    events: [],
    probe: { type: 'ACCEPT', fail: 'rep' },
    enabled: false,
  },
  {
    says: 'ACCEPT when the backlog is empty',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: ACCEPT,
    enabled: false,
  },
  {
    says: 'ACCEPT while the listener is full',
    config: {},
    n: 3,
    events: [ACCEPT, ACCEPT],
    probe: ACCEPT,
    enabled: false,
  },
  {
    says: 'PROXY_HEADER_OK on a connection waiting for its header',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'PROXY_HEADER_OK', conn: 0 },
    enabled: true,
  },
  {
    says: 'PROXY_HEADER_OK on a connection still in the backlog',
    config: {},
    n: 1,
    events: [],
    probe: { type: 'PROXY_HEADER_OK', conn: 0 },
    enabled: false,
  },
  {
    says: 'PROXY_HEADER_ERROR on a connection that does not exist',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'PROXY_HEADER_ERROR', conn: 1, code: 'PRX_BAD_HDR' },
    enabled: false,
  },
  {
    says: 'PROXY_HEADER_ERROR on a connection waiting for its header',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'PRX_BAD_HDR' },
    enabled: true,
  },
  {
    says: 'TLS_OK during the TLS handshake',
    config: { acceptProxy: false, ssl: true },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'TLS_OK', conn: 0 },
    enabled: true,
  },
  {
    says: 'TLS_OK while the PROXY header is still pending',
    config: { ssl: true },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'TLS_OK', conn: 0 },
    enabled: false,
  },
  {
    says: 'TLS_ERROR after the PROXY header, during TLS',
    config: { ssl: true },
    n: 1,
    events: [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0 }],
    probe: { type: 'TLS_ERROR', conn: 0, code: 'SSL_HANDSHAKE' },
    enabled: true,
  },
  {
    says: 'CLIENT_CLOSE during a handshake',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'CLIENT_CLOSE', conn: 0 },
    enabled: true,
  },
  {
    says: 'CLIENT_RESET during the TLS handshake',
    config: { acceptProxy: false, ssl: true },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'CLIENT_RESET', conn: 0 },
    enabled: true,
  },
  {
    says: 'CLIENT_CLOSE after part of a TLS record, during the TLS handshake',
    config: { acceptProxy: true, ssl: true },
    n: 1,
    events: [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0 }],
    probe: { type: 'CLIENT_CLOSE', conn: 0, tlsRead: 'partialRecord' },
    enabled: true,
  },
  {
    says: 'CLIENT_CLOSE after TLS bytes while the PROXY header is still awaited',
    config: { acceptProxy: true, ssl: true },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'CLIENT_CLOSE', conn: 0, tlsRead: 'partialRecord' },
    enabled: false,
  },
  {
    says: 'TLS_ERROR on a connection with no TLS',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'TLS_ERROR', conn: 0, code: 'SSL_HANDSHAKE' },
    enabled: false,
  },
  {
    says: 'CLIENT_CLOSE on a connection still in the backlog',
    config: {},
    n: 1,
    events: [],
    probe: { type: 'CLIENT_CLOSE', conn: 0 },
    enabled: false,
  },
  {
    says: 'CLIENT_RESET once the handshake is over',
    config: {},
    n: 1,
    events: [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0 }],
    probe: { type: 'CLIENT_RESET', conn: 0 },
    enabled: false,
  },
  {
    says: 'TIMER_EXPIRE on an embryonic session with a deadline',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'TIMER_EXPIRE', conn: 0 },
    enabled: true,
  },
  {
    says: 'TIMER_EXPIRE once the session is completed',
    config: {},
    n: 1,
    events: [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0 }],
    probe: { type: 'TIMER_EXPIRE', conn: 0 },
    enabled: false,
  },
  {
    says: 'TASK_WAKEUP on an embryonic session',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'TASK_WAKEUP', conn: 0 },
    enabled: true,
  },
  {
    says: 'TASK_WAKEUP on a killed session',
    config: {},
    n: 1,
    events: [ACCEPT, { type: 'CLIENT_CLOSE', conn: 0 }],
    probe: { type: 'TASK_WAKEUP', conn: 0 },
    enabled: false,
  },
  {
    says: 'SESSION_END on an initialized session',
    config: {},
    n: 1,
    events: [ACCEPT, { type: 'PROXY_HEADER_OK', conn: 0 }],
    probe: { type: 'SESSION_END', conn: 0 },
    enabled: true,
  },
  {
    says: 'SESSION_END on an embryonic session',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'SESSION_END', conn: 0 },
    enabled: false,
  },
  {
    says: 'QUEUE_TASK of the global queue once scheduled',
    config: {},
    n: 1,
    events: [{ type: 'ACCEPT', acceptError: true }],
    probe: { type: 'QUEUE_TASK', queue: 'global' },
    enabled: true,
  },
  {
    says: 'QUEUE_TASK of a queue nothing scheduled',
    config: {},
    n: 1,
    events: [{ type: 'ACCEPT', acceptError: true }],
    probe: { type: 'QUEUE_TASK', queue: 'frontend' },
    enabled: false,
  },
  {
    says: 'a PROXY header failing without an error code in 2.x, where a TLV can be refused storage',
    config: { profile: '2.9' },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'NONE' },
    enabled: true,
  },
  {
    says: 'a PROXY header failing without an error code in 1.5-dev, which has no PROXY v2 TLV to store',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'NONE' },
    enabled: false,
  },
  {
    says: 'RATE_PERIOD when a rate is limited and was used',
    config: { maxconnrate: 5 },
    n: 1,
    events: [ACCEPT],
    probe: { type: 'RATE_PERIOD' },
    enabled: true,
  },
  {
    says: 'RATE_PERIOD when no rate is limited',
    config: {},
    n: 1,
    events: [ACCEPT],
    probe: { type: 'RATE_PERIOD' },
    enabled: false,
  },
  {
    says: 'RATE_PERIOD when the limited rates are at zero',
    config: { maxconnrate: 5 },
    n: 1,
    events: [],
    probe: { type: 'RATE_PERIOD' },
    enabled: false,
  },
];

describe('the composed model', () => {
  describe('isEnabled', () => {
    for (const c of ENABLED)
      it(`${c.enabled ? 'allows' : 'refuses'} ${c.says}`, () => {
        const { model, state } = run(c.config, c.events, c.n);
        expect(model.isEnabled(state, c.probe)).toBe(c.enabled);
      });

    it('has an allowed and a refused example of every kind of environment event', () => {
      const kinds = new Set(ENABLED.filter((c) => c.enabled).map((c) => c.probe.type));
      const disabled = new Set(ENABLED.filter((c) => !c.enabled).map((c) => c.probe.type));
      const all = [
        'ACCEPT',
        'PROXY_HEADER_OK',
        'PROXY_HEADER_ERROR',
        'TLS_OK',
        'TLS_ERROR',
        'CLIENT_CLOSE',
        'CLIENT_RESET',
        'TIMER_EXPIRE',
        'TASK_WAKEUP',
        'SESSION_END',
        'QUEUE_TASK',
        'RATE_PERIOD',
      ];
      expect([...kinds].sort()).toEqual([...all].sort());
      expect([...disabled].sort()).toEqual([...all].sort());
    });
  });

  describe('step', () => {
    it('returns null for an event that cannot happen, and never changes the state it is given', () => {
      for (const c of ENABLED) {
        const { model, state } = run(c.config, c.events, c.n);
        const copy = structuredClone(state);
        const next = model.step(state, c.probe);
        expect(next === null).toBe(!c.enabled);
        expect(state).toEqual(copy);
        if (next) expect(next.state).not.toBe(state);
      }
    });

    it('returns the machine steps it took, in order', () => {
      const { model, state } = run({}, []);
      const next = model.step(state, ACCEPT)!;
      expect(next.records.map((r) => `${r.machine}:${r.from}→${r.to}`)).toEqual([
        'listener:ready→ready',
        'connection:pending→accepted',
        'session:absent→embryonic',
        'connection:accepted→handshake.proxyHeader',
        'listener:ready→ready',
      ]);
    });
  });

  describe('memory faults', () => {
    it('records none on a kill without a defect', () => {
      const { state } = run({}, [ACCEPT, { type: 'CLIENT_CLOSE', conn: 0 }]);
      expect(state.memory[0]!.faults).toEqual([]);
    });

    it('records a double free when a defect frees the session twice', () => {
      const defect: Defect = {
        rewrite: (record, effects) =>
          record.machine === 'session' && effects.some((x) => x.type === 'sessionFree')
            ? [...effects, { type: 'sessionFree', params: { site: 'defect' } }]
            : effects,
      };
      const { state } = run({}, [ACCEPT, { type: 'CLIENT_CLOSE', conn: 0 }], 1, defect);
      expect(state.memory[0]!.faults).toEqual(['session freed twice']);
    });

    it('records a use after free when a defect logs the kill after the session is freed', () => {
      const defect: Defect = {
        rewrite: (record, effects) =>
          record.machine === 'session'
            ? [
                ...effects.filter((x) => x.type !== 'logEmbryonicKill'),
                ...effects.filter((x) => x.type === 'logEmbryonicKill'),
              ]
            : effects,
      };
      const { state } = run({}, [ACCEPT, { type: 'TIMER_EXPIRE', conn: 0 }], 1, defect);
      expect(state.memory[0]!.faults).toEqual(['kill logged from a session that is not live']);
    });

    it('records a write on a closed fd when a defect sends the 500 after the close', () => {
      const defect: Defect = {
        rewrite: (_record, effects) => [
          ...effects.filter((x) => x.type !== 'send500'),
          ...effects.filter((x) => x.type === 'send500'),
        ],
      };
      const { state } = run(
        { mode: 'http', acceptProxy: false },
        [{ type: 'ACCEPT', fail: 'session' }],
        1,
        defect,
      );
      expect(state.memory[0]!.sent).toEqual(['500']);
      expect(state.memory[0]!.faults).toEqual(['write on a closed fd']);
    });
  });

  describe('the listener under its limits', () => {
    it('accepts the oldest pending connection first', () => {
      const { model, state } = run({ feMaxconn: 5, globalMaxconn: 5 }, [ACCEPT], 3);
      expect([0, 1, 2].map((i) => model.state(state, 'connection', i))).toEqual([
        'handshake.proxyHeader',
        'pending',
        'pending',
      ]);
      const killed = model.step(state, { type: 'CLIENT_CLOSE', conn: 0 })!.state;
      expect(model.nextPending(killed)).toBe(1);
      const next = model.step(killed, ACCEPT)!.state;
      expect([0, 1, 2].map((i) => model.state(next, 'connection', i))).toEqual([
        'closed',
        'handshake.proxyHeader',
        'pending',
      ]);
    });

    it('gives embryonic connections maxconn slots: the next one waits pending while the listener is full, and is accepted after a release', () => {
      const { model, state: full } = run({ feMaxconn: 2, globalMaxconn: 2 }, [ACCEPT, ACCEPT], 3);
      expect(model.state(full, 'listener')).toBe('full');
      expect(model.state(full, 'session', 0)).toBe('embryonic');
      expect(model.state(full, 'session', 1)).toBe('embryonic');
      expect(full.counters).toMatchObject({ nbconn: 2, feconn: 2, actconn: 2, cumSess: 0 });
      expect(model.state(full, 'connection', 2)).toBe('pending');
      expect(model.isEnabled(full, ACCEPT)).toBe(false);

      const released = model.step(full, { type: 'CLIENT_CLOSE', conn: 0 })!.state;
      expect(model.state(released, 'listener')).toBe('ready');
      expect(released.counters).toMatchObject({ nbconn: 1, feconn: 1, actconn: 1 });

      const accepted = model.step(released, ACCEPT)!.state;
      expect(model.state(accepted, 'connection', 2)).toBe('handshake.proxyHeader');
      expect(model.state(accepted, 'listener')).toBe('full');
    });

    it('spends the rate-limit sessions budget on completed sessions only', () => {
      const config = { rateLimitSessions: 1, feMaxconn: 5, globalMaxconn: 5 };
      const { model, state: two } = run(config, [ACCEPT, ACCEPT], 3);
      expect(two.counters.feSessPerSec).toBe(0);
      expect(model.state(two, 'listener')).toBe('ready');

      const completed = model.step(two, { type: 'PROXY_HEADER_OK', conn: 0 })!.state;
      expect(completed.counters.feSessPerSec).toBe(1);

      const limited = model.step(completed, ACCEPT)!.state;
      expect(model.state(limited, 'listener')).toBe('limited.onFrontendQueue');
      expect(model.state(limited, 'connection', 2)).toBe('pending');

      const period = model.step(limited, { type: 'RATE_PERIOD' })!.state;
      const dequeued = model.step(period, { type: 'QUEUE_TASK', queue: 'frontend' })!.state;
      expect(model.state(dequeued, 'listener')).toBe('ready');
      const accepted = model.step(dequeued, ACCEPT)!.state;
      expect(model.state(accepted, 'connection', 2)).toBe('handshake.proxyHeader');
    });

    it('never fires TIMER_EXPIRE on a connection with no timeout configured', () => {
      const { model, state } = run({ timeoutClient: null }, [ACCEPT]);
      expect(state.memory[0]!.deadline).toBeNull();
      expect(model.isEnabled(state, { type: 'TIMER_EXPIRE', conn: 0 })).toBe(false);
      expect(model.step(state, { type: 'TIMER_EXPIRE', conn: 0 })).toBeNull();
      const woken = model.step(state, { type: 'TASK_WAKEUP', conn: 0 })!.state;
      expect(model.state(woken, 'session', 0)).toBe('embryonic');
    });

    it('fires TIMER_EXPIRE on the client-hs deadline in 2.9 even without timeout client', () => {
      const { model, state } = run({ profile: '2.9', timeoutClient: null, timeoutClientHs: 100 }, [ACCEPT]);
      expect(state.memory[0]!.deadline).toBe(100);
      const expired = model.step(state, { type: 'TIMER_EXPIRE', conn: 0 })!.state;
      expect(model.state(expired, 'session', 0)).toBe('freed');
      expect(model.errCode(expired, 0)).toBe('PRX_TIMEOUT');
    });
  });
});
