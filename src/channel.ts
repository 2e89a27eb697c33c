/**
 * A channel as a Node Duplex: writes are flow-controlled by the peer's window (a write that does
 * not fit waits, so `write()` returns false and back-pressure reaches the application), and the
 * window we give the peer is returned only as the application reads, so a reader that stops
 * makes the sender stop instead of growing our buffers.
 */
import { Duplex, Readable, Writable } from 'node:stream';
import type { ChannelEvents, MuxChannel } from './connection/mux.js';
import type { SshError } from './errors.js';

/** RFC 4254 §5.2: the only extended data type defined. */
export const EXTENDED_DATA_STDERR = 1;

/**
 * Where one packet is put together from the end of a queued write and the start of the next
 * (ChannelStream.sendPacked). The transport copies what it is given before write() returns, so
 * one buffer serves every channel of the process.
 */
let packing: Buffer = Buffer.alloc(0);

function ignore(): void {
  // a write whose completion the caller learns from a later write's callback (_writev)
}

interface PendingWrite {
  readonly data: Buffer;
  offset: number;
  readonly extendedType: number;
  readonly callback: (error?: Error | null) => void;
}

export interface ChannelStreamOptions {
  /** Send CLOSE once both sides have sent EOF (forwarded TCP); sessions close on exit instead. */
  readonly closeWhenDone?: boolean;
}

/** Accounting of what the reader consumed, so the window is returned only for data read. */
class ReadAccounting {
  private received = 0;
  private acknowledged = 0;
  constructor(
    private readonly stream: Readable,
    private readonly channel: MuxChannel,
  ) {}
  pushed(length: number): void {
    this.received += length;
    this.acknowledge();
  }
  acknowledge(): void {
    const consumed = this.received - this.stream.readableLength - this.acknowledged;
    if (consumed > 0) {
      this.acknowledged += consumed;
      this.channel.consumed(consumed);
    }
  }
}

/** The events every channel stream emits, typed for listeners. */
export interface ChannelStreamEvents {
  data: [chunk: Buffer];
  end: [];
  finish: [];
  drain: [];
  close: [];
  error: [error: Error];
  /** The channel is closed; `error` is set when the connection failed under it. */
  'channel-close': [error: SshError | undefined];
  /** Extended data of a type other than stderr. */
  'extended-data': [dataType: number, data: Buffer];
}

export class ChannelStream extends Duplex {
  readonly channel: MuxChannel;
  private readonly pending: PendingWrite[] = [];
  private readonly accounting: ReadAccounting;
  private readonly stderrAccounting: ReadAccounting | undefined;
  protected readonly stderrReadable: Readable | undefined;
  private readonly closeWhenDone: boolean;
  private remoteEof = false;
  private localEof = false;
  /** The error the channel ended with, if the connection failed under it. */
  closeError: SshError | undefined;
  /** True once the channel is closed (both CLOSE messages, or the connection ended). */
  channelClosed = false;

  constructor(channel: MuxChannel, stderrReadable: boolean, options: ChannelStreamOptions = {}) {
    // autoDestroy off: ending both directions must not send CHANNEL_CLOSE by itself, or a request
    // the peer sends between its EOF and its CLOSE (OpenSSH's exit-status) would be dropped.
    // The stream is destroyed when the channel closes (onClose).
    super({ allowHalfOpen: true, autoDestroy: false, highWaterMark: 64 * 1024 });
    this.channel = channel;
    this.closeWhenDone = options.closeWhenDone ?? false;
    this.accounting = new ReadAccounting(this, channel);
    if (stderrReadable) {
      this.stderrReadable = new Readable({ read: () => this.stderrAccounting?.acknowledge() });
      this.stderrAccounting = new ReadAccounting(this.stderrReadable, channel);
    }
  }

  /** The callbacks the multiplexer calls for this channel. */
  get events(): ChannelEvents {
    return {
      onData: (data) => {
        this.push(data);
        this.accounting.pushed(data.length);
      },
      onExtendedData: (dataType, data) => {
        if (dataType === EXTENDED_DATA_STDERR && this.stderrReadable) {
          this.stderrReadable.push(data);
          this.stderrAccounting!.pushed(data.length);
        } else {
          // Nobody reads it: give the window back at once.
          this.channel.consumed(data.length);
          this.emit('extended-data', dataType, data);
        }
      },
      onEof: () => {
        this.remoteEof = true;
        this.push(null);
        this.stderrReadable?.push(null);
        this.maybeClose();
      },
      onClose: (error) => {
        this.closeError = error;
        this.channelClosed = true;
        if (!this.remoteEof) {
          this.remoteEof = true;
          this.push(null);
          this.stderrReadable?.push(null);
        }
        this.emit('channel-close', error);
        // Destroyed without an error even when the connection failed under it: an 'error' would
        // crash the process unless the application handles it (pipe() re-throws one when its own
        // listener is the only one), and `closeError` and 'channel-close' carry the reason.
        // Destroying first also makes the writes still waiting fail on a destroyed stream, which
        // reaches their callbacks but is never emitted as 'error' (see _destroy).
        // A clean close keeps what the reader has not consumed yet: the stream ends, and is
        // destroyed once that output has been read (a slow reader must not lose the tail).
        if (this.destroyed) return;
        if (error || this.readableEnded) {
          this.destroy();
          return;
        }
        // Writes still waiting can no longer be sent: dropped quietly (an 'error' here would
        // crash a process that pipes into a channel the peer closed).
        for (const write of this.pending.splice(0)) write.callback();
        this.once('end', () => this.destroy());
      },
      onRequest: (type, wantReply, data, reply) => {
        let answer: boolean | Promise<boolean> | 'replied';
        try {
          answer = this.handleRequest(type, wantReply, data, reply);
        } catch (error) {
          this.emit('request-error', error);
          answer = false;
        }
        if (answer === 'replied') return;
        if (typeof answer === 'boolean') reply(answer);
        else answer.then(reply, () => reply(false));
      },
      onWritable: () => this.flushPending(),
    };
  }

  /**
   * Channel requests from the peer; subclasses answer the ones they know, by returning the
   * answer, or by calling `reply` themselves and returning 'replied'.
   */
  protected handleRequest(
    _type: string,
    _wantReply: boolean,
    _data: Buffer,
    _reply: (ok: boolean) => void,
  ): boolean | Promise<boolean> | 'replied' {
    return false;
  }

  override _read(): void {
    this.accounting.acknowledge();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.enqueue(chunk, 0, callback);
  }

  /**
   * Writes that waited together (corked, or behind a full window) are queued together, so that
   * flushPending can fill packets across their boundaries: an SFTP server's 32 KiB DATA replies
   * (32,781 bytes each) to a client whose packets hold 32 KiB go out as full packets instead of
   * two per reply, one of them 13 bytes long.
   */
  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: (error?: Error | null) => void): void {
    if (this.channel.state === 'closed' || this.channel.closeSent) {
      callback();
      return;
    }
    const idle = this.pending.length === 0;
    const last = chunks.length - 1;
    for (let i = 0; i <= last; i++) this.pending.push({ data: chunks[i]!.chunk, offset: 0, extendedType: 0, callback: i === last ? callback : ignore });
    if (idle) this.flushPending();
  }

  /**
   * Send `chunk` at once as far as the peer's window allows and queue a copy of the rest, for a
   * caller whose buffer is reused as soon as this returns (a read with net's `onread`). Returns
   * what write() returns: false asks the caller to wait for 'drain'.
   */
  writeNow(chunk: Buffer): boolean {
    // A closed channel takes nothing, as enqueue() drops writes for it.
    if (this.destroyed || this.channel.state === 'closed' || this.channel.closeSent) return true;
    let sent = 0;
    // Straight to the channel only when nothing written earlier is still waiting (order).
    if (this.pending.length === 0 && this.writableLength === 0 && !this.writableEnded && !this.destroyed) {
      sent = this.channel.write(chunk, 0, 0);
    }
    if (sent === chunk.length) return true;
    return this.write(Buffer.from(chunk.subarray(sent)));
  }

  /** Write to the peer's stderr (extended data type 1): server sessions use this. */
  protected writeExtended(chunk: Buffer, callback: (error?: Error | null) => void): void {
    this.enqueue(chunk, EXTENDED_DATA_STDERR, callback);
  }

  private enqueue(data: Buffer, extendedType: number, callback: (error?: Error | null) => void): void {
    if (this.channel.state === 'closed' || this.channel.closeSent) {
      // Data for a closed channel goes nowhere, as in OpenSSH; not an 'error' that could crash
      // a process whose pipe outlives the channel.
      callback();
      return;
    }
    this.pending.push({ data, offset: 0, extendedType, callback });
    if (this.pending.length === 1) this.flushPending();
  }

  private flushPending(): void {
    const pending = this.pending;
    const channel = this.channel;
    while (pending.length > 0) {
      const head = pending[0]!;
      const next = pending[1];
      if (next !== undefined && next.extendedType === head.extendedType) {
        // More of the same stream is queued: the head's whole packets now, and its tail (less
        // than a packet) in one packet with the start of what follows.
        const left = head.data.length - head.offset;
        const whole = head.offset + left - (left % Math.max(1, channel.remoteMaxPacket));
        if (whole > head.offset) {
          head.offset += channel.write(head.data, head.offset, head.extendedType, whole);
          if (head.offset < whole) return; // wait for window or transport drain
        }
        if (head.offset < head.data.length) {
          if (!this.sendPacked()) return;
          continue;
        }
      } else {
        head.offset += channel.write(head.data, head.offset, head.extendedType);
        if (head.offset < head.data.length) return; // wait for window or transport drain
      }
      pending.shift();
      head.callback();
    }
    if (this.localEof && pending.length === 0) this.sendEof();
  }

  /**
   * One packet (as large as the packet size and window allow) of the head's remaining bytes and
   * those of the writes after it with the same data type; completed writes are called back.
   * False when the channel cannot take it now.
   */
  private sendPacked(): boolean {
    const pending = this.pending;
    const channel = this.channel;
    const type = pending[0]!.extendedType;
    const room = Math.min(channel.remoteMaxPacket, channel.remoteWindow);
    let size = 0;
    for (let i = 0; i < pending.length && size < room && pending[i]!.extendedType === type; i++) {
      size += Math.min(pending[i]!.data.length - pending[i]!.offset, room - size);
    }
    if (size === 0) return false;
    if (packing.length < size) packing = Buffer.allocUnsafeSlow(Math.max(size, 64 * 1024));
    let filled = 0;
    for (let i = 0; filled < size; i++) {
      const write = pending[i]!;
      const take = Math.min(write.data.length - write.offset, size - filled);
      write.data.copy(packing, filled, write.offset, write.offset + take);
      filled += take;
    }
    if (channel.write(packing, 0, type, size) !== size) return false;
    // Sent: move every write on past what went, calling back those now complete.
    let consumed = size;
    while (consumed > 0) {
      const write = pending[0]!;
      const take = Math.min(write.data.length - write.offset, consumed);
      write.offset += take;
      consumed -= take;
      if (write.offset < write.data.length) break;
      pending.shift();
      write.callback();
    }
    return true;
  }

  private failPending(error: Error): void {
    for (const write of this.pending.splice(0)) write.callback(error);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.localEof = true;
    if (this.pending.length === 0) this.sendEof();
    callback();
  }

  private sendEof(): void {
    this.channel.eof();
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closeWhenDone && this.remoteEof && this.channel.eofSent) this.channel.close();
  }

  /**
   * Resolves once the channel is closed, with the connection's error if it failed under it. Safe
   * to call after the fact: a short command's whole output, exit and CLOSE can arrive in the
   * same read as the reply that started it, before a caller had the chance to listen.
   */
  whenClosed(): Promise<SshError | undefined> {
    if (this.channelClosed) return Promise.resolve(this.closeError);
    return new Promise((resolve) => this.once('channel-close', (error?: SshError) => resolve(error)));
  }

  /** Close the channel (sends SSH_MSG_CHANNEL_CLOSE); pending writes are dropped. */
  close(): void {
    this.channel.close();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // An Error captures a stack trace: made only when a write is there to be told.
    if (this.pending.length > 0) this.failPending(error ?? this.closeError ?? new Error('channel destroyed'));
    this.channel.close();
    callback(error);
  }
}

/** A Writable that sends to the peer's stderr of a channel (server side). */
export function stderrWritable(write: (chunk: Buffer, callback: (error?: Error | null) => void) => void): Writable {
  return new Writable({ write: (chunk: Buffer, _encoding, callback) => write(chunk, callback) });
}
