/**
 * The conformance cases: one requirement each, with an id frozen across releases.
 *
 * Id families (never renamed; a retired case keeps its id out of use):
 *   pp1/2.1/<name>           PROXY protocol v1, doc/proxy-protocol.txt §2.1
 *   pp2/2.2/<name>           PROXY protocol v2, §2.2 (`section` names the subsection: 2.2.3 CRC32C...)
 *   hs/<transition>/<name>   the handshake lifecycle: deadline, client close, TLS, no handshake
 *   lim/<limit>/<name>       maxconn slots and queueing, tcp-request connection reject
 *   cnt/<path>/<name>        the counters after each path, through the stats socket
 *   log/<option>/<name>      which kills the log shows (option dontlognull)
 *   data/<timeout>/<name>    the data phase after the handshake: how its timeouts close each side
 *
 * Each case states what its clients do as the model's events (`scenario`, predict.ts); what the
 * target must then do beyond the case's own wire checks is derived from the machines, never
 * written here: the model, run on the suite config of the case's frontend under the target's
 * profile, gives the transitions the case takes, the kills the target logs, how it closes each
 * connection and its counters after each event (which the counter cases read through
 * predictedCounters). The runner judges the closes on every target, the log on every target whose
 * log it captures, and the transitions on every target that writes a trace (the bundled proxy,
 * whatever its --profile): a case fails unless it takes exactly the transitions predicted, no
 * other (runner.ts, "the case takes the transitions the model predicts"), and the coverage file
 * counts the transitions it took (report.ts toCoverage).
 * Where a profile's prediction differs from dev12's in what a target shows (predict.ts
 * observablyDiffer), the case says why in `profileDifferences`, and a target of that profile that
 * does what its profile predicts gets the verdict version-difference; a test holds the two to each
 * other (a difference without a reason, or a reason without a difference, fails). What each case
 * body checks itself (FIN or RST at a time, the echo, the backend's gauge) is written for every
 * profile and was measured against HAProxy 2.6.12 as Debian ships it
 * (../shared/reference/haproxy-2.6-observed.md).
 *
 * Headers are built with impl/proxy/build.ts (the inverse of the parser); the malformed ones are
 * written out byte by byte, annotated.
 */
import { readFileSync } from 'node:fs';
import { MACHINES } from '../machines/compose.ts';
import type { Profile } from '../machines/config.ts';
import type { TlsRead } from '../machines/connection.machine.ts';
import type { Counters } from '../machines/counters.ts';
import type { ProxyFailCode } from '../machines/errCodes.ts';
import { listTransitions } from '../machines/introspect.ts';
import { buildV1, buildV2 } from '../impl/proxy/build.ts';
import { maxTlvValueFor, parseProxyHeader } from '../impl/proxy/parse.ts';
import { DATA_PHASE_RULES } from '../impl/stream.ts';
import { HOLD_REQUEST, pollUntil, type BackendConnection } from './backend.ts';
import { clientHello, HALF_RECORD, WriteProgress, type CloseSeen, type WireClient } from './client.ts';
import {
  AT_ONCE_MS,
  DEADLINE_WINDOW,
  expectBackendAfter,
  expectClose,
  expectCloseAtOnce,
  expectCounters,
  expectEcho,
  expectEchoedBack,
  expectNoBackend,
  expectNoBackendYet,
  expectOpenUntil,
  fromConnect,
  judgeOffset,
  type CaseContext,
  type CounterRule,
  type Reference,
  type Window,
} from './expect.ts';
import {
  HEADER_SOURCES,
  predict,
  PROFILES,
  type Prediction,
  type Scenario,
  type ScenarioEvent,
} from './predict.ts';
import { statNumber, type StatsSnapshot } from './stats.ts';
import {
  CLIENT_HS_MS,
  DATA_SERVER_TIMEOUT_MS,
  DEADLINE_MS,
  FE_QUEUE_BIND_MAXCONN,
  FRONTENDS,
  OTHER_CLIENT_ADDRESS,
  QUEUE_MAXCONN,
  RATE_FULL_MAXCONN,
  servesFrontend,
  SUITE_MAXSSLCONN,
  type FrontendName,
} from './suite.cfg.ts';

/**
 * Why a profile's HAProxy does something else than dev12's in a case. Where the profile's targets
 * run the case, the difference itself is the model's (predict.ts): this gives its reason, and must
 * exist exactly when the profile's prediction differs from dev12's in what a target shows. Where
 * they do not serve the case's frontend (suite.cfg.ts servesFrontend), it says why the profile has
 * no such path.
 */
export interface ProfileDifference {
  profile: Profile;
  reason: string;
}

/**
 * A bug of HAProxy's own builds that the case shows: the mutant (machines/mutants.ts) that models
 * it, and the profiles whose HAProxy has it. On a target that runs HAProxy itself under one of
 * those profiles, the case is predicted with the mutant's defect switched in (predictionOf), and
 * a run that holds every check of that prediction is a known-bug, not a pass (runner.ts). The
 * bundled proxy follows the machines, bug-free, under every profile.
 */
export interface KnownBug {
  mutant: string;
  profiles: readonly Profile[];
  /**
   * The case's events on a target with the bug, when they differ from the case's scenario: the
   * clients do the same, but the bug changes what the proxy's own timers do (QUEUE_TASK,
   * RATE_PERIOD) and so which clients it accepts. Absent: the case's scenario (the profile's own, if
   * the case has one); present, it replaces that too.
   */
  scenario?: Scenario;
}

/** One conformance case, as written. */
export interface CaseDefinition {
  id: string; //                        frozen: pp1/2.1/…, pp2/2.2/…, hs/…, lim/…, cnt/…
  requirement: string; //               what the target must do, in one or two sentences
  section?: string; //                  doc/proxy-protocol.txt section, for pp1/pp2 cases
  scenario: Scenario; //                what its clients do, as the model's events; every connection ends in it
  /**
   * The events under a profile whose HAProxy reads the clients' bytes otherwise (its PROXY reader's
   * limits), where they differ from `scenario`: the clients do the same, the target reports
   * another event (headerScenarioUnder). Absent for a profile: `scenario`.
   */
  scenarios?: Partial<Record<Profile, Scenario>>;
  frontend: FrontendName; //            the frontend it connects to; its config is the model's
  needs?: readonly ('stats' | 'log')[]; // skipped without a stats socket, or where the log is not captured
  budgetMs?: number; //                 the case fails if it runs longer (default 4000)
  profileDifferences?: ProfileDifference[];
  knownBugs?: readonly KnownBug[];
  /**
   * Work the case needs done before its clock starts, outside its timings (building a payload of
   * megabytes): the runner calls it before each run and before it watches the run for stalls.
   */
  prepare?(): void;
  run(ctx: CaseContext): Promise<void>;
}

/** One conformance case, with what the model derives from its scenario. */
export interface ConformanceCase extends CaseDefinition {
  /** Every transition the case takes under some profile (predictionOf), each once. */
  transitions: string[];
}

const predictions = new WeakMap<Scenario, Map<string, Prediction>>();

/**
 * Returns the profiles whose targets serve the frontend of <c> (suite.cfg.ts servesFrontend): the
 * profiles it runs on and has a prediction for. Pure.
 */
export function profilesOf(c: Pick<CaseDefinition, 'frontend'>): Profile[] {
  return PROFILES.filter((p) => servesFrontend(p, c.frontend));
}

/**
 * Returns what the model predicts for case <c> under <profile> (predict.ts), for the profile's own
 * scenario when it has one; with <bug>, on the model with its mutant's defect switched in, for the
 * bug's own scenario when it has one: what a target with that bug does. Memoised per scenario.
 * Requires <profile> among profilesOf(c); throws otherwise, and if the scenario is not a run of the
 * machines (a case that would be wrong on every target).
 */
export function predictionOf(
  c: Pick<CaseDefinition, 'scenario' | 'scenarios' | 'frontend'>,
  profile: Profile,
  bug?: KnownBug,
): Prediction {
  if (!servesFrontend(profile, c.frontend))
    throw new Error(`no target of profile ${profile} serves ${c.frontend}: there is nothing to predict`);
  const scenario = bug?.scenario ?? c.scenarios?.[profile] ?? c.scenario;
  let byKey = predictions.get(scenario);
  if (byKey === undefined) predictions.set(scenario, (byKey = new Map()));
  const key = `${c.frontend}/${profile}/${bug?.mutant ?? ''}`;
  let p = byKey.get(key);
  if (p === undefined) byKey.set(key, (p = predict(scenario, c.frontend, profile, bug?.mutant)));
  return p;
}

/**
 * The profile a case's other predictions are compared with: dev12 when its targets serve the case's
 * frontend, else the first profile that does (profilesOf). Pure.
 */
export function baselineProfileOf(c: Pick<CaseDefinition, 'frontend'>): Profile {
  return profilesOf(c)[0]!;
}

/**
 * Returns <c> with `transitions`, the transitions its scenario (the profile's own, if it has one)
 * takes under every profile that serves it, computed on first read (so that a scenario that is not
 * a run of the machines fails the test that predicts it, not the import of this module). Pure.
 */
function withPredictions(c: CaseDefinition): ConformanceCase {
  let transitions: string[] | undefined;
  return Object.defineProperty({ ...c }, 'transitions', {
    enumerable: true,
    get: () => (transitions ??= [...new Set(profilesOf(c).flatMap((p) => predictionOf(c, p).transitions))]),
  }) as ConformanceCase;
}

// ---------------------------------------------------------------------------------------------
// Transition ids by name, for the tests that name one: a transition is named by its source state,
// its event and its guard, and its id is looked up in listTransitions(): the rank part of an id
// moves when a machine gains a candidate, the guard does not.

const TRANSITIONS = Object.values(MACHINES).flatMap((m) => listTransitions(m));

/**
 * Returns the id of the transition of state <source> on <event> guarded by <guard> (null: the
 * unguarded candidate). Throws if there is not exactly one: the machines changed under the cases.
 */
export function transitionOf(source: string, event: string, guard: string | null = null): string {
  const found = TRANSITIONS.filter((t) => t.source === source && t.event === event && t.guard === guard);
  if (found.length !== 1) {
    throw new Error(`conformance: ${found.length} transitions of ${source} on ${event} with guard ${guard}`);
  }
  return found[0]!.id;
}

// ---------------------------------------------------------------------------------------------
// Scenarios: what a case's clients do, as the model's events (predict.ts). The model, run on the
// suite config of the case's frontend under the target's profile, derives from them what the
// target must do: the kills it logs, the closes, the counters and the transitions taken.

const ACCEPT: ScenarioEvent = { type: 'ACCEPT' };
const PENDING: ScenarioEvent = { type: 'PENDING' };
const HEADER_OK: ScenarioEvent = { type: 'PROXY_HEADER_OK' };
const TLS_DONE: ScenarioEvent = { type: 'TLS_OK' };
const TLS_FAILS: ScenarioEvent = { type: 'TLS_ERROR', code: 'SSL_HANDSHAKE' };
const DEADLINE: ScenarioEvent = { type: 'TIMER_EXPIRE' };
const SESSION_END: ScenarioEvent = { type: 'SESSION_END' };

/**
 * What the client of the write-timeout case sends at once, which the backend echoes: twice what
 * the path back to the client can hold, so that the target's writes to it wait. A client that
 * reads nothing keeps its receive buffer at tcp_rmem's default, and the target's send buffer grows
 * up to tcp_wmem's maximum (/proc/sys/net/ipv4; 128 KiB and 4 MiB where the suite was measured:
 * 8.3 MiB sent, of which about 4.1 MiB reached the client). Sent at once, the client's bytes are
 * all taken about when the path back fills, and the target's last write to it and its last read
 * from it are moments apart. They need to be, for the first case that sends it: under 1.5-dev12
 * and 2.6 the reads of a client that goes on sending renew its write deadline until the target's
 * next check (the case after it).
 */
function writeTimeoutPayload(): Buffer {
  if (payload === null) {
    const field = (file: string, i: number): number =>
      Number(readFileSync(`/proc/sys/net/ipv4/${file}`, 'utf8').trim().split(/\s+/)[i]);
    // Made once per process, before the case's clock starts (prepare): filling 8 MiB of fresh
    // pages took the runner's event loop 35 ms, enough with the case's own writes to count as a
    // stall of the runner.
    payload = Buffer.alloc(2 * (field('tcp_wmem', 2) + field('tcp_rmem', 1)), 0x61);
  }
  return payload;
}
let payload: Buffer | null = null;

/**
 * The renewal case's chunks: RENEW_CHUNK bytes every RENEW_EVERY_MS ms, so that some chunk falls in
 * any span of RENEW_AMBIGUITY_MS on each side of the target's first check, which is not judged.
 */
const RENEW_CHUNK = 100;
const RENEW_EVERY_MS = 25;
const RENEW_AMBIGUITY_MS = 20;
/**
 * The last chunk goes at most this long after connect: well before the earliest close a renewal
 * allows (about 2 × DEADLINE_MS), and late enough that a target whose every read renews the write
 * deadline closes after the window.
 */
const RENEW_UNTIL_MS = 2 * DEADLINE_MS - 120;

/**
 * Lets <client>, which stopped reading, read again after the target's <close> seen in the kernel:
 * a FIN waits behind the bytes the kernel holds, so the client reads them, then sees it (at most
 * 2 s). Resolves at once for an RST or no close.
 */
async function readToTheFin(client: WireClient, close: 'fin' | 'rst' | null): Promise<void> {
  if (close !== 'fin') return;
  client.resumeReading();
  await client.waitForClose(2000);
}

/** Returns the scenario of <events>, on the case's frontend. Pure. */
function scenario(...events: ScenarioEvent[]): Scenario {
  return { events };
}

/** The header fails with <code>: the parser's answer (impl/proxy), the model's input. Pure. */
function headerError(code: ProxyFailCode): Scenario {
  return scenario(ACCEPT, { type: 'PROXY_HEADER_ERROR', code });
}

/**
 * The events of a client on fe_pp that sends v2 <header> with data, under <profile>, as the bundled
 * proxy's PROXY reader (impl/proxy/parse.ts) reads the header with that profile's limits: PROXY_OK
 * if it accepts it; else the header's error, the header's addresses taken (a v2 header's are copied
 * before its TLVs are walked). Throws for an incomplete header. Pure.
 */
function headerScenarioUnder(profile: Profile, header: Uint8Array): Scenario {
  const r = parseProxyHeader(header, { mode: 'strict', maxTlvValue: maxTlvValueFor(profile) });
  if (r.status === 'done') return PROXY_OK;
  if (r.status === 'error') return { ...headerError(r.code), addressesTaken: r.source ? [0] : [] };
  throw new Error('headerScenarioUnder: the header is incomplete');
}

/**
 * A case's `scenario` and `scenarios` for a client that sends v2 <header> with data: dev12's events,
 * and those of every other profile (headerScenarioUnder). Pure.
 */
function headerScenarios(header: Uint8Array): Pick<CaseDefinition, 'scenario' | 'scenarios'> {
  return {
    scenario: headerScenarioUnder('dev12', header),
    scenarios: Object.fromEntries(
      PROFILES.filter((p) => p !== 'dev12').map((p) => [p, headerScenarioUnder(p, header)]),
    ),
  };
}

/** The header, then the client closes or resets during TLS, having sent <tlsRead>. Pure. */
function duringTls(type: 'CLIENT_CLOSE' | 'CLIENT_RESET', tlsRead: TlsRead): Scenario {
  return scenario(ACCEPT, HEADER_OK, { type, tlsRead });
}

/**
 * fe_queue's slots: QUEUE_MAXCONN embryonic connections take them all; <queued> more wait in the
 * backlog, and each is accepted as a holder's deadline frees a slot, and then does <onAccept>(its
 * connection number, from QUEUE_MAXCONN); after every holder's deadline, <after>. The waiting
 * connections are PENDING where the profile decides whether the listener attempts them: a dev12
 * listener is full once the slots are taken, a 2.x one (fe_queue's bind has no maxconn of its own)
 * attempts the first and waits on the frontend's queue. Pure.
 */
function slots(
  queued: number,
  onAccept: (conn: number) => ScenarioEvent[],
  after: ScenarioEvent[],
): Scenario {
  const events: ScenarioEvent[] = Array.from({ length: QUEUE_MAXCONN }, () => ACCEPT);
  events.push(...Array.from({ length: queued }, (): ScenarioEvent => PENDING));
  for (let conn = 0; conn < QUEUE_MAXCONN; conn++) {
    events.push({ type: 'TIMER_EXPIRE', conn });
    if (conn < queued) events.push(ACCEPT, ...onAccept(QUEUE_MAXCONN + conn));
    // The listener, ready again, goes on to the next waiting connection if it still polls.
    if (conn + 1 < queued) events.push(PENDING);
  }
  return { events: [...events, ...after] };
}

const PROXY_TIMEOUT = scenario(ACCEPT, DEADLINE);
const PROXY_CLIENT_CLOSE = scenario(ACCEPT, { type: 'CLIENT_CLOSE' });
const PROXY_CLIENT_RESET = scenario(ACCEPT, { type: 'CLIENT_RESET' });
const PROXY_OK = scenario(ACCEPT, HEADER_OK, SESSION_END);
const PROXY_TLS_OK = scenario(ACCEPT, HEADER_OK, TLS_DONE, SESSION_END);
const PROXY_TLS_TIMEOUT = scenario(ACCEPT, HEADER_OK, DEADLINE);
const PROXY_TLS_ERROR = scenario(ACCEPT, HEADER_OK, TLS_FAILS);
const TLS_OK = scenario(ACCEPT, TLS_DONE, SESSION_END);
const TLS_TIMEOUT = scenario(ACCEPT, DEADLINE);
const TLS_ERROR = scenario(ACCEPT, TLS_FAILS);
const NO_HANDSHAKE = scenario(ACCEPT, SESSION_END);
const NO_HANDSHAKE_WRITE_TIMEOUT = scenario(ACCEPT, { type: 'SESSION_END', writeTimeout: true });
const REJECTED = scenario(ACCEPT);
const SLOTS_EXPIRE = slots(2, () => [], [
  { type: 'TIMER_EXPIRE', conn: QUEUE_MAXCONN },
  { type: 'TIMER_EXPIRE', conn: QUEUE_MAXCONN + 1 },
]);
/**
 * fe_fe_queue: QUEUE_MAXCONN embryonic connections fill the frontend (its bind has room left); the
 * next accept attempt finds it full and the listener waits on the frontend's queue; the first
 * holder's deadline frees a slot and dequeues the listener, which accepts the waiting connection;
 * then every other deadline strikes.
 */
const FRONTEND_QUEUE: Scenario = {
  events: [
    ...Array.from({ length: QUEUE_MAXCONN }, () => ACCEPT),
    ACCEPT, // refused: the frontend is full, the connection stays in the backlog
    { type: 'TIMER_EXPIRE', conn: 0 },
    ACCEPT,
    ...Array.from({ length: QUEUE_MAXCONN }, (_, i): ScenarioEvent => ({
      type: 'TIMER_EXPIRE',
      conn: i + 1,
    })),
  ],
};
// The late connection sent its header with its first bytes: it completes as soon as it is accepted.
const SLOTS_SERVE = slots(1, (conn) => [{ type: 'PROXY_HEADER_OK', conn }], [
  { type: 'SESSION_END', conn: QUEUE_MAXCONN },
]);

// ---------------------------------------------------------------------------------------------
// Headers and bytes.

const SRC4 = { address: HEADER_SOURCES.v4, port: 40000 };
// A v2 header whose TLVs are invalid: its addresses were taken first, so the kill names its source.
const TLV_ERROR: Scenario = { ...headerError('PRX_BAD_HDR'), addressesTaken: [0] };
const DST4 = { address: '10.1.2.4', port: 443 };
const SRC6 = { address: HEADER_SOURCES.v6, port: 40000 };
const DST6 = { address: '2001:db8::2', port: 443 };

const V1_TCP4 = buildV1({ family: 'TCP4', source: SRC4, destination: DST4 });
const V1_TCP6 = buildV1({ family: 'TCP6', source: SRC6, destination: DST6 });
const V1_UNKNOWN = buildV1({ family: 'UNKNOWN' });
const V2_TCP4 = buildV2({ family: 'TCP4', source: SRC4, destination: DST4 });
const V2_TCP6 = buildV2({ family: 'TCP6', source: SRC6, destination: DST6 });
const V2_LOCAL = buildV2({ command: 'LOCAL', family: 'UNSPEC' });
const V2_TLVS = buildV2({
  family: 'TCP4',
  source: SRC4,
  destination: DST4,
  tlvs: [
    { type: 0x01, value: bytes('h2') }, //                     PP2_TYPE_ALPN
    { type: 0x02, value: bytes('example.com') }, //            PP2_TYPE_AUTHORITY
    { type: 0x04, value: new Uint8Array(3) }, //               PP2_TYPE_NOOP
    { type: 0xe0, value: bytes('custom-value') }, //           PP2_TYPE_MIN_CUSTOM
  ],
});
const V2_AUTHORITY_256 = buildV2({
  family: 'TCP4',
  source: SRC4,
  destination: DST4,
  tlvs: [{ type: 0x02, value: bytes('a'.repeat(256)) }], //   PP2_TYPE_AUTHORITY, 256 bytes
});
// A custom TLV (PP2_TYPE_MIN_CUSTOM) one byte over HA_PP2_MAX_ALLOC, the most 2.9 stores.
const V2_TLV_1025 = buildV2({
  family: 'TCP4',
  source: SRC4,
  destination: DST4,
  tlvs: [{ type: 0xe0, value: new Uint8Array(1025).fill(0x61) }],
});
const V2_CRC = buildV2({ family: 'TCP4', source: SRC4, destination: DST4 }, { crc32c: true });
const V2_CRC_BAD = (() => {
  const h = Uint8Array.from(V2_CRC);
  h[h.length - 1]! ^= 0xff; // flip the last byte of the checksum value
  return h;
})();
const SIG = '0d0a0d0a000d0a515549540a'; // the 12-byte v2 signature

// Malformed v2 headers, written out byte by byte, one annotated field a line.
const V2_BAD_VERSION = hex(`${SIG}
  31          ver_cmd: version 3 (invalid), command PROXY
  11          fam: TCP over IPv4
  000c        len: 12
  0a010203 0a010204 9c40 01bb   addresses and ports`);
const V2_UNKNOWN_COMMAND = hex(`${SIG}
  22          ver_cmd: version 2, command 2 (undefined)
  11          fam: TCP over IPv4
  000c        len: 12
  0a010203 0a010204 9c40 01bb   addresses and ports`);
const V2_TLV_OVERRUN = hex(`${SIG}
  21          ver_cmd: version 2, command PROXY
  11          fam: TCP over IPv4
  0011        len: 17 = 12 of addresses + a 5-byte TLV
  0a010203 0a010204 9c40 01bb   addresses and ports
  e0 0010 6162   TLV type 0xE0, length 16, but only 2 value bytes remain`);
const V2_SHORT_ADDRESS_BLOCK = hex(`${SIG}
  21          ver_cmd: version 2, command PROXY
  11          fam: TCP over IPv4
  0008        len: 8 (an IPv4 block needs 12)
  0a010203 0a010204   addresses only, no ports`);
const V2_UNSPEC_UNDER_PROXY = hex(`${SIG}
  21          ver_cmd: version 2, command PROXY
  00          fam: UNSPEC
  0000        len: 0`);

const DATA = bytes('hello, backend\n');
const HTTP_REQUEST = bytes('GET / HTTP/1.0\r\n\r\n');
/** A TLS record (TLS 1.0 framing) holding one alert: warning, close_notify. */
const CLOSE_NOTIFY_ALERT = Uint8Array.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00]);
const TLS_RESET_SO_ERROR =
  'From 2.4 (0630038e7), ssl_sock_handshake reads the socket\'s SO_ERROR before calling OpenSSL and fails a connection with an error pending, with CO_ER_SSL_HANDSHAKE ("SSL handshake failure"), so every reset during the TLS handshake is SSL_HANDSHAKE, where the code of 20879a023 gives CO_ER_SSL_ABORT to a reset that leaves no TLS record half read. Observed on every run of the suite against Debian\'s 2.6.12; the RST, the counters and the untouched backend are as in dev12.';
const TLS_EARLY_CLOSE_2_6 =
  "HAProxy 2.6 with OpenSSL 1.1 or later judges a handshake empty by SSL_get_state() == TLS_ST_BEFORE (no ClientHello processed yet), where 1.5-dev's OpenSSL 1.0 rule (20879a023) reads packet_length (no record half read): a close within the ClientHello record is SSL_EMPTY there, a close after a whole ClientHello SSL_HANDSHAKE. Observed on Debian's HAProxy 2.6.12.";

const WRITE_TIMEOUT_SILENT_2_X =
  "2.x marks the client's side SC_FL_NOLINGER at a write timeout as 1.5-dev12 marks it SI_FL_NOLINGER, but its shutw is silent (CO_SHW_SILENT in sc_conn_shutw) and sets no SO_LINGER 0: the close is a FIN, queued behind what the kernel still holds for the client, where 1.5-dev12 resets the connection. Observed on Debian's HAProxy 2.6.12.";

const TRANSPORT_INIT_AT_PREPARE =
  "2.x inits the transport before session_new (since 1.6-dev2, 02a0c0e40; in conn_prepare since 1b3c931bf, 2.4): when ssl_sock_init refuses the SSL context, listener_accept has counted the connection (conn_tot, and smax), but session_new, which counts totalconn (show info CumConns), never runs; 1.5-dev12 counts totalconn in listener_accept. Measured on Debian's 2.6.12.";

/**
 * Returns the profile differences of a case that every profile from 2.6 on (every one of PROFILES
 * but dev12) shows for the same <reason>. Pure.
 */
function fromTwoSixOn(reason: string): ProfileDifference[] {
  return PROFILES.filter((profile) => profile !== 'dev12').map((profile) => ({ profile, reason }));
}

/**
 * What the write-timeout cases share: a client on fe_data that the target closes at its write
 * timeout, with a FIN from 2.x on where dev12 resets it.
 */
const WRITE_TIMEOUT_CASE = {
  scenario: NO_HANDSHAKE_WRITE_TIMEOUT,
  frontend: 'fe_data',
  budgetMs: 6000,
  profileDifferences: fromTwoSixOn(WRITE_TIMEOUT_SILENT_2_X),
  prepare: writeTimeoutPayload,
} as const;

/** Returns the latin1 bytes of <text>. Pure. */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'latin1'));
}

/**
 * Returns the bytes an annotated hex dump writes out: on each line, the hex groups (separated by
 * single spaces) before the first run of two spaces, which starts the annotation. Throws on a line
 * whose groups are not whole bytes of hex, so a typo cannot silently shorten a header (Buffer.from
 * stops at the first non-hex character). Pure.
 */
export function hex(text: string): Uint8Array {
  let digits = '';
  for (const line of text.split('\n')) {
    const groups = line
      .trim()
      .split(/\s{2,}/)[0]!
      .replace(/ /g, '');
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(groups)) throw new Error(`hex: not whole bytes of hex: ${line.trim()}`);
    digits += groups;
  }
  return Uint8Array.from(Buffer.from(digits, 'hex'));
}

/** Returns the concatenation of <parts>. Pure. */
function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts.map((p) => Buffer.from(p))));
}

// ---------------------------------------------------------------------------------------------
// Steps shared by several cases. Each records its checks in the order a case body would, so a
// case reads as the sequence of its steps.

/** Writes <data> on <client> and returns the moment as a Reference named <label>. */
async function send(
  ctx: CaseContext,
  client: WireClient,
  data: Uint8Array,
  label: string,
): Promise<Reference> {
  const t = ctx.log.now();
  await client.write(data);
  return { t, label };
}

/** Half-closes <client> and expects the target to close it with a FIN at once. */
async function endAndExpectFin(ctx: CaseContext, client: WireClient): Promise<void> {
  const t = ctx.log.now();
  client.end();
  await expectCloseAtOnce(ctx, client, 'fin', { t, label: "the client's FIN" });
}

/**
 * Expects <data> echoed through the backend to <client> (expectEcho), then half-closes <client>
 * and expects a FIN at once. Records three checks; the caller still owns <client>.
 */
async function expectEchoThenFin(ctx: CaseContext, client: WireClient, data: Uint8Array): Promise<void> {
  await expectEcho(ctx, client, data);
  await endAndExpectFin(ctx, client);
}

/**
 * Writes <firstWrite> (a header, maybe with data after it) on <client>, naming the moment <label>,
 * and checks that the backend is contacted at once after it, not before. Records one check.
 * Returns the moment and the backend connection (null: none came).
 */
async function sendHeader(
  ctx: CaseContext,
  client: WireClient,
  firstWrite: Uint8Array,
  label = 'the header',
): Promise<{ sent: Reference; conn: BackendConnection | null }> {
  const sent = await send(ctx, client, firstWrite, label);
  const conn = await expectBackendAfter(ctx, sent);
  return { sent, conn };
}

/** HAProxy 2.4 and later never close a connection whose SSL context they refused (machines/mutants.ts). */
/**
 * fe_rate_full's first second: the first client's session (no handshake: counted at accept) spends
 * the session rate and fills the frontend; the second client's connection meets the rate limit, and
 * the listener waits on the frontend's queue; the frontend's task looks again (2.x: 1 ms later)
 * and finds the frontend full, so it disarms; the first session ends within the same second.
 */
const RATE_FULL_FIRST_SECOND: readonly ScenarioEvent[] = [
  ACCEPT,
  ACCEPT,
  { type: 'QUEUE_TASK', queue: 'frontend' },
  { type: 'SESSION_END', conn: 0 },
];

/**
 * When fe_rate_full's second client must be accepted, in ms after the first client's connect: when
 * the session rate's period, begun by the first session, is over (+1000 ms).
 */
const RATE_WINDOW: Window = [900, 1600];

/**
 * 65ae1347c (2024): before it, a release that found the session rate spent neither dequeued the
 * listener nor armed the frontend's task. Debian's 2.6.12 and 2.9.0 predate it. With the bug the
 * proxy's task never runs again: the second client stays in the backlog.
 */
const RELEASE_LEAVES_LISTENER_LIMITED: KnownBug = {
  mutant: 'frontend-task-not-armed-on-release',
  profiles: ['2.6', '2.9'],
  scenario: { events: [...RATE_FULL_FIRST_SECOND, { type: 'RATE_PERIOD' }], backlog: 1 },
};

const TRANSPORT_INIT_LEAK: KnownBug = { mutant: 'transport-init-failure-leaks-fd', profiles: ['2.6', '2.9'] };

/**
 * Opens SUITE_MAXSSLCONN connections to <fe> (fe_tls unless given), from <from> (CLIENT_ADDRESS
 * unless given), that send nothing, so that their SSL contexts hold every slot of maxsslconn, and
 * lets the target accept them. Returns them, connection 0 first.
 */
async function holdSslContexts(
  ctx: CaseContext,
  fe: FrontendName = 'fe_tls',
  from?: string,
): Promise<WireClient[]> {
  const holders: WireClient[] = [];
  for (let i = 0; i < SUITE_MAXSSLCONN; i++) holders.push(await ctx.connect(fe, from));
  await ctx.sleep(50);
  return holders;
}

/**
 * The run of a case whose scenario is: SUITE_MAXSSLCONN idle TLS connections to <fe>, from <from>
 * (holdSslContexts), then one more from the suite's client address, which meets maxsslconn, then
 * the holders' deadlines. Checks the counters the model predicts with the holders, 50 ms after the
 * further connection and after the deadlines; expects that connection closed as the prediction says
 * (an RST or a FIN at once, or never) and the holders at their deadline; and the backend never
 * contacted. Requires needs: ['stats'].
 */
async function beyondMaxsslconn(ctx: CaseContext, fe: FrontendName, from?: string): Promise<void> {
  const before = await ctx.stats('before');
  const holders = await holdSslContexts(ctx, fe, from);
  expectCounters(
    ctx,
    before,
    await ctx.stats(`${SUITE_MAXSSLCONN} idle TLS connections`),
    predictedCounters(ctx, before, fe, SUITE_MAXSSLCONN),
  );
  const further = await ctx.connect(fe);
  await ctx.sleep(50);
  expectCounters(
    ctx,
    before,
    await ctx.stats('50 ms after the third connection'),
    predictedCounters(ctx, before, fe, SUITE_MAXSSLCONN + 1),
  );
  await expectPredictedClose(ctx, further, SUITE_MAXSSLCONN, fromConnect(further), 0, [0, AT_ONCE_MS]);
  await expectHoldersClosed(ctx, holders);
  // Their SSL contexts are freed with them: CurrSslConns is back where it was.
  expectCounters(ctx, before, await ctx.stats('after the deadline'), predictedCounters(ctx, before, fe));
  expectNoBackend(ctx);
}

/** Returns the last read of <client> in the case's wire log as a Reference named <label> (0 if none). Pure. */
function lastRead(ctx: CaseContext, client: WireClient, label: string): Reference {
  const t = ctx.log.events.filter((e) => e.conn === client.name && e.kind === 'read').at(-1)?.t ?? 0;
  return { t, label };
}

/**
 * The handshake deadline the model arms for connection <conn> of the case's scenario, in ms
 * (Prediction.deadlines). Throws if it arms none: the case would have no deadline to judge.
 */
function predictedDeadline(ctx: CaseContext, conn: number): number {
  const ms = ctx.predicted.deadlines[conn];
  if (ms === null || ms === undefined)
    throw new Error(`the model arms no deadline for connection ${conn} under ${ctx.predicted.profile}`);
  return ms;
}

/**
 * The window of a client-hs deadline: 20 ms early to 100 ms late, narrower than DEADLINE_WINDOW so
 * that a target that armed `timeout client` instead (DEADLINE_MS, 200 ms later) cannot pass.
 */
const CLIENT_HS_WINDOW: Window = [-20, 100];

/** Why dev12 and 2.6 targets do not serve fe_client_hs. */
const BEFORE_CLIENT_HS: ProfileDifference[] = [
  {
    profile: 'dev12',
    reason:
      '1.5-dev has no `timeout client-hs` (b33eacc52, 2.9-dev10): its embryonic deadline is always timeout client, so no dev12 target serves fe_client_hs.',
  },
  {
    profile: '2.6',
    reason:
      '2.6 refuses `timeout client-hs` (b33eacc52 came in 2.9-dev10): its embryonic deadline is always timeout client, so no 2.6 target serves fe_client_hs.',
  },
];

/**
 * Expects connection <conn> of the scenario (<client>) to be closed as the prediction says: with
 * its FIN or RST at <at> ms after <from>, within <window>; or, when the model predicts no close
 * (a refused connection the target never closes), still open past the deadline. Records one check.
 */
async function expectPredictedClose(
  ctx: CaseContext,
  client: WireClient,
  conn: number,
  from: Reference,
  at: number,
  window: Window,
): Promise<void> {
  const close = ctx.predicted.closes[conn];
  if (close === 'fin' || close === 'rst') await expectClose(ctx, client, close, from, at, window);
  else if (close === null)
    await expectOpenUntil(
      ctx,
      client,
      fromConnect(client).t + DEADLINE_MS + 100,
      'past the deadline: the model predicts no close (its fd is never closed)',
    );
  else throw new Error(`the model predicts that connection ${conn} is closed by ${close}`);
}

/** Expects the holders of holdSslContexts to be closed at the deadline, as predicted. */
async function expectHoldersClosed(ctx: CaseContext, holders: WireClient[]): Promise<void> {
  for (const [i, holder] of holders.entries())
    await expectPredictedClose(ctx, holder, i, fromConnect(holder), DEADLINE_MS, DEADLINE_WINDOW);
}

/**
 * A first write the target must refuse at once: connect to <fe>, write <payload> in one write,
 * expect a close of <kind> at once, and no backend connection (<why>: the reason the check names;
 * undefined: expectNoBackend's default).
 */
async function closedAtOnce(
  ctx: CaseContext,
  fe: FrontendName,
  payload: Uint8Array,
  kind: CloseSeen['kind'],
  why?: string,
): Promise<void> {
  const client = await ctx.connect(fe);
  const sent = await send(ctx, client, payload, 'the write');
  await expectCloseAtOnce(ctx, client, kind, sent);
  expectNoBackend(ctx, why);
}

/**
 * A header the target must reject: connect to fe_pp, write <payload> in one write, expect an RST
 * at once, and no backend connection.
 */
function rejectedAtOnce(ctx: CaseContext, payload: Uint8Array): Promise<void> {
  return closedAtOnce(ctx, 'fe_pp', payload, 'rst', 'the header is rejected');
}

/**
 * A header the target must accept on <fe>: connect, write <header> (with <data> in the same write
 * when <oneWrite>, else 100 ms later), expect the backend contacted after the header, the data
 * echoed, and a FIN at once after the client's own FIN.
 */
async function forwarded(
  ctx: CaseContext,
  header: Uint8Array,
  data: Uint8Array,
  oneWrite = false,
  fe: FrontendName = 'fe_pp',
): Promise<void> {
  const client = await ctx.connect(fe);
  await sendHeader(ctx, client, oneWrite ? concat(header, data) : header);
  if (!oneWrite) {
    await ctx.sleep(100);
    await client.write(data);
  }
  await expectEchoThenFin(ctx, client, data);
}

/**
 * Sends `header` on fe_pp, expects the backend to be contacted after it, then sends each of `parts`
 * in its own write 30 ms apart and expects them echoed whole and in order, then a FIN after the
 * client's. Shared by the v1 (§2.1) and v2 (§2.2) "data in several writes" cases.
 */
async function dataInSeveralWritesAfter(
  ctx: CaseContext,
  header: Uint8Array,
  texts: string[],
): Promise<void> {
  const client = await ctx.connect('fe_pp');
  await sendHeader(ctx, client, header);
  const parts = texts.map((t) => bytes(t));
  for (const part of parts) {
    await client.write(part);
    await ctx.sleep(30);
  }
  await expectEchoThenFin(ctx, client, concat(...parts));
}

/**
 * Runs a TLS handshake on <client> (at most 1 s) and checks, as <what>, that it completes. Once it
 * has, expects the backend contacted at once after it, then writes <data> and expects it echoed
 * and a FIN after the client's. Records one check if the handshake fails, five if it completes.
 */
async function forwardedOverTls(
  ctx: CaseContext,
  client: WireClient,
  what: string,
  data: Uint8Array,
): Promise<void> {
  const tls = await client.startTls(1000);
  ctx.check({
    what,
    expected: 'established',
    actual: tls.ok ? `established at ${tls.at} ms` : `failed: ${tls.error}`,
    ok: tls.ok,
  });
  if (!tls.ok) return;
  await expectBackendAfter(ctx, { t: tls.at, label: 'the TLS handshake' }, AT_ONCE_MS);
  await client.write(data);
  await expectEchoThenFin(ctx, client, data);
}

/**
 * Expects the embryonic deadline to strike <client>: a FIN at +DEADLINE_MS from its connect, and
 * the backend never contacted. Records two checks.
 */
async function expectFinAtDeadline(ctx: CaseContext, client: WireClient): Promise<void> {
  await expectClose(ctx, client, 'fin', fromConnect(client), DEADLINE_MS);
  expectNoBackend(ctx);
}

/** Returns the row and field of counter <field> of frontend <name>, for a CounterRule. Pure. */
function fe(name: FrontendName, field: string): { row: string; field: string } {
  return { row: `${name}/FRONTEND`, field };
}

/** The frontend fields of `show stat` that the model's counters stand for (machines/counters.ts). */
const FRONTEND_COUNTERS = {
  scur: 'feconn',
  conn_tot: 'cumConn',
  stot: 'cumSess',
  dcon: 'deniedConn',
} as const satisfies Record<string, keyof Counters>;

/**
 * Returns the counter rules the model predicts (ctx.predicted) for frontend <name> once the first
 * <events> events of the case's scenario have happened (all of them unless given; a negative
 * number leaves that many out at the end), to be read against <before>, taken before the scenario
 * began:
 *   - the frontend's scur, conn_tot, stot and dcon, and show info's CurrConns (actconn), CumConns
 *     (totalconn, beside the reader's own CLI connections), Jobs (jobs: each snapshot's own CLI
 *     connection is open in both), CurrSslConns (sslconns) and, for a 2.x prediction,
 *     CumSslConns (totalsslconns), each as its change since <before>;
 *   - the frontend's smax, a high-water mark: the larger of its value in <before> and the model's
 *     conn_max;
 *   - the backend's stot, as the frontend's: every session of the suite goes to be_echo.
 * Throws if the scenario has fewer events. Pure.
 */
function predictedCounters(
  ctx: CaseContext,
  before: StatsSnapshot,
  name: FrontendName,
  events?: number,
): CounterRule[] {
  const all = ctx.predicted.counters;
  const k = events === undefined ? all.length - 1 : events < 0 ? all.length - 1 + events : events;
  const at = all[k];
  const zero = all[0]!;
  if (at === undefined || k < 0) throw new Error(`the scenario has no moment after ${events} event(s)`);
  return [
    ...Object.entries(FRONTEND_COUNTERS).map(([field, c]) => ({
      ...fe(name, field),
      delta: at[c] - zero[c],
    })),
    {
      ...fe(name, 'smax'),
      equals: Math.max(statNumber(before, `${name}/FRONTEND`, 'smax') ?? 0, at.connMax),
    },
    { info: 'CurrConns', delta: at.actconn - zero.actconn },
    { info: 'CumConns', delta: at.totalconn - zero.totalconn, plusCli: true },
    { info: 'Jobs', delta: at.jobs - zero.jobs },
    { info: 'CurrSslConns', delta: at.sslconns - zero.sslconns },
    // 1.5-dev12 has no total of SSL contexts (totalsslconns came in 1.5-dev22): no such field.
    ...(ctx.predicted.profile === 'dev12'
      ? []
      : [{ info: 'CumSslConns', delta: at.totalsslconns - zero.totalsslconns }]),
    { row: 'be_echo/BACKEND', field: 'stot', delta: at.cumSess - zero.cumSess },
  ];
}

/**
 * Reads the target's counters (labelled 'before'), then connects a client to <name>. Requires a
 * case that needs ['stats']. Returns both; the runner destroys the client when the case ends.
 */
async function statsThenConnect(
  ctx: CaseContext,
  name: FrontendName,
): Promise<{ before: StatsSnapshot; client: WireClient }> {
  const before = await ctx.stats('before');
  const client = await ctx.connect(name);
  return { before, client };
}

/**
 * Connects to <name> and writes each of <writes> in a write of its own; the client is still
 * embryonic: 20 ms on, half-closes it and expects a FIN at once, and the backend never contacted.
 * Records two checks.
 */
async function finWhileEmbryonic(
  ctx: CaseContext,
  name: FrontendName,
  ...writes: Uint8Array[]
): Promise<void> {
  const client = await ctx.connect(name);
  for (const bytes of writes) await client.write(bytes);
  await ctx.sleep(20);
  await endAndExpectFin(ctx, client);
  expectNoBackend(ctx);
}

/**
 * Connects to <name> and sends nothing: expects the connection open until the deadline's window
 * opens, then a FIN at the deadline (expectFinAtDeadline).
 */
async function silentUntilDeadline(ctx: CaseContext, name: FrontendName): Promise<void> {
  const client = await ctx.connect(name);
  await expectOpenUntil(
    ctx,
    client,
    client.connectStartedAt + DEADLINE_MS + DEADLINE_WINDOW[0], // the earliest the target may close
    'before the deadline',
  );
  await expectFinAtDeadline(ctx, client);
}

/**
 * Reads the counters, connects to <name> and writes each of <writes> in a write of its own. The
 * client, still embryonic, holds a slot: 50 ms on, checks (as <during>) the counters the model
 * predicts before the scenario's last event, the client's RST (scur and CurrConns up by one); then
 * resets it and checks, AT_ONCE_MS later, the counters it predicts at the end (the connection gone,
 * counted in conn_tot only) and that the backend was never contacted.
 */
async function resetWhileEmbryonic(
  ctx: CaseContext,
  name: FrontendName,
  during: string,
  ...writes: Uint8Array[]
): Promise<void> {
  const { before, client } = await statsThenConnect(ctx, name);
  for (const bytes of writes) await client.write(bytes);
  await ctx.sleep(50);
  expectCounters(ctx, before, await ctx.stats(during), predictedCounters(ctx, before, name, -1));
  client.reset();
  await ctx.sleep(AT_ONCE_MS);
  expectCounters(
    ctx,
    before,
    await ctx.stats(`${AT_ONCE_MS} ms after the client's RST`),
    predictedCounters(ctx, before, name),
  );
  expectNoBackend(ctx);
}

/**
 * Waits (at most <waitMs>) for <client> to be closed, lets the target settle 20 ms, then reads the
 * counters as <label> and checks <rules> against <before>. Records one check per rule.
 */
async function countersAfterClose(
  ctx: CaseContext,
  client: WireClient,
  before: StatsSnapshot,
  label: string,
  rules: readonly CounterRule[],
  waitMs = 500,
): Promise<void> {
  await client.waitForClose(waitMs);
  await ctx.sleep(20);
  expectCounters(ctx, before, await ctx.stats(label), rules);
}

/**
 * Waits (at most 500 ms) for the backend's first connection since the case began, lets the target
 * settle 20 ms, then reads the counters as <label> and checks <rules> against <before>. Records one
 * check per rule.
 */
async function countersOnceBackendContacted(
  ctx: CaseContext,
  before: StatsSnapshot,
  label: string,
  rules: readonly CounterRule[],
): Promise<void> {
  await ctx.backend.waitForConnections(1, 500);
  await ctx.sleep(20);
  expectCounters(ctx, before, await ctx.stats(label), rules);
}

/**
 * Fills the QUEUE_MAXCONN slots of <fe> (fe_queue unless given) with idle connections, waits 30 ms
 * for the target to accept them, then opens <extra> more, which wait in the listen backlog.
 * (Opening all at once could overflow the kernel's accept queue, whose length follows maxconn, and
 * delay a SYN by 1 s.)
 */
async function fillSlots(
  ctx: CaseContext,
  extra: number,
  fe: FrontendName = 'fe_queue',
): Promise<{ holders: WireClient[]; queued: WireClient[] }> {
  const holders = await Promise.all(Array.from({ length: QUEUE_MAXCONN }, () => ctx.connect(fe)));
  await ctx.sleep(30);
  const queued = await Promise.all(Array.from({ length: extra }, () => ctx.connect(fe)));
  return { holders, queued };
}

/**
 * Fills the slots of <fe> (fillSlots) with idle connections and queues <extra> more, then checks
 * that the holders get a FIN at their deadline, and the queued ones, accepted as the slots free, at
 * their own: about 2 × DEADLINE_MS after the first holders; the backend is never contacted. Records
 * three checks.
 */
async function slotsThenQueued(ctx: CaseContext, fe: FrontendName, extra: number): Promise<void> {
  const { holders, queued } = await fillSlots(ctx, extra, fe);
  await Promise.all([...holders, ...queued].map((c) => c.waitForClose(2 * DEADLINE_MS + 1000)));
  const first: Reference = {
    t: Math.min(...holders.map((c) => c.connectedAt!)),
    since: Math.min(...holders.map((c) => c.connectStartedAt)),
    label: 'the first connections',
  };
  expectGroupClose(ctx, holders, 'connections holding the slots', DEADLINE_MS, 150, fromConnect);
  expectGroupClose(ctx, queued, 'queued connections', 2 * DEADLINE_MS, 250, () => first);
  expectNoBackend(ctx);
}

/**
 * Checks that every client of <group> was closed with a FIN at <at> ms after <from>(client),
 * within [-20, +<late>] ms (judgeOffset). Records one check for the group, whose timing is the
 * client furthest from <at>. The clients must be done waiting.
 */
function expectGroupClose(
  ctx: CaseContext,
  group: WireClient[],
  what: string,
  at: number,
  late: number,
  from: (c: WireClient) => Reference,
): void {
  const window: Window = [-20, late];
  const seen = group.map((c) => ({
    c,
    offset: c.closedBy ? judgeOffset(c.closedBy.at, from(c), at, window) : null,
  }));
  const ok = seen.every((x) => x.c.closedBy?.kind === 'fin' && x.offset?.ok === true);
  const worst = seen.reduce<number | null>(
    (w, x) =>
      w === null || x.offset === null
        ? null
        : Math.abs(x.offset.measured - at) > Math.abs(w - at)
          ? x.offset.measured
          : w,
    at,
  );
  ctx.check({
    what: `${group.length} ${what} are closed by their deadline`,
    expected: `${group.length} × FIN at +${at} ms, window [-20, +${late}] ms`,
    actual: seen
      .map(
        (x) =>
          `${x.c.name} ${x.c.closedBy?.kind.toUpperCase() ?? 'open'}${x.offset ? ` ${x.offset.text}` : ''}`,
      )
      .join(', '),
    ok,
    timing: { expected: at, measured: worst, window },
  });
}

// ---------------------------------------------------------------------------------------------
// The cases.

const DEFINITIONS: CaseDefinition[] = [
  // --- the handshake lifecycle --------------------------------------------------------------
  {
    id: 'hs/proxy-timeout/silent-client-gets-fin-at-deadline',
    requirement:
      'A client that connects to an accept-proxy bind and sends nothing is closed with a FIN (not an RST) when the embryonic deadline strikes, timeout client after accept; the backend is never contacted.',
    scenario: PROXY_TIMEOUT,
    frontend: 'fe_pp',
    run: (ctx) => silentUntilDeadline(ctx, 'fe_pp'),
  },
  {
    id: 'hs/proxy-timeout/header-after-deadline-is-too-late',
    requirement:
      'A header that would arrive after the deadline (at +350 ms) never gets a chance: the client is closed with a FIN at the deadline and the backend is never contacted.',
    scenario: PROXY_TIMEOUT,
    frontend: 'fe_pp',
    async run(ctx) {
      const client = await ctx.connect('fe_pp');
      const closing = expectClose(ctx, client, 'fin', fromConnect(client), DEADLINE_MS);
      await ctx.sleepUntil(fromConnect(client).t + DEADLINE_MS + 50);
      await client.write(V1_TCP4);
      await closing;
      await ctx.sleep(50);
      expectNoBackend(ctx);
    },
  },
  {
    id: 'hs/proxy-timeout/header-within-deadline-completes',
    requirement:
      'A header that arrives within the deadline (at +200 ms) completes the session: the backend is contacted after the header, the embryonic deadline no longer applies, and the idle session is closed by timeout client counted from the header (FIN at header + 300 ms).',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    budgetMs: 2500,
    async run(ctx) {
      const client = await ctx.connect('fe_pp');
      await ctx.sleepUntil(fromConnect(client).t + 200);
      const { sent } = await sendHeader(ctx, client, V1_TCP4, 'the header (at +200 ms)');
      await expectOpenUntil(
        ctx,
        client,
        fromConnect(client).t + DEADLINE_MS + 60,
        'past the embryonic deadline',
      );
      await expectClose(ctx, client, 'fin', sent, DEADLINE_MS);
    },
  },
  {
    id: 'hs/client-close/fin-before-header-gets-fin',
    requirement:
      'A client that half-closes before sending any header is closed at once with a FIN; the backend is never contacted.',
    scenario: PROXY_CLIENT_CLOSE,
    frontend: 'fe_pp',
    run: (ctx) => finWhileEmbryonic(ctx, 'fe_pp'),
  },
  {
    id: 'log/dontlognull/fin-before-header-not-logged',
    requirement:
      'With option dontlognull, a client that half-closes before sending any header (CO_ER_PRX_EMPTY) is closed at once with a FIN and its kill is not logged.',
    scenario: PROXY_CLIENT_CLOSE,
    frontend: 'fe_pp_nulllog',
    needs: ['log'], // what it claims is the log
    run: (ctx) => finWhileEmbryonic(ctx, 'fe_pp_nulllog'),
  },
  {
    id: 'log/dontlognull/silent-client-at-deadline-not-logged',
    requirement:
      'With option dontlognull, a client that sends nothing is closed with a FIN at the embryonic deadline and its kill is not logged: dontlognull judges it before the timeout code is set.',
    scenario: PROXY_TIMEOUT,
    frontend: 'fe_pp_nulllog',
    needs: ['log'], // what it claims is the log
    run: (ctx) => silentUntilDeadline(ctx, 'fe_pp_nulllog'),
  },
  {
    id: 'log/dontlognull/not-a-header-logged',
    requirement:
      'With option dontlognull, bytes that are not a PROXY header are still rejected with an RST and logged (CO_ER_PRX_NOT_HDR): the client sent something.',
    scenario: headerError('PRX_NOT_HDR'),
    frontend: 'fe_pp_nulllog',
    needs: ['log'], // what it claims is the log
    run: (ctx) => closedAtOnce(ctx, 'fe_pp_nulllog', HTTP_REQUEST, 'rst', 'the header is rejected'),
  },
  {
    id: 'hs/client-reset/rst-before-header-releases-slot',
    requirement:
      'A client that resets the connection before sending any header ends its embryonic session at once: its slot is released (scur and CurrConns back), conn_tot counts it, stot does not, and the backend is never contacted.',
    scenario: PROXY_CLIENT_RESET,
    frontend: 'fe_pp',
    needs: ['stats'],
    run: (ctx) => resetWhileEmbryonic(ctx, 'fe_pp', 'while embryonic'),
  },
  {
    id: 'hs/proxy-ok/backend-contacted-only-after-header',
    requirement:
      'The backend is not contacted while the connection is embryonic (100 ms without a header), and is contacted at once when the header arrives, before any data.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    async run(ctx) {
      const client = await ctx.connect('fe_pp');
      await expectNoBackendYet(ctx, fromConnect(client).t + 100, 'before the header');
      const { conn } = await sendHeader(ctx, client, V1_TCP4);
      ctx.check({
        what: 'the backend connection comes before any data',
        expected: 'no byte on the backend connection yet',
        actual: conn ? `${conn.byteCount} bytes` : 'no backend connection',
        ok: conn !== null && conn.byteCount === 0,
      });
      await client.write(DATA);
      await expectEchoThenFin(ctx, client, DATA);
    },
  },
  {
    id: 'hs/proxy-ok/idle-session-closed-after-last-activity',
    requirement:
      'Once the session is complete, the deadline is timeout client of the data phase: an idle session gets a FIN 300 ms after its last activity (the echo of data sent 100 ms after the header), neither 300 ms after accept nor 300 ms after the header.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    async run(ctx) {
      const client = await ctx.connect('fe_pp');
      await ctx.sleepUntil(fromConnect(client).t + 150);
      await client.write(V1_TCP4);
      await ctx.sleep(100);
      await client.write(DATA);
      await expectEcho(ctx, client, DATA);
      await expectClose(ctx, client, 'fin', lastRead(ctx, client, 'the last echo'), DEADLINE_MS);
    },
  },

  // --- 2.9's timeout client-hs ----------------------------------------------------------------
  {
    id: 'hs/client-hs/silent-client-gets-fin-at-client-hs',
    requirement: `From 2.9, \`timeout client-hs\`, when set, is the embryonic deadline in place of \`timeout client\` (b33eacc52, 888d1dc3d): a client that connects to an accept-proxy bind with client-hs ${CLIENT_HS_MS} ms and timeout client ${DEADLINE_MS} ms and sends nothing is closed with a FIN ${CLIENT_HS_MS} ms after accept, as the model's armed deadline says; the backend is never contacted.`,
    scenario: PROXY_TIMEOUT,
    frontend: 'fe_client_hs',
    profileDifferences: BEFORE_CLIENT_HS,
    async run(ctx) {
      const client = await ctx.connect('fe_client_hs');
      await expectClose(ctx, client, 'fin', fromConnect(client), predictedDeadline(ctx, 0), CLIENT_HS_WINDOW);
      expectNoBackend(ctx);
    },
  },
  {
    id: 'hs/client-hs/session-keeps-timeout-client',
    requirement: `\`timeout client-hs\` bounds the handshake only: a client that sends its PROXY header at once, then data ${2 * CLIENT_HS_MS} ms after accept (past client-hs), gets the data echoed, and its idle session is closed with a FIN ${DEADLINE_MS} ms (timeout client) after the last echo.`,
    scenario: PROXY_OK,
    frontend: 'fe_client_hs',
    profileDifferences: BEFORE_CLIENT_HS,
    async run(ctx) {
      const client = await ctx.connect('fe_client_hs');
      await client.write(V1_TCP4);
      await ctx.sleepUntil(fromConnect(client).t + 2 * CLIENT_HS_MS);
      await client.write(DATA);
      await expectEcho(ctx, client, DATA);
      await expectClose(ctx, client, 'fin', lastRead(ctx, client, 'the last echo'), DEADLINE_MS);
    },
  },
  {
    id: 'hs/no-handshake/backend-contacted-at-accept',
    requirement:
      'On a bind without accept-proxy or ssl there is no handshake: the session completes at accept and the backend is contacted at once, before the client sends anything.',
    scenario: NO_HANDSHAKE,
    frontend: 'fe_plain',
    async run(ctx) {
      const client = await ctx.connect('fe_plain');
      await expectBackendAfter(ctx, { t: client.connectStartedAt, label: `${client.name} connect()` });
      await client.write(DATA);
      await expectEchoThenFin(ctx, client, DATA);
    },
  },
  {
    id: 'hs/no-handshake/proxy-header-is-data',
    requirement:
      'A PROXY header sent to a bind without accept-proxy is data, never trusted: the backend receives it byte for byte, with the data after it.',
    scenario: NO_HANDSHAKE,
    frontend: 'fe_plain',
    async run(ctx) {
      const client = await ctx.connect('fe_plain');
      await client.write(concat(V1_TCP4, DATA));
      await expectEchoThenFin(ctx, client, concat(V1_TCP4, DATA));
    },
  },
  {
    id: 'hs/tls/proxy-then-tls-forwards-data',
    requirement:
      'On an accept-proxy ssl bind, the PROXY header then a TLS handshake complete the session: the backend is contacted only after the TLS handshake, and data flows both ways.',
    scenario: PROXY_TLS_OK,
    frontend: 'fe_pp_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_pp_tls');
      await client.write(V1_TCP4);
      await forwardedOverTls(ctx, client, 'the TLS handshake completes after the header', DATA);
    },
  },
  {
    id: 'hs/tls/one-deadline-from-accept-with-late-header',
    requirement:
      'PROXY then TLS run under one deadline armed at accept: a header at +200 ms followed by no TLS gets a FIN at +300 ms from accept, not from the header.',
    scenario: PROXY_TLS_TIMEOUT,
    frontend: 'fe_pp_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_pp_tls');
      await ctx.sleepUntil(fromConnect(client).t + 200);
      await client.write(V1_TCP4);
      await expectFinAtDeadline(ctx, client);
    },
  },
  {
    id: 'hs/tls/silent-after-header-gets-fin-at-deadline',
    requirement:
      'A client that sends the PROXY header at once and then nothing is closed with a FIN at the deadline (+300 ms from accept); the backend is never contacted.',
    scenario: PROXY_TLS_TIMEOUT,
    frontend: 'fe_pp_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_pp_tls');
      await client.write(V1_TCP4);
      await expectFinAtDeadline(ctx, client);
    },
  },
  {
    id: 'hs/tls/garbage-after-header-gets-fin',
    requirement:
      'Plaintext after the PROXY header on an ssl bind fails the TLS handshake: the client is closed at once with a FIN (not an RST: HAProxy drains the socket, conn_ctrl_drain, before closing it), and the backend is never contacted.',
    scenario: PROXY_TLS_ERROR,
    frontend: 'fe_pp_tls',
    run: (ctx) => closedAtOnce(ctx, 'fe_pp_tls', concat(V1_TCP4, HTTP_REQUEST), 'fin'),
  },
  {
    id: 'hs/tls/tls-without-header-gets-rst',
    requirement:
      'A TLS ClientHello where the PROXY header is due is not a header: the client is reset at once (the unread bytes make the close an RST), and the backend is never contacted.',
    scenario: headerError('PRX_NOT_HDR'),
    frontend: 'fe_pp_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_pp_tls');
      const t = ctx.log.now();
      await client.startTls(1000);
      await expectCloseAtOnce(ctx, client, 'rst', { t, label: 'the ClientHello' });
      expectNoBackend(ctx);
    },
  },
  {
    id: 'hs/tls/client-fin-during-tls-handshake-gets-fin',
    requirement:
      'A client that sends the PROXY header and then half-closes during the TLS handshake is closed at once with a FIN; the backend is never contacted.',
    scenario: duringTls('CLIENT_CLOSE', 'none'),
    frontend: 'fe_pp_tls',
    run: (ctx) => finWhileEmbryonic(ctx, 'fe_pp_tls', V1_TCP4),
  },
  {
    id: 'hs/tls/fin-within-client-hello-is-handshake-failure',
    requirement:
      'A client that sends the PROXY header and part of a ClientHello record, then half-closes, is closed at once with a FIN; its kill is logged as an SSL handshake failure (a record was left half read), and the backend is never contacted.',
    scenario: duringTls('CLIENT_CLOSE', 'partialRecord'),
    frontend: 'fe_pp_tls',
    needs: ['log'], // what it claims is the log
    profileDifferences: fromTwoSixOn(TLS_EARLY_CLOSE_2_6),
    run: (ctx) => finWhileEmbryonic(ctx, 'fe_pp_tls', V1_TCP4, HALF_RECORD),
  },
  {
    id: 'hs/tls/fin-after-client-hello-is-empty',
    requirement:
      'A client that sends the PROXY header and a whole ClientHello, then half-closes without answering the server, is closed at once with a FIN; its kill is logged as a close during the SSL handshake (no record was left half read), and the backend is never contacted.',
    scenario: duringTls('CLIENT_CLOSE', 'wholeRecords'),
    frontend: 'fe_pp_tls',
    needs: ['log'], // what it claims is the log
    profileDifferences: fromTwoSixOn(TLS_EARLY_CLOSE_2_6),
    run: async (ctx) => finWhileEmbryonic(ctx, 'fe_pp_tls', V1_TCP4, await clientHello()),
  },
  {
    id: 'hs/tls/rst-within-client-hello-is-handshake-failure',
    requirement:
      'A client that sends the PROXY header and part of a ClientHello record, then resets the connection, ends its embryonic session at once: scur and CurrConns are back, its kill is logged as an SSL handshake failure, and the backend is never contacted.',
    scenario: duringTls('CLIENT_RESET', 'partialRecord'),
    frontend: 'fe_pp_tls',
    needs: ['stats'],
    run: (ctx) =>
      resetWhileEmbryonic(ctx, 'fe_pp_tls', 'within the ClientHello record', V1_TCP4, HALF_RECORD),
  },
  {
    id: 'hs/tls/rst-after-client-hello-is-abort',
    requirement:
      'A client that sends the PROXY header and a whole ClientHello, then resets the connection, ends its embryonic session at once: scur and CurrConns are back, its kill is logged as an abort during the SSL handshake (no record was left half read), and the backend is never contacted.',
    scenario: duringTls('CLIENT_RESET', 'wholeRecords'),
    frontend: 'fe_pp_tls',
    needs: ['stats'],
    profileDifferences: fromTwoSixOn(TLS_RESET_SO_ERROR),
    run: async (ctx) =>
      resetWhileEmbryonic(ctx, 'fe_pp_tls', 'after a whole ClientHello', V1_TCP4, await clientHello()),
  },
  {
    id: 'hs/client-reset/rst-during-tls-handshake-releases-slot',
    requirement:
      'A client that sends the PROXY header and then resets the connection during the TLS handshake ends its embryonic session at once: scur and CurrConns are back, conn_tot counts it, stot does not, and the backend is never contacted.',
    scenario: duringTls('CLIENT_RESET', 'none'),
    frontend: 'fe_pp_tls',
    needs: ['stats'],
    profileDifferences: fromTwoSixOn(TLS_RESET_SO_ERROR),
    run: (ctx) => resetWhileEmbryonic(ctx, 'fe_pp_tls', 'after the header, during TLS', V1_TCP4),
  },
  {
    id: 'hs/tls-only/tls-forwards-data',
    requirement:
      'On an ssl bind without accept-proxy the TLS handshake is the only handshake: the backend is contacted after it, and data flows both ways.',
    scenario: TLS_OK,
    frontend: 'fe_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_tls');
      await forwardedOverTls(ctx, client, 'the TLS handshake completes', DATA);
    },
  },
  {
    id: 'hs/tls-only/silent-client-gets-fin-at-deadline',
    requirement:
      'A client that connects to an ssl bind and sends nothing is closed with a FIN at the deadline (+300 ms from accept); the backend is never contacted.',
    scenario: TLS_TIMEOUT,
    frontend: 'fe_tls',
    async run(ctx) {
      const client = await ctx.connect('fe_tls');
      await expectFinAtDeadline(ctx, client);
    },
  },
  {
    id: 'hs/tls-only/plaintext-gets-fin',
    requirement:
      'Plaintext on an ssl bind fails the TLS handshake: the client is closed at once with a FIN, and the backend is never contacted.',
    scenario: TLS_ERROR,
    frontend: 'fe_tls',
    run: (ctx) => closedAtOnce(ctx, 'fe_tls', HTTP_REQUEST, 'fin'),
  },
  {
    id: 'hs/tls-only/close-notify-before-client-hello-gets-handshake-failure',
    requirement:
      "A TLS close_notify alert sent before any ClientHello is no clean close of the TLS session: the TLS library rejects it as an unexpected message, the handshake fails with SSL_HANDSHAKE (logged, whatever dontlognull would say of an empty handshake), the client is closed at once with a FIN, and the backend is never contacted. Measured on Debian's 2.6.12 (OpenSSL 3), which 2.9's SSL_ERROR_ZERO_RETURN branch (e8e576238) does not reach either.",
    scenario: TLS_ERROR,
    frontend: 'fe_tls',
    run: (ctx) => closedAtOnce(ctx, 'fe_tls', CLOSE_NOTIFY_ALERT, 'fin'),
  },
  {
    id: 'hs/monitor/monitor-net-closes-at-accept',
    requirement:
      'A connection from a monitor-net source is answered at accept without a handshake or a session (1.5-dev13 semantics: drained and closed in tcp mode).',
    scenario: scenario(ACCEPT),
    frontend: 'fe_monitor',
    profileDifferences: [
      {
        profile: '2.6',
        reason:
          "monitor-net was removed in 2.3.0 (9e9919dd8): 2.6 refuses the directive (\"'monitor-net' doesn't exist anymore\"), so the monitor path of session_accept does not exist there, and no 2.6 target serves fe_monitor.",
      },
      {
        profile: '2.9',
        reason: 'monitor-net does not exist after 2.3.0: no 2.9 target serves fe_monitor.',
      },
    ],
    async run(ctx) {
      const client = await ctx.connect('fe_monitor').catch((err: Error) => {
        // A proxy without monitor-net does not serve fe_monitor: say how to judge it instead.
        throw new Error(
          `${err.message}: nothing serves fe_monitor (base port + ${FRONTENDS.fe_monitor.offset}, monitor-net); a proxy without monitor-net, such as HAProxy 2.3 and later, is judged with HOST:PORT@2.6`,
        );
      });
      await expectCloseAtOnce(ctx, client, 'fin', fromConnect(client));
      expectNoBackend(ctx, 'a monitor has no session');
    },
  },

  // --- PROXY protocol v1, §2.1 -------------------------------------------------------------
  {
    id: 'pp1/2.1/tcp4-header-then-data-is-forwarded',
    section: '2.1',
    requirement:
      'A valid "PROXY TCP4 src dst sport dport\\r\\n" header completes the session; data sent 100 ms later reaches the backend without the header and is echoed back.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V1_TCP4, DATA),
  },
  {
    id: 'pp1/2.1/tcp6-header-then-data-is-forwarded',
    section: '2.1',
    requirement: 'A valid "PROXY TCP6 …" header completes the session; later data is forwarded and echoed.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V1_TCP6, DATA),
  },
  {
    id: 'pp1/2.1/unknown-header-then-data-is-forwarded',
    section: '2.1',
    requirement:
      'The short form "PROXY UNKNOWN\\r\\n" is accepted with the real addresses; later data is forwarded and echoed.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V1_UNKNOWN, DATA),
  },
  {
    id: 'pp1/2.1/header-and-data-in-one-write',
    section: '2.1',
    requirement:
      'Header and data in a single write: exactly the header is consumed, and the bytes after it go to the backend untouched.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V1_TCP4, DATA, true),
  },
  {
    id: 'pp1/2.1/data-in-several-writes-after-header',
    section: '2.1',
    requirement:
      'Data sent in several writes after the header (three writes, 30 ms apart) reaches the backend whole and in order.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => dataInSeveralWritesAfter(ctx, V1_TCP4, ['first,', 'second,', 'third\n']),
  },
  {
    id: 'pp1/2.1/not-a-header-gets-rst',
    section: '2.1',
    requirement:
      'Bytes that are not a PROXY header ("GET / HTTP/1.0") are rejected at once with an RST; the backend is never contacted.',
    scenario: headerError('PRX_NOT_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, HTTP_REQUEST),
  },
  {
    id: 'pp1/2.1/malformed-header-gets-rst',
    section: '2.1',
    requirement: 'A malformed v1 line ("PROXY TCP4 bad header\\r\\n") is rejected at once with an RST.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY TCP4 bad header\r\n')),
  },
  {
    id: 'pp1/2.1/missing-port-gets-rst',
    section: '2.1',
    requirement:
      'A v1 line missing its destination port ("PROXY TCP4 10.1.2.3 10.1.2.4 40000\\r\\n") is rejected at once with an RST.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY TCP4 10.1.2.3 10.1.2.4 40000\r\n')),
  },
  {
    id: 'pp1/2.1/truncated-header-gets-rst',
    section: '2.1',
    requirement:
      'Strict mode: a first read holding only part of a header ("PROXY TCP4 10.1.2.3") is an error, not a wait: RST at once.',
    scenario: headerError('PRX_TRUNCATED'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY TCP4 10.1.2.3')),
  },
  {
    id: 'pp1/2.1/split-header-gets-rst-on-first-fragment',
    section: '2.1',
    requirement:
      'Strict mode: a header split across two writes 50 ms apart is reset on its first fragment, before the rest is sent; the backend is never contacted.',
    scenario: headerError('PRX_TRUNCATED'),
    frontend: 'fe_pp',
    async run(ctx) {
      const client = await ctx.connect('fe_pp');
      const cut = 19; // "PROXY TCP4 10.1.2.3" | " 10.1.2.4 40000 443\r\n"
      const sent = await send(ctx, client, V1_TCP4.subarray(0, cut), 'the first fragment');
      const closing = expectCloseAtOnce(ctx, client, 'rst', sent);
      await ctx.sleep(50);
      await client.write(V1_TCP4.subarray(cut));
      await closing;
      expectNoBackend(ctx, 'the header is rejected');
    },
  },
  {
    id: 'pp1/2.1/short-prefix-gets-rst',
    section: '2.1',
    requirement:
      'Strict mode: a first read of fewer than 6 bytes ("PROX") is a truncated header: RST at once.',
    scenario: headerError('PRX_TRUNCATED'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROX')),
  },
  {
    id: 'pp1/2.1/unknown-protocol-gets-rst',
    section: '2.1',
    requirement:
      'A protocol other than TCP4, TCP6 or UNKNOWN ("PROXY UDP4 …") is rejected at once with an RST.',
    scenario: headerError('PRX_BAD_PROTO'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY UDP4 10.1.2.3 10.1.2.4 40000 443\r\n')),
  },
  {
    id: 'pp1/2.1/long-unknown-form-gets-rst',
    section: '2.1',
    requirement:
      'HAProxy accepts only the short "PROXY UNKNOWN\\r\\n": the long form with addresses is rejected at once with an RST (the spec says a receiver should ignore what follows UNKNOWN; HAProxy is stricter, and so is this suite).',
    scenario: headerError('PRX_BAD_PROTO'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY UNKNOWN 10.1.2.3 10.1.2.4 40000 443\r\n')),
  },
  {
    id: 'pp1/2.1/lone-lf-gets-rst',
    section: '2.1',
    requirement:
      'A v1 line ended by a lone LF instead of CRLF, with data after it, is rejected at once with an RST.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, bytes('PROXY TCP4 10.1.2.3 10.1.2.4 40000 443\nhello')),
  },

  // --- PROXY protocol v2, §2.2 -------------------------------------------------------------
  {
    id: 'pp2/2.2/tcp4-proxy-then-data-is-forwarded',
    section: '2.2',
    requirement:
      'A v2 PROXY header for TCP over IPv4 completes the session; data sent 100 ms later is forwarded without the header and echoed.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V2_TCP4, DATA),
  },
  {
    id: 'pp2/2.2/tcp6-proxy-then-data-is-forwarded',
    section: '2.2',
    requirement:
      'A v2 PROXY header for TCP over IPv6 (36-byte address block) completes the session; data is forwarded.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V2_TCP6, DATA),
  },
  {
    id: 'pp2/2.2/local-command-is-accepted',
    section: '2.2',
    requirement:
      'The v2 LOCAL command (a health check by the sending proxy) is accepted with the real addresses; data after it is forwarded.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V2_LOCAL, DATA),
  },
  {
    id: 'pp2/2.2/tlvs-are-skipped-and-data-forwarded',
    section: '2.2',
    requirement:
      'A v2 header carrying TLVs (ALPN, AUTHORITY, NOOP, a custom 0xE0) that tile the header exactly is accepted; none of the TLV bytes reach the backend.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V2_TLVS, DATA, true),
  },
  {
    id: 'pp2/2.2/crc32c-valid-is-accepted',
    section: '2.2.3',
    requirement:
      'A v2 header with a PP2_TYPE_CRC32C TLV holding the right checksum is accepted; data is forwarded.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => forwarded(ctx, V2_CRC, DATA, true),
  },
  {
    id: 'pp2/2.2/crc32c-mismatch-gets-rst',
    section: '2.2.3',
    requirement: 'A v2 header whose CRC32C TLV does not match the header is invalid: RST at once.',
    scenario: TLV_ERROR,
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_CRC_BAD),
  },
  {
    id: 'pp2/2.2/bad-version-gets-rst',
    section: '2.2',
    requirement: 'A v2 signature with version nibble 3 instead of 2 is not a header: RST at once.',
    scenario: headerError('PRX_NOT_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_BAD_VERSION),
  },
  {
    id: 'pp2/2.2/truncated-gets-rst',
    section: '2.2',
    requirement:
      'A v2 header whose len announces more bytes than the first read holds is truncated: RST at once.',
    scenario: headerError('PRX_TRUNCATED'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_TCP4.subarray(0, V2_TCP4.length - 4)),
  },
  {
    id: 'pp2/2.2/unknown-command-gets-rst',
    section: '2.2',
    requirement: 'A v2 command other than LOCAL (0) or PROXY (1) is invalid: RST at once.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_UNKNOWN_COMMAND),
  },
  {
    id: 'pp2/2.2/tlv-overrun-gets-rst',
    section: '2.2',
    requirement: 'A TLV whose length runs past the end of the header is invalid: RST at once.',
    scenario: TLV_ERROR,
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_TLV_OVERRUN),
  },
  {
    id: 'pp2/2.2/short-address-block-gets-rst',
    section: '2.2',
    requirement:
      'A v2 PROXY header for TCP over IPv4 whose len is below the 12-byte address block is invalid: RST at once.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_SHORT_ADDRESS_BLOCK),
  },
  {
    id: 'pp2/2.2/authority-over-255-bytes-gets-rst',
    section: '2.2.2',
    requirement: 'An AUTHORITY TLV longer than 255 bytes is refused by HAProxy: RST at once.',
    scenario: TLV_ERROR,
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_AUTHORITY_256),
  },
  {
    id: 'pp2/2.2/custom-tlv-over-1024-bytes-gets-rst-from-2-9',
    section: '2.2',
    requirement:
      'A v2 header with a custom TLV (0xE0) of 1025 bytes: 1.5-dev and 2.6 skip the TLVs they do not use, and the data is forwarded; 2.9 stores every TLV and refuses the value of a type without a limit of its own over 1024 bytes (HA_PP2_MAX_ALLOC, fecc573da): the header fails without an error code, with an RST at once, its kill logged as "Success" (CO_ER_NONE) and naming the header\'s source.',
    ...headerScenarios(V2_TLV_1025),
    frontend: 'fe_pp',
    profileDifferences: [
      {
        profile: '2.9',
        reason:
          '2.9 stores the TLVs of a v2 header (fecc573da, 2.9-dev5) and refuses a value over HA_PP2_MAX_ALLOC (1024 bytes) of a type without a limit of its own, failing the header without setting an error code: the kill is logged with CO_ER_NONE ("Success"), where 2.6 and 1.5-dev skip the TLV.',
      },
    ],
    async run(ctx) {
      // The same bytes on every target; the profile's PROXY reader decides (headerScenarioUnder)
      // whether they are refused at once or forwarded.
      if (ctx.predicted.closes[0] === 'rst')
        await closedAtOnce(ctx, 'fe_pp', concat(V2_TLV_1025, DATA), 'rst', 'the header is rejected');
      else await forwarded(ctx, V2_TLV_1025, DATA, true);
    },
  },
  {
    id: 'pp2/2.2/bytes-after-len-are-data',
    section: '2.2',
    requirement:
      'Bytes after the 16 + len bytes of a v2 header are not parsed as TLVs: they are data for the backend, as the reg-test proxy_protocol_tlv_validation expects.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    async run(ctx) {
      const trailing = hex('e0 0003 616263'); // would be a TLV 0xE0 "abc" if len covered it
      const client = await ctx.connect('fe_pp');
      await sendHeader(ctx, client, concat(V2_TCP4, trailing));
      await expectEchoThenFin(ctx, client, trailing);
    },
  },
  {
    id: 'pp2/2.2/data-in-several-writes-after-header',
    section: '2.2',
    requirement: 'Data sent in several writes after a v2 header reaches the backend whole and in order.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    run: (ctx) => dataInSeveralWritesAfter(ctx, V2_TCP4, ['one,', 'two,', 'three\n']),
  },
  {
    id: 'pp2/2.2/unspec-family-under-proxy-gets-rst',
    section: '2.2',
    requirement:
      'A v2 PROXY command with the UNSPEC family and no address block: the spec says to accept it with the real addresses; HAProxy 2.6 walks its TLVs from the signature and rejects it (RST at once). The suite expects what HAProxy does.',
    scenario: headerError('PRX_BAD_HDR'),
    frontend: 'fe_pp',
    run: (ctx) => rejectedAtOnce(ctx, V2_UNSPEC_UNDER_PROXY),
  },

  // --- limits --------------------------------------------------------------------------------
  // cnt/maxconn comes first: the first case to fill fe_queue is the one that sees smax reach its
  // maxconn (smax is a high-water mark, and the runner does not clear the counters).
  {
    id: 'cnt/maxconn/scur-reaches-slim-and-smax-follows',
    requirement: `With ${QUEUE_MAXCONN + 2} idle connections on a maxconn ${QUEUE_MAXCONN} frontend, scur stops at ${QUEUE_MAXCONN} (slim), CurrConns rises by ${QUEUE_MAXCONN}, smax reaches ${QUEUE_MAXCONN}; after both deadlines every gauge is back.`,
    scenario: SLOTS_EXPIRE,
    frontend: 'fe_queue',
    needs: ['stats'],
    budgetMs: 3000,
    async run(ctx) {
      const before = await ctx.stats('before');
      const { holders, queued } = await fillSlots(ctx, 2);
      const clients = [...holders, ...queued];
      await ctx.sleepUntil(fromConnect(holders[0]!).t + DEADLINE_MS / 2);
      const during = await ctx.stats('at +150 ms');
      // The first QUEUE_MAXCONN events of the scenario are the holders' accepts.
      expectCounters(ctx, before, during, [
        ...predictedCounters(ctx, before, 'fe_queue', QUEUE_MAXCONN),
        { ...fe('fe_queue', 'slim'), equals: QUEUE_MAXCONN }, // the configuration's maxconn
      ]);
      await Promise.all(clients.map((c) => c.waitForClose(2 * DEADLINE_MS + 800)));
      await ctx.sleep(20);
      expectCounters(
        ctx,
        before,
        await ctx.stats('after every deadline'),
        predictedCounters(ctx, before, 'fe_queue'),
      );
    },
  },
  {
    id: 'lim/maxconn/embryonic-connections-take-slots-and-queue',
    requirement: `Embryonic connections take maxconn slots: of 12 idle connections to a maxconn ${QUEUE_MAXCONN} frontend, the first 10 are accepted and get a FIN at +300 ms; the 2 that come 30 ms later wait in the listen backlog, are accepted when slots free (about +300 ms), and each gets its own full deadline: FIN at about +600 ms from the first connections.`,
    scenario: SLOTS_EXPIRE,
    frontend: 'fe_queue',
    budgetMs: 3000,
    run: (ctx) => slotsThenQueued(ctx, 'fe_queue', 2),
  },
  {
    id: 'lim/maxconn/queued-connection-is-served-when-a-slot-frees',
    requirement: `A connection that arrives while all ${QUEUE_MAXCONN} slots are held by embryonic connections, and sends its header and data at once, is served only when a slot frees (at about +300 ms): its bytes wait in the kernel, then it is forwarded like any other.`,
    scenario: SLOTS_SERVE,
    frontend: 'fe_queue',
    budgetMs: 3000,
    async run(ctx) {
      const { holders, queued } = await fillSlots(ctx, 1);
      const late = queued[0]!;
      await late.write(concat(V1_TCP4, DATA));
      const slotFrees = fromConnect(holders[0]!).t + DEADLINE_MS - 20;
      await expectBackendAfter(ctx, { t: slotFrees, label: 'the first slot frees (+300 ms, -20 ms)' }, 170);
      await expectEcho(ctx, late, DATA);
      await Promise.all(holders.map((h) => h.waitForClose(1000)));
      await endAndExpectFin(ctx, late);
    },
  },
  {
    id: 'lim/fe-maxconn/full-frontend-queues-its-listener',
    requirement: `Embryonic connections count in the frontend's maxconn, not only in their bind's: with the frontend's maxconn ${QUEUE_MAXCONN} below its bind's ${FE_QUEUE_BIND_MAXCONN}, of ${QUEUE_MAXCONN + 1} idle connections the first ${QUEUE_MAXCONN} are accepted and get a FIN at +300 ms; the last waits in the listen backlog while the listener waits on the frontend's queue, is accepted when a slot frees, and gets its own full deadline: FIN at about +600 ms from the first connections.`,
    scenario: FRONTEND_QUEUE,
    frontend: 'fe_fe_queue',
    budgetMs: 3000,
    run: (ctx) => slotsThenQueued(ctx, 'fe_fe_queue', 1),
  },
  {
    id: 'lim/rate-limit/embryonic-connections-do-not-spend-the-session-rate',
    requirement:
      'rate-limit sessions counts sessions, not connections: under a limit of 1 per second, three connections that have not sent their PROXY header yet are all accepted at once (conn_tot +3, scur 3, stot +0), and all three complete when their headers come (stot +3, three backend connections), since a session is counted only once its handshake ends. A proxy that counted it at accept would leave two of them in the listen backlog.',
    scenario: scenario(
      ACCEPT,
      ACCEPT,
      ACCEPT,
      ...[0, 1, 2].map((conn): ScenarioEvent => ({ type: 'PROXY_HEADER_OK', conn })),
      ...[0, 1, 2].map((conn): ScenarioEvent => ({ type: 'SESSION_END', conn })),
    ),
    frontend: 'fe_rate',
    needs: ['stats'],
    async run(ctx) {
      const before = await ctx.stats('before');
      const clients: WireClient[] = [];
      for (let i = 0; i < 3; i++) clients.push(await ctx.connect('fe_rate'));
      await ctx.sleep(100);
      expectCounters(
        ctx,
        before,
        await ctx.stats('three connections, no header yet'),
        predictedCounters(ctx, before, 'fe_rate', 3),
      );
      const payloads = clients.map((_, i) => bytes(`hello from client ${i}\n`));
      for (const [i, client] of clients.entries()) await client.write(concat(V1_TCP4, payloads[i]!));
      await ctx.backend.waitForConnections(3, 1000);
      ctx.check({
        what: 'the three sessions reach the backend',
        expected: '3 backend connections',
        actual: `${ctx.backend.connections().length} backend connection(s)`,
        ok: ctx.backend.connections().length === 3,
      });
      for (const [i, client] of clients.entries()) {
        await client.waitForBytes(payloads[i]!.length, 1000);
        expectEchoedBack(ctx, client, payloads[i]!);
      }
      expectCounters(
        ctx,
        before,
        await ctx.stats('after the three headers'),
        predictedCounters(ctx, before, 'fe_rate', 6),
      );
      for (const client of clients) await endAndExpectFin(ctx, client);
    },
  },
  {
    id: 'lim/rate-limit/release-within-the-second-arms-the-frontend-task',
    requirement: `A session that ends while the session rate is still spent must leave the frontend's task armed: on fe_rate_full (rate-limit sessions 1, maxconn ${RATE_FULL_MAXCONN}, no handshake), a second client connects while the first session holds the frontend, so the rate stops the listener; 2.x's frontend task looks again 1 ms later, finds the frontend full and disarms itself; the first session then ends within the same second. The second client must be accepted when the second is over (about +1 s) and be served. HAProxy before 65ae1347c (2024) leaves the listener limited for good and never accepts it (mutant frontend-task-not-armed-on-release).`,
    scenario: scenario(
      ...RATE_FULL_FIRST_SECOND,
      { type: 'QUEUE_TASK', queue: 'frontend' }, // the rate is still spent: armed again
      { type: 'RATE_PERIOD' },
      { type: 'QUEUE_TASK', queue: 'frontend' }, // the rate allows a session: the listener resumes
      ACCEPT,
      { type: 'SESSION_END', conn: 1 },
    ),
    frontend: 'fe_rate_full',
    needs: ['stats'],
    knownBugs: [RELEASE_LEAVES_LISTENER_LIMITED],
    profileDifferences: [
      {
        profile: 'dev12',
        reason:
          "1.5-dev12's frontend task waits next_event_delay = 999 ms at a session rate of 1 (src/freq_ctr.c), past the second in which the first session ends: it never finds the frontend full in this sequence, which needs 2.x's 1 ms re-check, so dev12 targets do not serve fe_rate_full. The dev12 model has the same path (its explorer reaches it whenever a session outlives 999 / rate ms).",
      },
    ],
    async run(ctx) {
      const before = await ctx.stats('before');
      const first = await ctx.connect('fe_rate_full');
      await ctx.backend.waitForConnections(1, 1000); // its session is counted: the rate is spent
      const second = await ctx.connect('fe_rate_full');
      const data = bytes('the second client, held in the backlog\n');
      await second.write(data);
      await ctx.sleep(50); // 2.x's frontend task has looked again and found the frontend full
      expectCounters(
        ctx,
        before,
        await ctx.stats('the second client waits'),
        predictedCounters(ctx, before, 'fe_rate_full', RATE_FULL_FIRST_SECOND.length - 1),
      );
      await endAndExpectFin(ctx, first);
      const secondOver = fromConnect(first).t + 1000;
      if (ctx.predicted.backlog === 0) {
        await ctx.backend.waitForConnections(2, Math.max(0, secondOver + 1000 - ctx.log.now()));
        const late = ctx.backend.connections()[1];
        const at = late ? late.acceptedAt - fromConnect(first).t : null;
        ctx.check({
          what: 'the second client is accepted when the session rate allows it again',
          expected: `a second backend connection between +${RATE_WINDOW[0]} and +${RATE_WINDOW[1]} ms after ${first.name} connect`,
          actual: at === null ? 'no second backend connection' : `at +${at.toFixed(1)} ms`,
          ok: at !== null && at >= RATE_WINDOW[0] && at <= RATE_WINDOW[1],
          timing: { expected: 1000, measured: at, window: [RATE_WINDOW[0] - 1000, RATE_WINDOW[1] - 1000] },
        });
        await second.waitForBytes(data.length, 1000);
        expectEchoedBack(ctx, second, data);
        await endAndExpectFin(ctx, second);
      } else {
        await ctx.sleepUntil(secondOver + 1000);
        const n = ctx.backend.connections().length;
        ctx.check({
          what: 'the second client is never accepted (the model with the bug: the listener stays limited)',
          expected: `1 backend connection a second after the session rate allowed a session again`,
          actual: `${n} backend connection(s)`,
          ok: n === 1,
        });
      }
      expectCounters(
        ctx,
        before,
        await ctx.stats('at the end'),
        predictedCounters(ctx, before, 'fe_rate_full'),
      );
    },
  },
  {
    id: 'lim/maxsslconn/tls-connection-beyond-maxsslconn-is-closed-at-accept',
    requirement: `Embryonic TLS connections hold SSL contexts, and maxsslconn bounds them: with maxsslconn ${SUITE_MAXSSLCONN}, two TLS connections that have not sent a byte are accepted and counted in CurrSslConns; a third is accepted and closed at once with a FIN, unlogged, since ssl_sock_init refuses its SSL context (2.x: CO_ER_SSL_TOO_MANY); the two others still get their FIN at the deadline, and CurrSslConns comes back to 0. A proxy that created its TLS state only once the ClientHello arrives would keep the third open. HAProxy 2.4 and later keep it open too, for another reason: they never close its fd (mutant transport-init-failure-leaks-fd).`,
    scenario: scenario(
      ACCEPT,
      ACCEPT,
      ACCEPT,
      { type: 'TIMER_EXPIRE', conn: 0 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ),
    frontend: 'fe_tls',
    needs: ['stats'],
    knownBugs: [TRANSPORT_INIT_LEAK],
    profileDifferences: fromTwoSixOn(TRANSPORT_INIT_AT_PREPARE),
    // How the third is closed is the prediction's: a FIN at once, or never (2.4+'s bug).
    run: (ctx) => beyondMaxsslconn(ctx, 'fe_tls'),
  },
  {
    id: 'lim/maxsslconn/refusal-pauses-the-listener-for-100-ms',
    requirement: `A refused SSL context is a resource shortage: session_accept returns -1 and listener_accept stops accepting for 100 ms (the global queue's task). With maxsslconn ${SUITE_MAXSSLCONN} held by two idle TLS connections, a third is refused at once, and a fourth that connects right after waits in the listen backlog until the task fires, about 100 ms after the refusal, to be refused in turn: a flood of TLS connections beyond maxsslconn is taken at most ten a second. (HAProxy 2.4 and later never close either refused connection: mutant transport-init-failure-leaks-fd.)`,
    scenario: scenario(
      ACCEPT,
      ACCEPT,
      ACCEPT,
      { type: 'QUEUE_TASK', queue: 'global' },
      ACCEPT,
      { type: 'TIMER_EXPIRE', conn: 0 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ),
    frontend: 'fe_tls',
    knownBugs: [TRANSPORT_INIT_LEAK],
    profileDifferences: fromTwoSixOn(TRANSPORT_INIT_AT_PREPARE),
    async run(ctx) {
      const holders = await holdSslContexts(ctx);
      const third = await ctx.connect('fe_tls');
      const fourth = await ctx.connect('fe_tls');
      // Each refused connection is closed the way, and when, the prediction says: the third at
      // once, the fourth once the global queue's task has resumed the listener; or never.
      await expectPredictedClose(ctx, third, SUITE_MAXSSLCONN, fromConnect(third), 0, [0, AT_ONCE_MS]);
      await expectPredictedClose(ctx, fourth, SUITE_MAXSSLCONN + 1, fromConnect(third), 100, [-40, 100]);
      await expectHoldersClosed(ctx, holders);
      expectNoBackend(ctx);
    },
  },
  {
    id: 'lim/maxsslconn/rejected-source-at-maxsslconn-is-refused-before-the-rules-from-2x',
    requirement: `On a TLS bind whose tcp-request rules reject a source, a connection from that source, while maxsslconn ${SUITE_MAXSSLCONN} is held by two idle TLS connections from an accepted source, is rejected by the rules in 1.5-dev12: an RST at once, counted in dcon. From 2.x on, session_accept_fd makes the SSL context in conn_prepare before the rules run, so the context is refused first: a setup failure, not counted in dcon nor in CumConns, closed with a FIN (HAProxy 2.4 and later never close it: mutant transport-init-failure-leaks-fd).`,
    scenario: scenario(
      { ...ACCEPT, src: 'plain' },
      { ...ACCEPT, src: 'plain' },
      ACCEPT,
      { type: 'TIMER_EXPIRE', conn: 0 },
      { type: 'TIMER_EXPIRE', conn: 1 },
    ),
    frontend: 'fe_reject_tls',
    needs: ['stats'],
    knownBugs: [TRANSPORT_INIT_LEAK],
    profileDifferences: fromTwoSixOn(
      "2.x inits the transport before session_new and before the tcp-request connection rules (since 1.6-dev2, 02a0c0e40; in conn_prepare since 1b3c931bf, 2.4): once maxsslconn is reached, ssl_sock_init refuses the SSL context of a source the rules would reject, and the connection fails there (ret -1: no dcon, no totalconn, no SO_LINGER, the listener limited for 100 ms). 1.5-dev12 runs the rules first and rejects it. Measured on Debian's 2.6.12: no dcon, no RST, and, its known bug, no close.",
    ),
    // The holders come from the address the rules accept; the third is closed as the prediction
    // says: an RST (dev12), a FIN (2.x), or never (2.4+'s bug).
    run: (ctx) => beyondMaxsslconn(ctx, 'fe_reject_tls', OTHER_CLIENT_ADDRESS),
  },
  {
    id: 'lim/reject/tcp-request-reject-gets-rst',
    requirement:
      'A source rejected by `tcp-request connection reject` is closed at accept, before any handshake, with an RST (SO_LINGER 0); the backend is never contacted.',
    scenario: REJECTED,
    frontend: 'fe_reject',
    async run(ctx) {
      const client = await ctx.connect('fe_reject');
      await expectCloseAtOnce(ctx, client, 'rst', fromConnect(client));
      expectNoBackend(ctx, 'the connection is rejected');
    },
  },

  // --- counters ------------------------------------------------------------------------------
  {
    id: 'cnt/timeout/embryonic-counted-in-scur-not-stot',
    requirement:
      'While embryonic, a connection counts in the frontend scur and in CurrConns, and conn_tot has counted it; stot never does. After the deadline every gauge is back.',
    scenario: PROXY_TIMEOUT,
    frontend: 'fe_pp',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp');
      await ctx.sleepUntil(fromConnect(client).t + DEADLINE_MS / 2);
      const during = await ctx.stats('at +150 ms (embryonic)');
      expectCounters(ctx, before, during, predictedCounters(ctx, before, 'fe_pp', 1));
      await countersAfterClose(
        ctx,
        client,
        before,
        'after the deadline',
        predictedCounters(ctx, before, 'fe_pp'),
        DEADLINE_MS + 500,
      );
    },
  },
  {
    id: 'cnt/header-error/conn-tot-only',
    requirement:
      'A connection reset for a bad header counts in conn_tot only: stot, the backend stot, scur and CurrConns are as before.',
    scenario: headerError('PRX_NOT_HDR'),
    frontend: 'fe_pp',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp');
      await client.write(HTTP_REQUEST);
      await countersAfterClose(ctx, client, before, 'after the RST', predictedCounters(ctx, before, 'fe_pp'));
    },
  },
  {
    id: 'cnt/client-close/conn-tot-only',
    requirement:
      'A client that closes before its header counts in conn_tot only; every gauge is back afterwards.',
    scenario: PROXY_CLIENT_CLOSE,
    frontend: 'fe_pp',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp');
      client.end();
      await countersAfterClose(
        ctx,
        client,
        before,
        'after the close',
        predictedCounters(ctx, before, 'fe_pp'),
      );
    },
  },
  {
    id: 'cnt/forwarded/stot-counts-at-the-header',
    requirement:
      'A valid header completes the session: the frontend stot and the backend stot go up by one at the header, scur holds it until the end, and every gauge is back after the close.',
    scenario: PROXY_OK,
    frontend: 'fe_pp',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp');
      await client.write(V1_TCP4);
      await countersOnceBackendContacted(ctx, before, 'after the header', [
        ...predictedCounters(ctx, before, 'fe_pp', 2),
        { row: 'be_echo/BACKEND', field: 'scur', delta: 1 }, // the backend's gauge: not in the model
      ]);
      client.end();
      await client.waitForClose(500);
      await ctx.backend.waitIdle(500);
      await ctx.sleep(20);
      expectCounters(ctx, before, await ctx.stats('after the close'), [
        ...predictedCounters(ctx, before, 'fe_pp'),
        { row: 'be_echo/BACKEND', field: 'scur', delta: 0 },
      ]);
    },
  },
  {
    id: 'cnt/tls/stot-counts-only-after-the-tls-handshake',
    requirement:
      'On an accept-proxy ssl bind the session completes after both handshakes: after the header alone stot has not moved; after the TLS handshake it is up by one.',
    scenario: PROXY_TLS_OK,
    frontend: 'fe_pp_tls',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp_tls');
      await client.write(V1_TCP4);
      await ctx.sleep(50);
      expectCounters(
        ctx,
        before,
        await ctx.stats('after the header, before TLS'),
        predictedCounters(ctx, before, 'fe_pp_tls', 2),
      );
      const tls = await client.startTls(1000);
      await countersOnceBackendContacted(
        ctx,
        before,
        tls.ok ? 'after the TLS handshake' : 'after a failed TLS handshake',
        predictedCounters(ctx, before, 'fe_pp_tls', 3),
      );
      client.end();
      await client.waitForClose(500);
    },
  },
  {
    id: 'cnt/tls/garbage-counts-in-conn-tot-only',
    requirement: 'A TLS handshake failure counts in conn_tot only; stot and every gauge are as before.',
    scenario: PROXY_TLS_ERROR,
    frontend: 'fe_pp_tls',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_pp_tls');
      await client.write(concat(V1_TCP4, HTTP_REQUEST));
      await countersAfterClose(
        ctx,
        client,
        before,
        'after the close',
        predictedCounters(ctx, before, 'fe_pp_tls'),
      );
    },
  },
  {
    id: 'cnt/reject/dcon-counts-the-rejected-connection',
    requirement:
      'A connection rejected by `tcp-request connection reject` counts in dcon and in conn_tot, never in stot, and leaves no gauge raised.',
    scenario: REJECTED,
    frontend: 'fe_reject',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_reject');
      await countersAfterClose(
        ctx,
        client,
        before,
        'after the RST',
        predictedCounters(ctx, before, 'fe_reject'),
      );
    },
  },
  {
    id: 'cnt/reject/tls-reject-counts-in-cum-ssl-conns-from-2x',
    requirement:
      'A connection rejected by `tcp-request connection reject` on a TLS bind counts in dcon and conn_tot, never in stot, gets an RST at accept, and leaves CurrSslConns where it was. From 2.x on it also counts one SSL context in CumSslConns: session_accept_fd runs conn_prepare, which makes the SSL context (ssl_sock_init), before the session exists and the rules run, and conn_full_close frees it again (ssl_sock_close) (1.5-dev12 runs the rules first and keeps no such total).',
    scenario: REJECTED,
    frontend: 'fe_reject_tls',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_reject_tls');
      await expectCloseAtOnce(ctx, client, 'rst', fromConnect(client));
      await ctx.sleep(AT_ONCE_MS);
      expectCounters(
        ctx,
        before,
        await ctx.stats('after the RST'),
        predictedCounters(ctx, before, 'fe_reject_tls'),
      );
      expectNoBackend(ctx, 'the connection is rejected');
    },
  },
  {
    id: 'cnt/sequential/smax-stays-at-one',
    requirement:
      'Three strictly sequential sessions never raise the frontend smax above one (HAProxy needs nbthread 1 for this: with two threads it reads 2). fe_seq serves no other case, so its smax was at most 1 before and the check can fail.',
    scenario: scenario(
      ...[0, 1, 2].flatMap((conn): ScenarioEvent[] => [
        ACCEPT,
        { type: 'PROXY_HEADER_OK', conn },
        { type: 'SESSION_END', conn },
      ]),
    ),
    frontend: 'fe_seq',
    needs: ['stats'],
    async run(ctx) {
      const before = await ctx.stats('before');
      const smaxBefore = statNumber(before, 'fe_seq/FRONTEND', 'smax');
      ctx.check({
        what: 'fe_seq has seen no two sessions at once before the case',
        expected: 'smax at most 1',
        actual: `smax ${smaxBefore ?? 'unreadable'}`,
        ok: smaxBefore !== null && smaxBefore <= 1,
      });
      for (let i = 0; i < 3; i++) {
        const client = await ctx.connect('fe_seq');
        await client.write(V1_TCP4);
        await ctx.backend.waitForConnections(i + 1, 500);
        client.end();
        await client.waitForClose(500);
        await ctx.backend.waitIdle(500);
        await ctx.sleep(10);
      }
      expectCounters(
        ctx,
        before,
        await ctx.stats('after three sessions'),
        predictedCounters(ctx, before, 'fe_seq'),
      );
    },
  },
  {
    id: 'cnt/no-handshake/stot-counts-at-accept',
    requirement:
      'Without a handshake the session is complete at accept: stot is up by one before the client sends a byte.',
    scenario: NO_HANDSHAKE,
    frontend: 'fe_plain',
    needs: ['stats'],
    async run(ctx) {
      const { before, client } = await statsThenConnect(ctx, 'fe_plain');
      await countersOnceBackendContacted(
        ctx,
        before,
        'after accept, no byte sent',
        predictedCounters(ctx, before, 'fe_plain', 1),
      );
      client.end();
      await client.waitForClose(500);
    },
  },
  {
    id: 'data/read-timeout/idle-client-is-shut-for-reading-only',
    requirement: `A read timeout in the data phase shuts that side for reading only (si_shutr, 1.5-dev12 and 2.x alike), never the whole session: on fe_data (timeout client ${DEADLINE_MS} ms, timeout server ${DATA_SERVER_TIMEOUT_MS} ms), a client that gets its data echoed, then idles, makes the target send the server its FIN ${DEADLINE_MS} ms after the echo, while the client's side stays open; a server that keeps its side open is timed out in turn ${DATA_SERVER_TIMEOUT_MS} ms after the echo, and only then does the client get its FIN. A proxy that ends the session at its first timeout closes both at once.`,
    scenario: NO_HANDSHAKE,
    frontend: 'fe_data',
    async run(ctx) {
      const client = await ctx.connect('fe_data');
      const hold = bytes(HOLD_REQUEST);
      await client.write(hold);
      await expectEcho(ctx, client, hold);
      const echo = lastRead(ctx, client, 'the echo');
      await ctx.backend.waitForConnections(1, 500);
      const server = ctx.backend.connections()[0];
      await pollUntil(() => server?.closedBy != null, echo.t + DEADLINE_MS + 1000 - ctx.log.now());
      const finAt = server?.closedBy === 'fin' ? server.closedAt : null;
      const fin = finAt === null ? null : judgeOffset(finAt, echo, DEADLINE_MS, DEADLINE_WINDOW);
      ctx.check({
        what: "the server gets the target's FIN at the client's read timeout",
        expected: `a FIN at +${DEADLINE_MS} ms after ${echo.label}, window [${DEADLINE_WINDOW.join(', ')}] ms`,
        actual:
          server?.closedBy == null
            ? 'no close'
            : `${server.closedBy.toUpperCase()} at ${fin?.text ?? `${server.closedAt} ms`}`,
        ok: fin?.ok ?? false,
        timing: { expected: DEADLINE_MS, measured: fin?.measured ?? null, window: DEADLINE_WINDOW },
      });
      await expectOpenUntil(
        ctx,
        client,
        echo.t + DEADLINE_MS + DEADLINE_WINDOW[1],
        "past its read timeout, which shuts the client's side for reading only",
      );
      await expectClose(ctx, client, 'fin', echo, DATA_SERVER_TIMEOUT_MS);
      ctx.backend.release();
    },
  },
  {
    id: 'data/write-timeout/client-that-reads-nothing-is-closed',
    requirement: `A write timeout in the data phase ends the session with the client's side NOLINGER: on fe_data (timeout client ${DEADLINE_MS} ms), a client that reads nothing and sends at once twice what the path back to it holds (tcp_wmem's maximum and tcp_rmem's default), which the backend echoes, is closed ${DEADLINE_MS} ms after the target's last write to it progressed (read from the kernel's queues). How it is closed is the session machine's choice (session.initialized|SESSION_END|1): an RST under 1.5-dev12 (SO_LINGER 0), a FIN queued behind what the kernel holds under 2.x; either way the bytes the target itself still buffered are dropped, never sent.`,
    ...WRITE_TIMEOUT_CASE,
    async run(ctx) {
      const client = await ctx.connect('fe_data');
      client.stopReading();
      const payload = writeTimeoutPayload();
      const sent = client.write(payload);
      // The last moment a write of the target to the client progressed: the bytes the kernel
      // holds for the client (the target's send queue and the client's receive queue) grew by a
      // channel buffer (16 KiB) or more, counted on their floor (WriteProgress). The target's
      // write deadline runs from there.
      const progress = new WriteProgress();
      let close: 'fin' | 'rst' | null = null;
      await pollUntil(
        () => {
          progress.add(ctx.log.now(), client.queuedInKernel());
          close = client.closeInKernel();
          return close !== null;
        },
        3 * DEADLINE_MS + 2000,
      );
      // The growth happened between the poll that saw it (grewAt) and the one before (grewSince).
      const grew = progress.lastGrowth();
      const grewAt = grew?.at ?? 0;
      const grewSince = grew?.since ?? 0;
      const seenAt = ctx.log.now();
      // The write came between two polls, which this process's own work (it also runs the echo
      // backend) may hold apart: the close passes if some moment between them puts it in the
      // window, its early edge counted from the earlier poll and its late edge from the later.
      const label = "the target's last write to the client";
      const fromT = Math.round(10 * (seenAt - grewAt)) / 10;
      const fromSince = Math.round(10 * (seenAt - grewSince)) / 10;
      const early = fromSince >= DEADLINE_MS + DEADLINE_WINDOW[0];
      const late = fromT <= DEADLINE_MS + DEADLINE_WINDOW[1];
      const between = grewSince < grewAt ? ` (${fromSince} ms after the poll before it)` : '';
      ctx.check({
        what: 'the target closes the client once its writes to it made no progress for timeout client',
        expected: `a close at +${DEADLINE_MS} ms after ${label}, window [${DEADLINE_WINDOW.join(', ')}] ms`,
        actual: `${close === null ? 'no close' : `${String(close).toUpperCase()} at +${fromT} ms after ${label}${between}`}; the client sent ${payload.length} bytes`,
        ok: close !== null && grew !== null && early && late,
        timing: {
          expected: DEADLINE_MS,
          measured: close === null ? null : early ? fromT : fromSince,
          window: DEADLINE_WINDOW,
        },
      });
      const wrote = await sent;
      await readToTheFin(client, close);
      const echoed = ctx.backend.connections()[0]?.byteCount ?? 0;
      ctx.check({
        what: 'the bytes the target still buffered for the client are dropped, not sent',
        expected: `fewer bytes reach the client than the backend echoed (${echoed})`,
        actual: `${client.received.length} bytes reached the client (its own write ${wrote ? 'was taken whole' : 'failed'})`,
        ok: echoed > 0 && client.received.length < echoed,
      });
    },
  },
  {
    id: 'data/write-timeout/sending-client-renews-it-until-the-next-check',
    requirement: `Under 1.5-dev12 and 2.6, what a client sends renews its write deadline while bytes wait for it, until the stream's next check: on fe_data (timeout client ${DEADLINE_MS} ms), a client that reads nothing, sends at once more than the path back to it holds (echoed by the backend), then ${RENEW_CHUNK} bytes every ${RENEW_EVERY_MS} ms for ${RENEW_UNTIL_MS} ms, is closed ${DEADLINE_MS} ms after the last of them the target read before its first deadline check, which comes ${DEADLINE_MS} ms after connect. The notification after each read (conn_notify_si, 2.6's sc_notify) renews the output channel's wex while it carries CF_WRITE_PARTIAL, which only process_session clears. From 2.8 (b374ba563) the write timeout runs from the first blocked send and no read renews it: the close comes ${DEADLINE_MS} ms after the target's last write, before those reads could have moved it.`,
    ...WRITE_TIMEOUT_CASE,
    async run(ctx) {
      const client = await ctx.connect('fe_data');
      const from = fromConnect(client);
      client.stopReading();
      void client.write(writeTimeoutPayload());
      // Each chunk: when the client called write, and when the kernel had taken it.
      const chunks: { calledAt: number; doneAt: number | null }[] = [];
      let close: 'fin' | 'rst' | null = null;
      const closeSeen = (): 'fin' | 'rst' | null =>
        (close ??= client.closeInKernel() ?? client.closedBy?.kind ?? null);
      // The target's last write to the client, as in the case before (WriteProgress).
      const progress = new WriteProgress();
      const startedAt = ctx.log.now();
      const renews = DATA_PHASE_RULES.readsRenewWriteDeadline.profiles[ctx.target.profile];
      const timer = setInterval(function chunkOnInterval() {
        // The last chunks come well before the close: one the target took just before closing
        // would stay unread, and the kernel would answer the close with an RST. Where no read
        // renews the deadline, the close may come DEADLINE_MS after the last write seen so far.
        const now = ctx.log.now();
        const until = renews
          ? from.t + RENEW_UNTIL_MS
          : Math.min(from.t + RENEW_UNTIL_MS, (progress.lastGrowth()?.at ?? startedAt) + DEADLINE_MS - 60);
        if (now > until || closeSeen() !== null) return;
        const chunk = { calledAt: now, doneAt: null as number | null };
        chunks.push(chunk);
        void client.write(Buffer.alloc(RENEW_CHUNK, 0x62)).then(function chunkOnWritten() {
          chunk.doneAt = ctx.log.now();
        });
      }, RENEW_EVERY_MS);
      try {
        await pollUntil(
          () => {
            progress.add(ctx.log.now(), client.queuedInKernel());
            return closeSeen() !== null;
          },
          3 * DEADLINE_MS + 2000,
        );
      } finally {
        clearInterval(timer);
      }
      const closedAt = ctx.log.now();
      const grewAt = progress.lastGrowth()?.at ?? startedAt;
      // The target's first check comes DEADLINE_MS after its accept, some moment of the connect
      // [since, t]; RENEW_AMBIGUITY_MS on each side of it are not judged. The checks then come
      // about every DEADLINE_MS while the chunks renew the client's read deadline: when the path
      // back may have filled only after the first (a slow run), the second may be the one.
      const checkFrom = (from.since ?? from.t) + DEADLINE_MS - RENEW_AMBIGUITY_MS;
      const checkTo = from.t + (grewAt > checkFrom ? 2 : 1) * DEADLINE_MS + RENEW_AMBIGUITY_MS;
      // Read before the check for certain: in the kernel before it; perhaps: written before it ended.
      const surely = chunks.filter((c) => c.doneAt !== null && c.doneAt <= checkFrom).at(-1);
      const perhaps = chunks.filter((c) => c.calledAt <= checkTo).at(-1);
      // Renewed: the close is DEADLINE_MS after the read of the last chunk before the check, or
      // after the last write if that came later. Not renewed: after the last write, and no write
      // deadline passes before DEADLINE_MS after connect.
      const earliest = renews ? (surely?.calledAt ?? from.t) : (from.since ?? from.t);
      const latest = renews ? Math.max(perhaps?.doneAt ?? closedAt, grewAt) : grewAt;
      const lo = earliest + DEADLINE_MS + DEADLINE_WINDOW[0];
      const hi = latest + DEADLINE_MS + DEADLINE_WINDOW[1];
      const ms = (t: number): string => `+${Math.round(t - from.t)} ms`;
      ctx.check({
        what: renews
          ? "the client's reads renew its write deadline until the target's first check"
          : "the client's reads do not renew its write deadline",
        expected: renews
          ? `a close ${DEADLINE_MS} ms after the last chunk the target read before its check (at ${ms(checkFrom)}…${ms(checkTo)}), window [${DEADLINE_WINDOW.join(', ')}] ms: ${ms(lo)}…${ms(hi)}`
          : `a close ${DEADLINE_MS} ms after the target's last write to the client, window [${DEADLINE_WINDOW.join(', ')}] ms: ${ms(lo)}…${ms(hi)}`,
        actual: `${close === null ? 'no close' : `${String(close).toUpperCase()} at ${ms(closedAt)}`} after ${from.label}; the kernel's queues last grew at ${ms(grewAt)}; chunks sent at ${chunks.map((c) => ms(c.calledAt)).join(', ') || 'none'}`,
        ok: close !== null && closedAt >= lo && closedAt <= hi,
        timing: { expected: DEADLINE_MS, measured: Math.round(closedAt - earliest), window: DEADLINE_WINDOW },
      });
      await readToTheFin(client, close);
    },
  },
];

/**
 * The conformance cases, in report order: each definition with the transitions the model predicts
 * for it (predictionOf).
 */
export const CASES: ConformanceCase[] = DEFINITIONS.map(withPredictions);

/** The id format every case follows: family, section or topic, name. */
export const CASE_ID_PATTERN =
  /^(pp1\/2\.1|pp2\/2\.2|hs\/[a-z0-9-]+|lim\/[a-z0-9-]+|cnt\/[a-z0-9-]+|log\/[a-z0-9-]+|data\/[a-z0-9-]+)\/[a-z0-9][a-z0-9-]*$/;

/**
 * Returns the cases whose id matches one of <globs> ('*' matches any run of characters, '/'
 * included; '?' one character), in list order; every case when <globs> is empty. Pure.
 */
export function selectCases(cases: readonly ConformanceCase[], globs: readonly string[]): ConformanceCase[] {
  if (globs.length === 0) return [...cases];
  const patterns = globs.map(
    (g) =>
      new RegExp(
        `^${g
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      ),
  );
  return cases.filter((c) => patterns.some((p) => p.test(c.id)));
}
