/**
 * Valid PROXY protocol headers, written one protocol field per line with a comment per field, as
 * HAProxy's reg-tests write them (reg-tests/connection/proxy_protocol_tlv_validation.vtc:
 * `# PROXY v2 signature` / `sendhex "0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a"`).
 *
 * Each fixture carries the header parseProxyHeader() must return for it, and the options it needs
 * if any. v1: doc/proxy-protocol.txt §2.1; v2: §2.2.
 */
import type { ProxyHeader, ProxyParseOptions } from '../../../impl/proxy/parse.ts';

/** A field is a list of bytes or an ASCII string. */
export type FieldBytes = readonly number[] | Uint8Array | string;

/** Concatenates fields into one buffer. */
export function bytes(...fields: FieldBytes[]): Uint8Array {
  const parts = fields.map((f) =>
    typeof f === 'string' ? Array.from(f, (c) => c.charCodeAt(0) & 0xff) : Array.from(f),
  );
  return Uint8Array.from(parts.flat());
}

/** A 16-bit big-endian value, as v2 writes len, ports and TLV lengths. */
export function u16(n: number): number[] {
  return [(n >>> 8) & 0xff, n & 0xff];
}

/** <n> copies of <byte>. */
export function repeat(byte: number, n: number): number[] {
  return new Array<number>(n).fill(byte);
}

/** The 12-byte v2 signature (§2.2). */
export const SIG: readonly number[] = [
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

export interface Fixture {
  name: string;
  bytes: Uint8Array;
  header: ProxyHeader;
  options?: Partial<ProxyParseOptions>;
}

// ---------------------------------------------------------------------------------------------
// v1 (§2.1)
// ---------------------------------------------------------------------------------------------

export const V1_TCP4: Fixture = {
  name: 'v1 TCP4',
  bytes: bytes(
    'PROXY', // protocol signature
    ' ', // exactly one space
    'TCP4', // TCP over IPv4
    ' ',
    '192.168.0.1', // source address
    ' ',
    '192.168.0.11', // destination address
    ' ',
    '56324', // source port
    ' ',
    '443', // destination port
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    source: { address: '192.168.0.1', port: 56324 },
    destination: { address: '192.168.0.11', port: 443 },
    tlvs: [],
  },
};

export const V1_TCP4_LONGEST: Fixture = {
  name: 'v1 TCP4 of the maximum length (56 bytes, §2.1)',
  bytes: bytes(
    'PROXY TCP4 ', // signature, space, protocol, space
    '255.255.255.255', // source address, 15 chars
    ' ',
    '255.255.255.255', // destination address, 15 chars
    ' ',
    '65535', // source port, the largest
    ' ',
    '65535', // destination port
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    source: { address: '255.255.255.255', port: 65535 },
    destination: { address: '255.255.255.255', port: 65535 },
    tlvs: [],
  },
};

export const V1_TCP4_ZEROES: Fixture = {
  name: 'v1 TCP4 with zero octets and zero ports',
  bytes: bytes(
    'PROXY TCP4 ', // signature, space, protocol, space
    '0.0.0.0', // source address: a single 0 is not a heading zero
    ' ',
    '10.0.0.1', // destination address
    ' ',
    '0', // source port 0
    ' ',
    '0', // destination port 0
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    source: { address: '0.0.0.0', port: 0 },
    destination: { address: '10.0.0.1', port: 0 },
    tlvs: [],
  },
};

export const V1_TCP6: Fixture = {
  name: 'v1 TCP6',
  bytes: bytes(
    'PROXY', // protocol signature
    ' ',
    'TCP6', // TCP over IPv6
    ' ',
    '2001:db8::1', // source address
    ' ',
    '2001:db8::2', // destination address
    ' ',
    '56324', // source port
    ' ',
    '443', // destination port
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP6',
    source: { address: '2001:db8::1', port: 56324 },
    destination: { address: '2001:db8::2', port: 443 },
    tlvs: [],
  },
};

export const V1_TCP6_FORMS: Fixture = {
  name: 'v1 TCP6 with uppercase, uncompressed and IPv4-suffixed addresses',
  bytes: bytes(
    'PROXY TCP6 ', // signature, space, protocol, space
    '2001:0DB8:0000:0000:0000:0000:0000:0001', // source address: 8 groups of 4 digits, upper case
    ' ',
    '::FFFF:192.0.2.1', // destination address: IPv4-mapped, dotted quad in the last 32 bits
    ' ',
    '1', // source port
    ' ',
    '65535', // destination port
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP6',
    source: { address: '2001:db8::1', port: 1 },
    destination: { address: '::ffff:c000:201', port: 65535 },
    tlvs: [],
  },
};

export const V1_TCP6_LONGEST: Fixture = {
  name: 'v1 TCP6 of the maximum length (104 bytes, §2.1)',
  bytes: bytes(
    'PROXY TCP6 ', // signature, space, protocol, space
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // source address, 39 chars
    ' ',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', // destination address, 39 chars
    ' ',
    '65535', // source port
    ' ',
    '65535', // destination port
    '\r\n', // CRLF
  ),
  header: {
    version: 1,
    command: 'PROXY',
    family: 'TCP6',
    source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
    destination: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', port: 65535 },
    tlvs: [],
  },
};

export const V1_UNKNOWN: Fixture = {
  name: 'v1 UNKNOWN (short form, the only one HAProxy accepts)',
  bytes: bytes(
    'PROXY', // protocol signature
    ' ',
    'UNKNOWN', // unknown protocol: use the real addresses
    '\r\n', // CRLF right after it
  ),
  header: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
};

export const V1_UNKNOWN_LONG: Fixture = {
  name: 'v1 UNKNOWN, long form of the maximum length (107 bytes, §2.1), accepted as the spec says',
  bytes: bytes(
    'PROXY', // protocol signature
    ' ',
    'UNKNOWN', // unknown protocol
    ' ',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // ignored: anything up to the CRLF
    ' ',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // ignored
    ' ',
    '65535', // ignored
    ' ',
    '65535', // ignored
    '\r\n', // CRLF
  ),
  header: { version: 1, command: 'PROXY', family: 'UNKNOWN', tlvs: [] },
  options: { unknownLongForm: 'accept' },
};

export const V1_FIXTURES: readonly Fixture[] = [
  V1_TCP4,
  V1_TCP4_LONGEST,
  V1_TCP4_ZEROES,
  V1_TCP6,
  V1_TCP6_FORMS,
  V1_TCP6_LONGEST,
  V1_UNKNOWN,
  V1_UNKNOWN_LONG,
];

// ---------------------------------------------------------------------------------------------
// v2 (§2.2)
// ---------------------------------------------------------------------------------------------

const TCP4_HEADER = {
  version: 2,
  command: 'PROXY',
  family: 'TCP4',
  source: { address: '192.168.1.101', port: 1234 },
  destination: { address: '192.168.1.1', port: 443 },
} as const;

export const V2_TCP4: Fixture = {
  name: 'v2 PROXY TCP4',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x11], // TCP over IPv4
    u16(12), // length: 12 bytes of addresses
    [192, 168, 1, 101], // source address 192.168.1.101
    [192, 168, 1, 1], // destination address 192.168.1.1
    u16(1234), // source port 1234
    u16(443), // destination port 443
  ),
  header: { ...TCP4_HEADER, tlvs: [] },
};

export const V2_TCP6: Fixture = {
  name: 'v2 PROXY TCP6',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x21], // TCP over IPv6
    u16(36), // length: 36 bytes of addresses
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], // source address 2001:db8::1
    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0x02], // destination address fe80::1:0:0:2
    u16(56324), // source port 56324
    u16(443), // destination port 443
  ),
  header: {
    version: 2,
    command: 'PROXY',
    family: 'TCP6',
    source: { address: '2001:db8::1', port: 56324 },
    destination: { address: 'fe80::1:0:0:2', port: 443 },
    tlvs: [],
  },
};

export const V2_LOCAL: Fixture = {
  name: 'v2 LOCAL (a health check: use the real addresses)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x20], // version 2 + LOCAL command
    [0x00], // UNSPEC
    u16(0), // length: no addresses
  ),
  header: { version: 2, command: 'LOCAL', family: 'UNSPEC', tlvs: [] },
};

export const V2_LOCAL_WITH_ADDRESSES: Fixture = {
  name: 'v2 LOCAL with a TCP4 address block and a TLV, both skipped',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x20], // version 2 + LOCAL command
    [0x11], // TCP over IPv4, ignored under LOCAL
    u16(12 + 4), // length: 12 bytes of addresses + 4 bytes of TLV
    [10, 0, 0, 1], // source address, ignored
    [10, 0, 0, 2], // destination address, ignored
    u16(1), // source port, ignored
    u16(2), // destination port, ignored
    [0xe0], // TLV type: custom 0xE0, not read under LOCAL
    u16(1), // TLV length: 1 byte
    [0x00], // TLV value
  ),
  header: { version: 2, command: 'LOCAL', family: 'TCP4', tlvs: [] },
};

export const V2_UNSPEC: Fixture = {
  name: 'v2 PROXY UNSPEC (the v2 counterpart of v1 UNKNOWN: use the real addresses)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x00], // UNSPEC: unknown protocol
    u16(4), // length: 4 bytes of address information of unknown format
    [1, 2, 3, 4], // address information, ignored
  ),
  header: { version: 2, command: 'PROXY', family: 'UNSPEC', tlvs: [] },
};

export const V2_UDP4: Fixture = {
  name: 'v2 PROXY UDP4 (not TCP: falls back to the real addresses, TLVs still read)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x12], // UDP over IPv4
    u16(12 + 3), // length: 12 bytes of addresses + 3 bytes of TLV
    [192, 0, 2, 1], // source address, not used
    [192, 0, 2, 2], // destination address, not used
    u16(53), // source port, not used
    u16(53), // destination port, not used
    [0x04], // TLV type: NOOP
    u16(0), // TLV length: empty
  ),
  header: { version: 2, command: 'PROXY', family: 'UDP4', tlvs: [{ type: 0x04, value: bytes() }] },
};

export const V2_UNIX: Fixture = {
  name: 'v2 PROXY UNIX stream (real addresses)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x31], // UNIX stream
    u16(216), // length: 2 * 108 bytes of socket paths
    [...'/run/src.sock'].map((c) => c.charCodeAt(0)).concat(repeat(0, 108 - 13)), // source path, NUL-padded
    repeat(0, 108), // destination path: empty
  ),
  header: { version: 2, command: 'PROXY', family: 'UNIX', tlvs: [] },
};

export const V2_AUTHORITY: Fixture = {
  name: 'v2 PROXY TCP4 with an AUTHORITY TLV',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x11], // TCP over IPv4
    u16(12 + 8), // length: 12 bytes of addresses + 8 bytes of TLV
    [192, 168, 1, 101], // source address 192.168.1.101
    [192, 168, 1, 1], // destination address 192.168.1.1
    u16(1234), // source port 1234
    u16(443), // destination port 443
    [0x02], // TLV type: PP2_TYPE_AUTHORITY (§2.2.2)
    u16(5), // TLV length: 5 bytes
    '12345', // TLV value: the host name (the reg-test's fc_pp_authority "3132333435")
  ),
  header: { ...TCP4_HEADER, tlvs: [{ type: 0x02, value: bytes('12345') }] },
};

export const V2_AUTHORITY_255: Fixture = {
  name: 'v2 PROXY TCP4 with a 255-byte AUTHORITY TLV (the largest HAProxy accepts)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x11], // TCP over IPv4
    u16(12 + 3 + 255), // length: 12 bytes of addresses + 258 bytes of TLV
    [192, 168, 1, 101], // source address 192.168.1.101
    [192, 168, 1, 1], // destination address 192.168.1.1
    u16(1234), // source port 1234
    u16(443), // destination port 443
    [0x02], // TLV type: PP2_TYPE_AUTHORITY
    u16(255), // TLV length: 255 bytes, PP2_AUTHORITY_MAX
    repeat(0x61, 255), // TLV value: "aaa…a"
  ),
  header: { ...TCP4_HEADER, tlvs: [{ type: 0x02, value: Uint8Array.from(repeat(0x61, 255)) }] },
};

export const V2_UNIQUE_ID: Fixture = {
  name: 'v2 PROXY TCP6 with a UNIQUE_ID TLV of 128 bytes (the largest allowed)',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x21], // TCP over IPv6
    u16(36 + 3 + 128), // length: 36 bytes of addresses + 131 bytes of TLV
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // source address ::1
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // destination address ::1
    u16(40000), // source port 40000
    u16(8443), // destination port 8443
    [0x05], // TLV type: PP2_TYPE_UNIQUE_ID (§2.2.5)
    u16(128), // TLV length: 128 bytes, UNIQUEID_LEN
    repeat(0x7a, 128), // TLV value: an opaque id
  ),
  header: {
    version: 2,
    command: 'PROXY',
    family: 'TCP6',
    source: { address: '::1', port: 40000 },
    destination: { address: '::1', port: 8443 },
    tlvs: [{ type: 0x05, value: Uint8Array.from(repeat(0x7a, 128)) }],
  },
};

export const V2_CRC32C: Fixture = {
  name: 'v2 PROXY TCP4 with a CRC32C TLV',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x11], // TCP over IPv4
    u16(12 + 7), // length: 12 bytes of addresses + 7 bytes of TLV
    [192, 168, 1, 101], // source address 192.168.1.101
    [192, 168, 1, 1], // destination address 192.168.1.1
    u16(1234), // source port 1234
    u16(443), // destination port 443
    [0x03], // TLV type: PP2_TYPE_CRC32C (§2.2.3)
    u16(4), // TLV length: 4 bytes
    [0x32, 0xa8, 0x8c, 0x48], // TLV value: CRC32c of these 35 bytes with this field zeroed, big-endian
  ),
  header: { ...TCP4_HEADER, tlvs: [{ type: 0x03, value: bytes([0x32, 0xa8, 0x8c, 0x48]) }] },
};

export const V2_CUSTOM_TLVS: Fixture = {
  name: 'v2 PROXY TCP4 with custom, NOOP and empty TLVs',
  bytes: bytes(
    SIG, // PROXY v2 signature
    [0x21], // version 2 + PROXY command
    [0x11], // TCP over IPv4
    u16(12 + 6 + 3 + 5 + 3), // length: 12 bytes of addresses + 4 TLVs of 6, 3, 5 and 3 bytes
    [192, 168, 1, 101], // source address 192.168.1.101
    [192, 168, 1, 1], // destination address 192.168.1.1
    u16(1234), // source port 1234
    u16(443), // destination port 443
    [0xe1], // TLV type: custom 0xE1 (§2.2.8)
    u16(3), // TLV length: 3 bytes
    'foo', // TLV value
    [0xe2], // TLV type: custom 0xE2
    u16(0), // TLV length: 0 (an empty value, as proxy_protocol_send_generic.vtc sends)
    [0x04], // TLV type: PP2_TYPE_NOOP (§2.2.4)
    u16(2), // TLV length: 2 bytes of padding
    [0x00, 0x00], // TLV value: ignored
    [0xea], // TLV type: 0xEA (AWS VPC endpoint id in tlvs.vtc)
    u16(0), // TLV length: 0
  ),
  header: {
    ...TCP4_HEADER,
    tlvs: [
      { type: 0xe1, value: bytes('foo') },
      { type: 0xe2, value: bytes() },
      { type: 0x04, value: bytes([0, 0]) },
      { type: 0xea, value: bytes() },
    ],
  },
};

export const V2_FIXTURES: readonly Fixture[] = [
  V2_TCP4,
  V2_TCP6,
  V2_LOCAL,
  V2_LOCAL_WITH_ADDRESSES,
  V2_UNSPEC,
  V2_UDP4,
  V2_UNIX,
  V2_AUTHORITY,
  V2_AUTHORITY_255,
  V2_UNIQUE_ID,
  V2_CRC32C,
  V2_CUSTOM_TLVS,
];

export const ALL_FIXTURES: readonly Fixture[] = [...V1_FIXTURES, ...V2_FIXTURES];
