/**
 * What the client and the server share once bytes flow: a transport glued to a byte stream,
 * a channel multiplexer started after authentication, back-pressure from the socket to the
 * channels, keepalives, and the one close path. Role-specific work (authentication, session
 * requests) lives in client.ts and server.ts.
 *
 * Memory: a server holds one Endpoint per connection for as long as the connection lives, so the
 * endpoint is itself the transport's handler, and the multiplexer's handler is a small object of
 * a class (MuxLink): prototype methods instead of a dozen closures (and their contexts) for every
 * connection. An idle connection is mostly this bookkeeping, so it shows (docs/performance.md).
 */
import type { Duplex } from 'node:stream';
import { Transport, type TransportHandler, type TransportOptions, type KexInfo } from './transport/transport.js';
import { linkOf, pumpInto, type StreamLink } from './transport-io.js';
import { ChannelMux, type MuxChannel, type MuxHandler, type MuxOptions, type OpenDecision, type IncomingOpen } from './connection/mux.js';
import { ConnectionLostError, DisconnectReason, SshError, type DisconnectReasonCode } from './errors.js';

/** Socket bytes buffered beyond which channels stop sending until it drains. */
const SOCKET_HIGH_WATER = 1024 * 1024;

export interface EndpointHooks {
  /** Userauth messages (50-79) before authentication. */
  authMessage(payload: Buffer): void;
  /** Called for the transport's first key exchange. */
  ready(info: KexInfo): void;
  /** A key re-exchange completed. */
  rekey?(info: KexInfo): void;
  closed(error: SshError | undefined): void;
  /** After authentication: the peer opens a channel (MuxHandler.openRequested). */
  openRequested(request: IncomingOpen, channel: MuxChannel): OpenDecision | Promise<OpenDecision>;
  /** After authentication: a global request from the peer (MuxHandler.globalRequest). */
  globalRequest(name: string, wantReply: boolean, data: Buffer): boolean | Buffer | Promise<boolean | Buffer>;
  serviceAccepted?(service: string): void;
  serviceStarted?(service: string): void;
  debug?(message: string): void;
}

export class Endpoint implements TransportHandler {
  readonly transport: Transport;
  mux: ChannelMux | undefined;
  private closed = false;
  private closeError: SshError | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readonly link: StreamLink;

  constructor(
    readonly stream: Duplex,
    transportOptions: TransportOptions,
    readonly hooks: EndpointHooks,
    private readonly muxOptions?: MuxOptions,
  ) {
    const byteStream = { readable: stream, writable: stream };
    this.link = linkOf(byteStream);
    this.transport = new Transport(transportOptions, this);
    pumpInto(this.transport, byteStream, this);
  }

  start(): void {
    this.transport.start();
  }

  /** Authentication succeeded: connection-layer messages now flow through the multiplexer. */
  startConnection(): ChannelMux {
    this.mux = new ChannelMux(new MuxLink(this), this.muxOptions);
    return this.mux;
  }

  /** Send keepalives every `intervalMs`; after `countMax` unanswered, give up (ServerAliveInterval/CountMax). */
  startKeepalive(intervalMs: number, countMax: number): void {
    if (intervalMs <= 0) return;
    let missed = 0;
    this.keepaliveTimer = setInterval(() => {
      const mux = this.mux;
      if (!mux) return;
      if (missed >= countMax) {
        const message = `Timeout, peer not responding (${countMax} keepalives unanswered)`;
        // The close carries the reason, so the application sees a lost connection, not a clean end.
        this.disconnect(DisconnectReason.CONNECTION_LOST, message, new ConnectionLostError(message));
        return;
      }
      missed++;
      // Any reply, success or failure, proves the peer alive (OpenSSH sends keepalive@openssh.com).
      void mux.globalRequest('keepalive@openssh.com', Buffer.alloc(0), true).then(() => (missed = 0));
    }, intervalMs);
    this.keepaliveTimer.unref();
  }

  /** End the connection with a DISCONNECT. */
  disconnect(reason: DisconnectReasonCode = DisconnectReason.BY_APPLICATION, description = 'disconnected by application', error?: SshError): void {
    if (this.closed) return;
    this.closeError = error;
    this.transport.disconnect(reason, description);
  }

  /** Drop the connection at once, without a word on the wire (as sshd does for MaxStartups). */
  destroy(): void {
    this.stream.destroy();
    this.transport.end();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- TransportHandler: called by the transport only -----------------------------------------

  /** Writes to the stream, coalescing the writes of one tick. */
  send(chunks: readonly Buffer[]): void {
    this.link.send(chunks);
  }

  /**
   * See that a packet goes back to the peer soon, to carry the TCP ACK a peer with Nagle's
   * algorithm on may be waiting for before it sends more: an SSH_MSG_IGNORE (which a peer must
   * accept at any time, RFC 4253 §11.2), unless something else was written by the time the
   * application has acted on what was just received (setImmediate: after this read's callbacks,
   * promise continuations included). Saves the peer a wake-up for an IGNORE when the application's
   * next request goes anyway.
   */
  acknowledgeSoon(): void {
    const link = this.link;
    const sent = link.sent;
    setImmediate(() => {
      if (link.sent === sent) this.transport.sendIgnore();
    });
  }

  /** Keep packets sent from now on back until releaseOutput() (StreamLink.hold). */
  holdOutput(): void {
    this.link.hold();
  }

  releaseOutput(): void {
    this.link.release();
  }

  /** The stream has room again (DrainListener): channels may send. */
  drained(): void {
    this.mux?.drained();
  }

  message(payload: Buffer): void {
    const type = payload[0]!;
    if (type < 80) this.hooks.authMessage(payload);
    else if (this.mux) this.mux.receive(payload);
  }

  /** The transport ended (not a way to end it: see disconnect and destroy). */
  close(error: SshError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    const final = this.closeError ?? error;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.mux?.terminate(final ?? (() => new ConnectionLostError('connection closed')));
    // Let the DISCONNECT we may have queued reach the socket before ending it; a peer that does
    // not close its side within 2 s is cut off. The timer goes as soon as the stream closes: left
    // to fire, it would wake a busy server once for every connection it served 2 s before.
    const stream = this.stream;
    setImmediate(() => stream.end());
    if (!stream.destroyed) {
      const destroyTimer = setTimeout(() => stream.destroy(), 2000);
      destroyTimer.unref();
      stream.once('close', () => clearTimeout(destroyTimer));
    }
    this.hooks.closed(final);
  }

  kexComplete(info: KexInfo): void {
    if (info.initial) this.hooks.ready(info);
    else this.hooks.rekey?.(info);
  }

  serviceAccepted(service: string): void {
    this.hooks.serviceAccepted?.(service);
  }

  serviceStarted(service: string): void {
    this.hooks.serviceStarted?.(service);
  }

  debug(message: string): void {
    this.hooks.debug?.(message);
  }
}

/** The multiplexer's handler: the endpoint's transport and stream below, its hooks above. */
class MuxLink implements MuxHandler {
  constructor(private readonly endpoint: Endpoint) {}

  send(payload: Buffer): void {
    this.endpoint.transport.send(payload);
  }

  sendParts(head: Buffer, body: Buffer, offset: number, length: number): void {
    this.endpoint.transport.sendParts(head, body, offset, length);
  }

  canSend(): boolean {
    return this.endpoint.transport.writable && this.endpoint.stream.writableLength < SOCKET_HIGH_WATER;
  }

  openRequested(request: IncomingOpen, channel: MuxChannel): OpenDecision | Promise<OpenDecision> {
    return this.endpoint.hooks.openRequested(request, channel);
  }

  globalRequest(name: string, wantReply: boolean, data: Buffer): boolean | Buffer | Promise<boolean | Buffer> {
    return this.endpoint.hooks.globalRequest(name, wantReply, data);
  }

  fatal(error: SshError): void {
    this.endpoint.disconnect(error.reason, error.message, error);
  }

  debug(message: string): void {
    this.endpoint.hooks.debug?.(message);
  }
}
