// @ts-check
/**
 * Each program as one file: dist/bin/NAME-main.cjs (tssh, tsshd, tssh-keygen), bundled by esbuild
 * from what tsc compiled (dist/src), so the JavaScript is tsc's, only joined (and made CommonJS),
 * started by the launcher dist/bin/NAME.js with V8's code cache. Both are CommonJS
 * (dist/bin/package.json says so for the launcher's .js name).
 *
 * Why: tssh is started once per command, like ssh (and tsshd once per connection with -i), and
 * Node 20's ES module loader costs about 1 ms of CPU per module (resolve, read, compile, link)
 * before any work: the 73 modules behind `tssh -V` took 0.12-0.15 s of CPU against 0.05 s for
 * `node -e 0`. One file takes 0.08 s (docs/performance.md, "Program start-up"); the code cache
 * takes 15 ms more off a login. The @noble packages are bundled too (see externalPackages); node:*
 * and the other packages are not.
 *
 * Run by `npm run build` and `prepare` after tsc, and by scripts/run-tests.mjs before the tests.
 * `node scripts/bundle.mjs DIR` bundles what tsc compiled into DIR instead of dist/ (the
 * benchmark's own build does this).
 */
import { build } from 'esbuild';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Programs bundled: name -> the entry tsc compiled and its launcher, under dist. */
const programs = {
  tssh: { entry: 'src/cli/tssh.js', launcher: 'src/cli/launcher.js' },
  tsshd: { entry: 'src/cli/tsshd.js', launcher: 'src/cli/launcher.js' },
  'tssh-keygen': { entry: 'src/cli/tssh-keygen.js', launcher: 'src/cli/launcher.js' },
};

/**
 * Packages loaded from node_modules rather than bundled: all but the @noble family, which is
 * ES modules only, and which a CommonJS program on Node 20 before 20.19 could not require() (nor
 * import() from node:vm without a flag); bundled, esbuild turns them into CommonJS. The rest
 * (pako, bcrypt-pbkdf) are CommonJS and stay as they are.
 */
function externalPackages() {
  const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8'));
  const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})];
  return names.filter((name) => !name.startsWith('@noble/'));
}

/**
 * Bundle each program into DIST/bin/NAME-main.cjs, CommonJS, which its launcher, bundled into
 * DIST/bin/NAME.js with the program's #! line, compiles with V8's code cache
 * (src/cli/code-cache.ts; Node 20 can give vm a cache only for a script, not for an ES module).
 * import.meta.url, which CommonJS lacks, becomes the file's own URL.
 */
export async function bundlePrograms(dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')) {
  /** What both files of a program are built with: CommonJS, where import.meta.url is the file's URL. */
  const common = /** @type {const} */ ({
    bundle: true,
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    format: 'cjs',
    define: { 'import.meta.url': '__bundleImportMetaUrl' },
  });
  const fileUrl = 'var __bundleImportMetaUrl = require("node:url").pathToFileURL(__filename).href;';
  for (const [name, { entry, launcher }] of Object.entries(programs)) {
    const main = join(dist, 'bin', `${name}-main.cjs`);
    await build({
      ...common,
      entryPoints: [join(dist, entry)],
      outfile: main,
      external: externalPackages(),
      // No import() may be left: node:vm runs one only with --experimental-vm-modules on Node 20.
      // import() of a bundled module becomes a function run when first called, so ML-KEM and
      // Argon2 still run only when needed (their text is in the file; their compiled code is in
      // the code cache only if the run that wrote it used them).
      supported: { 'dynamic-import': false },
      banner: { js: fileUrl },
    });
    const hashbang = readFileSync(join(dist, entry), 'utf8').split('\n', 1)[0];
    if (!hashbang.startsWith('#!')) throw new Error(`${entry} has no #! line`);
    const outfile = join(dist, 'bin', `${name}.js`);
    // The launcher is CommonJS too (the package.json beside it says so for its .js name): an ES
    // module's `import { createHash } from 'node:crypto'` makes Node build the module's whole
    // namespace, running every lazy getter of node:crypto (webcrypto and the rest), where
    // require() runs only what it uses. `tssh -V`: 84.6 -> 78.8 ms (medians of 30, interleaved).
    await build({ ...common, entryPoints: [join(dist, launcher)], outfile, banner: { js: `${hashbang}\n${fileUrl}` } });
    chmodSync(outfile, 0o755);
  }
  writeFileSync(join(dist, 'bin', 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await bundlePrograms(process.argv[2] && resolve(process.argv[2]));
