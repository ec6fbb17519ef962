/**
 * What the machines predict for a conformance case. A case states what its clients do as the
 * model's environment events (its scenario); the composed model, run under a target's profile on
 * the configuration of the case's frontend, gives what the target must then do: the transitions it
 * takes, the embryonic kills it logs (and with which code), how the proxy closes each connection,
 * and HAProxy's counters after each event (read through the stats socket by the counter cases).
 * The suite writes none of these by hand: a case's expectation under dev12 and under 2.6 come from
 * the same machines the bundled proxy runs, so a profile's difference is derived, not declared.
 *
 * The configuration is the suite's own (suite.cfg.ts), parsed by the bundled proxy's parser
 * (impl/config.ts) for the profile: what a target runs is what the model runs.
 */
import { classifySource } from '../machines/acl.ts';
import type { Profile } from '../machines/config.ts';
import { copyCounters, type Counters } from '../machines/counters.ts';
import type { EffectParams } from '../machines/effects.ts';
import type { ErrCode } from '../machines/errCodes.ts';
import type { Check } from './expect.ts';
import { mutantById } from '../machines/mutants.ts';
import { SystemModel, type SystemEvent, type SystemState } from '../machines/system.ts';
import { modelConfigOf, parseConfig, type ProxyConfig } from '../impl/config.ts';
import {
  CLIENT_ADDRESS,
  DEFAULT_BASE_PORT,
  DEFAULT_CONFIG_DIR,
  suiteConfig,
  suiteLayout,
  TEST_CERT_PEM,
  type FrontendName,
} from './suite.cfg.ts';

/** Every profile the model has, in the order reports show them. */
export const PROFILES: readonly Profile[] = ['dev12', '2.6', '2.9'];

/**
 * One event of a scenario: a SystemEvent whose `conn` may be left out (connection 0, the first
 * accepted) and whose ACCEPT may leave out `src` (the class the frontend's rules give the suite's
 * source address, 127.0.0.1, as the target classifies it).
 */
export type ScenarioEvent =
  | (SystemEvent extends infer E
      ? E extends { conn: number }
        ? Omit<E, 'conn'> & { conn?: number }
        : E
      : never)
  | PendingEvent;

/**
 * A connection waits in the listen backlog while the listener may not poll its socket: the
 * listener attempts it now (ACCEPT) if it is ready, and otherwise nothing happens until a later
 * ACCEPT. For what depends on the profile: after the accept that fills a frontend whose bind has
 * no maxconn, a 1.5-dev12 listener is full (its bind has the frontend's) and polls no more, where
 * a 2.x listener, whose bind has no limit, stays ready and finds the frontend's at the next attempt.
 */
export interface PendingEvent {
  type: 'PENDING';
}

/** What the clients of a case do, in the model's terms, on the case's frontend. */
export interface Scenario {
  /** The events, in order; connections are numbered from 0 in the order they are accepted. */
  events: readonly ScenarioEvent[];
  /**
   * The connections whose PROXY header is found invalid after its addresses were taken, so that
   * their kill names the header's source: a v2 header whose TLVs are invalid (conn_recv_proxy
   * copies the addresses into the session before it walks the TLVs). Which bytes a parser has
   * read when it fails is below the machines, so the case says it.
   */
  addressesTaken?: readonly number[];
  /**
   * How many of the case's clients the target never accepts: a client whose connection the kernel
   * completed, still in the listen backlog when the case ends (a listener that stays limited). The
   * model has no backlog: an ACCEPT the listener refuses takes no connection, and a client accepted
   * later comes as a later ACCEPT. 0 when not given.
   */
  backlog?: number;
}

/** How one connection ends, as a client sees it (Prediction.closes). */
export type Close = 'fin' | 'rst' | 'reset' | null;

/** What the model predicts for a scenario under one profile. */
export interface Prediction {
  profile: Profile;
  /** Every transition taken, each once, in the order first taken (ids of machines/introspect.ts). */
  transitions: string[];
  /** How many embryonic sessions the scenario kills, logged or not. */
  kills: number;
  /**
   * The code of each kill the target logs, in the order of the kills, once per kill: fewer than
   * `kills` when option dontlognull hides some, none when the frontend does not log.
   */
  log: ErrCode[];
  /**
   * The address each kill of `log` names, in the same order: 'client', the client's own (the
   * suite's CLIENT_ADDRESS), or 'header', the source its PROXY header gave (one of HEADER_SOURCES):
   * HAProxy logs the session's source, which a valid PROXY header replaced (conn_recv_proxy sets
   * the session's addresses).
   * A case whose header carries no address (LOCAL, UNKNOWN) and is then killed would log the
   * client's own address: no case does, and its kill would fail this check, not pass wrongly.
   */
  logFrom: ('client' | 'header')[];
  /**
   * How the proxy closes each connection it accepted, in accept order: 'fin', 'rst', 'reset' (the
   * client reset it itself: the proxy's close is never seen), or null (still open at the end). An
   * ACCEPT that the listener refused (it went full or limited) takes no connection.
   */
  closes: Close[];
  /**
   * For each connection it accepted, in accept order as `closes`: the handshake deadline that
   * killed it, in ms after its session armed it (armDeadline), or null if no deadline struck (the
   * handshake ended first, or none was armed). What a case's timing of a deadline kill is judged
   * against; a deadline that never strikes shows nowhere.
   */
  deadlines: (number | null)[];
  /** Clients left in the listen backlog at the end, never accepted (Scenario.backlog). */
  backlog: number;
  /**
   * HAProxy's counters as the machines' counter effects leave them: `counters[k]` after the first
   * k events of the scenario (`counters[0]`: before any, all zero).
   */
  counters: Counters[];
}

/**
 * The source addresses the suite's PROXY headers give (IPv4, IPv6): a kill after a header that
 * gave one names it (Prediction.logFrom 'header').
 */
export const HEADER_SOURCES = { v4: '10.1.2.3', v6: '2001:db8::1' } as const;

const configs = new Map<string, ProxyConfig>();

/**
 * Returns the suite configuration's slice for frontend <fe>, parsed for <profile> by the bundled
 * proxy's parser, with the suite's certificate (TEST_CERT_PEM) as the `crt` file's bytes. Memoised;
 * throws the parser's ConfigError if the suite config does not load under <profile>.
 */
export function suiteFrontendConfig(fe: FrontendName, profile: Profile): ProxyConfig {
  const key = `${fe}/${profile}`;
  let cfg = configs.get(key);
  if (cfg === undefined) {
    const text = suiteConfig(suiteLayout(DEFAULT_BASE_PORT, DEFAULT_CONFIG_DIR), fe, profile);
    cfg = parseConfig(text, `suite config (${fe})`, profile, () => Buffer.from(TEST_CERT_PEM));
    configs.set(key, cfg);
  }
  return cfg;
}

/**
 * Runs <scenario> on the model of frontend <fe>'s configuration under <profile> and returns what
 * the model predicts; with <mutant> (an id of machines/mutants.ts), on the model with that defect
 * switched in: what a target that has that bug does. Requires every event to be possible when it
 * comes (SystemModel.isEnabled); throws an Error naming the event and the states otherwise: the
 * scenario does not describe a run of the machines. Throws on an unknown mutant. Pure apart from
 * the configuration cache.
 */
export function predict(scenario: Scenario, fe: FrontendName, profile: Profile, mutant?: string): Prediction {
  const cfg = suiteFrontendConfig(fe, profile);
  const src = classifySource(CLIENT_ADDRESS, {
    reject: cfg.frontend.rejects,
    monitor: cfg.frontend.monitors,
  });
  const n = scenario.events.filter((e) => e.type === 'ACCEPT' || e.type === 'PENDING').length;
  const config = modelConfigOf(cfg);
  const defect = mutant === undefined ? null : mutantById(mutant).defect(config);
  const model = new SystemModel(config, Math.max(n, 1), defect);
  const transitions = new Set<string>();
  const codes: ErrCode[] = [];
  const from: ('client' | 'header')[] = [];
  const headerAccepted = new Set<number>(scenario.addressesTaken ?? []);
  let kills = 0;
  const armed: (number | null)[] = []; //  the deadline each connection's session armed last
  const struck: (number | null)[] = []; // the deadline that expired it, for those it did
  let state: SystemState = model.initial();
  const counters = [copyCounters(state.counters)];
  scenario.events.forEach((e, i) => {
    if (e.type === 'PENDING' && !model.isEnabled(state, { type: 'ACCEPT', src })) {
      counters.push(copyCounters(state.counters)); // the listener does not poll: it waits
      return;
    }
    const event = (
      e.type === 'ACCEPT' || e.type === 'PENDING'
        ? { src, ...e, type: 'ACCEPT' }
        : 'conn' in e || !needsConn(e)
          ? e
          : { ...e, conn: 0 }
    ) as SystemEvent;
    const logged = state.memory.map((m) => m.logged);
    // The header's addresses are the session's from the moment it is parsed, kill included.
    if (event.type === 'PROXY_HEADER_OK') headerAccepted.add(event.conn);
    const next = model.step(state, event);
    if (next === null) {
      const where =
        'conn' in event ? ` (connection ${event.conn} is ${describe(model, state, event.conn)})` : '';
      throw new Error(
        `scenario event ${i + 1}, ${JSON.stringify(event)}, cannot happen under ${profile}${where}; listener ${model.state(state, 'listener')}`,
      );
    }
    for (const record of next.records) {
      if (record.conn !== null) {
        for (const effect of record.effects)
          if (effect.type === 'armDeadline')
            armed[record.conn] = (effect.params as EffectParams['armDeadline']).ms;
        if (record.transitions.some((t) => t.startsWith('session.expired|')))
          struck[record.conn] = armed[record.conn] ?? null;
      }
      for (const t of record.transitions) {
        transitions.add(t);
        if (t.startsWith('session.killed|') || t.startsWith('session.expired|')) kills++;
      }
    }
    state = next.state;
    counters.push(copyCounters(state.counters));
    state.memory.forEach((m, conn) => {
      if (m.logged <= logged[conn]!) return;
      codes.push((model.errCode(state, conn) ?? 'NONE') as ErrCode);
      from.push(headerAccepted.has(conn) ? 'header' : 'client');
    });
  });
  const reset = new Set(scenario.events.flatMap((e) => (e.type === 'CLIENT_RESET' ? [e.conn ?? 0] : [])));
  return {
    profile,
    transitions: [...transitions],
    kills,
    log: codes,
    logFrom: from,
    closes: state.memory.flatMap((m, conn): Close[] =>
      m.fd === 'none' ? [] : [reset.has(conn) ? 'reset' : m.closedWith],
    ),
    deadlines: state.memory.flatMap((m, conn) => (m.fd === 'none' ? [] : [struck[conn] ?? null])),
    backlog: scenario.backlog ?? 0,
    counters,
  };
}

/** True iff an event of type <type> names a connection. */
function needsConn(e: ScenarioEvent): boolean {
  return !(
    e.type === 'ACCEPT' ||
    e.type === 'PENDING' ||
    e.type === 'QUEUE_TASK' ||
    e.type === 'RATE_PERIOD'
  );
}

/** Returns "<connection state> / <session state>" of connection <conn> in <s>, for an error message. */
function describe(model: SystemModel, s: SystemState, conn: number): string {
  if (!Number.isInteger(conn) || conn < 0 || conn >= model.n) return 'not in the scenario';
  return `${model.state(s, 'connection', conn)} / session ${model.state(s, 'session', conn)}`;
}

/**
 * Returns <scenario> in one line: each event's type and its parameters. Pure.
 * Example: "ACCEPT, PROXY_HEADER_ERROR code=PRX_BAD_HDR".
 */
export function describeScenario(scenario: Scenario): string {
  const events = scenario.events.map((e) => {
    const params = Object.entries(e)
      .filter(([k]) => k !== 'type')
      .map(([k, v]) => `${k}=${String(v)}`);
    return [e.type, ...params].join(' ');
  });
  return events.join(', ');
}

/**
 * The counters a case reads through the stats socket (cases.ts, predictedCounters): scur, conn_tot,
 * stot, dcon, smax, CurrConns, CumConns, Jobs and CurrSslConns, which every profile's HAProxy
 * shows. CumSslConns (totalsslconns) is left out: 1.5-dev12 does not keep it (1.5-dev22).
 */
export const COMPARED_COUNTERS = [
  'feconn',
  'cumConn',
  'cumSess',
  'deniedConn',
  'connMax',
  'actconn',
  'totalconn',
  'jobs',
  'sslconns',
] as const satisfies readonly (keyof Counters)[];

/** Returns COMPARED_COUNTERS of <p> at each moment, as changes since the first. Pure. */
function comparableCounters(p: Prediction): Partial<Counters>[] {
  const zero = p.counters[0]!;
  return p.counters.map((c) => Object.fromEntries(COMPARED_COUNTERS.map((k) => [k, c[k] - zero[k]])));
}

/**
 * True iff two predictions differ in what a target shows: on the wire, how it closes the
 * connections and when the deadlines that kill them strike; in its counters at each moment of the
 * scenario (COMPARED_COUNTERS); and, when <judged>.log (the default), in its log, the kills it
 * logs. The transitions may differ while none of these does. Pure.
 */
export function observablyDiffer(
  a: Prediction,
  b: Prediction,
  judged: { log: boolean } = { log: true },
): boolean {
  const shown = (p: Prediction): string =>
    JSON.stringify([
      judged.log ? [p.log, p.logFrom] : null,
      p.closes,
      p.deadlines,
      p.backlog,
      comparableCounters(p),
    ]);
  return shown(a) !== shown(b);
}

/**
 * Returns how the counters of <a> differ from those of <b> by the end of the scenario, as
 * "counts totalconn +2, where dev12 totalconn +3", or '' when they end alike (COMPARED_COUNTERS).
 * Pure.
 */
export function describeCounterDifference(a: Prediction, b: Prediction): string {
  const ca = comparableCounters(a).at(-1)!;
  const cb = comparableCounters(b).at(-1)!;
  const keys = COMPARED_COUNTERS.filter((k) => ca[k] !== cb[k]);
  if (keys.length === 0) return '';
  const signed = (n: number | undefined): string => (n! >= 0 ? `+${n}` : String(n));
  return `counts ${keys.map((k) => `${k} ${signed(ca[k])}`).join(', ')}, where ${b.profile} ${keys.map((k) => `${k} ${signed(cb[k])}`).join(', ')}`;
}

/**
 * Returns how the deadlines of <a> differ from those of <b>, as "arms deadlines of 150 ms, where
 * dev12 300 ms", or '' when they are alike. Pure.
 */
export function describeDeadlineDifference(a: Prediction, b: Prediction): string {
  if (JSON.stringify(a.deadlines) === JSON.stringify(b.deadlines)) return '';
  const ms = (p: Prediction): string => tally(p.deadlines.map((d) => (d === null ? 'none' : `${d} ms`)));
  return `arms deadlines of ${ms(a)}, where ${b.profile} ${ms(b)}`;
}

/**
 * Returns what <p> predicts of the target's log, in a few words. Pure.
 * Example: "logs PRX_TIMEOUT × 12".
 */
export function describeLog(p: Prediction): string {
  const hidden = p.kills - p.log.length;
  if (p.kills === 0) return 'kills nothing';
  if (p.log.length === 0) return 'logs no kill';
  return `logs ${tally(p.log)}${hidden > 0 ? ` (${hidden} kill(s) not logged)` : ''}`;
}

/**
 * Returns what <p> predicts a target shows, in one line: the log (describeLog), then the closes.
 * Pure. Example: "logs PRX_TIMEOUT × 12; closes with FIN × 12".
 */
export function describePrediction(p: Prediction): string {
  const names: Record<string, string> = {
    fin: 'FIN',
    rst: 'RST',
    reset: 'a reset by the client',
    open: 'nothing (still open)',
  };
  const waiting = p.backlog > 0 ? `; ${p.backlog} left in the listen backlog, never accepted` : '';
  return `${describeLog(p)}; closes with ${tally(p.closes.map((c) => names[c ?? 'open']!))}${waiting}`;
}

/** Returns "A × 2, B" for ['A', 'B', 'A']: each distinct value in first-seen order, with its count. Pure. */
export function tally(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].map(([v, n]) => (n === 1 ? v : `${v} × ${n}`)).join(', ');
}

/**
 * Returns the check "the target closes each connection as the model predicts": ok iff the case
 * opened one client per connection the prediction accepts and per client it leaves in the backlog,
 * and the clients saw from the target exactly as many FINs and as many RSTs as <predicted> has (so
 * the others, left open, reset by the client itself or never accepted, saw none). <seen> is, per client the case opened, the close it saw from the
 * target (null: none). The kinds are compared as counts, since connections opened together may be
 * accepted in another order. Pure.
 */
export function closesCheck(predicted: Prediction, seen: readonly ('fin' | 'rst' | null)[]): Check {
  const count = (kinds: readonly Close[], kind: Close): number => kinds.filter((k) => k === kind).length;
  const p = predicted.closes;
  const none = count(p, null) + count(p, 'reset') + predicted.backlog;
  const reset = count(p, 'reset');
  const show = (n: number, fin: number, rst: number, unseen: number): string =>
    `${n} connection(s): ${fin} × FIN, ${rst} × RST, ${unseen} with no close from the target`;
  const notes = [
    ...(reset > 0 ? [`${reset} reset by the client`] : []),
    ...(predicted.backlog > 0 ? [`${predicted.backlog} never accepted`] : []),
  ];
  return {
    what: 'the target closes each connection as the model predicts',
    expected: `${show(p.length + predicted.backlog, count(p, 'fin'), count(p, 'rst'), none)}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`,
    actual: show(seen.length, count(seen, 'fin'), count(seen, 'rst'), count(seen, null)),
    ok:
      seen.length === p.length + predicted.backlog &&
      count(seen, 'fin') === count(p, 'fin') &&
      count(seen, 'rst') === count(p, 'rst'),
  };
}
