/**
 * chacha20-poly1305@openssh.com (draft-ietf-sshm-chacha20-poly1305-04, OpenSSH
 * PROTOCOL.chacha20poly1305).
 *
 * §6: the 64 bytes of key material are two ChaCha20 keys: the first 32 bytes key the instance that
 * encrypts the packet (padding_length onwards) and makes the Poly1305 key, the last 32 bytes key
 * the instance that encrypts only the 4-byte length. (The draft calls these K_1 and K_2 the other
 * way round from PROTOCOL.chacha20poly1305; the byte positions are the same in both.) The 8-byte
 * ChaCha20 nonce is the sequence number as a big-endian uint64. The length uses block counter 0;
 * the Poly1305 key is the first 32 bytes of the payload key's block 0; the payload is encrypted
 * from block counter 1. §7: the tag covers encrypted length || encrypted payload and is checked,
 * in constant time, before anything is decrypted.
 *
 * This is the original DJB ChaCha20 (64-bit counter, 64-bit nonce), not RFC 8439's: node:crypto's
 * `chacha20` with a 16-byte IV = 64-bit little-endian block counter || 64-bit nonce computes it
 * (checked in /work/shared/NODE-CRYPTO.md and by the draft's worked example in the tests). Node
 * exposes no raw Poly1305: ./poly1305.ts provides it (our WebAssembly build, else @noble/ciphers).
 */
import { createCipheriv, createDecipheriv, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { poly1305Parts } from './poly1305.js';
import { MacError, ProtocolError } from '../../errors.js';
import type { CipherAlgorithm, PacketOpener, PacketSealer } from '../types.js';
import { takeKeyMaterial } from './key-material.js';

const NAME = 'chacha20-poly1305@openssh.com';
const KEY_LENGTH = 64;
const TAG_LENGTH = 16;
const POLY1305_KEY_LENGTH = 32;
/** Encrypting this with the payload key at block counter 0 yields keystream block 0, the Poly1305 key's source. */
const ZERO_BLOCK = Buffer.alloc(64);

/** The two ChaCha20 keys and the IV scratch shared by the sealer and the opener. */
class ChachaKeys {
  readonly payloadKey: KeyObject;
  readonly lengthKey: KeyObject;
  /**
   * node:crypto's 16-byte ChaCha20 IV: bytes 0..7 the block counter (little-endian, always 0 here:
   * the payload cipher reaches block 1 by first producing block 0 for the Poly1305 key), bytes
   * 8..15 the nonce = uint64 sequence number, big-endian, whose top 4 bytes are always 0 (§6).
   * createCipheriv copies it, so it is rewritten in place for every packet.
   */
  private readonly iv = Buffer.alloc(16);

  constructor(key: Buffer) {
    const material = takeKeyMaterial(NAME, 'key', key, KEY_LENGTH);
    this.payloadKey = createSecretKey(material.subarray(0, 32));
    this.lengthKey = createSecretKey(material.subarray(32, 64));
  }

  ivFor(sequence: number): Buffer {
    this.iv.writeUInt32BE(sequence, 12);
    return this.iv;
  }
}

class ChachaSealer implements PacketSealer {
  readonly blockSize = 8;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;

  constructor(private readonly keys: ChachaKeys) {}

  seal(sequence: number, packet: Buffer): Buffer[] {
    const iv = this.keys.ivFor(sequence);
    const payloadCipher = createCipheriv('chacha20', this.keys.payloadKey, iv);
    const polyKey = payloadCipher.update(ZERO_BLOCK).subarray(0, POLY1305_KEY_LENGTH);
    const length = createCipheriv('chacha20', this.keys.lengthKey, iv).update(packet.subarray(0, 4));
    const payload = payloadCipher.update(packet.subarray(4)); // continues at block counter 1
    // The tag covers the wire bytes, encrypted length then payload, which go out as they are.
    return [length, payload, poly1305Parts([length, payload], polyKey)];
  }
}

class ChachaOpener implements PacketOpener {
  readonly blockSize = 8;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;
  /** The length is encrypted on its own with the length key: 4 bytes suffice to read it. */
  readonly headerLength = 4;

  constructor(private readonly keys: ChachaKeys) {}

  readLength(sequence: number, header: Buffer): number {
    const iv = this.keys.ivFor(sequence);
    return createDecipheriv('chacha20', this.keys.lengthKey, iv).update(header.subarray(0, 4)).readUInt32BE(0);
  }

  open(sequence: number, packet: Buffer): Buffer {
    const end = packet.length - TAG_LENGTH; // 4 + packet_length
    if (end < 4) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than its tag`);
    const iv = this.keys.ivFor(sequence);
    const payloadDecipher = createDecipheriv('chacha20', this.keys.payloadKey, iv);
    const polyKey = payloadDecipher.update(ZERO_BLOCK).subarray(0, POLY1305_KEY_LENGTH);
    // §7: "the MAC MUST be checked before decryption", over the still-encrypted length and payload.
    const expected = poly1305Parts([packet.subarray(0, end)], polyKey);
    if (!timingSafeEqual(expected, packet.subarray(end))) throw new MacError();
    return payloadDecipher.update(packet.subarray(4, end)); // continues at block counter 1
  }
}

export const chacha20Poly1305: CipherAlgorithm = Object.freeze({
  name: NAME,
  keyLength: KEY_LENGTH,
  // The nonce is the sequence number: no IV is derived (OpenSSH's cipher table gives it length 0).
  ivLength: 0,
  blockSize: 8,
  aead: true,
  createSealer(key: Buffer) {
    return new ChachaSealer(new ChachaKeys(key));
  },
  createOpener(key: Buffer) {
    return new ChachaOpener(new ChachaKeys(key));
  },
});
