/**
 * Connection error codes, one per reason an embryonic connection can die.
 *
 * The names are HAProxy's `CO_ER_*` codes without the prefix (include/types/connection.h,
 * 8e3bf699d for PRX_*, 20879a023 for SSL_*), so a porter can grep both trees for the same word.
 * The message of each code is the one HAProxy logs for it (src/connection.c conn_err_code_str()).
 * The set is closed: every error event of the connection machine carries one of these codes, and
 * the first code set on a connection wins (see `conn_set_errcode`).
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
  SSL_RENEG: 'Rejected a client-initiated SSL renegotiation attempt',
  SSL_CA_FAIL: 'SSL client CA chain cannot be verified',
  SSL_CRT_FAIL: 'SSL client certificate not trusted',
  SSL_HANDSHAKE: 'SSL handshake failure',
} as const;

/** One connection error code (HAProxy's `CO_ER_<code>`). */
export type ErrCode = keyof typeof ERR_CODES;

/** The codes a PROXY header reader can end with (CO_ER_PRX_*). */
export type ProxyErrCode = Extract<ErrCode, `PRX_${string}`>;

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
