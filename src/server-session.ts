/**
 * A session channel on the server (RFC 4254 §6): one typed event per request the client makes
 * (pty, env, shell, exec, subsystem, window-change, signal, break), each accepted or rejected by
 * the application; the stream carries stdin (readable) and stdout (writable), `.stderr` writes
 * extended data, and `exit()` sends the exit status and closes.
 */
import type { Writable } from 'node:stream';
import { ChannelStream, stderrWritable, type ChannelStreamEvents } from './channel.js';
import type { MuxChannel } from './connection/mux.js';
import {
  decodeBreak,
  decodeEnv,
  decodePtyRequest,
  decodeStringRequest,
  decodeWindowChange,
  encodeExitSignal,
  encodeExitStatus,
  expectEmpty,
  type PtyRequest,
  type WindowChange,
} from './connection/session.js';

/** A request the application answers: call accept() or reject(); no listener means reject. */
export interface SessionRequest<T> {
  readonly details: T;
  accept(): void;
  reject(): void;
}

export interface ServerSessionEvents {
  pty: [request: SessionRequest<PtyRequest>];
  env: [request: SessionRequest<{ name: string; value: string }>];
  shell: [request: SessionRequest<Record<string, never>>];
  exec: [request: SessionRequest<{ command: string }>];
  subsystem: [request: SessionRequest<{ name: string }>];
  'window-change': [size: WindowChange];
  signal: [name: string];
  break: [request: SessionRequest<{ milliseconds: number }>];
  'auth-agent': [request: SessionRequest<Record<string, never>>];
  x11: [request: SessionRequest<Record<string, never>>];
}

/** Typed listeners for the session's request events (the stream's own events keep their types). */
export interface ServerSession {
  on<K extends keyof (ServerSessionEvents & ChannelStreamEvents)>(event: K, listener: (...args: (ServerSessionEvents & ChannelStreamEvents)[K]) => void): this;
  on(event: string | symbol, listener: (...args: never[]) => void): this;
  once<K extends keyof (ServerSessionEvents & ChannelStreamEvents)>(event: K, listener: (...args: (ServerSessionEvents & ChannelStreamEvents)[K]) => void): this;
  once(event: string | symbol, listener: (...args: never[]) => void): this;
  emit<K extends keyof (ServerSessionEvents & ChannelStreamEvents)>(event: K, ...args: (ServerSessionEvents & ChannelStreamEvents)[K]): boolean;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

type RequestEvent = 'pty' | 'env' | 'shell' | 'exec' | 'subsystem' | 'break' | 'auth-agent' | 'x11';

export class ServerSession extends ChannelStream {
  readonly stderr: Writable;
  /** The pty the client asked for and we accepted, if any. */
  pty: PtyRequest | undefined;
  /** Environment variables the client sent and the application accepted. */
  readonly env: Record<string, string> = {};
  private started = false;

  constructor(channel: MuxChannel) {
    super(channel, false);
    this.stderr = stderrWritable((chunk, callback) => this.writeExtended(chunk, callback));
    // Before the channel's pending writes fail: stderr writes then fail on a destroyed stream,
    // which does not emit an 'error' that could crash the server when a client vanishes.
    this.once('channel-close', () => this.stderr.destroy());
  }

  protected override handleRequest(
    type: string,
    _wantReply: boolean,
    data: Buffer,
    reply: (ok: boolean) => void,
  ): boolean | 'replied' {
    switch (type) {
      case 'pty-req': {
        if (this.started) return false;
        const pty = decodePtyRequest(data);
        return this.ask('pty', pty, reply, () => (this.pty = pty));
      }
      case 'env': {
        const env = decodeEnv(data);
        return this.ask('env', env, reply, () => (this.env[env.name] = env.value));
      }
      case 'shell':
        expectEmpty(data, 'shell');
        return this.start('shell', {}, reply);
      case 'exec':
        return this.start('exec', { command: decodeStringRequest(data, 'exec') }, reply);
      case 'subsystem':
        return this.start('subsystem', { name: decodeStringRequest(data, 'subsystem') }, reply);
      case 'window-change':
        this.emit('window-change', decodeWindowChange(data));
        return true;
      case 'signal':
        this.emit('signal', decodeStringRequest(data, 'signal'));
        return true;
      case 'break':
        return this.ask('break', { milliseconds: decodeBreak(data) }, reply);
      case 'auth-agent-req@openssh.com':
        expectEmpty(data, 'auth-agent-req');
        return this.ask('auth-agent', {}, reply);
      case 'x11-req':
        // X11 forwarding is not offered: refused politely (the client carries on without it).
        return this.ask('x11', {}, reply);
      case 'eow@openssh.com':
        return true;
      default:
        return false;
    }
  }

  /** Only one of shell, exec, subsystem per session (RFC 4254 §6.5). */
  private start(kind: 'shell' | 'exec' | 'subsystem', details: object, reply: (ok: boolean) => void): boolean | 'replied' {
    if (this.started) return false;
    return this.ask(kind, details, reply, () => (this.started = true));
  }

  /**
   * Emit the request to the application. accept() replies at once, before anything the
   * listener then writes; with no listener the request is refused.
   */
  private ask(event: RequestEvent, details: object, reply: (ok: boolean) => void, onAccept?: () => void): boolean | 'replied' {
    if (this.listenerCount(event) === 0) return false;
    let answered = false;
    const request = {
      details,
      accept: () => {
        if (answered) return;
        answered = true;
        onAccept?.();
        reply(true);
      },
      reject: () => {
        if (answered) return;
        answered = true;
        reply(false);
      },
    };
    this.emit(event, request);
    return 'replied';
  }

  /** Send the exit status, then EOF and CLOSE (as sshd does when the command ends). */
  exit(code: number): void {
    this.finishWith('exit-status', encodeExitStatus(code >>> 0));
  }

  /** Report death by a signal (`TERM`, without SIG), then EOF and CLOSE. */
  exitSignal(signal: string, coreDumped = false, message = ''): void {
    this.finishWith('exit-signal', encodeExitSignal({ signal: signal.replace(/^SIG/, ''), coreDumped, message }));
  }

  private finishWith(type: string, data: Buffer): void {
    const send = (): void => {
      void this.channel.request(type, data, false);
      this.channel.eof();
      this.channel.close();
    };
    // Output written before exit() goes first, stdout's and stderr's: wait until both have been
    // handed to the channel (closing drops what is still queued).
    const waiting = [this, this.stderr].filter((w: Writable) => w.writableLength > 0 || w.writableNeedDrain);
    if (waiting.length === 0) return send();
    let left = waiting.length;
    for (const w of waiting) {
      w.end(() => {
        if (--left === 0) send();
      });
    }
  }
}
