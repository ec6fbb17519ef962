/**
 * The data phase of an initialized session (process_session): started by the taskWakeupInit effect,
 * it connects the backend's server and forwards bytes both ways through the session's req and rep
 * pool buffers, until the stream ends; then streamOnEnd writes the tcplog line and delivers
 * SESSION_END to the session machine, whose effects close the client and free the buffers.
 *
 * Forwarding. Each direction moves its bytes through its channel buffer (req: client → server,
 * rep: server → client) and writes them from there; the buffer is pinned while a write reads it
 * (impl/pool.ts). A source is read while its buffer has room (Direction) and stops when it is
 * full, until the kernel took the bytes. The server socket, which the stream creates, reads
 * straight into the rep buffer (node:net's `onread`), as HAProxy's recv fills the channel's
 * buffer: no other allocation per read. So does a plain bind's client socket, adopted at accept
 * (impl/clientSocket.ts), into the req buffer (streamClientRead). What reaches the req direction
 * as 'data' events instead is copied into its buffer, at most tune.bufsize bytes at a time: the
 * bytes after the PROXY header, a read that landed in the shared area before the stream's buffer
 * became the destination, and every read of a TLS client socket, which node:net reads into
 * buffers of its own. The backend sees only the data: the PROXY header is consumed by the
 * handshake and its addresses are the session's addresses for the logs.
 *
 * Timeouts, as HAProxy in TCP mode: `timeout connect` while connecting, then `timeout client` on
 * the client side and `timeout server` on the server side (Side). A side has a read deadline while
 * the proxy reads it (its channel's rex: not while that buffer is full or after its EOF) and a
 * write deadline while bytes wait to be written to it (the other channel's wex). A read from it
 * sets its read deadline; a write to it that progresses sets its write deadline and, as HAProxy
 * without `option independent-streams`, its read deadline too. One timer, the stream's task,
 * checks them all (process_session): it is due at the earliest deadline that applied when it was
 * queued, and a deadline that moves later does not move it, so it runs at the earlier date, finds
 * nothing expired and queues itself again (requeue, streamTaskOnExpire). Under 1.5-dev12 and 2.6 a
 * read from a side also renews its write deadline while bytes wait for it and a write to it
 * progressed since the task last ran (readFrom): a client that does not read but keeps sending is
 * closed `timeout client` after the last bytes the proxy read from it before the task's next run
 * (Debian's HAProxy 2.6.12: 25-ms chunks, the path back full at +100 ms, closed at +590 ms, 300
 * ms after the last chunk before its check at +300 ms). A read deadline that passes shuts
 * that side's read only, as process_session's si_shutr does in TCP mode (no SI_FL_NOHALF): the side
 * is no longer read, its EOF is forwarded to the other side (a FIN once the bytes it sent are
 * written), and the stream goes on the other way until that direction ends too, by the other side's
 * EOF or its own timeout; the log keeps the first timeout's state (readTimedOut). What the client
 * sends after that is dropped: left unread under dev12 (its close is then an RST), drained under
 * 2.x (a FIN). Both idle, the other side gets its FIN at the first timeout and the stream ends at
 * the second (Debian's HAProxy 2.6: `timeout client 400ms`, `timeout server 1s`: the server's FIN
 * at +400 ms, the client's at +1001 ms, cD). A write deadline that passes ends the stream as
 * process_session does, with SI_FL_NOLINGER on that side (noLinger: an RST under dev12, a FIN under
 * 2.x; the bytes the proxy still buffered for it are dropped either way). For the client, the
 * session machine makes that choice: SESSION_END tells it the stream ended on a write timeout. So
 * a client that does not read while the server sends is closed `timeout client` after its last
 * write progressed, and the server, which the proxy stops reading meanwhile, is never timed out
 * for it (Debian's HAProxy 2.6: cD at +1016 ms with `timeout server 100ms` and `timeout client 1s`,
 * the 16 KiB it buffered dropped, a FIN).
 * Shutdowns are forwarded: the client's EOF shuts the server's write side and the server's EOF the
 * client's; the stream ends when both directions are done. Under 2.x the server's socket is closed
 * with SO_LINGER 0, an RST, unless its FIN was read (FD_LINGER_RISK, closeBackend); dev12 closes it
 * plainly (a FIN), except after a write timeout.
 *
 * The end's termination state (%ts of the tcplog line), from the first end condition: '--' both
 * sides closed, 'cD' client timeout, 'cC' client timeout while the server connection was being
 * established, 'sD' server timeout, 'sC' connect timeout, 'SC' the server refused or failed the
 * connection, 'SD' the server reset the data phase, 'CD' the client reset it, 'CC' the client reset
 * while the server connection was being established.
 * Not modelled: retries and redispatch (HAProxy's `retries 3`): a refused server ends the stream.
 */
import net from 'node:net';
import type { Profile } from '../machines/config.ts';
import type { Conn } from './driver.ts';
import { formatTcplog } from './log.ts';
import type { PoolItem } from './pool.ts';
import type { TrafficCounters } from './stats.ts';

/**
 * One direction of the stream: its source, destination, channel buffer and progress. The buffer is
 * filled from its start: bytes [0, head) were put in it (by a read or a copy) and written or are
 * being written; the next bytes go at `head`. Once Node has handed every write to the kernel
 * (dst.writableLength is 0) the buffer is empty again and `head` goes back to 0; when it is full,
 * the source stops until then (HAProxy's channel: recv while there is room, send what is there).
 */
interface Direction {
  readonly name: 'req' | 'rep';
  readonly conn: Conn;
  src: net.Socket;
  dst: net.Socket;
  item: PoolItem; //            the channel buffer (conn.bufs.req / rep when the stream started)
  head: number; //              where the next bytes go in the buffer
  chunk: Buffer | null; //      'data' bytes that did not fit yet (owned: a copy when the read was not)
  writes: number; //            writes from `item` whose callback has not come yet
  stopped: boolean; //          the source was stopped until the buffer is empty again
  srcEnded: boolean; //         the source is read no more: it sent its EOF, or its read timed out
  done: boolean; //             the EOF was forwarded: nothing more goes this way
  bytes: number;
  onWritten: (err?: Error | null) => void; // directionOnWritten bound to this direction
}

/**
 * The timeouts of one side of the stream (the client, or the server once connected): its
 * deadlines in performance.now() ms, each one meaningful only while its condition holds (read:
 * the side's source is read; write: bytes wait for it). The stream's task checks them.
 */
interface Side {
  readonly name: 'client' | 'server';
  readonly st: Stream;
  timeout: number | null; //    ms (timeout client / server); null: none, or not connected yet
  rex: number; //               read deadline (HAProxy's rex of the side's input channel)
  wex: number; //               write deadline (the wex of its output channel)
  wrote: boolean; //            a write to it progressed since the task last ran (CF_WRITE_PARTIAL)
}

/** The data phase of one session. */
export interface Stream {
  readonly conn: Conn;
  readonly server: { name: string; counters: TrafficCounters };
  readonly client: net.Socket; //  the client side: the TLS socket on an ssl bind, else the TCP one
  backend: net.Socket | null;
  connected: boolean;
  startTime: number; //            performance.now() at taskWakeupInit
  connectTime: number | null; //   ms to connect, null = not connected
  req: Direction | null;
  rep: Direction | null;
  connectTimer: NodeJS.Timeout | null;
  task: NodeJS.Timeout | null; //  the stream's task: due at taskDue, when process_session runs
  taskDue: number;
  clientSide: Side;
  serverSide: Side;
  termination: string | null; //   set by the first end condition
  serverNoLinger: boolean; //      the server's write deadline passed under dev12: its close is an RST
  clientWriteTimeout: boolean; //  the client's write deadline passed: SESSION_END says so to the machine
  serverEof: boolean; //           the server's FIN was read: 2.x closes it without an RST
  endPending: boolean; //          a socket failed: the stream ends after this poll round (endAfterIo)
  ended: boolean;
}

const owners = new WeakMap<net.Socket, Stream>();

/** The connection whose stream reads or writes `socket` (its client or backend socket), if any. */
export function streamConnOf(socket: net.Socket): Conn | undefined {
  return owners.get(socket)?.conn;
}

/**
 * taskWakeupInit: starts the stream of the initialized session `conn` (process_session with
 * TASK_WOKEN_INIT): picks a server of the frontend's backend (round robin) and connects to it.
 * Requires the session's req and rep buffers (allocated before taskWakeupInit). The stream owns
 * its backend socket until the end; the client socket stays owned by the connection.
 */
export function streamStart(conn: Conn): void {
  const fe = conn.fe;
  const be = fe.backend;
  const server = be.servers[be.next % be.servers.length]!;
  be.next++;
  conn.phase = 'stream';
  fe.markComplete(conn);
  // TCP_NODELAY on both sockets, as HAProxy sets it: on the client's in frontend_accept (run by
  // session_complete), on the server's in tcp_connect_server. Without it, Nagle holds each channel
  // buffer's write (16 KiB, under the loopback MSS) while the previous one is unacknowledged.
  conn.socket.setNoDelay(true);
  const st: Stream = {
    conn,
    server,
    client: conn.tls ?? conn.socket,
    backend: null,
    connected: false,
    startTime: performance.now(),
    connectTime: null,
    req: null,
    rep: null,
    connectTimer: null,
    task: null,
    taskDue: 0,
    clientSide: null as unknown as Side,
    serverSide: null as unknown as Side,
    termination: null,
    serverNoLinger: false,
    clientWriteTimeout: false,
    serverEof: false,
    endPending: false,
    ended: false,
  };
  st.clientSide = newSide('client', st, fe.cfg.frontend.timeouts.client);
  st.serverSide = newSide('server', st, null); // `timeout server` applies once connected
  conn.stream = st;
  for (const t of [be.counters, server.counters]) {
    t.cur++;
    t.max = Math.max(t.max, t.cur);
    t.tot++;
    t.connects++;
    t.lastSess = Date.now();
  }
  const req = conn.req;
  const rep = conn.rep;
  if (!req?.buf || !rep?.buf) {
    fe.violations.push(`connection ${conn.id}: the stream started without its req and rep buffers`);
    streamAbort(conn, 'SC');
    return;
  }
  // The server's bytes are read straight into the rep channel buffer, as HAProxy's recv does.
  const b = net.connect({
    host: server.host,
    port: server.port,
    allowHalfOpen: true,
    noDelay: true,
    onread: { buffer: rep.buf, callback: backendOnRead },
  });
  st.backend = b;
  owners.set(b, st);
  b.on('connect', backendOnConnect);
  b.on('error', backendOnError);
  const ms = be.cfg.timeouts.connect;
  if (ms !== null) st.connectTimer = setTimeout(streamOnConnectTimeout, ms, st);
  // As process_session, the client is read at once: its bytes wait in the req buffer, and the
  // write to the server (queued by Node while it connects) completes once it is connected.
  st.req = direction('req', conn, st.client, b, req);
  st.rep = direction('rep', conn, b, st.client, rep);
  owners.set(st.client, st);
  st.client.on('data', clientOnData);
  st.client.on('end', clientOnEnd);
  st.client.on('error', clientOnError);
  b.on('end', backendOnEnd);
  readStarts(st.clientSide);
  // The bytes the handshake put back (after the PROXY header) go into the req buffer now, before
  // any read: an adopted socket's next read may already be due at the buffer's start.
  if (st.client.readableLength > 0) st.client.read();
  if (!st.req.stopped) st.client.resume(); // else its buffer is full: directionOnWritten resumes it
}

/** The server accepted the connection: `timeout server` starts. */
function backendOnConnect(this: net.Socket): void {
  const st = owners.get(this);
  if (!st || st.ended) return;
  if (st.connectTimer) clearTimeout(st.connectTimer);
  st.connectTimer = null;
  st.connected = true;
  st.connectTime = Math.round(performance.now() - st.startTime);
  const side = st.serverSide;
  side.timeout = st.conn.fe.backend.cfg.timeouts.server;
  // Bytes the client sent meanwhile wait for the server from now on.
  side.wex = performance.now() + (side.timeout ?? 0);
  readStarts(side);
  streamRuns(st); // the connection's establishment wakes the stream's task (CF_WRITE_NULL)
}

/** A side named <name> of <st> with <timeout> ms (null: none yet), no deadline armed. */
function newSide(name: Side['name'], st: Stream, timeout: number | null): Side {
  return { name, st, timeout, rex: 0, wex: 0, wrote: false };
}

/** The side's source is read again: its read deadline starts. */
function readStarts(side: Side): void {
  if (side.timeout === null) return;
  side.rex = performance.now() + side.timeout;
  requeue(side.st);
}

/**
 * The proxy read bytes from the side (conn_notify_si, 2.x sc_notify, after the read): its read
 * deadline starts again. So does its write deadline while bytes wait for the side and a write to
 * it progressed since the stream's task last ran, under the profiles whose HAProxy does so
 * (DATA_PHASE_RULES.readsRenewWriteDeadline): the consumer side of that notification renews the
 * output channel's wex whenever the channel carries CF_WRITE_PARTIAL, and only process_session
 * clears that flag.
 * A client that keeps sending while its writes wait thus moves its write timeout, until the
 * stream's next run; after it, only a write that progresses does.
 */
function readFrom(side: Side): void {
  if (side.timeout === null) return;
  const now = performance.now();
  side.rex = now + side.timeout;
  const out = outputOf(side);
  if (side.wrote && writing(side) && !out?.done && ruleHolds(side.st, 'readsRenewWriteDeadline'))
    side.wex = now + side.timeout;
  requeue(side.st);
}

/** The data phase's choices that differ by profile (DATA_PHASE_RULES). */
export type DataPhaseRule =
  | 'drainsAfterReadTimeout'
  | 'resetsServerWithoutFin'
  | 'resetsServerOnWriteTimeout'
  | 'readsRenewWriteDeadline';

/** One data phase rule: what holds where it applies, the HAProxy code it follows, and where it applies. */
export interface DataPhaseRuleInfo {
  what: string;
  haproxy: string;
  profiles: Readonly<Record<Profile, boolean>>;
}

/**
 * What the data phase does differently under each profile: the choices of impl/stream.ts that the
 * machines do not make (the client's close after its write timeout is the session machine's),
 * each with the HAProxy code it follows. PORTING.md shows them as a table; porting-notes gives the
 * measurements.
 */
export const DATA_PHASE_RULES: Readonly<Record<DataPhaseRule, DataPhaseRuleInfo>> = {
  drainsAfterReadTimeout: {
    what: "After the client's read timed out, what it sends is read and dropped, so that its close is a FIN; else it is left unread, and the kernel turns the close into an RST.",
    haproxy:
      "2.x: sc_shutr's CO_SHR_DRAIN (mux_pt_shutr, conn_ctrl_drain); 1.5-dev12's si_shutr leaves the socket unread",
    profiles: { dev12: false, '2.6': true, '2.9': true },
  },
  resetsServerWithoutFin: {
    what: "The server's socket is closed with SO_LINGER 0, an RST, unless the server's FIN was read.",
    haproxy:
      'tcp_connect_server marks the fd FD_LINGER_RISK, which only conn_sock_read0 clears, and fd_delete acts on it (2.x)',
    profiles: { dev12: false, '2.6': true, '2.9': true },
  },
  resetsServerOnWriteTimeout: {
    what: "The server's write timeout closes it with SO_LINGER 0, an RST; else its shutw is silent.",
    haproxy:
      "1.5-dev12: process_session sets SI_FL_NOLINGER, and si_shutw's close sets SO_LINGER 0; 2.x: SC_FL_NOLINGER, sc_conn_shutw's CO_SHW_SILENT",
    profiles: { dev12: true, '2.6': false, '2.9': false },
  },
  readsRenewWriteDeadline: {
    what: "A read from a side renews that side's write deadline while bytes wait for it and a write to it progressed since the stream's task last ran.",
    haproxy:
      "1.5-dev12's conn_notify_si and 2.6's sc_notify renew the output channel's wex while CF_WRITE_PARTIAL, which only process_session clears, is on it; from 2.8 (b374ba563) the write timeout runs from the first blocked send (fsb)",
    profiles: { dev12: true, '2.6': true, '2.9': false },
  },
};

/** Whether <rule> holds for the profile <st>'s frontend runs. */
function ruleHolds(st: Stream, rule: DataPhaseRule): boolean {
  return DATA_PHASE_RULES[rule].profiles[st.conn.fe.model.profile];
}

/**
 * A write to the side starts: when nothing waited for it before (`waited`), its write deadline
 * starts.
 */
function writeStarts(side: Side, waited: boolean): void {
  if (side.timeout === null || waited) return;
  side.wex = performance.now() + side.timeout;
  requeue(side.st);
}

/**
 * A write to the side progressed: its write deadline starts again (it applies only while bytes
 * still wait), and so does its read deadline (not `option independent-streams`); the side's
 * output channel carries CF_WRITE_PARTIAL until the stream's task runs.
 */
function wroteTo(side: Side): void {
  if (side.timeout === null) return;
  side.rex = side.wex = performance.now() + side.timeout;
  side.wrote = true;
}

/** The direction that reads from <side> (its input channel), and the one that writes to it. */
function inputOf(side: Side): Direction | null {
  return side.name === 'client' ? side.st.req : side.st.rep;
}
function outputOf(side: Side): Direction | null {
  return side.name === 'client' ? side.st.rep : side.st.req;
}

/** True while the proxy reads the side: its input direction is neither stopped nor at its EOF. */
function reading(side: Side): boolean {
  const d = inputOf(side);
  return d !== null && !d.stopped && !d.srcEnded && (side.name === 'client' || side.st.connected);
}

/** True while bytes wait to be written to the side. */
function writing(side: Side): boolean {
  const d = outputOf(side);
  return d !== null && (d.writes > 0 || d.chunk !== null);
}

/**
 * Queues the stream's task for the earliest deadline that applies, unless it is already due at or
 * before it: as HAProxy's I/O notifications do (task->expire = tick_first(expire, ...)), a
 * deadline that moves later does not move the task, which then runs at the earlier date, finds
 * nothing expired and queues itself for the deadlines as they are (streamTaskOnExpire). HAProxy
 * moves the task earlier on I/O since d7607de06 (2.0-dev1, backported to 1.6); 1.5-dev12 set its
 * date in process_session only, and every profile here follows the fix.
 */
function requeue(st: Stream): void {
  if (st.ended) return;
  const c = dueOf(st.clientSide);
  const s = dueOf(st.serverSide);
  const due = c === null ? s : s === null ? c : Math.min(c, s);
  if (due === null || (st.task !== null && st.taskDue <= due)) return;
  if (st.task !== null) clearTimeout(st.task);
  st.taskDue = due;
  st.task = setTimeout(streamTaskOnExpire, Math.max(1, due - performance.now()), st);
}

/** The earliest deadline of the side that applies now, or null. */
function dueOf(side: Side): number | null {
  if (side.timeout === null) return null;
  const r = reading(side) ? side.rex : null;
  const w = writing(side) ? side.wex : null;
  return r === null ? w : w === null ? r : Math.min(r, w);
}

/**
 * The stream's task ran outside its timer (a wake-up: the server connection established, an EOF
 * read): as process_session, it clears each side's CF_WRITE_PARTIAL and queues itself afresh for
 * the deadlines as they are. Returns nothing.
 */
function streamRuns(st: Stream): void {
  if (st.ended) return;
  st.clientSide.wrote = st.serverSide.wrote = false;
  if (st.task !== null) clearTimeout(st.task);
  st.task = null;
  requeue(st);
}

/**
 * The stream's task is due (process_session at its expire date): each side's CF_WRITE_PARTIAL is
 * cleared, then its deadlines are checked, the client's first ('cD' or 'sD': a write deadline
 * marks the side SI_FL_NOLINGER and ends the stream, a read deadline shuts the side's read only),
 * and the task is queued again for the deadlines as they now are (they may have moved later since
 * it was queued, or none may apply: it is queued again when one does).
 */
function streamTaskOnExpire(st: Stream): void {
  st.task = null;
  if (st.ended) return;
  st.clientSide.wrote = st.serverSide.wrote = false;
  const now = performance.now();
  for (const side of [st.clientSide, st.serverSide]) {
    const due = dueOf(side);
    // Node's timers count whole ms of the loop's clock: up to a ms early is on time.
    if (due === null || due - now >= 1) continue;
    if (writing(side) && side.wex - now < 1) {
      noLinger(side);
      streamAbort(st.conn, timedOut(side));
      return;
    }
    readTimedOut(side);
    if (st.ended) return;
  }
  requeue(st);
}

/**
 * A read deadline of <side> passed. process_session (2.x: process_stream) sets CF_READ_TIMEOUT on
 * the side's input channel and calls si_shutr (sc_shutr) on it, which in TCP mode (no
 * SI_FL_NOHALF) stops reading it without closing it; the timeout is the stream's termination
 * state unless one came first. The channel then forwards the shutdown as any EOF: once the bytes
 * read from the side are written, the other side gets its FIN (shut). The other direction goes on.
 *
 * What the client sends after that is never forwarded. 1.5-dev12 leaves it unread: the close
 * that ends the stream then finds bytes in the socket's receive queue, and the kernel sends an
 * RST. 2.x drains it (sc_shutr's CO_SHR_DRAIN, mux_pt_shutr), so the client gets a FIN: Debian's
 * HAProxy 2.6.12, `timeout client 400ms`, 100 bytes from the client at +600 ms, the server's FIN
 * at +1000 ms, closed the client with a FIN at +1005 ms. Under 2.x the client is read on and what
 * it sends is dropped (clientOnData; an adopted socket reads into the shared area, see
 * streamClientArea): the same FIN, though the client is never made to wait by a full window.
 */
function readTimedOut(side: Side): void {
  const st = side.st;
  const d = inputOf(side);
  if (!d) return;
  st.termination ??= timedOut(side);
  // An onread socket stops reading at once: no read lands in the buffer any more.
  if (side.name === 'server' || !ruleHolds(st, 'drainsAfterReadTimeout')) d.src.pause();
  sourceEnded(st, d);
}

/**
 * The termination state of a timeout of <side>: 'c' or 's' for the side, then the stage the stream
 * was at (sess_set_term_flags): 'C' while the server connection is pending (only the client has
 * deadlines then: Debian's HAProxy 2.6 logs cC for a client idle past `timeout client` while it
 * connects, and closes it at `timeout connect`), else 'D'.
 */
function timedOut(side: Side): string {
  if (side.name === 'server') return 'sD';
  return side.st.connected ? 'cD' : 'cC';
}

/**
 * A write deadline of <side> passed: process_session marks the side SI_FL_NOLINGER before its
 * shutw. For the client, the fact goes to the session machine with SESSION_END (writeTimeout),
 * whose effects close it (writeTimeoutShutw: an RST under 1.5-dev12, a FIN under 2.x). The
 * server's socket is the stream's own: 1.5-dev12 sets SO_LINGER 0 and closes, an RST that drops
 * what the kernel still held; 2.x shuts it silently (SC_FL_NOLINGER, CO_SHW_SILENT), and its close
 * is an RST unless the server's FIN was read (closeBackend).
 */
function noLinger(side: Side): void {
  const st = side.st;
  if (side.name === 'client') st.clientWriteTimeout = true;
  else st.serverNoLinger = ruleHolds(st, 'resetsServerOnWriteTimeout');
}

function direction(
  name: 'req' | 'rep',
  conn: Conn,
  src: net.Socket,
  dst: net.Socket,
  item: PoolItem,
): Direction {
  const d: Direction = {
    name,
    conn,
    src,
    dst,
    item,
    head: 0,
    chunk: null,
    writes: 0,
    stopped: false,
    srcEnded: false,
    done: false,
    bytes: 0,
    onWritten: directionOnWritten,
  };
  d.onWritten = directionOnWritten.bind(d);
  return d;
}

/**
 * Bytes from the client as a 'data' event: a TLS socket's, or what an adopted socket did not read
 * into the req buffer.
 */
function clientOnData(this: net.Socket, chunk: Buffer): void {
  const st = owners.get(this);
  if (!st || st.ended || !st.req || st.req.srcEnded) return; // its read timed out: 2.x drains (readTimedOut)
  readFrom(st.clientSide);
  feed(st.req, chunk);
}

/**
 * Bytes from the server, read into the start of the rep channel buffer (its socket's `onread`
 * buffer is the whole buffer). They are written to the client from there; reading goes on (true)
 * only if the kernel took them at once, since the next read lands at the start again.
 */
function backendOnRead(this: net.Socket, nread: number, buf: Buffer): boolean {
  const st = owners.get(this);
  if (!st || st.ended || !st.rep || st.rep.srcEnded) return false;
  readFrom(st.serverSide);
  return forwardWholeBufferRead(st.rep, buf, nread);
}

/**
 * Forwards a read that fills `d`'s buffer from its start (the backend socket's `onread` buffer is
 * the whole buffer). Returns whether the source reads on: only if the kernel took the bytes at
 * once, since the next read lands at the start again; else the source is stopped until the write
 * is done.
 */
function forwardWholeBufferRead(d: Direction, buf: Buffer, nread: number): boolean {
  if (!forwardRead(d, buf, nread)) return false;
  if (d.head === 0) return true;
  d.stopped = true;
  return false;
}

/**
 * Bytes from the client, read by its adopted socket (impl/clientSocket.ts) into `area`, which is
 * not the shared read area: the part of the req channel buffer that streamClientArea gave, as
 * forwardRead checks. Forwarded as the server's bytes are. Returns whether reading goes on; a read
 * once the stream of `conn` no longer runs is a violation, and reading stops. A read that lands
 * there after the client's read timed out (its area was chosen before) is dropped, as 2.x drains
 * (readTimedOut); the next ones go to the shared area.
 */
export function streamClientRead(conn: Conn, area: Buffer, nread: number): boolean {
  const st = conn.stream;
  if (!st || st.ended || !st.req) {
    conn.fe.violations.push(
      `connection ${conn.id}: a client read of ${nread} bytes landed outside the shared read area after its stream ended`,
    );
    return false;
  }
  if (st.req.srcEnded) return true;
  readFrom(st.clientSide);
  return forwardRead(st.req, area, nread);
}

/**
 * Where the next read of `conn`'s adopted client socket goes: the free end of the req channel
 * buffer while the stream runs and reads into it, else null (the caller's own area). When the
 * buffer is full the source is stopped, and reading starts again only once the buffer is empty:
 * the whole buffer is then the area.
 */
export function streamClientArea(conn: Conn): Buffer | null {
  const st = conn.stream;
  const d = st?.req;
  if (!st || st.ended || !d || d.srcEnded || d.item !== conn.req || !d.item.live || d.chunk !== null)
    return null;
  const buf = d.item.buf!;
  return d.head === 0 || d.head === buf.length ? buf : buf.subarray(d.head);
}

/**
 * Writes the `nread` bytes a read put at the start of `area`, a part of `d`'s channel buffer, and
 * moves `head` past them. Returns whether the source may read on: the buffer has room. The read
 * may land past `head` (its area was chosen before the buffer emptied); one that overlaps bytes
 * still being written, or lies outside the buffer, is a violation: nothing is written, and the
 * source stays stopped (its stream can only end, at a timeout or a close), since going on would
 * forward the stream with a hole in it.
 */
function forwardRead(d: Direction, area: Buffer, nread: number): boolean {
  const buf = d.item.buf!;
  const at = area.byteOffset - buf.byteOffset;
  if (area.buffer !== buf.buffer || at < d.head || at + nread > buf.length) {
    d.conn.fe.violations.push(
      `connection ${d.conn.id}: a ${d.name} read of ${nread} bytes landed outside the free part of its channel buffer`,
    );
    return false;
  }
  d.bytes += nread;
  d.conn.fe.pool.countRead(d.name);
  write(d, at, nread);
  return roomLeft(d);
}

/**
 * Writes buf[at, at + n) to the destination (the buffer is pinned until the write's callback) and
 * moves `head` past it, or back to 0 when the kernel took everything at once.
 */
function write(d: Direction, at: number, n: number): void {
  const st = d.conn.stream;
  const waited = d.writes > 0 || d.chunk !== null;
  d.writes++; // first: the write deadline applies from now on (writing), so requeue counts it
  if (st) writeStarts(d.name === 'req' ? st.serverSide : st.clientSide, waited);
  d.conn.fe.pool.pin(d.item);
  d.dst.write(d.item.buf!.subarray(at, at + n), d.onWritten);
  d.head = d.dst.writableLength === 0 ? 0 : at + n;
}

/** True if the buffer has room for the next bytes; else marks the source stopped (the caller stops it). */
function roomLeft(d: Direction): boolean {
  if (d.head < d.item.buf!.length) return true;
  d.stopped = true;
  return false;
}

/**
 * Takes a 'data' chunk: copies what fits at `head` and writes it. What does not fit is kept (a
 * copy: the chunk may be a view of a shared read area) and the source pauses until the buffer is
 * empty; so does a source that filled the buffer exactly.
 */
function feed(d: Direction, chunk: Buffer): void {
  if (d.chunk !== null) {
    // The source was paused, but a 'data' event was already on its way: after what waits.
    d.chunk = Buffer.concat([d.chunk, chunk]);
    return;
  }
  const n = copyIn(d, chunk);
  if (n < chunk.length) d.chunk = Buffer.from(chunk.subarray(n));
  if (d.chunk !== null || !roomLeft(d)) {
    d.stopped = true;
    d.src.pause();
  }
}

/** Copies what of `chunk` fits at `head` into `d`'s buffer and writes it. Returns how much. */
function copyIn(d: Direction, chunk: Buffer): number {
  const n = chunk.copy(d.item.buf!, d.head);
  d.bytes += n;
  if (n > 0) write(d, d.head, n);
  return n;
}

/**
 * A write from a channel buffer reached the kernel (or failed: the stream is ending). Once every
 * write has, the buffer is empty: what waited in `chunk` is copied, and a stopped source reads on
 * (or, after its EOF, the EOF is forwarded).
 */
function directionOnWritten(this: Direction, err?: Error | null): void {
  this.writes--;
  this.conn.fe.pool.unpin(this.item);
  const st = this.conn.stream;
  if (err || !st || st.ended) return;
  wroteTo(this.name === 'req' ? st.serverSide : st.clientSide);
  if (this.dst.writableLength === 0) this.head = 0;
  // Bytes still go to the kernel from the buffer: its room is not back yet.
  if (this.head !== 0 || this.writes > 0) return;
  const chunk = this.chunk;
  if (chunk !== null) {
    const n = copyIn(this, chunk); // at 0: the buffer is empty
    this.chunk = n < chunk.length ? chunk.subarray(n) : null;
    return;
  }
  if (this.srcEnded) return shut(st, this);
  if (!this.stopped) return;
  this.stopped = false;
  this.src.resume();
  readStarts(this.name === 'req' ? st.clientSide : st.serverSide);
}

/**
 * The buffer logic of one direction without its sockets, for test/impl/stream.test.ts only: a
 * direction over any source and destination with pause/resume and write/writableLength, a 'data'
 * chunk fed to it, a read that landed in its buffer. Nothing in impl/ uses this object.
 */
export const directionForTests = { direction, feed, forwardRead, forwardWholeBufferRead } as const;

/** The client sent its EOF. */
function clientOnEnd(this: net.Socket): void {
  const st = owners.get(this);
  if (!st || st.ended || !st.req || st.req.srcEnded) return;
  sourceEnded(st, st.req);
  streamRuns(st); // an EOF wakes the stream's task (CF_READ_NULL)
}

/** The server sent its EOF. */
function backendOnEnd(this: net.Socket): void {
  const st = owners.get(this);
  if (!st || st.ended || !st.rep) return;
  st.serverEof = true;
  if (st.rep.srcEnded) return; // its read had timed out: the EOF was forwarded then
  sourceEnded(st, st.rep);
  streamRuns(st); // an EOF wakes the stream's task (CF_READ_NULL)
}

/**
 * <d>'s source is read no more (its EOF, or its read timed out): the EOF is forwarded now if
 * nothing of it waits to be written, else once it is (directionOnWritten).
 */
function sourceEnded(st: Stream, d: Direction): void {
  d.srcEnded = true;
  if (d.writes === 0 && !d.chunk) shut(st, d);
}

/** Forwards a direction's EOF (shutw); the stream ends when both directions are done. */
function shut(st: Stream, d: Direction): void {
  if (d.done) return;
  d.done = true;
  d.dst.end();
  if (st.req?.done && st.rep?.done) {
    st.termination ??= '--';
    streamOnEnd(st.conn);
  }
}

/**
 * The client reset the connection: 'CD' in the data phase, 'CC' while the server connection is
 * still being established (HAProxy's second letter names what the proxy was waiting for).
 */
function clientOnError(this: net.Socket, _err: Error): void {
  const st = owners.get(this);
  if (!st || st.ended || st.endPending) return;
  endAfterIo(st, st.connected ? 'CD' : 'CC');
}

/** The server refused or failed the connection, or reset it in the data phase. */
function backendOnError(this: net.Socket, _err: Error): void {
  const st = owners.get(this);
  if (!st || st.ended || st.endPending) return;
  if (!st.connected) {
    for (const t of [st.conn.fe.backend.counters, st.server.counters]) t.econ++;
    endAfterIo(st, 'SC');
  } else endAfterIo(st, 'SD');
}

/**
 * A socket's error ends the stream with <termination>, once the I/O that is ready in this poll
 * round has been done: HAProxy's fd handlers of a round all run before process_session, which then
 * closes. So bytes the client sent in the same round as the server's reset are read (into the req
 * buffer, for nothing) before the client is closed, which then gets a FIN; closing it at once would
 * leave them unread, and the kernel would answer with an RST (Debian's HAProxy 2.6.12, stopped until
 * both had come: a FIN 7 times in 7; the bundled proxy closing at once: an RST 6 times in 6). The end
 * runs in the check phase (setImmediate), right after the poll phase's callbacks.
 */
function endAfterIo(st: Stream, termination: string): void {
  st.termination ??= termination;
  st.endPending = true;
  setImmediate(streamOnIoEnd, st);
}

/** The poll round in which a socket failed is over: the stream ends (endAfterIo). */
function streamOnIoEnd(st: Stream): void {
  if (!st.ended) streamAbort(st.conn, st.termination ?? '--');
}

function streamOnConnectTimeout(st: Stream): void {
  st.connectTimer = null;
  if (st.ended) return;
  for (const t of [st.conn.fe.backend.counters, st.server.counters]) t.econ++;
  streamAbort(st.conn, 'sC');
}

/**
 * Ends the stream of `conn` at once: the backend socket is closed (closeBackend) and reading stops. With a
 * termination state, the end is delivered (streamOnEnd); with null (the proxy is stopping) nothing
 * is delivered and the caller closes the client itself. Idempotent.
 */
export function streamAbort(conn: Conn, termination: string | null): void {
  const st = conn.stream;
  if (!st || st.ended) return;
  st.termination ??= termination;
  if (termination === null) {
    closeBackend(st);
    st.client.pause(); // an adopted client socket reads into the req buffer: no read may land there now
    stopTimers(st);
    st.ended = true;
    return;
  }
  streamOnEnd(conn);
}

/**
 * Closes the server's socket, if it is still open: with an RST after a write timeout under dev12
 * (SI_FL_NOLINGER's SO_LINGER 0), and under 2.x whenever the server's FIN was not read:
 * tcp_connect_server marks its fd FD_LINGER_RISK, which only conn_sock_read0 clears, and fd_delete
 * then sets SO_LINGER 0 (Debian's HAProxy 2.6: a client's reset reaches the server as an RST at
 * once; a silent server left in CLOSE_WAIT by the forwarded FIN is reset at the stream's end).
 * Else a FIN after what the kernel holds. A socket still connecting is destroyed plainly.
 */
function closeBackend(st: Stream): void {
  const b = st.backend;
  if (!b || b.destroyed) return;
  const risk = ruleHolds(st, 'resetsServerWithoutFin') && st.connected && !st.serverEof;
  if (!st.serverNoLinger && !risk) b.destroy();
  else if (!b.writableEnded || b.writableFinished) b.resetAndDestroy();
  else {
    // The FIN just forwarded is still being shut (libuv refuses a reset meanwhile): HAProxy's
    // shutdown(SHUT_WR) goes out before its close's RST, so the RST follows the shutdown here too.
    b.pause(); // it reads no more: its reads would land in the rep buffer, taken back at the end
    b.once('finish', backendOnShutReset);
  }
}

/** The backend's forwarded FIN went out after its stream ended: the close's RST follows. */
function backendOnShutReset(this: net.Socket): void {
  if (!this.destroyed) this.resetAndDestroy();
}

function stopTimers(st: Stream): void {
  for (const t of [st.connectTimer, st.task]) if (t) clearTimeout(t);
  st.connectTimer = st.task = null;
}

/**
 * The stream of `conn` ended (process_session's end): counts the traffic, writes the tcplog line
 * and delivers SESSION_END to the session machine, whose effects close the client socket (FIN,
 * after the bytes already written) and free the session's buffers (a pinned buffer returns to its
 * pool when its write completes). The backend socket is closed here (closeBackend), before
 * SESSION_END: it reads into the rep buffer, and a destroyed socket reads no more (its handle is
 * closed at once), nor does a paused one whose reset waits for its shutdown, so no read can land in
 * a buffer the pool has taken back. The pool's pins count only writes.
 */
export function streamOnEnd(conn: Conn): void {
  const st = conn.stream;
  if (!st || st.ended) return;
  st.ended = true;
  stopTimers(st);
  st.client.pause();
  st.client.off('data', clientOnData);
  st.client.off('end', clientOnEnd);
  closeBackend(st);
  const fe = conn.fe;
  const bin = st.req?.bytes ?? 0;
  const bout = st.rep?.bytes ?? 0;
  fe.traffic.bin += bin;
  fe.traffic.bout += bout;
  const ts = st.termination ?? '--';
  for (const t of [fe.backend.counters, st.server.counters]) {
    t.bin += bin;
    t.bout += bout;
    if (ts[0] === 'c' || ts[0] === 'C') t.cliAbrt++;
    if ((ts[0] === 's' || ts[0] === 'S') && ts[1] === 'D') t.srvAbrt++;
  }
  // The tcplog line, when the frontend logs (and, with dontlognull, when bytes moved); built only then.
  if (fe.model.logging && !(fe.model.dontlognull && bin === 0 && bout === 0)) {
    const src = conn.proxied?.source;
    const now = performance.now();
    fe.logger.log(
      formatTcplog({
        address: src?.address ?? conn.address,
        port: src?.port ?? conn.port,
        acceptDate: conn.acceptDate,
        frontend: fe.cfg.frontend.name,
        ssl: conn.tls !== null,
        backend: fe.backend.cfg.name,
        server: st.server.name,
        tw: Math.round((conn.completeTime ?? now) - conn.acceptTime),
        tc: st.connectTime ?? -1,
        tt: Math.round(now - conn.acceptTime),
        bytesToClient: bout,
        termination: ts,
        actconn: fe.counters.actconn,
        feconn: fe.counters.feconn,
        beconn: fe.backend.counters.cur,
        srvconn: st.server.counters.cur,
        retries: 0,
      }),
    );
  }
  for (const t of [fe.backend.counters, st.server.counters]) t.cur--;
  fe.sessionEvent(conn, { type: 'SESSION_END', writeTimeout: st.clientWriteTimeout });
  conn.stream = null;
}
