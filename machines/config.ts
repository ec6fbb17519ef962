/**
 * The configuration the machines read: the part of haproxy.cfg that changes what happens to an
 * accepted connection before and after its handshake. It is an input of every machine (XState
 * `input`), never mutated, and the only way a setting reaches a guard.
 *
 * Each field names the haproxy.cfg keyword it stands for and HAProxy's field in the era's structs.
 */

/** Which HAProxy the model reproduces. See README "Profiles". */
export type Profile =
  | 'dev12' //  1.5-dev12: the seed 2542b53b1, its same-release fixes and the later ones README lists
  | '2.6' //    Debian's 2.6.12: no monitor-net, a failed direct completion is ret = 0 (no 500)
  | '2.9'; //   2.9.0+: `timeout client-hs` is the handshake deadline when set

export interface ModelConfig {
  profile: Profile; //                  which HAProxy is modelled
  mode: 'tcp' | 'http'; //              `mode`, p->mode (PR_MODE_TCP / PR_MODE_HTTP)
  acceptProxy: boolean; //              `bind ... accept-proxy`, LI_O_ACC_PROXY → CO_FL_ACCEPT_PROXY
  ssl: boolean; //                      `bind ... ssl crt FILE`, CO_FL_SSL_WAIT_HS; also "not raw_sock"
  timeoutClient: number | null; //      `timeout client` in ms, p->timeout.client; null or 0 = unset (TICK_ETERNITY)
  timeoutClientHs: number | null; //    `timeout client-hs` in ms (2.9 profile only); null or 0 = unset
  feMaxconn: number; //                 frontend `maxconn`, p->maxconn
  bindMaxconn: number | null; //        `bind ... maxconn`, l->maxconn; null = none of its own (2.x; dev12 takes the frontend's)
  globalMaxconn: number; //             global `maxconn`, global.maxconn (bounds actconn)
  maxconnrate: number | null; //        global `maxconnrate`, global.cps_lim; null = no limit
  rateLimitSessions: number | null; //  frontend `rate-limit sessions`, p->fe_sps_lim; null = no limit
  maxsslconn: number | null; //         global `maxsslconn`, global.maxsslconn; null or 0 = no limit
  unlimited: boolean; //                listener option LI_O_UNLIMITED (stats/peers listeners): not in actconn
  logging: boolean; //                  `option tcplog`/`httplog`/`log-format` present: p->to_log != 0
  dontlognull: boolean; //              `option dontlognull`
}

/** A small frontend in tcp mode with accept-proxy, as the seed's commit message has in mind. */
export const DEFAULT_CONFIG: ModelConfig = {
  profile: 'dev12',
  mode: 'tcp',
  acceptProxy: true,
  ssl: false,
  timeoutClient: 300,
  timeoutClientHs: null,
  feMaxconn: 2,
  bindMaxconn: 2,
  globalMaxconn: 2,
  maxconnrate: null,
  rateLimitSessions: null,
  maxsslconn: null,
  unlimited: false,
  logging: true,
  dontlognull: false,
};

/**
 * Returns a complete configuration from `partial`, filling the rest from DEFAULT_CONFIG. Pure.
 * `bindMaxconn` unless given: the frontend's maxconn under dev12 (1.5-dev's cfgparse gives a bind
 * without `maxconn` its frontend's), none under 2.x (l->maxconn stays 0: the listener has no limit
 * of its own, and only the frontend's maxconn holds it back).
 */
export function makeConfig(partial: Partial<ModelConfig> = {}): ModelConfig {
  const merged = { ...DEFAULT_CONFIG, ...partial };
  if (partial.bindMaxconn === undefined)
    merged.bindMaxconn = merged.profile === 'dev12' ? merged.feMaxconn : null;
  return merged;
}

/**
 * True iff <nbconn> connections fill the bind: `l->maxconn && l->nbconn >= l->maxconn` (a bind
 * with no maxconn of its own is never full). Pure.
 */
export function bindFull(config: ModelConfig, nbconn: number): boolean {
  return config.bindMaxconn !== null && nbconn >= config.bindMaxconn;
}

/**
 * Returns the handshake deadline in ms that session_accept arms for an embryonic session, or null
 * when there is none (TICK_ETERNITY: the session never expires).
 * dev12 and 2.6: `timeout client` (2542b53b1: tick_add_ifset(now_ms, p->timeout.client)).
 * 2.9: `timeout client-hs` when set, else `timeout client` (b33eacc52, 888d1dc3d: `hs_tmt ? hs_tmt
 * : clt_tmt`). A timeout of 0 is unset in every profile: HAProxy stores `timeout X 0` as the tick
 * 0, which tick_add_ifset turns into TICK_ETERNITY, and 2.9 falls back to `timeout client` past a
 * client-hs of 0. Pure.
 */
export function handshakeTimeout(config: ModelConfig): number | null {
  if (config.profile === '2.9' && config.timeoutClientHs) return config.timeoutClientHs;
  return config.timeoutClient || null;
}

/** True iff an accepted connection has a handshake to run: CO_FL_HANDSHAKE is set at accept. */
export function hasHandshake(config: ModelConfig): boolean {
  return config.acceptProxy || config.ssl;
}

/**
 * True iff `sslconns` live SSL contexts already reach the configured `maxsslconn`, so that
 * ssl_sock_init refuses a new one: `global.maxsslconn && sslconns >= global.maxsslconn` (1.5-dev12
 * and 2.x alike; 2.x also sets CO_ER_SSL_TOO_MANY, which nothing logs). A raw transport has no
 * SSL init to refuse. Pure.
 */
export function sslLimitReached(config: ModelConfig, sslconns: number): boolean {
  return config.ssl && !!config.maxsslconn && sslconns >= config.maxsslconn;
}

/**
 * True iff a 500 may be written on a critical accept error: HTTP mode on a raw transport
 * (cbaaec475: `l->data == &raw_sock`). In every profile; 2.6 sends nothing all the same, since its
 * failed direct completion returns 0 (the session machine's `setRet`), not the -1 that answers it.
 */
export function answers500(config: ModelConfig): boolean {
  return config.mode === 'http' && !config.ssl;
}

/**
 * Returns the configuration a machine's context is built from: `input.config`, or DEFAULT_CONFIG
 * when the actor has no input. Every actor this project creates gets an input; the ones without
 * are the throwaway actors XState's pure transition helpers build (getMicrosteps, the oracle of
 * the composition's tests, creates one per call and never reads its snapshot): without this
 * fallback their context factory would throw. Pure.
 */
export function configOf(input: { config: ModelConfig } | undefined): ModelConfig {
  return input === undefined ? DEFAULT_CONFIG : input.config;
}
