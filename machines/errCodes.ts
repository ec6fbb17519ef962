/**
 * Connection error codes, one per reason an embryonic connection can die.
 *
 * The names are HAProxy's `CO_ER_*` codes without the prefix (include/types/connection.h,
 * 8e3bf699d for PRX_*, 20879a023 for SSL_*), so a porter can grep both trees for the same word.
 * The message of each code is the one HAProxy logs for it (conn_err_code_str(), an inline function
 * of include/proto/connection.h in 1.5-dev15).
 * The set is closed: every error event of the connection machine carries one of these codes, and
 * the first code set on a connection wins. In 1.5-dev15 that holds without a helper: the handshake
 * that fails sets err_code with CO_FL_ERROR, which ends the handshake, so no other reader runs:
 * conn_recv_proxy (src/connection.c) and the SSL_ERROR_SYSCALL case after SSL_do_handshake
 * (src/ssl_sock.c) assign the code outright, and the sites that can come later test
 * `!conn->err_code` first (ssl_sock_handshake's fallback to CO_ER_SSL_HANDSHAKE, kill_mini_session's
 * PRX_TIMEOUT / SSL_TIMEOUT in src/session.c). conn_set_errcode, which sets a code only when none
 * is set, came much later (00c383ff6, 3.1-dev12).
 */
export const ERR_CODES = {
  NONE: 'Success',
  PRX_EMPTY: 'Connection closed while waiting for PROXY protocol header',
  PRX_ABORT: 'Connection error while waiting for PROXY protocol header',
  PRX_TIMEOUT: 'Timeout while waiting for PROXY protocol header',
  PRX_TRUNCATED: 'Truncated PROXY protocol header received',
  PRX_NOT_HDR: 'Received something which does not look like a PROXY protocol header',
  PRX_BAD_HDR: 'Received an invalid PROXY protocol header',
  PRX_BAD_PROTO: 'Received an unhandled protocol in the PROXY protocol header',
  SSL_EMPTY: 'Connection closed during SSL handshake',
  SSL_ABORT: 'Connection error during SSL handshake',
  SSL_TIMEOUT: 'Timeout during SSL handshake',
  SSL_TOO_MANY: 'Too many SSL connections',
  SSL_NO_MEM: 'Out of memory when initializing an SSL connection',
  SSL_RENEG: 'Rejected a client-initiated SSL renegociation attempt',
  SSL_CA_FAIL: 'SSL client CA chain cannot be verified',
  SSL_CRT_FAIL: 'SSL client certificate not trusted',
  SSL_HANDSHAKE: 'SSL handshake failure',
} as const;

/** One connection error code (HAProxy's `CO_ER_<code>`). */
export type ErrCode = keyof typeof ERR_CODES;

/** The codes a PROXY header reader can end with (CO_ER_PRX_*). */
export type ProxyErrCode = Extract<ErrCode, `PRX_${string}`>;

/**
 * What conn_recv_proxy can fail with: a CO_ER_PRX_* code, or NONE when it fails without setting
 * one (its `fail` label, reached in 2.x when a TLV cannot be stored: in 2.9 a generic TLV value
 * over HA_PP2_MAX_ALLOC, 1024 bytes, fecc573da; an allocation that fails).
 */
export type ProxyFailCode = ProxyErrCode | 'NONE';

/** The codes a TLS handshake can end with (CO_ER_SSL_*). */
export type SslErrCode = Extract<ErrCode, `SSL_${string}`>;

/**
 * Returns the log message HAProxy prints for `code`.
 * Pure; total over ErrCode.
 */
export function errCodeMessage(code: ErrCode): string {
  return ERR_CODES[code];
}

/**
 * Codes that `option dontlognull` hides from the log (src/session.c, 8e3bf699d and 20879a023):
 * a connection that sent nothing, or was aborted before sending anything, is not worth a line.
 */
export const DONTLOGNULL_CODES: readonly ErrCode[] = [
  'NONE',
  'PRX_EMPTY',
  'PRX_ABORT',
  'SSL_EMPTY',
  'SSL_ABORT',
];
