/**
 * zlib compression (RFC 4253 §6.2) and its delayed variant zlib@openssh.com
 * (draft-miller-secsh-compression-delayed: identical on the wire, but only switched on once user
 * authentication has succeeded; the transport acts on `delayed`).
 *
 * RFC 4253 §6.2: "the compression context is initialized after each key exchange, and is passed
 * from one packet to the next", so each direction keeps one deflate (or inflate) stream for the
 * whole key epoch. As OpenSSH does, every payload is compressed and then flushed with
 * Z_PARTIAL_FLUSH so that the receiver can inflate the packet completely on its own, at compression
 * level 6, with a zlib header (deflateInit / inflateInit, 32 KiB window).
 *
 * pako's low-level zlib API (the same code as its Deflate/Inflate classes) is used directly: it
 * lets us own the output buffer, so a packet costs one output allocation, and inflation is bounded
 * exactly: it stops, with an error, as soon as the output would exceed the caller's limit, instead
 * of inflating a "zip bomb" and checking afterwards.
 */
import { createRequire } from 'node:module';
import { CompressionError } from '../../errors.js';
import type { CompressionAlgorithm, Compressor, Decompressor } from '../types.js';

type Pako = typeof import('pako');
let loaded: Pako | undefined;

/**
 * pako, loaded on first use (its CommonJS build, which require() can load synchronously): only a
 * connection that negotiates compression needs it, and loading it cost every program about 5 ms at
 * start.
 */
function pako(): Pako {
  return (loaded ??= createRequire(import.meta.url)('pako') as Pako);
}

/** OpenSSH compresses at level 6 (start_compression_out in packet.c; zlib's default). */
const COMPRESSION_LEVEL = 6;
/** Lets the streams drop their references to the last payload and output between packets. */
const EMPTY = new Uint8Array(0);

class ZlibCompressor implements Compressor {
  private readonly z = pako();
  private readonly stream = new this.z.ZStream();

  constructor() {
    const status = this.z.zlibDeflateInit(this.stream, COMPRESSION_LEVEL);
    if (status !== this.z.Z_OK) throw new CompressionError(`deflate initialisation failed (${status})`);
  }

  compress(payload: Buffer): Buffer {
    const { Z_BUF_ERROR, Z_OK, Z_PARTIAL_FLUSH, zlibDeflate } = this.z;
    const strm = this.stream;
    strm.input = payload;
    strm.next_in = 0;
    strm.avail_in = payload.length;
    // Room for incompressible data: stored blocks cost 5 bytes each, the partial flush a few more
    // bytes, the zlib header 2 bytes once. The loop below grows the buffer if this ever falls short.
    let output = Buffer.allocUnsafe(payload.length + (payload.length >>> 10) + 64);
    strm.output = output;
    strm.next_out = 0;
    strm.avail_out = output.length;
    for (;;) {
      const status = zlibDeflate(strm, Z_PARTIAL_FLUSH);
      // Z_BUF_ERROR only means "nothing to do" (an empty payload after a flush): not an error.
      if (status !== Z_OK && status !== Z_BUF_ERROR) {
        throw new CompressionError(`deflate failed: ${strm.msg || String(status)}`);
      }
      // zlib's contract: the flush is complete once deflate returns with output space left.
      if (strm.avail_out !== 0) break;
      const grown = Buffer.allocUnsafe(output.length * 2);
      output.copy(grown, 0, 0, strm.next_out);
      output = grown;
      strm.output = output;
      strm.avail_out = output.length - strm.next_out;
    }
    const compressed = output.subarray(0, strm.next_out);
    strm.input = EMPTY;
    strm.output = EMPTY;
    return compressed;
  }
}

class ZlibDecompressor implements Decompressor {
  private readonly z = pako();
  private readonly stream = new this.z.ZStream();
  /** After an error the inflate state is undefined; every later packet is refused. */
  private failed = false;

  constructor() {
    const status = this.z.zlibInflateInit(this.stream);
    if (status !== this.z.Z_OK) throw new CompressionError(`inflate initialisation failed (${status})`);
  }

  decompress(payload: Buffer, maxLength: number): Buffer {
    if (this.failed) throw new CompressionError('the decompression stream already failed');
    try {
      return this.inflate(payload, maxLength);
    } catch (err) {
      this.failed = true;
      throw err;
    } finally {
      this.stream.input = EMPTY;
      this.stream.output = EMPTY;
    }
  }

  private inflate(payload: Buffer, maxLength: number): Buffer {
    const { Z_BUF_ERROR, Z_OK, Z_STREAM_END, Z_SYNC_FLUSH, zlibInflate } = this.z;
    const strm = this.stream;
    // One byte more than allowed: filling it proves the payload inflates beyond maxLength, without
    // inflating any further.
    const capacity = maxLength + 1;
    let output = Buffer.allocUnsafe(Math.min(capacity, Math.max(1024, payload.length * 4)));
    strm.input = payload;
    strm.next_in = 0;
    strm.avail_in = payload.length;
    strm.output = output;
    strm.next_out = 0;
    strm.avail_out = output.length;
    for (;;) {
      const inBefore = strm.avail_in;
      const outBefore = strm.avail_out;
      const status = zlibInflate(strm, Z_SYNC_FLUSH);
      if (status === Z_STREAM_END) {
        // The peer finished its deflate stream (Z_FINISH); SSH never does, and OpenSSH treats it
        // as fatal too: nothing more could follow in this key epoch.
        throw new CompressionError('the compressed stream ended');
      }
      if (status !== Z_OK && status !== Z_BUF_ERROR) {
        throw new CompressionError(`invalid compressed data: ${strm.msg || String(status)}`);
      }
      if (strm.next_out > maxLength) {
        throw new CompressionError(`decompressed payload exceeds the limit of ${maxLength} bytes`);
      }
      if (strm.avail_out === 0) {
        // More output may be pending: grow (by doubling, up to the capacity) and go on.
        const grown = Buffer.allocUnsafe(Math.min(capacity, output.length * 2));
        output.copy(grown, 0, 0, strm.next_out);
        output = grown;
        strm.output = output;
        strm.avail_out = output.length - strm.next_out;
        continue;
      }
      // Output space left and all input consumed: the partial flush has been fully inflated.
      if (strm.avail_in === 0) break;
      // Input left, output space left: inflate only stops there on an error; guard against a
      // no-progress loop all the same.
      if (strm.avail_in === inBefore && strm.avail_out === outBefore) {
        throw new CompressionError('compressed data could not be inflated');
      }
    }
    return output.subarray(0, strm.next_out);
  }
}

function zlibAlgorithm(name: string, delayed: boolean): CompressionAlgorithm {
  return Object.freeze({
    name,
    delayed,
    createCompressor: (): Compressor => new ZlibCompressor(),
    createDecompressor: (): Decompressor => new ZlibDecompressor(),
  });
}

/** zlib@openssh.com: compression starts after user authentication succeeds. */
export const zlibOpenssh: CompressionAlgorithm = zlibAlgorithm('zlib@openssh.com', true);
/** RFC 4253 §6.2 zlib: compression starts with the first NEWKEYS. */
export const zlib: CompressionAlgorithm = zlibAlgorithm('zlib', false);
