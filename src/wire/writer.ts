/**
 * A growable writer of RFC 4251 §5 data types. One writer builds one message; `finish()` returns
 * a view of exactly the bytes written. `headroom` leaves space at the front so that a packet
 * header can later be written in place without copying the payload.
 */
export class Writer {
  private buffer: Buffer;
  private offset: number;
  private readonly start: number;

  constructor(capacity = 256, headroom = 0) {
    this.buffer = Buffer.allocUnsafe(Math.max(capacity + headroom, 16));
    this.start = headroom;
    this.offset = headroom;
  }

  get length(): number {
    return this.offset - this.start;
  }

  private ensure(n: number): void {
    if (this.offset + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.offset + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  byte(value: number): this {
    this.ensure(1);
    this.buffer[this.offset++] = value;
    return this;
  }

  boolean(value: boolean): this {
    return this.byte(value ? 1 : 0);
  }

  uint32(value: number): this {
    this.ensure(4);
    this.buffer.writeUInt32BE(value >>> 0, this.offset);
    this.offset += 4;
    return this;
  }

  uint64(value: bigint): this {
    this.ensure(8);
    this.buffer.writeBigUInt64BE(value, this.offset);
    this.offset += 8;
    return this;
  }

  /** Raw bytes with no length prefix. */
  bytes(data: Uint8Array): this {
    this.ensure(data.length);
    this.buffer.set(data, this.offset);
    this.offset += data.length;
    return this;
  }

  /** An SSH `string` (uint32 length then bytes); text is encoded as UTF-8. */
  string(data: Uint8Array | string): this {
    if (typeof data === 'string') {
      const length = Buffer.byteLength(data, 'utf8');
      this.ensure(4 + length);
      this.buffer.writeUInt32BE(length, this.offset);
      this.buffer.write(data, this.offset + 4, length, 'utf8');
      this.offset += 4 + length;
      return this;
    }
    this.uint32(data.length);
    return this.bytes(data);
  }

  nameList(names: readonly string[]): this {
    return this.string(names.join(','));
  }

  /** An `mpint` from an unsigned big-endian magnitude: leading zeros dropped, a 0 byte added if the top bit is set. */
  mpintUnsigned(magnitude: Uint8Array): this {
    let start = 0;
    while (start < magnitude.length && magnitude[start] === 0) start++;
    const length = magnitude.length - start;
    const pad = length > 0 && (magnitude[start]! & 0x80) !== 0 ? 1 : 0;
    this.uint32(length + pad);
    if (pad) this.byte(0);
    return this.bytes(magnitude.subarray(start));
  }

  /** An `mpint` from a non-negative bigint. */
  mpintBigInt(value: bigint): this {
    if (value < 0n) throw new RangeError('negative mpint');
    if (value === 0n) return this.uint32(0);
    let hex = value.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    return this.mpintUnsigned(Buffer.from(hex, 'hex'));
  }

  /** The bytes written, as a view (including any headroom when `withHeadroom`). */
  finish(withHeadroom = false): Buffer {
    return this.buffer.subarray(withHeadroom ? 0 : this.start, this.offset);
  }
}

/** Encode one `string` field on its own: uint32 length then bytes. */
export function encodeString(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.set(data, 4);
  return out;
}

/** Encode one `mpint` field on its own from an unsigned magnitude. */
export function encodeMpint(magnitude: Uint8Array): Buffer {
  return new Writer(magnitude.length + 5).mpintUnsigned(magnitude).finish();
}

/** Unsigned big-endian bytes of a non-negative bigint (no sign byte), zero-padded to `length` if given. */
export function bigIntToBytes(value: bigint, length?: number): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  const raw = Buffer.from(hex === '00' && length === undefined ? '' : hex, 'hex');
  if (length === undefined || raw.length === length) return raw;
  if (raw.length > length) throw new RangeError('value does not fit');
  const out = Buffer.alloc(length);
  raw.copy(out, length - raw.length);
  return out;
}
