/**
 * ecdh-sha2-nistp256/384/521 (RFC 5656 §4, hash per §6.2.1). `crypto.createECDH` is used rather
 * than KeyObjects: it needs no key import or export at all.
 */
import { createECDH } from 'node:crypto';
import type { ECDH } from 'node:crypto';
import { KexError } from '../../errors.js';
import { encodeMpint } from '../../wire/writer.js';
import type { HashName, KexAlgorithm, KexClientExchange, KexServerResult } from '../types.js';

interface Curve {
  /** OpenSSL's name for createECDH. */
  readonly openssl: string;
  /** Bytes of a field element: Q is 0x04 || x || y, 1 + 2 * this long (SEC 1 §2.3.3). */
  readonly fieldLength: number;
}

/**
 * Check a peer's Q before it reaches OpenSSL: RFC 5656 §4 requires public key validation (SEC 1
 * §3.2.2). OpenSSL checks the point is on the curve; the length and form checks are ours, since
 * OpenSSL would also accept the compressed and hybrid forms (we send and accept only uncompressed,
 * as OpenSSH does) and the one-byte point at infinity.
 */
function checkPoint(curve: Curve, q: Buffer): void {
  const expected = 1 + 2 * curve.fieldLength;
  if (q.length !== expected || q[0] !== 0x04) {
    throw new KexError(`invalid ECDH public value: expected a ${expected}-byte uncompressed point`);
  }
}

function ecdh(name: string, hash: HashName, curve: Curve): KexAlgorithm {
  function computeShared(ecdhKey: ECDH, peer: Buffer): Buffer {
    checkPoint(curve, peer);
    let x: Buffer;
    try {
      x = ecdhKey.computeSecret(peer);
    } catch (cause) {
      throw new KexError('invalid ECDH public value: not a point on the curve', { cause });
    }
    // K is the x coordinate of the shared point as an mpint (RFC 5656 §4).
    return encodeMpint(x);
  }
  return {
    name,
    hash,
    groupExchange: false,
    startClient(): KexClientExchange {
      const key = createECDH(curve.openssl);
      const clientValue = key.generateKeys();
      return { clientValue, finish: (serverValue) => computeShared(key, serverValue) };
    },
    respondServer(clientValue: Buffer): KexServerResult {
      checkPoint(curve, clientValue);
      const key = createECDH(curve.openssl);
      const serverValue = key.generateKeys();
      return { serverValue, sharedSecret: computeShared(key, clientValue) };
    },
  };
}

export const ecdhNistp256: KexAlgorithm = ecdh('ecdh-sha2-nistp256', 'sha256', { openssl: 'prime256v1', fieldLength: 32 });
export const ecdhNistp384: KexAlgorithm = ecdh('ecdh-sha2-nistp384', 'sha384', { openssl: 'secp384r1', fieldLength: 48 });
export const ecdhNistp521: KexAlgorithm = ecdh('ecdh-sha2-nistp521', 'sha512', { openssl: 'secp521r1', fieldLength: 66 });
