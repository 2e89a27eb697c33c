/**
 * tssh's standard output when it is a regular file or a device: written in batches, one writev(2)
 * per turn of the event loop.
 */
import { fstatSync, writevSync } from 'node:fs';
import { Writable } from 'node:stream';

/** More than one read of the connection (256 KiB of packets) can bring in one turn of the event loop. */
const FILE_OUTPUT_BURST = 1024 * 1024;

/** Whether `fd` is a regular file or a device: Node writes those synchronously, a chunk at a time. */
export function isFileOrDevice(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFile() || stat.isCharacterDevice() || stat.isBlockDevice();
  } catch {
    return false; // closed: Node's own stdout discards what is written
  }
}

/**
 * Our stdout when it is a file or a device such as /dev/null (not a terminal, pipe or socket).
 * Node writes such a stdout synchronously, one write(2) per chunk, and a chunk is one SSH packet
 * (32 KiB at most from sshd): a download to a file made 32,768 system calls per GiB or more.
 * gather() corks the stream until the end of this turn of the event loop, so the packets opened
 * from one read of the connection (up to 256 KiB) go out in one writev(2).
 *
 * Its high-water mark is above what one turn can bring: with Writable's default of 16 KiB, the
 * first 32 KiB packet written into the corked stream already reported backpressure, pipe() paused
 * the channel, and the rest of the read reached us one packet per turn, one write(2) each (strace
 * of a 256 MiB download from sshd: 8,136 writes of 32 KiB). Writes are synchronous, so nothing
 * stays buffered past the turn.
 */
export class FileOutput extends Writable {
  constructor(private readonly fd: number) {
    super({ highWaterMark: FILE_OUTPUT_BURST });
  }

  gather(): void {
    if (this.writableCorked > 0) return;
    this.cork();
    process.nextTick(() => this.uncork());
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    let buffers = chunks.map((c) => c.chunk).filter((b) => b.length > 0);
    try {
      while (buffers.length > 0) {
        let written = writevSync(this.fd, buffers);
        // A short write (a full disk, a signal): go on from where it stopped.
        while (buffers.length > 0 && written >= buffers[0]!.length) written -= buffers.shift()!.length;
        if (written > 0) buffers[0] = buffers[0]!.subarray(written);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}
