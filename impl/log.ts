/**
 * The proxy's logs, in HAProxy's formats, written to the `log stdout|stderr` targets of global.
 *
 * Two lines exist:
 *   - the embryonic kill line of kill_mini_session (0af2912fd; session_kill_embryonic in 2.6):
 *     "<ip>:<port> [<dd/Mon/yyyy:HH:MM:SS.mmm>] <fe>/<bind>: <message of err_code>"
 *   - the tcplog line at the end of a session (HAProxy 2.6's default tcplog format):
 *     "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
 * `format raw` writes the line alone; `format rfc3164` (HAProxy's default) prefixes the syslog
 * header "<PRI>Mmm dd HH:MM:SS embryonic[pid]: ". Both lines are LOG_INFO, as in HAProxy.
 *
 * Whether a line is written at all (p->to_log, dontlognull) is decided by the caller: the kill
 * line by the machines (the session machine emits logEmbryonicKill only when kill_mini_session
 * logs), the tcplog line by the stream's end (impl/stream.ts).
 */
import type { LogTarget } from './config.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** syslog severity of the proxy's lines (LOG_INFO). */
export const LOG_INFO = 6;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** Returns `ms` (epoch) as HAProxy's log date "dd/Mon/yyyy:HH:MM:SS.mmm", in local time. Pure. */
export function formatLogDate(ms: number): string {
  const d = new Date(ms);
  return (
    `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

/** Returns a client address as HAProxy prints it: an IPv4-mapped IPv6 address as its IPv4. Pure. */
export function logAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** What the embryonic kill line says. */
export interface EmbryonicKill {
  address: string; // the client (the PROXY header's source once one was read)
  port: number;
  acceptDate: number; // epoch ms of accept
  frontend: string;
  bind: string; //     the bind's name, or its number ("1") when unnamed, as HAProxy
  message: string; //  errCodeMessage(err_code)
}

/** Returns the kill line of kill_mini_session. Pure. */
export function formatEmbryonicKill(k: EmbryonicKill): string {
  return `${logAddress(k.address)}:${k.port} [${formatLogDate(k.acceptDate)}] ${k.frontend}/${k.bind}: ${k.message}`;
}

/** What the tcplog line says about one session. */
export interface SessionLog {
  address: string; //   %ci (the PROXY header's source when there was one)
  port: number; //      %cp
  acceptDate: number; // %t, epoch ms
  frontend: string; //  %ft without the '~'
  ssl: boolean; //      %ft gets '~' on an SSL frontend
  backend: string; //   %b
  server: string; //    %s ('<NOSRV>' when none was reached)
  tw: number; //        %Tw: ms from accept to the session's completion (handshakes, no queue)
  tc: number; //        %Tc: ms to connect to the server, -1 if it never connected
  tt: number; //        %Tt: ms from accept to the end
  bytesToClient: number; // %B
  termination: string; //   %ts, two characters ('--', 'cD', 'sC', 'SC', 'SD', 'CD', 'CC', 'sD')
  actconn: number; //   %ac
  feconn: number; //    %fc
  beconn: number; //    %bc
  srvconn: number; //   %sc
  retries: number; //   %rc
}

/** Returns the tcplog line of one session. Pure. */
export function formatTcplog(s: SessionLog): string {
  return (
    `${logAddress(s.address)}:${s.port} [${formatLogDate(s.acceptDate)}] ${s.frontend}${s.ssl ? '~' : ''} ` +
    `${s.backend}/${s.server} ${s.tw}/${s.tc}/${s.tt} ${s.bytesToClient} ${s.termination} ` +
    `${s.actconn}/${s.feconn}/${s.beconn}/${s.srvconn}/${s.retries} 0/0`
  );
}

/** Where log lines go: the `log` targets of global. */
export class Logger {
  constructor(
    private readonly targets: readonly LogTarget[],
    private readonly write: (to: 'stdout' | 'stderr', text: string) => void = writeStd,
  ) {}

  /** True iff at least one target would take a line of severity `level`. */
  enabled(level = LOG_INFO): boolean {
    return this.targets.some((t) => level <= t.maxLevel);
  }

  /** Writes `line` (no newline) at severity `level` to every target that takes it. */
  log(line: string, level = LOG_INFO, now = Date.now()): void {
    for (const t of this.targets) {
      if (level > t.maxLevel) continue;
      const text = t.format === 'raw' ? line : `${syslogHeader(t.facility * 8 + level, now)}${line}`;
      this.write(t.to, `${text}\n`);
    }
  }
}

function syslogHeader(pri: number, now: number): string {
  const d = new Date(now);
  const day = String(d.getDate()).padStart(2, ' ');
  return `<${pri}>${MONTHS[d.getMonth()]} ${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} embryonic[${process.pid}]: `;
}

function writeStd(to: 'stdout' | 'stderr', text: string): void {
  (to === 'stdout' ? process.stdout : process.stderr).write(text);
}
