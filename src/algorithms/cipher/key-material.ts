/**
 * Cutting derived key material to size. RFC 4253 §7.2 derives keys and IVs from the exchange
 * hash, extending them until they are long enough; like OpenSSH's cipher_init(), we take the first
 * `length` bytes and refuse material that is too short (a bug in the caller, never peer input).
 */
export function takeKeyMaterial(algorithm: string, what: 'key' | 'IV', material: Buffer, length: number): Buffer {
  if (material.length < length) {
    throw new RangeError(`${algorithm} needs a ${length}-byte ${what}, got ${material.length} bytes`);
  }
  // A private copy: the caller may wipe or reuse its key buffer after the cipher is set up. Its
  // own allocation, not a slice of Node's shared 8 KiB pool: this lives as long as the connection,
  // and a pooled slice would keep a whole pool slab alive with it.
  const copy = Buffer.allocUnsafeSlow(length);
  material.copy(copy, 0, 0, length);
  return copy;
}
