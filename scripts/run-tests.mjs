// Runs every compiled test file with Node's own test runner. Node 20 does not expand globs
// (see ../shared/NODE-CRYPTO.md), so the list is built here and printed, so a file that the
// runner skips is visible.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { bundlePrograms } from './bundle.mjs';
import { buildSpawner } from './build-spawner.mjs';

function collect(dir) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

// The tssh program the tests run is the bundle made from dist/src (scripts/bundle.mjs): made again
// here, so that tests never run a bundle older than what tsc just compiled.
await bundlePrograms();
// And tsshd's C command helper, when a compiler is there (else tsshd uses the Perl one).
buildSpawner();

const only = process.argv.slice(2);
// tsc leaves the output of a deleted source in place: a compiled test without its .ts is stale.
const compiled = collect('dist/test');
const hasSource = (f) => existsSync(join('test', relative('dist/test', f)).replace(/\.js$/, '.ts'));
for (const f of compiled) if (!hasSource(f)) console.log(`not running ${f}: test/ has no source for it any more`);
const files = compiled.filter(hasSource).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
console.log(`running ${files.length} test files`);
if (files.length === 0) {
  // `node --test` with no files would search the whole tree itself (bench/.build included).
  console.error(`no test file in dist/test matches ${only.join(', ')}`);
  process.exit(1);
}
// The tssh programs the tests start keep their code cache (src/cli/code-cache.ts) in a folder of
// this run, not in the home of whoever runs the tests; the cache is on, as for users.
const codeCache = mkdtempSync(join(tmpdir(), 'tssh-test-code-cache-'));
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, TSSH_CODE_CACHE: process.env.TSSH_CODE_CACHE ?? codeCache } },
);
rmSync(codeCache, { recursive: true, force: true });
process.exit(result.status ?? 1);
