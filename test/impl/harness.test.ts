import { describe, expect, it } from 'vitest';

import { streamBytes } from './harness.ts';

describe("the tests' byte stream", () => {
  it('cuts a span at any byte as a prefix of the longer span, the last word begun', () => {
    const whole = streamBytes(0, 64);
    for (let n = 0; n <= 64; n++)
      expect(streamBytes(0, n).equals(whole.subarray(0, n)), `cut at ${n}`).toBe(true);
    expect([...streamBytes(0, 7).subarray(4)]).toEqual([4, 0, 0]);
  });

  it('continues at a word offset with the words of that offset', () => {
    const whole = streamBytes(0, 131_076);
    expect(streamBytes(65_536, 65_538).equals(whole.subarray(65_536, 131_074))).toBe(true);
    expect(streamBytes(65_536, 4).readUInt32LE(0)).toBe(65_536);
  });

  it('refuses to start inside a word', () => {
    expect(() => streamBytes(2, 8)).toThrow(/2 is not the offset of a word/);
  });
});
