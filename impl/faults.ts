/**
 * Planted faults: deliberate bugs the driver (impl/driver.ts) carries behind the environment
 * variable EMBRYONIC_PLANTED_FAULT, so that a test can show that the property suite catches a
 * broken proxy (test/impl/plantedFaults.test.ts). The variable is never set in normal runs; without
 * it every function here is a constant "no".
 *
 * The faults, each the kind of mistake a port of the embryonic-session design makes:
 *   skip-fd-close         the first close of a client socket that is still open is recorded in the fd
 *                         ledger but never done: an fd leaks and the client never sees its FIN or RST.
 *   buffers-at-accept     an accepted connection with a handshake gets its req and rep buffers at
 *                         once (the design before 2542b53b1); session_complete reuses them and the
 *                         kill path frees them, so nothing leaks: only the ledger, read while the
 *                         handshake runs, shows it.
 *   keep-actconn-on-kill  kill_mini_session forgets actconn--: every killed embryonic session keeps
 *                         a global slot for ever.
 * The proxy prints a warning at start when one is planted (cli/proxy.ts does not hide it).
 */

/** The planted faults by name. */
export const PLANTED_FAULTS = ['skip-fd-close', 'buffers-at-accept', 'keep-actconn-on-kill'] as const;
export type PlantedFault = (typeof PLANTED_FAULTS)[number];

/** The environment variable that plants a fault. */
export const PLANTED_FAULT_ENV = 'EMBRYONIC_PLANTED_FAULT';

/**
 * Returns the fault `value` names (EMBRYONIC_PLANTED_FAULT's value), or null for none (unset or
 * empty). Throws an Error naming the known faults for any other value, so that a typo cannot
 * silently test a correct proxy. Pure.
 */
export function parsePlantedFault(value: string | undefined): PlantedFault | null {
  if (value === undefined || value === '') return null;
  if ((PLANTED_FAULTS as readonly string[]).includes(value)) return value as PlantedFault;
  throw new Error(`${PLANTED_FAULT_ENV}=${value}: expected one of ${PLANTED_FAULTS.join(', ')}`);
}

const planted = parsePlantedFault(process.env[PLANTED_FAULT_ENV]);
let closeSkipped = false;

/** Returns the fault planted in this process, or null (the normal case). */
export function plantedFault(): PlantedFault | null {
  return planted;
}

/**
 * skip-fd-close: returns true exactly once, for the first client close of the process whose socket
 * is still open (`destroyed` false: Node has not already closed it after a client's reset), which
 * the caller then skips (after recording it). Always false without the fault.
 */
export function skipsFdClose(destroyed: boolean): boolean {
  if (planted !== 'skip-fd-close' || closeSkipped || destroyed) return false;
  closeSkipped = true;
  return true;
}

/** buffers-at-accept: true iff the buffers are allocated when the deadline is armed, at accept. */
export function allocatesBuffersAtAccept(): boolean {
  return planted === 'buffers-at-accept';
}

/**
 * keep-actconn-on-kill: returns true iff the caller must skip the actconn-- it is about to apply;
 * `onKillPath` says whether that decrement is kill_mini_session's. Always false without the fault.
 */
export function keepsActconn(onKillPath: boolean): boolean {
  return planted === 'keep-actconn-on-kill' && onKillPath;
}

/**
 * buffers-at-accept: allocates `bufs.req` and `bufs.rep` with `alloc` when the fault is planted;
 * does nothing otherwise. The caller owns what is allocated, as for its own buffers.
 */
export function plantBuffersAtAccept<T>(
  bufs: Record<'req' | 'rep', T | null>,
  alloc: (b: 'req' | 'rep') => T,
): void {
  if (planted !== 'buffers-at-accept') return;
  for (const b of ['req', 'rep'] as const) bufs[b] ??= alloc(b);
}

/**
 * buffers-at-accept: frees with `free` the req and rep buffers still held when the session is
 * freed (the kill paths, which free no buffer), and clears them. Does nothing without the fault.
 */
export function unplantBuffers<T>(bufs: Record<'req' | 'rep', T | null>, free: (item: T) => void): void {
  if (planted !== 'buffers-at-accept') return;
  for (const b of ['req', 'rep'] as const) {
    const item = bufs[b];
    if (item !== null) free(item);
    bufs[b] = null;
  }
}
