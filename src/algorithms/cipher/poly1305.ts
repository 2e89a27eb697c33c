/**
 * Poly1305 (RFC 8439 §2.5) for chacha20-poly1305@openssh.com. Node 20 offers no raw Poly1305, and
 * a pure-JavaScript one caps the cipher near 0.1-0.2 GB/s (NODE-CRYPTO.md), so tags are computed
 * by our WebAssembly module (./chacha20-poly1305.c, loaded by ./wasm.ts). @noble/ciphers (audited,
 * pure JavaScript) is the fallback where WebAssembly is unavailable, and the reference the tests
 * hold the module to, with RFC 8439's test vectors.
 *
 * Why not libsodium's WebAssembly build, used before: it is no faster here (21 us per 32 KiB for
 * both), and its JavaScript glue put megabytes of objects in the heap, which every full garbage
 * collection of a busy tsshd then had to mark: with it loaded, an aes128-gcm download cost tsshd
 * 2.8-3.4 CPU s/GiB instead of 1.6-2.2 (the same runs with and without it).
 *
 * The message is given in parts (the encrypted length and the encrypted payload of a packet): they
 * are copied once, back to back, into the module's memory, next to the key, and the tag is read
 * back from there. chacha20-poly1305.ts calls the module directly for whole packets.
 */
import { poly1305 as noblePoly1305 } from '@noble/ciphers/_poly1305.js';
import { chachaPolyWasm } from './wasm.js';

/** The 16-byte tag of the concatenation of `parts` under the one-time 32-byte `key`. */
type OneTimeAuth = (parts: readonly Uint8Array[], key: Uint8Array) => Buffer;

const KEY_LENGTH = 32;
const TAG_LENGTH = 16;

function nobleParts(parts: readonly Uint8Array[], key: Uint8Array): Buffer {
  const message = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const tag = noblePoly1305(message, key);
  return Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength);
}

function wasmParts(): OneTimeAuth | undefined {
  const wasm = chachaPolyWasm;
  if (!wasm) return undefined;
  const { heap, polyKeyAt, tagAt, messageAt, maxMessage } = wasm;
  return (parts, key) => {
    heap.set(key.subarray(0, KEY_LENGTH), polyKeyAt);
    let length = 0;
    for (const part of parts) {
      if (length + part.length > maxMessage) return nobleParts(parts, key);
      heap.set(part, messageAt + length);
      length += part.length;
    }
    wasm.poly1305(length);
    return Buffer.from(heap.subarray(tagAt, tagAt + TAG_LENGTH));
  };
}

const wasmAuth = wasmParts();

/** Which implementation computes tags ('wasm', or 'js' without WebAssembly or under TSSH_WASM=0), for logs and benchmarks. */
export function poly1305Implementation(): 'wasm' | 'js' {
  return wasmAuth ? 'wasm' : 'js';
}

/** The 16-byte Poly1305 tag of the concatenated `parts` under the one-time `key` (32 bytes). */
export const poly1305Parts: OneTimeAuth = wasmAuth ?? nobleParts;

/** The 16-byte Poly1305 tag of `message` under the one-time `key` (32 bytes). */
export function poly1305(message: Uint8Array, key: Uint8Array): Buffer {
  return poly1305Parts([message], key);
}

/** The pure-JavaScript implementation, for comparison in tests. */
export function poly1305Js(message: Uint8Array, key: Uint8Array): Buffer {
  return nobleParts([message], key);
}
