import { describe, expect, it } from 'vitest';
import { FdTab, RECENT } from '../../impl/fdtab.ts';

describe('the fd table', () => {
  it('follows an fd from the backlog to fdtab and records its one close', () => {
    const t = new FdTab();
    t.open(12, 1);
    expect(t.report().live).toEqual([{ fd: 12, conn: 1, state: 'backlog' }]);
    t.take(12, 1);
    expect(t.report().live).toEqual([{ fd: 12, conn: 1, state: 'accepted' }]);
    t.insert(12, 1);
    expect(t.report().live).toEqual([{ fd: 12, conn: 1, state: 'inserted' }]);
    expect(t.close(12, 1, 'rst', 'kill_mini_session')).toBe(true);
    expect(t.report()).toMatchObject({
      live: [],
      opens: 1,
      closes: 1,
      fin: 0,
      rst: 1,
      recent: [{ fd: 12, conn: 1, how: 'rst', site: 'kill_mini_session', state: 'inserted' }],
      violations: [],
    });
  });

  it('records a second close as a violation without throwing, and tells the caller not to close', () => {
    const t = new FdTab();
    t.open(7, 3);
    expect(t.close(7, 3, 'fin', 'out_close')).toBe(true);
    expect(t.close(7, 3, 'fin', 'session_free')).toBe(false);
    expect(t.report()).toMatchObject({ closes: 1, fin: 1 });
    expect(t.violations).toEqual([
      'fd 7 closed at session_free by connection 3 but it is not open (closed twice?)',
    ]);
  });

  it('records a close by a connection that does not own the fd, and an fd reused while still open', () => {
    const t = new FdTab();
    t.open(9, 1);
    expect(t.close(9, 2, 'fin', 'x')).toBe(false);
    t.open(9, 4);
    expect(t.violations).toEqual([
      'fd 9 closed at x by connection 2 but connection 1 owns it',
      'fd 9 of connection 1 was never closed (reused by 4)',
    ]);
    t.insert(9, 4);
    t.insert(9, 4);
    expect(t.violations[2]).toBe('fd 9 inserted twice (connection 4)');
  });

  it('lists the live fds in fd order', () => {
    const t = new FdTab();
    t.open(9, 1);
    t.open(3, 2);
    expect(t.report().live.map((e) => e.fd)).toEqual([3, 9]);
  });

  it(`keeps the last ${RECENT} closes, the oldest dropped first`, () => {
    const t = new FdTab();
    for (let fd = 0; fd <= RECENT; fd++) {
      t.open(fd, fd);
      t.close(fd, fd, 'fin', 'session_free');
    }
    const recent = t.report().recent;
    expect(recent).toHaveLength(RECENT);
    expect([recent[0]!.fd, recent.at(-1)!.fd]).toEqual([1, RECENT]);
  });
});
