/**
 * Glue between the sans-I/O transport and a byte stream (a TCP socket, a child process's pipes,
 * any Duplex). Writes made during one turn of the event loop are coalesced (cork/uncork), TCP
 * sockets get TCP_NODELAY (small writes would otherwise wait ~40 ms on Nagle and delayed ACKs),
 * and reading pauses while the transport cannot take input.
 */
import type { Readable, Writable } from 'node:stream';
import { Socket } from 'node:net';
import type { Transport, TransportHandler } from './transport/transport.js';

export interface ByteStream {
  readonly readable: Readable;
  readonly writable: Writable;
}

/**
 * Make a TransportHandler's `send` that writes to `writable`, coalescing the writes of one tick.
 */
export function streamSender(writable: Writable): TransportHandler['send'] {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    writable.uncork();
  };
  return (chunks) => {
    if (writable.destroyed || writable.writableEnded) return;
    if (!corked) {
      corked = true;
      writable.cork();
      process.nextTick(uncork);
    }
    for (const chunk of chunks) writable.write(chunk);
  };
}

/**
 * Feed `readable` into `transport` until either ends. Call after constructing the transport with
 * a handler whose `send` came from `streamSender`. Returns a function that detaches.
 */
export function pumpInto(transport: Transport, stream: ByteStream): () => void {
  const { readable, writable } = stream;
  if (readable instanceof Socket) readable.setNoDelay(true);
  const onData = (chunk: Buffer): void => {
    transport.receive(chunk);
    if (transport.isPaused) {
      readable.pause();
      transport.onResume(() => readable.resume());
    }
  };
  const onEnd = (): void => transport.end();
  const onError = (error: Error): void => transport.end(error);
  readable.on('data', onData);
  readable.on('end', onEnd);
  readable.on('close', onEnd);
  readable.on('error', onError);
  writable.on('error', onError);
  return () => {
    readable.off('data', onData);
    readable.off('end', onEnd);
    readable.off('close', onEnd);
    readable.off('error', onError);
    writable.off('error', onError);
  };
}
