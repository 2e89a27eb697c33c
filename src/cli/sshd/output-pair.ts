/**
 * A session's standard output as a connected pair of Unix sockets: the child writes into one
 * end, and tsshd reads the other with net's `onread`, into one buffer of its own, sending each
 * read on at once (ChannelStream.writeNow). With `stdio: 'pipe'` Node would read the child's
 * output through a fresh 64 KiB buffer and the stream machinery per read, and it offers no way
 * to give a child's stdio an `onread`; a socket we connect ourselves can have one. Measured on a
 * bulk download: about a seventh less server CPU (see docs/performance.md).
 *
 * Node cannot make a socketpair, so pairs come from a listening socket private to this process,
 * in a folder only our user can enter (named with our PID), one pair at a time so that the
 * connection accepted is the one just made: 0.2 ms of CPU per session, where a listener per pair
 * would cost 0.6 ms. The folder goes when the process exits; one left by a process that was
 * killed is removed by the next tsshd that starts a session. Whoever cannot make a pair (no
 * writable temporary folder) gets `undefined`, and the session falls back to an ordinary pipe.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type OnReadOpts, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'tsshd-output-';

interface Listener {
  readonly server: Server;
  readonly path: string;
}

let listener: Promise<Listener | undefined> | undefined;
/** Who waits for the connection being made (at most one: pairs are made one at a time). */
let waiting: ((socket: Socket) => void) | undefined;
/** The pair being made: the next one starts after it. */
let previous: Promise<unknown> = Promise.resolve();

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove the folders of our user's tsshd processes that no longer run (killed without cleanup). */
function removeStaleFolders(base: string): void {
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^tsshd-output-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || running(pid)) continue;
    const path = join(base, name);
    try {
      if (statSync(path).uid !== process.getuid?.()) continue;
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}

function listen(): Promise<Listener | undefined> {
  listener ??= new Promise<Listener | undefined>((resolve) => {
    const base = tmpdir();
    removeStaleFolders(base);
    let dir: string;
    try {
      dir = mkdtempSync(join(base, `${PREFIX}${process.pid}-`)); // mode 0700
    } catch {
      resolve(undefined);
      return;
    }
    const path = join(dir, 'socket');
    const server = createServer({ pauseOnConnect: true }, (socket) => {
      const take = waiting;
      waiting = undefined;
      if (take) take(socket);
      else socket.destroy();
    });
    server.once('error', () => {
      rmSync(dir, { recursive: true, force: true });
      resolve(undefined);
    });
    server.listen(path, () => {
      server.unref();
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      resolve({ server, path });
    });
  });
  return listener;
}

export interface OutputPair {
  /** Our end: reads land in `onread`. Call resume() to start. */
  readonly reader: Socket;
  /** The child's end: pass it as the child's stdout, then destroy it in this process. */
  readonly writer: Socket;
}

/** A connected pair whose reading end uses `onread`, or undefined when none can be made. */
export function outputPair(onread: OnReadOpts): Promise<OutputPair | undefined> {
  const made = previous.then(async (): Promise<OutputPair | undefined> => {
    const at = await listen();
    if (!at) return undefined;
    const accepted = new Promise<Socket>((resolve) => (waiting = resolve));
    const reader = connect({ path: at.path, onread });
    const connected = await new Promise<boolean>((resolve) => {
      reader.once('connect', () => resolve(true));
      reader.once('error', () => resolve(false));
    });
    if (!connected) {
      waiting = undefined;
      reader.destroy();
      return undefined;
    }
    return { reader, writer: await accepted };
  });
  previous = made.catch(() => undefined);
  return made;
}
