/** A client connects, from a plain, a rejected or a monitor source. */
import type { SourceClass } from '../../../machines/session.machine.ts';
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';
import { SOURCE_ADDRESS } from './configs.ts';

export class ConnectCommand implements ProxyCommand {
  private label = '';

  constructor(readonly src: SourceClass) {}

  check(m: Readonly<ProxyModel>): boolean {
    return m.canConnect() && m.config.sources.includes(this.src);
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = m.connect(this.src);
    this.label = `c${id} connects from ${SOURCE_ADDRESS[this.src]}${this.src === 'plain' ? '' : ` (${this.src})`}`;
    r.note(this.label);
    await r.connect(id, this.src);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || `connect from a ${this.src} source`;
  }
}
