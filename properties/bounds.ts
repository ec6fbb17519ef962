/**
 * The bounds of the exhaustive exploration, and why each exists (in the manner of TLA+'s MCtcp.tla:
 * the specification is unbounded, the harness that model-checks it is not).
 *
 * An explicit-state checker enumerates every reachable state, so everything that can grow without
 * limit must be cut: the number of connections, the configurations, and the parameters of the
 * environment's events. Each cut below says what it loses and why that loss is safe or accepted.
 * The machines themselves are not bounded here: every transition they can take under a bounded
 * configuration and alphabet is explored.
 */
import { makeConfig, type ModelConfig } from '../machines/config.ts';
import type { ProxyFailCode, SslErrCode } from '../machines/errCodes.ts';
import type { AcceptFailSite, CompleteFailSite, SourceClass } from '../machines/session.machine.ts';

/** The environment's alphabet: which parameters the explorer gives to each system event. */
export interface Bounds {
  acceptSources: SourceClass[]; //           ACCEPT src values besides the plain one
  acceptFailSites: AcceptFailSite[]; //      ACCEPT fail values ('none' = nothing fails)
  acceptError: boolean; //                   whether accept() itself may fail (ENFILE/EMFILE...)
  completeFailSites: (CompleteFailSite | 'none')[]; // where session_complete may fail after a handshake
  proxyErrorCodes: ProxyFailCode[]; //       codes of PROXY_HEADER_ERROR (NONE: none set)
  sslErrorCodes: SslErrCode[]; //            codes of TLS_ERROR
  clientCloses: boolean; //                  whether the client may close or reset during a handshake
}

/**
 * The default alphabet.
 *
 * - Error codes: one code per behaviour class, not every code. Codes of one class take the same
 *   transitions with the same effects and differ only in the value kept in err_code, yet each
 *   distinct value multiplies the states of every connection that failed (all codes at once double the
 *   space at N = 3, see `check-deep`). The classes of PROXY_HEADER_ERROR are "bytes
 *   left unread, so the close is an RST" (PRX_BAD_HDR stands for TRUNCATED, NOT_HDR, BAD_HDR,
 *   BAD_PROTO), "nothing unread, a FIN" (PRX_ABORT), and, in 2.x only (proxyFailReachable), "bytes
 *   left unread and no code set", which dontlognull hides (NONE: a TLV 2.9 refuses to store). Every TLS_ERROR code takes one transition
 *   (SSL_HANDSHAKE). The client's close and reset and the deadline bring their own codes (EMPTY,
 *   ABORT, TIMEOUT). `ALL_CODES_BOUNDS` lifts this cut, for `check-deep`.
 * - Accept failures: every site of session_accept that the configuration's HAProxy can meet
 *   (acceptCanFailAt, machines/session.machine.ts): the sites inside session_complete only without
 *   a handshake (session_accept reaches session_complete only then), the txn only in http mode,
 *   fcntl only in 1.5-dev, the data init only on an ssl bind. SystemModel.isEnabled refuses the others, so every engine sees the same alphabet.
 * - monitor-net and tcp-request sources are tried with nothing failing: both paths end before any
 *   allocation that a failure could hit, except the session itself, which the plain source covers.
 *   monitor-net only in 1.5-dev (sourceClassReachable): 2.3 removed it.
 * - Completion failures: every site. 'txn' is dropped in tcp mode, where there is no txn and the
 *   site behaves as 'accept'.
 */
export const DEFAULT_BOUNDS: Bounds = {
  acceptSources: ['monitor', 'denied'],
  acceptFailSites: ['none', 'session', 'fcntl', 'task', 'dataInit', 'req', 'rep', 'txn', 'accept'],
  acceptError: true,
  completeFailSites: ['none', 'req', 'rep', 'txn', 'accept'],
  proxyErrorCodes: ['PRX_BAD_HDR', 'PRX_ABORT', 'NONE'],
  sslErrorCodes: ['SSL_HANDSHAKE'],
  clientCloses: true,
};

/** Every error code of both handshakes: what the representative codes above stand for. */
export const ALL_CODES_BOUNDS: Bounds = {
  ...DEFAULT_BOUNDS,
  proxyErrorCodes: [
    'PRX_EMPTY',
    'PRX_ABORT',
    'PRX_TRUNCATED',
    'PRX_NOT_HDR',
    'PRX_BAD_HDR',
    'PRX_BAD_PROTO',
    'NONE',
  ],
  sslErrorCodes: [
    'SSL_EMPTY',
    'SSL_ABORT',
    'SSL_TOO_MANY',
    'SSL_NO_MEM',
    'SSL_RENEG',
    'SSL_CA_FAIL',
    'SSL_CRT_FAIL',
    'SSL_HANDSHAKE',
  ],
};

/**
 * The number of connections. N = 3 is the full check: with the maxconn of 2 used by most
 * configurations, a third connection waits in the backlog while two hold every slot, so the
 * listener is full, limited and resumed with a connection to resume for. N = 2 is the quick check
 * of `npm test` (it still fills every slot). Larger N add nothing to the machines (every
 * connection runs the same two machines) but interleavings of the shared counters; `check-deep`
 * and the random runs go there.
 */
export const QUICK_CONNECTIONS = 2;
export const FULL_CONNECTIONS = 3;
export const DEEP_CONNECTIONS = 4;

/** One configuration of the space, with a name for reports. */
export interface NamedConfig {
  name: string;
  why: string; //  what this configuration is in the space for
  config: ModelConfig;
}

/** tcp-ssl-logged's settings, which 2.6-tls-maxsslconn runs under profile 2.6. */
const TLS_LOGGED_MAXSSLCONN: Partial<ModelConfig> = {
  mode: 'tcp',
  acceptProxy: false,
  ssl: true,
  timeoutClient: 300,
  logging: true,
  maxsslconn: 1,
};

/**
 * The configuration space: a union of configurations that together switch on every guard of the
 * three machines. The full product of the settings (mode × accept-proxy × ssl × timeout × logging ×
 * limits × profile: several hundred) is cut to configurations that each add something, because
 * most settings are independent of each other in the machines: the timeout only arms the deadline,
 * logging only adds the log line, the mode only the txn and the 500. Settings that do interact have
 * a configuration together: http with and without TLS (the 500), ssl with logging (the tracked
 * transport of 0ede5a331; with maxsslconn 1, so that a second TLS connection is refused while the
 * first holds its SSL context), accept-proxy with ssl (two handshakes in a row), a frontend maxconn below
 * the bind's with rate limits (both listener queues). Timeouts are small constants: the model has no
 * clock, only the fact that a deadline is armed and with what.
 */
export const CONFIG_SPACE: NamedConfig[] = [
  {
    name: 'tcp-proxy',
    why: 'the seed case: accept-proxy in tcp mode, timeout client, logging',
    config: makeConfig({ mode: 'tcp', acceptProxy: true, timeoutClient: 300, logging: true }),
  },
  {
    name: 'tcp-ssl-logged',
    why: 'TLS handshake with logging: the transport is tracked for the logs (0ede5a331); maxsslconn 1 refuses a second TLS connection its SSL context at accept',
    config: makeConfig(TLS_LOGGED_MAXSSLCONN),
  },
  {
    name: 'tcp-proxy-ssl-no-timeout',
    why: 'two handshakes in a row, no timeout client (the deadline is never armed), no logging',
    config: makeConfig({ mode: 'tcp', acceptProxy: true, ssl: true, timeoutClient: null, logging: false }),
  },
  {
    name: 'http-raw',
    why: 'no handshake: direct completion in session_accept, the 500, the monitor 200',
    config: makeConfig({ mode: 'http', acceptProxy: false, ssl: false, timeoutClient: 300, logging: true }),
  },
  {
    name: 'http-proxy',
    why: 'accept-proxy in http mode on a raw transport (the txn, the 500), global maxconn 1 below the rest',
    config: makeConfig({
      mode: 'http',
      acceptProxy: true,
      ssl: false,
      timeoutClient: 300,
      logging: false,
      globalMaxconn: 1,
    }),
  },
  {
    name: 'http-ssl',
    why: 'http over TLS: no 500 on a TLS transport (cbaaec475)',
    config: makeConfig({ mode: 'http', acceptProxy: false, ssl: true, timeoutClient: 300, logging: false }),
  },
  {
    name: 'tcp-proxy-limits',
    why: 'frontend maxconn 1 below bind maxconn 2, maxconnrate 1, rate-limit sessions 1: both queues',
    config: makeConfig({
      mode: 'tcp',
      acceptProxy: true,
      feMaxconn: 1,
      bindMaxconn: 2,
      globalMaxconn: 2,
      maxconnrate: 1,
      rateLimitSessions: 1,
    }),
  },
  {
    name: 'tcp-proxy-unlimited',
    why: 'an LI_O_UNLIMITED listener: actconn is not counted',
    config: makeConfig({ mode: 'tcp', acceptProxy: true, unlimited: true }),
  },
  {
    name: '2.6-http-raw',
    why: "Debian's 2.6: a failed direct completion returns 0 and sends no 500; a bind maxconn 1 below the frontend's 2 (a 2.x bind has none of its own unless given)",
    config: makeConfig({ profile: '2.6', mode: 'http', acceptProxy: false, ssl: false, bindMaxconn: 1 }),
  },
  {
    name: '2.6-proxy-ssl-dontlognull',
    why: "Debian's 2.6 with both handshakes, logging and option dontlognull: kills of connections that sent nothing are not logged",
    config: makeConfig({
      profile: '2.6',
      mode: 'tcp',
      acceptProxy: true,
      ssl: true,
      timeoutClient: 300,
      logging: true,
      dontlognull: true,
    }),
  },
  {
    name: '2.6-tls-maxsslconn',
    why: "tcp-ssl-logged under Debian's 2.6: the SSL context is made in conn_prepare, before the session and the tcp-request rules, so a second TLS connection, rejected source or not, is refused there",
    config: makeConfig({ ...TLS_LOGGED_MAXSSLCONN, profile: '2.6' }),
  },
  {
    name: '2.9-proxy-client-hs',
    why: '2.9: timeout client-hs is the deadline, with timeout client unset',
    config: makeConfig({
      profile: '2.9',
      mode: 'tcp',
      acceptProxy: true,
      timeoutClient: null,
      timeoutClientHs: 100,
    }),
  },
];

/** Overrides applied to every configuration of a space (the `check` command's flags). */
export interface SpaceOverrides {
  maxconn?: number; //            sets the frontend, bind and global maxconn
  profile?: ModelConfig['profile'];
  mode?: ModelConfig['mode'];
  ssl?: boolean;
  maxsslconn?: number | null; //  global maxsslconn (null: no limit)
}

/**
 * Returns `space` with `overrides` applied to every configuration, configurations that became
 * identical merged (the first name kept). Pure.
 */
export function overrideSpace(space: readonly NamedConfig[], overrides: SpaceOverrides): NamedConfig[] {
  const out: NamedConfig[] = [];
  const seen = new Set<string>();
  for (const c of space) {
    const config: ModelConfig = { ...c.config };
    if (overrides.maxconn !== undefined) {
      config.feMaxconn = overrides.maxconn;
      config.bindMaxconn = overrides.maxconn;
      config.globalMaxconn = overrides.maxconn;
    }
    if (overrides.profile !== undefined) config.profile = overrides.profile;
    if (overrides.mode !== undefined) config.mode = overrides.mode;
    if (overrides.ssl !== undefined) config.ssl = overrides.ssl;
    if (overrides.maxsslconn !== undefined) config.maxsslconn = overrides.maxsslconn;
    const key = JSON.stringify(config);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ ...c, config });
  }
  return out;
}
