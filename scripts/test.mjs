#!/usr/bin/env node
// `npm test`: the typecheck and the lint run beside the test suite rather than before it, because
// the suite spends much of its time waiting on sockets and deadlines. Each part's output is
// printed whole when it ends, and the run fails if any part fails.
import { spawn } from 'node:child_process';

const PARTS = [
  { name: 'typecheck + lint', cmd: 'npm run --silent typecheck && npm run --silent lint' },
  { name: 'tests', cmd: 'npx vitest run' },
];

function runPart(part) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', part.cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('close', (code) => resolve({ part, code: code ?? 1, output: chunks.join('') }));
  });
}

const results = await Promise.all(PARTS.map(runPart));
let failed = 0;
for (const r of results) {
  process.stdout.write(
    `\n=== ${r.part.name}: ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code})`}\n${r.output}`,
  );
  if (r.code !== 0) failed++;
}
process.exitCode = failed === 0 ? 0 : 1;
