/**
 * Real pipes for a command's standard output and error, as sshd gives them. Node's
 * `stdio: 'pipe'` hands a child Unix sockets (libuv makes socket pairs), and a socket cannot be
 * opened by name: in such a session `echo x > /dev/stderr` and `tee /dev/stdout` fail with "No such
 * device or address".
 *
 * Node cannot make an anonymous pipe, but it can open a named one. tsshd keeps a stock of FIFOs,
 * made by mkfifo(1) in a folder only it can enter (named with its PID), and turns each into one
 * pipe: both ends are opened, then the name is removed at once. So no process can ever join that
 * pipe again: a FIFO used twice by name would connect a new session to whatever an old session
 * left holding the old one. The child's ends are opened in blocking mode, as programs expect;
 * ours are non-blocking, for the event loop. The stock is refilled in the background, and a
 * session that finds it empty, or a system without mkfifo, gets sockets as before.
 *
 * Standard input stays a socket: a pipe holds 64 KiB, and feeding a command through one cost an
 * upload 30 % of its speed (ssh -> tsshd, 646 -> 440 MB/s), where the socket's larger buffer lets
 * each write go through whole. So `/dev/stdin` cannot be opened by name in a session without a
 * terminal (its stdin works as usual).
 *
 * The folder goes when the process exits; one left by a tsshd that was killed is removed by the
 * next one that makes its folder.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, fchownSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'tsshd-pipes-';
/**
 * FIFOs made at a time, two per session; more are made when fewer than LOW_WATER are left. Making
 * them means spawning mkfifo, a fork of tsshd (about 1 ms of CPU, and the event loop waits for the
 * exec): one per 128 sessions.
 */
const BATCH = 256;
const LOW_WATER = 64;

/** The folder, undefined before first use, null once FIFOs turned out impossible here. */
let folder: string | undefined | null;
const stock: string[] = [];
let refilling = false;
let made = 0;

/** The pipes of one session: the child's ends for spawn's stdio, and ours. */
export interface SessionPipes {
  /** stdout and stderr (write ends), blocking. Close them here once spawn returned. */
  readonly child: [stdout: number, stderr: number];
  /** Where we read its output and its errors (non-blocking). */
  readonly output: number;
  readonly errors: number;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function makeFolder(): string | null {
  const base = tmpdir();
  try {
    for (const name of readdirSync(base)) {
      const pid = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1]);
      if (!pid || pid === process.pid || running(pid)) continue;
      const path = join(base, name);
      if (statSync(path).uid === process.getuid?.()) rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // Not ours to clean, or gone already.
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
export function prepareSessionPipes(): void {
  refill();
}

/**
 * Two pipes for a session, or undefined when none are ready (use `stdio: 'pipe'`). `owner`: the
 * user the command runs as, when not ours; the FIFOs become theirs, since reopening one through
 * /proc/self/fd (which is what /dev/stdout is) checks its owner and mode (0600).
 */
export function takeSessionPipes(owner?: { readonly uid: number; readonly gid: number }): SessionPipes | undefined {
  if (stock.length < LOW_WATER) refill();
  if (stock.length < 2) return undefined;
  const [stdoutPath, stderrPath] = stock.splice(0, 2) as [string, string];
  const opened: number[] = [];
  const open = (path: string, flags: number): number => {
    const fd = openSync(path, flags);
    opened.push(fd);
    return fd;
  };
  const { O_RDONLY, O_WRONLY, O_NONBLOCK } = constants;
  try {
    // A blocking open for writing waits for a reader: ours comes first, and does not wait.
    const output = open(stdoutPath, O_RDONLY | O_NONBLOCK);
    const childStdout = open(stdoutPath, O_WRONLY);
    const errors = open(stderrPath, O_RDONLY | O_NONBLOCK);
    const childStderr = open(stderrPath, O_WRONLY);
    if (owner) {
      fchownSync(childStdout, owner.uid, owner.gid);
      fchownSync(childStderr, owner.uid, owner.gid);
    }
    return { child: [childStdout, childStderr], output, errors };
  } catch {
    closeAll(opened);
    return undefined;
  } finally {
    for (const path of [stdoutPath, stderrPath]) {
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
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
