/** A client in its TLS handshake sends the start of a ClientHello record, and not the rest. */
import { HALF_RECORD } from '../../../conformance/client.ts';
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import type { ProxyModel } from './ProxyModel.ts';

export class TlsPartialHelloCommand extends ClientCommand {
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pickInFreshTls(this.pick);
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    m.tlsPartialHello(id);
    return {
      label: `c${id} sends the first ${HALF_RECORD.length} bytes of a ClientHello record`,
      real: () => r.clients[id]!.write(HALF_RECORD),
    };
  }

  protected describe(): string {
    return 'a client sends part of a ClientHello record';
  }
}
