/**
 * The proxy's table of client fds, like HAProxy's fdtab, keyed by the real OS fd
 * (socket._handle.fd), with a ledger of every close.
 *
 * An fd enters the table when the process holds it: `open` when Node accepted the socket (it
 * waits in the backlog emulation, impl/driver.ts), `take` when listener_accept takes it, `insert`
 * at the fdInsert effect (HAProxy's fd_insert). It leaves at `close`, which happens exactly once
 * per fd and is recorded as {fd, conn, how: 'fin' | 'rst', site}. A close of an fd that is not in
 * the table, or that another connection now owns, is recorded as a violation: it never throws,
 * so the proxy keeps running and the violation is visible through `show fd`.
 *
 * The OS may reuse an fd number only after the close(2); the table removes the entry at `close`,
 * when the proxy decides it, before or while Node performs the close(2). An `open` that finds its
 * fd still in the table is therefore a leak (an fd the proxy forgot to close), and a violation.
 */

/** Where an fd is in its life. */
export type FdState =
  | 'backlog' //   accepted by Node, parked until listener_accept takes it
  | 'accepted' //  taken by listener_accept, not in fdtab (before fd_insert, or never inserted)
  | 'inserted'; // in fdtab (fd_insert)

/** One fd the process holds for a client. */
export interface FdEntry {
  fd: number;
  conn: number; //  the connection id (driver) that owns it
  state: FdState;
}

/** One close, as the ledger records it. */
export interface FdClose {
  fd: number;
  conn: number;
  how: 'fin' | 'rst';
  site: string; //      the HAProxy site of the close (out_close, kill_mini_session, ...) or 'stop'
  state: FdState; //    where the fd was when closed
}

/** What `show fd` prints. */
export interface FdReport {
  live: FdEntry[];
  opens: number;
  closes: number;
  fin: number;
  rst: number;
  recent: FdClose[]; //  the last RECENT closes, oldest first
  violations: string[];
}

/** How many closes the ledger keeps in detail (the counts cover all of them). */
export const RECENT = 256;

/** The fd table and its ledger. Owns no socket: it records what the driver does with them. */
export class FdTab {
  private readonly entries = new Map<number, FdEntry>();
  private readonly recent: FdClose[] = [];
  private opens = 0;
  private closes = 0;
  private fin = 0;
  private rst = 0;
  readonly violations: string[] = [];

  /** Records that the process now holds `fd` for connection `conn` (accepted by Node). */
  open(fd: number, conn: number): void {
    const old = this.entries.get(fd);
    if (old) this.violations.push(`fd ${fd} of connection ${old.conn} was never closed (reused by ${conn})`);
    this.entries.set(fd, { fd, conn, state: 'backlog' });
    this.opens++;
  }

  /** Records that listener_accept took `fd` out of the backlog. */
  take(fd: number, conn: number): void {
    const e = this.owned(fd, conn, 'taken');
    if (e) e.state = 'accepted';
  }

  /** fd_insert: `fd` is registered with its I/O handler. A second insert is a violation. */
  insert(fd: number, conn: number): void {
    const e = this.owned(fd, conn, 'inserted');
    if (!e) return;
    if (e.state === 'inserted') this.violations.push(`fd ${fd} inserted twice (connection ${conn})`);
    e.state = 'inserted';
  }

  /**
   * Records the close of `fd` by connection `conn`, as a FIN or an RST, at `site`.
   * Returns true if this is the fd's one close (the caller must then close the socket), false
   * if it is a second close or a close of an fd the connection does not own (a violation,
   * recorded; the caller must not touch the socket).
   */
  close(fd: number, conn: number, how: 'fin' | 'rst', site: string): boolean {
    const e = this.owned(fd, conn, `closed at ${site}`);
    if (!e) return false;
    this.entries.delete(fd);
    this.closes++;
    if (how === 'fin') this.fin++;
    else this.rst++;
    this.recent.push({ fd, conn, how, site, state: e.state });
    if (this.recent.length > RECENT) this.recent.shift();
    return true;
  }

  /** The number of fds the table holds. */
  get size(): number {
    return this.entries.size;
  }

  /** Returns a copy of the table and its ledger. */
  report(): FdReport {
    return {
      live: [...this.entries.values()].map((e) => ({ ...e })).sort((a, b) => a.fd - b.fd),
      opens: this.opens,
      closes: this.closes,
      fin: this.fin,
      rst: this.rst,
      recent: this.recent.map((c) => ({ ...c })),
      violations: [...this.violations],
    };
  }

  private owned(fd: number, conn: number, what: string): FdEntry | null {
    const e = this.entries.get(fd);
    if (!e) {
      this.violations.push(`fd ${fd} ${what} by connection ${conn} but it is not open (closed twice?)`);
      return null;
    }
    if (e.conn !== conn) {
      this.violations.push(`fd ${fd} ${what} by connection ${conn} but connection ${e.conn} owns it`);
      return null;
    }
    return e;
  }
}
