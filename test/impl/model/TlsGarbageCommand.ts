/** A client in its TLS handshake sends bytes that are not TLS. */
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import type { ProxyModel } from './ProxyModel.ts';

export class TlsGarbageCommand extends ClientCommand {
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pickInFreshTls(this.pick);
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    m.tlsGarbage(id);
    return {
      label: `c${id} sends an HTTP request instead of a TLS ClientHello`,
      real: () => r.clients[id]!.write('GET / HTTP/1.0\r\n\r\n'),
    };
  }

  protected describe(): string {
    return 'a client sends garbage during its TLS handshake';
  }
}
