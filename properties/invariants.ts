/**
 * The invariants of the composed system, as named predicates in the manner of TLA+: each one says
 * "True iff …" and returns null when it holds, or a sentence naming what is wrong.
 *
 * They are stated against ground truth, never against the counter they check: a counter is
 * compared with a count of what the model's memory holds (the sessions that are live, the fds that
 * are open, the buffers that were allocated) and with the machines' states; a counter's change in a
 * step is compared with the machine transitions taken in that step. The facts come from
 * haproxy-history.md (invariants I1–I22, §3 "Common release block", the seed bugs), not from the
 * machines: the machines are what is being checked.
 *
 * State invariants hold in every reachable state. Step invariants hold on every step (an edge
 * between two states, with the machine steps it took); they are not checked on the initial state.
 */
import type { TransitionRecord } from '../machines/compose.ts';
import type { ModelConfig } from '../machines/config.ts';
import type { Counters } from '../machines/counters.ts';
import type { EffectName } from '../machines/effects.ts';
import { listTransitions } from '../machines/introspect.ts';
import { sessionMachine } from '../machines/session.machine.ts';
import type { ConnMemory, SystemEvent, SystemModel, SystemState } from '../machines/system.ts';

/** What one connection is, read once per state for every invariant. */
export interface ConnView {
  id: number;
  connection: string; //  the connection machine's dotted state ('handshake.proxyHeader')
  session: string; //     the session machine's state
  errCode: string | null; // the connection's err_code
  ret: number | null; //  what session_accept returned (the session machine's ret)
  mem: ConnMemory; //     the model's memory for the connection
}

/** A state as the invariants read it. */
export interface StateView {
  state: SystemState;
  counters: Counters;
  listener: string;
  conns: ConnView[];
  live: number; //  connections whose session memory is live (embryonic or initialized)
  sslLive: number; // connections whose SSL context is live (the ground truth of sslconns)
}

/** What an invariant is checked against: a state, and for a step the state before and the steps. */
export interface InvariantContext {
  model: SystemModel;
  config: ModelConfig;
  next: StateView; //                         the state checked (after the step)
  prev: StateView | null; //                   the state before the step; null for the initial state
  event: SystemEvent | null; //                the step's event; null for the initial state
  records: readonly TransitionRecord[]; //     the machine steps of the step; empty for the initial state
}

/**
 * What a check reads of its context, when it reads less than all of it. Checkers that memoise
 * invariant outcomes (the compiled explorer, properties/compiled.ts) key them on exactly that, and
 * hold the check to it by running it, when they fill their memo, on a context that throws on
 * anything else.
 * - 'conn': the check is eachConn(bad), and bad reads only the view of its connection,
 *   ctx.config and ctx.next.live;
 * - 'connStep': the check is eachConnStep(bad), and bad reads only the views of its connection
 *   before and after the step, ctx.config and the records of ctx.records that name its connection;
 * - 'global': the check reads only ctx.config and the counters, listener and live count of
 *   ctx.next, and, for a step invariant, the same of ctx.prev, ctx.event and ctx.records, but
 *   never which connection the event or a record names.
 * An untagged check may read anything.
 */
export type CheckScope = 'conn' | 'connStep' | 'global';

/** A check function, tagged with what it reads (see CheckScope) when it reads less than the context. */
export interface Check {
  (ctx: InvariantContext): string | null;
  readonly reads?: CheckScope;
}

/** One named invariant. */
export interface Invariant {
  name: string;
  kind: 'state' | 'step';
  doc: string; //              "True iff …"
  haproxy: string; //          the facts it restates (haproxy-history.md invariants, commits)
  watches: EffectName[]; //    the effects whose transitions it guards (PORTING.md lists them)
  /** Returns null if the invariant holds, else what is wrong, as a sentence. Pure. */
  check: Check;
}

/** Returns what the check of `inv` reads (see CheckScope), or null when it may read anything. Pure. */
export function scopeOf(inv: Invariant): CheckScope | null {
  return inv.check.reads ?? null;
}

/** One invariant that does not hold. */
export interface InvariantViolation {
  invariant: string;
  message: string;
}

/**
 * Returns the view of state `s` of `model` the invariants read. Pure; the view shares the state's
 * objects, so the caller must not change the state while the view is in use.
 */
export function viewOf(model: SystemModel, s: SystemState): StateView {
  const conns: ConnView[] = [];
  let live = 0;
  let sslLive = 0;
  for (let id = 0; id < model.n; id++) {
    const mem = s.memory[id]!;
    if (mem.session === 'live') live++;
    if (mem.sslCtx === 'live') sslLive++;
    conns.push({
      id,
      connection: model.state(s, 'connection', id),
      session: model.state(s, 'session', id),
      errCode: model.errCode(s, id),
      ret: (model.composition.contextOf(s.world, 'session', id).ret as number | null) ?? null,
      mem,
    });
  }
  return { state: s, counters: s.counters, listener: model.state(s, 'listener'), conns, live, sslLive };
}

// ---------------------------------------------------------------------------------------------
// Helpers: ground truth read from memory and from the machines' transitions.

const BUFS = ['req', 'rep', 'txn'] as const;

/** Faults the model host records when a closed or absent fd is used (machines/system.ts). */
const FD_FAULTS = [
  'fd closed twice',
  'fd_insert on an fd',
  'SO_LINGER set on a closed fd',
  'read on a closed fd',
  'write on a closed fd',
  'stream interface notified on a closed connection',
];
const TASK_FAULTS = [
  'task allocated twice',
  'task freed',
  'deadline armed on a task',
  'task handler set',
  'task woken',
];
const LIST_FAULTS = [
  'session that is not live was linked',
  'session linked twice',
  'session unlinked but not linked',
];
const SESSION_500_FAULT = '500 built from a session';

/** The faults of `m` that contain one of `parts`, joined; null if none. */
function faultsMatching(m: ConnMemory, parts: readonly string[]): string | null {
  if (m.faults.length === 0) return null;
  const hits: string[] = [];
  for (const f of m.faults) for (const p of parts) if (f.includes(p) && !hits.includes(f)) hits.push(f);
  return hits.length === 0 ? null : hits.join('; ');
}

/** The buffers of `m` that are live, or (with `held`) that were ever allocated. */
function buffers(m: ConnMemory, held = false): string[] {
  const out: string[] = [];
  for (const b of BUFS) if (held ? m.bufs[b] !== 'none' : m.bufs[b] === 'live') out.push(b);
  return out;
}

/**
 * Returns a check that applies `bad` to every connection and reports the first one for which it
 * returns a message, prefixed with the connection id. `bad` may read only its connection's view,
 * ctx.config and ctx.next.live (the check is tagged 'conn': see CheckScope). The per-connection
 * functions are built once, at load time: the checks run on every edge of an exploration and
 * allocate no closure there.
 */
function eachConn(bad: (c: ConnView, ctx: InvariantContext) => string | null): Check {
  function checkEachConn(ctx: InvariantContext): string | null {
    for (const c of ctx.next.conns) {
      const why = bad(c, ctx);
      if (why !== null) return `connection ${c.id}: ${why}`;
    }
    return null;
  }
  return Object.assign(checkEachConn, { reads: 'conn' as const });
}

/**
 * Returns a step check that applies `bad` to every connection, before and after the step, and
 * reports the first one for which it returns a message, prefixed with the connection id; it holds
 * on the initial state. `bad` may read only its connection's views, ctx.config and the records of
 * ctx.records that name its connection (the check is tagged 'connStep': see CheckScope).
 */
function eachConnStep(
  bad: (before: ConnView, after: ConnView, ctx: InvariantContext) => string | null,
): Check {
  function checkEachConnStep(ctx: InvariantContext): string | null {
    if (!ctx.prev) return null;
    for (const c of ctx.next.conns) {
      const why = bad(ctx.prev.conns[c.id]!, c, ctx);
      if (why !== null) return `connection ${c.id}: ${why}`;
    }
    return null;
  }
  return Object.assign(checkEachConnStep, { reads: 'connStep' as const });
}

/**
 * Returns `check` tagged 'global': it reads only the configuration, the counters, the listener
 * and the live count of the states, and the event and the machine steps but not which connection
 * they name (see CheckScope).
 */
function readsGlobal(check: (ctx: InvariantContext) => string | null): Check {
  return Object.assign(check, { reads: 'global' as const });
}

/** True iff the step released at least one slot: fewer sessions are live after it than before. */
function released(ctx: InvariantContext): boolean {
  return ctx.prev !== null && ctx.next.live < ctx.prev.live;
}

/**
 * The transitions of the session machine that enter session_complete: the direct completion and
 * its failure in session_accept, and the completion and its failure after a handshake. Read from
 * the machine's structure (guard `completionFails`, or a target of `initialized`), not from effects.
 */
const COMPLETION_TRANSITIONS: ReadonlySet<string> = new Set(
  listTransitions(sessionMachine)
    .filter((t) => t.guard === 'completionFails' || t.targets.includes('session.initialized'))
    .map((t) => t.id),
);

/** How many sessions entered session_complete during the step (ground truth for cum_sess). */
function completionsStarted(records: readonly TransitionRecord[]): number {
  let n = 0;
  for (const r of records)
    if (r.machine === 'session') for (const t of r.transitions) if (COMPLETION_TRANSITIONS.has(t)) n++;
  return n;
}

/**
 * The err_code a failure event gives a connection in a handshake state, per HAProxy: the parser's
 * or OpenSSL's code; recv() == 0 is EMPTY and recv() < 0 ABORT; the deadline names the handshake
 * still pending (0af2912fd). Null for an event that is not a failure.
 */
function failureCode(r: TransitionRecord, config: ModelConfig): string | null {
  if (r.machine !== 'connection' || !r.from.startsWith('handshake.')) return null;
  const tls = r.from === 'handshake.tls';
  // ssl_sock_handshake (20879a023): SSL_HANDSHAKE unless the handshake was empty: no record partly
  // read with OpenSSL 1.0 (1.5-dev), no handshake record processed with OpenSSL >= 1.1 (2.6 and
  // later), where a reset is SSL_HANDSHAKE whatever was read: ssl_sock_handshake fails a socket
  // with SO_ERROR set before OpenSSL runs (0630038e7, 2.4; as Debian's 2.6.12 logs).
  const reset = r.event.type === 'CLIENT_RESET';
  const emptyHandshake =
    config.profile === 'dev12'
      ? r.event.tlsRead !== 'partialRecord'
      : !reset && r.event.tlsRead !== 'wholeRecords';
  switch (r.event.type) {
    case 'PROXY_HEADER_ERROR':
    case 'TLS_ERROR':
      // A reader that fails without a code (NONE) sets none: a later failure's code would win.
      return r.event.code === 'NONE' ? null : (r.event.code as string);
    case 'CLIENT_CLOSE':
      return !tls ? 'PRX_EMPTY' : emptyHandshake ? 'SSL_EMPTY' : 'SSL_HANDSHAKE';
    case 'CLIENT_RESET':
      return !tls ? 'PRX_ABORT' : emptyHandshake ? 'SSL_ABORT' : 'SSL_HANDSHAKE';
    case 'TIMEOUT':
      return tls ? 'SSL_TIMEOUT' : 'PRX_TIMEOUT';
    default:
      return null;
  }
}

/**
 * The handshake deadline HAProxy arms, restated from haproxy-history.md I12 rather than imported:
 * `timeout client-hs` when set (2.9 and later), else `timeout client`; null = TICK_ETERNITY, and a
 * timeout of 0 is unset (tick_add_ifset arms nothing for it).
 */
function expectedDeadline(config: ModelConfig): number | null {
  const hs = config.profile === '2.9' ? config.timeoutClientHs : null;
  if (hs !== null && hs > 0) return hs;
  return config.timeoutClient !== null && config.timeoutClient > 0 ? config.timeoutClient : null;
}

function gaugeBalance(
  name: string,
  counter: keyof Counters,
  expected: (ctx: InvariantContext) => number,
  doc: string,
  haproxy: string,
  watches: EffectName[],
): Invariant {
  return {
    name,
    kind: 'state',
    doc,
    haproxy,
    watches,
    check: readsGlobal((ctx) => {
      const want = expected(ctx);
      const got = ctx.next.counters[counter];
      return got === want ? null : `${counter} is ${got} but ${want} connections hold a live session`;
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// The invariants. Their order is the order of the report: when several fail in the same state,
// the first one listed is the one said to have caught the defect, so the most specific come first.

export const errorKillsInSameStep: Invariant = {
  name: 'errorKillsInSameStep',
  kind: 'state',
  doc: "True iff no connection rests in 'error' at the end of a step while its session is live: a handshake error kills the embryonic session, and closes the connection, in the step that raised it, neither completing the session (2542b53b1) nor waiting for the deadline (78eaebed1).",
  haproxy: 'I10; 22cda21ad (CO_FL_ERROR check in conn_session_complete); 91083f5c8',
  watches: ['handshakeEnded', 'connClose', 'feconnDec', 'sessionFree'],
  check: eachConn((c) =>
    c.connection === 'error' && c.mem.session === 'live'
      ? `its handshake failed (${c.errCode}) but its session is still ${c.session}`
      : null,
  ),
};

export const embryonicEndsOnce: Invariant = {
  name: 'embryonicEndsOnce',
  kind: 'state',
  doc: 'True iff each embryonic session ends at most once, and ends in the step its handshake ends: a session is embryonic exactly while its connection is still in its handshake.',
  haproxy: 'I7, I8',
  watches: ['handshakeEnded', 'connStartHandshake', 'connTimeout', 'taskSetHandler'],
  check: eachConn((c) => {
    if (c.mem.embryonicEnds > 1) return `its embryonic session ended ${c.mem.embryonicEnds} times`;
    const handshaking = c.connection.startsWith('handshake.');
    if (c.session === 'embryonic' && !handshaking)
      return `its session is still embryonic but the connection is ${c.connection}`;
    if (handshaking && c.session !== 'embryonic')
      return `the connection still handshakes (${c.connection}) but its session is ${c.session}`;
    return null;
  }),
};

export const noBufferBeforeHandshake: Invariant = {
  name: 'noBufferBeforeHandshake',
  kind: 'state',
  doc: 'True iff no buffer (req, rep, txn) is allocated for a session whose handshake has not ended: an absent or embryonic session holds none and never held one, and a session killed by a handshake error or by its deadline (its connection has an err_code) never allocated one.',
  haproxy:
    '2542b53b1 (the point of embryonic sessions); haproxy-history.md §3 "Embryonic timeout", "Handshake error"',
  watches: ['bufAlloc', 'allocBuffers', 'completeFailure', 'connStartHandshake'],
  check: eachConn((c) => {
    const held = buffers(c.mem, true);
    if (held.length === 0) return null;
    const what = `${held.join(', ')} ${held.length > 1 ? 'were' : 'was'} allocated`;
    if (c.session === 'absent' || c.session === 'embryonic') return `its session is ${c.session} but ${what}`;
    if (c.errCode !== null) return `its session died embryonic (${c.errCode}) but ${what}`;
    return null;
  }),
};

export const sessionsListExact: Invariant = {
  name: 'sessionsListExact',
  kind: 'state',
  doc: 'True iff the sessions list holds exactly the initialized sessions: never an embryonic one, never a freed one, and no session is linked twice or unlinked when not linked.',
  haproxy: 'I6; 3b24641745 (LIST_DEL on the session_complete error path)',
  watches: ['listAdd', 'listDel', 'completeFailure', 'sessionFree'],
  check: eachConn((c) => {
    const faults = faultsMatching(c.mem, LIST_FAULTS);
    if (faults !== null) return faults;
    if (c.mem.inList && c.session !== 'initialized')
      return `its session is ${c.session} (memory ${c.mem.session}) but still linked in the sessions list`;
    if (!c.mem.inList && c.session === 'initialized') return 'its session is initialized but not linked';
    return null;
  }),
};

export const fdClosedOnce: Invariant = {
  name: 'fdClosedOnce',
  kind: 'state',
  doc: 'True iff every accepted fd is open while its session is live, closed exactly once when its session is gone (freed, or never allocated), and never used after its close.',
  haproxy: 'I9, I14; 2b199c9ac; 0ede5a331 (fd leak); f8a49eab4 (connection lost before the kill)',
  watches: [
    'fdClose',
    'connClose',
    'fdInsert',
    'setNoLinger',
    'send500',
    'send200',
    'drainInput',
    'notifySi',
  ],
  check: eachConn((c) => {
    const m = c.mem;
    const faults = faultsMatching(m, FD_FAULTS);
    if (faults !== null) return faults;
    if (m.fdCloses > 1) return `its fd was closed ${m.fdCloses} times`;
    if (m.fd === 'none') return null;
    if (m.session === 'live' && m.fd !== 'open') return 'its session is live but its fd is closed';
    if (m.session !== 'live' && m.fd !== 'closed')
      return `its session is ${m.session} but its fd is still open`;
    return null;
  }),
};

export const fdtabExact: Invariant = {
  name: 'fdtabExact',
  kind: 'state',
  doc: "True iff fdtab holds exactly the fds of the live sessions: session_accept registers the accepted fd (fd_insert, with conn_fd_handler as its callback) before it tests for a handshake, so an embryonic session's fd is polled from its first step, and the close that ends the session deletes it (fd_delete: fdtab.owner = NULL); no fd is registered before accept(), after its close, or once its session is gone.",
  haproxy:
    'I9 (fd_delete: fdtab.owner = NULL), I14; 2542b53b1 session_accept (fd_insert before the CO_FL_HANDSHAKE test; out_close: fd_delete if fdtab[cfd].owner, else close); 2b199c9ac (conn_full_close); 0ede5a331 (the fd left in fdtab by session_free)',
  watches: ['fdInsert', 'fdClose', 'connClose'],
  check: eachConn((c) => {
    const m = c.mem;
    if (m.inFdtab) {
      if (m.fd !== 'open')
        return m.fd === 'none'
          ? 'its fd is registered in fdtab before accept() created it'
          : 'its fd is closed but still registered in fdtab';
      if (m.session === 'live') return null;
      return `its session is ${m.session === 'none' ? 'never allocated' : m.session} but its fd is still registered in fdtab`;
    }
    return m.session === 'live'
      ? `its session is ${c.session} but its fd is not registered in fdtab: nothing polls it`
      : null;
  }),
};

export const taskFreedOnce: Invariant = {
  name: 'taskFreedOnce',
  kind: 'state',
  doc: 'True iff every session task is live exactly while its session is live, is freed exactly once when the session goes, and is never used after its free.',
  haproxy: 'I9 (task_delete + task_free in kill_mini_session and process_session)',
  watches: ['taskNew', 'taskFree', 'armDeadline', 'taskSetHandler', 'taskWakeupInit'],
  check: eachConn((c) => {
    const m = c.mem;
    const faults = faultsMatching(m, TASK_FAULTS);
    if (faults !== null) return faults;
    if (m.session === 'live' && m.task !== 'live') return `its session is live but its task is ${m.task}`;
    if (m.session !== 'live' && m.task === 'live')
      return `its session is ${m.session} but its task is still live`;
    return null;
  }),
};

export const http500Only: Invariant = {
  name: 'http500Only',
  kind: 'state',
  doc: 'True iff the proxy writes a 500 only to a connection whose session_accept failed critically (ret < 0), in http mode, on a raw transport, at most once, and builds it without reading the session (which is NULL or freed by then).',
  haproxy:
    'I15; cbaaec475 (raw_sock only); 05bf5e1c3 (no session); 2.6: a failed direct completion is ret = 0',
  watches: ['send500', 'send500FromSession', 'sessionFree'],
  check: eachConn((c, ctx) => {
    const read = faultsMatching(c.mem, [SESSION_500_FAULT]);
    if (read !== null) return read;
    let n = 0;
    for (const x of c.mem.sent) if (x === '500') n++;
    if (n === 0) return null;
    if (n > 1) return `${n} responses 500 were written`;
    if (ctx.config.mode !== 'http') return `a 500 was written in ${ctx.config.mode} mode`;
    if (ctx.config.ssl) return 'a plaintext 500 was written on a TLS transport';
    if (c.ret !== -1) return `a 500 was written though session_accept returned ${c.ret}`;
    return null;
  }),
};

export const deadlineBounded: Invariant = {
  name: 'deadlineBounded',
  kind: 'state',
  doc: "True iff every embryonic session's task runs expire_mini_session with its deadline armed at the configured handshake timeout (timeout client, or timeout client-hs in 2.9), so it never outlives accept time plus that timeout; with no timeout configured the deadline is TICK_ETERNITY and the session never expires, as in HAProxy (tick_add_ifset).",
  haproxy: 'I12, I13; 2542b53b1; b33eacc52 / 888d1dc3d (client-hs)',
  watches: ['armDeadline', 'taskNew', 'taskSetHandler'],
  check: eachConn((c, ctx) => {
    if (c.session !== 'embryonic') return null;
    const want = expectedDeadline(ctx.config);
    const m = c.mem;
    if (m.task !== 'live' || m.taskProcess !== 'expire')
      return `its embryonic session's task is ${m.task} running ${m.taskProcess}, not expire_mini_session`;
    if (m.deadline !== want)
      return want === null
        ? `a deadline of ${m.deadline} ms is armed though no timeout is configured`
        : `the deadline is ${m.deadline === null ? 'not armed' : `${m.deadline} ms`}, not the configured ${want} ms`;
    return null;
  }),
};

export const feconnBalance = gaugeBalance(
  'feconnBalance',
  'feconn',
  (ctx) => ctx.next.live,
  "True iff the frontend's feconn equals the number of connections whose session (embryonic or initialized) is live.",
  'I1, I2',
  ['feconnInc', 'feconnDec', 'sessionAlloc', 'sessionFree'],
);

export const nbconnBalance = gaugeBalance(
  'nbconnBalance',
  'nbconn',
  (ctx) => ctx.next.live,
  "True iff the listener's nbconn equals the number of its connections whose session is live.",
  'I1, I2',
  ['nbconnInc', 'nbconnDec', 'sessionAlloc', 'sessionFree'],
);

export const actconnBalance = gaugeBalance(
  'actconnBalance',
  'actconn',
  (ctx) => (ctx.config.unlimited ? 0 : ctx.next.live),
  'True iff actconn equals the number of connections whose session is live, and stays 0 for an LI_O_UNLIMITED listener.',
  'I1, I2',
  ['actconnInc', 'actconnDec', 'sessionAlloc', 'sessionFree'],
);

export const jobsBalance = gaugeBalance(
  'jobsBalance',
  'jobs',
  (ctx) => ctx.next.live,
  'True iff jobs equals the number of connections whose session is live.',
  'I1',
  ['jobsInc', 'jobsDec', 'sessionAlloc', 'sessionFree'],
);

export const sslconnsBalance: Invariant = {
  name: 'sslconnsBalance',
  kind: 'state',
  doc: 'True iff global.sslconns (CurrSslConns) equals the number of connections whose SSL context is live: counted when conn_data_init creates it at accept, released when the connection is closed.',
  haproxy:
    'ssl_sock_init (sslconns++), ssl_sock_close (sslconns--); haproxy-2.6-observed.md (CurrSslConns rises at accept)',
  watches: ['sslconnsInc', 'sslconnsDec', 'sslCtxNew', 'sslCtxFree'],
  check: (ctx) => {
    const want = ctx.next.sslLive;
    const got = ctx.next.counters.sslconns;
    return got === want ? null : `sslconns is ${got} but ${want} connections hold a live SSL context`;
  },
};

export const sslconnsWithinLimit: Invariant = {
  name: 'sslconnsWithinLimit',
  kind: 'state',
  doc: 'True iff global.sslconns never exceeds maxsslconn when one is set: embryonic TLS connections hold SSL contexts, so the limit bounds them too.',
  haproxy: 'ssl_sock_init: global.maxsslconn && sslconns >= global.maxsslconn → refuse',
  watches: ['sslconnsInc', 'sslCtxNew'],
  check: readsGlobal((ctx) => {
    const max = ctx.config.maxsslconn;
    const got = ctx.next.counters.sslconns;
    return max && got > max ? `sslconns is ${got}, above maxsslconn ${max}` : null;
  }),
};

export const sslContextFreedAtClose: Invariant = {
  name: 'sslContextFreedAtClose',
  kind: 'state',
  doc: "True iff a connection's SSL context exists only on a TLS bind and only while its fd is open: it is created at accept and freed when the connection is closed, whatever ended it.",
  haproxy:
    'conn_data_init → ssl_sock_init; conn_data_close → ssl_sock_close (2.x: conn_full_close → conn_xprt_close)',
  watches: ['sslCtxNew', 'sslCtxFree', 'fdClose', 'connClose'],
  check: eachConn((c, ctx) => {
    if (c.mem.sslCtx !== 'live') return null;
    if (!ctx.config.ssl) return 'an SSL context is live on a raw transport';
    return c.mem.fd === 'open' ? null : `its fd is ${c.mem.fd} but its SSL context is still live`;
  }),
};

export const sslContextWithSession: Invariant = {
  name: 'sslContextWithSession',
  kind: 'state',
  doc: 'True iff every connection of a TLS bind whose session is live (embryonic or initialized) holds a live SSL context: it is created at accept, before any handshake byte, so an embryonic TLS connection takes a slot of maxsslconn from its first step.',
  haproxy:
    'session_accept: conn_data_init → ssl_sock_init before CO_FL_HANDSHAKE is tested; haproxy-2.6-observed.md (CurrSslConns rises at accept, before the PROXY header)',
  watches: ['sslCtxNew', 'sslconnsInc', 'sessionAlloc'],
  check: eachConn((c, ctx) => {
    if (!ctx.config.ssl || c.mem.session !== 'live' || c.mem.sslCtx === 'live') return null;
    return `its session is live (${c.session}) on a TLS bind but it holds no SSL context`;
  }),
};

export const gaugesZeroWhenIdle: Invariant = {
  name: 'gaugesZeroWhenIdle',
  kind: 'state',
  doc: 'True iff feconn, nbconn, actconn and jobs are all back to 0 whenever no session is live.',
  haproxy: 'I1; haproxy-history.md §3 "Gauge rule"',
  watches: ['feconnDec', 'nbconnDec', 'actconnDec', 'jobsDec'],
  check: readsGlobal((ctx) => {
    if (ctx.next.live > 0) return null;
    const c = ctx.next.counters;
    const stuck: string[] = [];
    for (const k of ['feconn', 'nbconn', 'actconn', 'jobs'] as const)
      if (c[k] !== 0) stuck.push(`${k} = ${c[k]}`);
    return stuck.length === 0 ? null : `no session is live but ${stuck.join(', ')}`;
  }),
};

export const maxconnCountsEmbryonic: Invariant = {
  name: 'maxconnCountsEmbryonic',
  kind: 'state',
  doc: "True iff the live sessions, embryonic ones included, never outnumber the frontend's maxconn, the bind's maxconn, or (unless the listener is LI_O_UNLIMITED) the global maxconn.",
  haproxy: 'I17 (maxconn counts embryonic connections); listener_accept',
  watches: ['actconnInc', 'nbconnInc', 'feconnInc', 'sessionAccept', 'listenerStopAccepting'],
  check: readsGlobal((ctx) => {
    const live = ctx.next.live;
    const k = ctx.config;
    if (live > k.feMaxconn) return `${live} sessions are live, above the frontend maxconn ${k.feMaxconn}`;
    if (k.bindMaxconn !== null && live > k.bindMaxconn)
      return `${live} sessions are live, above the bind maxconn ${k.bindMaxconn}`;
    if (!k.unlimited && live > k.globalMaxconn)
      return `${live} sessions are live, above the global maxconn ${k.globalMaxconn}`;
    return null;
  }),
};

export const listenerResumed: Invariant = {
  name: 'listenerResumed',
  kind: 'state',
  doc: 'True iff the listener is never left full while fewer connections than its maxconn hold a slot: every release resumes a full listener.',
  haproxy: 'I16 (if LI_FULL → resume_listener)',
  watches: ['resumeListener', 'listenerResumeAccepting', 'nbconnDec'],
  check: readsGlobal((ctx) =>
    ctx.next.listener === 'full' && ctx.next.live < (ctx.config.bindMaxconn ?? 0)
      ? `the listener is full with ${ctx.next.live} live session(s) for a maxconn of ${String(ctx.config.bindMaxconn)}`
      : null,
  ),
};

export const frontendQueueDequeued: Invariant = {
  name: 'frontendQueueDequeued',
  kind: 'step',
  doc: "True iff after a release the listener is not left on the frontend's queue while rate-limit sessions has budget left this second: kill_mini_session and process_session dequeue it.",
  haproxy: 'I16 (dequeue the frontend queue if the session rate allows)',
  watches: ['dequeueFrontend', 'listenerResumeAccepting'],
  check: readsGlobal((ctx) => {
    if (!released(ctx) || ctx.next.listener !== 'limited.onFrontendQueue') return null;
    const limit = ctx.config.rateLimitSessions;
    if (limit !== null && ctx.next.counters.feSessPerSec >= limit) return null;
    return 'a session was released, rate-limit sessions has budget, yet the listener is still on the frontend queue';
  }),
};

export const globalQueueDequeued: Invariant = {
  name: 'globalQueueDequeued',
  kind: 'step',
  doc: 'True iff after a release the listener is not left on the global queue: kill_mini_session and process_session dequeue it whenever it is not empty.',
  haproxy: 'I16 (dequeue the global queue if non-empty)',
  watches: ['dequeueGlobal', 'listenerResumeAccepting'],
  check: readsGlobal((ctx) =>
    released(ctx) && ctx.next.listener === 'limited.onGlobalQueue'
      ? 'a session was released yet the listener is still on the global queue'
      : null,
  ),
};

export const limitedListenerCanResume: Invariant = {
  name: 'limitedListenerCanResume',
  kind: 'state',
  doc: "True iff a limited listener always has something that will dequeue it: a live session, whose release dequeues its queue (or, while the session rate is spent, arms the frontend's task), or its queue's task armed. Otherwise it would stay limited for good, and new connections would wait in the backlog forever.",
  haproxy:
    'I16; listener_accept arms the global task on a global limit; 65ae1347c: listener_release arms the frontend task when the session rate blocks',
  watches: ['listenerStopAccepting', 'scheduleQueueTask', 'dequeueFrontend', 'dequeueGlobal'],
  check: (ctx) => {
    const listener = ctx.next.listener;
    if (!listener.startsWith('limited.') || ctx.next.live > 0) return null;
    const queue = listener === 'limited.onGlobalQueue' ? 'global' : 'frontend';
    return ctx.next.state.queueTasks[queue]
      ? null
      : `the listener is on the ${queue} queue with no live session and no ${queue} task armed: nothing will ever dequeue it`;
  },
};

export const connMaxBounds: Invariant = {
  name: 'connMaxBounds',
  kind: 'step',
  doc: 'True iff conn_max is at least feconn and at least the number of live sessions after every step, and never decreases.',
  haproxy: 'I5',
  watches: ['connMaxUpdate', 'feconnInc'],
  check: readsGlobal((ctx) => {
    const c = ctx.next.counters;
    if (c.connMax < c.feconn) return `conn_max ${c.connMax} is below feconn ${c.feconn}`;
    if (c.connMax < ctx.next.live) return `conn_max ${c.connMax} is below the ${ctx.next.live} live sessions`;
    if (ctx.prev && c.connMax < ctx.prev.counters.connMax)
      return `conn_max went down from ${ctx.prev.counters.connMax} to ${c.connMax}`;
    return null;
  }),
};

export const cumulativeMonotonic: Invariant = {
  name: 'cumulativeMonotonic',
  kind: 'step',
  doc: 'True iff no cumulative counter (cum_conn, cum_sess, their listener twins, totalconn, denied_conn, totalsslconns) ever decreases.',
  haproxy: 'I3, I4 (never decremented)',
  watches: ['cumConnInc', 'cumSessInc', 'cumSessDec', 'totalconnInc', 'deniedConnInc', 'sslconnsInc'],
  check: readsGlobal((ctx) => {
    if (!ctx.prev) return null;
    const cumulative = [
      'cumConn',
      'lCumConn',
      'cumSess',
      'lCumSess',
      'totalconn',
      'deniedConn',
      'totalsslconns',
    ] as const;
    for (const k of cumulative) {
      const before = ctx.prev.counters[k];
      const after = ctx.next.counters[k];
      if (after < before) return `${k} went down from ${before} to ${after}`;
    }
    return null;
  }),
};

export const rateLimitCountsCompletedOnly: Invariant = {
  name: 'rateLimitCountsCompletedOnly',
  kind: 'step',
  doc: 'True iff cum_sess and fe_sess_per_sec (the budget rate-limit sessions reads) rise in a step by exactly the number of sessions that entered session_complete in it: embryonic connections never consume the session rate.',
  haproxy: 'I4, I17; proxy_inc_fe_sess_ctr in session_complete',
  watches: ['cumSessInc', 'cumSessDec', 'listAdd', 'completeFailure'],
  check: readsGlobal((ctx) => {
    if (!ctx.prev || ctx.event?.type === 'RATE_PERIOD') return null;
    const started = completionsStarted(ctx.records);
    for (const k of ['cumSess', 'feSessPerSec'] as const) {
      const delta = ctx.next.counters[k] - ctx.prev.counters[k];
      if (delta !== started)
        return `${k} rose by ${delta} while ${started} sessions entered session_complete`;
    }
    return null;
  }),
};

export const cumSessLeCumConn: Invariant = {
  name: 'cumSessLeCumConn',
  kind: 'state',
  doc: 'True iff cum_sess never exceeds cum_conn, on the frontend and on the listener: every session was a connection first.',
  haproxy: 'I4',
  watches: ['cumSessInc', 'cumConnInc'],
  check: readsGlobal((ctx) => {
    const c = ctx.next.counters;
    if (c.cumSess > c.cumConn) return `cum_sess ${c.cumSess} exceeds cum_conn ${c.cumConn}`;
    if (c.lCumSess > c.lCumConn)
      return `the listener's cum_sess ${c.lCumSess} exceeds its cum_conn ${c.lCumConn}`;
    return null;
  }),
};

/** The effects that allocate or free a connection's pool items: its session, task, SSL context and buffers. */
const POOL_EFFECTS: readonly EffectName[] = [
  'sessionAlloc',
  'sessionFree',
  'taskNew',
  'taskFree',
  'sslCtxNew',
  'sslCtxFree',
  'bufAlloc',
  'bufFree',
];

export const poolBalancedWhenIdle: Invariant = {
  name: 'poolBalancedWhenIdle',
  kind: 'state',
  doc: 'True iff every session, task, SSL context and buffer ever allocated has been freed whenever no session is live: pool allocations equal frees.',
  haproxy: 'I9; session_free (buffers, txn), kill_mini_session',
  watches: [...POOL_EFFECTS, 'freeBuffers'],
  check: eachConn((c, ctx) => {
    if (ctx.next.live > 0) return null;
    const leaked = buffers(c.mem);
    if (c.mem.sslCtx === 'live') leaked.unshift('SSL context');
    if (c.mem.task === 'live') leaked.unshift('task');
    return leaked.length === 0 ? null : `no session is live but its ${leaked.join(', ')} is still allocated`;
  }),
};

export const errCodeFirstWins: Invariant = {
  name: 'errCodeFirstWins',
  kind: 'step',
  doc: "True iff a connection's err_code, once set, never changes, and is set to the code of the first failure it sees: the parser's or OpenSSL's code, EMPTY on a close, ABORT on a reset (SSL_HANDSHAKE for a close or reset of a TLS handshake that was not empty), the pending handshake's TIMEOUT on the deadline.",
  haproxy:
    '0af2912fd (a timer names the pending handshake only if err_code is unset); 8e3bf699d, 20879a023 (ssl_sock sets SSL_HANDSHAKE only if err_code is unset)',
  watches: ['connTimeout', 'handshakeEnded'],
  check: eachConnStep((was, c, ctx) => {
    const before = was.errCode;
    if (before !== null)
      return c.errCode !== before ? `err_code changed from ${before} to ${c.errCode}` : null;
    let want: string | null = null;
    for (const r of ctx.records) if (r.conn === c.id && (want = failureCode(r, ctx.config)) !== null) break;
    if (c.errCode !== want)
      return `err_code is ${c.errCode}, but its first failure in the step gives ${want}`;
    return null;
  }),
};

/**
 * The err_codes of a connection that sent nothing, which `option dontlognull` keeps out of the log
 * (kill_mini_session, v1.5-dev15: !err_code, PRX_EMPTY, PRX_ABORT, SSL_EMPTY, SSL_ABORT). Written out
 * here from HAProxy rather than taken from the machines' list, so that killLoggedOnce checks that
 * list too.
 */
const NULL_CONNECTION_CODES: ReadonlySet<string> = new Set([
  'NONE',
  'PRX_EMPTY',
  'PRX_ABORT',
  'SSL_EMPTY',
  'SSL_ABORT',
]);

export const killLoggedOnce: Invariant = {
  name: 'killLoggedOnce',
  kind: 'step',
  doc: "True iff a connection logs a kill line only in the step that kills its embryonic session (kill_mini_session, after a handshake error, the deadline or a failed session_complete): exactly one there when kill_mini_session logs, and none otherwise, so that a session that completes, or that session_accept ends, never logs one. kill_mini_session logs when the frontend logs (option tcplog/httplog or a log-format: p->to_log), unless option dontlognull hides a connection that sent nothing: its err_code is NONE, PRX_EMPTY, PRX_ABORT, SSL_EMPTY or SSL_ABORT, judged before a deadline kill names the pending handshake (so a deadline kill is judged as NONE, and hidden). The line is marked as the deadline's (byDeadline) exactly when the timer killed the session.",
  haproxy:
    'I20; 0af2912fd (one send_log in kill_mini_session, gated on s->logs.logwait = p->to_log; dontlognull tested before the timer sets PRX_TIMEOUT/SSL_TIMEOUT); 8e3bf699d, 20879a023 (the codes dontlognull hides); seed bug 10 (silent before 1.5-dev15)',
  watches: ['logEmbryonicKill', 'taskFree'],
  check: eachConnStep((was, c, ctx) => {
    let kills = 0;
    let deadlineKill = false;
    for (const r of ctx.records) {
      // kill_mini_session is the only way out of embryonic that frees the session.
      if (r.conn !== c.id || r.machine !== 'session' || r.from !== 'embryonic' || r.to !== 'freed') continue;
      kills++;
      const deadline = r.event.type === 'TASK_WAKEUP' && r.event.timer === true;
      deadlineKill ||= deadline;
      for (const e of r.effects)
        if (
          e.type === 'logEmbryonicKill' &&
          (e.params as { byDeadline?: boolean } | undefined)?.byDeadline !== deadline
        )
          return deadline
            ? "the deadline killed its embryonic session but the kill line is not marked as the deadline's"
            : `its embryonic session was killed by ${r.event.type}, not the deadline, but the kill line is marked as the deadline's`;
    }
    const lines = c.mem.logged - was.mem.logged;
    // The code dontlognull judges: the connection's, or NONE for the deadline's kill (its test runs
    // before the timer names the pending handshake).
    const judged = deadlineKill ? 'NONE' : (c.errCode ?? 'NONE');
    const hidden = ctx.config.dontlognull && NULL_CONNECTION_CODES.has(judged);
    const want = ctx.config.logging && !hidden ? kills : 0;
    if (lines === want) return null;
    if (kills === 0)
      return `${lines} kill line(s) logged in a step that killed no embryonic session (its session went from ${was.session} to ${c.session})`;
    if (!ctx.config.logging)
      return `its embryonic session was killed and ${lines} kill line(s) logged, but the frontend does not log`;
    if (hidden)
      return `its embryonic session was killed (judged with err_code ${judged}) and ${lines} kill line(s) logged, but dontlognull hides it`;
    return `its embryonic session was killed (err_code ${c.errCode ?? 'NONE'}) on a frontend that logs, and ${lines} kill lines were logged, not 1`;
  }),
};

export const noMemoryFaults: Invariant = {
  name: 'noMemoryFaults',
  kind: 'state',
  doc: 'True iff the model host recorded no memory fault: nothing was allocated twice, freed twice, freed without being allocated, or used after its free.',
  haproxy: 'I9',
  watches: [...POOL_EFFECTS, 'fdClose', 'listAdd', 'listDel'],
  check: eachConn((c) => (c.mem.faults.length > 0 ? c.mem.faults.join('; ') : null)),
};

/** Every invariant, in report order. */
export const INVARIANTS: readonly Invariant[] = [
  errorKillsInSameStep,
  embryonicEndsOnce,
  noBufferBeforeHandshake,
  sessionsListExact,
  fdClosedOnce,
  fdtabExact,
  taskFreedOnce,
  http500Only,
  deadlineBounded,
  feconnBalance,
  nbconnBalance,
  actconnBalance,
  jobsBalance,
  sslconnsBalance,
  sslconnsWithinLimit,
  sslContextFreedAtClose,
  sslContextWithSession,
  gaugesZeroWhenIdle,
  maxconnCountsEmbryonic,
  listenerResumed,
  frontendQueueDequeued,
  globalQueueDequeued,
  limitedListenerCanResume,
  connMaxBounds,
  cumulativeMonotonic,
  rateLimitCountsCompletedOnly,
  cumSessLeCumConn,
  poolBalancedWhenIdle,
  errCodeFirstWins,
  killLoggedOnce,
  noMemoryFaults,
];

/** Returns the invariant named `name`. Throws if there is none (a programmer error). */
export function invariantByName(name: string): Invariant {
  const found = INVARIANTS.find((i) => i.name === name);
  if (!found) throw new Error(`no invariant named ${name}`);
  return found;
}

/**
 * Checks `invariants` (all of them by default) on one state or one step. For the initial state
 * pass prev, event = null and no records: only state invariants are checked. For a step, state
 * invariants are checked on `next` and step invariants on the edge. Returns the violations in
 * report order; an empty list means everything holds. Pure.
 */
export function checkInvariants(
  ctx: InvariantContext,
  invariants: readonly Invariant[] = INVARIANTS,
  kinds: 'state' | 'step' | 'both' = 'both',
): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  for (const inv of invariants) {
    if (kinds !== 'both' && inv.kind !== kinds) continue;
    if (inv.kind === 'step' && ctx.prev === null) continue;
    const message = inv.check(ctx);
    if (message !== null) out.push({ invariant: inv.name, message });
  }
  return out;
}
