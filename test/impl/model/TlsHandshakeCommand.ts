/** A client in its TLS handshake completes it. */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class TlsHandshakeCommand implements ProxyCommand {
  private label = '';

  constructor(readonly pick: number) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pickInFreshTls(this.pick);
  }

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = this.resolve(m)!;
    m.tlsHandshake(id);
    this.label = `c${id} completes its TLS handshake`;
    r.note(this.label);
    await r.clients[id]!.handshake();
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client completes its TLS handshake';
  }
}
