/** A client in its TLS handshake sends the start of a ClientHello record, and not the rest. */
import { converge, type RealSide } from './RealSide.ts';
import type { ProxyCommand, ProxyModel } from './ProxyModel.ts';

/**
 * The first 11 bytes of a TLS record: a handshake record (type 22, TLS 1.0 framing) announcing 300
 * bytes, and the start of the ClientHello it holds. The record stays incomplete: a close or reset
 * after it leaves it half read (connection.machine.ts TlsRead 'partialRecord').
 */
export const PARTIAL_HELLO = Uint8Array.from([22, 3, 1, 1, 44, 1, 0, 1, 40, 3, 3]);

export class TlsPartialHelloCommand implements ProxyCommand {
  private label = '';

  constructor(readonly pick: number) {}

  /** The client this command acts on in `m`, or null if none can take it. */
  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(
      this.pick,
      (c) => c.did === null && c.tlsSent === 'none' && m.connState(c.id) === 'handshake.tls',
    );
  }

  check(m: Readonly<ProxyModel>): boolean {
    return this.resolve(m) !== null;
  }

  async run(m: ProxyModel, r: RealSide): Promise<void> {
    const id = this.resolve(m)!;
    m.tlsPartialHello(id);
    this.label = `c${id} sends the first ${PARTIAL_HELLO.length} bytes of a ClientHello record`;
    r.note(this.label);
    r.clients[id]!.write(PARTIAL_HELLO);
    await converge(m, r, this.label);
  }

  toString(): string {
    return this.label || 'a client sends part of a ClientHello record';
  }
}
