/**
 * The SSH client: `connect(options)` resolves once the server is verified and we are
 * authenticated; the client then runs commands, shells and subsystems and opens forwarded
 * channels, each a Node stream with back-pressure.
 */
import { joinStreams } from './forwarding/join.js';
import { EventEmitter } from 'node:events';
import { connect as netConnect, createServer as createNetServer, Socket, type Server as NetServer } from 'node:net';
import { createSocksServer } from './forwarding/socks.js';
import type { Duplex } from 'node:stream';
import { Endpoint } from './endpoint.js';
import { connectTcp } from './transport-io.js';
import { AuthClient, type ClientAuthOptions, type ClientIdentity } from './auth/client.js';
import type { SshPrivateKey, SshPublicKey } from './algorithms/types.js';
import {
  applyAlgorithmSetting,
  cipherAlgorithms,
  compressionAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
} from './algorithms/registry.js';
import type { AlgorithmLists, KexInfo } from './transport/transport.js';
import { ChannelOpenFailure } from './connection/messages.js';
import { ClientSession, type ExecResult, type PtyOptions } from './client-session.js';
import { ChannelStream } from './channel.js';
import { HostKeyError, SshError, TimeoutError, DisconnectReason } from './errors.js';
import { Writer } from './wire/writer.js';
import { HostKeyVerifier } from './keys/host-key-verifier.js';
import type {
  AlgorithmSettings,
  ConnectOptions,
  KnownHostsSettings,
  ResolvedConnectOptions,
  SshConfigConnectOptions,
} from './client-options.js';
import { planFromSshConfig, planFromSshOptions, type ConnectionPlan } from './client-config.js';
import { recordAnnouncedHostKeys } from './host-key-updates.js';
import { knownHostsName } from './keys/known-hosts.js';
import type { SshOptions } from './config/ssh-config.js';
import { homedir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { AgentClient, AgentServer, type SshAgent } from './keys/agent.js';
import { Reader } from './wire/reader.js';
import type { MuxChannel, OpenDecision } from './connection/mux.js';
import { parsePrivateKeyFile } from './keys/private-key-file.js';
import { parsePublicKeyBlob } from './keys/public-key.js';
import { join } from 'node:path';

export type {
  AlgorithmSettings,
  CommonConnectOptions,
  ConnectOptions,
  HostKeyContext,
  KnownHostsCommon,
  KnownHostsOptions,
  PasswordContext,
  ResolvedConnectOptions,
  SshConfigConnectOptions,
  SshConfigSource,
} from './client-options.js';

export const VERSION = '0.1.0';
export const IDENTIFICATION = `SSH-2.0-tssh_${VERSION}`;

export function resolveAlgorithms(settings: AlgorithmSettings = {}): AlgorithmLists {
  return {
    kex: applyAlgorithmSetting(kexAlgorithms, settings.kex),
    hostKey: applyAlgorithmSetting(signatureAlgorithms, settings.hostKey),
    cipher: applyAlgorithmSetting(cipherAlgorithms, settings.cipher),
    mac: applyAlgorithmSetting(macAlgorithms, settings.mac),
    compression: applyAlgorithmSetting(compressionAlgorithms, settings.compression ?? 'none'),
  };
}

function knownHostsVerifier(
  options: KnownHostsSettings = {},
  host: string,
  port: number,
  address: () => string | undefined,
): (key: SshPublicKey) => Promise<boolean> {
  const home = homedir();
  return new HostKeyVerifier({
    userKnownHostsFiles: options.files ?? [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')],
    globalKnownHostsFiles: options.globalFiles ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    policy: options.policy ?? 'strict',
    hashKnownHosts: options.hash,
    onWarning: options.onWarning,
    ask: options.ask,
  }).callback(host, port, { alias: options.hostKeyAlias, address });
}

/** A connection the server forwarded to us (forwarded-tcpip, RFC 4254 §7.2). */
export interface ForwardedConnection {
  readonly address: string;
  readonly port: number;
  readonly originAddress: string;
  readonly originPort: number;
}

/** Join a forwarded agent channel to our agent (a socket path, or an SshAgent served in process). */
function connectAgentChannel(stream: ChannelStream, agent: SshAgent | string): void {
  if (typeof agent === 'string') {
    const socket = netConnect(agent);
    joinStreams(socket, stream);
  } else {
    void new AgentServer(agent).serve(stream);
  }
}

function listenOn(server: NetServer, port: number, host: string): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. */
  readonly stdin?: string | Buffer;
  readonly pty?: PtyOptions;
  readonly env?: Record<string, string>;
  /** Abort: the channel is closed and the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Race `work` against `signal`: an abort closes the session's channel and rejects. */
function withAbort<T>(signal: AbortSignal | undefined, session: ClientSession, work: Promise<T>): Promise<T> {
  return abortable(signal, work, () => session.close());
}

/**
 * Race `work` against `signal`: an abort rejects with the signal's reason and runs `cleanup`, now
 * and again if the work still completes later (a channel confirmed after the abort is closed).
 */
function abortable<T>(signal: AbortSignal | undefined, work: Promise<T>, cleanup: () => void): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    cleanup();
    void work.then(cleanup, () => {});
    return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      cleanup();
      void work.then(cleanup, () => {});
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * `DEBUG=tssh:*` (or `tssh:client`, `tssh:server`) prints each protocol step to stderr, as
 * `ssh -vvv` does, when no debug callback was given. Secrets are never part of these lines.
 */
export function debugFromEnvironment(role: 'client' | 'server'): ((line: string) => void) | undefined {
  const patterns = (process.env.DEBUG ?? '').split(/[\s,]+/).filter(Boolean);
  const enabled = patterns.some((p) => p === '*' || p === 'tssh:*' || p === `tssh:${role}`);
  return enabled ? (line) => process.stderr.write(`tssh:${role} ${line}\n`) : undefined;
}

export interface ClientEvents {
  banner: [message: string];
  /** The server announced its host keys (hostkeys-00@openssh.com); proveHostKeys() checks them. */
  hostkeys: [keys: SshPublicKey[]];
  rekey: [info: KexInfo];
  close: [error: SshError | undefined];
}

function identityFromKey(key: SshPrivateKey): ClientIdentity {
  const signNow = (data: Buffer, algorithm: string): Buffer => {
    const signer = signatureAlgorithms.all.get(algorithm);
    if (!signer || signer.keyType !== key.type) throw new Error(`cannot sign ${algorithm} with a ${key.type} key`);
    return signer.sign(key, data);
  };
  return {
    publicKey: key.publicKey,
    source: `${key.type} key`,
    local: true,
    signNow,
    sign: async (data, algorithm) => signNow(data, algorithm),
  };
}

async function agentIdentities(client: SshAgent | undefined, debug?: (line: string) => void): Promise<ClientIdentity[]> {
  if (client === undefined) return [];
  try {
    const list = await client.listIdentities();
    return list.map((identity) => ({
      publicKey: identity.publicKey,
      source: `agent: ${identity.comment}`,
      sign: (data, algorithm) => client.sign(identity.publicKey.blob, data, algorithm),
    }));
  } catch (error) {
    debug?.(`agent: ${(error as Error).message}`);
    return [];
  }
}

async function keyFileIdentities(
  paths: readonly string[],
  passphrase: ConnectOptions['passphrase'],
  debug?: (line: string) => void,
): Promise<ClientIdentity[]> {
  const out: ClientIdentity[] = [];
  for (const path of paths) {
    try {
      const data = await readFile(path);
      const parsed = await parsePrivateKeyFile(data, {
        passphrase: typeof passphrase === 'function' ? async () => passphrase(path) : passphrase,
      });
      out.push({ ...identityFromKey(parsed.key), source: path });
    } catch (error) {
      // ssh goes on with its other identities when one key cannot be loaded; so do we.
      debug?.(`Load key "${path}": ${(error as Error).message}`);
    }
  }
  return out;
}

/**
 * Key files read without asking for anything: their identities, or undefined when one of them is
 * encrypted or cannot be loaded (keyFileIdentities then loads them when publickey is tried, asking
 * for passphrases and logging what fails, as before).
 */
async function keyFilesWithoutPassphrase(paths: readonly string[]): Promise<ClientIdentity[] | undefined> {
  const out: ClientIdentity[] = [];
  for (const path of paths) {
    try {
      const parsed = await parsePrivateKeyFile(await readFile(path), {
        passphrase: () => {
          throw new Error('encrypted');
        },
      });
      out.push({ ...identityFromKey(parsed.key), source: path });
    } catch {
      return undefined;
    }
  }
  return out;
}

export class SshClient extends EventEmitter<ClientEvents> {
  private endpoint!: Endpoint;
  private kexInfo: KexInfo | undefined;

  private constructor() {
    super();
  }

  /** Connect, verify the host key, authenticate: the same as connect(). */
  static connect(options: ConnectOptions | SshConfigConnectOptions): Promise<SshClient> {
    if (!readsSshConfig(options)) return new SshClient().start(options);
    return Promise.resolve()
      .then(() => planFromSshConfig(options))
      .then((plan) => SshClient.connectPlanned(plan));
  }

  /** Connect with options resolved from ssh_config beforehand: the same as connectWithSshOptions(). */
  static connectWithSshOptions(destination: SshOptions, options: ResolvedConnectOptions = {}): Promise<SshClient> {
    return Promise.resolve()
      .then(() => planFromSshOptions(destination, options))
      .then((plan) => SshClient.connectPlanned(plan));
  }

  /** Carry out a plan: each ProxyJump hop through the one before, then the destination through the last. */
  private static async connectPlanned(plan: ConnectionPlan): Promise<SshClient> {
    const hops: SshClient[] = [];
    const endHops = (): void => {
      for (const hop of [...hops].reverse()) void hop.end();
    };
    try {
      let previous: SshClient | undefined;
      for (const hop of plan.hops) {
        plan.debug?.(`Connecting to jump host ${hop.hostName} port ${hop.port}.`);
        const sock = previous ? await previous.forwardOut(hop.hostName, hop.port) : await hop.open();
        previous = await new SshClient().start({ ...hop.options, sock });
        hops.push(previous);
      }
      const { target } = plan;
      const sock = plan.sock ?? (previous ? await previous.forwardOut(target.hostName, target.port) : await target.open());
      const client = await new SshClient().start({ ...target.options, sock });
      plan.debug?.(`Authenticated to ${target.hostName} ([${target.hostName}]:${target.port}).`);
      client.once('close', endHops);
      return client;
    } catch (error) {
      endHops();
      throw error;
    }
  }

  get sessionId(): Buffer | undefined {
    return this.kexInfo?.sessionId;
  }

  get algorithms(): KexInfo['algorithms'] | undefined {
    return this.kexInfo?.algorithms;
  }

  get serverHostKey(): SshPublicKey | undefined {
    return this.endpoint.transport.serverHostKey;
  }

  get serverIdentification(): string | undefined {
    return this.endpoint.transport.peer?.line;
  }

  private start(input: StartOptions): Promise<SshClient> {
    const options: StartOptions = { ...input, debug: input.debug ?? debugFromEnvironment('client') };
    const host = options.host ?? 'localhost';
    const port = options.port ?? 22;
    return new Promise<SshClient>((resolve, reject) => {
      // An agent given by its socket path: our connection to it (opened on first use), closed once
      // authentication is over.
      const ownAgent = typeof options.agent === 'string' ? new AgentClient({ socketPath: options.agent }) : undefined;
      const agent = ownAgent ?? (options.agent as SshAgent | undefined);
      let settled = false;
      const finish = (error?: SshError | Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Authentication is over: our keys sign nothing more on this connection.
        void ownAgent?.close();
        options.signal?.removeEventListener('abort', onAbort);
        if (error) {
          this.endpoint?.disconnect(DisconnectReason.BY_APPLICATION, error.message);
          reject(error);
        } else resolve(this);
      };
      const readyTimeout = options.readyTimeout ?? 20000;
      let timer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        timer = setTimeout(() => finish(new TimeoutError(`timed out after ${readyTimeout} ms connecting to ${host}:${port}`)), readyTimeout);
      };
      arm();
      // The clock stops while a callback waits for a person (a password, a host key question) and
      // starts again, from zero, once it has answered: readyTimeout is for the network.
      let asking = 0;
      const untimed = <A extends unknown[], R>(callback: (...args: A) => R | Promise<R>): ((...args: A) => Promise<R>) => {
        return async (...args: A): Promise<R> => {
          asking++;
          clearTimeout(timer);
          try {
            return await callback(...args);
          } finally {
            if (--asking === 0 && !settled) arm();
          }
        };
      };
      const onAbort = (): void => finish(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('aborted'));
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });

      let stream: Duplex;
      if (options.sock) stream = options.sock;
      else {
        const socket: Socket = connectTcp({ host, port });
        socket.once('error', (error) => finish(new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, `connect to ${host} port ${port}: ${error.message}`, { cause: error })));
        stream = socket;
      }
      let auth: AuthClient | undefined;
      const verifyHostKey = options.verifyHostKey;
      // The server's address, for a StrictHostKeyChecking=ask question; unknown through a proxy.
      const address = (): string | undefined => (stream instanceof Socket ? stream.remoteAddress : undefined);
      const givenKnownHosts = options.knownHosts;
      const ask = givenKnownHosts?.ask;
      const knownHosts = knownHostsVerifier(givenKnownHosts && { ...givenKnownHosts, ask: ask && untimed(ask) }, host, port, address);
      // When every identity is known by the time authentication starts, the first goes before
      // `none` (AuthClient.start). Keys given in memory are known at once; while the key exchange
      // runs, key files are read if none of them wants a passphrase, and the agent is asked for its
      // list. Otherwise (a file that wants a passphrase, which a server without publickey should
      // never make anyone type) everything loads only if publickey is tried, after `none`.
      const files = options.privateKeyFiles ?? [];
      const publicKeyFirst = (options.authMethods?.[0] ?? 'publickey') === 'publickey';
      let preloadedFiles: ClientIdentity[] | undefined = files.length === 0 ? [] : undefined;
      let preloadedAgent: ClientIdentity[] | undefined = options.agent === undefined ? [] : undefined;
      const agentList = publicKeyFirst && agent !== undefined ? agentIdentities(agent, options.debug) : undefined;
      if (publicKeyFirst) {
        if (files.length > 0) keyFilesWithoutPassphrase(files).then((loaded) => (preloadedFiles = loaded), () => {});
        void agentList?.then((loaded) => (preloadedAgent = loaded));
      }
      const identities = (): ClientAuthOptions['identities'] =>
        preloadedAgent !== undefined && preloadedFiles !== undefined
          ? [
              ...preloadedAgent,
              ...(options.privateKeys ?? []).map((key) => identityFromKey(key)),
              ...preloadedFiles,
              ...(options.identities ?? []),
            ]
          : async (): Promise<ClientIdentity[]> => [
              ...(await (agentList ?? agentIdentities(agent, options.debug))),
              ...(options.privateKeys ?? []).map((key) => identityFromKey(key)),
              ...(await keyFileIdentities(options.privateKeyFiles ?? [], typeof passphrase === 'function' ? untimed(passphrase) : passphrase, options.debug)),
              ...(options.identities ?? []),
            ];
      const password = options.password;
      const passphrase = options.passphrase;
      /** server-sig-algs, and the host key blob when the server takes publickey-hostbound, from its EXT_INFO. */
      const serverExtensions = (): [readonly string[] | undefined, Buffer | undefined] => {
        const transport = this.endpoint.transport;
        const hostbound = transport.peerExtensions.get('publickey-hostbound@openssh.com')?.toString() === '0';
        return [transport.peerExtensions.get('server-sig-algs')?.toString('latin1').split(','), hostbound ? transport.serverHostKey?.blob : undefined];
      };
      const startAuth = (identityList: ClientAuthOptions['identities']): void => {
        const transport = this.endpoint.transport;
        const [serverSigAlgs, hostboundKey] = serverExtensions();
        auth = new AuthClient(
          {
            user: options.username,
            sessionId: this.kexInfo!.sessionId,
            methods: options.authMethods,
            identities: identityList,
            password:
              typeof password === 'string'
                ? (attempt) => (attempt === 1 ? password : undefined)
                : password && untimed((attempt: number) => password(attempt, { username: options.username, host, port })),
            keyboardInteractive: options.keyboardInteractive && untimed(options.keyboardInteractive),
            changePassword: options.changePassword && untimed(options.changePassword),
            serverSigAlgs,
            acceptedAlgorithms: options.publicKeyAlgorithms,
            hostboundKey,
          },
          {
            send: (payload) => transport.send(payload),
            success: () => {
              transport.setAuthenticated();
              this.endpoint.startConnection();
              this.endpoint.startKeepalive(options.keepaliveInterval ?? 0, options.keepaliveCountMax ?? 3);
              if (options.knownHosts?.updateHostKeys === true && verifyHostKey === undefined) this.updateHostKeys(options.knownHosts, host, port, options.debug);
              finish();
            },
            fail: (error) => finish(error),
            banner: (message) => this.emit('banner', message),
            debug: options.debug,
          },
        );
        auth.start();
      };
      this.endpoint = new Endpoint(
        stream,
        {
          role: 'client',
          algorithms: resolveAlgorithms(options.algorithms),
          identification: IDENTIFICATION,
          verifyHostKey: (key, algorithm) => (verifyHostKey ? verifyHostKey(key, { host, port, algorithm }) : knownHosts(key)),
          rekeyBytes: options.rekeyBytes,
          rekeyIntervalMs: options.rekeyIntervalMs,
          guessKex: options.guessKex ?? (guessedWrongLately(`${host}:${port}`) ? false : undefined),
        },
        {
          authMessage: (payload) => auth?.receive(payload),
          ready: (info) => {
            this.kexInfo = info;
            if (info.guess) noteGuess(`${host}:${port}`, info.guess);
            this.endpoint.transport.requestService('ssh-userauth');
            // The first request may follow at once (pipelineAuthentication); the EXT_INFO that
            // comes before the SERVICE_ACCEPT then reaches it through serverExtensions(). Not with
            // delayed compression (zlib@openssh.com): the IGNORE sent when the accept arrives
            // could cross the server's USERAUTH_SUCCESS, after which the server expects only
            // compressed packets.
            const delayedCompression = [info.algorithms.compressionClientToServer, info.algorithms.compressionServerToClient].some(
              (name) => compressionAlgorithms.all.get(name)?.delayed === true,
            );
            if (options.pipelineAuthentication === false || delayedCompression) return;
            const first = identities();
            if (AuthClient.startsWithLocalKey(options.authMethods, first)) startAuth(first);
          },
          serviceAccepted: (service) => {
            if (service !== 'ssh-userauth') return;
            if (!auth) return startAuth(identities());
            auth.serverExtensions(...serverExtensions());
            // Our request went before this accept arrived, so nothing we send answers it, and a
            // server with Nagle's algorithm on (sshd before authentication) holds its reply to the
            // request until this accept is ACKed, which our kernel delays by up to 40 ms. An IGNORE
            // (RFC 4253 §11.2) carries the ACK at once, as for hostkeys-00 below, unless the reply
            // came with the accept and our next request goes anyway.
            this.endpoint.acknowledgeSoon();
          },
          closed: (error) => {
            if (!settled) finish(error ?? new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'connection closed before authentication'));
            this.emit('close', error);
          },
          rekey: (info) => this.emit('rekey', info),
          // A client accepts no channels unless a forwarding asked for them (see forwardIn).
          openRequested: (request, channel) => this.incomingChannel(request.type, request.data, channel),
          globalRequest: (name, _wantReply, data) => {
            if (name === 'hostkeys-00@openssh.com') {
              this.onHostKeysAnnounced(data, options.debug);
              // sshd sends this unasked just after authentication, with Nagle's algorithm still on
              // (it turns it off only for interactive sessions). If our CHANNEL_OPEN crossed it,
              // sshd's OPEN_CONFIRMATION waits behind this unacknowledged announcement until our
              // delayed ACK fires, 40 ms on Linux, since nothing else goes back. A packet now carries
              // the ACK at once: SSH_MSG_IGNORE, which a peer must accept at any time (RFC 4253 §11.2),
              // unless the channel request our application makes now carries it.
              this.endpoint?.acknowledgeSoon();
              return false;
            }
            options.debug?.(`server global request ${name} refused`);
            return false;
          },
          debug: options.debug,
        },
      );
      this.endpoint.start();
    });
  }

  /** Handlers for forwarded-tcpip channels, by "address:port" as the server reports them. */
  private readonly remoteForwards = new Map<string, (stream: ChannelStream, info: ForwardedConnection) => void>();
  private agentForwarding: SshAgent | string | undefined;
  private readonly remoteStreamLocalForwards = new Map<string, (stream: ChannelStream) => void>();

  /**
   * ssh -R with a Unix socket on the server (streamlocal-forward@openssh.com): each connection to
   * `socketPath` there reaches `handler` as a stream.
   */
  async forwardInStreamLocal(socketPath: string, handler: (stream: ChannelStream) => void): Promise<{ cancel(): Promise<boolean> }> {
    const reply = await this.mux.globalRequest('streamlocal-forward@openssh.com', new Writer(64).string(socketPath).finish(), true);
    if (reply === false) {
      throw new SshError('ERR_SSH_CHANNEL_OPEN', DisconnectReason.BY_APPLICATION, `remote forwarding failed for socket ${socketPath}`);
    }
    this.remoteStreamLocalForwards.set(socketPath, handler);
    return {
      cancel: async () => {
        this.remoteStreamLocalForwards.delete(socketPath);
        return (await this.mux.globalRequest('cancel-streamlocal-forward@openssh.com', new Writer(64).string(socketPath).finish(), true)) !== false;
      },
    };
  }

  /** Channels the server opens: forwarded-tcpip for our forwardIn(), auth-agent for agent forwarding. */
  private incomingChannel(type: string, data: Buffer, channel: MuxChannel): OpenDecision {
    const refuse = (description: string): OpenDecision => ({ reason: ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, description });
    if (type === 'forwarded-tcpip') {
      const r = new Reader(data, 0, data.length, 'forwarded-tcpip');
      const info: ForwardedConnection = { address: r.utf8(), port: r.uint32(), originAddress: r.utf8(), originPort: r.uint32() };
      r.done();
      const handler = this.remoteForwards.get(`${info.address}:${info.port}`) ?? this.remoteForwards.get(`*:${info.port}`);
      if (!handler) return refuse(`no forwarding for ${info.address}:${info.port}`);
      const stream = new ChannelStream(channel, false, { closeWhenDone: true });
      queueMicrotask(() => handler(stream, info));
      return { accept: stream.events };
    }
    if (type === 'forwarded-streamlocal@openssh.com') {
      const r = new Reader(data, 0, data.length, 'forwarded-streamlocal');
      const path = r.utf8();
      r.string();
      r.done();
      const handler = this.remoteStreamLocalForwards.get(path);
      if (!handler) return refuse(`no forwarding for ${path}`);
      const stream = new ChannelStream(channel, false, { closeWhenDone: true });
      queueMicrotask(() => handler(stream));
      return { accept: stream.events };
    }
    if (type === 'auth-agent@openssh.com' && this.agentForwarding !== undefined) {
      const stream = new ChannelStream(channel, false, { closeWhenDone: true });
      const agent = this.agentForwarding;
      queueMicrotask(() => connectAgentChannel(stream, agent));
      return { accept: stream.events };
    }
    return refuse(`${type} channels are not accepted`);
  }

  private onHostKeysAnnounced(data: Buffer, debug?: (line: string) => void): void {
    const r = new Reader(data, 0, data.length, 'hostkeys-00@openssh.com');
    const blobs: Buffer[] = [];
    while (r.remaining > 0) blobs.push(Buffer.from(r.string()));
    // Decoding a key means importing it into node:crypto: done when someone asks (announcedHostKeys,
    // a 'hostkeys' listener, UpdateHostKeys), not for every connection that never looks.
    this.announced = { blobs, keys: undefined, debug };
    if (this.listenerCount('hostkeys') > 0) this.emit('hostkeys', this.announcedHostKeys!);
  }

  /** UpdateHostKeys: record the host keys the server announces, once it proves them (./host-key-updates.ts). */
  private updateHostKeys(settings: KnownHostsSettings, host: string, port: number, debug: ((line: string) => void) | undefined): void {
    const home = homedir();
    const learn = (announced: SshPublicKey[]): void => {
      const current = this.serverHostKey;
      if (current === undefined) return;
      recordAnnouncedHostKeys({
        name: settings.hostKeyAlias ?? knownHostsName(host, port),
        files: settings.files ?? [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')],
        globalFiles: settings.globalFiles ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
        hash: settings.hash === true,
        current,
        announced,
        prove: (keys) => this.proveHostKeys(keys),
        debug,
      }).catch((error: unknown) => debug?.(`update host keys: ${(error as Error).message}`));
    };
    if (this.announcedHostKeys) learn(this.announcedHostKeys);
    else this.once('hostkeys', learn);
  }

  private announced: { readonly blobs: Buffer[]; keys: SshPublicKey[] | undefined; readonly debug: ((line: string) => void) | undefined } | undefined;

  /** The host keys the server announced after authentication (hostkeys-00@openssh.com), if it did. */
  get announcedHostKeys(): SshPublicKey[] | undefined {
    const announced = this.announced;
    if (!announced) return undefined;
    if (!announced.keys) {
      const keys: SshPublicKey[] = [];
      for (const blob of announced.blobs) {
        try {
          keys.push(parsePublicKeyBlob(blob));
        } catch {
          announced.debug?.('hostkeys: skipping a key of an unsupported type');
        }
      }
      announced.keys = keys;
    }
    return announced.keys;
  }

  /**
   * Ask the server to prove it holds these host keys (hostkeys-prove-00@openssh.com, OpenSSH
   * PROTOCOL §2.5); resolves with the keys whose signature over our session id verified.
   */
  async proveHostKeys(keys: readonly SshPublicKey[]): Promise<SshPublicKey[]> {
    if (keys.length === 0) return [];
    const w = new Writer(1024);
    for (const key of keys) w.string(key.blob);
    const reply = await this.mux.globalRequest('hostkeys-prove-00@openssh.com', w.finish(), true);
    if (reply === false) return [];
    const r = new Reader(reply, 0, reply.length, 'hostkeys-prove reply');
    const proven: SshPublicKey[] = [];
    for (const key of keys) {
      const signature = r.string();
      const signed = new Writer(256).string('hostkeys-prove-00@openssh.com').string(this.sessionId!).string(key.blob).finish();
      const name = new Reader(signature, 0, signature.length).utf8();
      const verifier = signatureAlgorithms.all.get(name);
      if (verifier && verifier.keyType === key.type && verifier.verify(key, signed, signature)) proven.push(key);
    }
    return proven;
  }

  /**
   * Ask the server to listen on bindAddress:bindPort and forward each connection to us (ssh -R).
   * Port 0 lets the server choose; the bound port is returned. `handler` gets each connection.
   */
  async forwardIn(
    bindAddress: string,
    bindPort: number,
    handler: (stream: ChannelStream, info: ForwardedConnection) => void,
  ): Promise<{ port: number; cancel(): Promise<boolean> }> {
    const reply = await this.mux.globalRequest('tcpip-forward', new Writer(64).string(bindAddress).uint32(bindPort).finish(), true);
    if (reply === false) {
      throw new SshError('ERR_SSH_CHANNEL_OPEN', DisconnectReason.BY_APPLICATION, `remote port forwarding failed for listen port ${bindPort}`);
    }
    // RFC 4254 §7.1: with port 0 the reply carries the port the server chose.
    const port = bindPort === 0 ? new Reader(reply, 0, reply.length, 'tcpip-forward reply').uint32() : bindPort;
    const key = `${bindAddress}:${port}`;
    this.remoteForwards.set(key, handler);
    return {
      port,
      cancel: async () => {
        this.remoteForwards.delete(key);
        const ok = await this.mux.globalRequest('cancel-tcpip-forward', new Writer(64).string(bindAddress).uint32(port).finish(), true);
        return ok !== false;
      },
    };
  }

  /**
   * Forward the server's agent requests to `agent` (ssh -A): sessions opened after this ask for
   * auth-agent-req@openssh.com. Only use it with servers you trust.
   */
  forwardAgent(agent: SshAgent | string): void {
    this.agentForwarding = agent;
  }

  /** Whether sessions should request agent forwarding. */
  get forwardsAgent(): boolean {
    return this.agentForwarding !== undefined;
  }


  private get mux() {
    const mux = this.endpoint.mux;
    if (!mux || this.endpoint.isClosed) throw new SshError('ERR_SSH_CONNECTION_LOST', DisconnectReason.CONNECTION_LOST, 'not connected');
    return mux;
  }

  /** Open a session channel. */
  async openSession(): Promise<ClientSession> {
    const session = await ClientSession.open(this.mux);
    if (this.agentForwarding !== undefined) await session.channel.request('auth-agent-req@openssh.com', Buffer.alloc(0), true);
    return session;
  }

  /**
   * Run a command; resolves when it exits, with its output and exit status. With `signal`, an
   * abort closes the channel (the command gets SIGHUP from sshd) and rejects with the reason.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const session = await this.openSession();
    return withAbort(options.signal, session, session.run(command, options));
  }

  /** Start a command and return its session stream (stdout; `.stderr`; 'exit' event). */
  async execStream(command: string, options: Omit<ExecOptions, 'stdin'> = {}): Promise<ClientSession> {
    const session = await this.openSession();
    await withAbort(options.signal, session, session.start('exec', command, options));
    return session;
  }

  /** An interactive shell, with a pseudo-terminal unless `pty: false`. */
  async shell(options: { pty?: PtyOptions | false; env?: Record<string, string>; signal?: AbortSignal } = {}): Promise<ClientSession> {
    const session = await this.openSession();
    await withAbort(options.signal, session, session.start('shell', undefined, { pty: options.pty === false ? undefined : (options.pty ?? {}), env: options.env }));
    return session;
  }

  /** A subsystem such as `sftp` or `netconf`. */
  async subsystem(name: string, options: { signal?: AbortSignal } = {}): Promise<ClientSession> {
    const session = await this.openSession();
    await withAbort(options.signal, session, session.start('subsystem', name, {}));
    return session;
  }

  /** Ask the server to connect to host:port for us (direct-tcpip, ssh -L). */
  async forwardOut(
    host: string,
    port: number,
    originHost = '127.0.0.1',
    originPort = 0,
    options: { signal?: AbortSignal } = {},
  ): Promise<ChannelStream> {
    const data = new Writer(64).string(host).uint32(port).string(originHost).uint32(originPort).finish();
    let stream!: ChannelStream;
    const opening = this.mux.open('direct-tcpip', data, (channel) => (stream = new ChannelStream(channel, false, { closeWhenDone: true })).events);
    await abortable(options.signal, opening, () => stream?.close());
    return stream;
  }

  /**
   * ssh -L: listen on bindHost:localPort and forward each connection to remoteHost:remotePort
   * from the server. Resolves with the listening server once bound.
   */
  forwardLocal(localPort: number, remoteHost: string, remotePort: number, bindHost = '127.0.0.1'): Promise<NetServer> {
    // allowHalfOpen: a client that shuts down its sending side still gets the whole reply (as ssh -L).
    const server = createNetServer({ allowHalfOpen: true }, (socket) => {
      socket.setNoDelay(true);
      this.forwardOut(remoteHost, remotePort, socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0).then(
        (stream) => {
          joinStreams(socket, stream);
        },
        () => socket.destroy(),
      );
    });
    this.once('close', () => server.close());
    return listenOn(server, localPort, bindHost);
  }

  /** ssh -D: a SOCKS4/4a/5 proxy on bindHost:port whose connections go out from the server. */
  openSocksProxy(port: number, bindHost = '127.0.0.1'): Promise<NetServer> {
    const server = createSocksServer((host, targetPort, origin) => this.forwardOut(host, targetPort, origin.address, origin.port));
    this.once('close', () => server.close());
    return listenOn(server, port, bindHost);
  }

  /** Open a direct-streamlocal@openssh.com channel to a Unix socket on the server. */
  async forwardOutStreamLocal(socketPath: string): Promise<ChannelStream> {
    // OpenSSH PROTOCOL §2.4: socket path, then two reserved fields.
    const data = new Writer(64).string(socketPath).string('').uint32(0).finish();
    let stream!: ChannelStream;
    await this.mux.open('direct-streamlocal@openssh.com', data, (channel) => (stream = new ChannelStream(channel, false, { closeWhenDone: true })).events);
    return stream;
  }

  /** Send a global request; resolves with the reply data, or false if refused. */
  globalRequest(name: string, data: Buffer = Buffer.alloc(0)): Promise<Buffer | false> {
    return this.mux.globalRequest(name, data, true);
  }

  /** Start a key re-exchange. */
  rekey(): void {
    this.endpoint.transport.rekey();
  }

  /** Disconnect cleanly; resolves once closed. */
  end(): Promise<void> {
    if (this.endpoint.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      this.endpoint.disconnect();
    });
  }
}

/**
 * Connect to an SSH server, verify its host key and authenticate; resolves with the client.
 *
 *   await connect({ host: 'server.example', username: 'alice', privateKeyFiles: ['/home/alice/.ssh/id_ed25519'] });
 *   await connect({ host: 'myalias', sshConfig: true });   // as `ssh myalias`, from ~/.ssh/config
 *
 * With `sshConfig` the host is looked up in ssh_config files first (HostName, Port, User,
 * IdentityFile, ProxyJump, ProxyCommand, StrictHostKeyChecking, …; see SshConfigConnectOptions);
 * options given here win over the files. Rejects with an SshError that says why (a ConfigError
 * naming the file and line for a bad config).
 */
export function connect(options: ConnectOptions | SshConfigConnectOptions): Promise<SshClient> {
  return SshClient.connect(options);
}

/**
 * Connect to a destination whose options were already resolved from ssh_config with
 * resolveHost(), as the tssh program does (it also needs them for forwarding, -G, …). Options given
 * in `options` win over the resolved ones; `jumpConfigs` resolve the ProxyJump hops.
 */
export function connectWithSshOptions(destination: SshOptions, options: ResolvedConnectOptions = {}): Promise<SshClient> {
  return SshClient.connectWithSshOptions(destination, options);
}

function readsSshConfig(options: ConnectOptions | SshConfigConnectOptions): options is SshConfigConnectOptions {
  return options.sshConfig !== undefined && options.sshConfig !== false;
}

/** What SshClient.start() takes: ConnectOptions, with a known_hosts policy 'ask' that may lack its callback. */
type StartOptions = Omit<ConnectOptions, 'knownHosts'> & { readonly knownHosts?: KnownHostsSettings };

export { HostKeyError };

/**
 * Destinations whose server did not take our guessed key exchange message (a tsshd, say, that
 * prefers another method than our first), with when: a wrong guess costs us an ephemeral key (with
 * ML-KEM first, its key generation too, about 0.6 ms), so the default stops guessing with that
 * destination for GUESS_PAUSE_MS. A right guess, or the pause ending, brings guessing back.
 */
const wrongGuesses = new Map<string, number>();
const GUESS_PAUSE_MS = 10 * 60_000;
const MAX_WRONG_GUESSES = 1024;

function guessedWrongLately(destination: string): boolean {
  const at = wrongGuesses.get(destination);
  if (at === undefined) return false;
  if (Date.now() - at < GUESS_PAUSE_MS) return true;
  wrongGuesses.delete(destination);
  return false;
}

function noteGuess(destination: string, outcome: 'right' | 'wrong'): void {
  wrongGuesses.delete(destination);
  if (outcome === 'right') return;
  wrongGuesses.set(destination, Date.now());
  if (wrongGuesses.size > MAX_WRONG_GUESSES) wrongGuesses.delete(wrongGuesses.keys().next().value!);
}
