/**
 * The MODP Diffie-Hellman groups SSH uses: Oakley group 2 (RFC 2409 §6.2, SSH's "group1") and the
 * RFC 3526 groups 14-18, all with generator 2.
 *
 * The primes are not retyped from RFC text: node:crypto ships them (`getDiffieHellman('modp14')`),
 * so they are taken from there, which rules out a transcription error. Groups 14-18 cost ~90 µs in
 * total at module load. Oakley group 2 is different: OpenSSL 3 does not know it as a named group,
 * so constructing it runs a full safe-prime check (~45 ms); it is built lazily, on first use of the
 * opt-in diffie-hellman-group1-sha1.
 */
import { getDiffieHellman } from 'node:crypto';
import type { DhGroup } from '../types.js';

/** A MODP group with its size and the name node:crypto knows it by. */
export interface ModpGroup extends DhGroup {
  /** Size of the prime in bits. */
  readonly bits: number;
  /** The `getDiffieHellman` name (`modp14`). */
  readonly nodeName: string;
}

const GENERATOR_2: Buffer = Buffer.from([2]);

function namedGroup(nodeName: string, bits: number): ModpGroup {
  const prime = getDiffieHellman(nodeName).getPrime();
  if (prime.length * 8 !== bits) throw new Error(`node's ${nodeName} prime is ${prime.length * 8} bits, expected ${bits}`);
  return { prime, generator: GENERATOR_2, bits, nodeName };
}

/** Oakley group 2, 1024 bits (RFC 2409 §6.2): diffie-hellman-group1-sha1 (RFC 4253 §8.1). Built on first use. */
export const modpGroup1: ModpGroup = (() => {
  let prime: Buffer | undefined;
  return {
    get prime(): Buffer {
      if (prime === undefined) prime = namedGroup('modp2', 1024).prime;
      return prime;
    },
    generator: GENERATOR_2,
    bits: 1024,
    nodeName: 'modp2',
  };
})();

/** RFC 3526 §3, 2048 bits: diffie-hellman-group14-* (RFC 4253 §8.2, RFC 8268 §3). */
export const modpGroup14: ModpGroup = namedGroup('modp14', 2048);
/** RFC 3526 §4, 3072 bits: offered only through group exchange. */
export const modpGroup15: ModpGroup = namedGroup('modp15', 3072);
/** RFC 3526 §5, 4096 bits: diffie-hellman-group16-sha512 (RFC 8268 §3). */
export const modpGroup16: ModpGroup = namedGroup('modp16', 4096);
/** RFC 3526 §6, 6144 bits: offered only through group exchange. */
export const modpGroup17: ModpGroup = namedGroup('modp17', 6144);
/** RFC 3526 §7, 8192 bits: diffie-hellman-group18-sha512 (RFC 8268 §3). */
export const modpGroup18: ModpGroup = namedGroup('modp18', 8192);

/** The groups a server offers in diffie-hellman-group-exchange, smallest first. */
export const gexGroups: readonly ModpGroup[] = [modpGroup14, modpGroup15, modpGroup16, modpGroup17, modpGroup18];

/**
 * RFC 8270 §3 (updating RFC 4419): group exchange must not use a modulus below 2048 bits,
 * whatever minimum the client asks for.
 */
export const GEX_MIN_BITS = 2048;
/** RFC 4419 §3 lets a client ask for up to 8192 bits; nothing larger is offered or accepted. */
export const GEX_MAX_BITS = 8192;

/**
 * The server's choice for SSH_MSG_KEX_DH_GEX_REQUEST (RFC 4419 §3): the group whose size is
 * closest to `preferred` among those within [max(min, 2048), max]. On a tie the larger group wins.
 * Undefined when no group fits, which the server must answer by failing the key exchange.
 */
export function chooseGexGroup(min: number, preferred: number, max: number): DhGroup | undefined {
  const low = Math.max(min, GEX_MIN_BITS);
  let best: ModpGroup | undefined;
  for (const group of gexGroups) {
    if (group.bits < low || group.bits > max) continue;
    if (
      best === undefined ||
      Math.abs(group.bits - preferred) < Math.abs(best.bits - preferred) ||
      (Math.abs(group.bits - preferred) === Math.abs(best.bits - preferred) && group.bits > best.bits)
    ) {
      best = group;
    }
  }
  return best;
}

/**
 * The RFC 3526 group (14-18) with this prime, if it is one: OpenSSL knows those as named groups,
 * which makes node's fast `getDiffieHellman` path usable for them.
 */
export function findNamedGroup(prime: Buffer): ModpGroup | undefined {
  for (const group of gexGroups) if (group.prime.equals(prime)) return group;
  return undefined;
}

/** Size in bits of an unsigned big-endian number (leading zero bytes ignored). */
export function bitLength(magnitude: Uint8Array): number {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  if (start === magnitude.length) return 0;
  return (magnitude.length - start - 1) * 8 + (32 - Math.clz32(magnitude[start]!));
}
