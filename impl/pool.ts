/**
 * The proxy's memory pools, with a ledger and fault injection: HAProxy's pool2_session, the task
 * allocator, pool2_buffer (the req and rep channel buffers) and the http txn, as one object.
 *
 * Every allocation site has a free list and a ledger (allocs, frees, live, failed, the highest
 * live count). req and rep items are real Buffers of tune.bufsize that the data phase moves bytes
 * through (impl/stream.ts); session, task and txn items are small records. A freed item returns to
 * its free list and is reused by the next allocation at its site.
 *
 * Two-phase allocation. The machines need an allocation's outcome as an event parameter *before*
 * the step that allocates (StepInputs.acceptFail / completeFail): session_accept takes different
 * transitions when pool_alloc2 fails. So a failure is decided in two phases:
 *   1. plan: before dispatching the step, the driver asks which site would fail now.
 *      planAccept() walks session_accept's allocations in the order of the profile's HAProxy,
 *      which the session machine states (acceptAllocations: in 1.5-dev12 the session, the task,
 *      the SSL context, session_complete's buffers; in 2.x the SSL context first), and
 *      planComplete() walks session_complete's (req, rep, txn). The first site whose next
 *      allocation is an injected fault is the answer; nothing is consumed.
 *   2. commit and allocate: when the step really reaches the planned allocation (the driver sees
 *      the sessionAccept or handshakeEnded effect it was planned for), commit() records the
 *      failed attempt, and the effects sessionAlloc, taskNew, sslCtxNew and bufAlloc allocate for real. They
 *      never fail: an effect that reaches a site whose allocation was to fail is a violation
 *      (recorded, the allocation still succeeds), because it means the machine and the plan
 *      disagree.
 * A plan that is not committed (the listener did not accept, the handshake did not end) changes
 * nothing.
 *
 * Fault injection: `failAt(site, n)` makes the n-th allocation attempt at `site` (1-based, counted
 * from start-up, failed attempts included) fail. The CLI flag `--fail-alloc SITE:N[,SITE:N]` and
 * the environment variable EMBRYONIC_FAIL_ALLOC (same syntax, for child processes) set them.
 *
 * A buffer that a write still reads (the kernel has not taken the bytes yet) is pinned; freeing it
 * is recorded in the ledger at once, but the Buffer returns to the free list only when its last
 * pin is released, so that no later session can overwrite bytes still being sent.
 */
import type { ModelConfig } from '../machines/config.ts';
import {
  acceptAllocations,
  type AcceptFailSite,
  type CompleteFailSite,
  sessionBuffers,
  type SourceClass,
} from '../machines/session.machine.ts';

/**
 * The allocation sites the pool serves: the session, its task, the SSL context of a TLS
 * connection (ssl_sock_init's SSL_new; the machines' 'dataInit' site), the channel buffers and the
 * http txn.
 */
export type PoolSite = 'session' | 'task' | 'ssl' | 'req' | 'rep' | 'txn';

export const POOL_SITES: readonly PoolSite[] = ['session', 'task', 'ssl', 'req', 'rep', 'txn'];

/** One allocated object. */
export interface PoolItem {
  readonly site: PoolSite;
  readonly serial: number; //   which object of its site this is (stable across reuses)
  readonly buf: Buffer | null; // tune.bufsize bytes for req and rep; null for the small records
  live: boolean; //             allocated and not freed
  pins: number; //              writes still reading `buf`
}

/** The ledger of one site. */
export interface SiteLedger {
  allocs: number; //   successful allocations
  frees: number;
  live: number; //     allocs - frees
  failed: number; //   injected failures committed
  maxLive: number; //  the highest `live` seen
  free: number; //     objects on the free list (pinned ones not yet back excluded)
  attempts: number; // allocs + failed
}

/**
 * Where the reads of a session's sockets landed: straight in its req or rep channel buffer, or in
 * the shared read area (a plain bind's client socket before its stream reads into req,
 * impl/clientSocket.ts). A TLS client's reads are node:net's own and are counted nowhere.
 */
export interface ReadLedger {
  req: number;
  rep: number;
  area: number;
}

/** The whole ledger, as `show pool` prints it. */
export interface PoolLedger {
  bufsize: number;
  sites: Record<PoolSite, SiteLedger>;
  reads: ReadLedger;
  faults: string[]; //     injected faults not yet reached, as SITE:N
  violations: string[];
}

/** Which site a planned step fails at. */
export interface AllocPlan {
  site: PoolSite | 'none';
}

/** One injected fault: the n-th allocation attempt at `site` fails. */
export interface FaultSpec {
  site: PoolSite;
  n: number;
}

/**
 * Parses "SITE:N[,SITE:N...]" (the --fail-alloc flag and EMBRYONIC_FAIL_ALLOC). Pure.
 * Returns the faults; throws an Error naming the bad item when one is not SITE:N with a known
 * site and N ≥ 1.
 */
export function parseFaultSpecs(text: string): FaultSpec[] {
  if (text.trim() === '') return [];
  return text.split(',').map((item) => {
    const m = /^\s*([a-z]+):(\d+)\s*$/.exec(item);
    if (!m || !POOL_SITES.includes(m[1] as PoolSite) || Number(m[2]) < 1)
      throw new Error(
        `bad allocation fault '${item}': expected SITE:N with SITE in ${POOL_SITES.join(', ')} and N ≥ 1`,
      );
    return { site: m[1] as PoolSite, n: Number(m[2]) };
  });
}

/**
 * The pools. Owns every item it allocates; the caller holds an item from alloc() to free() and
 * must not touch it afterwards.
 */
export class Pool {
  private readonly freeLists = new Map<PoolSite, PoolItem[]>();
  private readonly ledgers = new Map<PoolSite, SiteLedger>();
  private readonly faults = new Set<string>();
  private readonly serials = new Map<PoolSite, number>();
  private readonly reads: ReadLedger = { req: 0, rep: 0, area: 0 };
  readonly violations: string[] = [];

  constructor(
    readonly bufsize: number,
    faults: readonly FaultSpec[] = [],
  ) {
    for (const site of POOL_SITES) {
      this.freeLists.set(site, []);
      this.serials.set(site, 0);
      this.ledgers.set(site, { allocs: 0, frees: 0, live: 0, failed: 0, maxLive: 0, free: 0, attempts: 0 });
    }
    for (const f of faults) this.failAt(f.site, f.n);
  }

  /** Makes the `n`-th allocation attempt at `site` fail (1-based, from start-up). */
  failAt(site: PoolSite, n: number): void {
    this.faults.add(`${site}:${n}`);
  }

  /**
   * Returns the site where session_accept's allocations would fail now, for a connection whose
   * source matched `src`, under `config` (its handshake, transport and mode), with `sslconns` SSL
   * connections alive; 'none' if none would. An SSL context that maxsslconn refuses is never
   * allocated, so its site is not reached. Consumes nothing (see the two phases in the file comment).
   */
  planAccept(src: SourceClass, config: ModelConfig, sslconns: number): AllocPlan {
    const walk = acceptAllocations(config, src, sslconns).map((s): PoolSite =>
      s === 'dataInit' ? 'ssl' : s,
    );
    return { site: walk.find((s) => this.wouldFail(s)) ?? 'none' };
  }

  /**
   * Returns the site where session_complete's allocations (sessionBuffers) would fail now under
   * `config`; 'none' if none would. Consumes nothing.
   */
  planComplete(config: ModelConfig): AllocPlan {
    return { site: sessionBuffers(config).find((s) => this.wouldFail(s)) ?? 'none' };
  }

  /** The plan as the machines' accept input: the SSL context's site is conn_data_init's. Pure. */
  static acceptFail(plan: AllocPlan): AcceptFailSite {
    return plan.site === 'ssl' ? 'dataInit' : plan.site;
  }

  /** The plan as the machines' completion input; session, task and SSL context never fail there. Pure. */
  static completeFail(plan: AllocPlan): CompleteFailSite | 'none' {
    return plan.site === 'session' || plan.site === 'task' || plan.site === 'ssl' ? 'none' : plan.site;
  }

  /**
   * Records the failed attempt of `plan`, once the step it was planned for reaches it.
   * Does nothing for a plan without failure.
   */
  commit(plan: AllocPlan): void {
    if (plan.site === 'none') return;
    const l = this.ledgers.get(plan.site)!;
    l.attempts++;
    if (!this.faults.delete(`${plan.site}:${l.attempts}`))
      this.violations.push(`committed a failure at ${plan.site} attempt ${l.attempts} that was not injected`);
    l.failed++;
  }

  /**
   * Allocates an item at `site`, reusing a freed one when there is one. Never fails: a site whose
   * attempt was injected to fail is recorded as a violation (the plan and the machine disagree)
   * and allocated anyway. The caller owns the item until free().
   */
  alloc(site: PoolSite): PoolItem {
    const l = this.ledgers.get(site)!;
    l.attempts++;
    if (this.faults.delete(`${site}:${l.attempts}`))
      this.violations.push(
        `allocation ${l.attempts} at ${site} was injected to fail but the machine allocated it`,
      );
    const reused = this.freeLists.get(site)!.pop();
    let item: PoolItem;
    if (reused) {
      item = reused;
      l.free--;
    } else {
      const serial = this.serials.get(site)! + 1;
      this.serials.set(site, serial);
      item = {
        site,
        serial,
        buf: site === 'req' || site === 'rep' ? Buffer.allocUnsafe(this.bufsize) : null,
        live: false,
        pins: 0,
      };
    }
    item.live = true;
    l.allocs++;
    l.live++;
    if (l.live > l.maxLive) l.maxLive = l.live;
    return item;
  }

  /**
   * Frees `item`. A second free of the same allocation is a violation (recorded, nothing else
   * happens). A pinned buffer goes back to its free list when its last pin is released.
   */
  free(item: PoolItem): void {
    const l = this.ledgers.get(item.site)!;
    if (!item.live) {
      this.violations.push(`${item.site} #${item.serial} freed twice`);
      return;
    }
    item.live = false;
    l.frees++;
    l.live--;
    if (item.pins === 0) this.release(item);
  }

  /** Marks `item`'s buffer as read by a pending write. */
  pin(item: PoolItem): void {
    item.pins++;
  }

  /** Ends one pending write of `item`'s buffer; a freed item then returns to its free list. */
  unpin(item: PoolItem): void {
    item.pins--;
    if (item.pins === 0 && !item.live) this.release(item);
  }

  private release(item: PoolItem): void {
    this.freeLists.get(item.site)!.push(item);
    this.ledgers.get(item.site)!.free++;
  }

  private wouldFail(site: PoolSite): boolean {
    return this.faults.has(`${site}:${this.ledgers.get(site)!.attempts + 1}`);
  }

  /** Counts one read that landed in `into` (ReadLedger). */
  countRead(into: keyof ReadLedger): void {
    this.reads[into]++;
  }

  /** Returns a copy of the ledger. */
  ledger(): PoolLedger {
    const sites = {} as Record<PoolSite, SiteLedger>;
    for (const site of POOL_SITES) sites[site] = { ...this.ledgers.get(site)! };
    return {
      bufsize: this.bufsize,
      sites,
      reads: { ...this.reads },
      faults: [...this.faults],
      violations: [...this.violations],
    };
  }
}
