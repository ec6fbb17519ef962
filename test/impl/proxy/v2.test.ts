import fc from 'fast-check';
import ppjs from 'proxy-protocol-js';
import { describe, expect, it } from 'vitest';
import { buildV2 } from '../../../impl/proxy/build.ts';
import { crc32c } from '../../../impl/proxy/crc32c.ts';
import {
  HAPROXY_BUFSIZE,
  maxTlvValueFor,
  parseProxyHeader,
  type ProxyParseOptions,
} from '../../../impl/proxy/parse.ts';
import { HA_PP2_MAX_ALLOC } from '../../../impl/proxy/v2.ts';
import {
  bytes,
  repeat,
  SIG,
  u16,
  V2_AUTHORITY,
  V2_CRC32C,
  V2_CUSTOM_TLVS,
  V2_FIXTURES,
  V2_LOCAL,
  V2_TCP4,
  V2_TCP6,
  V2_UDP4,
  V2_UNSPEC,
} from './fixtures.ts';

const DEEP = process.env.EMBRYONIC_DEEP === '1';
const RUNS = DEEP ? 5_000 : 500;

const strict = (b: Uint8Array, o: Partial<ProxyParseOptions> = {}) =>
  parseProxyHeader(b, { mode: 'strict', ...o });
const tolerant = (b: Uint8Array, o: Partial<ProxyParseOptions> = {}) =>
  parseProxyHeader(b, { mode: 'tolerant', ...o });
const codeOf = (r: ReturnType<typeof strict>) => (r.status === 'error' ? r.code : r.status);

/** The v2 TCP4 fixed part, addresses and ports, with len = 12 + <tlvLen>. */
const tcp4 = (tlvLen: number): number[] => [
  ...V2_TCP4.bytes.subarray(0, 14),
  ...u16(12 + tlvLen),
  ...V2_TCP4.bytes.subarray(16),
];

/** Writes the CRC32c of <header> (with the 4 bytes at <at> zeroed first) at <at>, big-endian. */
function sealCrc(header: Uint8Array, at: number): Uint8Array {
  const out = header.slice();
  out.fill(0, at, at + 4);
  const c = crc32c(out);
  out.set([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff], at);
  return out;
}

describe('parseV2 (§2.2)', () => {
  for (const f of V2_FIXTURES) {
    it(`parses the ${f.name} fixture in strict and tolerant mode`, () => {
      for (const mode of ['strict', 'tolerant'] as const) {
        expect(parseProxyHeader(f.bytes, { mode, ...f.options })).toEqual({
          status: 'done',
          header: f.header,
          consumed: f.bytes.length,
        });
      }
    });
  }

  it('consumes exactly 16 + len bytes and leaves what follows for the next layer', () => {
    const r = strict(bytes(V2_AUTHORITY.bytes, 'GET / HTTP/1.0\r\n\r\n'));
    expect(r).toEqual({ status: 'done', header: V2_AUTHORITY.header, consumed: 16 + 20 });
  });

  it('does not read bytes after the declared length as a TLV (proxy_protocol_tlv_validation.vtc)', () => {
    const r = strict(bytes(V2_TCP4.bytes, [0x02, 0xff, 0xff]));
    expect(r).toEqual({ status: 'done', header: V2_TCP4.header, consumed: 28 });
  });

  it('returns TLV values that do not change when the input buffer is reused', () => {
    const buf = V2_CUSTOM_TLVS.bytes.slice();
    const r = strict(buf);
    buf.fill(0);
    expect(r).toEqual({
      status: 'done',
      header: V2_CUSTOM_TLVS.header,
      consumed: V2_CUSTOM_TLVS.bytes.length,
    });
  });

  it('does not modify the input buffer while checking a CRC32C TLV', () => {
    const buf = V2_CRC32C.bytes.slice();
    strict(buf);
    expect(buf).toEqual(V2_CRC32C.bytes);
  });

  describe('fixtures', () => {
    it('holds in the CRC32C fixture the CRC32c of the header with that field zeroed (§2.2.3)', () => {
      const at = V2_CRC32C.bytes.length - 4;
      expect(sealCrc(V2_CRC32C.bytes, at)).toEqual(V2_CRC32C.bytes);
    });
  });

  describe('CRC32C (§2.2.3)', () => {
    it('accepts a CRC32C TLV placed before other TLVs', () => {
      const raw = bytes(tcp4(7 + 6), [0x03], u16(4), [0, 0, 0, 0], [0xe0], u16(3), 'abc');
      const r = strict(sealCrc(raw, 31));
      expect(r.status).toBe('done');
    });

    it('rejects any single-bit change in the addresses, the TLV length or the CRC value with PRX_BAD_HDR', () => {
      // Offsets 16..27 are the addresses and ports, 29..30 the TLV length, 31..34 the CRC value.
      // (Flipping the TLV type or the command is not covered: a non-CRC TLV or LOCAL is not checked.)
      const covered = [...Array.from({ length: 12 }, (_, i) => 16 + i), 29, 30, 31, 32, 33, 34];
      fc.assert(
        fc.property(fc.constantFrom(...covered), fc.integer({ min: 0, max: 7 }), (at, bit) => {
          const flipped = V2_CRC32C.bytes.slice();
          flipped[at] = (flipped[at] ?? 0) ^ (1 << bit);
          expect(codeOf(strict(flipped))).toBe('PRX_BAD_HDR');
        }),
        { numRuns: RUNS },
      );
    });

    it('rejects a 3-byte CRC32C TLV even when the byte after it completes a matching checksum', () => {
      // CRC TLV of length 3 at offset 28, then a TLV of length 0 whose type byte is the 4th CRC byte.
      const raw = bytes(tcp4(6 + 3), [0x03], u16(3), [0, 0, 0], [0], u16(0));
      const sealed = sealCrc(raw, 31); // the 4 bytes at 31..34 now hold a matching CRC32c
      expect(codeOf(strict(sealed))).toBe('PRX_BAD_HDR');
    });

    it('checks a second CRC32C TLV with the first one already zeroed, as HAProxy zeroes in place', () => {
      const raw = bytes(tcp4(14), [0x03], u16(4), [0, 0, 0, 0], [0x03], u16(4), [0, 0, 0, 0]);
      const second = sealCrc(raw, 38); // CRC of the header with both fields zeroed
      const both = sealCrc(second, 31); // first CRC: its own field zeroed, the second one set
      expect(strict(both).status).toBe('done');
      const independent = sealCrc(sealCrc(raw, 31), 38); // second CRC computed with the first one set
      expect(codeOf(strict(independent))).toBe('PRX_BAD_HDR');
    });
  });

  describe('addresses of a header found invalid', () => {
    it('come with the error when the TLVs are invalid, since HAProxy copies them before the TLVs', () => {
      const flipped = V2_CRC32C.bytes.slice();
      flipped[34] = (flipped[34] ?? 0) ^ 1; // the CRC value: the addresses stay intact
      const r = strict(flipped);
      expect(r).toMatchObject({ status: 'error', code: 'PRX_BAD_HDR', source: expect.any(Object) });
      const good = strict(V2_CRC32C.bytes);
      if (good.status !== 'done' || r.status !== 'error') throw new Error('unreachable');
      expect(r.source).toEqual(good.header.source);
    });

    it('do not come with an error found before the address block was read', () => {
      // TCP4 with an 8-byte address block, shorter than its 12 bytes of addresses and ports.
      const r = strict(bytes(tcp4(0).slice(0, 14), u16(8), repeat(0, 8)));
      expect(r).toMatchObject({ status: 'error', code: 'PRX_BAD_HDR' });
      expect(r).not.toHaveProperty('source');
    });
  });

  describe('TLV limits', () => {
    it('accepts AUTHORITY of 255 bytes and rejects 256 with PRX_BAD_HDR', () => {
      expect(strict(bytes(tcp4(258), [0x02], u16(255), repeat(0x61, 255))).status).toBe('done');
      expect(codeOf(strict(bytes(tcp4(259), [0x02], u16(256), repeat(0x61, 256))))).toBe('PRX_BAD_HDR');
    });

    it('accepts UNIQUE_ID of 128 bytes and rejects 129 with PRX_BAD_HDR', () => {
      expect(strict(bytes(tcp4(131), [0x05], u16(128), repeat(0x7a, 128))).status).toBe('done');
      expect(codeOf(strict(bytes(tcp4(132), [0x05], u16(129), repeat(0x7a, 129))))).toBe('PRX_BAD_HDR');
    });

    it('accepts a custom TLV of 1024 bytes and more (HAProxy 2.6 has no generic cap)', () => {
      expect(strict(bytes(tcp4(3 + 2000), [0xe5], u16(2000), repeat(1, 2000))).status).toBe('done');
    });

    it("refuses a TLV value over HAProxy 2.9's 1024 bytes without an error code, its addresses taken", () => {
      expect([maxTlvValueFor('dev12'), maxTlvValueFor('2.6'), maxTlvValueFor('2.9')]).toEqual([
        null,
        null,
        HA_PP2_MAX_ALLOC,
      ]);
      const at2_9 = { maxTlvValue: maxTlvValueFor('2.9') };
      expect(strict(bytes(tcp4(3 + 1024), [0xe5], u16(1024), repeat(1, 1024)), at2_9).status).toBe('done');
      const r = strict(bytes(tcp4(3 + 1025), [0xe5], u16(1025), repeat(1, 1025)), at2_9);
      expect(r).toMatchObject({ status: 'error', code: 'NONE', source: expect.any(Object) });
      // The limits of their own come first: an over-long AUTHORITY is still PRX_BAD_HDR.
      expect(codeOf(strict(bytes(tcp4(259), [0x02], u16(256), repeat(0x61, 256)), at2_9))).toBe(
        'PRX_BAD_HDR',
      );
    });
  });

  describe('commands and families', () => {
    it('accepts LOCAL with any family byte and len, without reading TLVs or a CRC', () => {
      const r = strict(bytes(SIG, [0x20], [0x99], u16(7), [0x03], u16(4), [1, 2, 3, 4]));
      expect(r).toEqual({
        status: 'done',
        header: { version: 2, command: 'LOCAL', family: 'UNSPEC', tlvs: [] },
        consumed: 23,
      });
    });

    it('accepts LOCAL with a TCP4 family and len 0 (no address check under LOCAL)', () => {
      expect(codeOf(strict(bytes(SIG, [0x20], [0x11], u16(0))))).toBe('done');
    });

    it('rejects every command other than LOCAL and PROXY with PRX_BAD_HDR', () => {
      for (let cmd = 2; cmd <= 0xf; cmd++) {
        expect(codeOf(strict(bytes(SIG, [0x20 | cmd], [0x11], u16(12), repeat(0, 12))))).toBe('PRX_BAD_HDR');
      }
    });

    it('rejects every family byte §2.2 does not define under PROXY with PRX_BAD_HDR', () => {
      const defined = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);
      for (let fam = 0; fam <= 0xff; fam++) {
        const r = strict(bytes(SIG, [0x21], [fam], u16(216), repeat(0, 216)));
        expect(codeOf(r)).toBe(defined.has(fam) ? 'done' : 'PRX_BAD_HDR');
      }
    });

    it('reads TLVs after the UDP4 address block and gives no addresses', () => {
      expect(strict(V2_UDP4.bytes)).toEqual({ status: 'done', header: V2_UDP4.header, consumed: 31 });
    });

    it('rejects a UNIX header with len 215 with PRX_BAD_HDR', () => {
      expect(codeOf(strict(bytes(SIG, [0x21], [0x31], u16(215), repeat(0, 215))))).toBe('PRX_BAD_HDR');
    });

    it('skips the whole address block of UNSPEC, whatever it holds', () => {
      const r = strict(bytes(SIG, [0x21], [0x00], u16(5), [0x03, 0x00, 0x09, 0xff, 0xff]));
      expect(r).toEqual({
        status: 'done',
        header: { version: 2, command: 'PROXY', family: 'UNSPEC', tlvs: [] },
        consumed: 21,
      });
    });
  });

  describe("HAProxy 2.6's reading of non-TCP families (v2OtherFamilies: 'haproxy-2.6')", () => {
    const opts = { v2OtherFamilies: 'haproxy-2.6' } as const;

    it('rejects PROXY UNSPEC, UDP4 and UNIX headers shorter than 2576 bytes with PRX_BAD_HDR', () => {
      expect(codeOf(strict(V2_UNSPEC.bytes, opts))).toBe('PRX_BAD_HDR');
      expect(codeOf(strict(V2_UDP4.bytes, opts))).toBe('PRX_BAD_HDR');
      expect(codeOf(strict(bytes(SIG, [0x21], [0x31], u16(216), repeat(0, 216)), opts))).toBe('PRX_BAD_HDR');
    });

    it('reads the signature as a 2573-byte TLV of type 0x0D when len is exactly 2560', () => {
      const buf = bytes(SIG, [0x21], [0x00], u16(2560), repeat(0, 2560));
      const r = strict(buf, opts);
      expect(r.status === 'done' && r.header.tlvs.map((t) => [t.type, t.value.length])).toEqual([
        [0x0d, 2573],
      ]);
    });

    it('accepts an undefined family byte when its len reaches past the signature TLV, as HAProxy checks none', () => {
      const buf = bytes(SIG, [0x21], [0x99], u16(2563), repeat(0, 2560), [0xe0], u16(0));
      const r = strict(buf, opts);
      expect(r.status === 'done' && r.header.tlvs.map((t) => t.type)).toEqual([0x0d, 0xe0]);
      expect(codeOf(strict(buf))).toBe('PRX_BAD_HDR');
    });

    it('reads TCP4 and TCP6 headers exactly as the default does', () => {
      for (const f of [V2_TCP4, V2_TCP6, V2_AUTHORITY, V2_CRC32C])
        expect(strict(f.bytes, opts)).toEqual(strict(f.bytes));
    });
  });

  describe('the bufsize bound', () => {
    const sized = (total: number) => bytes(tcp4(total - 28), [0xe0], u16(total - 31), repeat(0, total - 31));

    it('accepts a header of exactly 16384 bytes in both modes', () => {
      expect(strict(sized(HAPROXY_BUFSIZE)).status).toBe('done');
      expect(tolerant(sized(HAPROXY_BUFSIZE)).status).toBe('done');
    });

    it('rejects a header of 16385 bytes with PRX_TRUNCATED in strict mode and PRX_BAD_HDR in tolerant mode', () => {
      expect(codeOf(strict(sized(HAPROXY_BUFSIZE + 1)))).toBe('PRX_TRUNCATED');
      expect(codeOf(tolerant(sized(HAPROXY_BUFSIZE + 1)))).toBe('PRX_BAD_HDR');
    });

    it('decides the bound from the 16 fixed bytes in tolerant mode, without waiting for the rest', () => {
      expect(codeOf(tolerant(sized(HAPROXY_BUFSIZE + 1).subarray(0, 16)))).toBe('PRX_BAD_HDR');
      expect(tolerant(sized(HAPROXY_BUFSIZE).subarray(0, 16))).toEqual({ status: 'need-more' });
    });

    it('follows a smaller bufsize option', () => {
      expect(codeOf(strict(V2_AUTHORITY.bytes, { bufsize: 35 }))).toBe('PRX_TRUNCATED');
      expect(codeOf(strict(V2_AUTHORITY.bytes, { bufsize: 36 }))).toBe('done');
    });
  });

  describe('tolerant mode', () => {
    it('returns need-more for a header missing its last byte', () => {
      expect(tolerant(V2_TCP6.bytes.subarray(0, V2_TCP6.bytes.length - 1))).toEqual({ status: 'need-more' });
    });

    it('returns need-more for the signature alone and for the signature plus a version-2 byte', () => {
      expect(tolerant(bytes(SIG))).toEqual({ status: 'need-more' });
      expect(tolerant(bytes(SIG, [0x21]))).toEqual({ status: 'need-more' });
    });

    it('rejects a bad family from the 16 fixed bytes with PRX_BAD_HDR', () => {
      expect(codeOf(tolerant(bytes(SIG, [0x21], [0x41], u16(12))))).toBe('PRX_BAD_HDR');
    });
  });
});

describe('buildV2', () => {
  it('builds the hand-written fixtures byte for byte', () => {
    for (const f of [V2_TCP4, V2_TCP6, V2_LOCAL, V2_AUTHORITY, V2_CUSTOM_TLVS]) {
      expect(buildV2(f.header)).toEqual(f.bytes);
    }
    expect(buildV2({ ...V2_CRC32C.header, tlvs: [] }, { crc32c: true })).toEqual(V2_CRC32C.bytes);
  });

  it('builds headers that proxy-protocol-js parses to the same addresses and ports', () => {
    const port = fc.integer({ min: 0, max: 65535 });
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), port, port, (s, d, sp, dp) => {
        const built = buildV2({
          family: 'TCP4',
          source: { address: s, port: sp },
          destination: { address: d, port: dp },
        });
        const theirs = ppjs.V2ProxyProtocol.parse(built);
        const addr = theirs.proxyAddress as InstanceType<typeof ppjs.IPv4ProxyAddress>;
        expect([addr.sourceAddress.address.join('.'), addr.destinationAddress.address.join('.')]).toEqual([
          s,
          d,
        ]);
        expect([addr.sourcePort, addr.destinationPort]).toEqual([sp, dp]);
      }),
      { numRuns: RUNS },
    );
  });

  it('throws RangeError when the TLVs exceed the 16-bit len', () => {
    const big = { type: 0xe0, value: new Uint8Array(65535) };
    expect(() => buildV2({ family: 'UNSPEC', tlvs: [big] })).toThrow(RangeError);
  });

  it('throws RangeError for a PROXY TCP4 header without addresses', () => {
    expect(() => buildV2({ family: 'TCP4' })).toThrow(RangeError);
  });
});
