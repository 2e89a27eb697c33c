/**
 * An SFTP version 3 server (draft-ietf-secsh-filexfer-02) over any pair of streams: the bytes a
 * client sends come in on `input`, replies go out on `output`. It does its file-system work with
 * the permissions of the process it runs in; tsshd runs it in a child process started as the
 * session's user (src/sftp/internal-sftp.ts explains why).
 *
 * Ordering (§6.1): requests that relate to the same file must behave as if run one at a time.
 * Every request other than READ and WRITE is a barrier: it starts once all earlier requests have
 * finished, and later ones wait for it. READs and WRITEs between barriers run concurrently (a
 * few at a time) unless one could change what the other does, and those keep their order: two
 * WRITEs of overlapping bytes of the same file, a READ and a WRITE of the same file unless the
 * WRITE ends before the READ's first byte (a WRITE moves the end of the file, which a READ that
 * reaches it sees), and an append with anything of its file (spansConflict).
 *
 * Replies go out in request order, each with its request's id. §7 would allow any order, but
 * OpenSSH's sftp client of 9.2 truncates an in-place upload (what scp does in SFTP mode) at the
 * highest offset acknowledged in order, so a reordered WRITE acknowledgement cuts the file short.
 * OpenSSH's own server, strictly serial, never reorders; neither do we: a reply that is ready
 * early waits for the ones before it.
 *
 * Back-pressure: the input is paused while many requests (or many bytes of WRITE data) wait to
 * run, and no request starts while the output is not draining, so a client that does not read
 * its replies stops being read, and the SSH channel window then stops it.
 */
import { EventEmitter } from 'node:events';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { ProtocolError } from '../errors.js';
import { confinedPaths, hostPaths, type PathResolver, type ResolveMode, type ResolvedPath } from './confined-fs.js';
import type { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import {
  attrsFromStats,
  attrsPacket,
  DATA_HEADER_LENGTH,
  decodeAttrs,
  finishDataPacket,
  finishPacket,
  frameReader,
  FX,
  FXF,
  FXP,
  handlePacket,
  MAX_HANDLE_LENGTH,
  MAX_OPEN_HANDLES,
  MAX_PACKET_LENGTH,
  MAX_READ_LENGTH,
  MAX_WRITE_LENGTH,
  namePacket,
  PacketFramer,
  packetTypeName,
  packetWriter,
  SftpStatusError,
  statusFromError,
  statusPacket,
  versionPacket,
  type FxStatus,
  type NameEntry,
} from './protocol.js';

const fsp = fs.promises;

/** User and group names for `ls -l` longnames, and home folders for `~user`. */
export interface NameService {
  userName(uid: number): Promise<string | undefined>;
  groupName(gid: number): Promise<string | undefined>;
  homeOf(user: string): Promise<string | undefined>;
}

export interface SftpServerOptions {
  /** Where relative paths start (§6.2): the user's home, as sshd's session runs there. */
  readonly cwd: string;
  /** The user's home, for `~` in expand-path@openssh.com and home-directory. Default: cwd. */
  readonly home?: string;
  /**
   * Serve this folder as `/` (tsshd's ChrootDirectory): every path is resolved inside it and
   * cannot leave it, by `..` or by symbolic links (./confined-fs.ts). cwd and home are then
   * paths inside it.
   */
  readonly root?: string;
  /** internal-sftp -R: every request that would change the file system is refused. */
  readonly readOnly?: boolean;
  /** Open files and directories at once; default MAX_OPEN_HANDLES. */
  readonly maxOpenHandles?: number;
  /**
   * Requests started and not yet answered, at most, counted in requests of the largest size
   * (MAX_READ_LENGTH): READs and WRITEs weigh their length, so that 32 KiB requests run eight
   * times as many at once; other requests weigh nothing (they run alone). Default 4, libuv's
   * file-system threads.
   */
  readonly concurrency?: number;
  /** Default: `getent` through NSS, cached. */
  readonly names?: NameService;
  /** Where the server says why it stopped (a protocol error from the client). */
  readonly log?: (line: string) => void;
  /**
   * End `output` when done (default). tsshd's in-process server leaves that to ServerSession.exit(),
   * which sends EOF after the exit status has a chance to go.
   */
  readonly endOutput?: boolean;
  /**
   * Read and write file data with synchronous calls instead of libuv's thread pool: for a process
   * that serves this one session (tsshd's SFTP child), where a wait on the disk holds up nothing
   * else, as in OpenSSH's sftp-server. Saves the hand-off to a pool thread and back for every
   * 32 KiB request. Never in a process that serves other connections too. Default: false.
   */
  readonly syncFileIo?: boolean;
  /**
   * Reuse the buffers of DATA replies once `output` calls back for their write. Only for an output
   * that is done with a chunk when it calls back: a socket, or a channel (tssh's ChannelStream
   * calls back once the bytes are encrypted or copied); not a PassThrough, which hands the chunk
   * on by reference. Default: false.
   */
  readonly reuseDataBuffers?: boolean;
}

export interface SftpServerEvents {
  /** The server has stopped and closed its handles: 0 after the client's EOF, 1 after a fatal error. */
  done: [code: number, error: Error | undefined];
}

export interface SftpServer {
  on<K extends keyof SftpServerEvents>(event: K, listener: (...args: SftpServerEvents[K]) => void): this;
  once<K extends keyof SftpServerEvents>(event: K, listener: (...args: SftpServerEvents[K]) => void): this;
  emit<K extends keyof SftpServerEvents>(event: K, ...args: SftpServerEvents[K]): boolean;
}

/** OpenSSH's extensions we implement, announced in SSH_FXP_VERSION (PROTOCOL §4.2). */
export const EXTENSIONS: readonly (readonly [string, string])[] = [
  ['posix-rename@openssh.com', '1'],
  ['statvfs@openssh.com', '2'],
  ['fstatvfs@openssh.com', '2'],
  ['hardlink@openssh.com', '1'],
  ['fsync@openssh.com', '1'],
  ['lsetstat@openssh.com', '1'],
  ['limits@openssh.com', '1'],
  ['expand-path@openssh.com', '1'],
  ['copy-data', '1'],
  ['home-directory', '1'],
  ['users-groups-by-id@openssh.com', '1'],
];

/** Requests waiting to start before the input is paused, by number and by bytes held. */
const MAX_QUEUED_REQUESTS = 128;
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/**
 * Input held for the end of the tick at most (see receive): more than a read of tsshd's socket
 * brings (256 KiB, in a channel packet per chunk).
 */
const DEFERRED_INPUT = 512 * 1024;
/** Names per READDIR reply, as OpenSSH's sftp-server (well under the packet limit). */
const READDIR_BATCH = 100;
/** IDs per users-groups-by-id@openssh.com request, each one a lookup. */
const MAX_ID_LOOKUPS = 1024;
const COPY_CHUNK = 64 * 1024;
/**
 * Consecutive READs of one regular file at adjacent offsets, queued together, are read with one
 * preadv(2) of at most this many bytes, straight into their replies: one system call and, in the
 * thread pool, one hand-off and one wake-up for up to seven of the 32 KiB reads clients such as
 * the ssh2 package send, whose replies then go out in one write. Consecutive WRITEs are written
 * the same way, with one pwritev(2) of at most as many bytes: the requests of one read of the
 * input are queued before any is started (receive() leaves the scheduling to the end of the
 * tick), so an upload's 32 KiB WRITEs arrive together.
 */
const MAX_READ_BATCH = MAX_READ_LENGTH;
const MAX_WRITE_BATCH = MAX_READ_LENGTH;
/** Sizes of the reused DATA reply buffers (before the header): a READ takes the smallest that fits. */
const DATA_BUFFER_CLASSES = [32 * 1024, 64 * 1024, MAX_READ_LENGTH] as const;

interface FileEntry {
  readonly kind: 'file';
  readonly fd: number;
  readonly path: Buffer;
  readonly append: boolean;
  readonly readable: boolean;
  readonly writable: boolean;
  /** The file's identity (device and inode): two handles to one file order their I/O together. */
  readonly key: string;
  /** A regular file: a READ is filled up to its length or EOF (§6.4); a device or FIFO may give less. */
  readonly regular: boolean;
}

interface DirEntry {
  readonly kind: 'dir';
  readonly dir: fs.Dir;
  readonly path: Buffer;
  /** Releases what `path` refers to (a confined directory's descriptor). */
  readonly release: () => void;
  /** '.' and '..' come first, as readdir(3) gives them to OpenSSH's server (fs.opendir omits them). */
  dotsSent: boolean;
  finished: boolean;
}

type HandleEntry = FileEntry | DirEntry;

/** A READ or WRITE, decoded on arrival so the scheduler knows which bytes it touches. */
interface IoRequest {
  readonly write: boolean;
  readonly handle: Buffer;
  readonly offset: bigint;
  /** READ: bytes asked for, clamped. WRITE: the data's length. */
  readonly length: number;
  readonly data: Buffer | undefined;
}

interface Request {
  /** Arrival order: replies are sent in it. */
  readonly seq: number;
  readonly type: number;
  readonly id: number;
  readonly frame: Buffer;
  /** Set for READ and WRITE; everything else is a barrier. Undefined if malformed (then a barrier). */
  readonly io: IoRequest | undefined;
}

/** The bytes of one file an in-flight READ or WRITE touches. */
interface Span {
  readonly key: string;
  readonly start: bigint;
  readonly end: bigint;
  readonly write: boolean;
  readonly append: boolean;
}

function spansConflict(a: Span, b: Span): boolean {
  if (a.key !== b.key) return false;
  if (!a.write && !b.write) return false;
  // An append writes wherever the end of the file is at that moment: it overlaps everything.
  if (a.append || b.append) return true;
  if (a.write && b.write) return a.start < b.end && b.start < a.end;
  // A READ and a WRITE. The WRITE may also move the end of the file, which a READ that reaches it
  // sees (it gets fewer bytes, or EOF): only a WRITE that ends at or before the READ's first byte
  // can change nothing the READ returns, whichever runs first.
  const [read, write] = a.write ? [b, a] : [a, b];
  return read.start < write.end;
}

export class SftpServer extends EventEmitter {
  private readonly framer = new PacketFramer(MAX_PACKET_LENGTH);
  private readonly queue: Request[] = [];
  private queuedBytes = 0;
  private readonly active = new Set<Span>();
  /**
   * Started requests whose reply has not been sent, by arrival order: what each counts toward
   * `startedBytes`, and its reply once it has one.
   */
  private readonly started = new Map<number, { readonly weight: number; reply?: Buffer }>();
  /** Requests started and not yet finished. */
  private running = 0;
  /** Bytes of the READs and WRITEs started and not yet answered (see `concurrency`). */
  private startedBytes = 0;
  private nextSeq = 0;
  /** The earliest request whose reply has not been sent. */
  private nextToSend = 0;
  private barrierRunning = false;
  private readonly idleWaiters: (() => void)[] = [];
  private outputBlocked = false;
  private initialized = false;
  private inputEnded = false;
  private stopped = false;
  private readonly handles = new Map<number, HandleEntry>();
  private nextHandle = 1;
  private readonly cwd: Buffer;
  private readonly cwdPrefix: Buffer;
  private readonly home: string;
  private readonly paths: PathResolver;
  private readonly readOnly: boolean;
  private readonly maxOpenHandles: number;
  private readonly concurrency: number;
  private readonly names: NameService;
  private readonly log: (line: string) => void;
  private readonly endOutput: boolean;
  private readonly syncFileIo: boolean;
  private readonly reuseDataBuffers: boolean;
  /**
   * Replies go out together: the output is corked from the first reply until the event loop's
   * check phase (setImmediate), not just the next tick. The file calls the in-process server hands
   * to libuv's thread pool complete one callback each, and a poll phase runs many of them; with
   * an uncork per tick, each 32 KiB WRITE's STATUS left in a socket write of its own.
   */
  private outputCorked = false;
  private readonly uncorkOutput = (): void => {
    this.outputCorked = false;
    this.output.uncork();
  };
  /**
   * With reuseDataBuffers: buffers for DATA replies that the output is done with, by size class
   * (DATA_BUFFER_CLASSES), at most what `concurrency` lets be in flight. A fresh 255 KiB buffer
   * per READ costs page faults and cache misses, about three times the CPU of the read(2) itself
   * on a file in the page cache; a reused one stays in the cache.
   */
  private readonly freeDataBuffers = new Map<number, Buffer[]>();
  /** Data buffers lent to replies, by their memory, so that send() knows which to take back. */
  private readonly lentDataBuffers = new Map<ArrayBufferLike, Buffer>();
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onEnd = (): void => {
    this.inputEnded = true;
    this.pump();
  };
  private readonly onDrain = (): void => {
    this.outputBlocked = false;
    this.pump();
  };

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    options: SftpServerOptions,
  ) {
    super();
    this.cwd = Buffer.from(options.cwd);
    this.cwdPrefix = options.cwd.endsWith('/') ? this.cwd : Buffer.concat([this.cwd, Buffer.from('/')]);
    this.home = options.home ?? options.cwd;
    this.paths = options.root !== undefined ? confinedPaths(options.root) : hostPaths();
    this.readOnly = options.readOnly ?? false;
    this.maxOpenHandles = Math.min(options.maxOpenHandles ?? MAX_OPEN_HANDLES, MAX_OPEN_HANDLES);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.names = options.names ?? getentNames();
    this.log = options.log ?? (() => {});
    this.endOutput = options.endOutput ?? true;
    this.syncFileIo = options.syncFileIo ?? false;
    this.reuseDataBuffers = options.reuseDataBuffers ?? false;
    input.on('data', this.onData);
    input.once('end', this.onEnd);
    // A stream torn down without an end (the channel vanished) ends the session just the same.
    input.once('close', this.onEnd);
    input.on('error', (error: Error) => this.fail(error));
    output.on('drain', this.onDrain);
    output.on('error', (error: Error) => this.fail(error));
  }

  /** Stops at once: pending requests are dropped and every handle is closed. */
  destroy(error?: Error): void {
    this.fail(error ?? new Error('SFTP server stopped'), false);
  }

  // -------------------------------------------------------------------------------------------
  // Input, queue and scheduling

  /**
   * Takes bytes from the client. The server reads its input's 'data' events itself; an input read
   * with net's `onread` has none, and its owner hands each read here instead. A chunk must stay
   * unchanged until its requests are answered (frames are views of it).
   */
  receive(chunk: Buffer): void {
    if (this.stopped) return;
    this.framer.push(chunk);
    // Once per tick: the chunks of one read of the input (a channel's packets arrive one by one)
    // are framed and queued together, so that adjacent READs and WRITEs can be batched. Framed at
    // once, as each arrives, when the queue could be full with them (each chunk counted as a
    // request at least) or past DEFERRED_INPUT bytes: pump() then pauses the input as soon as
    // before, when the queue fills, and not a tick's worth of chunks later.
    if (this.queue.length + ++this.deferredChunks >= MAX_QUEUED_REQUESTS || this.framer.bufferedLength > DEFERRED_INPUT) {
      this.pump();
      return;
    }
    if (this.pumpDue) return;
    this.pumpDue = true;
    process.nextTick(this.duePump);
  }

  private pumpDue = false;
  /** Chunks received since the last pump(). */
  private deferredChunks = 0;
  private readonly duePump = (): void => {
    this.pumpDue = false;
    this.pump();
  };

  /** Takes whole packets off the framer while there is room, starts what may start, pauses or resumes. */
  private pump(): void {
    if (this.stopped) return;
    this.deferredChunks = 0;
    try {
      while (this.queue.length < MAX_QUEUED_REQUESTS && this.queuedBytes < MAX_QUEUED_BYTES) {
        const frame = this.framer.next();
        if (!frame) break;
        this.accept(frame);
        if (this.stopped) return;
      }
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    this.schedule();
    const full = this.queue.length >= MAX_QUEUED_REQUESTS || this.queuedBytes >= MAX_QUEUED_BYTES;
    if (full && !this.input.isPaused()) this.input.pause();
    else if (!full && this.input.isPaused() && !this.inputEnded) this.input.resume();
    if (this.inputEnded && this.queue.length === 0 && this.started.size === 0) void this.finish(0, undefined);
  }

  private accept(frame: Buffer): void {
    const type = frame[0]!;
    if (!this.initialized) {
      // §4: the client's first packet is INIT; it carries a version instead of an id.
      if (type !== FXP.INIT) throw new ProtocolError(`${packetTypeName(type)} before SSH_FXP_INIT`);
      const reader = frameReader(frame, 'SSH_FXP_INIT');
      reader.uint32(); // the client's version: we answer 3 whatever it is, as OpenSSH does
      this.initialized = true;
      this.send(versionPacket(EXTENSIONS));
      return;
    }
    if (type === FXP.INIT) throw new ProtocolError('a second SSH_FXP_INIT');
    if (frame.length < 5) throw new ProtocolError(`${packetTypeName(type)} without a request id`);
    const id = frame.readUInt32BE(1);
    let io: IoRequest | undefined;
    if (type === FXP.READ || type === FXP.WRITE) {
      try {
        io = decodeIo(type, frame);
      } catch {
        io = undefined; // malformed: runs as a barrier and is answered BAD_MESSAGE
      }
    }
    this.queue.push({ seq: this.nextSeq++, type, id, frame, io });
    this.queuedBytes += frame.length;
  }

  /** Starts every queued request the ordering rules allow, in arrival order. */
  private schedule(): void {
    // Spans of requests not yet started also block later ones that conflict with them.
    const blocking: Span[] = [...this.active];
    let i = 0;
    while (i < this.queue.length && !this.outputBlocked && !this.barrierRunning && !this.stopped) {
      const request = this.queue[i]!;
      if (!request.io) {
        if (i !== 0 || this.running !== 0) break;
        this.dequeue(0);
        this.barrierRunning = true;
        this.run(request, undefined);
        break;
      }
      // Started-but-unsent requests are capped, except the earliest unsent one: everything before
      // it has finished, so nothing can block it, and the replies held behind it can then go.
      if (!this.roomFor(request.io) && request.seq !== this.nextToSend) break;
      // Every earlier barrier has finished, so the handle table is as a serial server would see it.
      const span = this.spanOf(request.io);
      if (span && blocking.some((b) => spansConflict(b, span))) {
        blocking.push(span);
        i++;
        continue;
      }
      this.dequeue(i);
      if (span) {
        this.active.add(span);
        blocking.push(span);
      }
      const batch = span ? this.batch(request, span, i, blocking) : undefined;
      if (!batch) this.run(request, span);
      else if (span!.write) this.runWriteBatch(batch);
      else this.runReadBatch(batch);
    }
  }

  /**
   * A READ or WRITE waits for room for a request of the largest size: short ones then start in
   * batches as earlier ones are answered (batch), rather than one by one as each reply frees
   * room for one more.
   */
  private roomFor(io: IoRequest): boolean {
    return this.startedBytes + Math.max(io.length, MAX_READ_LENGTH) <= this.concurrency * MAX_READ_LENGTH;
  }

  /**
   * The requests of `first`'s kind (READ or WRITE) queued from `index` on that continue it in its
   * file (same handle, each at the end of the one before, up to MAX_READ_BATCH or MAX_WRITE_BATCH
   * bytes, with room under `concurrency`, conflicting with nothing running or waiting), taken off
   * the queue with `first` in front; undefined when there are none. Only for a regular file (a
   * device or a FIFO reads what it has) and not through an append handle.
   */
  private batch(first: Request, span: Span, index: number, blocking: Span[]): { requests: Request[]; spans: Span[] } | undefined {
    const entry = this.lookup(first.io!.handle);
    if (entry?.kind !== 'file' || !entry.regular || span.end > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    // An append handle writes at the end whatever the offsets say: its WRITEs go one by one.
    if (span.append || (span.write && !first.io!.data)) return undefined;
    const type = span.write ? FXP.WRITE : FXP.READ;
    const limit = span.write ? MAX_WRITE_BATCH : MAX_READ_BATCH;
    const requests = [first];
    const spans = [span];
    let end = span.end;
    let bytes = first.io!.length;
    let startedBytes = this.startedBytes + bytes;
    while (index < this.queue.length) {
      const next = this.queue[index]!;
      const io = next.io;
      if (next.type !== type || !io || io.offset !== end || !io.handle.equals(first.io!.handle) || (span.write && !io.data)) break;
      if (bytes + io.length > limit || startedBytes + io.length > this.concurrency * MAX_READ_LENGTH) break;
      if (end + BigInt(io.length) > BigInt(Number.MAX_SAFE_INTEGER)) break;
      const nextSpan = this.spanOf(io)!;
      if (blocking.some((b) => spansConflict(b, nextSpan))) break;
      this.dequeue(index);
      this.active.add(nextSpan);
      blocking.push(nextSpan);
      requests.push(next);
      spans.push(nextSpan);
      end = nextSpan.end;
      bytes += io.length;
      startedBytes += io.length;
    }
    return requests.length > 1 ? { requests, spans } : undefined;
  }

  /**
   * One preadv(2) for a batch of adjacent READs, each into its own reply. A READ it filled is
   * answered from it; one it did not fill (the file ended, or changed) is read again on its own,
   * so each answer is what a READ served alone would give.
   */
  private runReadBatch({ requests, spans }: { requests: Request[]; spans: Span[] }): void {
    const entry = this.lookup(requests[0]!.io!.handle) as FileEntry;
    const packets = requests.map((request) => this.borrowDataBuffer(request.io!.length));
    const views = requests.map((request, k) => packets[k]!.subarray(DATA_HEADER_LENGTH, DATA_HEADER_LENGTH + request.io!.length));
    const done = this.vectored('read', entry.fd, views, Number(requests[0]!.io!.offset));
    let before = 0;
    requests.forEach((request, k) => {
      const io = request.io!;
      const packet = packets[k]!;
      const start = before;
      before += io.length;
      const reply = done.then(
        (n) => {
          if (n - start >= io.length) return finishDataPacket(packet, request.id, io.length);
          this.returnDataBuffer(packet);
          return this.read(request.id, io);
        },
        (error: unknown) => {
          this.returnDataBuffer(packet);
          throw error;
        },
      );
      this.run(request, spans[k], reply);
    });
  }

  /**
   * One pwritev(2) for a batch of adjacent WRITEs. A WRITE it wrote whole is answered OK; one it
   * did not reach (a short write: a full disk, say) is written again on its own, which rewrites
   * the same bytes at the same place and reports what a WRITE served alone would.
   */
  private runWriteBatch({ requests, spans }: { requests: Request[]; spans: Span[] }): void {
    const entry = this.lookup(requests[0]!.io!.handle) as FileEntry;
    const buffers = requests.map((request) => request.io!.data!);
    const done = this.vectored('write', entry.fd, buffers, Number(requests[0]!.io!.offset));
    let before = 0;
    requests.forEach((request, k) => {
      const io = request.io!;
      const start = before;
      before += io.length;
      const reply = done.then((n) => (n - start >= io.length ? statusPacket(request.id, FX.OK) : this.write(request.id, io)));
      this.run(request, spans[k], reply);
    });
  }

  /**
   * One preadv(2) or pwritev(2) of a batch, synchronously (the child) or through the thread pool;
   * resolves with the bytes moved.
   */
  private vectored(kind: 'read' | 'write', fd: number, buffers: Buffer[], position: number): Promise<number> {
    try {
      if (this.syncFileIo) return Promise.resolve(kind === 'read' ? fs.readvSync(fd, buffers, position) : fs.writevSync(fd, buffers, position));
      return fdCall<number>((cb) => (kind === 'read' ? fs.readv(fd, buffers, position, cb) : fs.writev(fd, buffers, position, cb)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private dequeue(index: number): void {
    const [request] = this.queue.splice(index, 1);
    this.queuedBytes -= request!.frame.length;
  }

  private spanOf(io: IoRequest): Span | undefined {
    const entry = this.lookup(io.handle);
    if (!entry || entry.kind !== 'file') return undefined;
    const append = io.write && entry.append;
    return { key: entry.key, start: io.offset, end: io.offset + BigInt(io.length), write: io.write, append };
  }

  /** Starts `request`, whose reply is `given` when the caller already started the work (a batch). */
  private run(request: Request, span: Span | undefined, given?: Promise<Buffer>): void {
    this.running++;
    const entry: { readonly weight: number; reply?: Buffer } = { weight: request.io?.length ?? 0 };
    this.started.set(request.seq, entry);
    this.startedBytes += entry.weight;
    let reply: Promise<Buffer>;
    if (given) reply = given;
    else {
      try {
        reply = this.dispatch(request);
      } catch (error) {
        reply = Promise.reject(error);
      }
    }
    reply
      .catch((error: unknown) => {
        const { status, message } = statusFromError(error);
        return statusPacket(request.id, status, message);
      })
      .then((packet) => {
        this.running--;
        if (this.running === 0) for (const wake of this.idleWaiters.splice(0)) wake();
        if (span) this.active.delete(span);
        if (!request.io) this.barrierRunning = false;
        if (this.stopped) return;
        entry.reply = packet;
        // Send every reply that no earlier one is still waiting for.
        for (let ready = this.started.get(this.nextToSend); ready?.reply !== undefined; ready = this.started.get(this.nextToSend)) {
          this.startedBytes -= ready.weight;
          this.started.delete(this.nextToSend++);
          this.send(ready.reply);
        }
        this.pump();
      });
  }

  private send(packet: Buffer): void {
    if (this.stopped) return;
    if (!this.outputCorked) {
      this.outputCorked = true;
      this.output.cork();
      setImmediate(this.uncorkOutput);
    }
    const lent = this.lentDataBuffers.get(packet.buffer);
    // A DATA reply's buffer is reused once the output has written it (a socket) or sealed it (a
    // channel: ChannelStream calls back once the transport has encrypted or copied the bytes).
    const written = lent ? this.output.write(packet, (error) => error || this.returnDataBuffer(lent)) : this.output.write(packet);
    if (!written) this.outputBlocked = true;
  }

  private borrowDataBuffer(length: number): Buffer {
    if (!this.reuseDataBuffers) return Buffer.allocUnsafe(DATA_HEADER_LENGTH + length);
    const size = DATA_BUFFER_CLASSES.find((c) => c >= length) ?? MAX_READ_LENGTH;
    const buffer = this.freeDataBuffers.get(size)?.pop() ?? Buffer.allocUnsafeSlow(DATA_HEADER_LENGTH + size);
    this.lentDataBuffers.set(buffer.buffer, buffer);
    return buffer;
  }

  private returnDataBuffer(buffer: Buffer): void {
    if (!this.lentDataBuffers.delete(buffer.buffer) || this.stopped) return;
    const size = buffer.length - DATA_HEADER_LENGTH;
    let free = this.freeDataBuffers.get(size);
    if (!free) this.freeDataBuffers.set(size, (free = []));
    // As many as can be in flight at once under `concurrency`.
    if (free.length < Math.ceil((this.concurrency * MAX_READ_LENGTH) / size)) free.push(buffer);
  }

  private fail(error: Error, log = true): void {
    if (this.stopped) return;
    if (log) this.log(`sftp: ${error.message}`);
    void this.finish(1, error);
  }

  private async finish(code: number, error: Error | undefined): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.length = 0;
    this.freeDataBuffers.clear();
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    this.output.off('drain', this.onDrain);
    // Requests still running hold descriptors: closing those now could let a late read or write
    // land on a descriptor number the process has since reused (tsshd's own, in process). Wait
    // for them, a while at most (a FIFO can block a read for ever).
    if (this.running > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const entries = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(entries.map((entry) => closeEntry(entry).catch(() => {})));
    if (this.endOutput && !this.output.destroyed && !this.output.writableEnded) this.output.end();
    this.emit('done', code, error);
  }

  // -------------------------------------------------------------------------------------------
  // Handles

  private lookup(handle: Buffer): HandleEntry | undefined {
    if (handle.length !== 4) return undefined;
    return this.handles.get(handle.readUInt32BE(0));
  }

  /** The open file a handle names; FAILURE otherwise, OpenSSH's answer (NO_SUCH_FILE for fsync). */
  private file(handle: Buffer, invalid: FxStatus = FX.FAILURE): FileEntry {
    const entry = this.lookup(handle);
    if (!entry || entry.kind !== 'file') throw new SftpStatusError(invalid, 'Invalid file handle');
    return entry;
  }

  private directory(handle: Buffer): DirEntry {
    const entry = this.lookup(handle);
    if (!entry || entry.kind !== 'dir') throw new SftpStatusError(FX.FAILURE, 'Invalid directory handle');
    return entry;
  }

  private roomForHandle(): void {
    if (this.handles.size >= this.maxOpenHandles) {
      throw new SftpStatusError(FX.FAILURE, `Too many open handles (at most ${this.maxOpenHandles})`);
    }
  }

  /** A fresh handle: 4 bytes naming a table slot, never reused within a session (until 2^32). */
  private register(entry: HandleEntry): Buffer {
    let slot = this.nextHandle;
    while (this.handles.has(slot)) slot = (slot + 1) >>> 0 || 1;
    this.nextHandle = (slot + 1) >>> 0 || 1;
    this.handles.set(slot, entry);
    const handle = Buffer.allocUnsafe(4);
    handle.writeUInt32BE(slot, 0);
    return handle;
  }

  // -------------------------------------------------------------------------------------------
  // Paths (§6.2): relative to the session's working folder; names are bytes, not text.

  private path(reader: Reader): Buffer {
    const raw = reader.string();
    // A NUL cannot be in a Unix path; OpenSSH's server refuses such a string as malformed.
    if (raw.includes(0)) throw new ProtocolError('path with a NUL byte');
    if (raw.length === 0) return this.cwd;
    if (raw[0] === 0x2f) return raw;
    return Buffer.concat([this.cwdPrefix, raw]);
  }

  private writable(): void {
    if (this.readOnly) throw new SftpStatusError(FX.PERMISSION_DENIED, 'Read-only session');
  }

  /**
   * REALPATH (§6.11) as OpenSSH's sftp_realpath(): symbolic links and `..` resolved; the last
   * component may be missing (a name about to be created), no earlier one may.
   */
  private canonical(path: Buffer): Promise<Buffer> {
    return this.paths.canonical(path);
  }

  /** Runs `operation` on the path as the file system sees it (confined or not), then releases it. */
  private async at<T>(path: Buffer, mode: ResolveMode, operation: (resolved: ResolvedPath) => Promise<T>): Promise<T> {
    const resolved = await this.paths.resolve(path, mode);
    try {
      return await operation(resolved);
    } finally {
      resolved.release();
    }
  }

  private async tildeExpand(path: Buffer): Promise<Buffer> {
    if (path[0] !== 0x7e) return path; // '~'
    const slash = path.indexOf(0x2f);
    const user = path.subarray(1, slash < 0 ? path.length : slash).toString('utf8');
    const rest = slash < 0 ? EMPTY : path.subarray(slash);
    const home = user === '' ? this.home : await this.names.homeOf(user);
    if (home === undefined) throw new SftpStatusError(FX.NO_SUCH_FILE, `No such user ${user}`);
    return Buffer.concat([Buffer.from(home), rest]);
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  private dispatch(request: Request): Promise<Buffer> {
    const { id, type, frame } = request;
    const reader = frameReader(frame, packetTypeName(type));
    reader.uint32(); // id
    switch (type) {
      case FXP.OPEN:
        return this.open(id, reader);
      case FXP.CLOSE:
        return this.close(id, reader);
      case FXP.READ:
        return this.read(id, request.io);
      case FXP.WRITE:
        return this.write(id, request.io);
      case FXP.LSTAT:
        return this.stat(id, reader, 'nofollow', fsp.lstat);
      case FXP.STAT:
        return this.stat(id, reader, 'follow', fsp.stat);
      case FXP.FSTAT:
        return this.fstat(id, reader);
      case FXP.SETSTAT:
        return this.setstat(id, reader, false);
      case FXP.FSETSTAT:
        return this.fsetstat(id, reader);
      case FXP.OPENDIR:
        return this.opendir(id, reader);
      case FXP.READDIR:
        return this.readdir(id, reader);
      case FXP.REMOVE:
        return this.simple(id, reader, true, (r) => this.at(this.path(r), 'nofollow', (p) => fsp.unlink(p.path)));
      case FXP.MKDIR:
        return this.simple(id, reader, true, (r) => {
          const path = this.path(r);
          const attrs = decodeAttrs(r);
          return this.at(path, 'nofollow', (p) => fsp.mkdir(p.path, { mode: attrs.permissions !== undefined ? attrs.permissions & 0o7777 : 0o777 }));
        });
      case FXP.RMDIR:
        return this.simple(id, reader, true, (r) => this.at(this.path(r), 'nofollow', (p) => fsp.rmdir(p.path)));
      case FXP.REALPATH:
        return this.realpath(id, reader);
      case FXP.RENAME:
        return this.simple(id, reader, true, (r) => {
          const from = this.path(r);
          const to = this.path(r);
          return this.at(from, 'nofollow', (f) => this.at(to, 'nofollow', (t) => renameNoReplace(f.path, t.path)));
        });
      case FXP.READLINK:
        return this.readlink(id, reader);
      case FXP.SYMLINK:
        // OpenSSH's order (PROTOCOL §4.1), the reverse of §6.10: the target first, then the link.
        // The target is stored as given; only the link's own path is relative to the session.
        return this.simple(id, reader, true, (r) => {
          const target = r.string();
          if (target.includes(0)) throw new ProtocolError('symlink target with a NUL byte');
          return this.at(this.path(r), 'nofollow', (p) => fsp.symlink(target, p.path));
        });
      case FXP.EXTENDED:
        return this.extended(id, reader);
      default:
        return Promise.resolve(statusPacket(id, FX.OP_UNSUPPORTED, `Unsupported request ${packetTypeName(type)}`));
    }
  }

  /** A request answered with SSH_FX_OK once `operation` succeeds. */
  private async simple(id: number, reader: Reader, changes: boolean, operation: (reader: Reader) => Promise<unknown>): Promise<Buffer> {
    if (changes) this.writable();
    await operation(reader);
    return statusPacket(id, FX.OK);
  }

  /** §6.3: pflags to open(2) flags, attrs.permissions as the mode of a created file. */
  private async open(id: number, reader: Reader): Promise<Buffer> {
    const path = this.path(reader);
    const pflags = reader.uint32();
    const attrs = decodeAttrs(reader);
    const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_CREAT, O_TRUNC, O_EXCL } = fs.constants;
    const readable = (pflags & FXF.READ) !== 0 || (pflags & FXF.WRITE) === 0;
    const writable = (pflags & FXF.WRITE) !== 0;
    let flags = readable && writable ? O_RDWR : writable ? O_WRONLY : O_RDONLY;
    if (pflags & FXF.APPEND) flags |= O_APPEND;
    if (pflags & FXF.CREAT) flags |= O_CREAT;
    if (pflags & FXF.TRUNC) flags |= O_TRUNC;
    if (pflags & FXF.EXCL) flags |= O_EXCL;
    if (writable || (pflags & (FXF.APPEND | FXF.CREAT | FXF.TRUNC)) !== 0) this.writable();
    this.roomForHandle();
    const mode = attrs.permissions !== undefined ? attrs.permissions & 0o7777 : 0o666;
    // O_EXCL: the final component is not followed (open(2) fails on any existing name).
    const fd = await this.at(path, (flags & O_EXCL) !== 0 ? 'nofollow' : 'create', (p) =>
      // Confined: a name that was missing when resolved must not become a link that is followed.
      fdCall<number>((cb) => fs.open(p.path, flags | (p.missing ? fs.constants.O_NOFOLLOW : 0), mode, cb)),
    );
    let key: string;
    let regular = false;
    try {
      const stats = await fdCall<fs.BigIntStats>((cb) => fs.fstat(fd, { bigint: true }, cb));
      key = `${stats.dev}:${stats.ino}`;
      regular = stats.isFile();
    } catch {
      key = `fd:${fd}:${this.nextHandle}`;
    }
    if (this.stopped) {
      fs.close(fd, () => {});
      throw new SftpStatusError(FX.FAILURE, 'Session ended');
    }
    // Confined, the handle's file is named by its own descriptor (for fstatvfs).
    const handlePath = this.paths.confined ? Buffer.from(`/proc/self/fd/${fd}`) : Buffer.from(path);
    const handle = this.register({ kind: 'file', fd, path: handlePath, append: (pflags & FXF.APPEND) !== 0, readable, writable, key, regular });
    return handlePacket(id, handle);
  }

  private async close(id: number, reader: Reader): Promise<Buffer> {
    const handle = reader.string();
    const entry = this.lookup(handle);
    // NO_SUCH_FILE, as OpenSSH's server answers a CLOSE of a handle it does not have.
    if (!entry) throw new SftpStatusError(FX.NO_SUCH_FILE, 'Invalid handle');
    this.handles.delete(handle.readUInt32BE(0));
    await closeEntry(entry);
    return statusPacket(id, FX.OK);
  }

  /** §6.4: as many bytes as the file has, up to the (clamped) length; EOF when there are none. */
  private async read(id: number, io: IoRequest | undefined): Promise<Buffer> {
    if (!io) throw new ProtocolError('malformed SSH_FXP_READ');
    const entry = this.file(io.handle);
    if (io.offset > BigInt(Number.MAX_SAFE_INTEGER)) return statusPacket(id, FX.EOF);
    // The reply is built around the data: read straight into the packet, after its header.
    const packet = this.borrowDataBuffer(io.length);
    let position = Number(io.offset);
    let filled = 0;
    try {
      while (filled < io.length) {
        const n = this.syncFileIo
          ? fs.readSync(entry.fd, packet, DATA_HEADER_LENGTH + filled, io.length - filled, position)
          : await fdCall<number>((cb) => fs.read(entry.fd, packet, DATA_HEADER_LENGTH + filled, io.length - filled, position, cb));
        if (n === 0) break;
        filled += n;
        position += n;
        if (!entry.regular) break;
      }
    } catch (error) {
      this.returnDataBuffer(packet);
      throw error;
    }
    if (filled === 0) {
      this.returnDataBuffer(packet);
      return statusPacket(id, FX.EOF);
    }
    return finishDataPacket(packet, id, filled);
  }

  private async write(id: number, io: IoRequest | undefined): Promise<Buffer> {
    if (!io || !io.data) throw new ProtocolError('malformed SSH_FXP_WRITE');
    const entry = this.file(io.handle);
    if (io.offset + BigInt(io.length) > BigInt(Number.MAX_SAFE_INTEGER)) throw new SftpStatusError(FX.FAILURE, 'Offset too large');
    const data = io.data;
    let written = 0;
    while (written < data.length) {
      // An append handle writes at the end whatever the offset (O_APPEND), as OpenSSH's server.
      const position = entry.append ? null : Number(io.offset) + written;
      const n = this.syncFileIo
        ? fs.writeSync(entry.fd, data, written, data.length - written, position)
        : await fdCall<number>((cb) => fs.write(entry.fd, data, written, data.length - written, position, cb));
      if (n === 0) throw new SftpStatusError(FX.FAILURE, 'Short write');
      written += n;
    }
    return statusPacket(id, FX.OK);
  }

  private async stat(id: number, reader: Reader, mode: ResolveMode, how: (path: Buffer) => Promise<fs.Stats>): Promise<Buffer> {
    const stats = await this.at(this.path(reader), mode, (p) => how(p.path));
    return attrsPacket(id, attrsFromStats(stats));
  }

  private async fstat(id: number, reader: Reader): Promise<Buffer> {
    const entry = this.file(reader.string());
    const stats = await fdCall<fs.Stats>((cb) => fs.fstat(entry.fd, cb));
    return attrsPacket(id, attrsFromStats(stats));
  }

  /** §6.9, in the order OpenSSH applies them: size, permissions, times, owner. */
  private async setstat(id: number, reader: Reader, noFollow: boolean): Promise<Buffer> {
    const path = this.path(reader);
    const attrs = decodeAttrs(reader);
    this.writable();
    // truncate(2) and chmod(2) always follow a link; times and owner only for SETSTAT.
    const following = <T>(operation: (p: Buffer) => Promise<T>): Promise<T> => this.at(path, 'follow', (r) => operation(r.path));
    const asAsked = <T>(operation: (p: Buffer) => Promise<T>): Promise<T> => this.at(path, noFollow ? 'nofollow' : 'follow', (r) => operation(r.path));
    if (attrs.size !== undefined) await following((p) => fsp.truncate(p, safeNumber(attrs.size!)));
    if (attrs.permissions !== undefined) {
      if (noFollow && (await asAsked((p) => fsp.lstat(p))).isSymbolicLink()) {
        // Linux cannot change a link's own mode (no lchmod), as OpenSSH's server finds too.
        throw new SftpStatusError(FX.OP_UNSUPPORTED, 'Cannot change the permissions of a symbolic link');
      }
      await following((p) => fsp.chmod(p, attrs.permissions! & 0o7777));
    }
    if (attrs.atime !== undefined && attrs.mtime !== undefined) {
      await asAsked((p) => (noFollow ? fsp.lutimes : fsp.utimes)(p, attrs.atime!, attrs.mtime!));
    }
    if (attrs.uid !== undefined && attrs.gid !== undefined) {
      await asAsked((p) => (noFollow ? fsp.lchown : fsp.chown)(p, attrs.uid!, attrs.gid!));
    }
    return statusPacket(id, FX.OK);
  }

  private async fsetstat(id: number, reader: Reader): Promise<Buffer> {
    const entry = this.file(reader.string());
    const attrs = decodeAttrs(reader);
    this.writable();
    const fd = entry.fd;
    if (attrs.size !== undefined) await fdCall<void>((cb) => fs.ftruncate(fd, safeNumber(attrs.size!), cb));
    if (attrs.permissions !== undefined) await fdCall<void>((cb) => fs.fchmod(fd, attrs.permissions! & 0o7777, cb));
    if (attrs.atime !== undefined && attrs.mtime !== undefined) await fdCall<void>((cb) => fs.futimes(fd, attrs.atime!, attrs.mtime!, cb));
    if (attrs.uid !== undefined && attrs.gid !== undefined) await fdCall<void>((cb) => fs.fchown(fd, attrs.uid!, attrs.gid!, cb));
    return statusPacket(id, FX.OK);
  }

  private async opendir(id: number, reader: Reader): Promise<Buffer> {
    const path = this.path(reader);
    this.roomForHandle();
    // Held while the handle is open: confined, its descriptor names the folder for READDIR's lstat.
    const resolved = await this.paths.resolve(path, 'follow');
    let dir: fs.Dir;
    try {
      // Names as bytes (a file name need not be UTF-8): Node accepts 'buffer' here, its types do not.
      dir = await fsp.opendir(resolved.path, { encoding: 'buffer' as string as BufferEncoding, bufferSize: 128 });
    } catch (error) {
      resolved.release();
      throw error;
    }
    if (this.stopped) {
      await dir.close().catch(() => {});
      resolved.release();
      throw new SftpStatusError(FX.FAILURE, 'Session ended');
    }
    const listPath = this.paths.confined ? resolved.path : Buffer.from(path);
    if (!this.paths.confined) resolved.release();
    const release = this.paths.confined ? (): void => resolved.release() : (): void => {};
    return handlePacket(id, this.register({ kind: 'dir', dir, path: listPath, release, dotsSent: false, finished: false }));
  }

  /** §6.7: up to READDIR_BATCH names with lstat attributes and an `ls -l` longname; then EOF. */
  private async readdir(id: number, reader: Reader): Promise<Buffer> {
    const entry = this.directory(reader.string());
    const names: Buffer[] = [];
    if (!entry.dotsSent) {
      entry.dotsSent = true;
      names.push(DOT, DOTDOT);
    }
    while (!entry.finished && names.length < READDIR_BATCH) {
      const dirent = await entry.dir.read();
      if (dirent === null) {
        entry.finished = true;
        break;
      }
      names.push(dirent.name as unknown as Buffer);
    }
    if (names.length === 0) return statusPacket(id, FX.EOF);
    const prefix = entry.path[entry.path.length - 1] === 0x2f ? entry.path : Buffer.concat([entry.path, ROOT]);
    const now = Date.now();
    const listed = await Promise.all(
      names.map(async (name): Promise<NameEntry | undefined> => {
        let stats: fs.Stats;
        try {
          stats = await fsp.lstat(Buffer.concat([prefix, name]));
        } catch {
          return undefined; // gone since it was listed: left out, as OpenSSH's server does
        }
        const [user, group] = await Promise.all([this.names.userName(stats.uid), this.names.groupName(stats.gid)]);
        return { filename: name, longname: longname(name, stats, user, group, now), attrs: attrsFromStats(stats) };
      }),
    );
    const entries = listed.filter((e): e is NameEntry => e !== undefined);
    if (entries.length === 0) return statusPacket(id, entry.finished ? FX.EOF : FX.FAILURE);
    return namePacket(id, entries);
  }

  private async realpath(id: number, reader: Reader): Promise<Buffer> {
    const path = await this.canonical(this.path(reader));
    return oneName(id, path);
  }

  private async readlink(id: number, reader: Reader): Promise<Buffer> {
    const target = await this.at(this.path(reader), 'nofollow', (p) => fsp.readlink(p.path, { encoding: 'buffer' }));
    return oneName(id, target);
  }

  // -------------------------------------------------------------------------------------------
  // §8 and OpenSSH's PROTOCOL §4: SSH_FXP_EXTENDED

  private async extended(id: number, reader: Reader): Promise<Buffer> {
    const name = reader.string().toString('latin1');
    switch (name) {
      case 'posix-rename@openssh.com':
        // PROTOCOL §4.3: rename(2) as POSIX has it, replacing an existing target.
        return this.simple(id, reader, true, (r) => {
          const from = this.path(r);
          const to = this.path(r);
          return this.at(from, 'nofollow', (f) => this.at(to, 'nofollow', (t) => fsp.rename(f.path, t.path)));
        });
      case 'hardlink@openssh.com':
        return this.simple(id, reader, true, (r) => {
          const from = this.path(r);
          const to = this.path(r);
          return this.at(from, 'nofollow', (f) => this.at(to, 'nofollow', (t) => fsp.link(f.path, t.path)));
        });
      case 'statvfs@openssh.com':
        return this.at(this.path(reader), 'follow', (p) => statvfsReply(id, p.path));
      case 'fstatvfs@openssh.com':
        return statvfsReply(id, this.file(reader.string()).path);
      case 'fsync@openssh.com': {
        const entry = this.file(reader.string(), FX.NO_SUCH_FILE);
        await fdCall<void>((cb) => fs.fsync(entry.fd, cb));
        return statusPacket(id, FX.OK);
      }
      case 'lsetstat@openssh.com':
        return this.setstat(id, reader, true);
      case 'limits@openssh.com': {
        // PROTOCOL §4.8: what we enforce, so that OpenSSH's client sizes its requests to it.
        const writer = packetWriter(FXP.EXTENDED_REPLY, 40).uint32(id);
        writer.uint64(BigInt(MAX_PACKET_LENGTH)).uint64(BigInt(MAX_READ_LENGTH)).uint64(BigInt(MAX_WRITE_LENGTH)).uint64(BigInt(this.maxOpenHandles));
        return finishPacket(writer);
      }
      case 'expand-path@openssh.com': {
        // PROTOCOL §4.9: "~", "~/…" and "~user/…" expanded, then canonicalised as REALPATH.
        const raw = reader.string();
        if (raw.includes(0)) throw new ProtocolError('path with a NUL byte');
        const expanded = await this.tildeExpand(raw);
        const path = expanded.length === 0 ? this.cwd : expanded[0] === 0x2f ? expanded : Buffer.concat([this.cwdPrefix, expanded]);
        return oneName(id, await this.canonical(path));
      }
      case 'home-directory': {
        const user = reader.utf8();
        const home = user === '' ? this.home : await this.names.homeOf(user);
        if (home === undefined) throw new SftpStatusError(FX.NO_SUCH_FILE, `No such user ${user}`);
        return oneName(id, Buffer.from(home));
      }
      case 'users-groups-by-id@openssh.com':
        return this.usersGroupsById(id, reader);
      case 'copy-data':
        return this.copyData(id, reader);
      default:
        return statusPacket(id, FX.OP_UNSUPPORTED, `Unsupported extension ${name.slice(0, 64)}`);
    }
  }

  /** PROTOCOL §4.12: names for lists of uids and gids, '' for ones that have none. */
  private async usersGroupsById(id: number, reader: Reader): Promise<Buffer> {
    const uids = idList(reader.string());
    const gids = idList(reader.string());
    if (uids.length + gids.length > MAX_ID_LOOKUPS) throw new SftpStatusError(FX.FAILURE, `At most ${MAX_ID_LOOKUPS} ids per request`);
    const users = await Promise.all(uids.map(async (uid) => (await this.names.userName(uid)) ?? ''));
    const groups = await Promise.all(gids.map(async (gid) => (await this.names.groupName(gid)) ?? ''));
    const pack = (names: string[]): Buffer => {
      const inner = new Writer(16 * names.length);
      for (const n of names) inner.string(n);
      return inner.finish();
    };
    return finishPacket(packetWriter(FXP.EXTENDED_REPLY, 64).uint32(id).string(pack(users)).string(pack(groups)));
  }

  /** PROTOCOL §4.10: copies bytes between two open files on the server, length 0 meaning to EOF. */
  private async copyData(id: number, reader: Reader): Promise<Buffer> {
    const from = this.file(reader.string());
    const readOffset = reader.uint64();
    const length = reader.uint64();
    const to = this.file(reader.string());
    const writeOffset = reader.uint64();
    this.writable();
    if (from === to || !from.readable || !to.writable) throw new SftpStatusError(FX.FAILURE, 'Invalid handles for copy-data');
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    if (readOffset > limit || writeOffset > limit || length > limit) throw new SftpStatusError(FX.FAILURE, 'Offset too large');
    const buffer = Buffer.allocUnsafe(COPY_CHUNK);
    let left = length === 0n ? Infinity : Number(length);
    let readAt = Number(readOffset);
    let writeAt = Number(writeOffset);
    while (left > 0 && !this.stopped) {
      const n = await fdCall<number>((cb) => fs.read(from.fd, buffer, 0, Math.min(COPY_CHUNK, left), readAt, cb));
      if (n === 0) break;
      let done = 0;
      while (done < n) {
        const w = await fdCall<number>((cb) => fs.write(to.fd, buffer, done, n - done, to.append ? null : writeAt + done, cb));
        done += w;
      }
      readAt += n;
      writeAt += n;
      left -= n;
    }
    return statusPacket(id, FX.OK);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const ROOT = Buffer.from('/');
const EMPTY = Buffer.alloc(0);

/** READ: handle, uint64 offset, uint32 len (clamped). WRITE: handle, uint64 offset, string data. */
function decodeIo(type: number, frame: Buffer): IoRequest {
  const reader = frameReader(frame, packetTypeName(type));
  reader.uint32();
  const handle = reader.string();
  if (handle.length > MAX_HANDLE_LENGTH) throw new ProtocolError('handle longer than 256 bytes');
  const offset = reader.uint64();
  if (type === FXP.READ) {
    // A larger read is answered with as much as fits (§6.4 lets a reply be shorter).
    const length = Math.min(reader.uint32(), MAX_READ_LENGTH);
    return { write: false, handle, offset, length, data: undefined };
  }
  const data = reader.string();
  return { write: true, handle, offset, length: data.length, data };
}

function oneName(id: number, path: Buffer): Buffer {
  // §6.10/§6.11: a single name and dummy attributes; OpenSSH repeats the name as the longname.
  return namePacket(id, [{ filename: path, longname: path, attrs: {} }]);
}

function idList(raw: Buffer): number[] {
  if (raw.length % 4 !== 0) throw new ProtocolError('id list whose length is not a multiple of 4');
  const ids: number[] = [];
  for (let i = 0; i < raw.length; i += 4) ids.push(raw.readUInt32BE(i));
  return ids;
}

function safeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new SftpStatusError(FX.FAILURE, 'Size too large');
  return Number(value);
}

function fdCall<T>(start: (callback: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value))));
}

async function closeEntry(entry: HandleEntry): Promise<void> {
  if (entry.kind === 'file') await fdCall<void>((cb) => fs.close(entry.fd, cb));
  else {
    try {
      await entry.dir.close();
    } finally {
      entry.release();
    }
  }
}

/**
 * §6.5: RENAME fails when the new name exists. For a regular file, as OpenSSH's server: link(2)
 * the new name (which fails if it exists, atomically) then unlink the old one; where links are
 * impossible, or for other kinds of file, check and rename.
 */
async function renameNoReplace(from: Buffer, to: Buffer): Promise<void> {
  const stats = await fsp.lstat(from);
  if (stats.isFile()) {
    try {
      await fsp.link(from, to);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw error;
      return checkedRename(from, to);
    }
    try {
      await fsp.unlink(from);
    } catch (error) {
      await fsp.unlink(to).catch(() => {});
      throw error;
    }
    return;
  }
  return checkedRename(from, to);
}

async function checkedRename(from: Buffer, to: Buffer): Promise<void> {
  const exists = await fsp.lstat(to).then(
    () => true,
    (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? false : Promise.reject(error)),
  );
  if (exists) throw new SftpStatusError(FX.FAILURE, 'Target exists');
  await fsp.rename(from, to);
}

/** PROTOCOL §4.4's eleven uint64 values from statfs(2) (Node gives no frsize, favail, fsid, flag or namemax). */
async function statvfsReply(id: number, path: Buffer): Promise<Buffer> {
  const s = await fsp.statfs(path.toString('utf8'), { bigint: true });
  const writer = packetWriter(FXP.EXTENDED_REPLY, 96).uint32(id);
  for (const value of [s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, 0n, 0n, 255n]) writer.uint64(value);
  return finishPacket(writer);
}

// ---------------------------------------------------------------------------------------------
// `ls -l` longnames (§7's recommended format, exactly as OpenSSH's ls_file() prints it)

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strmode(3)'s ten characters: type, then rwx for owner, group and others with s/S/t/T. */
export function modeString(mode: number): string {
  const S_IFMT = 0o170000;
  const types: Record<number, string> = { 0o040000: 'd', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's', 0o100000: '-' };
  const type = types[mode & S_IFMT] ?? '?';
  const bit = (mask: number, c: string): string => (mode & mask ? c : '-');
  const special = (exec: number, flag: number, set: string, unset: string): string =>
    mode & flag ? (mode & exec ? set : unset) : mode & exec ? 'x' : '-';
  return (
    type +
    bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(0o001, 0o1000, 't', 'T')
  );
}

/** "-rw-r--r--    1 alice    staff        348 Mar 25 14:29 name", times in the server's zone. */
export function longname(name: Buffer, stats: fs.Stats, user: string | undefined, group: string | undefined, now: number): Buffer {
  const owner = user ?? String(stats.uid);
  const grp = group ?? String(stats.gid);
  const when = new Date(stats.mtimeMs);
  const day = String(when.getDate()).padStart(2, ' ');
  const recent = now - (365 * 24 * 60 * 60 * 1000) / 2 < stats.mtimeMs && now >= stats.mtimeMs;
  const time = recent
    ? `${MONTHS[when.getMonth()]} ${day} ${String(when.getHours()).padStart(2, '0')}:${String(when.getMinutes()).padStart(2, '0')}`
    : `${MONTHS[when.getMonth()]} ${day}  ${when.getFullYear()}`;
  const text = `${modeString(stats.mode)}  ${String(stats.nlink).padStart(3, ' ')} ${owner.padEnd(8, ' ')} ${grp.padEnd(8, ' ')} ${String(stats.size).padStart(8, ' ')} ${time} `;
  return Buffer.concat([Buffer.from(text), name]);
}

// ---------------------------------------------------------------------------------------------
// Names through NSS

/**
 * uid, gid and home lookups with `getent` (NSS, so LDAP or sssd users are found as ls finds
 * them), each answer cached for the session; the cache is bounded.
 */
export function getentNames(): NameService {
  const cache = new Map<string, Promise<string | undefined>>();
  const lookup = (database: 'passwd' | 'group', key: string, field: number): Promise<string | undefined> => {
    const cacheKey = `${database}:${key}:${field}`;
    const cached = cache.get(cacheKey);
    if (cached) return cached;
    if (cache.size >= 4096) cache.clear();
    const answer = new Promise<string | undefined>((resolve) => {
      execFile('getent', [database, '--', key], { timeout: 5000, encoding: 'utf8' }, (error, stdout) => {
        if (error) return resolve(undefined);
        const fields = stdout.split('\n')[0]!.split(':');
        resolve(fields.length > field && fields[field] !== '' ? fields[field] : undefined);
      });
    });
    cache.set(cacheKey, answer);
    return answer;
  };
  return {
    userName: (uid) => lookup('passwd', String(uid), 0),
    groupName: (gid) => lookup('group', String(gid), 0),
    // A name that could be read as a number or an option is never looked up.
    homeOf: (user) => (/^[A-Za-z_][A-Za-z0-9._@-]*$/.test(user) ? lookup('passwd', user, 5) : Promise.resolve(undefined)),
  };
}
