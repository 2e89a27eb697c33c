/**
 * Poly1305 (RFC 8439 §2.5) for chacha20-poly1305@openssh.com. Node 20 offers no raw Poly1305, and
 * a pure-JavaScript one caps the cipher near 0.1-0.2 GB/s (NODE-CRYPTO.md); libsodium's audited
 * WebAssembly build runs it 8x faster here, so it is used when it loads, with @noble/ciphers as
 * the fallback (identical results; the tests compare both).
 */
import { poly1305 as noblePoly1305 } from '@noble/ciphers/_poly1305.js';

type OneTimeAuth = (message: Uint8Array, key: Uint8Array) => Uint8Array;

interface Sodium {
  readonly ready: Promise<void>;
  crypto_onetimeauth(message: Uint8Array, key: Uint8Array): Uint8Array;
}

async function loadSodium(): Promise<OneTimeAuth | undefined> {
  if (process.env.TSSH_POLY1305 === 'js') return undefined;
  try {
    // A variable specifier: an optional speed-up, resolved at run time only.
    const specifier: string = 'libsodium-wrappers-sumo';
    const module = (await import(specifier)) as { default?: Sodium } & Partial<Sodium>;
    const sodium = (module.default ?? module) as Sodium;
    await sodium.ready;
    return (message, key) => sodium.crypto_onetimeauth(message, key);
  } catch {
    return undefined;
  }
}

const sodiumAuth = await loadSodium();

/** Which implementation is in use ('wasm' or 'js'), for logs and benchmarks. */
export const poly1305Implementation: 'wasm' | 'js' = sodiumAuth ? 'wasm' : 'js';

/** The 16-byte Poly1305 tag of `message` under the one-time `key` (32 bytes). */
export const poly1305: OneTimeAuth = sodiumAuth ?? ((message, key) => noblePoly1305(message, key));

/** The pure-JavaScript implementation, for comparison in tests. */
export const poly1305Js: OneTimeAuth = (message, key) => noblePoly1305(message, key);
