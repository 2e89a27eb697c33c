/**
 * The SSH server: `createServer(options)` listens (or serves any stream, as `sshd -i` does),
 * runs the transport and authentication for each connection through the application's hooks,
 * and hands it typed sessions and channel requests.
 */
import { EventEmitter } from 'node:events';
import { createServer as netCreateServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Endpoint, type EndpointHooks } from './endpoint.js';
import { AuthServer, type AuthLogEvent, type ServerAuthHooks } from './auth/server.js';
import type { MethodPolicy } from './auth/policy.js';
import type { SshPrivateKey } from './algorithms/types.js';
import type { KexInfo, TransportOptions } from './transport/transport.js';
import { resolveAlgorithms, IDENTIFICATION, debugFromEnvironment, type AlgorithmSettings } from './client.js';
import { adoptAcceptedSocket } from './transport-io.js';
import { ChannelOpenFailure, type ChannelOpenFailureCode } from './connection/messages.js';
import type { IncomingOpen, MuxChannel, OpenDecision } from './connection/mux.js';
import { ServerSession } from './server-session.js';
import { ChannelStream } from './channel.js';
import { DisconnectReason, SshError, TimeoutError } from './errors.js';
import { Reader } from './wire/reader.js';
import { Writer } from './wire/writer.js';
import { signatureAlgorithms } from './algorithms/registry.js';

export interface ServerOptions {
  readonly hostKeys: readonly SshPrivateKey[];
  /** The authentication hooks, or a function making them per connection (to see its address). */
  readonly auth: ServerAuthHooks | ((connection: ServerConnection) => ServerAuthHooks);
  readonly algorithms?: AlgorithmSettings;
  /** Methods offered; default: those with hooks. */
  readonly authMethods?: readonly string[];
  readonly authenticationMethods?: MethodPolicy;
  readonly maxAuthTries?: number;
  /** Drop connections not authenticated within this time (ms, default 120 s as OpenSSH). 0 = never. */
  readonly loginGraceTime?: number;
  readonly banner?: string;
  /** ClientAliveInterval (ms, 0 = off) and ClientAliveCountMax (default 3). */
  readonly keepaliveInterval?: number;
  readonly keepaliveCountMax?: number;
  readonly rekeyBytes?: number;
  readonly rekeyIntervalMs?: number;
  readonly debug?: (line: string, connection: ServerConnection) => void;
  /** Each accepted, partial or failed attempt, for logs like sshd's `Accepted publickey for alice`. */
  readonly authLog?: (event: AuthLogEvent, connection: ServerConnection) => void;
}

export interface DirectTcpipRequest {
  readonly host: string;
  readonly port: number;
  readonly originHost: string;
  readonly originPort: number;
}

export interface RemoteForwardRequest {
  readonly address: string;
  readonly port: number;
}

export interface ServerConnectionEvents {
  authenticated: [user: string, methods: readonly string[]];
  session: [session: ServerSession];
  'direct-tcpip': [request: DirectTcpipRequest, accept: () => ChannelStream, reject: (reason?: ChannelOpenFailureCode, description?: string) => void];
  'direct-streamlocal': [request: { readonly path: string }, accept: () => ChannelStream, reject: (reason?: ChannelOpenFailureCode, description?: string) => void];
  /** ssh -R: the client asks us to listen; accept with the bound port (needed when it asked for 0). */
  'tcpip-forward': [request: RemoteForwardRequest, accept: (boundPort: number) => void, reject: () => void];
  'cancel-tcpip-forward': [request: RemoteForwardRequest, done: (ok: boolean) => void];
  /** ssh -R with a Unix socket (streamlocal-forward@openssh.com, OpenSSH PROTOCOL §2.4). */
  'streamlocal-forward': [request: { readonly path: string }, accept: () => void, reject: () => void];
  'cancel-streamlocal-forward': [request: { readonly path: string }, done: (ok: boolean) => void];
  'global-request': [name: string, data: Buffer, reply: (result: boolean | Buffer) => void];
  rekey: [info: KexInfo];
  close: [error: SshError | undefined];
}

/**
 * The transport options of every connection a ServerOptions serves: made once and shared, since
 * they only depend on the options (a server with 1,000 connections holds one copy, not 1,000).
 */
const transportOptions = new WeakMap<ServerOptions, TransportOptions>();

function transportOptionsFor(options: ServerOptions): TransportOptions {
  let shared = transportOptions.get(options);
  if (!shared) {
    shared = Object.freeze({
      role: 'server',
      algorithms: resolveAlgorithms(options.algorithms),
      identification: IDENTIFICATION,
      hostKeys: options.hostKeys,
      rekeyBytes: options.rekeyBytes,
      rekeyIntervalMs: options.rekeyIntervalMs,
      services: SERVICES,
    });
    transportOptions.set(options, shared);
  }
  return shared;
}

const SERVICES = ['ssh-userauth'] as const;

/** One client connection on the server. */
export class ServerConnection extends EventEmitter<ServerConnectionEvents> {
  readonly endpoint: Endpoint;
  user: string | undefined;
  kexInfo: KexInfo | undefined;
  private auth: AuthServer | undefined;
  private noMoreSessions = false;
  private readonly options: ServerOptions;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    stream: Duplex,
    readonly remoteAddress: string | undefined,
    readonly remotePort: number | undefined,
    options: ServerOptions,
  ) {
    super();
    this.options = options;
    this.endpoint = new Endpoint(stream, transportOptionsFor(options), new ServerConnection.Hooks(this));
    const grace = options.loginGraceTime ?? 120_000;
    if (grace > 0) {
      this.graceTimer = setTimeout(() => {
        const error = new TimeoutError(`Timeout before authentication for ${remoteAddress ?? 'client'} port ${remotePort ?? 0}`);
        this.endpoint.disconnect(DisconnectReason.BY_APPLICATION, 'login grace time exceeded', error);
      }, grace);
      this.graceTimer.unref();
    }
  }

  /**
   * The endpoint's hooks for one connection. A class, so that the hooks are methods of one
   * prototype: an object of closures would cost every idle connection ~600 bytes (a function per
   * hook and their context). Declared in ServerConnection's body to reach its private members.
   */
  private static readonly Hooks = class implements EndpointHooks {
    /** DEBUG=tssh:server output, when the options name no debug callback. */
    private readonly environmentDebug: ((line: string) => void) | undefined;

    constructor(private readonly connection: ServerConnection) {
      this.environmentDebug = connection.options.debug ? undefined : debugFromEnvironment('server');
    }

    debug(line: string): void {
      const debug = this.connection.options.debug;
      if (debug) debug(line, this.connection);
      else this.environmentDebug?.(line);
    }

    authMessage(payload: Buffer): void {
      const connection = this.connection;
      // RFC 4252 §5.1: requests after USERAUTH_SUCCESS are ignored (the AuthServer is gone by then).
      if (connection.user !== undefined) return;
      if (!connection.auth) {
        connection.endpoint.disconnect(DisconnectReason.PROTOCOL_ERROR, 'userauth request before the ssh-userauth service was requested');
        return;
      }
      connection.auth.receive(payload);
    }

    ready(info: KexInfo): void {
      this.connection.kexInfo = info;
    }

    serviceStarted(): void {
      this.connection.startAuthentication();
    }

    closed(error: SshError | undefined): void {
      clearTimeout(this.connection.graceTimer);
      this.connection.emit('close', error);
    }

    rekey(info: KexInfo): void {
      this.connection.emit('rekey', info);
    }

    openRequested(request: IncomingOpen, channel: MuxChannel): OpenDecision | Promise<OpenDecision> {
      return this.connection.openRequested(request.type, request.data, channel);
    }

    globalRequest(name: string, _wantReply: boolean, data: Buffer): boolean | Buffer | Promise<boolean | Buffer> {
      return this.connection.globalRequest(name, data);
    }
  };

  /** The client asked for ssh-userauth: authentication runs until USERAUTH_SUCCESS. */
  private startAuthentication(): void {
    const options = this.options;
    const transport = this.endpoint.transport;
    this.auth = new AuthServer(
      {
        sessionId: transport.sessionId!,
        hostKeyBlob: transport.serverHostKey?.blob,
        hooks: typeof options.auth === 'function' ? options.auth(this) : options.auth,
        methods: options.authMethods,
        authenticationMethods: options.authenticationMethods,
        maxAuthTries: options.maxAuthTries,
        banner: options.banner,
      },
      {
        send: (payload) => transport.send(payload),
        success: (user, methods) => {
          transport.setAuthenticated();
          clearTimeout(this.graceTimer);
          this.graceTimer = undefined;
          this.user = user;
          // Nothing of the exchange is needed any more: let it (and the keys it parsed) go.
          this.auth = undefined;
          this.endpoint.startConnection();
          this.endpoint.startKeepalive(options.keepaliveInterval ?? 0, options.keepaliveCountMax ?? 3);
          this.announceHostKeys();
          this.emit('authenticated', user, methods);
        },
        fail: (error) => this.endpoint.disconnect(error.reason, error.message, error),
        log: options.authLog ? (event) => options.authLog!(event, this) : undefined,
        hold: () => this.endpoint.holdOutput(),
        release: () => this.endpoint.releaseOutput(),
      },
    );
  }

  get sessionId(): Buffer | undefined {
    return this.kexInfo?.sessionId;
  }

  get algorithms(): KexInfo['algorithms'] | undefined {
    return this.kexInfo?.algorithms;
  }

  start(): void {
    this.endpoint.start();
  }

  end(): void {
    this.endpoint.disconnect();
  }

  /** Close the socket at once, before or instead of any protocol exchange. */
  drop(): void {
    this.endpoint.destroy();
  }

  private openRequested(type: string, data: Buffer, channel: MuxChannel): OpenDecision | Promise<OpenDecision> {
    const refuse = (reason: ChannelOpenFailureCode, description: string): OpenDecision => ({ reason, description });
    if (type === 'session') {
      if (this.noMoreSessions) return refuse(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'no more sessions (no-more-sessions@openssh.com)');
      if (this.listenerCount('session') === 0) return refuse(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'sessions are not accepted');
      const session = new ServerSession(channel);
      // Announced once the confirmation has gone out.
      queueMicrotask(() => this.emit('session', session));
      return { accept: session.events };
    }
    if (type === 'direct-tcpip') {
      const r = new Reader(data, 0, data.length, 'direct-tcpip');
      const request: DirectTcpipRequest = { host: r.utf8(), port: r.uint32(), originHost: r.utf8(), originPort: r.uint32() };
      r.done();
      if (this.listenerCount('direct-tcpip') === 0) return refuse(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'port forwarding is disabled');
      return new Promise<OpenDecision>((resolve) => {
        this.emit(
          'direct-tcpip',
          request,
          () => {
            const stream = new ChannelStream(channel, false, { closeWhenDone: true });
            resolve({ accept: stream.events });
            return stream;
          },
          (reason = ChannelOpenFailure.CONNECT_FAILED, description = 'connect failed') => resolve(refuse(reason, description)),
        );
      });
    }
    if (type === 'direct-streamlocal@openssh.com') {
      const r = new Reader(data, 0, data.length, 'direct-streamlocal');
      const path = r.utf8();
      r.string();
      r.uint32();
      r.done();
      if (this.listenerCount('direct-streamlocal') === 0) return refuse(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'stream local forwarding is disabled');
      return new Promise<OpenDecision>((resolve) => {
        this.emit(
          'direct-streamlocal',
          { path },
          () => {
            const stream = new ChannelStream(channel, false, { closeWhenDone: true });
            resolve({ accept: stream.events });
            return stream;
          },
          (reason = ChannelOpenFailure.CONNECT_FAILED, description = 'connect failed') => resolve(refuse(reason, description)),
        );
      });
    }
    return refuse(ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE, `unknown channel type ${type}`);
  }

  private globalRequest(name: string, data: Buffer): boolean | Buffer | Promise<boolean | Buffer> {
    switch (name) {
      case 'keepalive@openssh.com':
        return false; // any reply proves us alive; OpenSSH replies failure too
      case 'no-more-sessions@openssh.com':
        // OpenSSH PROTOCOL §2.2: the client promises to open no more sessions; hold it to that.
        this.noMoreSessions = true;
        return false;
      case 'hostkeys-prove-00@openssh.com':
        return this.proveHostKeys(data);
      case 'tcpip-forward':
      case 'cancel-tcpip-forward': {
        const r = new Reader(data, 0, data.length, name);
        const request: RemoteForwardRequest = { address: r.utf8(), port: r.uint32() };
        r.done();
        if (this.listenerCount(name) === 0) return false;
        return new Promise((resolve) => {
          if (name === 'tcpip-forward') {
            this.emit(
              'tcpip-forward',
              request,
              // RFC 4254 §7.1: the reply names the port only when the client asked for port 0.
              (boundPort) => resolve(request.port === 0 ? new Writer(4).uint32(boundPort).finish() : true),
              () => resolve(false),
            );
          } else {
            this.emit('cancel-tcpip-forward', request, (ok) => resolve(ok));
          }
        });
      }
      case 'streamlocal-forward@openssh.com':
      case 'cancel-streamlocal-forward@openssh.com': {
        const r = new Reader(data, 0, data.length, name);
        const request = { path: r.utf8() };
        r.done();
        const event = name === 'streamlocal-forward@openssh.com' ? 'streamlocal-forward' : 'cancel-streamlocal-forward';
        if (this.listenerCount(event) === 0) return false;
        return new Promise((resolve) => {
          if (event === 'streamlocal-forward') this.emit('streamlocal-forward', request, () => resolve(true), () => resolve(false));
          else this.emit('cancel-streamlocal-forward', request, (ok) => resolve(ok));
        });
      }
      default:
        if (this.listenerCount('global-request') === 0) return false;
        return new Promise((resolve) => this.emit('global-request', name, data, resolve));
    }
  }

  /** OpenSSH PROTOCOL §2.5: tell the client every host key we have, so it can learn new ones. */
  private announceHostKeys(): void {
    const w = new Writer(1024);
    for (const key of this.options.hostKeys) w.string(key.publicKey.blob);
    void this.endpoint.mux?.globalRequest('hostkeys-00@openssh.com', w.finish(), false);
  }

  /** Sign "hostkeys-prove-00@openssh.com" || session id || key for each key the client asks about. */
  private proveHostKeys(data: Buffer): Buffer | false {
    const r = new Reader(data, 0, data.length, 'hostkeys-prove-00@openssh.com');
    const out = new Writer(1024);
    const negotiated = this.kexInfo?.algorithms.hostKey ?? '';
    while (r.remaining > 0) {
      const blob = r.string();
      const key = this.options.hostKeys.find((k) => k.publicKey.blob.equals(blob));
      if (!key) return false;
      const algorithm =
        key.type === 'ssh-rsa' ? (negotiated.startsWith('rsa-sha2-') ? negotiated : 'rsa-sha2-512') : key.type;
      const signer = signatureAlgorithms.all.get(algorithm);
      if (!signer) return false;
      const signed = new Writer(256).string('hostkeys-prove-00@openssh.com').string(this.sessionId!).string(blob).finish();
      out.string(signer.sign(key, signed));
    }
    return out.finish();
  }

  /** Open a forwarded-tcpip channel to the client for a connection accepted on its remote forward. */
  async openForwardedTcpip(address: string, port: number, originAddress: string, originPort: number): Promise<ChannelStream> {
    const mux = this.endpoint.mux;
    if (!mux) throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'not authenticated');
    let stream!: ChannelStream;
    const data = new Writer(64).string(address).uint32(port).string(originAddress).uint32(originPort).finish();
    await mux.open('forwarded-tcpip', data, (channel) => (stream = new ChannelStream(channel, false, { closeWhenDone: true })).events);
    return stream;
  }

  /** Open a forwarded-streamlocal@openssh.com channel for a connection to a Unix socket the client asked us to listen on. */
  async openForwardedStreamLocal(path: string): Promise<ChannelStream> {
    const mux = this.endpoint.mux;
    if (!mux) throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'not authenticated');
    let stream!: ChannelStream;
    // OpenSSH PROTOCOL §2.4: the socket path, then a reserved string.
    const data = new Writer(64).string(path).string('').finish();
    await mux.open('forwarded-streamlocal@openssh.com', data, (channel) => (stream = new ChannelStream(channel, false, { closeWhenDone: true })).events);
    return stream;
  }

  /** Open an auth-agent@openssh.com channel to the client (agent forwarding it asked for). */
  async openAgentChannel(): Promise<ChannelStream> {
    const mux = this.endpoint.mux;
    if (!mux) throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'not authenticated');
    let stream!: ChannelStream;
    await mux.open('auth-agent@openssh.com', Buffer.alloc(0), (channel) => (stream = new ChannelStream(channel, false, { closeWhenDone: true })).events);
    return stream;
  }

}

export interface SshServerEvents {
  connection: [connection: ServerConnection];
  error: [error: Error];
  close: [];
}

/** The connection reports a socket's error; this listener only keeps it from crashing the process. One function for every socket. */
function ignoreSocketError(): void {}

/** Listens for connections (or takes streams) and serves each with the same options. */
export class SshServer extends EventEmitter<SshServerEvents> {
  private netServer: NetServer | undefined;
  private readonly connections = new Set<ServerConnection>();
  /**
   * Every connection's 'close' listener: one function for all (EventEmitter calls it with the
   * connection as `this`), not a closure kept by each idle connection. 'on', not 'once': a
   * connection closes once, and once() would keep a wrapper per connection.
   */
  private readonly forget: (this: ServerConnection) => void;

  constructor(readonly options: ServerOptions) {
    super();
    if (options.hostKeys.length === 0) throw new RangeError('createServer needs at least one host key');
    const connections = this.connections;
    this.forget = function (this: ServerConnection) {
      connections.delete(this);
    };
  }

  /** Serve one connection over any byte stream (inetd mode, tests, a custom transport). */
  handle(stream: Duplex, remoteAddress?: string, remotePort?: number): ServerConnection {
    const connection = new ServerConnection(stream, remoteAddress, remotePort, this.options);
    this.connections.add(connection);
    connection.on('close', this.forget);
    this.emit('connection', connection);
    connection.start();
    return connection;
  }

  /** Listen on host:port (port 0 picks a free one); resolves with the bound address. */
  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      // Paused, so that adoptAcceptedSocket can move each connection to reads into a shared
      // buffer before the first byte is read.
      const server = netCreateServer({ pauseOnConnect: true }, (accepted: Socket) => {
        const socket = adoptAcceptedSocket(accepted);
        socket.setNoDelay(true);
        socket.on('error', ignoreSocketError);
        this.handle(socket, socket.remoteAddress, socket.remotePort);
      });
      this.netServer = server;
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', (error) => this.emit('error', error));
        resolve(server.address() as AddressInfo);
      });
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stop listening and disconnect every client; resolves when all are closed. */
  async close(): Promise<void> {
    // net.Server#close waits only for the listener: adopted sockets are not in its count.
    const closing = [this.netServer ? new Promise<void>((resolve) => this.netServer!.close(() => resolve())) : Promise.resolve()];
    for (const connection of this.connections) {
      closing.push(new Promise<void>((resolve) => connection.once('close', () => resolve())));
      connection.end();
    }
    await Promise.all(closing);
    this.emit('close');
  }
}

export function createServer(options: ServerOptions): SshServer {
  return new SshServer(options);
}
