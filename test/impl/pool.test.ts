import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../machines/config.ts';
import { parseFaultSpecs, Pool, POOL_SITES } from '../../impl/pool.ts';

const tcpHandshake = makeConfig({ mode: 'tcp', acceptProxy: true });
const httpDirect = makeConfig({ mode: 'http', acceptProxy: false, ssl: false });

describe('the pool and its ledger', () => {
  it('gives req and rep buffers of tune.bufsize and reuses freed ones from the free list', () => {
    const pool = new Pool(4096);
    const a = pool.alloc('req');
    expect(a.buf?.length).toBe(4096);
    expect(pool.alloc('session').buf).toBeNull();
    pool.free(a);
    const b = pool.alloc('req');
    expect(b).toBe(a);
    expect(b.serial).toBe(1);
    expect(pool.alloc('req').serial).toBe(2);
    expect(pool.ledger().sites.req).toMatchObject({
      allocs: 3,
      frees: 1,
      live: 2,
      maxLive: 2,
      free: 0,
      failed: 0,
    });
  });

  it('records a second free as a violation and changes nothing else', () => {
    const pool = new Pool(1024);
    const a = pool.alloc('task');
    pool.free(a);
    pool.free(a);
    expect(pool.ledger().sites.task).toMatchObject({ allocs: 1, frees: 1, live: 0, free: 1 });
    expect(pool.violations).toEqual(['task #1 freed twice']);
  });

  it('keeps a pinned buffer out of the free list until its last write completes', () => {
    const pool = new Pool(1024);
    const a = pool.alloc('rep');
    pool.pin(a);
    pool.free(a);
    expect(pool.ledger().sites.rep).toMatchObject({ frees: 1, live: 0, free: 0 });
    expect(pool.alloc('rep')).not.toBe(a);
    pool.unpin(a);
    expect(pool.ledger().sites.rep.free).toBe(1);
  });

  it('waits for every pending write of a freed buffer, not only the first to complete', () => {
    const pool = new Pool(1024);
    const a = pool.alloc('req');
    pool.pin(a);
    pool.pin(a);
    pool.free(a);
    pool.unpin(a);
    expect(pool.ledger().sites.req.free).toBe(0);
    pool.unpin(a);
    expect(pool.ledger().sites.req.free).toBe(1);
  });

  it('records a committed failure that was not injected as a violation', () => {
    const pool = new Pool(1024);
    pool.commit({ site: 'req' });
    expect(pool.violations).toEqual(['committed a failure at req attempt 1 that was not injected']);
  });

  it('plans session_accept’s allocations in HAProxy’s order without consuming anything', () => {
    const pool = new Pool(1024, parseFaultSpecs('task:1,req:1'));
    expect(pool.planAccept('plain', tcpHandshake, 0)).toEqual({ site: 'task' });
    expect(pool.planAccept('plain', tcpHandshake, 0)).toEqual({ site: 'task' });
    // A rejected or monitored source stops after the session: its task is never allocated.
    expect(pool.planAccept('denied', tcpHandshake, 0)).toEqual({ site: 'none' });
    expect(pool.planAccept('monitor', tcpHandshake, 0)).toEqual({ site: 'none' });
    // Without a handshake, session_complete's buffers are part of session_accept.
    expect(new Pool(1024, parseFaultSpecs('txn:1')).planAccept('plain', httpDirect, 0)).toEqual({
      site: 'txn',
    });
    expect(new Pool(1024, parseFaultSpecs('txn:1')).planAccept('plain', tcpHandshake, 0)).toEqual({
      site: 'none',
    });
    expect(pool.ledger().sites.task.attempts).toBe(0);
  });

  it('plans the SSL context of a TLS bind before the session under 2.x, whose conn_prepare makes it first', () => {
    const tls26 = makeConfig({ profile: '2.6', acceptProxy: false, ssl: true, maxsslconn: 2 });
    const pool = new Pool(1024, parseFaultSpecs('session:1,ssl:1'));
    expect(pool.planAccept('plain', tls26, 1)).toEqual({ site: 'ssl' });
    // A source the rules reject has its SSL context made too, before the rules run.
    expect(pool.planAccept('denied', tls26, 1)).toEqual({ site: 'ssl' });
    // At maxsslconn nothing is allocated: the context is refused before the session exists.
    expect(pool.planAccept('plain', tls26, 2)).toEqual({ site: 'none' });
    // The same faults under 1.5-dev12: the session comes first.
    expect(pool.planAccept('plain', { ...tls26, profile: 'dev12' }, 1)).toEqual({ site: 'session' });
  });

  it('plans the SSL context of a TLS bind after the task, unless maxsslconn refuses it first', () => {
    const tls = makeConfig({ acceptProxy: false, ssl: true, maxsslconn: 2 });
    const pool = new Pool(1024, parseFaultSpecs('ssl:1'));
    const plan = pool.planAccept('plain', tls, 1);
    expect(plan).toEqual({ site: 'ssl' });
    expect(Pool.acceptFail(plan)).toBe('dataInit');
    expect(Pool.completeFail(plan)).toBe('none');
    // sslconns at maxsslconn: ssl_sock_init refuses before SSL_new, whose fault stays pending.
    expect(pool.planAccept('plain', tls, 2)).toEqual({ site: 'none' });
    expect(pool.planAccept('plain', tcpHandshake, 0)).toEqual({ site: 'none' });
  });

  it('fails the n-th attempt at a site once committed, then allocates the next one', () => {
    const pool = new Pool(1024, parseFaultSpecs('req:2'));
    expect(pool.planComplete(tcpHandshake)).toEqual({ site: 'none' });
    pool.free(pool.alloc('req'));
    const plan = pool.planComplete(tcpHandshake);
    expect(plan).toEqual({ site: 'req' });
    expect(Pool.completeFail(plan)).toBe('req');
    pool.commit(plan);
    expect(pool.planComplete(tcpHandshake)).toEqual({ site: 'none' });
    expect(pool.ledger()).toMatchObject({ faults: [], violations: [] });
    expect(pool.ledger().sites.req).toMatchObject({ attempts: 2, allocs: 1, failed: 1 });
  });

  it('records an allocation the plan said would fail as a violation, and still allocates', () => {
    const pool = new Pool(1024, parseFaultSpecs('session:1'));
    expect(pool.alloc('session').live).toBe(true);
    expect(pool.violations).toEqual([
      'allocation 1 at session was injected to fail but the machine allocated it',
    ]);
  });

  it('reads SITE:N lists and refuses anything else', () => {
    expect(parseFaultSpecs('session:1, rep:3')).toEqual([
      { site: 'session', n: 1 },
      { site: 'rep', n: 3 },
    ]);
    expect(parseFaultSpecs('')).toEqual([]);
    for (const bad of ['buf:1', 'req:0', 'req', 'req:x', 'req:1;rep:2'])
      expect(() => parseFaultSpecs(bad)).toThrow(/bad allocation fault/);
    expect(POOL_SITES).toEqual(['session', 'task', 'ssl', 'req', 'rep', 'txn']);
  });
});
