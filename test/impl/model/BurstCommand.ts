/**
 * A flood: several clients connect back to back, without waiting for the proxy in between (past
 * maxconn, the last ones wait in the listen backlog). fast-check's scheduler decides the order in
 * which they connect, which decides who gets the slots.
 */
import type { Scheduler } from 'fast-check';
import type { SourceClass } from '../../../machines/session.machine.ts';
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class BurstCommand implements ProxyCommand {
  private label = '';

  constructor(
    readonly sources: SourceClass[],
    readonly scheduler: Scheduler,
  ) {}

  /**
   * True iff the burst fits and its order is deterministic: a stream that the backend ends at once
   * (close, refuse) would release a slot at a time the client cannot know, in the middle of the burst.
   */
  check(m: Readonly<ProxyModel>): boolean {
    const streamsAtAccept = !m.config.model.acceptProxy && !m.config.model.ssl;
    return (
      m.clients.length + this.sources.length <= m.maxClients &&
      this.sources.every((s) => m.config.sources.includes(s)) &&
      !(streamsAtAccept && (m.backendMode === 'close' || m.backendMode === 'refuse'))
    );
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const order: number[] = [];
    const tasks = this.sources.map((src, i) =>
      this.scheduler.schedule(Promise.resolve(i), `connect from ${src}`).then((j) => {
        order.push(j);
      }),
    );
    while (this.scheduler.count() > 0) await this.scheduler.waitOne();
    await Promise.all(tasks);
    const names: string[] = [];
    for (const i of order) {
      const src = this.sources[i]!;
      const id = m.connect(src);
      names.push(`c${id}${src === 'plain' ? '' : ` (${src})`}`);
      await r.connect(id, src);
    }
    this.label = `${names.join(', ')} connect back to back`;
    r.note(this.label);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || `${this.sources.length} clients connect back to back`;
  }
}
