/** A client in its TLS handshake sends bytes that are not TLS. */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class TlsGarbageCommand implements ProxyCommand {
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
    m.tlsGarbage(id);
    this.label = `c${id} sends an HTTP request instead of a TLS ClientHello`;
    r.note(this.label);
    r.clients[id]!.write('GET / HTTP/1.0\r\n\r\n');
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client sends garbage during its TLS handshake';
  }
}
