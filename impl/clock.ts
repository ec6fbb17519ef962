/**
 * The proxy's clock: the one place its handshake deadlines (armDeadline), its listener queue tasks
 * (scheduleQueueTask) and its one-second rate period are armed, so that a test can drive time
 * instead of sleeping.
 *
 * Two clocks:
 *   realClock   Node's timers and performance.now(). The default, and the only clock a proxy
 *               started without `--test-clock` ever uses.
 *   TestClock   virtual time that moves only when told to: `advance(ms)` fires, synchronously and
 *               in order, every timer due within the next `ms` milliseconds. The proxy uses it
 *               when started with `embryonic proxy --test-clock` (never by default); the stats
 *               socket command `set clock advance MS` (impl/stats.ts) moves it. The stream's own
 *               timeouts (timeout connect/server/client in the data phase, impl/stream.ts) stay on
 *               Node's timers.
 *
 * Order. Timers fire by due time; timers due at the same instant fire in the order they were
 * armed (a periodic timer counts as armed again each time it fires, after its callback ran).
 * While a callback runs, now() is its due time; after advance(ms), now() is the start plus `ms`.
 * Work a callback defers with setImmediate (the accept loop after a resume, impl/driver.ts) runs
 * after advance() returns, at the new now(), as it would after a poll loop.
 */

/** One armed timer. */
export interface Timer {
  /** Disarms the timer; it will not fire again. Idempotent. */
  cancel(): void;
}

/** What the proxy arms its deadlines and queue tasks with. */
export interface Clock {
  /** Milliseconds on this clock's time line (performance.now() for the real clock). */
  now(): number;
  /** Calls fn(...args) once, `ms` from now. The caller owns the returned timer. */
  after<A extends unknown[]>(ms: number, fn: (...args: A) => void, ...args: A): Timer;
  /**
   * Calls fn(...args) every `ms`, the first time `ms` from now. A periodic timer never keeps the
   * process alive on its own (the real one is unref'd).
   */
  every<A extends unknown[]>(ms: number, fn: (...args: A) => void, ...args: A): Timer;
}

/** Node's timers, wrapped. */
class RealTimer implements Timer {
  constructor(private readonly handle: NodeJS.Timeout) {}

  cancel(): void {
    clearTimeout(this.handle);
  }
}

/** The real clock: Node's timers and performance.now(). */
export const realClock: Clock = {
  now: () => performance.now(),
  after(ms, fn, ...args) {
    return new RealTimer(setTimeout(fn, ms, ...args));
  },
  every(ms, fn, ...args) {
    const handle = setInterval(fn, ms, ...args);
    handle.unref();
    return new RealTimer(handle);
  },
};

/** One timer of a TestClock. */
class VirtualTimer implements Timer {
  armed = true;

  constructor(
    private readonly clock: TestClock,
    public due: number,
    public seq: number,
    readonly period: number | null,
    readonly fire: () => void,
  ) {}

  cancel(): void {
    if (!this.armed) return;
    this.armed = false;
    this.clock.forget(this);
  }
}

/**
 * Virtual time for tests (see the file comment). Starts at 0. Owns its timers; nothing fires
 * unless advance() is called.
 */
export class TestClock implements Clock {
  private time = 0;
  private seq = 0;
  private readonly timers = new Set<VirtualTimer>();

  now(): number {
    return this.time;
  }

  after<A extends unknown[]>(ms: number, fn: (...args: A) => void, ...args: A): Timer {
    return this.arm(ms, null, () => fn(...args));
  }

  every<A extends unknown[]>(ms: number, fn: (...args: A) => void, ...args: A): Timer {
    if (!(ms > 0)) throw new Error(`a periodic timer needs a period > 0, not ${ms}`);
    return this.arm(ms, ms, () => fn(...args));
  }

  /**
   * Moves time forward by `ms` (an integer ≥ 0), firing every timer due by then in (due, armed)
   * order, each with now() at its due time. Returns how many timers fired. A callback that throws
   * stops the advance and the error propagates, as an exception in a Node timer would.
   */
  advance(ms: number): number {
    if (!Number.isInteger(ms) || ms < 0) throw new Error(`cannot advance the clock by ${ms} ms`);
    const target = this.time + ms;
    let fired = 0;
    for (;;) {
      const next = this.earliest();
      if (!next || next.due > target) break;
      this.time = next.due;
      if (next.period === null) {
        next.armed = false;
        this.timers.delete(next);
      }
      next.fire();
      fired++;
      if (next.period !== null && next.armed) {
        next.due += next.period;
        next.seq = this.seq++;
      }
    }
    this.time = target;
    return fired;
  }

  /** How many timers are armed. */
  get pending(): number {
    return this.timers.size;
  }

  /** Removes a cancelled timer (VirtualTimer.cancel). */
  forget(timer: VirtualTimer): void {
    this.timers.delete(timer);
  }

  private arm(ms: number, period: number | null, fire: () => void): Timer {
    const t = new VirtualTimer(this, this.time + Math.max(0, ms), this.seq++, period, fire);
    this.timers.add(t);
    return t;
  }

  private earliest(): VirtualTimer | null {
    let best: VirtualTimer | null = null;
    for (const t of this.timers)
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }
}
