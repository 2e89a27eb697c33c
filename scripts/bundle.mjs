// @ts-check
/**
 * The tssh program as one file: dist/bin/tssh.js, bundled by esbuild from what tsc compiled
 * (dist/src), so the JavaScript is exactly tsc's, only joined.
 *
 * Why: tssh is started once per command, like ssh, and Node 20's ES module loader costs about 1 ms
 * of CPU per module (resolve, read, compile, link) before any work: the 73 modules behind
 * `tssh -V` took 0.12-0.15 s of CPU against 0.05 s for `node -e 0`. One file takes 0.08 s
 * (docs/performance.md, "Program start-up"). Packages stay outside the bundle (imported from
 * node_modules as before), and so does node:*.
 *
 * Run by `npm run build` and `prepare` after tsc, and by scripts/run-tests.mjs before the tests.
 * `node scripts/bundle.mjs DIR` bundles what tsc compiled into DIR instead of dist/ (the
 * benchmark's own build does this).
 */
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Programs bundled: name -> the entry tsc compiled, under dist. */
const programs = { tssh: 'src/cli/tssh.js' };

/** Bundle each program into DIST/bin/NAME.js (dist: what tsc compiled, dist/ by default). */
export async function bundlePrograms(dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')) {
  for (const [name, entry] of Object.entries(programs)) {
    const outfile = join(dist, 'bin', `${name}.js`);
    await build({
      entryPoints: [join(dist, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      sourcemap: true,
      logLevel: 'warning',
    });
    chmodSync(outfile, 0o755);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await bundlePrograms(process.argv[2] && resolve(process.argv[2]));
