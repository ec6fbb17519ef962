/** A client resets its connection (RST), wherever the proxy holds it, the backlog included. */
import { converge, type RealSide } from './RealSide.ts';
import { whereIs, type ProxyCommand, type ProxyModel } from './ProxyModel.ts';

export class ResetCommand implements ProxyCommand {
  private label = '';

  constructor(readonly pick: number) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(this.pick, (c) => c.did !== 'rst' && m.state.memory[c.id]!.fd !== 'closed');
  }

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = this.resolve(m)!;
    const where = whereIs(m, id);
    m.close(id, 'rst');
    this.label = `c${id} resets (RST) ${where}`;
    r.note(this.label);
    r.clients[id]!.reset();
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client resets';
  }
}
