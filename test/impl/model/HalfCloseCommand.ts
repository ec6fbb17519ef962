/** A client half-closes its connection (FIN), wherever the proxy holds it, the backlog included. */
import { converge, type RealSide } from './RealSide.ts';
import { whereIs, type ProxyCommand, type ProxyModel } from './ProxyModel.ts';

export class HalfCloseCommand implements ProxyCommand {
  private label = '';

  constructor(readonly pick: number) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(this.pick, (c) => m.open(c.id));
  }

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = this.resolve(m)!;
    const where = whereIs(m, id);
    m.close(id, 'fin');
    this.label = `c${id} half-closes (FIN) ${where}`;
    r.note(this.label);
    r.clients[id]!.halfClose();
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client half-closes';
  }
}
