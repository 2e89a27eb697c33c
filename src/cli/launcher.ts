/**
 * The command of a bundled program (scripts/bundle.mjs): dist/bin/NAME.js is this launcher with
 * the program's #! line, and the program itself is dist/bin/NAME-main.cjs beside it, which the
 * launcher starts with V8's code cache (code-cache.ts). Only a bundled copy is meant to run: the
 * program is found from the launcher's own file name.
 */
import { fileURLToPath } from 'node:url';
import { runProgram } from './code-cache.js';

runProgram(fileURLToPath(import.meta.url).replace(/\.js$/, '-main.cjs'));
