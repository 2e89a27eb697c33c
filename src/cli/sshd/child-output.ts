/**
 * Reading a session's standard output with net's `onread`. A child's stdio pipe comes to us as a
 * Socket that reads through a fresh 64 KiB buffer and the stream machinery per read, and Node
 * offers no `onread` for it; so its handle moves into a Socket made with `onread`, as
 * adoptAcceptedSocket (src/transport-io.ts) does for accepted TCP connections. Every session's
 * output is then read into one buffer of the process, up to 1 MiB at a time (a whole pipe of the
 * spawn helper's, see OUTPUT_PIPE_SIZE), and each read is sent on at once (ChannelStream.writeNow,
 * which seals or copies what it keeps before it returns). Measured on a bulk download: about a
 * seventh less server CPU than the stream path, and 1 MiB reads rather than 256 KiB ones another
 * 7-13 % less (docs/performance.md).
 *
 * This replaced a pair of Unix sockets connected through a listening socket private to tsshd
 * (the child's end as its stdout): the same reads, without the connect and accept, the second
 * Socket and the temporary folder, about 0.2 ms less CPU per session.
 */
import { Socket, type SocketConstructorOpts } from 'node:net';
import type { Readable } from 'node:stream';

/**
 * The size the spawn helper gives a command's stdout pipe (F_SETPIPE_SZ): /proc/sys/fs/pipe-max-size's
 * default, so any user may set it.
 */
export const OUTPUT_PIPE_SIZE = 1024 * 1024;

/**
 * How much one read of a session's stdout can take: a full pipe. Each read is one turn of the event
 * loop and one writev of the packets it makes, which wakes the client once: ssh -> tsshd downloads
 * of 1 GiB, interleaved rounds against 256 KiB reads, took 7-13 % less server CPU per GiB and ran
 * 8-14 % faster (aes128-gcm, chacha20-poly1305, aes128-ctr), and ssh itself, reading larger bursts,
 * 6-15 % less. The buffer is made on the first session's output, once per process.
 */
const READ_SIZE = OUTPUT_PIPE_SIZE;

/** The process's one read buffer for session output (made on first use). */
let shared: Buffer | undefined;

/** The part of a stream handle (libuv's pipe, through Node's StreamBase) this relies on. */
interface StreamHandle {
  readStart(): number;
  readStop(): number;
  reading?: boolean;
}

/**
 * Take over the reading of `stdout`, a child's stdout from `stdio: 'pipe'`, right after spawn()
 * (before the event loop could read from it). `callback` gets each read, `bytes` long at the
 * start of `buffer`, which is reused once it returns; returning false pauses the Socket until
 * resume(). Reads start at once; call resume() too, so that the Socket emits 'end' at EOF.
 *
 * Returns undefined, leaving `stdout` as it was, when this runtime's stream has no handle to
 * take (the caller then reads it as a stream); a test fails if that ever happens on our Node.
 */
export function readChildOutput(stdout: Readable | null, callback: (bytes: number, buffer: Uint8Array) => boolean): Socket | undefined {
  if (!(stdout instanceof Socket)) return undefined;
  const husk = stdout as unknown as { _handle?: Partial<StreamHandle> | null };
  const handle = husk._handle;
  if (!handle || typeof handle.readStart !== 'function' || typeof handle.readStop !== 'function') return undefined;
  // Node started reading when it made the Socket; nothing was read yet (no turn of the event loop).
  handle.readStop();
  handle.reading = false;
  husk._handle = null;
  stdout.destroy(); // closes nothing: the handle is ours now
  return onreadSocket({ handle }, callback);
}

/**
 * A Socket reading `fd` (a pipe of ours, non-blocking) with onread into the same shared buffer,
 * for output that does not come through child_process (spawn-helper.ts). Call resume() for 'end'.
 */
export function readOutputFd(fd: number, callback: (bytes: number, buffer: Uint8Array) => boolean): Socket {
  return onreadSocket({ fd }, callback);
}

/** A read-only Socket over a handle or a descriptor, reading with onread into the shared buffer. */
function onreadSocket(source: { handle: unknown } | { fd: number }, callback: (bytes: number, buffer: Uint8Array) => boolean): Socket {
  shared ??= Buffer.allocUnsafeSlow(READ_SIZE);
  const options = { ...source, readable: true, writable: false, onread: { buffer: shared, callback } };
  return new Socket(options as SocketConstructorOpts);
}
