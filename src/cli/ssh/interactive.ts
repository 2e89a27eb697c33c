/**
 * Joining a session to this process's stdin, stdout and stderr: with a terminal in raw mode,
 * window-size changes forwarded, and ssh's escape sequences read at the start of a line: `~.`
 * disconnect, `~B` break, `~C` the `ssh>` command line (with EnableEscapeCommandline), `~R`
 * rekey, `~#` forwarded connections, `~?` help, `~~` a literal tilde. The terminal is restored
 * on every way out.
 */
import { fstatSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { isatty } from 'node:tty';
import type { ClientSession } from '../../client-session.js';
import { FileOutput, isFileOrDevice } from './file-output.js';

/** How much one read of a piped stdin can take (see pumpPipedStdin). */
const STDIN_READ_SIZE = 256 * 1024;

/** Whether stdin is a pipe or a socket, which net's onread can read. */
function stdinIsPipe(): boolean {
  try {
    const stat = fstatSync(0);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/**
 * Without a terminal, with a pipe or a socket on stdin (`cmd | tssh host 'cat > f'`): read fd 0
 * into one buffer of our own (net's onread) and send each read at once as far as the channel's
 * window allows (ChannelStream.writeNow copies only what has to wait), instead of a fresh 64 KiB
 * buffer per read through process.stdin. process.stdin is never created on this path: two
 * handles on fd 0 would compete for it. Returns a function that stops reading.
 */
function pumpPipedStdin(session: ClientSession): () => void {
  // @types/node 20 lists onread for connect() only; Node's Socket constructor takes it as well.
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd: 0,
    readable: true,
    writable: false,
    onread: {
      buffer: Buffer.allocUnsafeSlow(STDIN_READ_SIZE),
      callback: (bytes: number, buffer: Uint8Array): boolean => {
        if (session.writeNow(Buffer.from(buffer.buffer, buffer.byteOffset, bytes))) return true;
        session.once('drain', () => input.resume());
        return false;
      },
    },
  };
  const input = new Socket(options);
  input.once('end', () => session.end());
  // A read error ends our input as EOF would (ssh does the same); the session carries on.
  input.on('error', () => session.end());
  input.resume();
  return () => input.destroy();
}

function help(commandLine: boolean): string {
  const lines = [
    'Supported escape sequences:',
    ' ~.   - terminate connection',
    ' ~B   - send a BREAK to the remote system',
    ...(commandLine ? [' ~C   - open a command line'] : []),
    ' ~R   - request rekey',
    ' ~#   - list forwarded connections',
    ' ~?   - this message',
    ' ~~   - send the escape character by typing it twice',
    '(Note that escapes are only recognized immediately after newline.)',
  ];
  return `${lines.join('\n')}\n`;
}

export interface AttachOptions {
  /** Raw terminal handling: the remote side has a pty and our stdin is a terminal. */
  readonly terminal: boolean;
  /** The escape character, or undefined for none (`-e none`). */
  readonly escapeChar: string | undefined;
  /** Called for `~.`. */
  readonly disconnect: () => void;
  /** `~C`: runs one `ssh>` command line, resolving with what to show; undefined: disabled. */
  readonly commandLine?: (line: string) => Promise<string>;
  /** `~#`: the open forwarded connections, as text (CR LF lines). */
  readonly listConnections?: () => string;
  /** `~R`. */
  readonly rekey?: () => void;
}

/** Resolves with the remote exit status (255 when the command gave none, as ssh). */
export function attachSession(session: ClientSession, options: AttachOptions): Promise<number> {
  const raw = options.terminal && isatty(0);
  if (!raw && stdinIsPipe()) return relay(session, pumpPipedStdin(session), () => undefined);
  const stdin = process.stdin;
  const restore = (): void => {
    if (raw && stdin.isTTY) stdin.setRawMode(false);
  };
  if (raw) {
    stdin.setRawMode(true);
    process.once('exit', restore);
  }
  const onResize = (): void => session.setWindow(process.stdout.columns ?? 80, process.stdout.rows ?? 24);
  if (raw) process.stdout.on('resize', onResize);

  let atLineStart = true;
  let pendingEscape = false;
  const escape = options.escapeChar;
  // The `ssh>` command line. The terminal stays in raw mode and the line is edited here (echo,
  // backspace, ^U; ^C or ^D abandon it): in cooked mode a ^D would end stdin for good and a ^C
  // would interrupt tssh itself. What is typed goes to the command, never to the session.
  let commandText: string | undefined;
  const startCommandLine = (): void => {
    commandText = '';
    process.stderr.write('\r\nssh> ');
  };
  const finishCommandLine = (line: string): void => {
    commandText = undefined;
    process.stderr.write('\r\n');
    stdin.pause();
    void options.commandLine!(line)
      .catch((error: unknown) => `${(error as Error).message}\r\n`)
      .then((text) => {
        process.stderr.write(text.replace(/\r?\n/g, '\r\n'));
        atLineStart = true;
        stdin.resume();
      });
  };
  /** One chunk typed at the `ssh>` prompt; what follows the Enter (if anything) is returned. */
  const editCommandLine = (chunk: Buffer): Buffer | undefined => {
    const text = chunk.toString('utf8');
    for (let i = 0; i < text.length; i++) {
      const char = text[i]!;
      if (char === '\r' || char === '\n') {
        finishCommandLine(commandText!);
        const rest = Buffer.from(text.slice(i + 1).replace(/^\n/, ''), 'utf8');
        return rest.length > 0 ? rest : undefined;
      }
      if (char === '\x03' || char === '\x04') {
        // ^C, ^D: no command.
        finishCommandLine('');
        return undefined;
      }
      if (char === '\x7f' || char === '\b') {
        if (commandText!.length > 0) {
          commandText = [...commandText!].slice(0, -1).join('');
          process.stderr.write('\b \b');
        }
        continue;
      }
      if (char === '\x15') {
        process.stderr.write('\b \b'.repeat([...commandText!].length));
        commandText = '';
        continue;
      }
      if (char < ' ') continue;
      commandText += char;
      process.stderr.write(char);
    }
    return undefined;
  };
  const onData = (chunk: Buffer): void => {
    if (commandText !== undefined) {
      const rest = editCommandLine(chunk);
      // Typed ahead of the command's answer: kept for the session once the command is done.
      if (rest) setImmediate(() => onData(rest));
      return;
    }
    if (!raw || escape === undefined) {
      if (!session.write(chunk)) stdin.pause();
      return;
    }
    // Escape sequences are recognised only right after a newline (or at the very start).
    const out: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const char = String.fromCharCode(byte);
      if (pendingEscape) {
        pendingEscape = false;
        if (char === '.') {
          process.stderr.write(`${escape}.\r\nConnection to host closed.\r\n`);
          options.disconnect();
          return;
        }
        if (char === '?') {
          process.stderr.write(`${escape}?\r\n${help(options.commandLine !== undefined).replace(/\n/g, '\r\n').replace(/~/g, escape)}`);
          continue;
        }
        if (char === 'B') {
          process.stderr.write(`${escape}B\r\n`);
          void session.sendBreak(1000).catch(() => false);
          continue;
        }
        if (char === 'R') {
          options.rekey?.();
          continue;
        }
        if (char === '#') {
          process.stderr.write(`${escape}#\r\n${options.listConnections?.() ?? 'The following connections are open:\r\n'}`);
          continue;
        }
        if (char === 'C') {
          if (!options.commandLine) {
            process.stderr.write('commandline disabled\r\n');
            continue;
          }
          if (out.length > 0 && !session.write(Buffer.from(out))) stdin.pause();
          startCommandLine();
          // Anything typed after ~C in the same read starts the command line.
          const rest = chunk.subarray(i + 1);
          if (rest.length > 0) onData(rest);
          return;
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

  return relay(
    session,
    () => {
      stdin.off('data', onData);
      stdin.pause();
    },
    () => {
      process.stdout.off('resize', onResize);
      restore();
    },
  );
}

/**
 * Pass the session's output to our stdout and stderr; once the channel is closed and all of it is
 * delivered, stop reading our input, clean up, and resolve with the exit status (255 without one).
 */
function relay(session: ClientSession, stopInput: () => void, cleanUp: () => void): Promise<number> {
  const stdout = process.stdout instanceof Socket || !isFileOrDevice(1) ? process.stdout : new FileOutput(1);
  let outputFailed = false;
  if (stdout instanceof FileOutput) {
    // Before pipe()'s own listener: the packets that one read of the connection opened are written
    // together, in one writev once this turn of the event loop is over.
    session.on('data', () => stdout.gather());
    stdout.on('error', (error) => {
      // Output that cannot be delivered is lost: say so, and exit 255 whatever the command's status.
      process.stderr.write(`tssh: cannot write to standard output: ${error.message}\n`);
      outputFailed = true;
      session.unpipe(stdout);
      session.resume();
    });
  }
  session.pipe(stdout, { end: false });
  session.stderr.pipe(process.stderr, { end: false });
  const ended = (stream: NodeJS.ReadableStream & { readableEnded: boolean }): Promise<void> =>
    stream.readableEnded ? Promise.resolve() : new Promise<void>((resolve) => stream.once('end', () => resolve()));
  const outputsDone = Promise.all([ended(session), ended(session.stderr)]);
  return new Promise<number>((resolve) => {
    void session.whenClosed().then(async () => {
      // Everything the server sent must reach our stdout and stderr before we exit.
      await outputsDone;
      await new Promise<void>((r) => (stdout.writable ? stdout.write('', () => r()) : r()));
      stopInput();
      cleanUp();
      resolve(outputFailed ? 255 : (session.exit?.code ?? 255));
    });
  });
}
