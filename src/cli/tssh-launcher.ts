/**
 * The tssh command's entry once bundled (scripts/bundle.mjs): dist/bin/tssh.js is this launcher
 * with tssh's #! line, and the program itself is dist/bin/tssh-main.cjs beside it, which the
 * launcher starts with V8's code cache (code-cache.ts). Only the bundled copy is meant to run: the
 * path is relative to the launcher's own file.
 */
import { fileURLToPath } from 'node:url';
import { runProgram } from './code-cache.js';

runProgram(fileURLToPath(new URL('./tssh-main.cjs', import.meta.url)));
