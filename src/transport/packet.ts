/**
 * The binary packet protocol, RFC 4253 §6: framing, padding, sequence numbers and the hand-off
 * to the negotiated packet protection (cipher + MAC or AEAD). One encoder per outgoing direction,
 * one decoder per incoming direction; keys change under them at NEWKEYS.
 */
import { randomFillSync } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import type { PacketOpener, PacketSealer } from '../algorithms/types.js';

/** RFC 4253 §6.1 requires 35000; OpenSSH accepts up to 256 KiB, and so do we. */
export const MAX_PACKET_LENGTH = 256 * 1024;
/** The largest payload we send in one packet (leaves room for padding and the length fields). */
export const MAX_PAYLOAD_LENGTH = MAX_PACKET_LENGTH - 1024;

/** Random padding bytes drawn from a pool: randomFillSync costs ~2 µs a call whatever the size. */
class PaddingPool {
  private readonly pool = Buffer.allocUnsafe(16 * 1024);
  private offset = this.pool.length;
  fill(target: Buffer, start: number, length: number): void {
    if (this.offset + length > this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    this.pool.copy(target, start, this.offset, this.offset + length);
    this.offset += length;
  }
}

const paddingPool = new PaddingPool();

/**
 * Where every encoder builds its plaintext packet. One per process, not one per connection: a
 * sealer returns chunks that never alias the packet (PacketSealer.seal), so the buffer is free
 * again as soon as encodeParts returns, and an idle connection holds no 64 KiB of its own.
 */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

export class PacketEncoder {
  /** uint32 sequence number of the next packet (wraps at 2^32, RFC 4253 §6.4). */
  sequence = 0;
  /** Bytes and packets sent since the last key change, for the rekey limits. */
  bytesSinceKex = 0;
  packetsSinceKex = 0;

  constructor(private sealer: PacketSealer) {}

  setSealer(sealer: PacketSealer, resetSequence: boolean): void {
    this.sealer = sealer;
    this.bytesSinceKex = 0;
    this.packetsSinceKex = 0;
    if (resetSequence) this.sequence = 0;
  }

  /** Frame, pad and seal one payload; returns the wire chunks. */
  encode(payload: Buffer): Buffer[] {
    return this.encodeParts(payload, undefined, 0, 0);
  }

  /**
   * Frame a payload given as a head and a slice of a body (CHANNEL_DATA's header and the
   * application's bytes), copied once, straight into the packet: no intermediate payload buffer.
   */
  encodeParts(head: Buffer, body: Buffer | undefined, offset: number, length: number): Buffer[] {
    const sealer = this.sealer;
    const payloadLength = head.length + length;
    const block = Math.max(8, sealer.blockSize);
    // RFC 4253 §6: the padded part is a multiple of the block size, with 4..255 bytes of padding.
    const aligned = sealer.lengthExcludedFromPadding ? 1 + payloadLength : 5 + payloadLength;
    let padding = block - (aligned % block);
    if (padding < 4) padding += block;
    const packetLength = 1 + payloadLength + padding;
    const total = 4 + packetLength;
    if (scratch.length < total) scratch = Buffer.allocUnsafeSlow(Math.max(total, scratch.length * 2));
    const packet = scratch.subarray(0, total);
    packet.writeUInt32BE(packetLength, 0);
    packet[4] = padding;
    head.copy(packet, 5);
    if (body) body.copy(packet, 5 + head.length, offset, offset + length);
    paddingPool.fill(packet, 5 + payloadLength, padding);
    const chunks = sealer.seal(this.sequence, packet);
    this.sequence = (this.sequence + 1) >>> 0;
    this.bytesSinceKex += total + sealer.tagLength;
    this.packetsSinceKex++;
    return chunks;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Where a packet that arrived in pieces is put together, for every decoder of the process: it is
 * needed only while the opener runs (a payload never stays a view of it), like `scratch`.
 */
let assembly: Buffer = EMPTY;

/**
 * Reassembles packets from arbitrary chunks. Lengths are checked before anything of that size
 * is allocated; a whole packet inside one received chunk is opened in place without a copy.
 */
export class PacketDecoder {
  /** Received bytes not yet consumed: a list of chunks (never concatenated wholesale). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the packet being received (4 + packet_length + tag), once its header is read. */
  private pendingTotal = -1;
  /** Where bytes not yet consumed are kept when the caller's chunk is about to be reused. */
  private carry: Buffer = EMPTY;
  sequence = 0;
  bytesSinceKex = 0;
  packetsSinceKex = 0;

  constructor(private opener: PacketOpener) {}

  setOpener(opener: PacketOpener, resetSequence: boolean): void {
    this.opener = opener;
    this.bytesSinceKex = 0;
    this.packetsSinceKex = 0;
    if (resetSequence) this.sequence = 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Copy whatever is still buffered into memory of our own: the chunks pushed so far are about
   * to be overwritten (a socket that reads into one reused buffer). At most the start of the
   * next packet is usually left, and it lands in a carry buffer that is reused too.
   */
  retain(): void {
    const total = this.buffered;
    if (total === 0) {
      // Nothing to keep: let the carry go rather than hold 16 KiB or more for an idle connection;
      // a connection that keeps receiving partial packets gets one again at the next.
      this.carry = EMPTY;
      return;
    }
    const chunks = this.chunks;
    if (chunks.length === 1 && chunks[0]!.buffer === this.carry.buffer) return;
    let target = this.carry;
    if (target.length < total) target = Buffer.allocUnsafeSlow(Math.max(total, Math.min(2 * target.length, MAX_PACKET_LENGTH + 1024), 16 * 1024));
    // Only the first chunk can lie in the carry, at an offset at least as far as where its bytes
    // go: Buffer#copy moves overlapping bytes correctly.
    let filled = 0;
    for (const chunk of chunks) {
      chunk.copy(target, filled);
      filled += chunk.length;
    }
    this.carry = target;
    this.chunks = [target.subarray(0, total)];
  }

  /**
   * The next packet's payload, or undefined when more bytes are needed. Decryption happens
   * here, so keys must be switched (setOpener) before the packet after NEWKEYS is pulled.
   */
  next(): Buffer | undefined {
    const opener = this.opener;
    if (this.pendingTotal < 0) {
      if (this.buffered < opener.headerLength) return undefined;
      const header = this.peek(opener.headerLength);
      const packetLength = opener.readLength(this.sequence, header);
      this.checkLength(packetLength);
      this.pendingTotal = 4 + packetLength + opener.tagLength;
    }
    if (this.buffered < this.pendingTotal) return undefined;
    const packet = this.take(this.pendingTotal);
    this.pendingTotal = -1;
    let plain = opener.open(this.sequence, packet);
    // Most openers decrypt into fresh memory; one that works in place (none, MAC-then-encrypt)
    // returns a view of the packet. A payload never stays a view of input memory: that memory
    // is reused (the assembly buffer, the carry, a socket's read buffer).
    if (plain.buffer === packet.buffer) plain = Buffer.from(plain);
    this.sequence = (this.sequence + 1) >>> 0;
    this.bytesSinceKex += packet.length;
    this.packetsSinceKex++;
    const paddingLength = plain[0]!;
    // RFC 4253 §6: at least four bytes of random padding, and the padding fits the packet.
    if (paddingLength < 4) throw new ProtocolError(`packet padding of ${paddingLength} bytes is shorter than the minimum of 4`);
    if (paddingLength + 1 > plain.length) {
      throw new ProtocolError(`packet padding of ${paddingLength} bytes exceeds the packet length ${plain.length}`);
    }
    return plain.subarray(1, plain.length - paddingLength);
  }

  private checkLength(packetLength: number): void {
    const opener = this.opener;
    if (packetLength > MAX_PACKET_LENGTH) {
      throw new ProtocolError(`packet length ${packetLength} exceeds the maximum of ${MAX_PACKET_LENGTH}`);
    }
    if (packetLength < 5) throw new ProtocolError(`packet length ${packetLength} is too short`);
    const block = Math.max(8, opener.blockSize);
    const aligned = opener.lengthExcludedFromPadding ? packetLength : packetLength + 4;
    if (aligned % block !== 0) {
      throw new ProtocolError(`packet length ${packetLength} is not a multiple of the cipher block size ${block}`);
    }
  }

  /** The first n buffered bytes, copied only if they span chunks. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks, n).subarray(0, n);
  }

  /** Remove and return the first n bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length !== n) this.chunks[0] = first.subarray(n);
      // Emptied: length 0 also frees the array's backing store, which shift() would keep (an
      // idle connection would hold it).
      else if (this.chunks.length === 1) this.chunks.length = 0;
      else this.chunks.shift();
      return first.subarray(0, n);
    }
    // A packet that spans chunks is put together in the shared assembly buffer: one allocation
    // serves every such packet.
    if (assembly.length < n) assembly = Buffer.allocUnsafeSlow(Math.max(n, Math.min(2 * assembly.length, MAX_PACKET_LENGTH + 1024)));
    const out = assembly.subarray(0, n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const want = n - filled;
      if (chunk.length <= want) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, filled, 0, want);
        this.chunks[0] = chunk.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
