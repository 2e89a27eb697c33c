/**
 * Checks on the public types beyond what the build itself enforces (see usage.ts):
 *
 * - each `// @ts-expect-error TSnnnn` in usage.ts marks a line that fails with exactly that error:
 *   a copy of usage.ts without the directives is compiled on its own and its errors compared;
 * - the declarations the package publishes contain no explicit `any`;
 * - the session classes' events are typed like the others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: this file runs as dist/test/types/types.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

interface Diagnostic {
  line: number;
  code: string;
  message: string;
}

/**
 * Compile `source` (TypeScript whose imports of '../../src/…' mean the repository's src/) alone,
 * with the project's compiler options, and return its errors.
 */
function compile(t: { after(fn: () => void): void }, source: string): Diagnostic[] {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-types-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'usage.ts');
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n'); // an ES module, as in the package
  writeFileSync(file, source.replaceAll("from '../../src/", `from '${join(ROOT, 'src')}/`));
  const project = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: Record<string, unknown> };
  const { rootDir: _rootDir, outDir: _outDir, declaration: _declaration, sourceMap: _sourceMap, ...options } = project.compilerOptions;
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { ...options, noEmit: true, typeRoots: [join(ROOT, 'node_modules', '@types')] }, files: [file] }),
  );
  const result = spawnSync(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
  const diagnostics: Diagnostic[] = [];
  for (const match of result.stdout.matchAll(/^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/gm)) {
    assert.equal(resolve(dir, match[1]!), file, `an error outside the copy of usage.ts:\n${result.stdout}`);
    diagnostics.push({ line: Number(match[2]), code: match[3]!, message: match[4]! });
  }
  assert.ok(result.status === 0 || diagnostics.length > 0, `tsc failed without diagnostics:\n${result.stdout}${result.stderr}`);
  return diagnostics;
}

test('each @ts-expect-error in usage.ts marks a line that fails with the error code it names', (t) => {
  const source = readFileSync(join(ROOT, 'test', 'types', 'usage.ts'), 'utf8');
  const lines = source.split('\n');
  const expected = new Map<number, string>();
  lines.forEach((line, index) => {
    const directive = /^\s*\/\/ @ts-expect-error (TS\d+) \S/.exec(line);
    if (/^\s*\/\/\s*@ts-expect-error/.test(line)) assert.ok(directive, `usage.ts:${index + 1}: write the expected code and the reason after @ts-expect-error`);
    if (directive) expected.set(index + 2, directive[1]!); // the next line, 1-based
  });
  assert.ok(expected.size >= 20, `only ${expected.size} must-not-compile lines found`);

  // The directives become plain comments: line numbers stay, the errors come out.
  const stripped = lines.map((line) => line.replace('// @ts-expect-error', '// expected:')).join('\n');
  const diagnostics = compile(t, stripped);
  const byLine = new Map<number, Diagnostic[]>();
  for (const d of diagnostics) byLine.set(d.line, [...(byLine.get(d.line) ?? []), d]);
  for (const [line, code] of expected) {
    const found = byLine.get(line) ?? [];
    assert.ok(found.length > 0, `usage.ts:${line} compiles, but must fail with ${code}: ${lines[line - 1]!.trim()}`);
    assert.ok(
      found.some((d) => d.code === code),
      `usage.ts:${line} fails with ${found.map((d) => `${d.code} ${d.message}`).join('; ')}, expected ${code}`,
    );
  }
  for (const [line, found] of byLine) {
    assert.ok(expected.has(line), `usage.ts:${line} has an unexpected error: ${found.map((d) => `${d.code} ${d.message}`).join('; ')}`);
  }
});

test('the published declarations contain no explicit any', () => {
  const entry = join(ROOT, 'dist', 'src', 'index.d.ts');
  assert.ok(existsSync(entry), 'build first: dist/src/index.d.ts is missing');
  // Every declaration file reachable from the entry point, through its relative imports and exports.
  const seen = new Set<string>();
  const queue = [entry];
  const offenders: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) queue.push(resolve(dirname(file), `${match[1]}.d.ts`));
    // Comments say "any" in prose; only code counts.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    code.split('\n').forEach((line, index) => {
      if (/(?<![\w$.'"])any(?![\w$'"])/.test(line)) offenders.push(`${file.slice(ROOT.length + 1)}:${index + 1} (comments removed): ${line.trim()}`);
    });
  }
  assert.ok(seen.size > 10, `only ${seen.size} declaration files reached`);
  assert.deepEqual(offenders, []);
});

test(
  "ServerSession and ClientSession events are typed (session.on('exec', …) gets a SessionRequest, not any)",
  (t) => {
    const source = [
      "import type { ServerSession, ClientSession, SessionRequest, ExitInfo } from '../../src/index.js';",
      'type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;',
      'function check<T extends true>(_proof?: T): void {}',
      'export function sessions(server: ServerSession, client: ClientSession): void {',
      "  server.on('exec', (request) => check<Equal<typeof request, SessionRequest<{ command: string }>>>());",
      "  server.on('signal', (name) => check<Equal<typeof name, string>>());",
      "  client.on('exit', (info) => check<Equal<typeof info, ExitInfo>>());",
      '}',
    ].join('\n');
    const diagnostics = compile(t, source);
    assert.deepEqual(diagnostics, []);
  },
);
