/**
 * PROXY protocol v2, the binary header (doc/proxy-protocol.txt §2.2):
 *
 *   offset  size  field
 *        0    12  signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *       12     1  version (high nibble, must be 2) and command (low nibble: 0 LOCAL, 1 PROXY)
 *       13     1  address family (high nibble) and transport (low nibble)
 *       14     2  len: bytes after these 16, big-endian; the header is exactly 16 + len bytes
 *       16     -  addresses (12 bytes for IPv4, 36 for IPv6, 216 for UNIX), then TLVs up to 16 + len
 *
 * The steps, one function each, every one starting with its "need more bytes" exit: signature and
 * version (readSignature), the rest of the fixed part (readFixedHeader), command and family
 * (checkCommandAndFamily), then, once the whole header is in, addresses (readAddresses) and TLVs
 * (walkTlvs).
 *
 * Codes, as in HAProxy's conn_recv_proxy() since 7799267f4 (1.5.0): signature or version mismatch
 * → PRX_NOT_HDR; incomplete → PRX_TRUNCATED (strict mode; ./parse.ts); everything else invalid →
 * PRX_BAD_HDR. In strict mode the header is checked for completeness before its command and
 * family, as HAProxy does; in tolerant mode the fixed 16 bytes are checked as soon as they are in.
 *
 * Families other than TCP over IPv4/IPv6 under the PROXY command (UNSPEC, UDP, UNIX). The spec
 * says a receiver "is not required to implement" them "provided that it automatically falls back
 * to the UNSPEC mode", i.e. accepts the connection with its real addresses (§2.2). That is the
 * default here: no source/destination in the result, TLVs read after the family's address block
 * (for UNSPEC the address information has no defined size, so the whole block is skipped).
 * HAProxy 2.6 (code reading, not tested by any reg-test): for such families it leaves its TLV
 * offset at 0 and walks "TLVs" from the signature itself. The first one is then type 0x0D with
 * length 0x0A0D (2573), which overruns any header whose len is below 2560, so those headers are
 * rejected with PRX_BAD_HDR, while longer ones get the bytes there misread as TLVs. Option
 * `v2OtherFamilies: 'haproxy-2.6'` reproduces that, and also HAProxy's absence of any family
 * check (an undefined family byte takes the same path).
 *
 * LOCAL (§2.2: "must use the real connection endpoints and discard the protocol block including
 * the family"): accepted with whatever family and len; neither addresses nor TLVs are read, as in
 * HAProxy (so a CRC32C TLV is not checked either).
 */
import { crc32c } from './crc32c.ts';
import type {
  ProxyEndpoint,
  ProxyFamily,
  ProxyHeader,
  ProxyParseResult,
  ProxyTlv,
  ResolvedProxyOptions,
} from './parse.ts';
import { formatIPv4, formatIPv6 } from './v1.ts';

/** The 12-byte v2 signature (§2.2). It contains a NUL at offset 4 and starts with CRLF CRLF. */
// prettier-ignore
export const PP2_SIGNATURE: Uint8Array = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** Length of the fixed part: signature, ver_cmd, fam, len. */
export const PP2_HEADER_LEN = 16;
/** Version nibble value (high nibble of byte 12). */
export const PP2_VERSION = 0x20;
/** Commands (low nibble of byte 12). */
export const PP2_CMD_LOCAL = 0x00;
export const PP2_CMD_PROXY = 0x01;

/** Registered TLV types (§2.2). */
export const PP2_TYPE_ALPN = 0x01; // §2.2.1
export const PP2_TYPE_AUTHORITY = 0x02; // §2.2.2, HAProxy caps it at 255 bytes
export const PP2_TYPE_CRC32C = 0x03; // §2.2.3, exactly 4 bytes
export const PP2_TYPE_NOOP = 0x04; // §2.2.4
export const PP2_TYPE_UNIQUE_ID = 0x05; // §2.2.5, "up to 128 bytes"
export const PP2_TYPE_SSL = 0x20; // §2.2.6
export const PP2_TYPE_NETNS = 0x30; // §2.2.7
export const PP2_TYPE_MIN_CUSTOM = 0xe0; // §2.2.8, application-specific 0xE0..0xEF
export const PP2_TYPE_MAX_CUSTOM = 0xef;

/** Largest AUTHORITY value HAProxy accepts (PP2_AUTHORITY_MAX). */
export const PP2_AUTHORITY_MAX = 255;
/** Largest value of a TLV without a limit of its own that HAProxy 2.9 stores (HA_PP2_MAX_ALLOC, fecc573da). */
export const HA_PP2_MAX_ALLOC = 1024;
/** Largest UNIQUE_ID value HAProxy accepts (UNIQUEID_LEN; §2.2.5 "up to 128 bytes"). */
export const PP2_UNIQUE_ID_MAX = 128;
/** A TLV's type and length bytes. */
export const PP2_TLV_HEADER_LEN = 3;

/** The family bytes §2.2 defines ("In practice, the following protocol bytes are expected"). */
export const PP2_FAMILIES: ReadonlyMap<number, { family: ProxyFamily; addrLen: number }> = new Map([
  [0x00, { family: 'UNSPEC', addrLen: 0 }], // AF_UNSPEC, unspecified transport
  [0x11, { family: 'TCP4', addrLen: 12 }], // TCP over IPv4: 2*4 + 2*2
  [0x12, { family: 'UDP4', addrLen: 12 }], // UDP over IPv4
  [0x21, { family: 'TCP6', addrLen: 36 }], // TCP over IPv6: 2*16 + 2*2
  [0x22, { family: 'UDP6', addrLen: 36 }], // UDP over IPv6
  [0x31, { family: 'UNIX', addrLen: 216 }], // UNIX stream: 2*108
  [0x32, { family: 'UNIX', addrLen: 216 }], // UNIX datagram
]);

const FAM_TCP4 = 0x11;
const FAM_TCP6 = 0x21;

type Step<T> = { ok: true; value: T } | { ok: false; result: ProxyParseResult };

/** Decoded source and destination of TCP over IPv4/IPv6. */
type Endpoints = { source: ProxyEndpoint; destination: ProxyEndpoint };

/** The fixed 16 bytes, decoded. */
interface Fixed {
  command: number; // low nibble of byte 12
  fam: number; // byte 13
  total: number; // 16 + len
}

/**
 * Parses a v2 header at the start of <buf>.
 *
 * Requires nothing: bytes that do not begin with the signature give PRX_NOT_HDR. In strict mode
 * <buf> is HAProxy's first read (at least 16 bytes, ./parse.ts ensures it); in tolerant mode
 * everything received so far.
 *
 * Returns `need-more` while the header is incomplete and nothing seen so far is invalid; `done`
 * with `consumed` = 16 + len; or `error`: PRX_NOT_HDR (signature, version), PRX_BAD_HDR (command,
 * family, address length, TLVs, CRC32C, and in tolerant mode a header larger than <o.bufsize>), or
 * PRX_TRUNCATED in strict mode for a header larger than <o.bufsize>, which HAProxy can never
 * read in one go.
 *
 * Never throws and never reads past min(buf.length, 16 + len). Does not modify <buf>; TLV values
 * are copied into the result, and a CRC32C check works on a copy of the header. Pure.
 */
export function parseV2(buf: Uint8Array, o: ResolvedProxyOptions): ProxyParseResult {
  const sig = readSignature(buf);
  if (!sig.ok) return sig.result;
  const fixed = readFixedHeader(buf);
  if (!fixed.ok) return fixed.result;
  const { command, fam, total } = fixed.value;
  if (o.mode === 'strict') {
    if (total > o.bufsize)
      return fail('PRX_TRUNCATED', `a ${total}-byte header cannot fit HAProxy's ${o.bufsize}-byte read`);
    if (buf.length < total) return NEED_MORE;
  }
  const checked = checkCommandAndFamily(command, fam, total - PP2_HEADER_LEN, o);
  if (!checked.ok) return checked.result;
  if (total > o.bufsize)
    return fail('PRX_BAD_HDR', `a ${total}-byte header exceeds the ${o.bufsize}-byte bound`);
  if (buf.length < total) return NEED_MORE;
  if (command === PP2_CMD_LOCAL) return done(familyHeader('LOCAL', fam, []), total);
  return readProxyBody(buf, fam, total, o);
}

/** Step 1 (§2.2): the 12-byte signature, then the version nibble of byte 12, which must be 2. */
function readSignature(buf: Uint8Array): Step<null> {
  const n = Math.min(buf.length, PP2_SIGNATURE.length);
  for (let i = 0; i < n; i++) {
    if (buf[i] !== PP2_SIGNATURE[i]) return { ok: false, result: fail('PRX_NOT_HDR', NOT_A_HEADER) };
  }
  const verCmd = buf[PP2_SIGNATURE.length];
  if (verCmd === undefined) return { ok: false, result: NEED_MORE };
  if ((verCmd & 0xf0) !== PP2_VERSION) {
    return { ok: false, result: fail('PRX_NOT_HDR', `version ${verCmd >> 4} instead of 2 (§2.2)`) };
  }
  return { ok: true, value: null };
}

/** Step 2 (§2.2): command, family and len, the rest of the fixed 16 bytes. */
function readFixedHeader(buf: Uint8Array): Step<Fixed> {
  if (buf.length < PP2_HEADER_LEN) return { ok: false, result: NEED_MORE };
  const command = (buf[12] ?? 0) & 0x0f;
  const fam = buf[13] ?? 0;
  const total = PP2_HEADER_LEN + readU16(buf, 14);
  return { ok: true, value: { command, fam, total } };
}

/**
 * Step 3 (§2.2): the command must be LOCAL or PROXY ("Receivers must drop connections presenting
 * unexpected values here"). For PROXY, the family must be one §2.2 defines and len must cover its
 * addresses. HAProxy checks len only for TCP over IPv4/IPv6 and no family at all; with
 * `v2OtherFamilies: 'haproxy-2.6'` so does this.
 */
function checkCommandAndFamily(
  command: number,
  fam: number,
  len: number,
  o: ResolvedProxyOptions,
): Step<null> {
  if (command === PP2_CMD_LOCAL) return { ok: true, value: null };
  if (command !== PP2_CMD_PROXY)
    return { ok: false, result: fail('PRX_BAD_HDR', `unsupported command ${command} (§2.2)`) };
  const info = PP2_FAMILIES.get(fam);
  const checksFamily = fam === FAM_TCP4 || fam === FAM_TCP6 || o.v2OtherFamilies === 'real-addresses';
  if (!checksFamily) return { ok: true, value: null };
  if (info === undefined)
    return { ok: false, result: fail('PRX_BAD_HDR', `invalid family byte ${hex(fam)} (§2.2)`) };
  if (len < info.addrLen) {
    const why = `len ${len} is shorter than the ${info.addrLen} address bytes of ${info.family} (§2.2)`;
    return { ok: false, result: fail('PRX_BAD_HDR', why) };
  }
  return { ok: true, value: null };
}

/** Step 4, PROXY command with the whole header in: addresses, then TLVs. */
function readProxyBody(
  buf: Uint8Array,
  fam: number,
  total: number,
  o: ResolvedProxyOptions,
): ProxyParseResult {
  const { endpoints, tlvStart } = readAddresses(buf, fam, total, o);
  const tlvs = walkTlvs(buf, tlvStart, total, o.maxTlvValue);
  // conn_recv_proxy copies the addresses into the session before it walks the TLVs.
  if (!tlvs.ok)
    return endpoints && tlvs.result.status === 'error'
      ? { ...tlvs.result, source: endpoints.source }
      : tlvs.result;
  return done(familyHeader('PROXY', fam, tlvs.value, endpoints), total);
}

/**
 * Addresses (§2.2, union proxy_addr): for TCP over IPv4/IPv6, source and destination addresses
 * then ports, all in network byte order. For other families nothing is decoded (real addresses),
 * and TLVs start after the family's address block, or at offset 0 in HAProxy 2.6's reading.
 */
function readAddresses(
  buf: Uint8Array,
  fam: number,
  total: number,
  o: ResolvedProxyOptions,
): { endpoints?: Endpoints; tlvStart: number } {
  const at = PP2_HEADER_LEN;
  if (fam === FAM_TCP4) {
    const source = { address: formatIPv4(buf, at), port: readU16(buf, at + 8) };
    const destination = { address: formatIPv4(buf, at + 4), port: readU16(buf, at + 10) };
    return { endpoints: { source, destination }, tlvStart: at + 12 };
  }
  if (fam === FAM_TCP6) {
    const source = { address: formatIPv6(buf, at), port: readU16(buf, at + 32) };
    const destination = { address: formatIPv6(buf, at + 16), port: readU16(buf, at + 34) };
    return { endpoints: { source, destination }, tlvStart: at + 36 };
  }
  if (o.v2OtherFamilies === 'haproxy-2.6') return { tlvStart: 0 };
  const addrLen = PP2_FAMILIES.get(fam)?.addrLen ?? 0;
  return { tlvStart: addrLen === 0 ? total : at + addrLen };
}

/**
 * Step 5 (§2.2, struct pp2_tlv): TLVs from <start> must tile [start, total) exactly: a TLV whose
 * type and length bytes do not fit, or whose value runs past the end, is PRX_BAD_HDR (HAProxy
 * since 488ee7fb6). Then, per type: CRC32C must be 4 bytes and match the CRC32c of the header
 * computed with that field zeroed (§2.2.3, HAProxy since 115df3e38); AUTHORITY at most 255 bytes;
 * UNIQUE_ID at most 128 bytes. Other types are kept as they are (§2.2: "A receiver may choose to
 * skip over and ignore the TLVs it is not interested in"), but with <maxValue> set (HAProxy 2.9's
 * HA_PP2_MAX_ALLOC, fecc573da) a value longer than it fails the header without an error code: the
 * generic TLV store refuses to allocate it, and conn_recv_proxy goes to `fail` with err_code unset.
 */
function walkTlvs(buf: Uint8Array, start: number, total: number, maxValue: number | null): Step<ProxyTlv[]> {
  const tlvs: ProxyTlv[] = [];
  let zeroed: Uint8Array | null = null; // header copy with CRC fields zeroed, made on first use
  for (let off = start; off < total;) {
    if (off + PP2_TLV_HEADER_LEN > total) return bad(`${total - off} stray bytes after the last TLV (§2.2)`);
    const type = buf[off] ?? 0;
    const valueAt = off + PP2_TLV_HEADER_LEN;
    off = valueAt + readU16(buf, off + 1);
    if (off > total) return bad(`TLV ${hex(type)} at offset ${valueAt - 3} runs past the header end (§2.2)`);
    if (type === PP2_TYPE_CRC32C) {
      zeroed ??= buf.slice(0, total);
      const crc = checkCrc(zeroed, valueAt, off - valueAt);
      if (crc) return bad(crc);
    } else if (type === PP2_TYPE_AUTHORITY && off - valueAt > PP2_AUTHORITY_MAX) {
      return bad(`AUTHORITY TLV of ${off - valueAt} bytes, more than ${PP2_AUTHORITY_MAX} (§2.2.2)`);
    } else if (type === PP2_TYPE_UNIQUE_ID && off - valueAt > PP2_UNIQUE_ID_MAX) {
      return bad(`UNIQUE_ID TLV of ${off - valueAt} bytes, more than ${PP2_UNIQUE_ID_MAX} (§2.2.5)`);
    }
    if (maxValue !== null && off - valueAt > maxValue)
      return {
        ok: false,
        result: fail(
          'NONE',
          `TLV ${hex(type)} of ${off - valueAt} bytes, more than the ${maxValue} HAProxy 2.9 stores (HA_PP2_MAX_ALLOC): refused without an error code`,
        ),
      };
    tlvs.push({ type, value: buf.slice(valueAt, off) });
  }
  return { ok: true, value: tlvs };
}

/**
 * §2.2.3: reads the stored CRC at <header>[<at>], zeroes it there (as HAProxy does in its buffer,
 * so a later CRC32C TLV is checked with both fields zeroed) and compares it with the CRC32c of all
 * of <header>. Returns null when it matches, else the reason.
 */
function checkCrc(header: Uint8Array, at: number, len: number): string | null {
  if (len !== 4) return `CRC32C TLV of ${len} bytes instead of 4 (§2.2.3)`;
  const stored = readU32(header, at);
  header.fill(0, at, at + 4);
  const computed = crc32c(header);
  return computed === stored
    ? null
    : `CRC32C mismatch: header says ${hex(stored)}, computed ${hex(computed)} (§2.2.3)`;
}

function familyHeader(
  command: 'PROXY' | 'LOCAL',
  fam: number,
  tlvs: ProxyTlv[],
  endpoints?: Endpoints,
): ProxyHeader {
  const family = PP2_FAMILIES.get(fam)?.family ?? 'UNSPEC';
  return endpoints
    ? { version: 2, command, family, ...endpoints, tlvs }
    : { version: 2, command, family, tlvs };
}

function readU16(buf: Uint8Array, at: number): number {
  return ((buf[at] ?? 0) << 8) | (buf[at + 1] ?? 0);
}

function readU32(buf: Uint8Array, at: number): number {
  return (readU16(buf, at) * 0x10000 + readU16(buf, at + 2)) >>> 0;
}

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;
}

const NEED_MORE: ProxyParseResult = Object.freeze({ status: 'need-more' });
const NOT_A_HEADER = 'starts with neither "PROXY " (§2.1) nor the v2 signature (§2.2)';

function done(header: ProxyHeader, consumed: number): ProxyParseResult {
  return { status: 'done', header, consumed };
}

function fail(
  code: 'PRX_NOT_HDR' | 'PRX_BAD_HDR' | 'PRX_TRUNCATED' | 'NONE',
  reason: string,
): ProxyParseResult {
  return { status: 'error', code, reason };
}

function bad(reason: string): { ok: false; result: ProxyParseResult } {
  return { ok: false, result: fail('PRX_BAD_HDR', reason) };
}
