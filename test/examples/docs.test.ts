/**
 * The tssh code in docs/switching-from-ssh2.md is type-checked against the built declarations, so
 * the side-by-side cannot drift from the API: every ```js block that imports 'tssh' is written out
 * as a module and checked with tsc (checkJs), as the examples are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test("the tssh snippets in docs/switching-from-ssh2.md type-check against the package's declarations", (t) => {
  const markdown = readFileSync(join(ROOT, 'docs', 'switching-from-ssh2.md'), 'utf8');
  const blocks = [...markdown.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const tssh = blocks.filter((code) => code.includes("from 'tssh'"));
  const ssh2 = blocks.filter((code) => code.includes("require('ssh2')"));
  assert.ok(tssh.length >= 5 && ssh2.length >= 5, `expected the five tasks in both: ${tssh.length} tssh and ${ssh2.length} ssh2 blocks`);

  // Inside the package (dist/ is its build output), so that 'tssh' resolves through its "exports".
  const dir = join(ROOT, 'dist', 'doc-snippets');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  tssh.forEach((code, index) => writeFileSync(join(dir, `snippet-${index + 1}.mjs`), code));
  const examplesConfig = join(ROOT, 'examples', 'tsconfig.json');
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: examplesConfig, include: ['*.mjs'] }));
  const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const report = result.stdout.replace(/snippet-(\d+)\.mjs/g, (_, n: string) => `tssh block ${n}`);
  assert.equal(result.status, 0, `the documentation's tssh code does not type-check:\n${report}${result.stderr}`);
});
