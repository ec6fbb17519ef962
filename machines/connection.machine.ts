/**
 * The connection lifecycle of an accepted socket, from the listen backlog to the close.
 *
 * HAProxy has no such state variable: a connection's state is a set of flags (CO_FL_ACCEPT_PROXY,
 * CO_FL_SSL_WAIT_HS, CO_FL_ERROR, CO_FL_INIT_SESS, ...) that each handshake handler clears when it
 * succeeds (include/types/connection.h, src/connection.c conn_fd_handler). This machine makes that
 * set explicit. Handshakes run in HAProxy's order, PROXY header then TLS, and one error code is kept:
 * the first one set wins (in 1.5-dev15 a connection meets one failure; the later sites, ssl_sock's
 * fallback and kill_mini_session's timeout code, test !conn->err_code first).
 *
 * The machine only decides. Its effects (machines/effects.ts) go to the host, and its messages
 * (handshakeEnded) go to the session machine of the same connection.
 */
import { assign, setup } from 'xstate';
import { configOf, hasHandshake, type ModelConfig } from './config.ts';
import type { ErrCode, ProxyFailCode, SslErrCode } from './errCodes.ts';
import { hostEffects } from './effects.ts';

/** Context of one connection. */
export interface ConnectionContext {
  config: ModelConfig; //   the frontend's configuration (never changes)
  errCode: ErrCode | null; // conn->err_code; null = CO_ER_NONE. Set once: the first code wins
}

/**
 * What a client had sent of its TLS handshake when it closed or reset it, which picks the SSL code
 * (ssl_sock_handshake on SSL_ERROR_SYSCALL): 'none', no TLS byte; 'partialRecord', part of a TLS
 * record (of its ClientHello, in practice) and not the rest; 'wholeRecords', whole records only: its
 * first handshake record was read and processed. Always 'none' before the TLS handshake starts.
 */
export type TlsRead = 'none' | 'partialRecord' | 'wholeRecords';

/** Events the connection machine accepts. "from" names who sends it. */
export type ConnectionEvent =
  | { type: 'ACCEPT' } //                                    from the listener: accept() returned this fd
  | { type: 'START_HANDSHAKE' } //                           from the session: handshake flags set at accept
  | { type: 'NO_HANDSHAKE' } //                              from the session: nothing to wait for
  | { type: 'PROXY_HEADER_OK' } //                           from I/O: a valid PROXY header was consumed
  | { type: 'PROXY_HEADER_ERROR'; code: ProxyFailCode } //   from I/O: the parser's error code (NONE: none set)
  | { type: 'TLS_OK' } //                                    from I/O: the TLS handshake completed
  | { type: 'TLS_ERROR'; code: SslErrCode } //               from I/O: the TLS handshake failed
  | { type: 'CLIENT_CLOSE'; tlsRead: TlsRead } //            from I/O: the client closed (recv() == 0)
  | { type: 'CLIENT_RESET'; tlsRead: TlsRead } //            from I/O: the client reset (recv() < 0)
  | { type: 'TIMEOUT' } //                                   from the session: its handshake deadline struck
  | { type: 'CLOSE' }; //                                    from the session: conn_full_close

/**
 * PROXY errors that leave bytes the parser did not consume in the socket. HAProxy peeks the header
 * (MSG_PEEK) and closes without reading them, so the kernel answers with an RST; an empty or
 * aborted read or a timeout leaves nothing unread, and the close is a FIN (haproxy-2.6-observed.md).
 * A failure without a code (NONE: a TLV that cannot be stored) comes after a whole header was
 * peeked too.
 */
const UNREAD_BYTES_CODES: readonly ErrCode[] = [
  'PRX_TRUNCATED',
  'PRX_NOT_HDR',
  'PRX_BAD_HDR',
  'PRX_BAD_PROTO',
  'NONE',
];

/**
 * True iff the PROXY reader of `config`'s HAProxy can fail with `code`: NONE (no code set) only in
 * 2.x, whose reader stores TLVs (a value over 1024 bytes in 2.9, an allocation failure); 1.5-dev
 * has no PROXY v2 at all. The environment offers the machines no other. Pure.
 */
export function proxyFailReachable(config: ModelConfig, code: ProxyFailCode): boolean {
  return code !== 'NONE' || config.profile !== 'dev12';
}

/**
 * The handshakeEnded effects, which conn_fd_handler's call of conn_session_complete stands for: the
 * session learns whether CO_FL_ERROR is set and the connection's err_code (NONE without an error),
 * which kill_mini_session's dontlognull test reads. Listed after the assign that sets the code.
 */
const ENDED = { type: 'handshakeEnded', params: { error: false, code: 'NONE' } } as const;
const ENDED_IN_ERROR = {
  type: 'handshakeEnded',
  params: ({ context }: { context: ConnectionContext }) => ({
    error: true,
    code: context.errCode ?? 'NONE',
  }),
} as const;

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as { config: ModelConfig },
  },
  actions: {
    ...hostEffects([
      'handshakeEnded',
      'setNoLinger',
      'recvProxyHeader',
      'startTlsHandshake',
      'sslCtxFree',
      'sslconnsDec',
    ]),
    setErrCode: assign({
      errCode: ({ context }, params: { code: ErrCode }) => context.errCode ?? params.code,
    }),
    setErrCodeFromEvent: assign({
      // A reader that fails without a code (NONE) leaves err_code unset: CO_ER_NONE, null here.
      errCode: ({ context, event }) =>
        context.errCode ??
        ((event.type === 'PROXY_HEADER_ERROR' || event.type === 'TLS_ERROR') && event.code !== 'NONE'
          ? event.code
          : null),
    }),
  },
  guards: {
    acceptProxy: ({ context }) => context.config.acceptProxy,
    ssl: ({ context }) => context.config.ssl,
    noHandshakeConfigured: ({ context }) => !hasHandshake(context.config),
    // ssl_sock_handshake, SSL_ERROR_SYSCALL: SSL_EMPTY (recv 0) or SSL_ABORT (recv < 0) for an
    // "empty" handshake, else SSL_HANDSHAKE (20879a023). Empty, with the OpenSSL 1.0 of 1.5-dev:
    // no record partly read (!packet_length); with OpenSSL >= 1.1 (2.6 and later): no handshake
    // record processed yet (SSL_get_state() == TLS_ST_BEFORE). From 2.4 (0630038e7),
    // ssl_sock_handshake first reads the socket's SO_ERROR and fails a connection with an error
    // pending before OpenSSL runs, with CO_ER_SSL_HANDSHAKE: every reset during TLS is
    // SSL_HANDSHAKE in 2.6 and later (measured on 2.6.12).
    tlsHandshakeNotEmpty: ({ context, event }) =>
      context.config.profile === 'dev12'
        ? (event.type === 'CLIENT_CLOSE' || event.type === 'CLIENT_RESET') &&
          event.tlsRead === 'partialRecord'
        : event.type === 'CLIENT_RESET' ||
          (event.type === 'CLIENT_CLOSE' && event.tlsRead === 'wholeRecords'),
    errorLeavesUnreadBytes: ({ event }) =>
      event.type === 'PROXY_HEADER_ERROR' && UNREAD_BYTES_CODES.includes(event.code),
  },
}).createMachine({
  id: 'connection',
  description:
    'One accepted socket: its pending handshakes (CO_FL_ACCEPT_PROXY, then CO_FL_SSL_WAIT_HS), its error (CO_FL_ERROR + err_code) and its close.',
  meta: { haproxy: 'struct connection; src/connection.c conn_fd_handler' },
  context: ({ input }) => ({ config: configOf(input), errCode: null }),
  initial: 'pending',
  states: {
    pending: {
      description:
        'The kernel completed the TCP handshake and holds the connection in the listen backlog until listener_accept calls accept().',
      meta: { haproxy: 'listen(2) backlog; listener_accept', impl: 'serverOnConnection' },
      on: {
        ACCEPT: {
          target: 'accepted',
          description: 'listener_accept took the connection out of the backlog: it now has an fd.',
          meta: { haproxy: 'listener_accept: accept()', impl: 'drainBacklog' },
        },
      },
    },
    accepted: {
      description:
        'The fd exists with CO_FL_NONE: the control layer is set and tcp-request connection rules see the real addresses. No handshake flag is set yet.',
      meta: { haproxy: 'session_accept: s->si[0].conn.flags = CO_FL_NONE', impl: 'drainBacklog' },
      on: {
        START_HANDSHAKE: [
          {
            guard: 'acceptProxy',
            target: 'handshake.proxyHeader',
            description:
              'accept-proxy: CO_FL_ACCEPT_PROXY is set after the tcp-request rules; the PROXY header comes first.',
            meta: {
              haproxy: 'session_accept: conn.flags |= CO_FL_ACCEPT_PROXY (22cda21ad)',
              impl: 'drainBacklog',
            },
          },
          {
            guard: 'ssl',
            target: 'handshake.tls',
            description: 'ssl without accept-proxy: conn_data_init (ssl_sock_init) sets CO_FL_SSL_WAIT_HS.',
            meta: { haproxy: 'ssl_sock_init: CO_FL_SSL_WAIT_HS (7dd0e505c)', impl: 'drainBacklog' },
          },
        ],
        NO_HANDSHAKE: {
          guard: 'noHandshakeConfigured',
          target: 'ready',
          description:
            'No handshake flag (neither accept-proxy nor ssl on the bind): the data layer is ready at once and the session completes in session_accept.',
          meta: { haproxy: 'session_accept → session_complete', impl: 'drainBacklog' },
        },
        CLOSE: {
          target: 'closed',
          description:
            'Closed by session_accept before any handshake: tcp-request reject, monitor, or a setup failure.',
          meta: { haproxy: 'session_accept out_close: fd_delete / close', impl: 'Frontend.closeClient' },
        },
      },
    },
    handshake: {
      description:
        'CO_FL_HANDSHAKE is set: the connection waits for its handshakes, in HAProxy order, under the single deadline of its embryonic session. Each handler clears its own flag only on success (d1b3f0498).',
      meta: { haproxy: 'conn_fd_handler process_handshake loop', impl: 'readProxyHeader' },
      initial: 'proxyHeader',
      states: {
        proxyHeader: {
          description: 'CO_FL_ACCEPT_PROXY: waiting for the PROXY protocol header.',
          meta: { haproxy: 'conn_recv_proxy', impl: 'readProxyHeader' },
          entry: ['recvProxyHeader'],
          on: {
            PROXY_HEADER_OK: [
              {
                guard: 'ssl',
                target: 'tls',
                description:
                  'The header was consumed and CO_FL_ACCEPT_PROXY cleared; the TLS handshake is next.',
                meta: { haproxy: 'conn_recv_proxy: conn->flags &= ~flag', impl: 'socketOnHeaderData' },
              },
              {
                target: '#connection.ready',
                actions: [ENDED],
                description:
                  'The header was consumed and it was the last handshake: the embryonic session is completed in the same callback.',
                meta: {
                  haproxy: 'conn_recv_proxy; conn_fd_handler → conn_session_complete',
                  impl: 'socketOnHeaderData',
                },
              },
            ],
            PROXY_HEADER_ERROR: [
              {
                guard: 'errorLeavesUnreadBytes',
                target: '#connection.error',
                actions: ['setErrCodeFromEvent', 'setNoLinger', ENDED_IN_ERROR],
                description:
                  "Malformed, truncated or foreign bytes, or (2.x) a TLV that cannot be stored: CO_FL_ERROR with the parser's code, or none (NONE). The peeked bytes stay unread, so the close will be an RST.",
                meta: {
                  haproxy: 'conn_recv_proxy fail: (8e3bf699d codes); conn_fd_handler leave → kill',
                  impl: 'socketOnHeaderData, socketOnHeaderEnd',
                },
              },
              {
                target: '#connection.error',
                actions: ['setErrCodeFromEvent', ENDED_IN_ERROR],
                description: "A read error with nothing unread: CO_FL_ERROR with the parser's code.",
                meta: { haproxy: 'conn_recv_proxy fail', impl: 'socketOnHeaderData' },
              },
            ],
            CLIENT_CLOSE: {
              target: '#connection.error',
              actions: [{ type: 'setErrCode', params: { code: 'PRX_EMPTY' } }, ENDED_IN_ERROR],
              description: 'The client closed before sending a header: recv() returned 0.',
              meta: { haproxy: 'conn_recv_proxy: CO_ER_PRX_EMPTY', impl: 'socketOnHeaderEnd' },
            },
            CLIENT_RESET: {
              target: '#connection.error',
              actions: [{ type: 'setErrCode', params: { code: 'PRX_ABORT' } }, ENDED_IN_ERROR],
              description: 'The client reset the connection while the header was awaited: recv() < 0.',
              meta: { haproxy: 'conn_recv_proxy: CO_ER_PRX_ABORT', impl: 'socketOnHeaderError' },
            },
            TIMEOUT: {
              target: '#connection.error',
              actions: [{ type: 'setErrCode', params: { code: 'PRX_TIMEOUT' } }],
              description:
                'The deadline struck while CO_FL_ACCEPT_PROXY was still set: the timeout is a PROXY timeout.',
              meta: { haproxy: 'kill_mini_session: CO_ER_PRX_TIMEOUT (0af2912fd)', impl: 'timerOnExpire' },
            },
          },
        },
        tls: {
          description: 'CO_FL_SSL_WAIT_HS: the TLS handshake runs (after the PROXY header, if any).',
          meta: { haproxy: 'ssl_sock_handshake while CO_FL_SSL_WAIT_HS is set', impl: 'startTlsHandshake' },
          entry: ['startTlsHandshake'],
          on: {
            TLS_OK: {
              target: '#connection.ready',
              actions: [ENDED],
              description:
                'The TLS handshake completed and CO_FL_SSL_WAIT_HS cleared: the embryonic session is completed.',
              meta: {
                haproxy: 'ssl_sock_handshake; conn_fd_handler → conn_session_complete',
                impl: 'tlsOnSecure',
              },
            },
            TLS_ERROR: {
              target: '#connection.error',
              actions: ['setErrCodeFromEvent', ENDED_IN_ERROR],
              description:
                'The TLS handshake failed: CO_FL_ERROR with an SSL code. The close is a FIN: the socket is drained of what OpenSSL left unread before it is closed (ssl_sock_handshake, 566dc5545 in 1.5-dev13; before it, unread bytes made the close an RST).',
              meta: {
                haproxy: 'ssl_sock_handshake: CO_FL_ERROR, CO_ER_SSL_HANDSHAKE (20879a023)',
                impl: 'tlsOnError',
              },
            },
            CLIENT_CLOSE: [
              {
                guard: 'tlsHandshakeNotEmpty',
                target: '#connection.error',
                actions: [{ type: 'setErrCode', params: { code: 'SSL_HANDSHAKE' } }, ENDED_IN_ERROR],
                description:
                  'The client closed a TLS handshake that was not empty: SSL_HANDSHAKE. In 1.5-dev (OpenSSL 1.0) that is when it closed within a record; in 2.6 (OpenSSL 1.1 and later) once its ClientHello had been processed.',
                meta: {
                  haproxy:
                    'ssl_sock_handshake: CO_FL_ERROR, SSL_ERROR_SYSCALL with packet_length != 0 (2.6: state != TLS_ST_BEFORE) → CO_ER_SSL_HANDSHAKE (20879a023)',
                  impl: 'tlsOnEnd',
                },
              },
              {
                target: '#connection.error',
                actions: [{ type: 'setErrCode', params: { code: 'SSL_EMPTY' } }, ENDED_IN_ERROR],
                description:
                  'The client closed during the TLS handshake, its handshake empty (1.5-dev: no record left half read; 2.6: no ClientHello processed).',
                meta: {
                  haproxy:
                    'ssl_sock_handshake: CO_FL_ERROR, SSL_ERROR_SYSCALL, errno 0 → CO_ER_SSL_EMPTY (20879a023)',
                  impl: 'tlsOnEnd',
                },
              },
            ],
            CLIENT_RESET: [
              {
                guard: 'tlsHandshakeNotEmpty',
                target: '#connection.error',
                actions: [{ type: 'setErrCode', params: { code: 'SSL_HANDSHAKE' } }, ENDED_IN_ERROR],
                description:
                  'The client reset a TLS handshake that was not empty (1.5-dev: within a record), or any TLS handshake in 2.6 (the SO_ERROR check of 0630038e7 fails a reset connection before OpenSSL runs): SSL_HANDSHAKE.',
                meta: {
                  haproxy:
                    'ssl_sock_handshake: CO_FL_ERROR, SSL_ERROR_SYSCALL with packet_length != 0 → CO_ER_SSL_HANDSHAKE (20879a023); 2.6: SO_ERROR set → out_error → CO_ER_SSL_HANDSHAKE (0630038e7)',
                  impl: 'tlsOnError',
                },
              },
              {
                target: '#connection.error',
                actions: [{ type: 'setErrCode', params: { code: 'SSL_ABORT' } }, ENDED_IN_ERROR],
                description:
                  'The client reset the connection during the TLS handshake, its handshake empty (1.5-dev only: in 2.6 every reset is SSL_HANDSHAKE).',
                meta: {
                  haproxy:
                    'ssl_sock_handshake: CO_FL_ERROR, SSL_ERROR_SYSCALL, errno set → CO_ER_SSL_ABORT (20879a023)',
                  impl: 'tlsOnError',
                },
              },
            ],
            TIMEOUT: {
              target: '#connection.error',
              actions: [{ type: 'setErrCode', params: { code: 'SSL_TIMEOUT' } }],
              description:
                'The deadline struck while CO_FL_SSL_WAIT_HS was still set: the timeout is an SSL timeout.',
              meta: { haproxy: 'kill_mini_session: CO_ER_SSL_TIMEOUT (0af2912fd)', impl: 'timerOnExpire' },
            },
          },
        },
      },
    },
    ready: {
      description:
        'Every handshake flag is clear (CO_FL_CONNECTED): the data layer runs for the initialized session.',
      meta: { haproxy: 'conn_fd_handler: data recv/send (58363cf19)', impl: 'streamStart' },
      on: {
        CLOSE: [
          {
            guard: 'ssl',
            target: 'closed',
            actions: ['sslCtxFree', 'sslconnsDec'],
            description:
              'The session closed a TLS connection (end of stream, or a failed completion): the data layer frees its SSL context and sslconns drops.',
            meta: {
              haproxy:
                'conn_data_close → ssl_sock_close: SSL_free, sslconns-- (at the end of the stream: stream_int shutr/shutw; 2.x: conn_full_close → conn_xprt_close)',
              impl: 'Frontend.closeClient',
            },
          },
          {
            target: 'closed',
            description: 'The session closed the connection: end of stream, or a failed completion.',
            meta: { haproxy: 'conn_full_close (2b199c9ac)', impl: 'Frontend.closeClient' },
          },
        ],
      },
    },
    error: {
      description:
        'CO_FL_ERROR is set with its err_code. No data-layer call happens any more (58363cf19); the session kills itself in the same callback.',
      meta: { haproxy: 'CO_FL_ERROR; conn->err_code (14cba4b0b)', impl: 'Frontend.closeClient' },
      on: {
        CLOSE: [
          {
            guard: 'ssl',
            target: 'closed',
            actions: ['sslCtxFree', 'sslconnsDec'],
            description:
              'kill_mini_session closed the failed TLS connection: its SSL context, created at accept, is freed and sslconns drops.',
            meta: {
              haproxy:
                'kill_mini_session: conn_data_close → ssl_sock_close: SSL_free, sslconns-- (2.x: conn_full_close → conn_xprt_close)',
              impl: 'Frontend.closeClient',
            },
          },
          {
            target: 'closed',
            description: 'kill_mini_session closed the failed connection.',
            meta: { haproxy: 'kill_mini_session: conn_full_close', impl: 'Frontend.closeClient' },
          },
        ],
      },
    },
    closed: {
      type: 'final',
      description: 'The transport and control layers are closed; the fd is no longer in fdtab.',
      meta: { haproxy: 'conn_full_close / fd_delete', impl: 'Frontend.closeClient' },
    },
  },
});
