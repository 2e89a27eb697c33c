/**
 * The SFTP server as a program of its own: tsshd starts it as the session's user (setpriv) with
 * the channel on stdin and stdout, and a JSON SftpChildConfig as its argument. Logs go to stderr,
 * which tsshd copies into its log. The exit status is the server's: 0 after the client's EOF.
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { stat } from 'node:fs/promises';
import { SftpServer } from './server.js';
import { confinedPaths } from './confined-fs.js';
import type { SftpChildConfig } from './internal-sftp.js';

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

const given = parseConfig(process.argv[2]);
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
