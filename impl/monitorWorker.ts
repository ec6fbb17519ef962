/**
 * The worker thread of ThreadedMonitor (impl/monitorThread.ts): decodes the batches the proxy's
 * thread posts back into trace lines (decodeBatch), runs the in-thread Monitor (impl/monitor.ts)
 * on them in order, and posts every report back. On 'finish' it checks what the last step still
 * owed, posts the summary line, and waits to be ended. Loaded by the worker's bootstrap, never
 * imported.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Monitor } from './monitor.ts';
import { decodeBatch, type FromWorker, type ToWorker, type WorkerData } from './monitorThread.ts';

const port = parentPort!;
const table: unknown[] = [];
const monitor = new Monitor((workerData as WorkerData).config, function monitorOnReport(text: string): void {
  port.postMessage({ kind: 'report', text } satisfies FromWorker);
});

port.on('message', function workerOnMessage(m: ToWorker): void {
  if (m.kind === 'batch') {
    for (const line of decodeBatch(m.batch, table)) monitor.line(line);
    port.postMessage({ kind: 'checked' } satisfies FromWorker);
    return;
  }
  port.postMessage({ kind: 'summary', text: monitor.finish() } satisfies FromWorker);
});
