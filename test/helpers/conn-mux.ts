/**
 * Two sans-I/O channel multiplexers wired back to back, for test/connection/mux.test.ts. Nothing
 * moves by itself: what a mux sends waits in its outbox until the test delivers it, so a test can
 * put messages in flight, cross them, reorder replies, or feed a mux hand-made messages from a
 * misbehaving peer.
 *
 *   const pair = new MuxPair();                       // pair.a opens, pair.b accepts by default
 *   const { local, remote } = await pair.openChannel(); // a confirmed channel on each side
 *   local.channel.write(Buffer.from('hi'));            // sits in pair.a.outbox
 *   pair.a.outboxNames()                               // ['SSH_MSG_CHANNEL_DATA']
 *   pair.flush();                                      // delivers until both outboxes are empty
 *   remote.events.dataText()                           // 'hi'
 */
import { ChannelMux, type ChannelEvents, type IncomingOpen, type MuxChannel, type MuxOptions, type OpenDecision } from '../../src/connection/mux.js';
import type { SshError } from '../../src/errors.js';
import { messageName } from '../../src/wire/messages.js';

/** A channel request as the recording owner saw it, with the reply callback kept for later. */
export interface RecordedRequest {
  readonly type: string;
  readonly wantReply: boolean;
  readonly data: Buffer;
  readonly reply: (ok: boolean) => void;
}

/** A ChannelEvents sink that records everything the multiplexer tells a channel's owner. */
export class ChannelRecorder implements ChannelEvents {
  readonly data: Buffer[] = [];
  readonly extended: { dataType: number; data: Buffer }[] = [];
  eofCount = 0;
  readonly closes: (SshError | undefined)[] = [];
  readonly requests: RecordedRequest[] = [];
  writableCount = 0;
  /** How incoming requests are answered; by default they are only recorded (answer later via `requests`). */
  answer: ((request: RecordedRequest) => void) | undefined;
  /** Called on onWritable, e.g. to continue a write. */
  whenWritable: (() => void) | undefined;

  onData(data: Buffer): void {
    this.data.push(Buffer.from(data));
  }
  onExtendedData(dataType: number, data: Buffer): void {
    this.extended.push({ dataType, data: Buffer.from(data) });
  }
  onEof(): void {
    this.eofCount++;
  }
  onClose(error?: SshError): void {
    this.closes.push(error);
  }
  onRequest(type: string, wantReply: boolean, data: Buffer, reply: (ok: boolean) => void): void {
    const request = { type, wantReply, data: Buffer.from(data), reply };
    this.requests.push(request);
    this.answer?.(request);
  }
  onWritable(): void {
    this.writableCount++;
    this.whenWritable?.();
  }

  dataText(): string {
    return Buffer.concat(this.data).toString('utf8');
  }
  dataBytes(): number {
    return this.data.reduce((n, b) => n + b.length, 0);
  }
}

export type OpenHandler = (request: IncomingOpen, channel: MuxChannel) => OpenDecision | Promise<OpenDecision>;
export type GlobalHandler = (name: string, wantReply: boolean, data: Buffer) => boolean | Buffer | Promise<boolean | Buffer>;

/** One multiplexer with an outbox and recording hooks. */
export class MuxEnd {
  readonly mux: ChannelMux;
  readonly outbox: Buffer[] = [];
  /** What the handler's canSend() answers: false simulates a backed-up transport. */
  sendable = true;
  /** Incoming channel opens; by default accepted with a fresh recorder (see `accepted`). */
  openHandler: OpenHandler;
  /** Incoming global requests; by default refused (false), as an unknown request is. */
  globalHandler: GlobalHandler = () => false;
  readonly globalRequestsSeen: { name: string; wantReply: boolean; data: Buffer }[] = [];
  /** Channels this end accepted with the default open handler, with their recorders, in order. */
  readonly accepted: { channel: MuxChannel; events: ChannelRecorder; request: IncomingOpen }[] = [];
  readonly fatals: SshError[] = [];

  constructor(
    readonly name: string,
    options: MuxOptions = {},
  ) {
    this.openHandler = (request, channel) => {
      const events = new ChannelRecorder();
      this.accepted.push({ channel, events, request });
      return { accept: events };
    };
    this.mux = new ChannelMux(
      {
        send: (payload) => this.outbox.push(Buffer.from(payload)),
        canSend: () => this.sendable,
        openRequested: (request, channel) => this.openHandler(request, channel),
        globalRequest: (name, wantReply, data) => {
          this.globalRequestsSeen.push({ name, wantReply, data: Buffer.from(data) });
          return this.globalHandler(name, wantReply, data);
        },
        fatal: (error) => this.fatals.push(error),
      },
      options,
    );
  }

  /** The names of the messages waiting in the outbox (SSH_MSG_CHANNEL_DATA, …). */
  outboxNames(): string[] {
    return this.outbox.map((payload) => messageName(payload[0]!));
  }

  /** Removes and returns everything in the outbox. */
  take(): Buffer[] {
    return this.outbox.splice(0);
  }
}

/** Lets pending promise reactions and immediates run (async open decisions, global request chain). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class MuxPair {
  readonly a: MuxEnd;
  readonly b: MuxEnd;
  /** Every delivered message, as "a→b SSH_MSG_CHANNEL_CLOSE". */
  readonly log: string[] = [];

  constructor(options: { a?: MuxOptions; b?: MuxOptions } = {}) {
    this.a = new MuxEnd('a', options.a);
    this.b = new MuxEnd('b', options.b);
  }

  other(end: MuxEnd): MuxEnd {
    return end === this.a ? this.b : this.a;
  }

  /**
   * Delivers up to `count` messages from `from`'s outbox to the other end, oldest first (all of
   * them by default). Returns how many were delivered. A ProtocolError from the receiver propagates.
   */
  deliver(from: MuxEnd, count = Infinity): number {
    const to = this.other(from);
    let delivered = 0;
    while (delivered < count && from.outbox.length > 0) {
      const payload = from.outbox.shift()!;
      this.log.push(`${from.name}→${to.name} ${messageName(payload[0]!)}`);
      to.mux.receive(payload);
      delivered++;
    }
    return delivered;
  }

  /** Delivers in both directions until both outboxes are empty; returns how many messages moved. */
  flush(): number {
    let total = 0;
    for (;;) {
      const moved = this.deliver(this.a) + this.deliver(this.b);
      if (moved === 0) return total;
      total += moved;
    }
  }

  /** flush(), letting promises settle in between, until nothing moves any more. */
  async flushAll(): Promise<number> {
    let total = 0;
    for (;;) {
      await settle();
      const moved = this.flush();
      if (moved === 0) {
        await settle();
        if (this.a.outbox.length === 0 && this.b.outbox.length === 0) return total;
      }
      total += moved;
    }
  }

  /**
   * Opens a channel from `from` (default a) that the other end accepts with its open handler, and
   * returns both sides once the confirmation arrived.
   */
  async openChannel(
    options: { from?: MuxEnd; type?: string; data?: Buffer; window?: number; maxPacket?: number } = {},
  ): Promise<{ local: { channel: MuxChannel; events: ChannelRecorder }; remote: { channel: MuxChannel; events: ChannelRecorder } }> {
    const from = options.from ?? this.a;
    const to = this.other(from);
    const events = new ChannelRecorder();
    const before = to.accepted.length;
    const opened = from.mux.open(options.type ?? 'session', options.data ?? Buffer.alloc(0), () => events, {
      window: options.window,
      maxPacket: options.maxPacket,
    });
    await this.flushAll();
    const channel = await opened;
    const remote = to.accepted[before];
    if (!remote) throw new Error('the other end did not accept the channel with its default open handler');
    return { local: { channel, events }, remote: { channel: remote.channel, events: remote.events } };
  }
}
