/**
 * Glue between the sans-I/O transport and a byte stream (a TCP socket, a child process's pipes,
 * any Duplex). Writes made during one turn of the event loop are coalesced (cork/uncork), TCP
 * sockets get TCP_NODELAY (small writes would otherwise wait ~40 ms on Nagle and delayed ACKs),
 * and reading pauses while the transport cannot take input.
 *
 * What a stream needs for this lives on one StreamLink object, and the stream's listeners are
 * functions shared by every stream (Node calls them with the stream as `this`, and they find the
 * link on it): an idle server connection keeps no closures here.
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

/** Where a stream keeps its link (a symbol property: one lookup per read, no WeakMap). */
const LINK = Symbol('tssh.streamLink');
type Linked = { [LINK]?: StreamLink };

/** Told when the stream has room again after write() returned false. */
export interface DrainListener {
  drained(): void;
}

/** A stream joined to a transport: its write coalescing, and where its reads go. */
export class StreamLink {
  transport: Transport | undefined;
  /** Told about the writable's 'drain' (the endpoint, which tells its channels). */
  drainListener: DrainListener | undefined;
  /** Reads of an onread socket made before a transport was attached (copies). */
  early: Buffer[] | undefined;
  private corked = false;
  /** An uncork is due on the next tick. */
  private uncorkDue = false;
  /** Reasons to keep this tick's writes back (see hold). */
  private holds = 0;

  constructor(
    readonly writable: Writable,
    /** Reads arrive through onSharedRead (the process's read buffer), not 'data' events. */
    readonly sharedBuffer: boolean,
  ) {}

  /** Packets written so far (wraps harmlessly: only compared for change). */
  sent = 0;

  /** Write the chunks of one packet; everything written in one tick goes out in one writev. */
  send(chunks: readonly Buffer[]): void {
    const writable = this.writable;
    if (writable.destroyed || writable.writableEnded) return;
    this.sent = (this.sent + 1) | 0;
    if (!this.corked) {
      this.corked = true;
      writable.cork();
      this.scheduleUncork();
    }
    for (const chunk of chunks) writable.write(chunk);
  }

  /**
   * Keep what is written from going out until release(): for a reply that is being decided
   * asynchronously when the packet before it is already written, so that both leave in one write
   * (one wake-up of the peer instead of two). Whoever holds must release, whatever happens; an
   * end() of the stream sends what was held in any case.
   */
  hold(): void {
    this.holds++;
  }

  release(): void {
    if (this.holds === 0) return;
    this.holds--;
    if (this.holds === 0 && this.corked) this.scheduleUncork();
  }

  uncork(): void {
    this.uncorkDue = false;
    if (this.holds > 0) return;
    this.corked = false;
    this.writable.uncork();
  }

  private scheduleUncork(): void {
    if (this.uncorkDue || this.holds > 0) return;
    this.uncorkDue = true;
    process.nextTick(uncork, this);
  }
}

function uncork(link: StreamLink): void {
  link.uncork();
}

/** The link of `stream`, made (and kept on the stream) the first time it is asked for. */
export function linkOf(stream: ByteStream): StreamLink {
  const linked = stream.readable as Readable & Linked;
  let link = linked[LINK];
  if (!link) {
    link = new StreamLink(stream.writable, false);
    linked[LINK] = link;
    (stream.writable as Writable & Linked)[LINK] = link;
  }
  return link;
}

/** net's onread callback, for every socket: Node calls it as a method of the socket. */
function onSharedRead(this: Socket & Linked, bytes: number, buffer: Uint8Array): boolean {
  const link = this[LINK]!;
  const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
  const transport = link.transport;
  if (!transport) {
    (link.early ??= []).push(Buffer.from(chunk));
    return true;
  }
  transport.receive(chunk, true);
  if (!transport.isPaused) return true;
  // Returning false stops reading; resume() starts it again.
  const socket = this;
  transport.onResume(() => socket.resume());
  return false;
}

/** The `onread` option of every socket that reads into the shared buffer. */
function sharedOnread(): OnReadOpts {
  return { buffer: (sharedReadBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE)), callback: onSharedRead };
}

function linkSharedReads(socket: Socket): Socket {
  const link = new StreamLink(socket, true);
  (socket as Socket & Linked)[LINK] = link;
  return socket;
}

/**
 * Open a TCP connection for SSH whose reads land in the process's read buffer (net's `onread`),
 * instead of a fresh 64 KiB allocation per read: the transport opens what it can in place and
 * keeps only the rest (Transport.receive with `transient`). Measured on a bulk download: about a
 * quarter less CPU for reading the socket, and less external memory for V8 to collect.
 */
export function connectTcp(options: TcpNetConnectOpts): Socket {
  return linkSharedReads(netConnect({ ...options, onread: sharedOnread() }));
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
  husk._handle = null;
  accepted.destroy();
  const options = { handle, allowHalfOpen: accepted.allowHalfOpen, readable: true, writable: true, onread: sharedOnread() };
  return linkSharedReads(new Socket(options as SocketConstructorOpts));
}

/** Whether reads of `socket` go through the process's read buffer (connectTcp, adoptAcceptedSocket). */
export function readsIntoSharedBuffer(socket: Socket): boolean {
  return (socket as Socket & Linked)[LINK]?.sharedBuffer === true;
}

/**
 * Make a TransportHandler's `send` that writes to `writable`, coalescing the writes of one tick
 * (for a handler that is not an Endpoint; an Endpoint sends through its StreamLink).
 */
export function streamSender(writable: Writable): TransportHandler['send'] {
  const link = new StreamLink(writable, false);
  return (chunks) => link.send(chunks);
}

// The listeners every linked stream shares: `this` is the stream.

function onLinkData(this: Readable & Linked, chunk: Buffer): void {
  const transport = this[LINK]?.transport;
  if (!transport) return;
  transport.receive(chunk);
  if (transport.isPaused) {
    this.pause();
    const readable = this;
    transport.onResume(() => readable.resume());
  }
}

function onLinkEnd(this: Readable & Linked): void {
  this[LINK]?.transport?.end();
}

function onLinkError(this: Readable & Linked, error: Error): void {
  this[LINK]?.transport?.end(error);
}

function onLinkDrain(this: Writable & Linked): void {
  this[LINK]?.drainListener?.drained();
}

/**
 * Feed `stream` into `transport` until either ends, and pass the writable's 'drain' to
 * `drainListener`. Call after constructing the transport with a handler that sends through
 * `linkOf(stream)` or `streamSender(stream.writable)`.
 */
export function pumpInto(transport: Transport, stream: ByteStream, drainListener?: DrainListener): void {
  const { readable, writable } = stream;
  if (readable instanceof Socket) readable.setNoDelay(true);
  const link = linkOf(stream);
  link.transport = transport;
  link.drainListener = drainListener;
  if (drainListener) writable.on('drain', onLinkDrain);
  if (link.sharedBuffer) {
    const early = link.early;
    link.early = undefined;
    if (early) for (const chunk of early) transport.receive(chunk);
    // Flowing mode, so that 'end' is emitted (no data arrives through the stream itself).
    readable.resume();
  } else readable.on('data', onLinkData);
  readable.on('end', onLinkEnd);
  readable.on('close', onLinkEnd);
  readable.on('error', onLinkError);
  if (writable !== readable) writable.on('error', onLinkError);
}
