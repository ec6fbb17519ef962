/** A client waiting for its PROXY header sends one: whole (v1, v2, v2 LOCAL), split, or not a header. */
import { buildV1, buildV2 } from '../../../impl/proxy/build.ts';
import { ClientCommand, type ClientStep } from './ClientCommand.ts';
import type { RealSide } from './RealSide.ts';
import type { HeaderKind, ProxyModel } from './ProxyModel.ts';

const V1 = buildV1({
  family: 'TCP4',
  source: { address: '10.1.2.3', port: 40000 },
  destination: { address: '10.0.0.1', port: 80 },
});

/** The bytes of each kind of header, and how the script says it. */
export const HEADERS: Record<HeaderKind, { bytes: Uint8Array; says: string }> = {
  v1: { bytes: V1, says: 'a whole PROXY v1 header' },
  v2: {
    bytes: buildV2({
      family: 'TCP4',
      source: { address: '10.9.8.7', port: 40001 },
      destination: { address: '10.0.0.1', port: 80 },
    }),
    says: 'a whole PROXY v2 header',
  },
  local: { bytes: buildV2({ command: 'LOCAL', family: 'UNSPEC' }), says: 'a PROXY v2 LOCAL header' },
  partial: { bytes: V1.subarray(0, 12), says: 'the first 12 bytes of a PROXY v1 header' },
  bad: {
    bytes: new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n'),
    says: 'an HTTP request instead of a PROXY header',
  },
};

export class SendHeaderCommand extends ClientCommand {
  constructor(
    pick: number,
    readonly kind: HeaderKind,
  ) {
    super(pick);
  }

  resolve(m: Readonly<ProxyModel>): number | null {
    return m.pick(
      this.pick,
      (c) => c.did === null && !c.headerSent && m.connState(c.id) === 'handshake.proxyHeader',
    );
  }

  protected step(m: ProxyModel, r: RealSide, id: number): ClientStep {
    m.header(id, this.kind);
    const { bytes, says } = HEADERS[this.kind];
    return { label: `c${id} sends ${says}`, real: () => r.clients[id]!.write(bytes) };
  }

  protected describe(): string {
    return `a client sends ${HEADERS[this.kind].says}`;
  }
}
