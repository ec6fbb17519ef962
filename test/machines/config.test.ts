/**
 * The configuration as input: defaults, the bind maxconn default, the handshake deadline per
 * profile (I12: client-hs in 2.9 if set, else timeout client; none at all = TICK_ETERNITY), and
 * where a 500 may be written (I15: http mode on a raw transport).
 */
import { describe, expect, it } from 'vitest';
import { createActor, type AnyStateMachine } from 'xstate';
import { MACHINES } from '../../machines/compose.ts';
import {
  answers500,
  configOf,
  DEFAULT_CONFIG,
  handshakeTimeout,
  hasHandshake,
  makeConfig,
  sslLimitReached,
  type ModelConfig,
} from '../../machines/config.ts';

describe('makeConfig', () => {
  it('returns the defaults when given nothing, as a copy', () => {
    const config = makeConfig();
    expect(config).toEqual(DEFAULT_CONFIG);
    expect(config).not.toBe(DEFAULT_CONFIG);
  });

  it("makes the bind maxconn follow the frontend's maxconn unless it is given", () => {
    expect(makeConfig({ feMaxconn: 7 }).bindMaxconn).toBe(7);
    expect(makeConfig({ feMaxconn: 7, bindMaxconn: 3 }).bindMaxconn).toBe(3);
    expect(makeConfig({ bindMaxconn: 3 }).feMaxconn).toBe(DEFAULT_CONFIG.feMaxconn);
  });

  it('never changes DEFAULT_CONFIG', () => {
    const before = structuredClone(DEFAULT_CONFIG);
    makeConfig({ feMaxconn: 99, mode: 'http' }).globalMaxconn = 1;
    expect(DEFAULT_CONFIG).toEqual(before);
  });
});

describe('handshakeTimeout', () => {
  it.each([
    ['dev12', 300, 100, 300],
    ['dev12', null, 100, null],
    ['2.6', 300, 100, 300],
    ['2.6', null, null, null],
    ['2.9', 300, 100, 100],
    ['2.9', 300, null, 300],
    ['2.9', null, 100, 100],
    ['2.9', null, null, null],
    ['dev12', 0, null, null],
    ['2.6', 0, null, null],
    ['2.9', 300, 0, 300],
    ['2.9', 0, 0, null],
  ] as const)(
    'in %s, with timeout client %s and timeout client-hs %s, arms %s (null: no deadline; 0 is unset)',
    (profile, timeoutClient, timeoutClientHs, expected) => {
      expect(handshakeTimeout(makeConfig({ profile, timeoutClient, timeoutClientHs }))).toBe(expected);
    },
  );
});

describe('sslLimitReached', () => {
  it('refuses an SSL context at maxsslconn, and never with maxsslconn 0 or unset (global.maxsslconn && ...)', () => {
    expect(sslLimitReached(makeConfig({ ssl: true, maxsslconn: 2 }), 2)).toBe(true);
    expect(sslLimitReached(makeConfig({ ssl: true, maxsslconn: 2 }), 1)).toBe(false);
    expect(sslLimitReached(makeConfig({ ssl: true, maxsslconn: 0 }), 5)).toBe(false);
    expect(sslLimitReached(makeConfig({ ssl: true, maxsslconn: null }), 5)).toBe(false);
    expect(sslLimitReached(makeConfig({ ssl: false, maxsslconn: 2 }), 5)).toBe(false);
  });
});

describe('answers500', () => {
  it.each([
    ['answers 500 in http mode on a raw transport', { mode: 'http', ssl: false, acceptProxy: false }, true],
    [
      'answers 500 in http mode behind accept-proxy, still a raw transport',
      { mode: 'http', ssl: false, acceptProxy: true },
      true,
    ],
    ['sends no 500 on a TLS transport', { mode: 'http', ssl: true, acceptProxy: false }, false],
    ['sends no 500 in tcp mode', { mode: 'tcp', ssl: false, acceptProxy: false }, false],
  ] as [string, Partial<ModelConfig>, boolean][])('%s', (_name, partial, expected) => {
    expect(answers500(makeConfig(partial))).toBe(expected);
  });
});

describe('hasHandshake', () => {
  it.each([
    ['has a handshake with accept-proxy', { acceptProxy: true, ssl: false }, true],
    ['has a handshake with ssl', { acceptProxy: false, ssl: true }, true],
    ['has a handshake with both', { acceptProxy: true, ssl: true }, true],
    ['has no handshake on a plain bind', { acceptProxy: false, ssl: false }, false],
  ] as [string, Partial<ModelConfig>, boolean][])('%s', (_name, partial, expected) => {
    expect(hasHandshake(makeConfig(partial))).toBe(expected);
  });
});

describe('configOf', () => {
  it("returns the input's configuration, or the default one for an actor without input", () => {
    const config = makeConfig({ feMaxconn: 7 });
    expect(configOf({ config })).toBe(config);
    expect(configOf(undefined)).toBe(DEFAULT_CONFIG);
  });

  it('lets every machine start without input, as the throwaway actors of XState’s pure helpers do', () => {
    for (const machine of Object.values(MACHINES) as AnyStateMachine[]) {
      const snapshot = createActor(machine).getSnapshot() as {
        status: string;
        context: { config: ModelConfig };
      };
      expect(snapshot.status).toBe('active');
      expect(snapshot.context.config).toBe(DEFAULT_CONFIG);
    }
  });
});
