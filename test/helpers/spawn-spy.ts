/**
 * Preloaded (`node --import`) into a program under test to show which programs it starts: each
 * child_process.spawn() appends its file and arguments, as one JSON array per line, to the file
 * named by TSSH_SPAWN_LOG. A program can exec into another (setpriv into the shell), so the call
 * is what a test can check, not the process it leaves behind.
 */
import childProcess, { type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const log = process.env.TSSH_SPAWN_LOG;
type Spawn = (file: string, ...rest: unknown[]) => ChildProcess;
const exports = childProcess as unknown as { spawn: Spawn };
const original = exports.spawn;
exports.spawn = function (this: unknown, file: string, ...rest: unknown[]): ChildProcess {
  const args = Array.isArray(rest[0]) ? (rest[0] as unknown[]).map(String) : [];
  if (log) appendFileSync(log, `${JSON.stringify([file, ...args])}\n`);
  return original.call(this, file, ...rest);
};
// ES modules that import { spawn } see the wrapper only after this.
syncBuiltinESMExports();
