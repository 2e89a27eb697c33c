/**
 * Poly1305 (RFC 8439 §2.5) for chacha20-poly1305@openssh.com. Node 20 offers no raw Poly1305, and
 * a pure-JavaScript one caps the cipher near 0.1-0.2 GB/s (NODE-CRYPTO.md); libsodium's audited
 * WebAssembly build runs it 8x faster here, so it is used when it loads, with @noble/ciphers as
 * the fallback (identical results; the tests compare both).
 *
 * The message is given in parts (the encrypted length and the encrypted payload of a packet, which
 * the sealer keeps as separate wire chunks): they are copied once, back to back, into a scratch
 * area of the WebAssembly memory that is allocated once, and the one-shot function runs there. The
 * libsodium wrappers' own crypto_onetimeauth would allocate and free WebAssembly memory and copy
 * the result on every call.
 *
 * libsodium is loaded when chacha20-poly1305 is first keyed, not when this module is imported: its
 * WebAssembly instance adds about 7 MB of resident memory, and tsshd forks a process for every
 * session, a fork whose cost grows with the parent's resident memory (measured: ~0.02 ms per MB
 * per fork). A process that never negotiates the cipher never loads it. Until the load completes
 * (one turn of key exchange is ample), tags are computed by @noble/ciphers: the same function, so
 * nothing depends on when, or whether, the load finishes.
 */
import { poly1305 as noblePoly1305 } from '@noble/ciphers/_poly1305.js';

/** The 16-byte tag of the concatenation of `parts` under the one-time 32-byte `key`. */
type OneTimeAuth = (parts: readonly Uint8Array[], key: Uint8Array) => Buffer;

/** The emscripten module inside libsodium-wrappers-sumo (`sodium.libsodium`): only what we call. */
interface SodiumModule {
  readonly HEAPU8: Uint8Array;
  _malloc(size: number): number;
  /** crypto_onetimeauth(out, in, inlen as two 32-bit halves, key): 0 on success. */
  _crypto_onetimeauth(out: number, input: number, lengthLow: number, lengthHigh: number, key: number): number;
}

interface Sodium {
  readonly ready: Promise<void>;
  readonly libsodium: SodiumModule;
}

const TAG_LENGTH = 16;
const KEY_LENGTH = 32;
/** The largest message: a whole packet of the maximum length we accept, tag excluded. */
const MAX_MESSAGE = 256 * 1024 + 64;

async function loadSodium(): Promise<OneTimeAuth | undefined> {
  if (process.env.TSSH_POLY1305 === 'js') return undefined;
  try {
    // A variable specifier: an optional speed-up, resolved at run time only.
    const specifier: string = 'libsodium-wrappers-sumo';
    const module = (await import(specifier)) as { default?: Sodium } & Partial<Sodium>;
    const sodium = (module.default ?? module) as Sodium;
    await sodium.ready;
    const wasm = sodium.libsodium;
    if (typeof wasm?._malloc !== 'function' || typeof wasm._crypto_onetimeauth !== 'function') return undefined;
    // One area for the whole process: key, tag, then the message (calls never overlap).
    const base = wasm._malloc(KEY_LENGTH + TAG_LENGTH + MAX_MESSAGE);
    if (!base) return undefined;
    const keyAt = base;
    const tagAt = base + KEY_LENGTH;
    const messageAt = tagAt + TAG_LENGTH;
    return (parts, key) => {
      // HEAPU8 is replaced when the WebAssembly memory grows: read it at every call.
      const heap = wasm.HEAPU8;
      heap.set(key.subarray(0, KEY_LENGTH), keyAt);
      let length = 0;
      for (const part of parts) {
        if (length + part.length > MAX_MESSAGE) return nobleParts(parts, key);
        heap.set(part, messageAt + length);
        length += part.length;
      }
      wasm._crypto_onetimeauth(tagAt, messageAt, length, 0, keyAt);
      return Buffer.from(heap.subarray(tagAt, tagAt + TAG_LENGTH));
    };
  } catch {
    return undefined;
  }
}

function nobleParts(parts: readonly Uint8Array[], key: Uint8Array): Buffer {
  const message = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const tag = noblePoly1305(message, key);
  return Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength);
}

/** libsodium's one-shot function once loaded; undefined before (and for good when it cannot load). */
let sodiumAuth: OneTimeAuth | undefined;
let sodiumLoad: Promise<void> | undefined;

/**
 * Start loading libsodium (once; later calls return the same promise, which never rejects: a
 * failed load leaves the JavaScript implementation in use). The chacha20-poly1305 sealer and
 * opener call this when they are made.
 */
export function loadPoly1305Wasm(): Promise<void> {
  sodiumLoad ??= loadSodium().then((auth) => {
    sodiumAuth = auth;
  });
  return sodiumLoad;
}

/** Which implementation computes tags now ('wasm' once libsodium has loaded, else 'js'), for logs and benchmarks. */
export function poly1305Implementation(): 'wasm' | 'js' {
  return sodiumAuth ? 'wasm' : 'js';
}

/** The 16-byte Poly1305 tag of the concatenated `parts` under the one-time `key` (32 bytes). */
export function poly1305Parts(parts: readonly Uint8Array[], key: Uint8Array): Buffer {
  return sodiumAuth ? sodiumAuth(parts, key) : nobleParts(parts, key);
}

/** The 16-byte Poly1305 tag of `message` under the one-time `key` (32 bytes). */
export function poly1305(message: Uint8Array, key: Uint8Array): Buffer {
  return poly1305Parts([message], key);
}

/** The pure-JavaScript implementation, for comparison in tests. */
export function poly1305Js(message: Uint8Array, key: Uint8Array): Buffer {
  return nobleParts([message], key);
}
