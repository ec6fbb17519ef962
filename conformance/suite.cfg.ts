/**
 * The configuration the conformance suite needs from a target, written once and printed as
 * haproxy.cfg (`embryonic conform --print-config`). The same text runs under Debian's HAProxy 2.6
 * (nbthread 1, a stats socket) and under the bundled proxy, so every case observes the same setup
 * on every target; but for the frontends that only some profiles have (servesFrontend): fe_monitor,
 * whose monitor-net HAProxy refuses since 2.3, only in the config of a dev12 target; fe_rate_full
 * only for 2.x targets; fe_client_hs, whose `timeout client-hs` came in 2.9, only for 2.9 targets.
 *
 * Layout: one base port P; every frontend listens on 127.0.0.1 at P + its offset, and the backend
 * that the suite runs itself (an echo server) listens on 127.0.0.1 at P + BACKEND_OFFSET. A proxy
 * under test as HOST:PORT must run this config with PORT = P (print it with `--target HOST:PORT`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from '../machines/config.ts';

/** `timeout client` of the suite: the embryonic deadline every timing case is judged against, in ms. */
export const DEADLINE_MS = 300;

/**
 * `timeout server` of be_data, fe_data's backend: three times the suite's `timeout client`, so that
 * an idle session's two read timeouts, the client's first, are far apart.
 */
export const DATA_SERVER_TIMEOUT_MS = 900;

/**
 * `timeout client-hs` of fe_client_hs (2.9 targets only): a third of the suite's `timeout client`, so
 * that a deadline taken from the wrong timeout cannot pass for the right one.
 */
export const CLIENT_HS_MS = 100;

/** The frontends of the suite: what each one is for and its offset from the base port. */
export const FRONTENDS = {
  fe_pp: { offset: 0, what: 'accept-proxy on a raw transport: the PROXY header cases' },
  fe_pp_tls: { offset: 1, what: 'accept-proxy then TLS (ssl crt): one deadline for both handshakes' },
  fe_reject: {
    offset: 2,
    what: 'accept-proxy with `tcp-request connection reject` for every loopback source',
  },
  fe_queue: { offset: 3, what: 'accept-proxy with maxconn 10: slot use and queueing' },
  fe_plain: { offset: 4, what: 'no handshake: the session completes at accept, a PROXY header is data' },
  fe_tls: { offset: 5, what: 'TLS without accept-proxy' },
  fe_pp_nulllog: {
    offset: 6,
    what: 'accept-proxy with option dontlognull: the kill of a connection that sent nothing is not logged',
  },
  fe_fe_queue: {
    offset: 7,
    what: "accept-proxy, the frontend's maxconn 10 below its bind's 20: the frontend's queue",
  },
  fe_monitor: {
    offset: 8,
    what: 'monitor-net for every loopback source (1.5-dev13): answered at accept, without a handshake',
    profiles: ['dev12'],
  },
  fe_seq: {
    offset: 9,
    what: 'accept-proxy, for the sequential sessions of one case only: its smax can only ever be 1',
  },
  fe_rate: {
    offset: 11,
    what: 'accept-proxy with rate-limit sessions 1: the rate counts sessions, not embryonic connections',
  },
  fe_rate_full: {
    offset: 12,
    what: "no handshake, rate-limit sessions 1 and maxconn 1 below its bind's 2: the frontend's task meets a full frontend",
    // 1.5-dev's frontend task waits 999 ms for a rate of 1, past the second the case needs.
    profiles: ['2.6', '2.9'],
  },
  fe_reject_tls: {
    offset: 13,
    what: 'TLS (ssl crt) with `tcp-request connection reject` for the suite client address (not its other one), and option dontlognull: 2.x makes the SSL context before the rules run',
  },
  fe_data: {
    offset: 15,
    what: `no handshake, to be_data (timeout server ${DATA_SERVER_TIMEOUT_MS} ms): the data phase, where a read timeout shuts one side only`,
  },
  fe_client_hs: {
    offset: 14,
    what: 'accept-proxy with `timeout client-hs` at a third of `timeout client`: from 2.9, client-hs is the handshake deadline',
    // 1.5-dev and 2.6 have no `timeout client-hs`: 2.6 refuses the keyword.
    profiles: ['2.9'],
  },
} as const satisfies Record<string, { offset: number; what: string; profiles?: readonly Profile[] }>;

/**
 * The suite's source address: every client connects from it, as every target of the suite listens
 * on loopback. The rules of fe_reject and fe_monitor class it.
 */
export const CLIENT_ADDRESS = '127.0.0.1';

/**
 * The suite's other source address, for the clients of a case that needs two classes of source on
 * one frontend (fe_reject_tls rejects CLIENT_ADDRESS only). A scenario's ACCEPT names its class
 * (`src`), and a client from it must not be killed where the log is judged: kill lines must name
 * CLIENT_ADDRESS or a header's source.
 */
export const OTHER_CLIENT_ADDRESS = '127.0.0.2';

/** The name of one of the suite's frontends. */
export type FrontendName = keyof typeof FRONTENDS;

/**
 * True iff a target of <profile> serves frontend <fe>: every frontend but those whose directives
 * that profile's HAProxy refuses or whose case needs another version's behaviour (fe_monitor:
 * monitor-net was removed in 2.3.0; fe_client_hs: `timeout client-hs` came in 2.9, and 2.6 refuses
 * it; fe_rate_full: its case needs 2.x's frontend task). Pure.
 */
export function servesFrontend(profile: Profile, fe: FrontendName): boolean {
  const entry: { offset: number; profiles?: readonly Profile[] } = FRONTENDS[fe];
  return entry.profiles === undefined || entry.profiles.includes(profile);
}

/** The `maxconn` line of frontend <fe> in the suite config. Pure. */
function frontendMaxconn(fe: FrontendName): number {
  if (fe === 'fe_queue' || fe === 'fe_fe_queue') return QUEUE_MAXCONN;
  return fe === 'fe_rate_full' ? RATE_FULL_MAXCONN : FRONTEND_MAXCONN;
}

/** Returns the frontends a target of <profile> serves, in offset order. Pure. */
export function frontendsOf(profile: Profile): FrontendName[] {
  return (Object.keys(FRONTENDS) as FrontendName[]).filter((fe) => servesFrontend(profile, fe));
}

/** The offset of the echo backend's port from the base port. */
export const BACKEND_OFFSET = 10;

/**
 * Global `maxsslconn` of the suite: the SSL contexts of every TLS frontend together. Every other
 * TLS case holds one TLS connection at a time, and cases run one at a time, so only the case that
 * holds this many reaches it.
 */
export const SUITE_MAXSSLCONN = 2;

/** `maxconn` of fe_queue, the frontend the slot cases fill. */
export const QUEUE_MAXCONN = 10;

/** `maxconn` of every other frontend: no case other than those of fe_queue and fe_fe_queue fills it. */
export const FRONTEND_MAXCONN = 10;

/**
 * `maxconn` of fe_rate_full: one session fills it, so that the frontend's task, which 2.x runs again
 * a millisecond after the session rate stopped the listener, finds the frontend full.
 */
export const RATE_FULL_MAXCONN = 1;

/**
 * `bind ... maxconn` of fe_fe_queue: above its frontend's maxconn (QUEUE_MAXCONN), so that the
 * frontend is full before its listener is, and the listener waits on the frontend's queue.
 */
export const FE_QUEUE_BIND_MAXCONN = 2 * QUEUE_MAXCONN;

/** Base port of the printed config when none is given: the ports of haproxy-2.6-observed.md. */
export const DEFAULT_BASE_PORT = 18443;

/** Where `--print-config` puts the stats socket and the test certificate unless told otherwise. */
export const DEFAULT_CONFIG_DIR = '/tmp/embryonic-conform';

/** Every address and path a target of the suite uses. */
export interface SuiteLayout {
  host: string; //                                 the address every frontend binds: 127.0.0.1
  basePort: number; //                             P
  ports: Record<FrontendName, number>; //          P + offset, per frontend
  backendPort: number; //                          P + BACKEND_OFFSET, or the port the suite's backend got
  statsPath: string; //                            the unix stats socket of `stats socket`
  certPath: string; //                             the PEM (certificate and key) of `ssl crt`
}

/**
 * Returns the layout for base port <basePort>, with the stats socket and the certificate in <dir>
 * and the backend at <backendPort> (P + BACKEND_OFFSET unless given). Requires 1 ≤ basePort and
 * basePort + the largest offset (a frontend's or BACKEND_OFFSET) ≤ 65535; throws RangeError
 * otherwise. Pure.
 */
export function suiteLayout(basePort: number, dir: string, backendPort?: number): SuiteLayout {
  const top = Math.max(BACKEND_OFFSET, ...Object.values(FRONTENDS).map((f) => f.offset));
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65535 - top)
    throw new RangeError(`base port ${basePort} leaves no room for the suite's ports`);
  const ports = Object.fromEntries(
    Object.entries(FRONTENDS).map(([name, fe]) => [name, basePort + fe.offset]),
  ) as Record<FrontendName, number>;
  return {
    host: '127.0.0.1',
    basePort,
    ports,
    backendPort: backendPort ?? basePort + BACKEND_OFFSET,
    statsPath: join(dir, 'stats.sock'),
    certPath: join(dir, 'site.pem'),
  };
}

/**
 * Returns the stats socket of the process that serves only frontend <fe> (see suiteConfig's
 * <only>): the layout's socket with "-<fe>" before ".sock". Pure.
 */
export function statsPathOf(layout: SuiteLayout, fe: FrontendName): string {
  return layout.statsPath.replace(/(\.sock)?$/, `-${fe}.sock`);
}

/**
 * Returns the suite's haproxy.cfg for <layout>, for a target of <profile> (dev12 unless given):
 * the frontends it serves (servesFrontend). Every directive is one that the bundled proxy accepts
 * (impl/config.ts), and, but for fe_monitor's monitor-net, which only dev12 targets get, one that
 * Debian's HAProxy 2.6 accepts too: the config for profile 2.6 loads under it. Pure.
 *
 * With <only>, the config serves that one frontend (and the backend), with its own stats socket
 * statsPathOf(layout, only): the bundled proxy serves one frontend per process (its machines model
 * one listener), so the suite runs one process per frontend, each from its slice of this config.
 *
 * Why each setting:
 *   nbthread 1            counters are exact only with one thread (with two, smax reads 2 after
 *                         strictly sequential connections: per-thread feconn reservation)
 *   maxsslconn 2          the SSL contexts of the TLS frontends: a third embryonic TLS connection
 *                         is refused at accept (ssl_sock_init)
 *   stats socket          the counter cases read `show stat` and `show info` through it
 *   log stderr, tcplog    a log line per kill and per session, shown beside each case's wire log
 *   timeout client        the embryonic deadline (2.6 rejects `timeout client-hs`), DEADLINE_MS
 *   timeout client-hs     fe_client_hs (2.9 only): its handshake deadline, CLIENT_HS_MS, a third of
 *                         DEADLINE_MS; the session after the handshake keeps timeout client
 *   maxconn 10            fe_queue's slots; 12 idle connections leave 2 in the listen backlog
 *   bind ... maxconn 20   fe_fe_queue: the frontend's maxconn is reached first (listener_accept's
 *                         p->feconn >= p->maxconn: limit_listener on the frontend's queue)
 *   tcp-request reject    fe_reject rejects every loopback source before any handshake;
 *                         fe_reject_tls, on a TLS bind where 2.x has made the SSL context first,
 *                         the suite's client address only, so that clients from its other
 *                         address can hold SSL contexts there (their deadline kills unlogged under
 *                         option dontlognull, as they send nothing)
 *   option dontlognull    fe_pp_nulllog: a kill is logged only if the client sent something
 *   monitor-net           fe_monitor (dev12 only): every loopback source is a monitor
 *   timeout server        be_data, fe_data's backend: DATA_SERVER_TIMEOUT_MS, so that an idle
 *                         session's client and server read timeouts are far apart (the suite's
 *                         defaults keep 5 s: no other case waits for a server timeout)
 *   maxconn 1, rate 1     fe_rate_full (2.x only): one session both fills the frontend and spends
 *                         the session rate, so that the next connection meets the rate limit (2.x
 *                         tests it first) and the frontend's task then a full frontend; its bind's
 *                         maxconn 2 keeps a dev12 listener from being full, were the case run there
 */
export function suiteConfig(layout: SuiteLayout, only?: FrontendName, profile: Profile = 'dev12'): string {
  const { host, ports } = layout;
  // <note>: a first comment line, for a frontend only some profiles serve (which ones, and why).
  const frontend = (
    fe: FrontendName,
    bindOptions: string,
    extra: string[] = [],
    note?: string,
    backend = 'be_echo',
  ): string[] =>
    (only !== undefined && only !== fe) || !servesFrontend(profile, fe)
      ? []
      : [
          ...(note ? [`# ${note}`] : []),
          `# ${FRONTENDS[fe].what}`,
          `frontend ${fe}`,
          `    bind ${host}:${ports[fe]}${bindOptions}`,
          `    maxconn ${frontendMaxconn(fe)}`,
          ...extra,
          `    default_backend ${backend}`,
          '',
        ];
  return [
    '# The embryonic conformance suite: `embryonic conform --print-config`.',
    `# Base port ${layout.basePort}; the suite runs its echo backend on ${host}:${layout.backendPort}.`,
    ...(only ? [`# The slice of the suite config for one process serving ${only} only.`] : []),
    'global',
    '    maxconn 100',
    `    maxsslconn ${SUITE_MAXSSLCONN}`,
    '    nbthread 1',
    '    log stderr format raw local0 info',
    `    stats socket ${only ? statsPathOf(layout, only) : layout.statsPath}`,
    '',
    'defaults',
    '    mode tcp',
    '    log global',
    '    option tcplog',
    '    timeout connect 1s',
    '    timeout server 5s',
    `    timeout client ${DEADLINE_MS}ms`,
    '',
    ...frontend('fe_pp', ' accept-proxy'),
    ...frontend('fe_pp_tls', ` accept-proxy ssl crt ${layout.certPath}`),
    ...frontend('fe_reject', ' accept-proxy', ['    tcp-request connection reject if { src 127.0.0.0/8 }']),
    ...frontend('fe_queue', ' accept-proxy'),
    ...frontend('fe_plain', ''),
    ...frontend('fe_tls', ` ssl crt ${layout.certPath}`),
    ...frontend('fe_pp_nulllog', ' accept-proxy', ['    option dontlognull']),
    ...frontend('fe_fe_queue', ` accept-proxy maxconn ${FE_QUEUE_BIND_MAXCONN}`),
    ...frontend(
      'fe_monitor',
      '',
      ['    monitor-net 127.0.0.0/8'],
      'dev12 targets only: HAProxy 2.3 and later refuse monitor-net (print the config with @2.6)',
    ),
    ...frontend('fe_seq', ' accept-proxy'),
    ...frontend('fe_rate', ' accept-proxy', ['    rate-limit sessions 1']),
    ...frontend(
      'fe_rate_full',
      ` maxconn ${2 * RATE_FULL_MAXCONN}`,
      ['    rate-limit sessions 1'],
      '2.x targets only: 1.5-dev waits 999 ms before its frontend task looks again',
    ),
    ...frontend('fe_reject_tls', ` ssl crt ${layout.certPath}`, [
      `    tcp-request connection reject if { src ${CLIENT_ADDRESS} }`,
      '    option dontlognull',
    ]),
    ...frontend(
      'fe_client_hs',
      ' accept-proxy',
      [`    timeout client-hs ${CLIENT_HS_MS}ms`],
      '2.9 targets only: 1.5-dev and 2.6 have no timeout client-hs (2.6 refuses it)',
    ),
    ...frontend('fe_data', '', [], undefined, 'be_data'),
    '# The echo server the suite runs itself.',
    'backend be_echo',
    `    server echo1 ${host}:${layout.backendPort}`,
    '',
    "# The same server, with a server timeout apart from the client's (fe_data).",
    'backend be_data',
    `    timeout server ${DATA_SERVER_TIMEOUT_MS}ms`,
    `    server echo1 ${host}:${layout.backendPort}`,
    '',
  ].join('\n');
}

/**
 * Writes the test certificate to layout.certPath and, when <cfgPath> is given, the config for a
 * target of <profile> to it (the slice for <only> when given), creating their directory. Returns
 * nothing; the caller owns the files and removes them.
 */
export function writeSuiteFiles(
  layout: SuiteLayout,
  cfgPath?: string,
  only?: FrontendName,
  profile: Profile = 'dev12',
): void {
  mkdirSync(join(layout.certPath, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(layout.certPath, TEST_CERT_PEM, { mode: 0o600 });
  if (cfgPath) writeFileSync(cfgPath, suiteConfig(layout, only, profile));
}

/**
 * A self-signed P-256 certificate and its key, for `ssl crt` only (CN embryonic-conformance, valid
 * 2026-11-26 to 2126-11-02). The client never checks it. It is a test fixture, not a secret:
 * regenerate with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 36500
 * -nodes -subj /CN=embryonic-conformance`.
 */
export const TEST_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBmDCCAT2gAwIBAgIUAZHTBz1CyLYIo5n06+/d2nHKkPMwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVZW1icnlvbmljLWNvbmZvcm1hbmNlMCAXDTI2MTEyNjE4MjQz
MVoYDzIxMjYxMTAyMTgyNDMxWjAgMR4wHAYDVQQDDBVlbWJyeW9uaWMtY29uZm9y
bWFuY2UwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASQ8DBeFGy+EW4Ff7N8SFH/
7f7aeLBV4mET5SlO1JAmkd6VwbqUfRjFe60Jvs56MHWgfN0oG2p8aGRGwOaijjwm
o1MwUTAdBgNVHQ4EFgQUcZDtFrYKc+tM8jPQ+AvJhjPsJYwwHwYDVR0jBBgwFoAU
cZDtFrYKc+tM8jPQ+AvJhjPsJYwwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNJADBGAiEApm8qcj1MJHcqBeae3CejUb+aDsxyOfPztVe1Z0YdVuICIQCZFSDD
tLmB8kT+SVegk6f/A0ZNzxv8HCBgihs36NbNRg==
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4nRFCc66gw8Ftp2l
fxu3jWbMQRuk/O3RajijWe9YuH6hRANCAASQ8DBeFGy+EW4Ff7N8SFH/7f7aeLBV
4mET5SlO1JAmkd6VwbqUfRjFe60Jvs56MHWgfN0oG2p8aGRGwOaijjwm
-----END PRIVATE KEY-----
`;
