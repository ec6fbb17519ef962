import { describe, expect, it } from 'vitest';
import { HISTORY_PATHS } from '../../properties/historyPaths.ts';
import { checkHistoryPath, replay } from '../../properties/replay.ts';
import { makeConfig } from '../../machines/config.ts';

describe('the paths of haproxy-history.md §3', () => {
  it.each(HISTORY_PATHS.map((p) => [p.name, p] as const))(
    'replays "%s" with its exact counters',
    (_name, path) => {
      expect(checkHistoryPath(path)).toEqual([]);
    },
  );

  it('counts an embryonic connection in every gauge while it waits, and in none of the session counters', () => {
    const { state } = replay(makeConfig({ acceptProxy: true }), [{ type: 'ACCEPT' }]);
    expect(state.counters).toMatchObject({
      feconn: 1,
      actconn: 1,
      jobs: 1,
      nbconn: 1,
      connMax: 1,
      cumConn: 1,
      cumSess: 0,
    });
    expect(state.memory[0]!.bufs).toEqual({ req: 'none', rep: 'none', txn: 'none' });
  });

  it('detects a path whose counters differ from the table', () => {
    const wrong = {
      ...HISTORY_PATHS.find((p) => p.name === 'embryonic timeout')!,
      counters: { totalconn: 1 },
    };
    expect(checkHistoryPath(wrong)).toContain('cumConn is 1, expected 0');
  });

  it('refuses to replay an event that cannot happen', () => {
    expect(() => replay(makeConfig({}), [{ type: 'SESSION_END', conn: 0 }])).toThrow(/cannot happen/);
  });
});
