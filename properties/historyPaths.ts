/**
 * The exact counter sequences of HAProxy's paths, as haproxy-history.md §3 "Exact sequences per
 * path" gives them, written as expectations for the composed model: a configuration, the events
 * that drive one connection down the path, and the counters and memory facts at the end.
 *
 * These numbers come from the history table, not from the machines: a test replays each path on
 * the model and compares. Counters not named in `counters` must be 0.
 */
import { makeConfig, type ModelConfig } from '../machines/config.ts';
import type { Counters } from '../machines/counters.ts';
import type { SystemEvent } from '../machines/system.ts';

export interface HistoryPath {
  name: string; //                     the row of §3 (with the site or mode where the row splits)
  config: ModelConfig;
  events: SystemEvent[]; //            one connection (id 0), from the backlog to the end of the path
  counters: Partial<Counters>; //      counters at the end; every other counter is 0
  listener: string; //                 listener state at the end
  closedWith: 'fin' | 'rst'; //        how the client sees the close
  sent: string[]; //                   what the proxy itself wrote to the client
  buffersEverAllocated: boolean; //    whether req/rep were ever allocated
}

const TCP_PROXY = makeConfig({ mode: 'tcp', acceptProxy: true });
const HTTP_RAW = makeConfig({ mode: 'http', acceptProxy: false });
const HTTP_PROXY = makeConfig({ mode: 'http', acceptProxy: true });
// conn_data_init fails only in the SSL transport's init: raw_sock has none.
const HTTP_SSL = makeConfig({ mode: 'http', acceptProxy: false, ssl: true });

/** The per-second counters move with their cumulative twins; listed so each row states them all. */
const accepted = { totalconn: 1, connPerSec: 1 };
const counted = { cumConn: 1, lCumConn: 1, feConnPerSec: 1, connMax: 1 };
const completed = { cumSess: 1, lCumSess: 1, feSessPerSec: 1 };

export const HISTORY_PATHS: HistoryPath[] = [
  {
    name: 'monitor close (dev13 semantics), tcp mode',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT', src: 'monitor' }],
    counters: { ...accepted, ...counted },
    listener: 'ready',
    closedWith: 'fin',
    sent: [],
    buffersEverAllocated: false,
  },
  {
    name: 'monitor close (dev13 semantics), http mode answers 200',
    config: HTTP_RAW,
    events: [{ type: 'ACCEPT', src: 'monitor' }],
    counters: { ...accepted, ...counted },
    listener: 'ready',
    closedWith: 'fin',
    sent: ['200'],
    buffersEverAllocated: false,
  },
  {
    name: 'tcp-request connection reject',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT', src: 'denied' }],
    counters: { ...accepted, ...counted, deniedConn: 1 },
    listener: 'ready',
    closedWith: 'rst',
    sent: [],
    buffersEverAllocated: false,
  },
  {
    name: 'accept error: session allocation (nothing counted by session_accept)',
    config: HTTP_RAW,
    events: [{ type: 'ACCEPT', fail: 'session' }],
    counters: { ...accepted },
    listener: 'limited.onGlobalQueue',
    closedWith: 'fin',
    sent: ['500'],
    buffersEverAllocated: false,
  },
  {
    name: 'accept error: fcntl(O_NONBLOCK)',
    config: HTTP_RAW,
    events: [{ type: 'ACCEPT', fail: 'fcntl' }],
    counters: { ...accepted, ...counted },
    listener: 'limited.onGlobalQueue',
    closedWith: 'fin',
    sent: ['500'],
    buffersEverAllocated: false,
  },
  {
    name: 'accept error: task_new',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT', fail: 'task' }],
    counters: { ...accepted, ...counted },
    listener: 'limited.onGlobalQueue',
    closedWith: 'fin',
    sent: [],
    buffersEverAllocated: false,
  },
  {
    name: 'accept error: conn_data_init',
    config: HTTP_SSL,
    events: [{ type: 'ACCEPT', fail: 'dataInit' }],
    counters: { ...accepted, ...counted },
    listener: 'limited.onGlobalQueue',
    closedWith: 'fin',
    sent: [], // an ssl bind: no 500 (cbaaec475)
    buffersEverAllocated: false,
  },
  {
    name: 'accept error: session_complete on the no-handshake path (counted as a session)',
    config: HTTP_RAW,
    events: [{ type: 'ACCEPT', fail: 'rep' }],
    counters: { ...accepted, ...counted, ...completed },
    listener: 'limited.onGlobalQueue',
    closedWith: 'fin',
    sent: ['500'],
    buffersEverAllocated: true,
  },
  {
    name: 'embryonic timeout',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT' }, { type: 'TIMER_EXPIRE', conn: 0 }],
    counters: { ...accepted, ...counted },
    listener: 'ready',
    closedWith: 'fin',
    sent: [],
    buffersEverAllocated: false,
  },
  {
    name: 'handshake error (malformed PROXY header)',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT' }, { type: 'PROXY_HEADER_ERROR', conn: 0, code: 'PRX_BAD_HDR' }],
    counters: { ...accepted, ...counted },
    listener: 'ready',
    closedWith: 'rst',
    sent: [],
    buffersEverAllocated: false,
  },
  {
    name: 'handshake OK, then session_complete fails (cum_sess over-counted, list intact)',
    config: HTTP_PROXY,
    events: [{ type: 'ACCEPT' }, { type: 'PROXY_HEADER_OK', conn: 0, fail: 'rep' }],
    counters: { ...accepted, ...counted, ...completed },
    listener: 'ready',
    closedWith: 'fin',
    sent: [],
    buffersEverAllocated: true,
  },
  {
    name: 'full session end',
    config: TCP_PROXY,
    events: [{ type: 'ACCEPT' }, { type: 'PROXY_HEADER_OK', conn: 0 }, { type: 'SESSION_END', conn: 0 }],
    counters: { ...accepted, ...counted, ...completed },
    listener: 'ready',
    closedWith: 'fin',
    sent: [],
    buffersEverAllocated: true,
  },
];
