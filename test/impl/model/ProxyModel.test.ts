/**
 * The scenarios' model (test/impl/model/ProxyModel.ts) and the commands that drive it: a client
 * that reset its connection in the backlog never meets a refusing backend at accept, where the
 * proxy's BACKEND econ would depend on which of the two it reads first. Model only: no proxy runs.
 */
import { describe, expect, it } from 'vitest';
import { CONFIGS } from './configs.ts';
import { ModelError, ProxyModel } from './ProxyModel.ts';
import { dryRun, type Action } from './script.ts';

const connect: Action = { do: 'connect', src: 'plain' };
const refuse: Action = { do: 'backend', mode: 'refuse' };

describe('a client reset in the backlog against a refusing backend', () => {
  it.each(['http', 'http26'] as const)(
    'does not let a client in the backlog reset while the backend refuses, when the stream starts at accept (%s)',
    (name) => {
      const actions: Action[] = [connect, connect, connect, refuse, { do: 'reset', c: 2 }];
      expect(() => dryRun(CONFIGS[name], actions)).toThrow(ModelError);
      expect(() => dryRun(CONFIGS[name], actions)).toThrow(/cannot c2: reset now/);
    },
  );

  it.each(['http', 'http26'] as const)(
    'does not let the backend refuse while a reset waits in the backlog, when the stream starts at accept (%s)',
    (name) => {
      const actions: Action[] = [connect, connect, connect, { do: 'reset', c: 2 }, refuse];
      expect(() => dryRun(CONFIGS[name], actions)).toThrow(/cannot backend refuse now/);
    },
  );

  it('lets a client reset in the backlog when the backend accepts its stream', () => {
    const m = dryRun(CONFIGS.http26, [
      connect,
      connect,
      connect,
      { do: 'reset', c: 2 },
      { do: 'halfclose', c: 0 },
    ]);
    expect(m.clients[2]!.stream).toEqual({ mode: 'echo' });
    expect(m.clients[2]!.ended).toBe(true);
  });

  it('lets a client without a waiting reset meet the refusing backend at accept', () => {
    const m = dryRun(CONFIGS.http26, [connect, connect, connect, refuse, { do: 'reset', c: 0 }]);
    expect(m.clients[2]!.stream).toEqual({ mode: 'refuse' });
    expect(m.tally.refused).toBe(1);
  });

  it('lets a client in the backlog reset while the backend refuses when a handshake comes first', () => {
    const m = dryRun(CONFIGS.pp, [
      connect,
      connect,
      connect,
      refuse,
      { do: 'reset', c: 2 },
      { do: 'reset', c: 0 },
    ]);
    expect(m.state.memory[2]!.fd).toBe('closed');
    expect(m.clients[2]!.stream).toBeNull();
  });

  it('lets a rejected client in the backlog reset while the backend refuses: it gets no stream', () => {
    const m = dryRun(CONFIGS.http, [
      connect,
      connect,
      { do: 'connect', src: 'denied' },
      refuse,
      { do: 'reset', c: 2 },
    ]);
    expect(m.parked(2)).toBe(true);
  });

  it('stops the model when a stream would start against a refusing backend with its reset waiting', () => {
    const m = new ProxyModel(CONFIGS.http26, 6, 0);
    for (let i = 0; i < 3; i++) m.connect('plain');
    m.close(2, 'rst');
    m.setBackend('refuse');
    expect(() => m.close(0, 'rst')).toThrow(
      /c2 starts its stream against a refusing backend with its reset waiting/,
    );
  });
});
