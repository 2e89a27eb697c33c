import { ProtocolError } from '../errors.js';

/**
 * A bounds-checked reader of RFC 4251 §5 data types over one buffer. Every length read from the
 * peer is checked against the bytes that remain before anything is sliced, so a decoder can never
 * read past its message or allocate from an untrusted length. Strings are returned as views
 * (no copy); callers that keep them past the packet's life must copy.
 */
export class Reader {
  private offset: number;
  private readonly end: number;

  constructor(
    private readonly buffer: Buffer,
    start = 0,
    end = buffer.length,
    /** What is being decoded, for error messages: `SSH_MSG_KEXINIT`. */
    private readonly context = 'message',
  ) {
    this.offset = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.offset) {
      throw new ProtocolError(`truncated ${this.context}: ${what} needs ${n} bytes, ${this.end - this.offset} left`);
    }
  }

  byte(): number {
    this.need(1, 'byte');
    return this.buffer[this.offset++]!;
  }

  boolean(): boolean {
    return this.byte() !== 0;
  }

  uint32(): number {
    this.need(4, 'uint32');
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  uint64(): bigint {
    this.need(8, 'uint64');
    const value = this.buffer.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  /** Exactly `n` raw bytes, as a view. */
  bytes(n: number): Buffer {
    this.need(n, `${n} raw bytes`);
    const view = this.buffer.subarray(this.offset, this.offset + n);
    this.offset += n;
    return view;
  }

  /** An SSH `string`: uint32 length then that many bytes, as a view. */
  string(): Buffer {
    const length = this.uint32();
    this.need(length, 'string');
    const view = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /** A `string` decoded as UTF-8 (RFC 4251 §5 allows ISO-10646 UTF-8 for text fields). */
  utf8(): string {
    return this.string().toString('utf8');
  }

  /** A `name-list`: comma-separated US-ASCII names, none empty (RFC 4251 §5). */
  nameList(): string[] {
    const raw = this.string();
    if (raw.length === 0) return [];
    for (const byte of raw) {
      if (byte < 0x21 || byte > 0x7e) {
        throw new ProtocolError(`malformed name-list in ${this.context}: non-printable or non-ASCII byte 0x${byte.toString(16)}`);
      }
    }
    const names = raw.toString('latin1').split(',');
    if (names.some((name) => name.length === 0)) {
      throw new ProtocolError(`malformed name-list in ${this.context}: empty name`);
    }
    return names;
  }

  /**
   * An `mpint` that must be non-negative (all the SSH mpints we read are): the magnitude as
   * big-endian bytes with leading zeros removed. `maxBytes` caps the size before it is used.
   */
  mpintUnsigned(maxBytes = 2049): Buffer {
    const raw = this.string();
    if (raw.length > 0 && (raw[0]! & 0x80) !== 0) {
      throw new ProtocolError(`negative mpint in ${this.context}`);
    }
    let start = 0;
    while (start < raw.length && raw[start] === 0) start++;
    if (raw.length - start > maxBytes) {
      throw new ProtocolError(`mpint in ${this.context} too large: ${raw.length - start} bytes, at most ${maxBytes}`);
    }
    return raw.subarray(start);
  }

  /** The rest of the message, as a view. */
  rest(): Buffer {
    const view = this.buffer.subarray(this.offset, this.end);
    this.offset = this.end;
    return view;
  }

  /** Assert the message has been read to its last byte (trailing bytes are a protocol error). */
  done(): void {
    if (this.offset !== this.end) {
      throw new ProtocolError(`${this.end - this.offset} unexpected trailing bytes in ${this.context}`);
    }
  }
}

/** Convert unsigned big-endian bytes to a bigint. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex'));
}
