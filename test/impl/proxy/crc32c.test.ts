import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cUpdate } from '../../../impl/proxy/crc32c.ts';

const DEEP = process.env.EMBRYONIC_DEEP === '1';
const RUNS = DEEP ? 10_000 : 500;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Bit-at-a-time CRC32c straight from the definition: an oracle independent of the table. */
function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('gives the check value 0xE3069283 for "123456789"', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
  });

  it('gives 0 for no bytes', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  // RFC 3720 (iSCSI) §B.4, the CRC32c test vectors; the RFC lists the bytes as sent, little-endian.
  it('matches RFC 3720 §B.4 for 32 bytes of zeros', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  });

  it('matches RFC 3720 §B.4 for 32 bytes of 0xFF', () => {
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  });

  it('matches RFC 3720 §B.4 for 32 incrementing bytes', () => {
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  it('matches RFC 3720 §B.4 for 32 decrementing bytes', () => {
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        const c = crc32c(data);
        expect(Number.isInteger(c) && c >= 0 && c <= 0xffffffff).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('agrees with a bit-at-a-time implementation on random data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        expect(crc32c(data)).toBe(crc32cBitwise(data));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('crc32cUpdate', () => {
  it('continues a checksum across any split of the data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (data, k) => {
        const cut = k % (data.length + 1);
        const split = crc32cUpdate(crc32cUpdate(0, data.subarray(0, cut)), data.subarray(cut));
        expect(split).toBe(crc32c(data));
      }),
      { numRuns: RUNS },
    );
  });

  it('checksums only the range [start, end) it is given', () => {
    const data = ascii('xx123456789yy');
    expect(crc32cUpdate(0, data, 2, 11)).toBe(0xe3069283);
  });

  it('clamps a range that runs past the data instead of reading beyond it', () => {
    const data = ascii('123456789');
    expect(crc32cUpdate(0, data, -5, 1000)).toBe(0xe3069283);
  });
});
