/**
 * The proxy's clock: the virtual TestClock on its own, then the proxy on both clocks. With
 * `--test-clock` a deadline or a queue task waits for `set clock advance` however long it has been
 * in real time; without it, the same deadline strikes in real time and `set clock` is refused.
 */
import { createHook } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realClock, TestClock, type Timer } from '../../impl/clock.ts';
import {
  client,
  proxyConfig,
  sleep,
  startProxyProcess,
  stopEchoedProxy,
  type ProxyProcess,
} from './harness.ts';

describe('TestClock', () => {
  it('fires nothing until it is advanced, then each timer at its due time', () => {
    const clock = new TestClock();
    const fired: [string, number][] = [];
    clock.after(50, (name: string) => fired.push([name, clock.now()]), 'a');
    clock.after(20, (name: string) => fired.push([name, clock.now()]), 'b');
    expect(fired).toEqual([]);
    expect(clock.advance(19)).toBe(0);
    expect(clock.advance(40)).toBe(2);
    expect(fired).toEqual([
      ['b', 20],
      ['a', 50],
    ]);
    expect(clock.now()).toBe(59);
  });

  it('fires timers due at the same instant in the order they were armed, a periodic one re-armed after it fired', () => {
    const clock = new TestClock();
    const fired: string[] = [];
    clock.every(100, () => fired.push('period'));
    clock.advance(50);
    clock.after(50, () => fired.push('armed at 50 for 100'));
    clock.advance(50); // both due at 100: the periodic timer was armed first
    clock.after(100, () => fired.push('armed at 100 for 200'));
    clock.advance(100); // both due at 200: the period was re-armed at 100, after its callback, before this one
    expect(fired).toEqual(['period', 'armed at 50 for 100', 'period', 'armed at 100 for 200']);
  });

  it('lets a timer armed by a callback fire within the same advance when it falls due', () => {
    const clock = new TestClock();
    const fired: number[] = [];
    clock.after(10, () => clock.after(10, () => fired.push(clock.now())));
    clock.advance(25);
    expect(fired).toEqual([20]);
  });

  it('never fires a cancelled timer, periodic or not', () => {
    const clock = new TestClock();
    const fired: string[] = [];
    const once = clock.after(20, () => fired.push('once'));
    const period = clock.every(10, () => fired.push('period'));
    clock.advance(10);
    period.cancel();
    once.cancel();
    clock.advance(100);
    expect(fired).toEqual(['period']);
    expect(clock.pending).toBe(0);
  });

  it('refuses to move backwards or by a fraction of a millisecond', () => {
    const clock = new TestClock();
    expect(() => clock.advance(-1)).toThrow(/cannot advance the clock by -1 ms/);
    expect(() => clock.advance(0.5)).toThrow(/cannot advance/);
  });
});

describe('realClock', () => {
  it('fires after the real delay, and not at all once cancelled', async () => {
    const start = realClock.now();
    const fired: number[] = [];
    realClock.after(20, () => fired.push(realClock.now() - start));
    realClock.after(20, () => fired.push(-1)).cancel();
    await sleep(60);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(19);
  });

  it('passes its two arguments to the callback', async () => {
    const got: unknown[] = [];
    realClock.after(5, (a: string, b: number) => got.push(a, b), 'conn', 7);
    await sleep(30);
    expect(got).toEqual(['conn', 7]);
  });

  it('fires the deadlines of one duration in the order they were armed, none before its time', async () => {
    const start = realClock.now();
    const fired: [string, number][] = [];
    const mark = (name: string): void => void fired.push([name, realClock.now() - start]);
    realClock.after(30, mark, 'first');
    await sleep(10);
    realClock.after(30, mark, 'second');
    await sleep(10);
    realClock.after(30, mark, 'third');
    await sleep(60);
    expect(fired.map(([n]) => n)).toEqual(['first', 'second', 'third']);
    expect(fired[1]![1]).toBeGreaterThanOrEqual(39);
    expect(fired[2]![1]).toBeGreaterThanOrEqual(49);
  });

  it('still fires the next deadline on time when the head of its queue is cancelled', async () => {
    const start = realClock.now();
    const fired: number[] = [];
    const head = realClock.after(20, () => fired.push(-1));
    await sleep(5);
    realClock.after(20, () => fired.push(realClock.now() - start));
    head.cancel();
    head.cancel(); // idempotent
    await sleep(50);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(24);
  });

  it('orders deadlines of different durations by due time', async () => {
    const fired: string[] = [];
    realClock.after(40, () => fired.push('long'));
    realClock.after(10, () => fired.push('short'));
    realClock.after(25, () => fired.push('middle'));
    await sleep(70);
    expect(fired).toEqual(['short', 'middle', 'long']);
  });

  it('lets a callback arm a deadline of the same duration', async () => {
    const fired: string[] = [];
    realClock.after(10, () => {
      fired.push('outer');
      realClock.after(10, () => fired.push('inner'));
    });
    await sleep(50);
    expect(fired).toEqual(['outer', 'inner']);
  });

  it('keeps the later deadlines of a queue armed when a callback throws', async () => {
    const fired: string[] = [];
    const errors: unknown[] = [];
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', function clockTestOnThrow(err) {
      errors.push(err);
    });
    try {
      realClock.after(10, () => {
        throw new Error('callback failed');
      });
      await sleep(3);
      realClock.after(10, () => fired.push('after the throw'));
      await sleep(50);
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of listeners) process.on('uncaughtException', l);
    }
    expect(errors.map((e) => (e as Error).message)).toEqual(['callback failed']);
    expect(fired).toEqual(['after the throw']);
  });

  it('holds no Node timer once every deadline has fired or been cancelled', async () => {
    // The Node timers the clock makes, told apart from any other timer of this process (vitest's,
    // an earlier test's) by async_hooks: those created while it arms a deadline, and those a timer
    // of its own creates when it fires (a wake that came early arms again).
    const live = new Set<number>();
    let arming = false;
    const hook = createHook({
      init(id, type, trigger) {
        if (type === 'Timeout' && (arming || live.has(trigger))) live.add(id);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    const arm = (ms: number): Timer => {
      arming = true;
      try {
        return realClock.after(ms, () => undefined);
      } finally {
        arming = false;
      }
    };
    const settled = (): Promise<void> => new Promise((r) => setImmediate(r)); // destroy hooks run later
    try {
      const armed = Array.from({ length: 100 }, (_, i) => arm(1000 + (i % 3)));
      expect(live.size).toBe(3); // one per duration, not one per deadline
      for (const t of armed) t.cancel();
      await settled();
      expect(live.size).toBe(0);
      arm(5);
      expect(live.size).toBe(1);
      await sleep(30);
      await settled();
      expect(live.size).toBe(0);
    } finally {
      hook.disable();
    }
  });
});

const D = 150; // timeout client, the handshake deadline, in ms

const config = (dir: string) =>
  proxyConfig(
    dir,
    `${D}ms`,
    `
frontend fe
    bind 127.0.0.1:0 accept-proxy name main
    maxconn 5
    default_backend be

backend be
    server s1 127.0.0.1:1
`,
    { globalMaxconn: 100, statsAdmin: true },
  );

describe('the proxy with --test-clock', () => {
  let proxy: ProxyProcess;

  beforeAll(async () => {
    proxy = await startProxyProcess(config, ['--test-clock']);
  });
  afterAll(() => stopEchoedProxy(proxy, undefined));

  it('keeps a silent client open however long it waits in real time, until the clock reaches its deadline', async () => {
    const c = client(proxy.port, { limitMs: 5000 });
    await c.connected;
    await sleep(2 * D);
    expect(c.socket.destroyed).toBe(false);
    expect((await proxy.info()).CurrConns).toBe('1');
    expect(await proxy.query(`set clock advance ${D - 1}`)).toBe('\n');
    await sleep(30);
    expect(c.socket.destroyed).toBe(false);
    const advanced = performance.now();
    expect(await proxy.query('set clock advance 1')).toBe('\n');
    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(performance.now() - advanced).toBeLessThan(D);
    expect(
      proxy.lines(new RegExp(`:${c.localPort} .*fe/main: Timeout while waiting for PROXY protocol header$`)),
    ).toHaveLength(1);
    expect((await proxy.info()).CurrConns).toBe('0');
  });

  it('gives each connection its own deadline, counted on the virtual clock from its accept', async () => {
    const c = client(proxy.port, { limitMs: 5000 });
    await c.connected;
    await sleep(20);
    await proxy.query(`set clock advance ${D / 2}`);
    const late = client(proxy.port, { limitMs: 5000 });
    await late.connected;
    await sleep(20);
    await proxy.query(`set clock advance ${D / 2}`); // the first one's deadline, not the second's
    expect((await c.outcome).how).toBe('fin');
    await sleep(30);
    expect(late.socket.destroyed).toBe(false);
    await proxy.query(`set clock advance ${D / 2}`);
    expect((await late.outcome).how).toBe('fin');
  });

  it('refuses a malformed or too long set clock command, saying why', async () => {
    expect(await proxy.query('set clock advance -5')).toMatch(/^Unknown command: 'set clock advance -5'/);
    expect(await proxy.query('set clock advance 86400001')).toBe(
      'set clock: advance at most 86400000 ms at once\n\n',
    );
  });
});

describe('the proxy on the real clock (no --test-clock)', () => {
  let proxy: ProxyProcess;

  beforeAll(async () => {
    proxy = await startProxyProcess(config);
  });
  afterAll(() => stopEchoedProxy(proxy, undefined));

  it('refuses set clock advance', async () => {
    expect(await proxy.query('set clock advance 1000')).toBe(
      'set clock: the proxy runs on the real clock (start it with --test-clock)\n\n',
    );
  });

  it('gives a silent client its FIN at the deadline in real time', async () => {
    const c = client(proxy.port);
    await c.connected;
    const o = await c.outcome;
    expect(o.how).toBe('fin');
    expect(o.ms).toBeGreaterThanOrEqual(D - 15);
    expect(o.ms).toBeLessThan(D + 250);
  });
});
