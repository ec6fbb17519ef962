/**
 * The proxy configurations the real-proxy scenarios run on: each one a haproxy.cfg the proxy is
 * started with (`--test-clock`, a `level admin` stats socket) and, written independently of the
 * proxy's own parser, the ModelConfig the machines predict with. Together they enable every guard
 * of the three machines that the proxy can reach.
 */
import { makeConfig, type ModelConfig } from '../../../machines/config.ts';
import { CERT } from '../harness.ts';

/** One configuration of the proxy under test. */
export interface ScenarioConfig {
  name: string;
  what: string; //               one line for reports
  model: ModelConfig; //         what the machines predict with
  bindMaxconn: number | null; // `bind ... maxconn` when set (show stat's listener slim, FULL status)
  sources: ('plain' | 'denied' | 'monitor')[]; // the source classes a client can connect from
  /** The haproxy.cfg text, with the stats socket in `dir` and the backend on `backendPort`. */
  text(dir: string, backendPort: number): string;
}

/** The handshake deadline (`timeout client`), in virtual ms: only `set clock advance` reaches it. */
export const DEADLINE = 8000;

/** The loopback sources of each class (tcp-request reject and monitor-net match them). */
export const SOURCE_ADDRESS = { plain: '127.0.0.1', denied: '127.0.0.2', monitor: '127.0.0.3' } as const;

interface Spec {
  name: string;
  what: string;
  profile?: '2.6';
  mode: 'tcp' | 'http';
  acceptProxy: boolean;
  ssl: boolean;
  logging: boolean;
  feMaxconn: number;
  bindMaxconn?: number;
  globalMaxconn?: number;
  maxconnrate?: number;
  rateLimitSessions?: number;
  maxsslconn?: number;
  reject?: boolean;
  monitor?: boolean;
}

function scenarioConfig(s: Spec): ScenarioConfig {
  const globalMaxconn = s.globalMaxconn ?? 100;
  const model = makeConfig({
    profile: s.profile ?? 'dev12',
    mode: s.mode,
    acceptProxy: s.acceptProxy,
    ssl: s.ssl,
    timeoutClient: DEADLINE,
    feMaxconn: s.feMaxconn,
    ...(s.bindMaxconn !== undefined ? { bindMaxconn: s.bindMaxconn } : {}),
    globalMaxconn,
    maxconnrate: s.maxconnrate ?? null,
    rateLimitSessions: s.rateLimitSessions ?? null,
    maxsslconn: s.maxsslconn ?? null,
    logging: s.logging,
    dontlognull: false,
  });
  const bindOptions = [
    s.acceptProxy ? 'accept-proxy' : '',
    s.ssl ? `ssl crt ${CERT}` : '',
    s.bindMaxconn !== undefined ? `maxconn ${s.bindMaxconn}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return {
    name: s.name,
    what: s.what,
    model,
    bindMaxconn: s.bindMaxconn ?? null,
    sources: [
      'plain',
      ...(s.reject ? (['denied'] as const) : []),
      ...(s.monitor ? (['monitor'] as const) : []),
    ],
    text: (dir, backendPort) =>
      [
        'global',
        `    maxconn ${globalMaxconn}`,
        '    nbthread 1',
        ...(s.maxconnrate !== undefined ? [`    maxconnrate ${s.maxconnrate}`] : []),
        ...(s.maxsslconn !== undefined ? [`    maxsslconn ${s.maxsslconn}`] : []),
        ...(s.logging ? ['    log stderr format raw local0 info'] : []),
        `    stats socket ${dir}/stats.sock level admin`,
        '',
        'defaults',
        `    mode ${s.mode}`,
        ...(s.logging ? ['    log global', `    option ${s.mode === 'http' ? 'httplog' : 'tcplog'}`] : []),
        '    timeout connect 5s',
        '    timeout server 30s',
        `    timeout client ${DEADLINE}ms`,
        '',
        'frontend fe',
        `    bind 127.0.0.1:0 ${bindOptions} name main`.trimEnd(),
        '    option socket-stats',
        `    maxconn ${s.feMaxconn}`,
        ...(s.rateLimitSessions !== undefined ? [`    rate-limit sessions ${s.rateLimitSessions}`] : []),
        ...(s.reject ? ['    tcp-request connection reject if { src 127.0.0.2/32 }'] : []),
        ...(s.monitor ? ['    monitor-net 127.0.0.3/32'] : []),
        '    default_backend be',
        '',
        'backend be',
        `    server s1 127.0.0.1:${backendPort}`,
        '',
      ].join('\n'),
  };
}

/** tlsmax's settings, which tlsmax26 runs under profile 2.6 with a rejected source. */
const TLSMAX: Spec = {
  name: 'tlsmax',
  what: 'tcp, TLS only, maxsslconn 1 below maxconn 2: a second TLS connection is refused at accept',
  mode: 'tcp',
  acceptProxy: false,
  ssl: true,
  logging: true,
  feMaxconn: 2,
  bindMaxconn: 2,
  maxsslconn: 1,
};

/** ratefull's settings, which ratefull26 runs under profile 2.6. */
const RATEFULL: Spec = {
  name: 'ratefull',
  what: "tcp, accept-proxy, rate-limit sessions 1 and frontend maxconn 1 below the bind maxconn 2: the frontend's task finds it full",
  mode: 'tcp',
  acceptProxy: true,
  ssl: false,
  logging: true,
  feMaxconn: 1,
  bindMaxconn: 2,
  rateLimitSessions: 1,
};

/** Every configuration, by name. */
export const CONFIGS = {
  pp: scenarioConfig({
    name: 'pp',
    what: 'tcp, accept-proxy, bind maxconn 2, a rejected and a monitor source',
    mode: 'tcp',
    acceptProxy: true,
    ssl: false,
    logging: true,
    feMaxconn: 2,
    bindMaxconn: 2,
    reject: true,
    monitor: true,
  }),
  ssl: scenarioConfig({
    name: 'ssl',
    what: 'http, accept-proxy then TLS, no logging, maxconn 2',
    mode: 'http',
    acceptProxy: true,
    ssl: true,
    logging: false,
    feMaxconn: 2,
    bindMaxconn: 2,
  }),
  tls: scenarioConfig({
    name: 'tls',
    what: 'http, TLS only, maxconn 2',
    mode: 'http',
    acceptProxy: false,
    ssl: true,
    logging: true,
    feMaxconn: 2,
    bindMaxconn: 2,
  }),
  tlsmax: scenarioConfig(TLSMAX),
  tlsmax26: scenarioConfig({
    ...TLSMAX,
    name: 'tlsmax26',
    what: 'tlsmax with a rejected source, profile 2.6: the SSL context is made before the session and before the tcp-request rules (conn_prepare), so a refused one leaves CumConns alone and a rejected source counts one in CumSslConns',
    profile: '2.6',
    reject: true,
  }),
  http: scenarioConfig({
    name: 'http',
    what: 'http, no handshake (direct completion), a rejected and a monitor source',
    mode: 'http',
    acceptProxy: false,
    ssl: false,
    logging: true,
    feMaxconn: 2,
    bindMaxconn: 2,
    reject: true,
    monitor: true,
  }),
  http26: scenarioConfig({
    name: 'http26',
    what: 'http, no handshake, profile 2.6 (a failed completion returns 0, no 500)',
    profile: '2.6',
    mode: 'http',
    acceptProxy: false,
    ssl: false,
    logging: true,
    feMaxconn: 2,
    bindMaxconn: 2,
    reject: true,
  }),
  rate: scenarioConfig({
    name: 'rate',
    what: 'tcp, accept-proxy, maxconnrate 2, rate-limit sessions 1',
    mode: 'tcp',
    acceptProxy: true,
    ssl: false,
    logging: true,
    feMaxconn: 10,
    maxconnrate: 2,
    rateLimitSessions: 1,
  }),
  global: scenarioConfig({
    name: 'global',
    what: 'tcp, accept-proxy, global maxconn 2 below the frontend maxconn 3',
    mode: 'tcp',
    acceptProxy: true,
    ssl: false,
    logging: true,
    feMaxconn: 3,
    globalMaxconn: 2,
  }),
  rateglobal: scenarioConfig({
    name: 'rateglobal',
    what: 'tcp, accept-proxy, maxconnrate 2 and global maxconn 2: the global task finds every slot taken; no logging',
    mode: 'tcp',
    acceptProxy: true,
    ssl: false,
    logging: false,
    feMaxconn: 10,
    globalMaxconn: 2,
    maxconnrate: 2,
  }),
  ratefull: scenarioConfig(RATEFULL),
  ratefull26: scenarioConfig({
    ...RATEFULL,
    name: 'ratefull26',
    what: "ratefull under profile 2.6: the frontend's task polls every millisecond while the session rate is at its limit, and the rate periods begin with the first connection after an idle second",
    profile: '2.6',
  }),
  fefull: scenarioConfig({
    name: 'fefull',
    what: 'http, accept-proxy, frontend maxconn 2 below the bind maxconn 3',
    mode: 'http',
    acceptProxy: true,
    ssl: false,
    logging: true,
    feMaxconn: 2,
    bindMaxconn: 3,
  }),
} as const satisfies Record<string, ScenarioConfig>;

export type ConfigName = keyof typeof CONFIGS;
