/**
 * The WebAssembly module of chacha20-poly1305@openssh.com (./chacha20-poly1305.c, compiled into
 * ./chacha20-poly1305-wasm.ts by scripts/build-wasm.mjs): ChaCha20 blocks, Poly1305 and the packet
 * operations built from them. One instance per process, shared by every connection: JavaScript
 * writes keys, nonce and message into its memory, calls one function and reads the result back,
 * all synchronously, so connections never see each other's state.
 *
 * It is compiled and instantiated when this file is first imported (about 0.1 ms). Where
 * WebAssembly is unavailable (`node --jitless`), or under TSSH_WASM=0, `chachaPolyWasm` is
 * undefined and callers use node:crypto and @noble/ciphers instead.
 */
import { CHACHA20_POLY1305_WASM_BASE64 } from './chacha20-poly1305-wasm.js';

/** The part of the WebAssembly JavaScript API used here (Node's type definitions leave it out). */
interface WebAssemblyApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object, imports: object) => { readonly exports: unknown };
}

/** What chacha20-poly1305.c exports: addresses in its memory, and the operations. */
interface Exports {
  readonly memory: { readonly buffer: ArrayBuffer };
  payload_key(): number;
  length_key(): number;
  poly_key(): number;
  tag(): number;
  nonce(): number;
  message(): number;
  max_message(): number;
  poly1305(length: number): number;
  crypt_length(): void;
  seal(length: number, whole: number): number;
  open(length: number, whole: number): number;
}

/** The instantiated module, with the addresses of its fields resolved once. */
export interface ChachaPolyWasm {
  /** The module's memory (it never grows, so this view stays valid). */
  readonly heap: Uint8Array;
  /** The same memory, for big-endian numbers. */
  readonly view: DataView;
  /** 64 bytes: the payload key K_1 then the length key K_2, as chacha20-poly1305's key material lays them out. */
  readonly keysAt: number;
  /** 32 bytes: a one-time Poly1305 key. */
  readonly polyKeyAt: number;
  /** 16 bytes: where `poly1305()` writes its tag. */
  readonly tagAt: number;
  /** 8 bytes: the ChaCha20 nonce, the packet's sequence number as a big-endian uint64. */
  readonly nonceAt: number;
  /** The message: up to `maxMessage` bytes, and room for a 16-byte tag after them. */
  readonly messageAt: number;
  readonly maxMessage: number;
  /** The tag of the message's first `length` bytes under the Poly1305 key, into `tagAt`. 0, or -1 when too long. */
  poly1305(length: number): number;
  /** XOR the message's first 4 bytes with the length key's keystream block 0. */
  crypt_length(): void;
  /**
   * Seal the `length`-byte plaintext packet in the message area: length encrypted, Poly1305 key
   * made; with `whole` 1, the rest encrypted and the tag appended. 0, or -1 when too long.
   */
  seal(length: number, whole: number): number;
  /**
   * Check the tag that follows the `length`-byte sealed packet in the message area; with `whole`
   * 1, then decrypt all but the length in place. 0, or -1 when the tag is wrong or it is too long.
   */
  open(length: number, whole: number): number;
}

function instantiate(): ChachaPolyWasm | undefined {
  if (process.env.TSSH_WASM === '0') return undefined;
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (!api) return undefined;
  let wasm: Exports;
  try {
    const module = new api.Module(Buffer.from(CHACHA20_POLY1305_WASM_BASE64, 'base64'));
    wasm = new api.Instance(module, {}).exports as Exports;
  } catch {
    return undefined; // no WebAssembly here (--jitless, say)
  }
  const keysAt = wasm.payload_key();
  if (wasm.length_key() !== keysAt + 32) throw new Error('chacha20-poly1305 module: the two keys are not adjacent');
  return {
    heap: new Uint8Array(wasm.memory.buffer),
    view: new DataView(wasm.memory.buffer),
    keysAt,
    polyKeyAt: wasm.poly_key(),
    tagAt: wasm.tag(),
    nonceAt: wasm.nonce(),
    messageAt: wasm.message(),
    maxMessage: wasm.max_message(),
    poly1305: wasm.poly1305,
    crypt_length: wasm.crypt_length,
    seal: wasm.seal,
    open: wasm.open,
  };
}

export const chachaPolyWasm: ChachaPolyWasm | undefined = instantiate();
