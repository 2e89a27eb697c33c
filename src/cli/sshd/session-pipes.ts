/**
 * A real pipe for a command's standard error, as sshd gives it. Node's `stdio: 'pipe'` hands a
 * child Unix sockets (libuv makes socket pairs), and a socket cannot be opened by name: in such a
 * session `echo message > /dev/stderr`, the usual way for a script to report an error, fails with
 * "No such device or address".
 *
 * Node cannot make an anonymous pipe, but it can open a named one. tsshd keeps a stock of FIFOs,
 * made by mkfifo(1) in a folder only it can enter (named with its PID; in memory where it can, see
 * fifoBase), and turns each into one pipe: both ends are opened, then the name is removed at once.
 * So no process can ever join that pipe again: a FIFO used twice by name would connect a new
 * session to whatever an old session left holding the old one. The child's end is opened in
 * blocking mode, as programs expect; ours is non-blocking, for the event loop. The stock is
 * refilled in the background, and a session that finds it empty, or a system without mkfifo, gets
 * a socket as before.
 *
 * Standard input and output stay sockets, for speed. A pipe holds 64 KiB: feeding a command
 * through one cost an upload 30 % of its speed (ssh -> tsshd, 646 -> 440 MB/s), and reading its
 * output through one made a download's packets smaller (the ssh client's CPU per GiB 0.72 -> 0.94,
 * tsshd's 1.95 -> 2.14, 6 interleaved rounds). So `/dev/stdout` and `/dev/stdin` still cannot be
 * opened by name in a session without a terminal (the streams themselves work as usual).
 *
 * The folder goes when the process exits; one left by a tsshd that was killed is removed by the
 * next one that makes its folder.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, fchownSync, mkdtempSync, openSync, readdirSync, rmSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'tsshd-pipes-';
/**
 * FIFOs made at a time, one per session; more are made when fewer than LOW_WATER are left. Making
 * them means spawning mkfifo, a fork of tsshd (about 1 ms of CPU, and the event loop waits for the
 * exec): one per 256 sessions.
 */
const BATCH = 256;
const LOW_WATER = 64;

/** The folder, undefined before first use, null once FIFOs turned out impossible here. */
let folder: string | undefined | null;
const stock: string[] = [];
let refilling = false;
let made = 0;

/** The standard error pipe of one session: the child's end for spawn's stdio, and ours. */
export interface SessionPipe {
  /** The write end, blocking. Close it here once spawn returned. */
  readonly child: number;
  /** Where we read the command's errors (non-blocking). */
  readonly ours: number;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** statfs(2)'s f_type for tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;
const SHM = '/dev/shm';

/**
 * Where the folder goes: TMPDIR when it is set, else /dev/shm when it is a tmpfs, else the system's
 * temporary folder. In memory, making a FIFO and removing it touch no disk: on ext4, /tmp here,
 * mkfifo spent about 0.2 ms of CPU per FIFO in the file system's inode allocator (50-60 ms for
 * 256, against 7-8 ms on tmpfs), and every name made and removed went through the journal.
 */
export function fifoBase(): string {
  if (process.env.TMPDIR) return tmpdir();
  try {
    if (statfsSync(SHM).type === TMPFS_MAGIC) return SHM;
  } catch {
    // No /dev/shm here.
  }
  return tmpdir();
}

function makeFolder(): string | null {
  const base = fifoBase();
  let names: string[] = [];
  try {
    names = readdirSync(base);
  } catch {
    // Nothing to clean here.
  }
  for (const name of names) {
    const pid = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (!pid || pid === process.pid || running(pid)) continue;
    const path = join(base, name);
    try {
      if (statSync(path).uid === process.getuid?.()) rmSync(path, { recursive: true, force: true });
    } catch {
      // Not ours to clean, or gone already.
    }
  }
  try {
    const dir = mkdtempSync(join(base, `${PREFIX}${process.pid}-`)); // mode 0700
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  } catch {
    return null;
  }
}

function refill(): void {
  if (refilling) return;
  folder ??= makeFolder();
  const dir = folder;
  if (dir === null) return;
  refilling = true;
  const names = Array.from({ length: BATCH }, () => join(dir, String(made++)));
  const child = spawn('mkfifo', ['-m', '600', '--', ...names], { stdio: 'ignore' });
  child.once('error', () => {
    folder = null; // no mkfifo: sockets from now on
  });
  child.once('close', (code) => {
    refilling = false;
    if (code === 0) stock.push(...names);
    else folder = null;
  });
}

/** Make the stock of FIFOs now, so that the first sessions find some. */
export function prepareStderrPipes(): void {
  refill();
}

/**
 * A pipe for a session's standard error, or undefined when none is ready (use `stdio: 'pipe'`).
 * `owner`: the user the command runs as, when not ours; the FIFO becomes theirs, since reopening it
 * through /proc/self/fd (which is what /dev/stderr is) checks its owner and mode (0600).
 */
export function takeStderrPipe(owner?: { readonly uid: number; readonly gid: number }): SessionPipe | undefined {
  if (stock.length < LOW_WATER) refill();
  const path = stock.shift();
  if (path === undefined) return undefined;
  let ours: number | undefined;
  try {
    // A blocking open for writing waits for a reader: ours comes first, and does not wait.
    ours = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const child = openSync(path, constants.O_WRONLY);
    if (owner) fchownSync(child, owner.uid, owner.gid);
    return { child, ours };
  } catch {
    if (ours !== undefined) closeAll([ours]);
    return undefined;
  } finally {
    try {
      unlinkSync(path);
    } catch {
      // Already gone.
    }
  }
}

/**
 * `count` FIFO paths from the stock, for a process that opens its ends itself (spawn-helper.ts),
 * or undefined when the stock has too few. The caller opens our ends at once and makes sure the
 * names are removed (the helper removes them once it has opened its ends).
 */
export function takeFifoPaths(count: number): string[] | undefined {
  if (stock.length < LOW_WATER + count) refill();
  if (stock.length < count) return undefined;
  return stock.splice(0, count);
}

/** The private folder (0700, removed at exit) once made; undefined when FIFOs are impossible here. */
export function pipeFolder(): string | undefined {
  folder ??= makeFolder();
  return folder ?? undefined;
}

/** Remove FIFO names, ignoring those already gone. */
export function removeFifos(paths: readonly string[]): void {
  for (const path of paths) {
    try {
      unlinkSync(path);
    } catch {
      // Already gone.
    }
  }
}

/** Close file descriptors, ignoring those already closed. */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // Closed already.
    }
  }
}
