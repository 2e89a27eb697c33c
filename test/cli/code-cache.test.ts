/**
 * The tssh program starts from V8's code cache (src/cli/code-cache.ts): written when absent or
 * refused, taken when it fits, never in a folder that is not the user's, never able to change what
 * the program does. Driven on small programs of the test's own, each load in a process of its own
 * as tssh does (in one process V8 compiles a text it has seen from its own memory, not from the
 * file), and on the bundled tssh.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { codeCacheFolder, MAX_FILES } from '../../src/cli/code-cache.js';
import { run } from '../helpers/auth-lab.js';

const MODULE = fileURLToPath(new URL('../../src/cli/code-cache.js', import.meta.url));

interface Probe {
  filename: string;
  dirname: string;
  strict: boolean;
  sep: string;
  exported: string;
}

interface Outcome {
  status: string;
  file: string | null;
  saved: boolean;
  probe: Probe | null;
}

/** loadProgram(file, folder), run() and save() (twice: the second must not write) in a new process. */
function load(file: string, folder: string | undefined, save = true): Outcome {
  const script = [
    `import { loadProgram } from ${JSON.stringify(MODULE)};`,
    `const loaded = loadProgram(${JSON.stringify(file)}, ${folder === undefined ? 'undefined' : JSON.stringify(folder)});`,
    'loaded.run();',
    `const saved = ${save ? 'loaded.save()' : 'false'};`,
    `if (${save} && loaded.save()) throw new Error('saved twice');`,
    'console.log(JSON.stringify({ status: loaded.status, file: loaded.file ?? null, saved, probe: globalThis.__codeCacheProbe ?? null }));',
  ].join('\n');
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Outcome;
}

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-code-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A CommonJS program that reports what it saw through a global, with a #! line like tssh's. */
function program(dir: string): string {
  const file = join(dir, 'program.cjs');
  writeFileSync(
    file,
    [
      '#!/usr/bin/env node',
      'const path = require("node:path");',
      'function self() { return this; }',
      'globalThis.__codeCacheProbe = { filename: __filename, dirname: __dirname, strict: self() === undefined, sep: path.sep, exported: typeof module.exports };',
    ].join('\n'),
  );
  return file;
}

test('first load: no file; save() writes one, 0600 in a 0700 folder; the next load takes it; the program runs as CommonJS, strict', (t) => {
  const dir = scratch(t);
  const file = program(dir);
  const folder = join(dir, 'cache', 'tssh');
  const first = load(file, folder);
  assert.equal(first.status, 'absent');
  assert.deepEqual(first.probe, { filename: file, dirname: dir, strict: true, sep: '/', exported: 'object' });
  assert.equal(first.saved, true);
  assert.equal(statSync(folder).mode & 0o777, 0o700);
  const files = readdirSync(folder);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^[0-9a-f]{32}\.bin$/);
  assert.equal(statSync(join(folder, files[0]!)).mode & 0o777, 0o600);
  const second = load(file, folder);
  assert.equal(second.status, 'accepted');
  assert.equal(second.file, join(folder, files[0]!));
  assert.equal(second.saved, false, 'an accepted cache is not written again');
  assert.deepEqual(second.probe, first.probe);
});

test('a damaged file is refused by V8, the program still runs, and save() replaces it', (t) => {
  const dir = scratch(t);
  const file = program(dir);
  const folder = join(dir, 'cache');
  const cacheFile = load(file, folder).file!;
  const good = readFileSync(cacheFile);
  const damaged = [
    Buffer.from('not a code cache'),
    // The header V8 checks whole, the rest not: this crashed Node 20 before the digest.
    Buffer.concat([good.subarray(0, 120), Buffer.alloc(good.length - 120, 0x5a)]),
    Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1]! ^ 1])]),
    good.subarray(0, good.length - 100),
    Buffer.alloc(0),
  ];
  for (const damage of damaged) {
    writeFileSync(cacheFile, damage);
    const loaded = load(file, folder);
    assert.equal(loaded.status, 'rejected', `${damage.length} bytes`);
    assert.equal(loaded.probe?.filename, file, 'the program ran');
    assert.equal(loaded.saved, true);
    assert.equal(load(file, folder).status, 'accepted', 'and the new file is taken');
  }
});

test('the cache file is named by the program text: another text of the same length, another file', (t) => {
  const dir = scratch(t);
  const folder = join(dir, 'cache');
  const file = program(dir);
  const before = load(file, folder);
  // V8 itself would take the old file (it checks the text's length), so the name must differ.
  writeFileSync(file, readFileSync(file, 'utf8').replace('typeof module.exports', 'typeof module.exportz'));
  const after = load(file, folder, false);
  assert.equal(after.status, 'absent');
  assert.notEqual(after.file, before.file);
  assert.equal(after.probe?.exported, 'undefined', 'the new text ran');
});

test(`at most ${MAX_FILES} files are kept, the oldest go`, (t) => {
  const dir = scratch(t);
  const folder = join(dir, 'cache');
  mkdirSync(folder, { mode: 0o700 });
  for (let i = 0; i < MAX_FILES + 3; i++) {
    const old = join(folder, `${String(i).padStart(32, '0')}.bin`);
    writeFileSync(old, 'x');
    utimesSync(old, 1000 + i, 1000 + i);
  }
  writeFileSync(join(folder, 'unrelated.txt'), 'stays');
  const loaded = load(program(dir), folder);
  assert.equal(loaded.saved, true);
  const left = readdirSync(folder).filter((name) => name.endsWith('.bin'));
  assert.equal(left.length, MAX_FILES);
  assert.ok(left.includes(loaded.file!.split('/').pop()!));
  assert.ok(!left.includes(`${'0'.repeat(32)}.bin`), 'the oldest went');
  assert.ok(left.includes(`${String(MAX_FILES + 2).padStart(32, '0')}.bin`), 'the newest stayed');
  assert.ok(existsSync(join(folder, 'unrelated.txt')));
});

test('off: TSSH_CODE_CACHE=off or 0; another value is the folder; else XDG_CACHE_HOME or ~/.cache', (t) => {
  assert.equal(codeCacheFolder({ TSSH_CODE_CACHE: 'off' }), undefined);
  assert.equal(codeCacheFolder({ TSSH_CODE_CACHE: '0' }), undefined);
  assert.equal(codeCacheFolder({ TSSH_CODE_CACHE: '/somewhere' }), '/somewhere');
  assert.equal(codeCacheFolder({ XDG_CACHE_HOME: '/xdg' }), '/xdg/tssh/code-cache');
  assert.match(codeCacheFolder({})!, /\/\.cache\/tssh\/code-cache$/);
  const dir = scratch(t);
  const loaded = load(program(dir), undefined);
  assert.equal(loaded.status, 'off');
  assert.equal(loaded.saved, false);
  assert.equal(loaded.probe?.filename, join(dir, 'program.cjs'), 'the program ran');
});

test('no cache in a folder that cannot be made, or that is not ours (a sudo tssh that kept HOME)', (t) => {
  const dir = scratch(t);
  const file = program(dir);
  const blocked = join(dir, 'file-not-folder');
  writeFileSync(blocked, '');
  const underFile = load(file, join(blocked, 'cache'));
  assert.equal(underFile.status, 'off');
  assert.equal(underFile.saved, false);
  assert.ok(underFile.probe, 'the program ran');
  if (process.getuid?.() !== 0) return; // giving a folder to another user needs root (CI runs as root)
  const foreign = join(dir, 'home-of-nobody');
  mkdirSync(foreign, { mode: 0o777 });
  chmodSync(foreign, 0o777);
  chownSync(foreign, 65534, 65534);
  assert.equal(load(file, join(foreign, '.cache', 'tssh')).status, 'off');
  assert.deepEqual(readdirSync(foreign), [], 'nothing created in a folder of another user');
  const theirs = join(dir, 'their-cache');
  mkdirSync(theirs, { mode: 0o777 });
  chmodSync(theirs, 0o777);
  chownSync(theirs, 65534, 65534);
  assert.equal(load(file, theirs).status, 'off', 'an existing folder of another user is not used');
  assert.deepEqual(readdirSync(theirs), []);
});

test('the bundled tssh writes its cache on the first run and starts from it on the next; off writes nothing', async (t) => {
  const dir = scratch(t);
  const tssh = resolve('dist/bin/tssh.js');
  const env = { ...process.env, TSSH_CODE_CACHE: join(dir, 'cache') };
  const first = await run(tssh, ['-V'], { env });
  assert.equal(first.code, 0, first.stderr);
  const files = readdirSync(join(dir, 'cache'));
  assert.equal(files.length, 1);
  const written = statSync(join(dir, 'cache', files[0]!)).mtimeMs;
  const second = await run(tssh, ['-V'], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stderr + second.stdout, first.stderr + first.stdout);
  assert.equal(statSync(join(dir, 'cache', files[0]!)).mtimeMs, written, 'taken, not written again');
  const home = join(dir, 'home');
  mkdirSync(home);
  const off = await run(tssh, ['-V'], { env: { ...process.env, TSSH_CODE_CACHE: 'off', HOME: home, XDG_CACHE_HOME: '' } });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(readdirSync(home), [], 'off writes nothing');
  const byHome = await run(tssh, ['-V'], { env: { ...process.env, TSSH_CODE_CACHE: '', HOME: home, XDG_CACHE_HOME: '' } });
  assert.equal(byHome.code, 0, byHome.stderr);
  assert.equal(readdirSync(join(home, '.cache', 'tssh', 'code-cache')).length, 1, 'by default under ~/.cache');
});
