/** A client half-closes its connection (FIN), wherever the proxy holds it, the backlog included. */
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import { whereIs, type ProxyModel } from './ProxyModel.ts';

export class HalfCloseCommand extends ClientCommand {
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(this.pick, (c) => m.open(c.id));
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    const where = whereIs(m, id);
    m.close(id, 'fin');
    return { label: `c${id} half-closes (FIN) ${where}`, real: () => r.clients[id]!.halfClose() };
  }

  protected describe(): string {
    return 'a client half-closes';
  }
}
