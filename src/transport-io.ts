/**
 * Glue between the sans-I/O transport and a byte stream (a TCP socket, a child process's pipes,
 * any Duplex). Writes made during one turn of the event loop are coalesced (cork/uncork), TCP
 * sockets get TCP_NODELAY (small writes would otherwise wait ~40 ms on Nagle and delayed ACKs),
 * and reading pauses while the transport cannot take input.
 */
import type { Readable, Writable } from 'node:stream';
import { Socket, connect as netConnect, type OnReadOpts, type SocketConstructorOpts, type TcpNetConnectOpts } from 'node:net';
import type { Transport, TransportHandler } from './transport/transport.js';

export interface ByteStream {
  readonly readable: Readable;
  readonly writable: Writable;
}

/**
 * How much one read of a TCP connection can take. One buffer of this size serves every connection
 * of the process (see sharedReadBuffer).
 */
const READ_BUFFER_SIZE = 256 * 1024;

/**
 * The buffer every onread socket of the process reads into. Sharing it is safe because a read is
 * handed to its callback synchronously and the callback consumes it before returning: the
 * transport opens whole packets in place and copies the rest (Transport.receive with `transient`),
 * and reads that arrive before the transport is attached are copied. libuv reads one socket at a
 * time, so the next read cannot overwrite bytes still in use. One buffer instead of one per
 * connection keeps an idle connection from owning 256 KiB.
 */
let sharedReadBuffer: Buffer | undefined;

/** Where the reads of an onread socket go: set by pumpInto; until then they are kept (copied). */
interface ReadSink {
  deliver: ((chunk: Buffer) => boolean) | undefined;
  readonly early: Buffer[];
}
const readSinks = new WeakMap<Socket, ReadSink>();

/** The `onread` option for a socket whose reads go to `sink`. */
function onreadInto(sink: ReadSink): OnReadOpts {
  return {
    buffer: (sharedReadBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE)),
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
      if (sink.deliver) return sink.deliver(chunk);
      sink.early.push(Buffer.from(chunk));
      return true;
    },
  };
}

/**
 * Open a TCP connection for SSH whose reads land in the process's read buffer (net's `onread`),
 * instead of a fresh 64 KiB allocation per read: the transport opens what it can in place and
 * keeps only the rest (Transport.receive with `transient`). Measured on a bulk download: about a
 * quarter less CPU for reading the socket, and less external memory for V8 to collect.
 */
export function connectTcp(options: TcpNetConnectOpts): Socket {
  const sink: ReadSink = { deliver: undefined, early: [] };
  const socket = netConnect({ ...options, onread: onreadInto(sink) });
  readSinks.set(socket, sink);
  return socket;
}

/**
 * Take over a socket accepted by a `net.Server` created with `pauseOnConnect: true`, so that its
 * reads land in the process's read buffer like connectTcp's.
 *
 * Node offers `onread` only to sockets it creates from options, not to accepted ones, so the
 * accepted socket's native handle is moved into a new Socket made with `onread`. The handle is
 * reached through the `_handle` property, which Node has kept since its first versions but does
 * not document; when it is missing (another runtime, a future Node), the accepted socket is
 * resumed and used as it is, through the stream path. test/transport/accepted-onread.test.ts
 * checks that the fast path is taken on the Node we run on.
 *
 * The accepted Socket object is destroyed once its handle is gone (which closes nothing), so the
 * net.Server stops counting the connection: whoever adopts sockets tracks them itself (SshServer
 * does), and `net.Server#close` no longer waits for them.
 */
export function adoptAcceptedSocket(accepted: Socket): Socket {
  const husk = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = husk._handle;
  if (!handle || typeof handle.readStart !== 'function' || accepted.readableFlowing !== false) {
    accepted.resume();
    return accepted;
  }
  const sink: ReadSink = { deliver: undefined, early: [] };
  husk._handle = null;
  accepted.destroy();
  const options = { handle, allowHalfOpen: accepted.allowHalfOpen, readable: true, writable: true, onread: onreadInto(sink) };
  const socket = new Socket(options as SocketConstructorOpts);
  readSinks.set(socket, sink);
  return socket;
}

/** Whether reads of `socket` go through the process's read buffer (connectTcp, adoptAcceptedSocket). */
export function readsIntoSharedBuffer(socket: Socket): boolean {
  return readSinks.has(socket);
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
  const sink = readable instanceof Socket ? readSinks.get(readable) : undefined;
  if (sink) {
    // Reads into the socket's own buffer: returning false pauses the socket (net's onread).
    sink.deliver = (chunk) => {
      transport.receive(chunk, true);
      if (!transport.isPaused) return true;
      transport.onResume(() => readable.resume());
      return false;
    };
    for (const chunk of sink.early.splice(0)) transport.receive(chunk);
    // Flowing mode, so that 'end' is emitted (no data arrives through the stream itself).
    readable.resume();
  } else readable.on('data', onData);
  readable.on('end', onEnd);
  readable.on('close', onEnd);
  readable.on('error', onError);
  writable.on('error', onError);
  return () => {
    if (sink) sink.deliver = undefined;
    readable.off('data', onData);
    readable.off('end', onEnd);
    readable.off('close', onEnd);
    readable.off('error', onError);
    writable.off('error', onError);
  };
}
