// @ts-check
/**
 * Compile tsshd's command helper in C (src/cli/sshd/spawner.c) into DIST/libexec/tsshd-spawner.
 *
 * Run by `npm run build` and `prepare` (so `npm install` and `npm ci` build it) and by
 * scripts/run-tests.mjs. A machine without a C compiler gets no binary, and tsshd uses its Perl
 * helper instead (src/cli/sshd/spawn-helper.ts): this script then says so and exits 0, because
 * nothing is broken, only slower. CC in the environment names the compiler (default: cc).
 *
 *   node scripts/build-spawner.mjs [DIST]
 *   node scripts/build-spawner.mjs --check     exit 1 if the compiler warns about the source
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SPAWNER_SOURCE = join(ROOT, 'src', 'cli', 'sshd', 'spawner.c');
export const SPAWNER_FLAGS = ['-O2', '-std=c11', '-Wall', '-Wextra'];

/** Where the binary goes for a given dist folder (spawn-helper.ts looks there). */
export function spawnerPath(dist = join(ROOT, 'dist')) {
  return join(dist, 'libexec', 'tsshd-spawner');
}

/**
 * Build the binary unless it is newer than its source. Returns its path, or undefined when no
 * compiler could build it (with the reason on stderr).
 * @param {string} [dist]
 */
export function buildSpawner(dist) {
  const output = spawnerPath(dist);
  if (existsSync(output) && statSync(output).mtimeMs >= statSync(SPAWNER_SOURCE).mtimeMs) return output;
  mkdirSync(dirname(output), { recursive: true });
  const partial = `${output}.${process.pid}.tmp`;
  const compiler = process.env.CC || 'cc';
  // Warnings are shown, not fatal: a newer compiler's new warning must not cost the machine its
  // helper (--check, run by test/cli/spawner.test.ts, holds the source to none).
  const result = spawnSync(compiler, SPAWNER_FLAGS.concat(['-o', partial, SPAWNER_SOURCE]), { encoding: 'utf8' });
  if (result.status === 0 && result.stderr.trim()) process.stderr.write(result.stderr);
  if (result.status !== 0) {
    rmSync(partial, { force: true });
    const why = result.error ? result.error.message : result.stderr.trim();
    process.stderr.write(`note: tsshd-spawner not built (${compiler}: ${why}); tsshd will start commands through perl instead\n`);
    return undefined;
  }
  // Renamed into place: a tsshd starting now never runs a half-written file.
  renameSync(partial, output);
  return output;
}

/**
 * Compile the source with warnings as errors into nothing kept: exit 1 with the compiler's words
 * when it warns (test/cli/spawner.test.ts runs this with cc and clang).
 */
function check() {
  const compiler = process.env.CC || 'cc';
  const result = spawnSync(compiler, SPAWNER_FLAGS.concat(['-Werror', '-c', '-o', '/dev/null', SPAWNER_SOURCE]), { encoding: 'utf8' });
  if (result.status !== 0) {
    process.stderr.write(`${compiler}: ${result.error ? result.error.message : result.stderr}`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  if (process.argv[2] === '--check') check();
  else buildSpawner(process.argv[2] ? resolve(process.argv[2]) : undefined);
}
