/**
 * The channel multiplexer of the connection protocol (RFC 4254 §5), sans-I/O: messages in via
 * `receive`, messages out via the handler. It owns channel ids, the open/confirm/close handshake,
 * flow control windows in both directions, channel and global requests with their in-order
 * replies, and the rules that protect us from a misbehaving peer (data beyond the window,
 * unknown channels, overflowing window adjustments).
 */
import { ProtocolError, SshError, DisconnectReason } from '../errors.js';
import { MSG, messageName } from '../wire/messages.js';
import {
  ChannelClose,
  ChannelEof,
  ChannelFailure,
  ChannelOpen,
  ChannelOpenConfirmation,
  ChannelOpenFailure,
  ChannelOpenFailureMessage,
  ChannelRequest,
  ChannelSuccess,
  ChannelWindowAdjust,
  GlobalRequest,
  RequestFailure,
  RequestSuccess,
  decodeChannelData,
  encodeChannelDataHeader,
  type ChannelOpenFailureCode,
} from './messages.js';

/** OpenSSH's session window (channels.h): 2 MiB. */
export const DEFAULT_WINDOW = 2 * 1024 * 1024;
/**
 * The largest data packet we accept on a channel: 64 KiB, twice OpenSSH's 32 KiB. It is the
 * receiver's choice (RFC 4254 §5.1) and our transport takes packets up to 256 KiB; what we send
 * follows the peer's figure, so to OpenSSH and most others it stays 32 KiB. Between tssh and tsshd
 * half as many packets carry the same data, and each costs node:crypto a new cipher object: a
 * download ran 518 -> 540 MB/s with 5 % less CPU on both sides (docs/performance.md).
 */
export const DEFAULT_MAX_PACKET = 64 * 1024;
const MAX_WINDOW = 0xffffffff;
/** A cap on open channels per connection, so a peer cannot exhaust memory by opening channels. */
export const DEFAULT_MAX_CHANNELS = 8192;

/** What a channel's owner (the API's Channel object) is told. */
export interface ChannelEvents {
  /** Channel data (a view valid until the owner stores it; the payload buffer is not reused). */
  onData(data: Buffer): void;
  /** Extended data: type 1 is stderr (RFC 4254 §5.2). */
  onExtendedData(dataType: number, data: Buffer): void;
  onEof(): void;
  /** The channel is gone: both CLOSE messages exchanged, or the connection ended (`error`). */
  onClose(error?: SshError): void;
  /**
   * A channel request from the peer. Call `reply` exactly once, possibly later; replies go out in
   * request order (RFC 4254 §5.4) as soon as they and the ones before are known, so a handler
   * that accepts and at once writes output puts the reply before the output.
   */
  onRequest(type: string, wantReply: boolean, data: Buffer, reply: (ok: boolean) => void): void;
  /** More window (or the transport drained): pending writes may continue. */
  onWritable(): void;
}

/** An incoming CHANNEL_OPEN, for the application to accept or reject. */
export interface IncomingOpen {
  readonly type: string;
  /** The type-specific fields (e.g. direct-tcpip's host and port), undecoded. */
  readonly data: Buffer;
}

export type OpenDecision =
  | { readonly accept: ChannelEvents; readonly confirmationData?: Buffer; readonly window?: number; readonly maxPacket?: number }
  | { readonly reason: ChannelOpenFailureCode; readonly description: string };

export interface MuxHandler {
  send(payload: Buffer): void;
  /** Send channel data as a message header and a slice of the application's buffer (no extra copy). */
  sendParts?(head: Buffer, body: Buffer, offset: number, length: number): void;
  /** False while the transport or socket is backed up: channel data waits. */
  canSend(): boolean;
  openRequested(request: IncomingOpen, channel: MuxChannel): OpenDecision | Promise<OpenDecision>;
  /** An incoming global request; the result (true, false, or reply data for success) is sent if a reply is wanted. */
  globalRequest(name: string, wantReply: boolean, data: Buffer): boolean | Buffer | Promise<boolean | Buffer>;
  /** A protocol violation: the connection must end with this error. */
  fatal(error: SshError): void;
  debug?(message: string): void;
}

export interface MuxOptions {
  readonly window?: number;
  readonly maxPacket?: number;
  readonly maxChannels?: number;
}

/** The peer refused to open a channel (RFC 4254 §5.1). */
export class ChannelOpenError extends SshError {
  constructor(
    readonly channelType: string,
    readonly failureReason: number,
    readonly description: string,
  ) {
    super(
      'ERR_SSH_CHANNEL_OPEN',
      DisconnectReason.BY_APPLICATION,
      `could not open ${channelType} channel: ${openFailureName(failureReason)}${description ? `: ${description}` : ''}`,
    );
  }
}

function openFailureName(code: number): string {
  return (
    Object.entries(ChannelOpenFailure).find(([, value]) => value === code)?.[0].toLowerCase().replace(/_/g, ' ') ??
    `reason ${code}`
  );
}

type ChannelState = 'opening' | 'open' | 'closed';

interface ChannelOpener {
  readonly attach: (channel: MuxChannel) => ChannelEvents;
  readonly resolve: (channel: MuxChannel) => void;
  readonly reject: (error: Error) => void;
}

/**
 * The chain incoming global requests are answered along starts here: one settled promise for
 * every multiplexer, not one each (a server keeps a multiplexer per idle connection).
 */
const SETTLED: Promise<void> = Promise.resolve();

const NO_CHANNELS: ReadonlyMap<number, MuxChannel> = new Map();

export class MuxChannel {
  state: ChannelState = 'opening';
  remoteId = -1;
  /** Bytes we may still send (the peer's window). */
  remoteWindow = 0;
  remoteMaxPacket = 0;
  /** Bytes the peer may still send us. */
  localWindow: number;
  readonly localMaxPacket: number;
  private readonly initialWindow: number;
  /** Bytes our reader consumed since our last WINDOW_ADJUST. */
  private consumedSinceAdjust = 0;
  eofSent = false;
  eofReceived = false;
  closeSent = false;
  closeReceived = false;
  events: ChannelEvents | undefined;
  /** A channel we asked to open, until the peer answers: how to attach it and settle open(). */
  opener: ChannelOpener | undefined;
  /** Resolvers for our requests that want a reply, in order (RFC 4254 §5.4). */
  readonly pendingReplies: ((ok: boolean) => void)[] = [];
  /** Replies to incoming requests, in request order; sent from the head once known. */
  readonly replySlots: { ok: boolean | undefined; wantReply: boolean }[] = [];

  constructor(
    private readonly mux: ChannelMux,
    readonly localId: number,
    readonly type: string,
    window: number,
    maxPacket: number,
  ) {
    this.localWindow = window;
    this.initialWindow = window;
    this.localMaxPacket = maxPacket;
  }

  /** Largest write that would go out now, without waiting. */
  get writableBytes(): number {
    if (this.state !== 'open' || this.closeSent || this.eofSent) return 0;
    return this.remoteWindow;
  }

  /**
   * Send as much of `data` (from `offset` up to `end`) as the window, packet size and transport
   * allow. Returns the number of bytes sent; the caller keeps the rest until `onWritable`.
   */
  write(data: Buffer, offset = 0, extendedType = 0, end = data.length): number {
    if (this.state !== 'open' || this.closeSent || this.eofSent) return 0;
    let sent = 0;
    let remaining = end - offset;
    while (remaining > 0 && this.remoteWindow > 0 && this.mux.canSend()) {
      const length = Math.min(remaining, this.remoteWindow, this.remoteMaxPacket);
      this.mux.sendData(this.remoteId, extendedType, data, offset + sent, length);
      this.remoteWindow -= length;
      sent += length;
      remaining -= length;
    }
    return sent;
  }

  /** The reader consumed `bytes`: give the peer window back once half of it is used (as OpenSSH). */
  consumed(bytes: number): void {
    if (this.state !== 'open' || this.closeSent || this.closeReceived) return;
    this.consumedSinceAdjust += bytes;
    if (this.consumedSinceAdjust >= this.initialWindow / 2 || this.localWindow < this.initialWindow / 2) {
      const add = Math.min(this.consumedSinceAdjust, MAX_WINDOW - this.localWindow);
      if (add <= 0) return;
      this.localWindow += add;
      this.consumedSinceAdjust -= add;
      this.mux.send(ChannelWindowAdjust.encode({ recipientChannel: this.remoteId, bytesToAdd: add }));
    }
  }

  /** Send a channel request; resolves with the reply (true when none is wanted). */
  request(type: string, data: Buffer = Buffer.alloc(0), wantReply = true): Promise<boolean> {
    if (this.state !== 'open' || this.closeSent) return Promise.resolve(false);
    this.mux.send(ChannelRequest.encode({ recipientChannel: this.remoteId, type, wantReply, data }));
    if (!wantReply) return Promise.resolve(true);
    return new Promise((resolve) => this.pendingReplies.push(resolve));
  }

  eof(): void {
    if (this.state !== 'open' || this.eofSent || this.closeSent) return;
    this.eofSent = true;
    this.mux.send(ChannelEof.encode({ recipientChannel: this.remoteId }));
  }

  close(): void {
    if (this.state === 'closed' || this.closeSent) return;
    if (this.state === 'opening' && this.remoteId < 0) {
      // Not confirmed yet: the close is sent once the confirmation arrives.
      this.closeSent = true;
      return;
    }
    this.closeSent = true;
    this.mux.send(ChannelClose.encode({ recipientChannel: this.remoteId }));
    this.mux.maybeFree(this);
  }
}

export class ChannelMux {
  /**
   * Every channel with an id, including those being opened (MuxChannel.opener). Made with the
   * first channel and let go with the last: an idle connection has none.
   */
  private channelMap: Map<number, MuxChannel> | undefined;
  private readonly freeIds: number[] = [];
  private nextId = 0;
  private readonly pendingGlobal: ((reply: Buffer | false) => void)[] = [];
  private globalChain: Promise<void> = SETTLED;
  private closed = false;
  readonly window: number;
  readonly maxPacket: number;
  private readonly maxChannels: number;

  constructor(
    private readonly handler: MuxHandler,
    options: MuxOptions = {},
  ) {
    this.window = Math.min(options.window ?? DEFAULT_WINDOW, MAX_WINDOW);
    this.maxPacket = options.maxPacket ?? DEFAULT_MAX_PACKET;
    this.maxChannels = options.maxChannels ?? DEFAULT_MAX_CHANNELS;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  private get channels(): ReadonlyMap<number, MuxChannel> {
    return this.channelMap ?? NO_CHANNELS;
  }

  send(payload: Buffer): void {
    if (!this.closed) this.handler.send(payload);
  }

  canSend(): boolean {
    return !this.closed && this.handler.canSend();
  }

  /** CHANNEL_DATA / CHANNEL_EXTENDED_DATA for `length` bytes of `data` from `offset`. */
  sendData(recipient: number, extendedType: number, data: Buffer, offset: number, length: number): void {
    if (this.closed) return;
    const head = encodeChannelDataHeader(recipient, extendedType, length);
    if (this.handler.sendParts) this.handler.sendParts(head, data, offset, length);
    else this.handler.send(Buffer.concat([head, data.subarray(offset, offset + length)]));
  }

  /**
   * Open a channel; resolves once the peer confirms, rejects with ChannelOpenError. `attach` is
   * called with the confirmed channel before any of its data is processed, and returns the
   * channel's event sink.
   */
  open(
    type: string,
    data: Buffer,
    attach: (channel: MuxChannel) => ChannelEvents,
    options: { window?: number; maxPacket?: number } = {},
  ): Promise<MuxChannel> {
    if (this.closed) return Promise.reject(new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'connection closed'));
    const channel = this.allocate(type, options.window ?? this.window, options.maxPacket ?? this.maxPacket);
    if (!channel) return Promise.reject(new ChannelOpenError(type, ChannelOpenFailure.RESOURCE_SHORTAGE, 'too many channels'));
    const opened = new Promise<MuxChannel>((resolve, reject) => (channel.opener = { attach, resolve, reject }));
    this.send(
      ChannelOpen.encode({ type, senderChannel: channel.localId, initialWindow: channel.localWindow, maxPacket: channel.localMaxPacket, data }),
    );
    return opened;
  }

  /** Send a global request; resolves with the reply data on success, false on failure. */
  globalRequest(name: string, data: Buffer = Buffer.alloc(0), wantReply = true): Promise<Buffer | false> {
    this.send(GlobalRequest.encode({ name, wantReply, data }));
    if (!wantReply) return Promise.resolve(Buffer.alloc(0));
    return new Promise((resolve) => this.pendingGlobal.push(resolve));
  }

  /** The transport can take data again: let channels with pending writes continue. */
  drained(): void {
    for (const channel of [...this.channels.values()]) {
      if (channel.state === 'open' && channel.remoteWindow > 0) channel.events?.onWritable();
    }
  }

  /** The connection ended: every channel and pending operation ends with `reason` (or the error it makes). */
  terminate(reason: SshError | (() => SshError)): void {
    if (this.closed) return;
    this.closed = true;
    // Made only for an open or a channel still there to hear it: a connection that ends cleanly
    // has neither, and an Error (with its stack trace) is not free.
    let error: SshError | undefined;
    const why = (): SshError => (error ??= typeof reason === 'function' ? reason() : reason);
    for (const channel of this.channels.values()) {
      channel.opener?.reject(why());
      channel.opener = undefined;
    }
    for (const resolve of this.pendingGlobal.splice(0)) resolve(false);
    for (const channel of [...this.channels.values()]) {
      channel.state = 'closed';
      for (const resolve of channel.pendingReplies.splice(0)) resolve(false);
      channel.events?.onClose(why());
    }
    this.channelMap = undefined;
  }

  /** A connection-layer message (80-127) from the transport. */
  receive(payload: Buffer): void {
    const type = payload[0]!;
    switch (type) {
      case MSG.GLOBAL_REQUEST:
        return this.onGlobalRequest(payload);
      case MSG.REQUEST_SUCCESS:
      case MSG.REQUEST_FAILURE: {
        const resolve = this.pendingGlobal.shift();
        if (!resolve) throw new ProtocolError(`unexpected ${messageName(type)}: no global request is pending`);
        resolve(type === MSG.REQUEST_SUCCESS ? Buffer.from(RequestSuccess.decode(payload).data) : false);
        return;
      }
      case MSG.CHANNEL_OPEN:
        return this.onOpen(payload);
      case MSG.CHANNEL_OPEN_CONFIRMATION:
        return this.onOpenConfirmation(payload);
      case MSG.CHANNEL_OPEN_FAILURE:
        return this.onOpenFailure(payload);
      case MSG.CHANNEL_DATA:
      case MSG.CHANNEL_EXTENDED_DATA:
        return this.onData(payload);
      case MSG.CHANNEL_WINDOW_ADJUST:
        return this.onWindowAdjust(payload);
      case MSG.CHANNEL_EOF: {
        const channel = this.channelFor(ChannelEof.decode(payload).recipientChannel, type);
        if (!channel || channel.eofReceived) return;
        channel.eofReceived = true;
        channel.events?.onEof();
        return;
      }
      case MSG.CHANNEL_CLOSE: {
        const channel = this.channelFor(ChannelClose.decode(payload).recipientChannel, type, true);
        if (!channel) return;
        if (channel.closeReceived) throw new ProtocolError(`channel ${channel.localId}: CHANNEL_CLOSE received twice`);
        channel.closeReceived = true;
        // RFC 4254 §5.3: answer a CLOSE with a CLOSE unless we sent one already.
        if (!channel.closeSent) {
          channel.closeSent = true;
          this.send(ChannelClose.encode({ recipientChannel: channel.remoteId }));
        }
        this.maybeFree(channel);
        return;
      }
      case MSG.CHANNEL_REQUEST:
        return this.onChannelRequest(payload);
      case MSG.CHANNEL_SUCCESS:
      case MSG.CHANNEL_FAILURE: {
        const recipient = (type === MSG.CHANNEL_SUCCESS ? ChannelSuccess : ChannelFailure).decode(payload).recipientChannel;
        const channel = this.channelFor(recipient, type, true);
        if (!channel) return;
        const resolve = channel.pendingReplies.shift();
        if (!resolve) throw new ProtocolError(`channel ${channel.localId}: unexpected ${messageName(type)}: no request is pending`);
        resolve(type === MSG.CHANNEL_SUCCESS);
        return;
      }
      default:
        // 80-127 numbers RFC 4254 does not assign.
        throw new ProtocolError(`unknown connection protocol message ${type}`);
    }
  }

  /** Free a channel once both CLOSE messages are exchanged; its id may then be reused. */
  maybeFree(channel: MuxChannel): void {
    if (!channel.closeSent || !channel.closeReceived || channel.state === 'closed') return;
    channel.state = 'closed';
    this.release(channel);
    for (const resolve of channel.pendingReplies.splice(0)) resolve(false);
    channel.events?.onClose();
  }

  private allocate(type: string, window: number, maxPacket: number): MuxChannel | undefined {
    if (this.channels.size >= this.maxChannels) return undefined;
    const id = this.freeIds.length > 0 ? this.freeIds.shift()! : this.nextId++;
    const channel = new MuxChannel(this, id, type, window, maxPacket);
    (this.channelMap ??= new Map()).set(id, channel);
    return channel;
  }

  /** The channel's id may be given out again. */
  private release(channel: MuxChannel): void {
    this.channelMap?.delete(channel.localId);
    if (this.channelMap?.size === 0) this.channelMap = undefined;
    this.freeIds.push(channel.localId);
  }

  /**
   * The channel a message is for. Messages for a channel we already closed are dropped (the
   * peer may not have seen our CLOSE yet); an id we never gave out is a protocol error.
   */
  private channelFor(id: number, type: number, allowClosing = false): MuxChannel | undefined {
    const channel = this.channels.get(id);
    if (!channel || channel.state === 'opening') {
      throw new ProtocolError(`${messageName(type)} for unknown channel ${id}`);
    }
    if (channel.closeSent && !allowClosing) return undefined;
    return channel;
  }

  private onOpen(payload: Buffer): void {
    const open = ChannelOpen.decode(payload);
    const data = Buffer.from(open.data);
    const reject = (reason: ChannelOpenFailureCode, description: string): void =>
      this.send(ChannelOpenFailureMessage.encode({ recipientChannel: open.senderChannel, reason, description, language: '' }));
    const channel = this.allocate(open.type, this.window, this.maxPacket);
    if (!channel) return reject(ChannelOpenFailure.RESOURCE_SHORTAGE, 'too many channels');
    channel.remoteId = open.senderChannel;
    channel.remoteWindow = open.initialWindow;
    channel.remoteMaxPacket = Math.max(1, open.maxPacket);
    const decide = (decision: OpenDecision): void => {
      if (this.closed) return;
      if ('reason' in decision) {
        this.release(channel);
        channel.state = 'closed';
        return reject(decision.reason, decision.description);
      }
      channel.events = decision.accept;
      channel.state = 'open';
      this.send(
        ChannelOpenConfirmation.encode({
          recipientChannel: channel.remoteId,
          senderChannel: channel.localId,
          initialWindow: channel.localWindow,
          maxPacket: channel.localMaxPacket,
          data: decision.confirmationData ?? Buffer.alloc(0),
        }),
      );
      if (channel.remoteWindow > 0) decision.accept.onWritable();
    };
    let decision: OpenDecision | Promise<OpenDecision>;
    try {
      decision = this.handler.openRequested({ type: open.type, data }, channel);
    } catch (error) {
      decision = { reason: ChannelOpenFailure.CONNECT_FAILED, description: (error as Error).message };
    }
    if (decision instanceof Promise) {
      decision.then(decide, (error: Error) => decide({ reason: ChannelOpenFailure.CONNECT_FAILED, description: error.message }));
    } else {
      decide(decision);
    }
  }

  private onOpenConfirmation(payload: Buffer): void {
    const message = ChannelOpenConfirmation.decode(payload);
    const channel = this.channels.get(message.recipientChannel);
    const pending = channel?.opener;
    if (!channel || !pending || channel.state !== 'opening') {
      throw new ProtocolError(`CHANNEL_OPEN_CONFIRMATION for channel ${message.recipientChannel}, which is not being opened`);
    }
    channel.opener = undefined;
    channel.remoteId = message.senderChannel;
    channel.remoteWindow = message.initialWindow;
    channel.remoteMaxPacket = Math.max(1, message.maxPacket);
    channel.state = 'open';
    channel.events = pending.attach(channel);
    if (channel.closeSent) {
      // Closed by us while opening: finish the close now.
      this.send(ChannelClose.encode({ recipientChannel: channel.remoteId }));
    }
    pending.resolve(channel);
  }

  private onOpenFailure(payload: Buffer): void {
    const message = ChannelOpenFailureMessage.decode(payload);
    const channel = this.channels.get(message.recipientChannel);
    const pending = channel?.opener;
    if (!channel || !pending) {
      throw new ProtocolError(`CHANNEL_OPEN_FAILURE for channel ${message.recipientChannel}, which is not being opened`);
    }
    channel.opener = undefined;
    this.release(channel);
    channel.state = 'closed';
    pending.reject(new ChannelOpenError(channel.type, message.reason, message.description.replace(/[\u0000-\u001f\u007f]/g, '?')));
  }

  private onData(payload: Buffer): void {
    const { recipient, dataType, data } = decodeChannelData(payload);
    const channel = this.channelFor(recipient, payload[0]!);
    if (!channel) return;
    // RFC 4254 §5.2: the peer may not send more than the window it was given.
    if (data.length > channel.localWindow) {
      throw new ProtocolError(
        `channel ${channel.localId}: peer sent ${data.length} bytes with only ${channel.localWindow} left in the window`,
      );
    }
    channel.localWindow -= data.length;
    if (channel.eofReceived) {
      this.handler.debug?.(`channel ${channel.localId}: data after EOF dropped`);
      channel.consumed(data.length);
      return;
    }
    if (dataType === 0) channel.events?.onData(data);
    else channel.events?.onExtendedData(dataType, data);
  }

  private onWindowAdjust(payload: Buffer): void {
    const { recipientChannel, bytesToAdd } = ChannelWindowAdjust.decode(payload);
    const channel = this.channelFor(recipientChannel, MSG.CHANNEL_WINDOW_ADJUST);
    if (!channel) return;
    if (channel.remoteWindow + bytesToAdd > MAX_WINDOW) {
      throw new ProtocolError(`channel ${channel.localId}: window adjust of ${bytesToAdd} overflows the 32-bit window`);
    }
    channel.remoteWindow += bytesToAdd;
    if (bytesToAdd > 0) channel.events?.onWritable();
  }

  private onChannelRequest(payload: Buffer): void {
    const { recipientChannel, type, wantReply, data } = ChannelRequest.decode(payload);
    const channel = this.channelFor(recipientChannel, MSG.CHANNEL_REQUEST);
    if (!channel) return;
    const slot: { ok: boolean | undefined; wantReply: boolean } = { ok: undefined, wantReply };
    channel.replySlots.push(slot);
    const reply = (ok: boolean): void => {
      if (slot.ok !== undefined) return;
      slot.ok = ok;
      this.flushReplies(channel);
    };
    try {
      if (channel.events) channel.events.onRequest(type, wantReply, Buffer.from(data), reply);
      else reply(false);
    } catch (error) {
      this.handler.debug?.(`channel ${channel.localId}: request ${type} failed: ${(error as Error).message}`);
      reply(false);
    }
  }

  private flushReplies(channel: MuxChannel): void {
    while (channel.replySlots.length > 0 && channel.replySlots[0]!.ok !== undefined) {
      const { ok, wantReply } = channel.replySlots.shift()!;
      if (wantReply && channel.state === 'open' && !channel.closeSent) {
        this.send((ok ? ChannelSuccess : ChannelFailure).encode({ recipientChannel: channel.remoteId }));
      }
    }
  }

  private onGlobalRequest(payload: Buffer): void {
    const { name, wantReply, data } = GlobalRequest.decode(payload);
    const copy = Buffer.from(data);
    this.globalChain = this.globalChain.then(async () => {
      let result: boolean | Buffer = false;
      try {
        result = await this.handler.globalRequest(name, wantReply, copy);
      } catch (error) {
        this.handler.debug?.(`global request ${name} failed: ${(error as Error).message}`);
      }
      if (!wantReply || this.closed) return;
      if (result === false) this.send(RequestFailure.encode({}));
      else this.send(RequestSuccess.encode({ data: result === true ? Buffer.alloc(0) : result }));
    });
  }
}
