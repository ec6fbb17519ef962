/** A client in its data phase sends bytes (the backend echoes them, or resets on them). */
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import type { ProxyModel } from './ProxyModel.ts';

export class SendDataCommand extends ClientCommand {
  constructor(
    pick: number,
    readonly size: number,
  ) {
    super(pick);
  }

  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(this.pick, (c) => c.did === null && c.stream !== null && !c.ended && m.held(c.id));
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    const rc = r.clients[id]!;
    const text = `<c${id}:${rc.sentData}:${'x'.repeat(this.size)}>`;
    m.data(id, text);
    return { label: `c${id} sends ${text.length} bytes of data`, real: () => rc.send(text) };
  }

  protected describe(): string {
    return 'a client sends data';
  }
}
