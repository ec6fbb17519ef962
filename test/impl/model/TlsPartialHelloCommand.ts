/** A client in its TLS handshake sends the start of a ClientHello record, and not the rest. */
import { HALF_RECORD } from '../../../conformance/client.ts';
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

export class TlsPartialHelloCommand implements ProxyCommand {
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
    m.tlsPartialHello(id);
    this.label = `c${id} sends the first ${HALF_RECORD.length} bytes of a ClientHello record`;
    r.note(this.label);
    r.clients[id]!.write(HALF_RECORD);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client sends part of a ClientHello record';
  }
}
