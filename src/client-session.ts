/**
 * A session channel on the client (RFC 4254 §6): stdout is the stream itself, stderr is
 * `.stderr`, and the command's end arrives as an 'exit' event with a code or a signal.
 */
import type { Readable } from 'node:stream';
import { ChannelStream, type ChannelStreamEvents } from './channel.js';
import type { ChannelMux } from './connection/mux.js';
import {
  decodeExitSignal,
  decodeExitStatus,
  encodeBreak,
  encodeEnv,
  encodePtyRequest,
  encodeStringRequest,
  encodeWindowChange,
  type ExitSignal,
} from './connection/session.js';
import { SshError, DisconnectReason } from './errors.js';

export interface PtyOptions {
  readonly term?: string;
  readonly columns?: number;
  readonly rows?: number;
  readonly widthPixels?: number;
  readonly heightPixels?: number;
  readonly modes?: Readonly<Record<string, number>>;
}

export interface ExitInfo {
  /** The exit status, or undefined if the command died of a signal. */
  readonly code: number | undefined;
  readonly signal: ExitSignal | undefined;
}

export interface ExecResult extends ExitInfo {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

export interface ClientSessionEvents {
  /** The command ended: an exit status or the signal that killed it. */
  exit: [info: ExitInfo];
}

/** Typed listeners for the session's events (the stream's own events keep their types). */
export interface ClientSession {
  on<K extends keyof (ClientSessionEvents & ChannelStreamEvents)>(event: K, listener: (...args: (ClientSessionEvents & ChannelStreamEvents)[K]) => void): this;
  on(event: string | symbol, listener: (...args: never[]) => void): this;
  once<K extends keyof (ClientSessionEvents & ChannelStreamEvents)>(event: K, listener: (...args: (ClientSessionEvents & ChannelStreamEvents)[K]) => void): this;
  once(event: string | symbol, listener: (...args: never[]) => void): this;
}

export class ClientSession extends ChannelStream {
  declare readonly stderr: Readable;
  exit: ExitInfo | undefined;

  static async open(mux: ChannelMux): Promise<ClientSession> {
    let session!: ClientSession;
    await mux.open('session', Buffer.alloc(0), (channel) => (session = new ClientSession(channel)).events);
    return session;
  }

  private constructor(channel: ConstructorParameters<typeof ChannelStream>[0]) {
    super(channel, true);
    Object.defineProperty(this, 'stderr', { value: this.stderrReadable, enumerable: true });
  }

  protected override handleRequest(type: string, _wantReply: boolean, data: Buffer): boolean {
    switch (type) {
      case 'exit-status':
        this.exit = { code: decodeExitStatus(data), signal: undefined };
        this.emit('exit', this.exit);
        return true;
      case 'exit-signal':
        this.exit = { code: undefined, signal: decodeExitSignal(data) };
        this.emit('exit', this.exit);
        return true;
      case 'eow@openssh.com':
        return true;
      default:
        return false;
    }
  }

  /** Request a pseudo-terminal, environment, then the shell/exec/subsystem. */
  async start(
    kind: 'shell' | 'exec' | 'subsystem',
    argument: string | undefined,
    options: { pty?: PtyOptions; env?: Record<string, string> },
  ): Promise<void> {
    const channel = this.channel;
    if (options.pty) {
      const pty = options.pty;
      const ok = await channel.request(
        'pty-req',
        encodePtyRequest({
          term: pty.term ?? 'xterm-256color',
          columns: pty.columns ?? 80,
          rows: pty.rows ?? 24,
          widthPixels: pty.widthPixels ?? 0,
          heightPixels: pty.heightPixels ?? 0,
          modes: pty.modes ?? {},
        }),
      );
      if (!ok) throw this.refused('pty-req');
    }
    for (const [name, value] of Object.entries(options.env ?? {})) {
      // Servers commonly refuse env (sshd's AcceptEnv); like ssh, that is not an error.
      await channel.request('env', encodeEnv(name, value));
    }
    const data = argument === undefined ? Buffer.alloc(0) : encodeStringRequest(argument);
    if (!(await channel.request(kind, data))) throw this.refused(kind === 'shell' ? 'shell' : `${kind} ${JSON.stringify(argument)}`);
  }

  /** Run a command to completion and collect its output. */
  async run(command: string, options: { stdin?: string | Buffer; pty?: PtyOptions; env?: Record<string, string> } = {}): Promise<ExecResult> {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    this.on('data', (chunk: Buffer) => stdout.push(chunk));
    this.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // Done when the channel is closed and both outputs were read to their end (data can
    // still sit in the stream's buffer when the CLOSE arrives).
    const closed = Promise.all([
      this.whenClosed().then((error) => {
        if (error) throw error;
      }),
      new Promise<void>((resolve) => this.once('end', resolve)),
      new Promise<void>((resolve) => this.stderr.once('end', resolve)),
    ]);
    // Nobody awaits `closed` if the command is refused: it must not become an unhandled rejection.
    closed.catch(() => {});
    const endInput = (): void => {
      if (options.stdin !== undefined) this.end(options.stdin);
      else this.end();
    };
    // Without a terminal or variables to ask for first, the exec request is the first thing
    // start() sends, synchronously: the input and its EOF follow it in the same write, as ssh
    // sends input without waiting for the reply (one write, and a wake-up of the server, less per
    // command). A refused request closes the channel, and what the server had not used is dropped.
    const atOnce = options.pty === undefined && Object.keys(options.env ?? {}).length === 0;
    const started = this.start('exec', command, options);
    if (atOnce) endInput();
    await started;
    if (!atOnce) endInput();
    await closed;
    return {
      stdout: Buffer.concat(stdout),
      stderr: Buffer.concat(stderr),
      code: this.exit?.code,
      signal: this.exit?.signal,
    };
  }

  /** Tell the server the terminal's new size (window-change). */
  setWindow(columns: number, rows: number, widthPixels = 0, heightPixels = 0): void {
    void this.channel.request('window-change', encodeWindowChange({ columns, rows, widthPixels, heightPixels }), false);
  }

  /** Deliver a signal to the remote process (`INT`, `TERM`, … without SIG). */
  signal(name: string): void {
    void this.channel.request('signal', encodeStringRequest(name.replace(/^SIG/, '')), false);
  }

  /** Send a BREAK (RFC 4335). */
  sendBreak(milliseconds = 0): Promise<boolean> {
    return this.channel.request('break', encodeBreak(milliseconds));
  }

  /** A refused request ends the session: close the channel (as ssh does) so that it does not linger on both sides. */
  private refused(what: string): SshError {
    this.close();
    return new SshError('ERR_SSH_CHANNEL_OPEN', DisconnectReason.BY_APPLICATION, `server refused ${what}`);
  }
}
