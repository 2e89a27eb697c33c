#!/usr/bin/env node
// @ts-check
/**
 * Compile src/algorithms/cipher/chacha20-poly1305.c to WebAssembly and write it, base64-encoded,
 * into src/algorithms/cipher/chacha20-poly1305-wasm.ts with the SHA-256 of the C source it came from.
 *
 *   node scripts/build-wasm.mjs           rewrite chacha20-poly1305-wasm.ts
 *   node scripts/build-wasm.mjs --check   exit 1 unless the committed module is what the source
 *                                         compiles to
 *
 * Needs clang and wasm-ld (Debian packages clang and lld; clang 14 made the committed module). The
 * module is committed because users install tssh without a C compiler; test/algorithms/poly1305.test.ts
 * checks that the recorded source hash matches chacha20-poly1305.c, and, where clang is installed, that
 * compiling it again gives the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE = join(ROOT, 'src/algorithms/cipher/chacha20-poly1305.c');
export const MODULE = join(ROOT, 'src/algorithms/cipher/chacha20-poly1305-wasm.ts');

/** The flags: no C library, bulk-memory for the byte loops, no name or producer sections. */
export const CLANG_ARGS = ['--target=wasm32', '-O3', '-mbulk-memory', '-nostdlib', '-Wl,--no-entry', '-Wl,-z,stack-size=4096', '-Wl,--strip-all'];

/** Compile the source; returns the WebAssembly bytes. Throws when clang or wasm-ld is missing. */
export function compile(clang = process.env.CLANG ?? 'clang') {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-wasm-'));
  try {
    const out = join(dir, 'module.wasm');
    execFileSync(clang, [...CLANG_ARGS, '-o', out, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The TypeScript module holding `wasm` for the source whose hash is `sourceSha256`. */
export function moduleText(wasm, sourceSha256) {
  const base64 = wasm.toString('base64');
  const lines = base64.match(/.{1,96}/g) ?? [];
  return `/**
 * ChaCha20 and Poly1305 compiled to WebAssembly from ./chacha20-poly1305.c by scripts/build-wasm.mjs:
 * do not edit; change chacha20-poly1305.c and run the script again.
 */

/** SHA-256 of the chacha20-poly1305.c this module was compiled from. */
export const CHACHA20_POLY1305_SOURCE_SHA256 = '${sourceSha256}';

/** The WebAssembly module (${wasm.length} bytes), base64. */
export const CHACHA20_POLY1305_WASM_BASE64 =
${lines.map((line, i) => `  '${line}'${i === lines.length - 1 ? ';' : ' +'}`).join('\n')}
`;
}

function main() {
  const sourceSha256 = createHash('sha256').update(readFileSync(SOURCE)).digest('hex');
  const text = moduleText(compile(), sourceSha256);
  if (process.argv.includes('--check')) {
    if (readFileSync(MODULE, 'utf8') !== text) {
      console.error(`${MODULE} is not what ${SOURCE} compiles to: run node scripts/build-wasm.mjs`);
      process.exit(1);
    }
    console.log('chacha20-poly1305-wasm.ts matches chacha20-poly1305.c');
    return;
  }
  writeFileSync(MODULE, text);
  console.log(`wrote ${MODULE}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
