/**
 * The worker thread of ThreadedMonitor (impl/monitorThread.ts): reads the lines the proxy's thread
 * publishes in the shared ring (TraceDecoder), runs the in-thread Monitor (impl/monitor.ts) on them
 * in order, and posts every report back. It reads every POLL_MS while lines keep coming and sleeps
 * on the ring when none do. It runs at the lowest priority (on Linux, where a priority is a
 * thread's own), so that checking takes the CPU the proxy and its clients leave: under a load that
 * leaves none it falls behind, and past a whole ring the monitor stops, rather than slow the
 * proxy. On 'finish' it reads what is left, checks what the last step still owed, posts the
 * summary line, and waits to be ended. Loaded by the worker's bootstrap, never imported.
 */
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { headerLine, validateTraceLine, type TraceLine } from '../machines/traceFormat.ts';
import { Monitor } from './monitor.ts';
import {
  POLL_MS,
  TraceDecoder,
  TraceRing,
  type FromWorker,
  type ToWorker,
  type WorkerData,
} from './monitorThread.ts';

// On Linux, setpriority() of "process" 0 changes the calling thread only: this worker, not the proxy.
if (process.platform === 'linux') setPriority(constants.priority.PRIORITY_LOW);

const port = parentPort!;
const data = workerData as WorkerData;
// A configuration the trace format rejects would make every check meaningless: the worker refuses
// it as it starts, and the proxy reports an internal error of the worker and serves on.
const invalid = validateTraceLine(headerLine(0, data.config, []));
if (invalid !== null) throw new Error(`its configuration is not one the trace format accepts: ${invalid}`);
const decoder = new TraceDecoder(new TraceRing(data.ring));
const monitor = new Monitor(data.config, function monitorOnReport(text: string): void {
  port.postMessage({ kind: 'report', text } satisfies FromWorker);
});
let finished = false;
let poll: NodeJS.Timeout | null = null;
let sleeps = 0; // counts the sleeps: a wake-up from an earlier one is stale
let stopSent = false; // the proxy was told that the checker stopped

function decoderOnLine(line: TraceLine): void {
  if (stopSent) return;
  monitor.line(line);
  const why = monitor.stoppedWhy;
  if (why === null) return;
  // The checker stopped on an internal error (reported): the proxy need not encode any more.
  stopSent = true;
  port.postMessage({ kind: 'stopped', why } satisfies FromWorker);
}

/** Reads what the ring holds, then reads again after POLL_MS, or sleeps until woken. */
function ringOnWake(): void {
  if (poll !== null) clearTimeout(poll);
  poll = null;
  sleeps++;
  if (finished) return;
  if (decoder.drain(decoderOnLine) > 0) {
    poll = setTimeout(ringOnWake, POLL_MS);
    return;
  }
  if (decoder.waiting) return; // the values message it waits for wakes it
  const sleep = sleeps;
  const woken = decoder.sleep();
  if (woken === null) poll = setTimeout(ringOnWake, 0);
  else
    void woken.then(function sleepOnEnd(): void {
      if (sleep === sleeps) ringOnWake();
    });
}

port.on('message', function workerOnMessage(m: ToWorker): void {
  if (m.kind === 'values') {
    decoder.values(m.gen, m.values);
    if (poll === null) ringOnWake();
    return;
  }
  decoder.drain(decoderOnLine);
  finished = true;
  if (poll !== null) clearTimeout(poll);
  port.postMessage({ kind: 'summary', text: monitor.finish() } satisfies FromWorker);
});

ringOnWake();
