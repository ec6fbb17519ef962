/**
 * CRC32c (Castagnoli), as used by the PP2_TYPE_CRC32C TLV of the PROXY protocol
 * (doc/proxy-protocol.txt §2.2.3, which points to RFC 4960 Appendix B).
 *
 * Reflected polynomial 0x82F63B78 (0x1EDC6F41 bit-reversed), initial value 0xFFFFFFFF, final XOR
 * 0xFFFFFFFF. The check value is crc32c("123456789") = 0xE3069283.
 *
 * Table-driven, one byte at a time: the headers this checks are at most a few kilobytes, so the
 * slicing-by-8 variants are not worth their extra tables.
 */

/** The reflected Castagnoli polynomial. */
const POLY_REFLECTED = 0x82f63b78;

/** TABLE[b] = CRC of the single byte b, shifted through 8 rounds of the polynomial. */
const TABLE: Uint32Array = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/**
 * Extends the running checksum <crc> with <data>[<start>, <end>) and returns the new checksum.
 * The convention is zlib's crc32(crc, buf): start with 0, and the value returned after each call is
 * already the final CRC of everything fed so far, so
 * `crc32cUpdate(crc32cUpdate(0, a), b) === crc32c(a ++ b)`. This lets a caller checksum a header
 * in pieces (for instance with its CRC field replaced by zeros) without copying it.
 *
 * Requires 0 <= start <= end <= data.length; out-of-range bounds are clamped, never read past.
 * Returns an unsigned 32-bit integer. Pure; <data> is only read.
 */
export function crc32cUpdate(crc: number, data: Uint8Array, start = 0, end: number = data.length): number {
  const stop = Math.min(end, data.length);
  let c = ~crc >>> 0;
  for (let i = Math.max(0, start); i < stop; i++) {
    c = (TABLE[(c ^ (data[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  }
  return ~c >>> 0;
}

/**
 * Returns the CRC32c of all of <data> as an unsigned 32-bit integer.
 * Pure; <data> is only read.
 */
export function crc32c(data: Uint8Array): number {
  return crc32cUpdate(0, data);
}
