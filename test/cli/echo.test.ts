/**
 * `embryonic echo`, the backend of the examples and of the benchmarks, run as its own process and
 * observed from its client's side: the bytes that come back, in order, and the FIN after them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

let child: ChildProcess;
let port: number;

beforeAll(async () => {
  child = spawn(process.execPath, [join(ROOT, 'bin/embryonic.js'), 'echo', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  port = await new Promise<number>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`the echo did not start: ${err}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
});

afterAll(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

/**
 * Sends `sent` in 64 KiB writes and ends, reading nothing back until the path stalls (no 'drain'
 * within `holdMs`: the echo's writes wait, and so do its reads); resolves with what came back
 * before the echo's FIN, and whether the path stalled.
 */
function roundTrip(sent: Buffer, holdMs: number): Promise<{ got: Buffer; how: string; stalled: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let stalled = false;
    const s = net.connect(port, '127.0.0.1');
    s.pause();
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve({ got: Buffer.concat(chunks), how: 'fin', stalled }));
    s.once('error', (e) => resolve({ got: Buffer.concat(chunks), how: e.message, stalled }));
    s.once('connect', async () => {
      for (let i = 0; i < sent.length; i += 65536) {
        if (s.write(sent.subarray(i, i + 65536))) continue;
        const drained = new Promise((r) => s.once('drain', () => r(true)));
        const timeout = new Promise((r) => setTimeout(() => r(false), holdMs));
        if (!stalled && !(await Promise.race([drained, timeout]))) {
          stalled = true;
          s.resume();
        }
        await drained;
      }
      s.end();
      s.resume();
    });
  });
}

/** `n` bytes where every 4-byte word is its own offset: a span written twice or out of order shows. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(i, i);
  return b;
}

describe('embryonic echo', () => {
  it('writes back a short message and closes its side after the client closes its own', async () => {
    const r = await roundTrip(Buffer.from('hello'), 0);
    expect(r).toEqual({ got: Buffer.from('hello'), how: 'fin', stalled: false });
  });

  it('writes back every byte of a stream in order while the client does not read, then its FIN', async () => {
    const sent = pattern(24 * 1024 * 1024);
    const r = await roundTrip(sent, 300);
    expect(r.how).toBe('fin');
    expect(r.stalled).toBe(true);
    expect(r.got.length).toBe(sent.length);
    expect(r.got.equals(sent)).toBe(true);
  }, 20_000);
});
