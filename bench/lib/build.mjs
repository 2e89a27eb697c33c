// @ts-check
/**
 * Import this first: it compiles tssh (tsc -p tsconfig.json) into bench/.build/ and points
 * BENCH_DIST there, so one benchmark measures one build from start to end even when dist/ is
 * rebuilt meanwhile (by `npm test`, an editor's watcher, another engineer on the same tree); a
 * half-rebuilt dist/ made tssh runs fail with import errors otherwise. With `--no-build` on the
 * command line (or BENCH_DIST already set) it uses that / dist/ as it is.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

if (!process.env.BENCH_DIST) {
  if (process.argv.includes('--no-build')) {
    process.env.BENCH_DIST = join(root, 'dist');
  } else {
    const out = join(root, 'bench', '.build');
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    if (!existsSync(tsc)) {
      process.stderr.write('bench: node_modules/typescript is missing: run npm install\n');
      process.exit(2);
    }
    rmSync(out, { recursive: true, force: true });
    const started = performance.now();
    const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', out], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    if (!existsSync(join(out, 'src', 'index.js'))) {
      process.stderr.write(`bench: building tssh into ${out} failed:\n${result.stdout}${result.stderr}`);
      process.exit(2);
    }
    // Type errors still emit JavaScript: go on (others' work in progress must not block a
    // benchmark), but say so.
    if (result.status !== 0) process.stderr.write(`bench: tsc reported errors (measuring the emitted JavaScript anyway):\n${(result.stdout + result.stderr).slice(0, 2000)}\n`);
    // The programs as users run them, each one bundled file (scripts/bundle.mjs).
    const bundled = spawnSync(process.execPath, [join(root, 'scripts', 'bundle.mjs'), out], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    if (bundled.status !== 0) {
      process.stderr.write(`bench: bundling the programs into ${out} failed:\n${bundled.stdout}${bundled.stderr}`);
      process.exit(2);
    }
    // tsshd's C command helper, as `npm run build` makes it (without a compiler tsshd uses perl).
    spawnSync(process.execPath, [join(root, 'scripts', 'build-spawner.mjs'), out], { stdio: ['ignore', 'inherit', 'inherit'] });
    process.stderr.write(`bench: compiled tssh into bench/.build in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    process.env.BENCH_DIST = out;
  }
}

export const DIST = /** @type {string} */ (process.env.BENCH_DIST);
