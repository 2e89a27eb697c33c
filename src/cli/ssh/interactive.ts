/**
 * Joining a session to this process's stdin, stdout and stderr: with a terminal in raw mode,
 * window-size changes forwarded, and ssh's escape sequences (`~.` disconnect, `~?` help, `~~`
 * a literal tilde) read at the start of a line; the terminal is restored on every way out.
 */
import type { ClientSession } from '../../client-session.js';

const HELP = `Supported escape sequences:
 ~.   - terminate connection
 ~?   - this message
 ~~   - send the escape character by typing it twice
(Note that escapes are only recognized immediately after newline.)
`;

export interface AttachOptions {
  /** Raw terminal handling: the remote side has a pty and our stdin is a terminal. */
  readonly terminal: boolean;
  /** The escape character, or undefined for none (`-e none`). */
  readonly escapeChar: string | undefined;
  /** Called for `~.`. */
  readonly disconnect: () => void;
}

/** Resolves with the remote exit status (255 when the command gave none, as ssh). */
export function attachSession(session: ClientSession, options: AttachOptions): Promise<number> {
  const stdin = process.stdin;
  const raw = options.terminal && stdin.isTTY === true;
  const restore = (): void => {
    if (raw && stdin.isTTY) stdin.setRawMode(false);
  };
  if (raw) {
    stdin.setRawMode(true);
    process.once('exit', restore);
  }
  const onResize = (): void => session.setWindow(process.stdout.columns ?? 80, process.stdout.rows ?? 24);
  if (raw) process.stdout.on('resize', onResize);

  session.pipe(process.stdout, { end: false });
  session.stderr.pipe(process.stderr, { end: false });

  let atLineStart = true;
  let pendingEscape = false;
  const escape = options.escapeChar;
  const onData = (chunk: Buffer): void => {
    if (!raw || escape === undefined) {
      if (!session.write(chunk)) stdin.pause();
      return;
    }
    // Escape sequences are recognised only right after a newline (or at the very start).
    const out: number[] = [];
    for (const byte of chunk) {
      const char = String.fromCharCode(byte);
      if (pendingEscape) {
        pendingEscape = false;
        if (char === '.') {
          process.stderr.write(`${escape}.\r\nConnection to host closed.\r\n`);
          options.disconnect();
          return;
        }
        if (char === '?') {
          process.stderr.write(HELP.replace(/\n/g, '\r\n').replace(/~/g, escape));
          continue;
        }
        if (char !== escape) out.push(escape.charCodeAt(0));
        out.push(byte);
        atLineStart = false;
        continue;
      }
      if (atLineStart && char === escape) {
        pendingEscape = true;
        continue;
      }
      out.push(byte);
      atLineStart = char === '\r' || char === '\n';
    }
    if (out.length > 0 && !session.write(Buffer.from(out))) stdin.pause();
  };
  session.on('drain', () => stdin.resume());
  stdin.on('data', onData);
  stdin.once('end', () => session.end());
  stdin.resume();

  const ended = (stream: NodeJS.ReadableStream & { readableEnded: boolean }): Promise<void> =>
    stream.readableEnded ? Promise.resolve() : new Promise<void>((resolve) => stream.once('end', () => resolve()));
  const outputsDone = Promise.all([ended(session), ended(session.stderr)]);
  return new Promise<number>((resolve) => {
    void session.whenClosed().then(async () => {
      // Everything the server sent must reach our stdout and stderr before we exit.
      await outputsDone;
      await new Promise<void>((r) => process.stdout.write('', () => r()));
      stdin.off('data', onData);
      stdin.pause();
      process.stdout.off('resize', onResize);
      restore();
      const exit = session.exit;
      resolve(exit?.code ?? 255);
    });
  });
}
