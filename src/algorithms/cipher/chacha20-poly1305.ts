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
 * (checked in /work/shared/NODE-CRYPTO.md and by the draft's worked example in the tests).
 *
 * Two implementations of the same packets:
 * - With our WebAssembly module (./wasm.ts; the usual case): the length, the Poly1305 key and the
 *   tag are computed there, and so is the whole packet when it is small (SMALL_PACKET bytes or
 *   fewer: logins, channel requests, keystrokes), in one call. A node:crypto cipher object costs a
 *   few microseconds to create, one per key per packet, more than ChaCha20 itself on a small packet:
 *   a 100-byte packet seals in 0.8 us this way against 5.5 with two cipher objects. Larger payloads
 *   are encrypted by node:crypto from block counter 1, which is faster per byte (OpenSSL's vector
 *   code against our scalar C), with the one cipher object they need.
 * - Without WebAssembly: node:crypto for ChaCha20 (two cipher objects per packet) and
 *   @noble/ciphers' Poly1305.
 * The tests hold each to the draft's worked example and to the other, packet by packet.
 */
import { createCipheriv, createDecipheriv, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { poly1305Parts } from './poly1305.js';
import { chachaPolyWasm, type ChachaPolyWasm } from './wasm.js';
import { MacError, ProtocolError } from '../../errors.js';
import type { CipherAlgorithm, PacketOpener, PacketSealer } from '../types.js';
import { takeKeyMaterial } from './key-material.js';

const NAME = 'chacha20-poly1305@openssh.com';
const KEY_LENGTH = 64;
const TAG_LENGTH = 16;
const POLY1305_KEY_LENGTH = 32;
/** Encrypting this with the payload key at block counter 0 yields keystream block 0, the Poly1305 key's source. */
const ZERO_BLOCK = Buffer.alloc(64);
/**
 * Packets up to this many bytes (length field included) are sealed and opened wholly in
 * WebAssembly; above it node:crypto encrypts the payload. Where the two cost the same on the
 * benchmark machine: 2 KiB packets took 6.2 us whole in WebAssembly and 7.1 us split, 3 KiB
 * packets 8.8 us and 6.7 us.
 */
const SMALL_PACKET = 2048;

/** The two ChaCha20 keys and the IV scratch shared by the sealer and the opener. */
class ChachaKeys {
  /** The key material as it came: payload key K_1, then length key K_2 (the module's layout). */
  readonly both: Buffer;
  /**
   * node:crypto's 16-byte ChaCha20 IV: bytes 0..7 the block counter (little-endian, 0 or 1 here),
   * bytes 8..15 the nonce = uint64 sequence number, big-endian, whose top 4 bytes are always 0
   * (§6). createCipheriv copies it, so it is rewritten in place for every packet.
   */
  private readonly iv = Buffer.alloc(16);

  private payload: KeyObject | undefined;
  private length: KeyObject | undefined;

  constructor(key: Buffer) {
    this.both = takeKeyMaterial(NAME, 'key', key, KEY_LENGTH);
  }

  /** K_1 for node:crypto, made when first needed: many connections never send a large packet. */
  get payloadKey(): KeyObject {
    return (this.payload ??= createSecretKey(this.both.subarray(0, 32)));
  }

  /** K_2 for node:crypto (only without WebAssembly). */
  get lengthKey(): KeyObject {
    return (this.length ??= createSecretKey(this.both.subarray(32, 64)));
  }

  ivFor(sequence: number, counter: 0 | 1 = 0): Buffer {
    this.iv[0] = counter;
    this.iv.writeUInt32BE(sequence, 12);
    return this.iv;
  }
}

/** Put this packet's keys and nonce into the module's memory. */
function loadKeys(wasm: ChachaPolyWasm, keys: ChachaKeys, sequence: number): void {
  wasm.heap.set(keys.both, wasm.keysAt);
  wasm.view.setUint32(wasm.nonceAt, 0);
  wasm.view.setUint32(wasm.nonceAt + 4, sequence);
}

/** node:crypto's ChaCha20 (two cipher objects per packet) and ./poly1305.ts's Poly1305. */
class NodeSealer implements PacketSealer {
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

class NodeOpener implements PacketOpener {
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
    const end = checkedEnd(packet);
    const iv = this.keys.ivFor(sequence);
    const payloadDecipher = createDecipheriv('chacha20', this.keys.payloadKey, iv);
    const polyKey = payloadDecipher.update(ZERO_BLOCK).subarray(0, POLY1305_KEY_LENGTH);
    // §7: "the MAC MUST be checked before decryption", over the still-encrypted length and payload.
    const expected = poly1305Parts([packet.subarray(0, end)], polyKey);
    if (!timingSafeEqual(expected, packet.subarray(end))) throw new MacError();
    return payloadDecipher.update(packet.subarray(4, end)); // continues at block counter 1
  }
}

/** Where the tag starts: 4 + packet_length. */
function checkedEnd(packet: Buffer): number {
  const end = packet.length - TAG_LENGTH;
  if (end < 4) throw new ProtocolError(`packet of ${packet.length} bytes is shorter than its tag`);
  return end;
}

/** The module for lengths, Poly1305 keys, tags and small packets; node:crypto for larger payloads. */
class WasmSealer implements PacketSealer {
  readonly blockSize = 8;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;
  private readonly fallback: NodeSealer;

  constructor(
    private readonly wasm: ChachaPolyWasm,
    private readonly keys: ChachaKeys,
  ) {
    this.fallback = new NodeSealer(keys);
  }

  seal(sequence: number, packet: Buffer): Buffer[] {
    const { wasm } = this;
    const { heap, messageAt } = wasm;
    const size = packet.length;
    if (size > wasm.maxMessage) return this.fallback.seal(sequence, packet);
    loadKeys(wasm, this.keys, sequence);
    if (size <= SMALL_PACKET) {
      heap.set(packet, messageAt);
      wasm.seal(size, 1);
      return [Buffer.from(heap.subarray(messageAt, messageAt + size + TAG_LENGTH))];
    }
    heap.set(packet.subarray(0, 4), messageAt);
    wasm.seal(size, 0); // the length encrypted, the Poly1305 key made
    const length = Buffer.from(heap.subarray(messageAt, messageAt + 4));
    const payload = createCipheriv('chacha20', this.keys.payloadKey, this.keys.ivFor(sequence, 1)).update(packet.subarray(4));
    heap.set(payload, messageAt + 4);
    wasm.poly1305(size);
    return [length, payload, Buffer.from(heap.subarray(wasm.tagAt, wasm.tagAt + TAG_LENGTH))];
  }
}

class WasmOpener implements PacketOpener {
  readonly blockSize = 8;
  readonly lengthExcludedFromPadding = true;
  readonly tagLength = TAG_LENGTH;
  readonly headerLength = 4;
  private readonly fallback: NodeOpener;

  constructor(
    private readonly wasm: ChachaPolyWasm,
    private readonly keys: ChachaKeys,
  ) {
    this.fallback = new NodeOpener(keys);
  }

  readLength(sequence: number, header: Buffer): number {
    const { wasm } = this;
    loadKeys(wasm, this.keys, sequence);
    wasm.heap.set(header.subarray(0, 4), wasm.messageAt);
    wasm.crypt_length();
    return wasm.view.getUint32(wasm.messageAt);
  }

  open(sequence: number, packet: Buffer): Buffer {
    const { wasm } = this;
    const { heap, messageAt } = wasm;
    const end = checkedEnd(packet);
    if (end > wasm.maxMessage) return this.fallback.open(sequence, packet);
    loadKeys(wasm, this.keys, sequence);
    heap.set(packet, messageAt); // the tag lands right after the packet, where open() looks for it
    const small = end <= SMALL_PACKET;
    // §7: the tag is checked first, over the still-encrypted length and payload.
    if (wasm.open(end, small ? 1 : 0) !== 0) throw new MacError();
    if (small) return Buffer.from(heap.subarray(messageAt + 4, messageAt + end));
    return createDecipheriv('chacha20', this.keys.payloadKey, this.keys.ivFor(sequence, 1)).update(packet.subarray(4, end));
  }
}

/**
 * chacha20-poly1305@openssh.com with the given implementation: 'wasm' (the default where
 * WebAssembly runs) or 'node'. Both produce the same packets; the tests compare them.
 */
export function chacha20Poly1305Using(implementation: 'wasm' | 'node'): CipherAlgorithm {
  const wasm = chachaPolyWasm;
  if (implementation === 'wasm' && !wasm) throw new Error('WebAssembly is not available');
  return Object.freeze({
    name: NAME,
    keyLength: KEY_LENGTH,
    // The nonce is the sequence number: no IV is derived (OpenSSH's cipher table gives it length 0).
    ivLength: 0,
    blockSize: 8,
    aead: true,
    createSealer(key: Buffer): PacketSealer {
      const keys = new ChachaKeys(key);
      return implementation === 'wasm' && wasm ? new WasmSealer(wasm, keys) : new NodeSealer(keys);
    },
    createOpener(key: Buffer): PacketOpener {
      const keys = new ChachaKeys(key);
      return implementation === 'wasm' && wasm ? new WasmOpener(wasm, keys) : new NodeOpener(keys);
    },
  });
}

export const chacha20Poly1305: CipherAlgorithm = chacha20Poly1305Using(chachaPolyWasm ? 'wasm' : 'node');
