/** The next allocation at a named pool site fails (the proxy's `set fault SITE N`). */
import { sessionBuffers } from '../../../machines/session.machine.ts';
import { converge, type RealSide } from './RealSide.ts';
import type { AllocSite, ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class InjectFaultCommand implements ProxyCommand {
  private label = '';

  constructor(readonly site: AllocSite) {}

  check(m: Readonly<ProxyModel>): boolean {
    const site = this.site;
    const reachable =
      site === 'session' ||
      site === 'task' ||
      (site === 'ssl' ? m.config.model.ssl : sessionBuffers(m.config.model).includes(site));
    return reachable && !m.armed.has(this.site);
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    m.injectFault(this.site);
    this.label = `the next ${this.site} allocation will fail`;
    r.note(this.label);
    await r.put.injectFault(this.site);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || `the next ${this.site} allocation will fail`;
  }
}
