/**
 * The HMAC MAC algorithms (RFC 4253 §6.4, RFC 6668 for SHA-2, OpenSSH PROTOCOL §1.5 for the
 * `-etm@openssh.com` encrypt-then-MAC variants). These objects only describe an algorithm; the
 * MAC is computed where it is combined with a cipher (../cipher/stream-with-mac.ts).
 *
 * Key length equals the digest length (RFC 6668 §2: "key length = digest length"; RFC 4253 §6.4
 * for hmac-sha1), and the whole digest is sent (no truncated variants are implemented).
 */
import type { HashName, MacAlgorithm } from '../types.js';

function hmac(name: string, hash: HashName, digestLength: number, etm: boolean): MacAlgorithm {
  return Object.freeze({ name, hash, keyLength: digestLength, digestLength, etm });
}

/** RFC 6668 §2, encrypt-and-MAC. */
export const hmacSha2_256: MacAlgorithm = hmac('hmac-sha2-256', 'sha256', 32, false);
/** RFC 6668 §2, encrypt-and-MAC. */
export const hmacSha2_512: MacAlgorithm = hmac('hmac-sha2-512', 'sha512', 64, false);
/** OpenSSH PROTOCOL §1.5: MAC over the ciphertext, packet length in clear. */
export const hmacSha2_256Etm: MacAlgorithm = hmac('hmac-sha2-256-etm@openssh.com', 'sha256', 32, true);
/** OpenSSH PROTOCOL §1.5: MAC over the ciphertext, packet length in clear. */
export const hmacSha2_512Etm: MacAlgorithm = hmac('hmac-sha2-512-etm@openssh.com', 'sha512', 64, true);
/** RFC 4253 §6.4; SHA-1, offered only on explicit opt-in (see the registry). */
export const hmacSha1: MacAlgorithm = hmac('hmac-sha1', 'sha1', 20, false);
/** The encrypt-then-MAC variant of hmac-sha1. */
export const hmacSha1Etm: MacAlgorithm = hmac('hmac-sha1-etm@openssh.com', 'sha1', 20, true);
