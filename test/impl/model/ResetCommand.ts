/**
 * A client resets its connection (RST), wherever the proxy holds it, the backlog included; but not
 * in the backlog while the backend refuses, where its stream starts at accept (resetMeetsRefusal).
 */
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import { resetMeetsRefusal, whereIs, type ProxyModel } from './ProxyModel.ts';

export class ResetCommand extends ClientCommand {
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(
      this.pick,
      (c) =>
        c.did !== 'rst' &&
        m.state.memory[c.id]!.fd !== 'closed' &&
        !resetMeetsRefusal(m, c.id, m.backendMode),
    );
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    const where = whereIs(m, id);
    m.close(id, 'rst');
    return { label: `c${id} resets (RST) ${where}`, real: () => r.clients[id]!.reset() };
  }

  protected describe(): string {
    return 'a client resets';
  }
}
