/**
 * The proxy's clock: the one place its handshake deadlines (armDeadline), its listener queue tasks
 * (scheduleQueueTask) and its one-second rate period are armed, so that a test can drive time
 * instead of sleeping.
 *
 * Two clocks:
 *   realClock   performance.now(), and a wait queue over Node's timers (see below). The default,
 *               and the only clock a proxy started without `--test-clock` ever uses.
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
 *
 * The real clock's wait queue. Every accepted connection has a deadline armed until its handshake
 * ends, so a deadline is part of what an embryonic connection costs. HAProxy keeps a task's expiry
 * in the scheduler's timers tree (task_queue) and wakes expired tasks from the poll loop
 * (wake_expired_tasks), with no OS timer per task. The real clock does the same with one FIFO per
 * duration (deadlines of one duration are armed in due order) and one Node timer per FIFO, armed
 * for its head: a deadline is one small list node (Deadline), where a Node Timeout with its
 * wrapper and arguments took about twice the heap. Cancelling unlinks the node; the FIFO's Node
 * timer is left as it is (when it fires early for a head already gone, it is armed again for the
 * new head) unless the FIFO is empty, then it is cleared, so that an idle proxy holds no timer.
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
  /** Calls fn(a, b) once, `ms` from now. The caller owns the returned timer. */
  after<A = undefined, B = undefined>(ms: number, fn: (a: A, b: B) => void, a?: A, b?: B): Timer;
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

/** One armed deadline of the real clock: a node of its duration's FIFO (DeadlineFifo). */
class Deadline implements Timer {
  prev: Deadline | null = null;
  next: Deadline | null = null;
  armed = true;

  constructor(
    private readonly fifo: DeadlineFifo,
    readonly due: number, //                 on performance.now()'s time line
    readonly fn: (a: unknown, b: unknown) => void,
    readonly a: unknown,
    readonly b: unknown,
  ) {}

  cancel(): void {
    if (this.armed) this.fifo.remove(this);
  }
}

/**
 * The armed deadlines of one duration, oldest first (so in due order), and the Node timer that
 * wakes them: armed for the head when the FIFO stops being empty, and again after each wake while
 * deadlines remain. Owns its Node timer; removes itself from `fifos` once empty.
 */
class DeadlineFifo {
  private head: Deadline | null = null;
  private tail: Deadline | null = null;
  private handle: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly fifos: Map<number, DeadlineFifo>,
  ) {}

  /** Arms `fn(a, b)` for `ms` from now and returns its deadline (the caller owns it). */
  push(fn: (a: unknown, b: unknown) => void, a: unknown, b: unknown): Deadline {
    const d = new Deadline(this, performance.now() + this.ms, fn, a, b);
    if (this.tail === null) {
      this.head = d;
      this.tail = d;
    } else {
      d.prev = this.tail;
      this.tail.next = d;
      this.tail = d;
    }
    if (this.handle === null) this.wakeAt(d.due);
    return d;
  }

  /** Unlinks the armed deadline `d`; clears the Node timer if no deadline is left. */
  remove(d: Deadline): void {
    d.armed = false;
    if (d.prev) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = null;
    d.next = null;
    if (this.head === null) this.drop();
  }

  /** The Node timer fired: runs every deadline due, in order, then arms for the next one. */
  wake(): void {
    this.handle = null;
    const now = performance.now();
    try {
      for (let d = this.head; d !== null && d.due <= now; d = this.head) {
        this.remove(d);
        d.fn(d.a, d.b);
      }
    } finally {
      // Also when a callback throws: the deadlines after it stay armed.
      if (this.head !== null && this.handle === null) this.wakeAt(this.head.due);
      else if (this.head === null) this.drop();
    }
  }

  private wakeAt(due: number): void {
    // Node's timers run on the loop's millisecond clock: a wake may come a fraction of a
    // millisecond before `due` on performance.now(), and then arms again.
    this.handle = setTimeout(deadlineFifoOnWake, Math.max(1, Math.ceil(due - performance.now())), this);
  }

  private drop(): void {
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
    if (this.fifos.get(this.ms) === this) this.fifos.delete(this.ms);
  }
}

/** The Node timer of a DeadlineFifo fired. */
function deadlineFifoOnWake(fifo: DeadlineFifo): void {
  fifo.wake();
}

/** The real clock's FIFOs, by duration in ms. */
const fifos = new Map<number, DeadlineFifo>();

/** The real clock: performance.now(), its wait queue for `after`, Node's setInterval for `every`. */
export const realClock: Clock = {
  now: () => performance.now(),
  after<A = undefined, B = undefined>(ms: number, fn: (a: A, b: B) => void, a?: A, b?: B): Timer {
    const d = Math.max(0, ms);
    let fifo = fifos.get(d);
    if (!fifo) {
      fifo = new DeadlineFifo(d, fifos);
      fifos.set(d, fifo);
    }
    return fifo.push(fn as (a: unknown, b: unknown) => void, a, b);
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

  after<A = undefined, B = undefined>(ms: number, fn: (a: A, b: B) => void, a?: A, b?: B): Timer {
    return this.arm(ms, null, () => fn(a as A, b as B));
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
