/**
 * The SFTP server as a program of its own: tsshd starts it as the session's user (setpriv) with
 * the channel on stdin and stdout, and a JSON SftpChildConfig as its argument. Logs go to stderr,
 * which tsshd copies into its log. The exit status is the server's: 0 after the client's EOF.
 */
import { Socket } from 'node:net';
import { SftpServer } from './server.js';
import type { SftpChildConfig } from './internal-sftp.js';

function parseConfig(text: string | undefined): SftpChildConfig {
  const value: unknown = JSON.parse(text ?? '');
  const c = value as Partial<Record<keyof SftpChildConfig, unknown>>;
  if (
    typeof value !== 'object' || value === null ||
    typeof c.cwd !== 'string' || typeof c.home !== 'string' || typeof c.readOnly !== 'boolean' ||
    (c.umask !== undefined && (typeof c.umask !== 'number' || !Number.isInteger(c.umask) || c.umask < 0 || c.umask > 0o7777))
  ) {
    throw new Error('usage: child.js {"cwd":…,"home":…,"readOnly":…,"umask":…}');
  }
  return { cwd: c.cwd, home: c.home, readOnly: c.readOnly, umask: c.umask as number | undefined };
}

const config = parseConfig(process.argv[2]);
if (config.umask !== undefined) process.umask(config.umask);
try {
  process.chdir(config.cwd);
} catch (error) {
  // As sftp-server -d: a start folder that cannot be entered is logged, and the session goes on.
  process.stderr.write(`sftp: cannot enter ${config.cwd}: ${(error as Error).message}\n`);
}
// Our own sockets on fds 0 and 1 rather than process.stdin/stdout: Node writes process.stdout to
// a pipe synchronously on Linux, which would stall every request while the channel is full.
const input = new Socket({ fd: 0, readable: true, writable: false });
const output = new Socket({ fd: 1, readable: false, writable: true });
const server = new SftpServer(input, output, {
  cwd: config.cwd,
  home: config.home,
  readOnly: config.readOnly,
  log: (line) => process.stderr.write(`${line}\n`),
});
server.once('done', (code) => {
  input.destroy();
  const exit = (): never => process.exit(code);
  if (output.writableFinished || output.destroyed) exit();
  output.once('finish', exit);
  output.once('error', exit);
  output.once('close', exit);
});
