/**
 * tssh-keygen's side of the terminal: what it prints, how it stops, and how it reads answers.
 *
 * ssh-keygen reads two kinds of input, and so do we:
 * - answers (the overwrite question, a file name): a line from stdin, echoed;
 * - passphrases: from the terminal without echo when stdin is one, otherwise a line from stdin with
 *   the prompt on stderr, so that scripts (and tests) can pipe them in. End of input counts as an
 *   empty passphrase, as with ssh-keygen.
 *
 * All stdin reads share one buffer: a pipe delivers "y\nsecret\nsecret\n" in one chunk, and each
 * line must go to the question that comes next.
 */
import { StringDecoder } from 'node:string_decoder';
import { readSecret } from '../terminal.js';

export const PROGRAM = 'tssh-keygen';

/**
 * Stop with an exit status, after printing `message` (if any) on stderr. Thrown anywhere below the
 * entry point, which prints it and exits: ssh-keygen's fatal() is status 255, usage and refusals 1.
 */
export class KeygenExit extends Error {
  constructor(
    readonly status: number,
    message = '',
  ) {
    super(message);
  }
}

/** ssh-keygen's fatal(): the message and status 255. */
export function fatal(message: string): KeygenExit {
  return new KeygenExit(255, message);
}

export function out(text: string): void {
  process.stdout.write(text);
}

export function err(text: string): void {
  process.stderr.write(text);
}

/** strerror(3)'s words for the errors file operations meet, so messages read as ssh-keygen's do. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  EEXIST: 'File exists',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EBUSY: 'Device or resource busy',
};

/** The strerror(3) text of a Node file error, or its message for anything else. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && ERRNO_TEXT[code] !== undefined) return ERRNO_TEXT[code];
    return error.message;
  }
  return String(error);
}

/** Lines from stdin, read on demand, with whatever followed the last line kept for the next call. */
class StdinLines {
  private buffer = '';
  private ended = false;
  private readonly decoder = new StringDecoder('utf8');

  /** The next line without its newline; undefined at end of input. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const newline = this.buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        return line;
      }
      if (this.ended) {
        if (this.buffer === '') return undefined;
        const last = this.buffer;
        this.buffer = '';
        return last;
      }
      await this.fill();
    }
  }

  /** Everything left on stdin (for `-l -f -`). */
  async rest(): Promise<string> {
    while (!this.ended) await this.fill();
    const all = this.buffer;
    this.buffer = '';
    return all;
  }

  /** Wait for one chunk or the end. stdin is paused again afterwards so it never holds the process open. */
  private fill(): Promise<void> {
    const stdin = process.stdin;
    if (stdin.readableEnded || stdin.destroyed) {
      this.ended = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = (): void => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.off('error', onEnd);
        stdin.pause();
        resolve();
      };
      const onData = (chunk: Buffer | string): void => {
        this.buffer += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
        finish();
      };
      const onEnd = (): void => {
        this.buffer += this.decoder.end();
        this.ended = true;
        finish();
      };
      stdin.on('data', onData);
      stdin.on('end', onEnd);
      stdin.on('error', onEnd);
      stdin.resume();
    });
  }
}

const stdinLines = new StdinLines();

/** An answer typed on stdin (echoed); undefined at end of input. The question goes to stdout, as ssh-keygen's. */
export async function askLine(question: string): Promise<string | undefined> {
  out(question);
  return stdinLines.next();
}

/** All of stdin. */
export function readAllStdin(): Promise<string> {
  return stdinLines.rest();
}

/**
 * A passphrase: typed without echo when stdin is a terminal, else a line of stdin (prompt on
 * stderr). End of input gives '' (ssh-keygen's read_passphrase does the same); Ctrl-C or Ctrl-D at
 * a terminal cancels the program.
 */
export async function askPassphrase(prompt: string): Promise<string> {
  if (process.stdin.isTTY) {
    const typed = await readSecret(prompt);
    if (typed === undefined) throw new KeygenExit(1);
    return typed;
  }
  err(prompt);
  const line = await stdinLines.next();
  return line === undefined ? '' : line.replace(/\r$/, '');
}
