/**
 * What a case can do and how it states its expectations. A case drives clients through a
 * CaseContext and records checks: each check says what was expected and what was observed, in
 * words and, for timings, in numbers. The runner turns the checks into a verdict: pass iff every
 * check holds.
 *
 * Timings are judged against the suite's deadline (timeout client, DEADLINE_MS) with a stated
 * window: "FIN at +300 ms after connect, window [-20, +150] ms" passes for a FIN observed between
 * +280 and +450 ms. "At once" means within AT_ONCE_MS of the action that provokes it. Measured
 * from a connect, the target may have accepted at any moment between the client's connect() call
 * and the moment the client saw the handshake complete: judgeOffset says how that is judged.
 */
import type { Prediction } from './predict.ts';
import type { Profile } from '../machines/config.ts';
import type { BackendConnection, EchoBackend } from './backend.ts';
import type { CloseSeen, WireClient, WireLog } from './client.ts';
import { infoNumber, statNumber, type StatsSnapshot } from './stats.ts';
import type { FrontendName } from './suite.cfg.ts';

/** A window around an expected time, in ms: [earliest offset, latest offset]. */
export type Window = readonly [number, number];

/** The window of every deadline judgement: the close may come 20 ms early or 150 ms late. */
export const DEADLINE_WINDOW: Window = [-20, 150];
/** "At once": within this many ms of the action that provokes it. */
export const AT_ONCE_MS = 100;

/** One judged expectation of a case. */
export interface Check {
  what: string; //        what is checked, in words
  expected: string; //    the expected outcome, in words ('FIN at +300 ms after connect, window [-20, +150] ms')
  actual: string; //      what was observed
  ok: boolean;
  timing?: { expected: number; measured: number | null; window: Window }; // ms, for timing checks
}

/** What a case sees of its target. */
export interface TargetView {
  name: string;
  profile: Profile;
  host: string;
  ports: Record<FrontendName, number>;
  hasStats: boolean;
}

/** The services a case runs with. Every wait it offers is bounded. */
export interface CaseContext {
  target: TargetView;
  log: WireLog; //                               the case's wire log; log.now() is the case clock
  backend: EchoBackend; //                       connections() lists those since the case began
  /**
   * Opens a client to frontend <fe>, from <from> (CLIENT_ADDRESS unless given: OTHER_CLIENT_ADDRESS
   * is the other source the suite uses); rejects if the TCP handshake does not complete in 2 s.
   */
  connect(fe: FrontendName, from?: string): Promise<WireClient>;
  /** Waits <ms>. */
  sleep(ms: number): Promise<void>;
  /** Waits until the case clock reads <t> ms (at once if it already does). */
  sleepUntil(t: number): Promise<void>;
  /** Reads the target's counters; only for cases that declare needs: ['stats']. */
  stats(label: string): Promise<StatsSnapshot>;
  /** What the model predicts for the case's scenario under the target's profile (predict.ts). */
  predicted: Prediction;
  /** Records one check. */
  check(check: Check): void;
}

/**
 * A moment a timing is measured from: a time on the case clock and its name. When the client saw
 * the moment complete later than the target may have acted on it (a connect: the target can accept
 * as soon as the kernel has the handshake, which the client learns of only when its event loop
 * runs), <since> is the earliest the target may have: the moment lies in [since, t].
 */
export interface Reference {
  t: number;
  since?: number;
  label: string; // 'connect', 'the header', 'the last echo', ...
}

/**
 * Returns the Reference "connect" of <client>: from its connect() call (since) to the moment it
 * saw the handshake complete (t). Requires a connected client. Pure.
 */
export function fromConnect(client: WireClient): Reference {
  return { t: client.connectedAt ?? 0, since: client.connectStartedAt, label: `${client.name} connect` };
}

/** A time judged against a Reference: what judgeOffset returns. */
export interface Offset {
  ok: boolean;
  measured: number; // ms after the reference, as judged: from t, or from since where that edge decided
  text: string; //     in words: '+276.4 ms after client#1 connect (+302.1 ms after its connect() call, 25.7 ms earlier)'
}

/**
 * The longest connect a timing is judged leniently from (judgeOffset): half of AT_ONCE_MS, the
 * narrowest window a case judges a time with; also the runner's stall threshold (STALL_MS of
 * runner.ts). A longer one, a stall of the client or a SYN sent again, is judged strictly at both
 * of its ends.
 */
export const MAX_CONNECT_LAG_MS = AT_ONCE_MS / 2;

/**
 * Judges an event seen at case time <seenAt> against "<at> ms after <from>, within <window>". The
 * target's clock started at some moment s in [from.since, from.t] (from.t alone without a since):
 * when the two are at most MAX_CONNECT_LAG_MS apart, the event passes if some s puts it in the
 * window (its early edge counts from since, its late edge from t), since a client whose event loop
 * ran late must not read an on-time close as early; when they are further apart, it passes only if
 * every s does (early edge from t, late edge from since), since so long a connect could hide a
 * deadline of the wrong length. `measured` is the offset the verdict rests on. Pure; the caller
 * records the check.
 */
export function judgeOffset(seenAt: number, from: Reference, at: number, window: Window): Offset {
  const lag = round1(Math.max(0, from.t - (from.since ?? from.t)));
  const fromT = round1(seenAt - from.t);
  const fromSince = round1(seenAt - from.t + lag);
  const earliest = at + window[0];
  const latest = at + window[1];
  const strict = lag > MAX_CONNECT_LAG_MS;
  const ok = strict ? fromT >= earliest && fromSince <= latest : fromSince >= earliest && fromT <= latest;
  // The offset the verdict rests on: the edge that failed, else the one inside the window.
  const measured = strict
    ? fromT < earliest || fromSince <= latest
      ? fromT
      : fromSince
    : fromT < earliest
      ? fromSince
      : fromT;
  const shown = lag > 0 && (strict || fromT < earliest);
  const text = shown
    ? `${signed(fromT)} ms after ${from.label} (${signed(fromSince)} ms after its connect() call, ${lag} ms earlier${strict ? `: a connect longer than ${MAX_CONNECT_LAG_MS} ms is judged at both of its ends` : ''})`
    : `${signed(fromT)} ms after ${from.label}`;
  return { ok, measured, text };
}

/**
 * Waits (at most <at> + window end + 1 s) for the target to close <client>, and checks that it
 * closed with <kind> at <at> ms after <from>, within <window>. Records one check; returns what was
 * seen (null if nothing).
 */
export async function expectClose(
  ctx: CaseContext,
  client: WireClient,
  kind: CloseSeen['kind'],
  from: Reference,
  at: number,
  window: Window = DEADLINE_WINDOW,
): Promise<CloseSeen | null> {
  const waitUntil = from.t + at + window[1] + 1000;
  const seen = await client.waitForClose(Math.max(0, waitUntil - ctx.log.now()));
  const expected = `${kind.toUpperCase()} at +${at} ms after ${from.label}, window [${signed(window[0])}, ${signed(window[1])}] ms`;
  const offset = seen ? judgeOffset(seen.at, from, at, window) : null;
  ctx.check({
    what: `${client.name} is closed by the target`,
    expected,
    actual: seen && offset ? `${seen.kind.toUpperCase()} at ${offset.text}` : 'still open',
    ok: seen !== null && seen.kind === kind && offset!.ok,
    timing: { expected: at, measured: offset?.measured ?? null, window },
  });
  return seen;
}

/** Checks that the target closes <client> with <kind> within AT_ONCE_MS of <from>. As expectClose. */
export function expectCloseAtOnce(
  ctx: CaseContext,
  client: WireClient,
  kind: CloseSeen['kind'],
  from: Reference,
): Promise<CloseSeen | null> {
  return expectClose(ctx, client, kind, from, 0, [0, AT_ONCE_MS]);
}

/**
 * Checks that <client> is still open at case time <t> (waiting until then): the target did not
 * close it early. Records one check.
 */
export async function expectOpenUntil(
  ctx: CaseContext,
  client: WireClient,
  t: number,
  why: string,
): Promise<void> {
  await ctx.sleepUntil(t);
  const seen = client.closedBy;
  ctx.check({
    what: `${client.name} is still open ${why}`,
    expected: `open at ${t.toFixed(0)} ms`,
    actual: seen ? `${seen.kind.toUpperCase()} at ${seen.at} ms` : `open at ${ctx.log.now()} ms`,
    ok: seen === null || seen.at > t,
  });
}

/** Checks that the backend saw no connection since the case began. Records one check. */
export function expectNoBackend(ctx: CaseContext, why = 'the handshake never completed'): void {
  const conns = ctx.backend.connections();
  ctx.check({
    what: `the backend is never contacted (${why})`,
    expected: 'no backend connection',
    actual:
      conns.length === 0 ? 'no backend connection' : `${conns.length} (first at ${conns[0]!.acceptedAt} ms)`,
    ok: conns.length === 0,
  });
}

/**
 * Waits (at most <waitMs>) for the backend's first connection since the case began and checks it
 * came no earlier than <after> and at most <within> ms later. Records one check; returns it.
 */
export async function expectBackendAfter(
  ctx: CaseContext,
  after: Reference,
  within = AT_ONCE_MS,
  waitMs = 1000,
): Promise<BackendConnection | null> {
  await ctx.backend.waitForConnections(1, Math.max(0, after.t + within + waitMs - ctx.log.now()));
  const conn = ctx.backend.connections()[0] ?? null;
  const offset = conn ? judgeOffset(conn.acceptedAt, after, 0, [0, within]) : null;
  ctx.check({
    what: `the backend is contacted after ${after.label}, not before`,
    expected: `a backend connection between +0 and +${within} ms after ${after.label}`,
    actual: offset ? `backend connection at ${offset.text}` : 'no backend connection',
    ok: offset !== null && offset.ok,
    timing: { expected: 0, measured: offset?.measured ?? null, window: [0, within] },
  });
  return conn;
}

/**
 * Checks that the backend has no connection yet at case time <t> (waiting until then). Records one
 * check.
 */
export async function expectNoBackendYet(ctx: CaseContext, t: number, why: string): Promise<void> {
  await ctx.sleepUntil(t);
  const n = ctx.backend.connections().length;
  ctx.check({
    what: `the backend is not contacted ${why}`,
    expected: `no backend connection at ${t.toFixed(0)} ms`,
    actual:
      n === 0
        ? 'none'
        : `${n} backend connection(s), first at ${ctx.backend.connections()[0]!.acceptedAt} ms`,
    ok: n === 0,
  });
}

/**
 * Waits (at most <waitMs>) for <client> to receive <data> back, and checks that it received
 * exactly <data> and that the backend received exactly <data> too (no header, nothing else).
 * Records two checks; returns true iff both hold.
 */
export async function expectEcho(
  ctx: CaseContext,
  client: WireClient,
  data: Uint8Array,
  waitMs = 1000,
): Promise<boolean> {
  await client.waitForBytes(data.length, waitMs);
  const backendBytes = Buffer.concat(ctx.backend.connections().map((c) => c.bytes));
  const want = Buffer.from(data);
  const toBackend = backendBytes.equals(want);
  ctx.check({
    what: 'the backend receives exactly the data sent after the handshake',
    expected: quote(want),
    actual: quote(backendBytes),
    ok: toBackend,
  });
  return expectEchoedBack(ctx, client, want) && toBackend;
}

/**
 * Checks that <client> has received exactly <data> back (no wait: the caller waited for it).
 * Records one check; returns true iff it holds.
 */
export function expectEchoedBack(ctx: CaseContext, client: WireClient, data: Uint8Array): boolean {
  const want = Buffer.from(data);
  const back = client.received.equals(want);
  ctx.check({
    what: `${client.name} receives the backend's echo intact`,
    expected: quote(want),
    actual: quote(client.received),
    ok: back,
  });
  return back;
}

/** How one counter must compare between two snapshots, or hold in one. */
export type CounterRule =
  | { row: string; field: string; delta: number } //   after - before === delta
  | { row: string; field: string; equals: number } //  value in `after` === equals
  | { row: string; field: string; atLeast: number } // value in `after` >= atLeast
  | { info: string; delta: number } //                  show info field: after - before === delta
  // show info field that counts the reader's own CLI connections too (CumConns): after - before ===
  // delta + the CLI connections opened in between (StatsSnapshot.cli)
  | { info: string; delta: number; plusCli: true };

/**
 * Checks each of <rules> on <before> and <after> (row keys 'fe_pp/FRONTEND'). Records one check per
 * rule, naming the moments by their labels.
 */
export function expectCounters(
  ctx: CaseContext,
  before: StatsSnapshot,
  after: StatsSnapshot,
  rules: readonly CounterRule[],
): void {
  for (const rule of rules) {
    if ('info' in rule) {
      const a = infoNumber(before, rule.info);
      const b = infoNumber(after, rule.info);
      const delta = a === null || b === null ? null : b - a;
      const cli = 'plusCli' in rule ? after.cli - before.cli : 0;
      ctx.check({
        what: `show info ${rule.info}: ${after.label} minus ${before.label}`,
        expected:
          cli === 0
            ? signed(rule.delta)
            : `${signed(rule.delta + cli)} (${signed(rule.delta)}, and the reader's ${cli} CLI connections)`,
        actual: delta === null ? 'absent' : `${signed(delta)} (${a} → ${b})`,
        ok: delta === rule.delta + cli,
      });
      continue;
    }
    const a = statNumber(before, rule.row, rule.field);
    const b = statNumber(after, rule.row, rule.field);
    if ('delta' in rule) {
      const delta = a === null || b === null ? null : b - a;
      ctx.check({
        what: `${rule.row} ${rule.field}: ${after.label} minus ${before.label}`,
        expected: signed(rule.delta),
        actual: delta === null ? 'absent' : `${signed(delta)} (${a} → ${b})`,
        ok: delta === rule.delta,
      });
    } else if ('equals' in rule) {
      ctx.check({
        what: `${rule.row} ${rule.field} ${after.label}`,
        expected: String(rule.equals),
        actual: b === null ? 'absent' : String(b),
        ok: b === rule.equals,
      });
    } else {
      ctx.check({
        what: `${rule.row} ${rule.field} ${after.label}`,
        expected: `≥ ${rule.atLeast}`,
        actual: b === null ? 'absent' : String(b),
        ok: b !== null && b >= rule.atLeast,
      });
    }
  }
}

/** Returns <bytes> as a short quoted string for a check ("GET / HTTP/1.0\r\n", 16 bytes). Pure. */
export function quote(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.subarray(0, 80)).toString('latin1');
  const text = JSON.stringify(shown);
  return `${text}${bytes.length > 80 ? '…' : ''} (${bytes.length} bytes)`;
}

function signed(n: number): string {
  return n >= 0 ? `+${n}` : `${n}`;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
