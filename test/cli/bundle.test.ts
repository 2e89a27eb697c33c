/**
 * The tssh program is one file (scripts/bundle.mjs): dist/bin/tssh.js holds all of our modules,
 * and imports only Node's own and the packages in node_modules. A relative import left in it would
 * load modules one by one again (the start-up cost the bundle removes) and tie it to dist/src.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { run } from '../helpers/auth-lab.js';

const BUNDLE = resolve('dist/bin/tssh.js');

/** Every module specifier of an ES module's text: static imports and exports, and import(). */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm)) {
    found.push((match[1] ?? match[2] ?? match[3])!);
  }
  return found;
}

test('dist/bin/tssh.js imports only node: modules and packages', () => {
  const text = readFileSync(BUNDLE, 'utf8');
  const found = specifiers(text);
  assert.ok(found.includes('node:crypto'), 'the scan finds imports');
  assert.ok(found.some((s) => s.startsWith('@noble/')), 'packages stay outside the bundle');
  const ours = found.filter((s) => s.startsWith('.') || s.startsWith('/') || s.startsWith('file:'));
  assert.deepEqual(ours, [], 'modules of ours loaded separately');
});

test('dist/bin/tssh.js keeps the #! line of src/cli/tssh.ts, is executable and runs', async () => {
  const source = readFileSync(resolve('src/cli/tssh.ts'), 'utf8').split('\n', 1)[0]!;
  assert.match(source, /^#!/);
  assert.equal(readFileSync(BUNDLE, 'utf8').split('\n', 1)[0], source);
  accessSync(BUNDLE, constants.X_OK);
  const result = await run(BUNDLE, ['-V']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr + result.stdout, /^tssh_\d+\.\d+\.\d+, Node\.js v\d+/);
});

test("every program in package.json's bin is in the files the package ships", () => {
  const pkg = JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
  assert.equal(pkg.bin.tssh, 'dist/bin/tssh.js');
  for (const [name, path] of Object.entries(pkg.bin)) {
    const shipped = pkg.files.some((entry) => path === entry || path.startsWith(`${entry.replace(/\/$/, '')}/`));
    assert.ok(shipped, `${name} (${path}) is not under any of ${pkg.files.join(', ')}`);
  }
});
