/**
 * The SFTP server as a program of its own, with the channel on stdin and stdout. Logs go to
 * stderr, which tsshd copies into its log. The exit status is the server's: 0 after the client's
 * EOF. Two ways to start it:
 *
 * - `child.js --assigned`: how tsshd starts it, often before any session wants it (a Node start
 *   costs 60-100 ms). It loads, then waits for its assignment (SftpChildAssignment, JSON) on fd 3,
 *   which tsshd writes and closes. With a `user` in it (tsshd runs as root) it first takes that
 *   user's credentials (initgroups, setgid, setuid, as setpriv --init-groups would) and checks
 *   that root cannot be regained; nothing is read or served before that. EOF on fd 3 without an
 *   assignment (tsshd let it go, or is gone) ends it with status 0.
 * - `child.js CONFIG` (SftpChildConfig as JSON): serves at once as whoever started it.
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { stat } from 'node:fs/promises';
import { SftpServer } from './server.js';
import { confinedPaths } from './confined-fs.js';
import type { SftpChildAssignment, SftpChildConfig } from './internal-sftp.js';

/** An assignment is a few hundred bytes; anything much larger is not one. */
const MAX_ASSIGNMENT = 64 * 1024;

/** fd 3 read to its end: the assignment, or undefined when it was closed with nothing on it. */
function readAssignment(): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const control = new Socket({ fd: 3, readable: true, writable: false });
    const parts: Buffer[] = [];
    let length = 0;
    control.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_ASSIGNMENT) control.destroy(new Error('assignment too long'));
      else parts.push(chunk);
    });
    control.once('error', reject);
    control.once('end', () => {
      control.destroy();
      resolve(length === 0 ? undefined : Buffer.concat(parts).toString('utf8'));
    });
  });
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 2 ** 32;
}

function parseAssignment(text: string): SftpChildAssignment {
  const value: unknown = JSON.parse(text);
  const a = value as Partial<Record<keyof SftpChildAssignment, unknown>>;
  const user = a.user as Partial<Record<'name' | 'uid' | 'gid', unknown>> | undefined;
  const env = a.env as Record<string, unknown> | undefined;
  if (
    typeof value !== 'object' || value === null ||
    (user !== undefined && (typeof user !== 'object' || user === null || typeof user.name !== 'string' || !user.name || !isId(user.uid) || !isId(user.gid))) ||
    typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')
  ) {
    throw new Error('malformed assignment');
  }
  return {
    config: parseConfig(JSON.stringify(a.config)),
    user: user && { name: user.name as string, uid: user.uid as number, gid: user.gid as number },
    env: env as Record<string, string>,
  };
}

/** Take the user's credentials for good, as setpriv --init-groups does; throws if anything is off. */
function become(user: { readonly name: string; readonly uid: number; readonly gid: number }): void {
  // Node has process.initgroups (initgroups(3), through NSS) on POSIX; @types/node 20 leaves it out.
  const { initgroups } = process as NodeJS.Process & { initgroups?: (user: string, extraGroup: number) => void };
  if (!initgroups || !process.setgid || !process.setuid || !process.getuid || !process.geteuid || !process.getgid || !process.getegid) {
    throw new Error('this platform cannot switch users');
  }
  initgroups.call(process, user.name, user.gid);
  process.setgid(user.gid);
  process.setuid(user.uid);
  if (process.getuid() !== user.uid || process.geteuid() !== user.uid || process.getgid() !== user.gid || process.getegid() !== user.gid) {
    throw new Error(`credentials are not uid ${user.uid} gid ${user.gid} after the switch`);
  }
  if (user.uid !== 0) {
    let regained = false;
    try {
      process.setuid(0);
      regained = true;
    } catch {
      // EPERM: as it must be
    }
    if (regained) throw new Error('root could be regained after the switch');
  }
}

function parseConfig(text: string | undefined): SftpChildConfig {
  const value: unknown = JSON.parse(text ?? '');
  const c = value as Partial<Record<keyof SftpChildConfig, unknown>>;
  if (
    typeof value !== 'object' || value === null ||
    (c.root !== undefined && typeof c.root !== 'string') ||
    typeof c.cwd !== 'string' || typeof c.home !== 'string' || typeof c.readOnly !== 'boolean' ||
    (c.umask !== undefined && (typeof c.umask !== 'number' || !Number.isInteger(c.umask) || c.umask < 0 || c.umask > 0o7777))
  ) {
    throw new Error('usage: child.js {"cwd":…,"home":…,"readOnly":…,"umask":…}');
  }
  return { root: c.root as string | undefined, cwd: c.cwd, home: c.home, readOnly: c.readOnly, umask: c.umask as number | undefined };
}

/**
 * In a chroot: the home (or -d folder) if it is a folder inside the root, else `/`, as sshd's
 * session starts in the home inside the chroot when there is one. Resolved by the confined
 * server itself, so a link cannot point it elsewhere.
 */
async function confinedStart(root: string, cwd: string, home: string): Promise<{ cwd: string; home: string }> {
  const paths = confinedPaths(root);
  const inside = async (path: string): Promise<string | undefined> => {
    try {
      const resolved = await paths.resolve(Buffer.from(path), 'follow');
      try {
        if (!(await stat(resolved.path)).isDirectory()) return undefined;
      } finally {
        resolved.release();
      }
      return (await paths.canonical(Buffer.from(path))).toString('utf8');
    } catch {
      return undefined;
    }
  };
  const homeInside = (await inside(home)) ?? '/';
  const cwdInside = cwd === home ? homeInside : ((await inside(cwd)) ?? homeInside);
  return { cwd: cwdInside, home: homeInside };
}

let given: SftpChildConfig;
if (process.argv[2] === '--assigned') {
  let assignment: SftpChildAssignment;
  try {
    const text = await readAssignment();
    if (text === undefined) process.exit(0);
    assignment = parseAssignment(text);
    if (assignment.user) become(assignment.user);
  } catch (error) {
    process.stderr.write(`sftp: not started: ${(error as Error).message}\n`);
    process.exit(1);
  }
  // The session's own environment from here on (what getent, which the server runs, sees).
  for (const name of Object.keys(process.env)) delete process.env[name];
  Object.assign(process.env, assignment.env);
  given = assignment.config;
} else {
  given = parseConfig(process.argv[2]);
}
if (given.umask !== undefined) process.umask(given.umask);
const config = given.root !== undefined ? { ...given, ...(await confinedStart(given.root, given.cwd, given.home)) } : given;
if (config.root === undefined) {
  try {
    process.chdir(config.cwd);
  } catch (error) {
    // As sftp-server -d: a start folder that cannot be entered is logged, and the session goes on.
    process.stderr.write(`sftp: cannot enter ${config.cwd}: ${(error as Error).message}\n`);
  }
}
/**
 * The input is read with net's `onread` into consecutive parts of 4 MiB slabs, so that a request
 * that reads split (a 255 KiB WRITE, as OpenSSH's sftp sends once limits@openssh.com allows it,
 * takes four or more 64 KiB reads) lies in one piece of memory and the framer takes it as a view
 * instead of copying it; only a request that crosses the end of a slab is copied (about 3 % of
 * the bytes). A slab is garbage once the requests in it are answered and the framer is past it.
 */
const SLAB_SIZE = 4 * 1024 * 1024;
/** A new slab when less than this is left, so that a read can take a whole request. */
const MIN_READ_ROOM = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let used = 0;
function nextReadBuffer(): Buffer {
  if (SLAB_SIZE - used < MIN_READ_ROOM) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    used = 0;
  }
  return slab.subarray(used);
}

// Our own sockets on fds 0 and 1 rather than process.stdin/stdout: Node writes process.stdout to
// a pipe synchronously on Linux, which would stall every request while the channel is full.
// @types/node 20 lists onread for connect() only; Node's Socket constructor takes it as well.
const inputOptions: SocketConstructorOpts & { onread: OnReadOpts } = {
  fd: 0,
  readable: true,
  writable: false,
  onread: {
    buffer: nextReadBuffer,
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      used += bytes;
      server.receive(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
      return true; // the server pauses the socket itself when its queue is full
    },
  },
};
const input = new Socket(inputOptions);
const output = new Socket({ fd: 1, readable: false, writable: true });
const server = new SftpServer(input, output, {
  root: config.root,
  cwd: config.cwd,
  home: config.home,
  readOnly: config.readOnly,
  log: (line) => process.stderr.write(`${line}\n`),
  // This process serves one session: nothing else waits while a read or write blocks.
  syncFileIo: true,
  // Replies go to a socket, which is done with a buffer when it calls back.
  reuseDataBuffers: true,
});
server.once('done', (code) => {
  input.destroy();
  const exit = (): never => process.exit(code);
  if (output.writableFinished || output.destroyed) exit();
  output.once('finish', exit);
  output.once('error', exit);
  output.once('close', exit);
});
