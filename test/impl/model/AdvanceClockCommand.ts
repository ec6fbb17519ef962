/**
 * Time passes in silence: the proxy's virtual clock moves forward (`set clock advance`), firing
 * the handshake deadlines (a client that stays silent past its deadline), the listener's queue
 * tasks and the rate periods that fall due.
 */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class AdvanceClockCommand implements ProxyCommand {
  private label = '';

  constructor(readonly ms: number) {}

  check(m: Readonly<ProxyModel>): boolean {
    return m.clients.length > 0;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const silent = m.clients.filter((c) => m.sessionState(c.id) === 'embryonic').map((c) => `c${c.id}`);
    m.advance(this.ms);
    const stay = silent.length === 1 ? 'stays' : 'stay';
    this.label = `${this.ms} ms pass${silent.length > 0 ? ` while ${silent.join(', ')} ${stay} silent` : ''}`;
    r.note(this.label);
    await r.put.advance(this.ms);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || `${this.ms} ms pass`;
  }
}
