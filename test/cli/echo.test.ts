/**
 * `embryonic echo`, the backend of the examples and of the benchmarks, run as its own process and
 * observed from its client's side: the bytes that come back, in order, and the FIN after them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamBytes, writeUntilStalled } from '../impl/harness.ts';

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
 * Sends `message` and ends, reading what comes back; resolves with it and how the echo ended
 * ('fin', or the socket's error message).
 */
function roundTrip(message: Buffer): Promise<{ got: Buffer; how: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve({ got: Buffer.concat(chunks), how: 'fin' }));
    s.once('error', (e) => resolve({ got: Buffer.concat(chunks), how: e.message }));
    s.once('connect', () => s.end(message));
  });
}

/**
 * Writes the stream (streamBytes) in 64 KiB writes without reading until the path stalls (no
 * 'drain' within `holdMs`: the echo's writes wait, and so do its reads), or until `capBytes`; then
 * ends and reads. How much the path holds before it stalls is the kernel's to say: loopback buffers
 * grow with what moves through them (tcp_rmem's maximum is 32 MiB here), so the flood does not
 * guess a size. Resolves with the bytes sent, those that came back before the echo's FIN, and
 * whether it stalled.
 */
function floodUntilStalled(
  holdMs: number,
  capBytes: number,
): Promise<{ sent: number; got: Buffer; how: string; stalled: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let sent = 0;
    let stalled = false;
    const s = net.connect(port, '127.0.0.1');
    s.pause();
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve({ sent, got: Buffer.concat(chunks), how: 'fin', stalled }));
    s.once('error', (e) => resolve({ sent, got: Buffer.concat(chunks), how: e.message, stalled }));
    s.once('connect', async () => {
      ({ written: sent, stalled } = await writeUntilStalled(s, holdMs, capBytes));
      s.end();
      s.resume();
    });
  });
}

describe('embryonic echo', () => {
  it('writes back a short message and closes its side after the client closes its own', async () => {
    const r = await roundTrip(Buffer.from('hello'));
    expect(r).toEqual({ got: Buffer.from('hello'), how: 'fin' });
  });

  it('writes back every byte of a stream in order while the client does not read, then its FIN', async () => {
    const r = await floodUntilStalled(300, 256 * 1024 * 1024);
    expect(r.how).toBe('fin');
    expect(r.stalled).toBe(true);
    expect(r.got.length).toBe(r.sent);
    expect(r.got.equals(streamBytes(0, r.sent))).toBe(true);
  }, 20_000);
});
