/**
 * What the client and the server share once bytes flow: a transport glued to a byte stream,
 * a channel multiplexer started after authentication, back-pressure from the socket to the
 * channels, keepalives, and the one close path. Role-specific work (authentication, session
 * requests) lives in client.ts and server.ts.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { Transport, type TransportHandler, type TransportOptions, type KexInfo } from './transport/transport.js';
import { pumpInto, streamSender } from './transport-io.js';
import { ChannelMux, type MuxHandler, type MuxOptions } from './connection/mux.js';
import { ConnectionLostError, DisconnectReason, SshError, type DisconnectReasonCode } from './errors.js';

/** Socket bytes buffered beyond which channels stop sending until it drains. */
const SOCKET_HIGH_WATER = 1024 * 1024;

export interface EndpointHooks {
  /** Userauth messages (50-79) before authentication. */
  authMessage(payload: Buffer): void;
  /** Called for the transport's first key exchange. */
  ready(info: KexInfo): void;
  closed(error: SshError | undefined): void;
  muxHandler(): Omit<MuxHandler, 'send' | 'canSend' | 'fatal' | 'debug'>;
  serviceAccepted?(service: string): void;
  serviceStarted?(service: string): void;
  debug?(message: string): void;
}

export class Endpoint extends EventEmitter {
  readonly transport: Transport;
  mux: ChannelMux | undefined;
  private readonly stream: Duplex;
  private closed = false;
  private closeError: SshError | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(
    stream: Duplex,
    transportOptions: TransportOptions,
    private readonly hooks: EndpointHooks,
    private readonly muxOptions: MuxOptions = {},
  ) {
    super();
    this.stream = stream;
    const send = streamSender(stream);
    const handler: TransportHandler = {
      send,
      message: (payload) => {
        const type = payload[0]!;
        if (type < 80) hooks.authMessage(payload);
        else if (this.mux) this.mux.receive(payload);
      },
      close: (error) => this.onClosed(error),
      kexComplete: (info) => {
        if (info.initial) hooks.ready(info);
        else this.emit('rekey', info);
      },
      serviceAccepted: (service) => hooks.serviceAccepted?.(service),
      serviceStarted: (service) => hooks.serviceStarted?.(service),
      debug: hooks.debug,
    };
    this.transport = new Transport(transportOptions, handler);
    stream.on('drain', () => this.mux?.drained());
    pumpInto(this.transport, { readable: stream, writable: stream });
  }

  start(): void {
    this.transport.start();
  }

  /** Authentication succeeded: connection-layer messages now flow through the multiplexer. */
  startConnection(): ChannelMux {
    const app = this.hooks.muxHandler();
    this.mux = new ChannelMux(
      {
        ...app,
        send: (payload) => {
          this.transport.send(payload);
        },
        sendParts: (head, body, offset, length) => {
          this.transport.sendParts(head, body, offset, length);
        },
        canSend: () => this.transport.writable && this.stream.writableLength < SOCKET_HIGH_WATER,
        fatal: (error) => this.disconnect(error.reason, error.message, error),
        debug: this.hooks.debug,
      },
      this.muxOptions,
    );
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

  private onClosed(error: SshError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    const final = this.closeError ?? error;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.mux?.terminate(final ?? (() => new ConnectionLostError('connection closed')));
    // Let the DISCONNECT we may have queued reach the socket before ending it.
    setImmediate(() => this.stream.end());
    const destroyTimer = setTimeout(() => this.stream.destroy(), 2000);
    destroyTimer.unref();
    this.hooks.closed(final);
  }
}
