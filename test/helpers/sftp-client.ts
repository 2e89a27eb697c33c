/**
 * A bare SFTP v3 client for tests: sends raw requests (well-formed or not) over a pair of
 * streams and hands back the reply frames by request id, so a test can pipeline requests and
 * check each answer, or speak to OpenSSH's own sftp-server to compare.
 *
 *   const client = new RawSftpClient(toServer, fromServer);
 *   const version = await client.init();
 *   const reply = await client.request(FXP.OPEN, (w) => w.string('file').uint32(FXF.READ).uint32(0));
 */
import type { Readable, Writable } from 'node:stream';
import { Reader } from '../../src/wire/reader.js';
import { Writer } from '../../src/wire/writer.js';
import { decodeAttrs, FXP, PacketFramer, type Attrs } from '../../src/sftp/protocol.js';

export interface Reply {
  readonly type: number;
  readonly id: number;
  /** Positioned after the id. */
  readonly reader: Reader;
  readonly frame: Buffer;
}

export interface Status {
  readonly code: number;
  readonly message: string;
}

export class RawSftpClient {
  private readonly framer = new PacketFramer(16 * 1024 * 1024);
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private versionWaiter: ((frame: Buffer) => void) | undefined;
  private nextId = 1;
  /** Ids of the replies in the order they arrived. */
  readonly arrivals: number[] = [];
  /** Set once the server's output has ended. */
  ended = false;
  private readonly endWaiters: (() => void)[] = [];

  constructor(
    private readonly output: Writable,
    input: Readable,
  ) {
    input.on('data', (chunk: Buffer) => {
      this.framer.push(chunk);
      for (let frame = this.framer.next(); frame; frame = this.framer.next()) this.dispatch(frame);
    });
    const ended = (): void => {
      this.ended = true;
      for (const w of this.endWaiters.splice(0)) w();
    };
    input.once('end', ended);
    input.once('close', ended);
  }

  /** Resolves when the server closes its side. */
  whenEnded(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => this.endWaiters.push(resolve));
  }

  private dispatch(frame: Buffer): void {
    const type = frame[0]!;
    if (type === FXP.VERSION) {
      this.versionWaiter?.(frame);
      return;
    }
    const reader = new Reader(frame, 1, frame.length, 'reply');
    const id = reader.uint32();
    this.arrivals.push(id);
    const waiter = this.waiting.get(id);
    if (!waiter) throw new Error(`reply to unknown request ${id}`);
    this.waiting.delete(id);
    waiter({ type, id, reader, frame });
  }

  /** Writes bytes as they are (a packet, or garbage). */
  raw(bytes: Buffer): void {
    this.output.write(bytes);
  }

  /** SSH_FXP_INIT with version 3; resolves with the version and the extensions announced. */
  async init(version = 3): Promise<{ version: number; extensions: Map<string, string> }> {
    const frame = await new Promise<Buffer>((resolve) => {
      this.versionWaiter = resolve;
      this.raw(packet(FXP.INIT, (w) => w.uint32(version)));
    });
    const reader = new Reader(frame, 1, frame.length, 'SSH_FXP_VERSION');
    const serverVersion = reader.uint32();
    const extensions = new Map<string, string>();
    while (reader.remaining > 0) extensions.set(reader.utf8(), reader.utf8());
    return { version: serverVersion, extensions };
  }

  /** Sends one request (the id is filled in) and resolves with its reply. */
  request(type: number, body: (w: Writer) => void = () => {}): Promise<Reply> {
    const id = this.nextId++;
    return this.requestWithId(type, id, body);
  }

  requestWithId(type: number, id: number, body: (w: Writer) => void = () => {}): Promise<Reply> {
    const reply = new Promise<Reply>((resolve) => this.waiting.set(id, resolve));
    this.raw(packet(type, (w) => body(w.uint32(id))));
    return reply;
  }

  /** Sends several requests in one write, so that they reach the server in one chunk; resolves with their replies. */
  requestsTogether(requests: readonly { type: number; body: (w: Writer) => void }[]): Promise<Reply[]> {
    const replies: Promise<Reply>[] = [];
    const packets: Buffer[] = [];
    for (const { type, body } of requests) {
      const id = this.nextId++;
      replies.push(new Promise<Reply>((resolve) => this.waiting.set(id, resolve)));
      packets.push(packet(type, (w) => body(w.uint32(id))));
    }
    this.raw(Buffer.concat(packets));
    return Promise.all(replies);
  }

  extended(name: string, body: (w: Writer) => void = () => {}): Promise<Reply> {
    return this.request(FXP.EXTENDED, (w) => body(w.string(name)));
  }

  end(): void {
    this.output.end();
  }
}

/** A whole packet: length, type, body. */
export function packet(type: number, body: (w: Writer) => void): Buffer {
  const w = new Writer(64).uint32(0).byte(type);
  body(w);
  const bytes = w.finish();
  bytes.writeUInt32BE(bytes.length - 4, 0);
  return bytes;
}

export function status(reply: Reply): Status {
  if (reply.type !== FXP.STATUS) throw new Error(`expected SSH_FXP_STATUS, got type ${reply.type}`);
  return { code: reply.reader.uint32(), message: reply.reader.utf8() };
}

export function handleOf(reply: Reply): Buffer {
  if (reply.type !== FXP.HANDLE) throw new Error(`expected SSH_FXP_HANDLE, got ${describe(reply)}`);
  return Buffer.from(reply.reader.string());
}

export function dataOf(reply: Reply): Buffer {
  if (reply.type !== FXP.DATA) throw new Error(`expected SSH_FXP_DATA, got ${describe(reply)}`);
  return Buffer.from(reply.reader.string());
}

export function attrsOf(reply: Reply): Attrs {
  if (reply.type !== FXP.ATTRS) throw new Error(`expected SSH_FXP_ATTRS, got ${describe(reply)}`);
  return decodeAttrs(reply.reader);
}

export interface Name {
  filename: string;
  longname: string;
  attrs: Attrs;
}

export function namesOf(reply: Reply): Name[] {
  if (reply.type !== FXP.NAME) throw new Error(`expected SSH_FXP_NAME, got ${describe(reply)}`);
  const count = reply.reader.uint32();
  const names: Name[] = [];
  for (let i = 0; i < count; i++) names.push({ filename: reply.reader.utf8(), longname: reply.reader.utf8(), attrs: decodeAttrs(reply.reader) });
  return names;
}

function describe(reply: Reply): string {
  if (reply.type === FXP.STATUS) {
    const r = new Reader(reply.frame, 5, reply.frame.length);
    return `status ${r.uint32()} (${r.utf8()})`;
  }
  return `type ${reply.type}`;
}
