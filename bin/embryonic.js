#!/usr/bin/env node
// Entry point of the `embryonic` CLI. The project ships TypeScript sources and runs them
// through tsx's loader, so `npx embryonic ...` works right after `npm ci`, with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
