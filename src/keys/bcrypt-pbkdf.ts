/**
 * bcrypt_pbkdf, the key derivation OpenSSH uses for encrypted openssh-key-v1 files (PROTOCOL.key
 * §2, kdfname "bcrypt"), from the npm package `bcrypt-pbkdf` (a port of OpenBSD's
 * bcrypt_pbkdf.c). The package is CommonJS without type declarations: this module loads it with
 * createRequire, on first use (only encrypted keys need it, and loading it and tweetnacl costs a
 * program about 15 ms at start), and gives it the one typed signature the rest of tssh uses.
 *
 * Cost: the package runs in plain JavaScript, about 15 ms per round on this kind of machine
 * (ssh-keygen's default of 16 rounds takes about a quarter of a second, NODE-CRYPTO.md), and it
 * blocks the event loop for that long.
 */
import { createRequire } from 'node:module';

/** The part of the package's exports we use (index.js: `module.exports = { pbkdf, ... }`). */
interface BcryptPbkdfModule {
  /** Fills `key[0..keylen)`; returns 0, or -1 for invalid arguments (empty password or salt, rounds < 1). */
  pbkdf(
    pass: Uint8Array,
    passlen: number,
    salt: Uint8Array,
    saltlen: number,
    key: Uint8Array,
    keylen: number,
    rounds: number,
  ): number;
}

let bcrypt: BcryptPbkdfModule | undefined;

/** The longest output bcrypt_pbkdf can produce: 32-byte blocks, at most 32 of them interleaved. */
const MAX_OUTPUT = 32 * 32;

/**
 * Derive `length` bytes from a passphrase and salt with `rounds` rounds. Throws RangeError for
 * arguments bcrypt_pbkdf rejects (an empty passphrase or salt, rounds < 1, length 0 or > 1024):
 * callers check what comes from a file before calling.
 */
export function bcryptPbkdf(passphrase: Uint8Array, salt: Uint8Array, length: number, rounds: number): Buffer {
  if (passphrase.length === 0) throw new RangeError('bcrypt_pbkdf needs a non-empty passphrase');
  if (salt.length === 0) throw new RangeError('bcrypt_pbkdf needs a non-empty salt');
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`bcrypt_pbkdf rounds must be a positive integer, got ${rounds}`);
  if (!Number.isInteger(length) || length < 1 || length > MAX_OUTPUT) {
    throw new RangeError(`bcrypt_pbkdf output length must be 1..${MAX_OUTPUT}, got ${length}`);
  }
  bcrypt ??= createRequire(import.meta.url)('bcrypt-pbkdf') as BcryptPbkdfModule;
  const out = Buffer.alloc(length);
  const status = bcrypt.pbkdf(passphrase, passphrase.length, salt, salt.length, out, length, rounds);
  if (status !== 0) throw new RangeError('bcrypt_pbkdf rejected its arguments');
  return out;
}
