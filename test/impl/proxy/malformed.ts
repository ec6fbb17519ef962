/**
 * Malformed and incomplete PROXY headers with the code HAProxy's rules give them (see
 * /work/shared/reference/haproxy-history.md §6 and ./parse.ts for where strict mode is stricter
 * than HAProxy 2.6). A table of { desc, bytes, mode, expectedCode }, as go-proxyproto's invalid-input
 * tests are; `options` adds parse options beyond the mode.
 */
import type { ProxyErrCode } from '../../../machines/errCodes.ts';
import type { ProxyParseOptions } from '../../../impl/proxy/parse.ts';
import { bytes, repeat, SIG, u16, V1_TCP4, V2_CRC32C, V2_TCP4 } from './fixtures.ts';

export interface MalformedCase {
  desc: string;
  bytes: Uint8Array;
  mode: 'strict' | 'tolerant';
  expectedCode: ProxyErrCode;
  options?: Omit<ProxyParseOptions, 'mode'>;
}

/** The v2 TCP4 fixed part, addresses and ports, with len = 12 + <tlvLen>. */
function tcp4(tlvLen: number): number[] {
  return [
    ...SIG,
    0x21,
    0x11,
    ...u16(12 + tlvLen),
    192,
    168,
    1,
    101,
    192,
    168,
    1,
    1,
    ...u16(1234),
    ...u16(443),
  ];
}

/** <fixture> with byte <at> replaced by <value>. */
function patched(fixture: Uint8Array, at: number, value: number): Uint8Array {
  const out = fixture.slice();
  out[at] = value;
  return out;
}

const TCP6_LONG_FORMS =
  'PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 0000:0000:0000:0000:0000:ffff:255.255.255.255 65535 65535\r\n';

export const MALFORMED: readonly MalformedCase[] = [
  // ---- v1 (§2.1): incomplete reads ----
  {
    desc: 'a v1 header split after the source address',
    bytes: bytes('PROXY TCP4 192.168.0.1'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a v1 header missing its final LF',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'the first 4 bytes of "PROXY"',
    bytes: bytes('PROX'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: '"PROXY TC", fewer than the 9 bytes HAProxy needs',
    bytes: bytes('PROXY TC'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a TCP6 line whose CR has not arrived, even with a bad field (HAProxy finds the CR first)',
    bytes: bytes('PROXY TCP6 ::1 not-an-address'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a short read that is no header at all (HAProxy: fewer than 6 bytes is "missing")',
    bytes: bytes('GET'),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a v1 prefix when the client closes (tolerant mode, eof)',
    bytes: V1_TCP4.bytes.subarray(0, 30),
    mode: 'tolerant',
    expectedCode: 'PRX_TRUNCATED',
    options: { eof: true },
  },
  {
    desc: 'an empty read when the client closes',
    bytes: bytes(),
    mode: 'tolerant',
    expectedCode: 'PRX_EMPTY',
    options: { eof: true },
  },
  {
    desc: 'an empty read when the client closes (strict)',
    bytes: bytes(),
    mode: 'strict',
    expectedCode: 'PRX_EMPTY',
    options: { eof: true },
  },
  // ---- v1: not a header, unhandled protocols ----
  {
    desc: 'an HTTP request line',
    bytes: bytes('GET / HTTP/1.0\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: 'three bytes of an HTTP request in tolerant mode',
    bytes: bytes('GET'),
    mode: 'tolerant',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: '"proxy" in lower case',
    bytes: bytes('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: '"PROXY" followed by a tab instead of a space',
    bytes: bytes('PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: 'the long UNKNOWN form, which HAProxy rejects since 4c20d29c2',
    bytes: bytes('PROXY UNKNOWN x\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_PROTO',
  },
  {
    desc: 'a UDP4 line',
    bytes: bytes('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_PROTO',
  },
  {
    desc: 'a TCP5 line',
    bytes: bytes('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_PROTO',
  },
  {
    desc: 'TCP4 followed by CRLF and no addresses',
    bytes: bytes('PROXY TCP4\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_PROTO',
  },
  {
    desc: 'UNKNOWN ended by a lone LF',
    bytes: bytes('PROXY UNKNOWN\nGET / HTTP/1.0\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_PROTO',
  },
  // ---- v1: structural errors ----
  {
    desc: 'a TCP4 line ended by a lone LF',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\nGET / HTTP/1.0\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a TCP4 line ended by a lone CR',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rGET / HTTP/1.0\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'two spaces between fields',
    bytes: bytes('PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a space before the CRLF',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a missing destination port',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a source address with a leading zero',
    bytes: bytes('PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an octet above 255',
    bytes: bytes('PROXY TCP4 256.168.0.1 192.168.0.11 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an IPv4 address of three octets',
    bytes: bytes('PROXY TCP4 192.168.0 192.168.0.11 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a port with a leading zero',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'port 65536',
    bytes: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'IPv6 addresses in a TCP4 line',
    bytes: bytes('PROXY TCP4 ::1 ::1 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'IPv4 addresses in a TCP6 line',
    bytes: bytes('PROXY TCP6 192.168.0.1 192.168.0.11 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an IPv6 address with ":::"',
    bytes: bytes('PROXY TCP6 :::1 ::1 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an IPv6 address with two "::"',
    bytes: bytes('PROXY TCP6 1::2::3 ::1 56324 443\r\n'),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a TCP6 line of valid fields 116 bytes long (no CRLF within 107 bytes)',
    bytes: bytes(TCP6_LONG_FORMS),
    mode: 'tolerant',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a long UNKNOWN line with no CRLF within 107 bytes (long form accepted)',
    bytes: bytes('PROXY UNKNOWN ', 'x'.repeat(100)),
    mode: 'tolerant',
    expectedCode: 'PRX_BAD_HDR',
    options: { unknownLongForm: 'accept' },
  },
  {
    desc: 'a malformed source address before the line is complete (tolerant mode decides early)',
    bytes: bytes('PROXY TCP6 ::1 not-an-address'),
    mode: 'tolerant',
    expectedCode: 'PRX_BAD_HDR',
  },
  // ---- v2 (§2.2): incomplete reads ----
  {
    desc: 'a v2 header missing its last byte',
    bytes: V2_TCP4.bytes.subarray(0, V2_TCP4.bytes.length - 1),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a v2 header split after its fixed 16 bytes',
    bytes: V2_TCP4.bytes.subarray(0, 16),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'the first 8 bytes of the v2 signature',
    bytes: bytes(SIG.slice(0, 8)),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'an incomplete v2 header with an invalid command (HAProxy checks completeness first)',
    bytes: bytes(SIG, [0x23], [0x11], u16(12)),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: "a v2 header of 16 + 20000 bytes, beyond HAProxy's 16384-byte read",
    bytes: bytes(SIG, [0x21], [0x11], u16(20000), repeat(0, 20000)),
    mode: 'strict',
    expectedCode: 'PRX_TRUNCATED',
  },
  {
    desc: 'a v2 prefix when the client closes (tolerant mode, eof)',
    bytes: bytes(SIG, [0x21]),
    mode: 'tolerant',
    expectedCode: 'PRX_TRUNCATED',
    options: { eof: true },
  },
  // ---- v2: not a header ----
  {
    desc: 'a v2 signature with one byte changed',
    bytes: patched(V2_TCP4.bytes, 7, 0x52),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: 'a v2 header with version nibble 1',
    bytes: patched(V2_TCP4.bytes, 12, 0x11),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: 'a v2 header with version nibble 3',
    bytes: patched(V2_TCP4.bytes, 12, 0x31),
    mode: 'strict',
    expectedCode: 'PRX_NOT_HDR',
  },
  {
    desc: 'the v2 signature followed by version 1, decided at byte 13 in tolerant mode',
    bytes: bytes(SIG, [0x11]),
    mode: 'tolerant',
    expectedCode: 'PRX_NOT_HDR',
  },
  // ---- v2: invalid headers ----
  {
    desc: 'a v2 header with command 2',
    bytes: patched(V2_TCP4.bytes, 12, 0x22),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 header with command 0xF',
    bytes: patched(V2_TCP4.bytes, 12, 0x2f),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an incomplete v2 header with an invalid command, decided early in tolerant mode',
    bytes: bytes(SIG, [0x23], [0x11], u16(12)),
    mode: 'tolerant',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 PROXY header with address family 4',
    bytes: patched(V2_TCP4.bytes, 13, 0x41),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 PROXY header with transport 3',
    bytes: patched(V2_TCP4.bytes, 13, 0x13),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 TCP4 header with len 11, shorter than its addresses',
    bytes: bytes(SIG, [0x21], [0x11], u16(11), repeat(0, 11)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 TCP6 header with len 12, shorter than its addresses',
    bytes: bytes(SIG, [0x21], [0x21], u16(12), repeat(0, 12)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 UDP4 header with len 11, shorter than its addresses',
    bytes: bytes(SIG, [0x21], [0x12], u16(11), repeat(0, 11)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a TLV whose value runs past the header end',
    bytes: bytes(tcp4(4), [0xe0], u16(5), [1]),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a stray 2-byte tail after the addresses, too short for a TLV',
    bytes: bytes(tcp4(2), [0xe0, 0x00]),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a stray 1-byte tail after a valid TLV',
    bytes: bytes(tcp4(4), [0xe0], u16(0), [0x00]),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a CRC32C TLV whose value does not match',
    bytes: patched(V2_CRC32C.bytes, V2_CRC32C.bytes.length - 1, 0x49),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 header whose CRC32C no longer matches after an address byte changed',
    bytes: patched(V2_CRC32C.bytes, 16, 193),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a CRC32C TLV of 3 bytes',
    bytes: bytes(tcp4(6), [0x03], u16(3), [0, 0, 0]),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a CRC32C TLV of 5 bytes',
    bytes: bytes(tcp4(8), [0x03], u16(5), [0, 0, 0, 0, 0]),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'an AUTHORITY TLV of 256 bytes',
    bytes: bytes(tcp4(3 + 256), [0x02], u16(256), repeat(0x61, 256)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a UNIQUE_ID TLV of 129 bytes',
    bytes: bytes(tcp4(3 + 129), [0x05], u16(129), repeat(0x7a, 129)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 header larger than the 16384-byte bound in tolerant mode',
    bytes: bytes(SIG, [0x21], [0x11], u16(20000)),
    mode: 'tolerant',
    expectedCode: 'PRX_BAD_HDR',
  },
  {
    desc: 'a v2 PROXY UNSPEC header read the HAProxy 2.6 way (TLVs walked from the signature)',
    bytes: bytes(SIG, [0x21], [0x00], u16(0)),
    mode: 'strict',
    expectedCode: 'PRX_BAD_HDR',
    options: { v2OtherFamilies: 'haproxy-2.6' },
  },
];
