/** A client in its data phase sends bytes (the backend echoes them, or resets on them). */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class SendDataCommand implements ProxyCommand {
  private label = '';

  constructor(
    readonly pick: number,
    readonly size: number,
  ) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(this.pick, (c) => c.did === null && c.stream !== null && !c.ended && m.held(c.id));
  }

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = this.resolve(m)!;
    const rc = r.clients[id]!;
    const text = `<c${id}:${rc.sentData}:${'x'.repeat(this.size)}>`;
    m.data(id, text);
    this.label = `c${id} sends ${text.length} bytes of data`;
    r.note(this.label);
    rc.send(text);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || `a client sends data`;
  }
}
