/**
 * The stats socket: `stats socket PATH` in global, a unix socket created with mode 0600 (or the
 * configured `mode`), answering HAProxy's CLI commands in its non-interactive form (one line of
 * commands separated by ';', the answers, then the close).
 *
 * HAProxy commands, same names and formats as Debian's HAProxy 2.6.12:
 *   show info   "Name: value" lines: Name, Version, Pid, Uptime, Maxconn, CurrConns (actconn),
 *               CumConns (totalconn), MaxSslConns, CurrSslConns (sslconns), CumSslConns
 *               (totalsslconns, 0 in the dev12 profile), ConnRate, SessRate, Jobs, Listeners,
 *               PoolFailed, ...
 *   show stat   CSV with HAProxy 2.6's exact header line (STAT_HEADER) and field order; one
 *               FRONTEND row, one listener row (only with `option socket-stats`, as HAProxy;
 *               svname is the bind's name, "sock-1" when unnamed), then per backend its server
 *               rows and its BACKEND row. The fields the proxy keeps are filled (pxname, svname,
 *               scur, smax, slim, stot, bin, bout, econ, status, rate, rate_lim, rate_max,
 *               cli_abrt, srv_abrt, lbtot, connect, conn_rate, conn_rate_max, conn_tot, dcon,
 *               addr, mode, ...); every other field is printed as an idle HAProxy prints it (0,
 *               a constant, or empty), so that the same fields are empty in both.
 * Commands of this proxy only (documented, not in HAProxy):
 *   show pool   the pool ledger (impl/pool.ts) as one JSON object
 *   show fd     the fd table and its close ledger (impl/fdtab.ts) as one JSON object
 *   show violations  what the proxy's host (impl/driver.ts, impl/stream.ts) found wrong in the
 *               effects it was asked to execute, as one JSON object {"violations": [...]}: an
 *               allocation made twice, a free of nothing, a stream without its buffers, ... Empty in
 *               a sound run; the tests read it beside the pool's and the fd table's own violations.
 *   show monitor     the live monitor of --monitor (impl/monitorThread.ts) as one JSON object
 *               {"monitor": {state, lines, behind: {numbers, ms}, why}}: whether it checks, the
 *               lines it was handed, how far its checker is behind; {"monitor": null} without it
 *   set fault SITE N    make the N-th allocation attempt at SITE fail (impl/pool.ts failAt, the
 *               runtime form of --fail-alloc); only on a `level admin` socket
 *   set clock advance MS  move the proxy's virtual clock MS ms forward, firing the deadlines and
 *               queue tasks due (impl/clock.ts); only when the proxy runs with --test-clock
 * Each set command answers an empty line, or one line saying why it was refused.
 * There is no command that shows the machines' states: the proxy is observed from outside.
 *
 * The CLI counts as HAProxy counts it (its listener is LI_O_UNLIMITED): each CLI connection adds 1
 * to CumConns, and the CLI listener and each open CLI connection count in Jobs and Listeners, but
 * not in CurrConns. These CLI counts are kept here, outside the machines, which model the
 * frontend's listener only.
 */
import { chmodSync, readFileSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Counters } from '../machines/counters.ts';
import type { BackendConfig, ProxyConfig } from './config.ts';
import type { FdReport } from './fdtab.ts';
import type { MonitorStatus } from './monitorThread.ts';
import { POOL_SITES, type PoolLedger, type PoolSite } from './pool.ts';

/** The header line of `show stat` in HAProxy 2.6 (Debian 2.6.12), verbatim. */
export const STAT_HEADER =
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,';

/** The fields of a `show stat` row, in order. */
export const STAT_FIELDS: readonly string[] = STAT_HEADER.slice(2).split(',').slice(0, -1);

const words = (s: string): string[] => s.split(' ');
const SSL = words('- ssl_sess ssl_reused_sess ssl_failed_handshake');
const H2H1 = words(
  'h2_headers_rcvd h2_data_rcvd h2_settings_rcvd h2_rst_stream_rcvd h2_goaway_rcvd h2_detected_conn_protocol_errors h2_detected_strm_protocol_errors h2_rst_stream_resp h2_goaway_resp h2_open_connections h2_backend_open_streams h2_total_connections h2_backend_total_streams h1_open_connections h1_open_streams h1_total_connections h1_total_streams h1_bytes_in h1_bytes_out h1_spliced_bytes_in h1_spliced_bytes_out',
);
const HRSP = words('hrsp_1xx hrsp_2xx hrsp_3xx hrsp_4xx hrsp_5xx hrsp_other');

/**
 * The fields HAProxy 2.6 prints (non-empty) on each row type, by mode; every other field is empty.
 * Measured on Debian's 2.6.12 (test/impl/stats.test.ts compares them with a live HAProxy).
 */
export const ROW_FIELDS: Record<
  'frontend' | 'listener' | 'server' | 'backend',
  Record<'tcp' | 'http', string[]>
> = (() => {
  const fe = words(
    'scur smax slim stot bin bout dreq dresp ereq status pid iid sid type rate rate_lim rate_max req_rate req_rate_max req_tot comp_in comp_out comp_byp comp_rsp mode conn_rate conn_rate_max conn_tot dcon dses wrew eint',
  );
  const li = words(
    'scur smax slim stot bin bout dreq dresp ereq status pid iid sid type addr mode dcon dses wrew eint',
  );
  const sv = words(
    'qcur qmax scur smax stot bin bout dresp econ eresp wretr wredis status weight act bck lastchg pid iid sid lbtot type rate rate_max cli_abrt srv_abrt lastsess qtime ctime rtime ttime addr mode wrew connect reuse srv_icur qtime_max ctime_max rtime_max ttime_max eint idle_conn_cur safe_conn_cur used_conn_cur need_conn_est uweight',
  );
  const be = words(
    'qcur qmax scur smax slim stot bin bout dreq dresp econ eresp wretr wredis status weight act bck chkdown lastchg downtime pid iid sid lbtot type rate rate_max cli_abrt srv_abrt comp_in comp_out comp_byp comp_rsp lastsess qtime ctime rtime ttime mode algo wrew connect reuse qtime_max ctime_max rtime_max ttime_max eint uweight agg_server_status agg_server_check_status agg_check_status',
  );
  return {
    frontend: {
      tcp: [...fe, ...SSL, ...H2H1],
      http: [...fe, ...HRSP, 'intercepted', 'cache_lookups', 'cache_hits', ...SSL, ...H2H1],
    },
    listener: { tcp: [...li, ...SSL], http: [...li, ...SSL] },
    server: { tcp: [...sv, ...SSL], http: [...sv, ...HRSP, 'req_tot', ...SSL] },
    backend: {
      tcp: [...be, ...SSL, ...H2H1],
      http: [...be, ...HRSP, 'req_tot', 'cache_lookups', 'cache_hits', ...SSL, ...H2H1],
    },
  };
})();

/** Traffic and outcome counters of a server or a backend (the data phase, impl/stream.ts). */
export interface TrafficCounters {
  cur: number; //      sessions now (scur)
  max: number; //      highest cur (smax)
  tot: number; //      sessions (stot; lbtot on servers)
  bin: number; //      bytes from the clients
  bout: number; //     bytes to the clients
  econ: number; //     connection errors to the server (refused, reset or timed out at connect)
  connects: number; // connection attempts (connect)
  cliAbrt: number; //  sessions ended by the client (abort or client timeout) in the data phase
  srvAbrt: number; //  sessions ended by the server (reset or server timeout) in the data phase
  lastSess: number | null; // epoch ms of the last session, null = never
}

/** Returns zeroed traffic counters. Pure. */
export function zeroTraffic(): TrafficCounters {
  return {
    cur: 0,
    max: 0,
    tot: 0,
    bin: 0,
    bout: 0,
    econ: 0,
    connects: 0,
    cliAbrt: 0,
    srvAbrt: 0,
    lastSess: null,
  };
}

/** One backend as the proxy runs it: its configuration and counters, per server too. */
export interface BackendRuntime {
  cfg: BackendConfig;
  counters: TrafficCounters;
  servers: { name: string; host: string; port: number; counters: TrafficCounters }[];
  next: number; // round-robin position
}

/** What the stats socket reads from the proxy. */
export interface StatsSource {
  readonly cfg: ProxyConfig;
  readonly counters: Counters;
  readonly maxima: {
    listenerConnMax: number;
    connRateMax: number;
    sessRateMax: number;
    feConnRateMax: number;
  };
  readonly traffic: { bin: number; bout: number }; // the frontend's (and its one listener's) bytes
  readonly backends: BackendRuntime[];
  readonly startedAt: number; // epoch ms
  readonly stopping: boolean;
  listenerState(): 'ready' | 'full' | 'limited';
  listenAddress(): string; //    "ip:port" as bound
  poolLedger(): PoolLedger;
  fdReport(): FdReport;
  hostViolations(): string[]; // what `show violations` lists (a copy)
}

/** The CLI's own counts (HAProxy counts the CLI as a listener with LI_O_UNLIMITED). */
export interface CliCounts {
  cum: number; // CLI connections so far
  cur: number; // CLI connections open now
}

const VERSION = (() => {
  try {
    return (
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
  } catch {
    return '0.0.0';
  }
})();

/**
 * Returns the answer to `show info` for `src` with CLI counts `cli`: "Name: value" lines and a
 * final empty line, as HAProxy. Pure.
 */
export function showInfo(src: StatsSource, cli: CliCounts, now = Date.now()): string {
  const c = src.counters;
  const up = Math.floor((now - src.startedAt) / 1000);
  const uptime = `${Math.floor(up / 86400)}d ${Math.floor((up % 86400) / 3600)}h${String(Math.floor((up % 3600) / 60)).padStart(2, '0')}m${String(up % 60).padStart(2, '0')}s`;
  const poolFailed = Object.values(src.poolLedger().sites).reduce((n, s) => n + s.failed, 0);
  const listeners = 1 + (src.cfg.global.stats ? 1 : 0);
  const lines: [string, string | number][] = [
    ['Name', 'embryonic'],
    ['Version', VERSION],
    ['Nbthread', 1],
    ['Nbproc', 1],
    ['Process_num', 1],
    ['Pid', process.pid],
    ['Uptime', uptime],
    ['Uptime_sec', up],
    ['PoolFailed', poolFailed],
    ['Maxconn', src.cfg.global.maxconn],
    ['Hard_maxconn', src.cfg.global.maxconn],
    ['CurrConns', c.actconn],
    ['CumConns', c.totalconn + cli.cum],
    ['MaxSslConns', src.cfg.global.maxsslconn ?? 0],
    ['CurrSslConns', c.sslconns],
    ['CumSslConns', c.totalsslconns],
    ['ConnRate', c.connPerSec],
    ['ConnRateLimit', src.cfg.global.maxconnrate ?? 0],
    ['MaxConnRate', src.maxima.connRateMax],
    ['SessRate', c.feSessPerSec],
    ['SessRateLimit', 0],
    ['MaxSessRate', src.maxima.sessRateMax],
    ['Stopping', src.stopping ? 1 : 0],
    ['Jobs', c.jobs + listeners + cli.cur],
    ['Unstoppable Jobs', 0],
    ['Listeners', listeners],
  ];
  return `${lines.map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n`;
}

/** Returns the answer to `show stat` for `src`: the header, the rows, a final empty line. Pure. */
export function showStat(src: StatsSource, now = Date.now()): string {
  const cfg = src.cfg;
  const fe = cfg.frontend;
  const c = src.counters;
  const rows: string[] = [];
  const lastchg = Math.floor((now - src.startedAt) / 1000);
  const feIid = fe.index + 2;

  rows.push(
    row('frontend', fe.mode, {
      pxname: fe.name,
      svname: 'FRONTEND',
      scur: c.feconn,
      smax: c.connMax,
      slim: fe.maxconn,
      stot: c.cumSess,
      bin: src.traffic.bin,
      bout: src.traffic.bout,
      status: 'OPEN',
      pid: 1,
      iid: feIid,
      sid: 0,
      type: 0,
      rate: c.feSessPerSec,
      rate_lim: fe.rateLimitSessions ?? 0,
      rate_max: src.maxima.sessRateMax,
      mode: fe.mode,
      conn_rate: c.feConnPerSec,
      conn_rate_max: src.maxima.feConnRateMax,
      conn_tot: c.cumConn,
      dcon: c.deniedConn,
      '-': '-',
    }),
  );
  if (fe.socketStats) {
    const bindMax = fe.bind.maxconn ?? 0;
    const state = src.listenerState();
    const status = bindMax === 0 || c.nbconn < bindMax ? (state === 'limited' ? 'WAITING' : 'OPEN') : 'FULL';
    rows.push(
      row('listener', fe.mode, {
        pxname: fe.name,
        svname: fe.bind.name ?? 'sock-1',
        scur: c.nbconn,
        smax: src.maxima.listenerConnMax,
        slim: bindMax,
        stot: c.lCumConn,
        bin: src.traffic.bin,
        bout: src.traffic.bout,
        status,
        pid: 1,
        iid: feIid,
        sid: 1,
        type: 3,
        addr: src.listenAddress(),
        mode: fe.mode,
        dcon: c.deniedConn,
        '-': '-',
      }),
    );
  }
  for (const be of src.backends) {
    const iid = be.cfg.index + 2;
    be.servers.forEach((s, i) => {
      rows.push(
        row('server', be.cfg.mode, {
          pxname: be.cfg.name,
          svname: s.name,
          ...trafficFields(s.counters),
          status: 'no check',
          weight: 1,
          act: 1,
          lastchg,
          pid: 1,
          iid,
          sid: i + 1,
          lbtot: s.counters.tot,
          type: 2,
          lastsess: lastSess(s.counters, now),
          addr: `${s.host}:${s.port}`,
          mode: be.cfg.mode,
          connect: s.counters.connects,
          uweight: 1,
          '-': '-',
        }),
      );
    });
    const fullconn = Math.max(1, Math.floor((be.cfg.name === fe.backend ? fe.maxconn : 0) / 10));
    rows.push(
      row('backend', be.cfg.mode, {
        pxname: be.cfg.name,
        svname: 'BACKEND',
        ...trafficFields(be.counters),
        slim: fullconn,
        status: 'UP',
        weight: be.servers.length,
        act: be.servers.length,
        lastchg,
        pid: 1,
        iid,
        sid: 0,
        lbtot: be.counters.tot,
        type: 1,
        lastsess: lastSess(be.counters, now),
        mode: be.cfg.mode,
        algo: 'roundrobin',
        connect: be.counters.connects,
        uweight: be.servers.length,
        '-': '-',
      }),
    );
  }
  return `${STAT_HEADER}\n${rows.join('\n')}\n\n`;
}

function trafficFields(t: TrafficCounters): Record<string, number> {
  return {
    scur: t.cur,
    smax: t.max,
    stot: t.tot,
    bin: t.bin,
    bout: t.bout,
    econ: t.econ,
    cli_abrt: t.cliAbrt,
    srv_abrt: t.srvAbrt,
  };
}

function lastSess(t: TrafficCounters, now: number): number {
  return t.lastSess === null ? -1 : Math.floor((now - t.lastSess) / 1000);
}

/**
 * One CSV row of type `type` in `mode`: the fields HAProxy prints on it get `values[field]`,
 * or 0 when not given; the others are empty. Pure.
 */
function row(
  type: keyof typeof ROW_FIELDS,
  mode: 'tcp' | 'http',
  values: Record<string, string | number>,
): string {
  const printed = new Set(ROW_FIELDS[type][mode]);
  const cells = STAT_FIELDS.map((f) => {
    if (f === 'pxname' || f === 'svname') return String(values[f]);
    if (!printed.has(f)) return '';
    return String(values[f] ?? 0);
  });
  return `${cells.join(',')},`;
}

/**
 * Answers one command line (commands separated by ';'). Pure apart from reading `src` and, for a
 * `set` command, calling its control in `controls` (none by default: every `set` is refused).
 * Returns the text to write back; an unknown command gets HAProxy's "Unknown command" answer
 * followed by the list of commands this proxy knows.
 */
export function answer(line: string, src: StatsSource, cli: CliCounts, controls: StatsControls = {}): string {
  return line
    .split(';')
    .map((cmd) => cmd.trim().replace(/\s+/g, ' '))
    .filter((cmd) => cmd.length > 0)
    .map((cmd) => {
      switch (cmd) {
        case 'show info':
          return showInfo(src, cli);
        case 'show stat':
          return showStat(src);
        case 'show pool':
          return `${JSON.stringify(src.poolLedger())}\n\n`;
        case 'show fd':
          return `${JSON.stringify(src.fdReport())}\n\n`;
        case 'show violations':
          return `${JSON.stringify({ violations: src.hostViolations() })}\n\n`;
        case 'show monitor':
          return `${JSON.stringify({ monitor: controls.monitorStatus?.() ?? null })}\n\n`;
        default:
          if (cmd.startsWith('set ')) return setCommand(cmd, controls);
          return `Unknown command: '${cmd}'\nembryonic knows: show info, show stat, show pool, show fd, show violations, show monitor, set fault, set clock advance\n\n`;
      }
    })
    .join('');
}

/**
 * The runtime controls behind the `set` commands (not HAProxy's; see the file comment). A control
 * that is absent refuses its command: `setFault` exists on a `level admin` socket, `advanceClock`
 * only with --test-clock.
 */
export interface StatsControls {
  setFault?: (site: PoolSite, n: number) => void;
  advanceClock?: (ms: number) => void;
  monitorStatus?: () => MonitorStatus; // the live monitor's state, for `show monitor` (with --monitor)
}

/** The longest `set clock advance` accepted at once: one day. */
export const MAX_ADVANCE_MS = 86_400_000;

/** Answers one `set ...` command with `controls`: an empty line, or why it was refused. */
function setCommand(cmd: string, controls: StatsControls): string {
  const fault = /^set fault ([a-z]+) (\d+)$/.exec(cmd);
  if (fault) {
    if (!controls.setFault) return 'set fault: permission denied (needs a stats socket with level admin)\n\n';
    const site = fault[1] as PoolSite;
    const n = Number(fault[2]);
    if (!POOL_SITES.includes(site) || n < 1)
      return `set fault: expected SITE N with SITE in ${POOL_SITES.join(', ')} and N >= 1\n\n`;
    controls.setFault(site, n);
    return '\n';
  }
  const clock = /^set clock advance (\d+)$/.exec(cmd);
  if (clock) {
    if (!controls.advanceClock)
      return 'set clock: the proxy runs on the real clock (start it with --test-clock)\n\n';
    // A day at most: the one-second rate period fires at every second of the advance.
    if (Number(clock[1]) > MAX_ADVANCE_MS)
      return `set clock: advance at most ${MAX_ADVANCE_MS} ms at once\n\n`;
    controls.advanceClock(Number(clock[1]));
    return '\n';
  }
  return `Unknown command: '${cmd}'\nembryonic knows: set fault SITE N, set clock advance MS\n\n`;
}

/** The stats socket server. Owns its listening socket and the CLI connections until close(). */
export class StatsServer {
  readonly cli: CliCounts = { cum: 0, cur: 0 };
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();

  constructor(
    private readonly path: string,
    private readonly mode: number,
    private readonly src: StatsSource,
    private readonly controls: StatsControls = {},
  ) {
    this.server = net.createServer({ allowHalfOpen: true });
    owners.set(this.server, this);
    this.server.on('connection', statsOnConnection);
  }

  /**
   * Creates the socket file with `mode` (no window with a wider mode: the umask is narrowed while
   * it is bound) and starts answering. Rejects if the path cannot be bound.
   */
  listen(): Promise<void> {
    try {
      unlinkSync(this.path);
    } catch {
      // no stale socket
    }
    const previous = process.umask(0o777 & ~this.mode);
    return new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => {
        this.server.off('error', reject);
        resolve();
      });
    }).finally(() => {
      process.umask(previous);
      try {
        chmodSync(this.path, this.mode);
      } catch {
        // the listen failed: nothing to chmod
      }
    });
  }

  /** Stops answering, closes the CLI connections and removes the socket file. */
  close(): Promise<void> {
    for (const s of this.open) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Takes one CLI connection (statsOnConnection). */
  accept(socket: net.Socket): void {
    this.cli.cum++;
    this.cli.cur++;
    this.open.add(socket);
    sockets.set(socket, { server: this, pending: '' });
    socket.setEncoding('utf8');
    socket.on('data', statsOnData);
    socket.on('end', statsOnEnd);
    socket.on('error', statsOnError);
    socket.on('close', statsOnClose);
  }

  /** Answers `line` on `socket` and closes it once the answer is flushed (non-interactive mode). */
  respond(socket: net.Socket, line: string): void {
    socket.once('finish', statsOnFinish);
    socket.end(answer(line, this.src, this.cli, this.controls));
  }

  /** Forgets a closed CLI connection. */
  forget(socket: net.Socket): void {
    if (this.open.delete(socket)) this.cli.cur--;
  }
}

const owners = new WeakMap<net.Server, StatsServer>();
const sockets = new WeakMap<net.Socket, { server: StatsServer; pending: string; answered?: boolean }>();

function statsOnConnection(this: net.Server, socket: net.Socket): void {
  owners.get(this)?.accept(socket);
}

function statsOnData(this: net.Socket, text: string): void {
  const st = sockets.get(this);
  if (!st || st.answered) return;
  st.pending += text;
  const nl = st.pending.indexOf('\n');
  if (nl === -1) {
    if (st.pending.length > 4096) this.destroy();
    return;
  }
  st.answered = true;
  st.server.respond(this, st.pending.slice(0, nl));
}

function statsOnEnd(this: net.Socket): void {
  const st = sockets.get(this);
  if (!st || st.answered) return;
  st.answered = true;
  st.server.respond(this, st.pending);
}

function statsOnFinish(this: net.Socket): void {
  this.destroy();
}

function statsOnError(this: net.Socket): void {
  this.destroy();
}

function statsOnClose(this: net.Socket): void {
  sockets.get(this)?.server.forget(this);
}
