/**
 * One example per transition of the connection machine, driven standalone through MachineRunner.
 * Each case reaches its source state through real events from `pending`, then takes one step and
 * checks the transition id, the target state, the exact effects and the err_code kept.
 *
 * The expectations come from haproxy-history.md: conn_recv_proxy's codes (§6: recv == 0 →
 * PRX_EMPTY, recv < 0 → PRX_ABORT), the order of the handshakes (PROXY header, then TLS), the
 * timeout code named by the pending flag (0af2912fd, I11), the kill in the same callback (I10).
 */
import { describe, expect, it } from 'vitest';
import { MACHINES } from '../../machines/compose.ts';
import { makeConfig, type ModelConfig } from '../../machines/config.ts';
import { proxyFailReachable, type ConnectionEvent } from '../../machines/connection.machine.ts';
import type { Effect } from '../../machines/effects.ts';
import type { ErrCode, ProxyFailCode } from '../../machines/errCodes.ts';
import { listTransitions } from '../../machines/introspect.ts';
import { drive, sourceOf } from './drive.ts';

/** One example: the transition under test, how its source is reached, and what it must do. */
interface Case {
  transition: string; //                the id under test ('<source>|<event>|<rank>')
  says: string; //                      the behaviour, as the test's name
  config: Partial<ModelConfig>; //      on top of DEFAULT_CONFIG
  path: ConnectionEvent[]; //           events that reach the source state from `pending`
  event: ConnectionEvent; //            the event under test
  target: string; //                    the dotted state after the step
  effects: Effect[]; //                 the effects, in order, with their params
  errCode: ErrCode | null; //           conn->err_code after the step
}

const PROXY: Partial<ModelConfig> = { acceptProxy: true, ssl: false };
const TLS: Partial<ModelConfig> = { acceptProxy: false, ssl: true };
const PROXY_TLS: Partial<ModelConfig> = { acceptProxy: true, ssl: true };
const PLAIN: Partial<ModelConfig> = { acceptProxy: false, ssl: false };

const ACCEPT: ConnectionEvent = { type: 'ACCEPT' };
const START: ConnectionEvent = { type: 'START_HANDSHAKE' };
const AT_PROXY_HEADER: ConnectionEvent[] = [ACCEPT, START];
const AT_TLS_AFTER_PROXY: ConnectionEvent[] = [ACCEPT, START, { type: 'PROXY_HEADER_OK' }];

const ended = (error: boolean, code: ErrCode = 'NONE'): Effect => ({
  type: 'handshakeEnded',
  params: { error, code },
});

const CASES: Case[] = [
  // --- pending ---
  {
    transition: 'connection.pending|ACCEPT|0',
    says: 'leaves the listen backlog with an fd and no handshake flag when listener_accept accepts it',
    config: PROXY,
    path: [],
    event: ACCEPT,
    target: 'accepted',
    effects: [],
    errCode: null,
  },
  // --- accepted ---
  {
    transition: 'connection.accepted|START_HANDSHAKE|0',
    says: 'waits for the PROXY header first when accept-proxy is set, and starts reading it',
    config: PROXY_TLS,
    path: [ACCEPT],
    event: START,
    target: 'handshake.proxyHeader',
    effects: [{ type: 'recvProxyHeader' }],
    errCode: null,
  },
  {
    transition: 'connection.accepted|START_HANDSHAKE|1',
    says: 'starts the TLS handshake at once on an ssl bind without accept-proxy',
    config: TLS,
    path: [ACCEPT],
    event: START,
    target: 'handshake.tls',
    effects: [{ type: 'startTlsHandshake' }],
    errCode: null,
  },
  {
    transition: 'connection.accepted|NO_HANDSHAKE|0',
    says: 'makes the data layer ready at once when no handshake is pending',
    config: PLAIN,
    path: [ACCEPT],
    event: { type: 'NO_HANDSHAKE' },
    target: 'ready',
    effects: [],
    errCode: null,
  },
  {
    transition: 'connection.accepted|CLOSE|0',
    says: 'closes before any handshake when session_accept gives up on it',
    config: PROXY,
    path: [ACCEPT],
    event: { type: 'CLOSE' },
    target: 'closed',
    effects: [],
    errCode: null,
  },
  // --- handshake.proxyHeader ---
  {
    transition: 'connection.handshake.proxyHeader|PROXY_HEADER_OK|0',
    says: 'moves on to the TLS handshake after a valid PROXY header on an ssl bind, without ending the handshake',
    config: PROXY_TLS,
    path: AT_PROXY_HEADER,
    event: { type: 'PROXY_HEADER_OK' },
    target: 'handshake.tls',
    effects: [{ type: 'startTlsHandshake' }],
    errCode: null,
  },
  {
    transition: 'connection.handshake.proxyHeader|PROXY_HEADER_OK|1',
    says: 'ends the handshake without error when the PROXY header was the last one',
    config: PROXY,
    path: AT_PROXY_HEADER,
    event: { type: 'PROXY_HEADER_OK' },
    target: 'ready',
    effects: [ended(false)],
    errCode: null,
  },
  {
    transition: 'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|0',
    says: "fails with the parser's code and closes with an RST when a malformed header leaves bytes unread",
    config: PROXY,
    path: AT_PROXY_HEADER,
    event: { type: 'PROXY_HEADER_ERROR', code: 'PRX_BAD_HDR' },
    target: 'error',
    effects: [{ type: 'setNoLinger' }, ended(true, 'PRX_BAD_HDR')],
    errCode: 'PRX_BAD_HDR',
  },
  {
    transition: 'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|0',
    says: 'fails without setting err_code, and closes with an RST, when the reader cannot store a TLV (2.9: a value over 1024 bytes)',
    config: { ...PROXY, profile: '2.9' },
    path: AT_PROXY_HEADER,
    event: { type: 'PROXY_HEADER_ERROR', code: 'NONE' },
    target: 'error',
    effects: [{ type: 'setNoLinger' }, ended(true, 'NONE')],
    errCode: null,
  },
  {
    transition: 'connection.handshake.proxyHeader|PROXY_HEADER_ERROR|1',
    says: "fails with the parser's code and a plain close when the read error leaves nothing unread",
    config: PROXY,
    path: AT_PROXY_HEADER,
    event: { type: 'PROXY_HEADER_ERROR', code: 'PRX_ABORT' },
    target: 'error',
    effects: [ended(true, 'PRX_ABORT')],
    errCode: 'PRX_ABORT',
  },
  {
    transition: 'connection.handshake.proxyHeader|CLIENT_CLOSE|0',
    says: 'fails with PRX_EMPTY when the client closes before sending a PROXY header',
    config: PROXY,
    path: AT_PROXY_HEADER,
    event: { type: 'CLIENT_CLOSE', tlsRead: 'none' },
    target: 'error',
    effects: [ended(true, 'PRX_EMPTY')],
    errCode: 'PRX_EMPTY',
  },
  {
    transition: 'connection.handshake.proxyHeader|CLIENT_RESET|0',
    says: 'fails with PRX_ABORT when the client resets while the PROXY header is awaited',
    config: PROXY,
    path: AT_PROXY_HEADER,
    event: { type: 'CLIENT_RESET', tlsRead: 'none' },
    target: 'error',
    effects: [ended(true, 'PRX_ABORT')],
    errCode: 'PRX_ABORT',
  },
  {
    transition: 'connection.handshake.proxyHeader|TIMEOUT|0',
    says: 'names the timeout PRX_TIMEOUT when the deadline strikes while the PROXY header is pending, without telling the session back',
    config: PROXY_TLS,
    path: AT_PROXY_HEADER,
    event: { type: 'TIMEOUT' },
    target: 'error',
    effects: [],
    errCode: 'PRX_TIMEOUT',
  },
  // --- handshake.tls ---
  {
    transition: 'connection.handshake.tls|TLS_OK|0',
    says: 'ends the handshake without error when the TLS handshake completes',
    config: TLS,
    path: [ACCEPT, START],
    event: { type: 'TLS_OK' },
    target: 'ready',
    effects: [ended(false)],
    errCode: null,
  },
  {
    transition: 'connection.handshake.tls|TLS_ERROR|0',
    says: 'fails with the SSL code and a plain close when the TLS handshake fails',
    config: PROXY_TLS,
    path: AT_TLS_AFTER_PROXY,
    event: { type: 'TLS_ERROR', code: 'SSL_HANDSHAKE' },
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE',
  },
  {
    transition: 'connection.handshake.tls|CLIENT_CLOSE|0',
    says: 'fails with SSL_HANDSHAKE when the client closes within a TLS record (1.5-dev: packet_length != 0)',
    config: TLS,
    path: [ACCEPT, START],
    event: { type: 'CLIENT_CLOSE', tlsRead: 'partialRecord' },
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE',
  },
  {
    transition: 'connection.handshake.tls|CLIENT_CLOSE|0',
    says: 'fails with SSL_HANDSHAKE in 2.6 when the client closes after its ClientHello was processed',
    config: { ...TLS, profile: '2.6' },
    path: [ACCEPT, START],
    event: { type: 'CLIENT_CLOSE', tlsRead: 'wholeRecords' },
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE',
  },
  ...(
    [
      ['dev12', 'none', 'having sent nothing of it'],
      ['dev12', 'wholeRecords', 'between records (1.5-dev: packet_length == 0)'],
      ['2.6', 'none', 'having sent nothing of it'],
      ['2.6', 'partialRecord', 'before its first handshake record was processed (2.6: TLS_ST_BEFORE)'],
      ['2.9', 'partialRecord', 'before its first handshake record was processed (2.9: TLS_ST_BEFORE)'],
    ] as const
  ).map(([profile, tlsRead, why]) => ({
    transition: 'connection.handshake.tls|CLIENT_CLOSE|1',
    says: `fails with SSL_EMPTY in ${profile} when the client closes the TLS handshake ${why}`,
    config: { ...TLS, profile },
    path: [ACCEPT, START],
    event: { type: 'CLIENT_CLOSE', tlsRead } as const,
    target: 'error',
    effects: [ended(true, 'SSL_EMPTY')],
    errCode: 'SSL_EMPTY' as const,
  })),
  ...(
    [
      ['none', 'having sent nothing of it'],
      ['wholeRecords', 'between records (1.5-dev: packet_length == 0)'],
    ] as const
  ).map(([tlsRead, why]) => ({
    transition: 'connection.handshake.tls|CLIENT_RESET|1',
    says: `fails with SSL_ABORT in dev12 when the client resets the TLS handshake ${why}`,
    config: TLS,
    path: [ACCEPT, START],
    event: { type: 'CLIENT_RESET', tlsRead } as const,
    target: 'error',
    effects: [ended(true, 'SSL_ABORT')],
    errCode: 'SSL_ABORT' as const,
  })),
  {
    transition: 'connection.handshake.tls|CLIENT_CLOSE|0',
    says: 'fails with SSL_HANDSHAKE in 2.9 when the client closes after its first handshake record was processed',
    config: { ...TLS, profile: '2.9' },
    path: [ACCEPT, START],
    event: { type: 'CLIENT_CLOSE', tlsRead: 'wholeRecords' },
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE',
  },
  ...(['none', 'partialRecord', 'wholeRecords'] as const).map((tlsRead) => ({
    transition: 'connection.handshake.tls|CLIENT_RESET|0',
    says: `fails with SSL_HANDSHAKE in 2.6 on any reset during TLS (the SO_ERROR check of 0630038e7), here with tlsRead ${tlsRead}`,
    config: { ...TLS, profile: '2.6' as const },
    path: [ACCEPT, START],
    event: { type: 'CLIENT_RESET', tlsRead } as const,
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE' as const,
  })),
  {
    transition: 'connection.handshake.tls|CLIENT_RESET|0',
    says: 'fails with SSL_HANDSHAKE when the client resets within a TLS record (1.5-dev)',
    config: TLS,
    path: [ACCEPT, START],
    event: { type: 'CLIENT_RESET', tlsRead: 'partialRecord' },
    target: 'error',
    effects: [ended(true, 'SSL_HANDSHAKE')],
    errCode: 'SSL_HANDSHAKE',
  },
  {
    transition: 'connection.handshake.tls|TIMEOUT|0',
    says: 'names the timeout SSL_TIMEOUT when the deadline strikes after the PROXY header, during TLS',
    config: PROXY_TLS,
    path: AT_TLS_AFTER_PROXY,
    event: { type: 'TIMEOUT' },
    target: 'error',
    effects: [],
    errCode: 'SSL_TIMEOUT',
  },
  // --- ready ---
  {
    transition: 'connection.ready|CLOSE|0',
    says: 'frees the SSL context and releases its sslconns slot when its session closes a TLS connection',
    config: PROXY_TLS,
    path: [...AT_TLS_AFTER_PROXY, { type: 'TLS_OK' }],
    event: { type: 'CLOSE' },
    target: 'closed',
    effects: [{ type: 'sslCtxFree' }, { type: 'sslconnsDec' }],
    errCode: null,
  },
  {
    transition: 'connection.ready|CLOSE|1',
    says: 'closes a ready connection when its session closes it',
    config: PROXY,
    path: [...AT_PROXY_HEADER, { type: 'PROXY_HEADER_OK' }],
    event: { type: 'CLOSE' },
    target: 'closed',
    effects: [],
    errCode: null,
  },
  // --- error ---
  {
    transition: 'connection.error|CLOSE|0',
    says: 'frees the SSL context and releases its sslconns slot when kill_mini_session closes a failed TLS connection',
    config: PROXY_TLS,
    path: [...AT_TLS_AFTER_PROXY, { type: 'TLS_ERROR', code: 'SSL_HANDSHAKE' }],
    event: { type: 'CLOSE' },
    target: 'closed',
    effects: [{ type: 'sslCtxFree' }, { type: 'sslconnsDec' }],
    errCode: 'SSL_HANDSHAKE',
  },
  {
    transition: 'connection.error|CLOSE|1',
    says: 'closes a failed connection when kill_mini_session closes it, keeping its err_code',
    config: PROXY,
    path: [...AT_PROXY_HEADER, { type: 'PROXY_HEADER_ERROR', code: 'PRX_TRUNCATED' }],
    event: { type: 'CLOSE' },
    target: 'closed',
    effects: [],
    errCode: 'PRX_TRUNCATED',
  },
];

/** drive() on the connection machine, with conn->err_code in the snapshot it reaches. */
function driveWithErrCode(config: Partial<ModelConfig>, path: ConnectionEvent[], event: ConnectionEvent) {
  const r = drive('connection', config, path, event);
  return { ...r, errCode: (r.runner.snaps[r.step.next]!.context as { errCode: ErrCode | null }).errCode };
}

describe('the connection machine', () => {
  it('fails a PROXY header without an error code only under the 2.x profiles, whose reader stores TLVs', () => {
    for (const profile of ['dev12', '2.6', '2.9'] as const) {
      expect(proxyFailReachable(makeConfig({ profile }), 'NONE'), profile).toBe(profile !== 'dev12');
      expect(proxyFailReachable(makeConfig({ profile }), 'PRX_BAD_HDR'), profile).toBe(true);
    }
  });

  const states = [...new Set(CASES.map((c) => sourceOf(c.transition)))];
  describe.each(states)('in %s', (state) => {
    for (const c of CASES.filter((x) => sourceOf(x.transition) === state))
      it(c.says, () => {
        const { source, step, target, errCode } = driveWithErrCode(c.config, c.path, c.event);
        expect(source).toBe(state);
        expect(step.transitions).toEqual([c.transition]);
        expect(target).toBe(c.target);
        expect(step.effects).toEqual(c.effects);
        expect(errCode).toBe(c.errCode);
      });
  });

  it('resets the client on every PROXY failure that leaves peeked bytes unread, and on no other', () => {
    // conn_recv_proxy peeks the header (MSG_PEEK): a header it read and refused is still in the
    // socket when kill_mini_session closes it, so the kernel answers with an RST; an aborted read
    // leaves nothing there (haproxy-2.6-observed.md's FIN/RST note). NONE is a whole header too.
    const unread: ProxyFailCode[] = ['PRX_TRUNCATED', 'PRX_NOT_HDR', 'PRX_BAD_HDR', 'PRX_BAD_PROTO', 'NONE'];
    const steps = [...unread, 'PRX_ABORT' as const].map((code) => {
      const event: ConnectionEvent = { type: 'PROXY_HEADER_ERROR', code };
      return { code, step: drive('connection', { ...PROXY, profile: '2.6' }, AT_PROXY_HEADER, event).step };
    });
    expect(steps.filter((s) => s.step.transitions.length === 0).map((s) => s.code)).toEqual([]);
    const resets = steps.filter((s) => s.step.effects.some((e) => e.type === 'setNoLinger'));
    expect(resets.map((s) => s.code)).toEqual(unread);
  });

  it('has an example for every transition of the machine, and none for a transition it lacks', () => {
    const ids = listTransitions(MACHINES.connection).map((t) => t.id);
    expect([...new Set(CASES.map((c) => c.transition))].sort()).toEqual([...ids].sort());
  });

  it('ignores handshake input once the connection has failed', () => {
    const { step, target, errCode } = driveWithErrCode(
      PROXY,
      [...AT_PROXY_HEADER, { type: 'CLIENT_CLOSE', tlsRead: 'none' }],
      {
        type: 'PROXY_HEADER_OK',
      },
    );
    expect(step.transitions).toEqual([]);
    expect(step.effects).toEqual([]);
    expect(target).toBe('error');
    expect(errCode).toBe('PRX_EMPTY');
  });

  it('does not accept TLS input while the PROXY header is still pending', () => {
    const { step, target } = drive('connection', PROXY_TLS, AT_PROXY_HEADER, { type: 'TLS_OK' });
    expect(step.transitions).toEqual([]);
    expect(target).toBe('handshake.proxyHeader');
  });
});
