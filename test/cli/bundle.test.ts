/**
 * tssh, tsshd and tssh-keygen are each one file (scripts/bundle.mjs): dist/bin/NAME-main.cjs holds all of our
 * modules and the @noble packages, as CommonJS, and requires only Node's own modules and the
 * CommonJS packages in node_modules; dist/bin/NAME.js, the command, is a small CommonJS launcher
 * that starts it with V8's code cache (src/cli/code-cache.ts). A module of ours left outside would
 * load modules one by one again (the start-up cost the bundle removes) and tie the program to
 * dist/src; an import() left in it would fail, as node:vm on Node 20 runs none without a flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { run } from '../helpers/auth-lab.js';

/** Every module specifier of a file: static imports and exports, import() and require(). */
function specifiers(text: string): { imports: string[]; dynamic: string[]; required: string[] } {
  const imports: string[] = [];
  const dynamic: string[] = [];
  const required: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm)) {
    imports.push((match[1] ?? match[2])!);
  }
  for (const match of text.matchAll(/\bimport\(\s*([^)]*)\)/g)) dynamic.push(match[1]!);
  for (const match of text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)|\(__bundleImportMetaUrl\)\(\s*["']([^"']+)["']\s*\)/g)) {
    required.push((match[1] ?? match[2])!);
  }
  return { imports, dynamic, required };
}

/**
 * Each bundled program: the packages it may require from node_modules, whether it has the key
 * exchange in it, and a command line that runs it with what that prints.
 */
const PROGRAMS = [
  { name: 'tssh', packages: ['bcrypt-pbkdf', 'pako'], kex: true, args: ['-V'], prints: /^tssh_\d+\.\d+\.\d+, Node\.js v\d+/ },
  // tsshd also loads node-pty, by a name in a variable (optional: absent is no error), which no scan sees.
  { name: 'tsshd', packages: ['authenticate-pam', 'bcrypt-pbkdf', 'pako'], kex: true, args: ['-V'], prints: /^tsshd_\d+\.\d+\.\d+, Node\.js v\d+/ },
  {
    name: 'tssh-keygen',
    packages: ['bcrypt-pbkdf'],
    kex: false,
    args: ['-l', '-f', resolve('test/fixtures/openssh-sshsig/ed25519.pub')],
    // As ssh-keygen -l prints it for this key.
    prints: /^256 SHA256:\S+ .* \(ED25519\)$/m,
  },
] as const;

for (const { name, packages, kex, args, prints } of PROGRAMS) {
  const launcher = resolve(`dist/bin/${name}.js`);
  const program = resolve(`dist/bin/${name}-main.cjs`);

  test(`dist/bin/${name}.js, the launcher, is CommonJS and requires only node: modules`, () => {
    const found = specifiers(readFileSync(launcher, 'utf8'));
    assert.ok(found.required.includes('node:vm'), 'the scan finds requires');
    assert.deepEqual(found.required.filter((s) => !s.startsWith('node:')), []);
    // An ES module's import of node:crypto would run every lazy getter of its namespace (bundle.mjs).
    assert.deepEqual(found.imports, [], 'CommonJS');
    assert.deepEqual(found.dynamic, []);
    // The name ends in .js in a package of type module: the package.json beside it makes it CommonJS.
    assert.deepEqual(JSON.parse(readFileSync(resolve('dist/bin/package.json'), 'utf8')), { type: 'commonjs' });
  });

  test(`dist/bin/${name}-main.cjs requires only node: modules and the CommonJS packages, and has no import()`, () => {
    const text = readFileSync(program, 'utf8');
    const found = specifiers(text);
    assert.ok(found.required.includes('node:crypto'), 'the scan finds requires');
    assert.deepEqual(found.imports, [], 'CommonJS');
    assert.deepEqual(found.dynamic, [], 'node:vm runs no import() on Node 20');
    const required = found.required.filter((s) => !s.startsWith('node:'));
    assert.deepEqual([...new Set(required)].sort(), [...packages], 'the @noble packages are bundled, the others loaded');
    if (kex) assert.ok(text.includes('ml_kem'), 'ML-KEM is in the file, to run when first needed');
  });

  test(`dist/bin/${name}.js keeps the #! line of src/cli/${name}.ts, is executable and runs`, async () => {
    const source = readFileSync(resolve(`src/cli/${name}.ts`), 'utf8').split('\n', 1)[0]!;
    assert.match(source, /^#!/);
    assert.equal(readFileSync(launcher, 'utf8').split('\n', 1)[0], source);
    accessSync(launcher, constants.X_OK);
    const result = await run(launcher, [...args]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr + result.stdout, prints);
  });
}

test("every program in package.json's bin is in the files the package ships", () => {
  const pkg = JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
  assert.equal(pkg.bin.tssh, 'dist/bin/tssh.js');
  assert.equal(pkg.bin.tsshd, 'dist/bin/tsshd.js');
  assert.equal(pkg.bin['tssh-keygen'], 'dist/bin/tssh-keygen.js');
  for (const [name, path] of Object.entries(pkg.bin)) {
    const shipped = pkg.files.some((entry) => path === entry || path.startsWith(`${entry.replace(/\/$/, '')}/`));
    assert.ok(shipped, `${name} (${path}) is not under any of ${pkg.files.join(', ')}`);
  }
});
