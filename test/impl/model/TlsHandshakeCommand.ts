/** A client in its TLS handshake completes it. */
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import type { ProxyModel } from './ProxyModel.ts';

export class TlsHandshakeCommand extends ClientCommand {
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pickInFreshTls(this.pick);
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    m.tlsHandshake(id);
    return { label: `c${id} completes its TLS handshake`, real: () => r.clients[id]!.handshake() };
  }

  protected describe(): string {
    return 'a client completes its TLS handshake';
  }
}
