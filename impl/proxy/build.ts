/**
 * PROXY protocol header builders (doc/proxy-protocol.txt §2.1, §2.2): the sender's side, used by
 * the tests, the conformance suite and the benchmarks to produce valid headers. They are the
 * inverse of parseProxyHeader() for every header it returns with `done`.
 *
 * Unlike the parser, the builders throw (RangeError) on input no valid header can carry, such as a
 * port out of range: that is a programmer error, not protocol input.
 */
import { crc32cUpdate } from './crc32c.ts';
import type { ProxyEndpoint, ProxyFamily, ProxyTlv } from './parse.ts';
import { parseIPv4Text, parseIPv6Text } from './v1.ts';
import {
  PP2_CMD_LOCAL,
  PP2_CMD_PROXY,
  PP2_HEADER_LEN,
  PP2_SIGNATURE,
  PP2_TYPE_CRC32C,
  PP2_VERSION,
} from './v2.ts';

/** What a builder needs: a ProxyHeader without `version`, with `tlvs` and `command` optional. */
export interface ProxyHeaderInit {
  command?: 'PROXY' | 'LOCAL'; // v2 only; default 'PROXY'
  family: ProxyFamily;
  source?: ProxyEndpoint; // required for TCP4/TCP6 (v1) and TCP4/TCP6/UDP4/UDP6 under PROXY (v2)
  destination?: ProxyEndpoint;
  tlvs?: ProxyTlv[]; // v2 only
}

/** Options of buildV2(). */
export interface BuildV2Options {
  crc32c?: boolean; // append a PP2_TYPE_CRC32C TLV holding the header's checksum (§2.2.3)
}

/**
 * Builds the v1 line for <header> (§2.1): "PROXY TCP4|TCP6 src dst sport dport\r\n", or
 * "PROXY UNKNOWN\r\n" for family UNKNOWN. Addresses are written as given (any form §2.1 and
 * inet_pton() accept for TCP6), ports in decimal.
 *
 * Requires family TCP4, TCP6 or UNKNOWN, and for TCP4/TCP6 a source and destination whose
 * addresses are valid for the family and whose ports are integers in 0..65535; throws RangeError
 * otherwise. Returns a new Uint8Array owned by the caller. Pure.
 */
export function buildV1(header: ProxyHeaderInit): Uint8Array {
  if (header.family === 'UNKNOWN') return ascii('PROXY UNKNOWN\r\n');
  if (header.family !== 'TCP4' && header.family !== 'TCP6') {
    throw new RangeError(`v1 has no family ${header.family} (§2.1)`);
  }
  const { source, destination } = requireEndpoints(header);
  const check = header.family === 'TCP4' ? parseIPv4Text : parseIPv6Text;
  for (const ep of [source, destination]) {
    if (check(ep.address) === null) throw new RangeError(`not a ${header.family} address: ${ep.address}`);
  }
  const line = `PROXY ${header.family} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`;
  return ascii(line);
}

/**
 * Builds the v2 header for <header> (§2.2): signature, version 2 and the command, the family byte
 * (TCP4 0x11, UDP4 0x12, TCP6 0x21, UDP6 0x22, UNIX 0x31, UNSPEC and UNKNOWN 0x00), len, the
 * family's address block, then <header.tlvs> in order. With <opts.crc32c>, a CRC32C TLV is
 * appended last and filled with the checksum of the whole header (§2.2.3). A CRC32C TLV already in
 * <header.tlvs> is written as given, which lets tests build wrong checksums.
 *
 * Addresses: TCP4/UDP4 and TCP6/UDP6 take <source>/<destination> (required under PROXY; under
 * LOCAL they are written if given, else the block is zero); UNIX writes 216 zero bytes; UNSPEC and
 * UNKNOWN write none.
 *
 * Requires valid addresses and ports, TLV types in 0..255 and values of at most 65535 bytes, and a
 * total len of at most 65535; throws RangeError otherwise. Returns a new Uint8Array owned by the
 * caller. Pure.
 */
export function buildV2(header: ProxyHeaderInit, opts: BuildV2Options = {}): Uint8Array {
  const command = header.command ?? 'PROXY';
  const fam = FAMILY_BYTES[header.family];
  const addresses = addressBlock(header, command);
  const tlvs = (header.tlvs ?? []).map(encodeTlv);
  if (opts.crc32c) tlvs.push(encodeTlv({ type: PP2_TYPE_CRC32C, value: new Uint8Array(4) }));
  const len = addresses.length + tlvs.reduce((n, t) => n + t.length, 0);
  if (len > 0xffff) throw new RangeError(`v2 len ${len} does not fit 16 bits (§2.2)`);
  const out = new Uint8Array(PP2_HEADER_LEN + len);
  out.set(PP2_SIGNATURE, 0);
  out[12] = PP2_VERSION | (command === 'LOCAL' ? PP2_CMD_LOCAL : PP2_CMD_PROXY);
  out[13] = fam;
  writeU16(out, 14, len);
  let at = PP2_HEADER_LEN;
  for (const part of [addresses, ...tlvs]) {
    out.set(part, at);
    at += part.length;
  }
  if (opts.crc32c) writeU32(out, out.length - 4, crc32cUpdate(0, out));
  return out;
}

const FAMILY_BYTES: Record<ProxyFamily, number> = {
  UNSPEC: 0x00,
  UNKNOWN: 0x00,
  TCP4: 0x11,
  UDP4: 0x12,
  TCP6: 0x21,
  UDP6: 0x22,
  UNIX: 0x31,
};

/** The address block of §2.2's union proxy_addr for <header.family>. */
function addressBlock(header: ProxyHeaderInit, command: 'PROXY' | 'LOCAL'): Uint8Array {
  switch (header.family) {
    case 'TCP4':
    case 'UDP4':
      return ipBlock(header, command, 4, parseIPv4Text);
    case 'TCP6':
    case 'UDP6':
      return ipBlock(header, command, 16, parseIPv6Text);
    case 'UNIX':
      return new Uint8Array(216);
    default:
      return new Uint8Array(0);
  }
}

function ipBlock(
  header: ProxyHeaderInit,
  command: 'PROXY' | 'LOCAL',
  size: 4 | 16,
  parse: (text: string) => Uint8Array | null,
): Uint8Array {
  const block = new Uint8Array(2 * size + 4);
  if (command === 'LOCAL' && !header.source && !header.destination) return block;
  const { source, destination } = requireEndpoints(header);
  const src = parse(source.address);
  const dst = parse(destination.address);
  if (!src || !dst)
    throw new RangeError(`not a ${header.family} address pair: ${source.address} ${destination.address}`);
  block.set(src, 0);
  block.set(dst, size);
  writeU16(block, 2 * size, source.port);
  writeU16(block, 2 * size + 2, destination.port);
  return block;
}

/** One TLV (§2.2, struct pp2_tlv): type, 16-bit big-endian length, value. */
function encodeTlv(tlv: ProxyTlv): Uint8Array {
  if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 0xff)
    throw new RangeError(`TLV type ${tlv.type}`);
  if (tlv.value.length > 0xffff) throw new RangeError(`TLV value of ${tlv.value.length} bytes`);
  const out = new Uint8Array(3 + tlv.value.length);
  out[0] = tlv.type;
  writeU16(out, 1, tlv.value.length);
  out.set(tlv.value, 3);
  return out;
}

function requireEndpoints(header: ProxyHeaderInit): { source: ProxyEndpoint; destination: ProxyEndpoint } {
  const { source, destination } = header;
  if (!source || !destination) throw new RangeError(`${header.family} needs a source and a destination`);
  for (const ep of [source, destination]) {
    if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 0xffff)
      throw new RangeError(`port ${ep.port}`);
  }
  return { source, destination };
}

function writeU16(out: Uint8Array, at: number, value: number): void {
  out[at] = (value >>> 8) & 0xff;
  out[at + 1] = value & 0xff;
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  writeU16(out, at, value >>> 16);
  writeU16(out, at + 2, value & 0xffff);
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}
