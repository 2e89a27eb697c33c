/**
 * The server tsshd runs: createServer() configured from sshd_config settings, with sessions that
 * run the user's shell, forwarding under AllowTcpForwarding / PermitOpen / authorized_keys
 * options, and sshd's log lines.
 */
import { joinStreams } from '../../forwarding/join.js';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { createServer, type DirectTcpipRequest, type RemoteForwardRequest, type ServerConnection, type SshServer } from '../../server.js';
import type { ServerSession } from '../../server-session.js';
import type { ChannelStream } from '../../channel.js';
import type { SshPrivateKey, SshPublicKey } from '../../algorithms/types.js';
import type { SshError } from '../../errors.js';
import { MethodPolicy } from '../../auth/policy.js';
import { ChannelOpenFailure, type ChannelOpenFailureCode } from '../../connection/messages.js';
import { fingerprint, describeKey } from '../../keys/fingerprint.js';
import { matchPattern } from '../../keys/patterns.js';
import type { ForwardingPermission, SshdConfig, SshdSettings } from '../../config/sshd-config.js';
import { resolveForConnection } from '../../config/sshd-config.js';
import { createAuthHooks, type AuthResultState } from './auth.js';
import { runWithoutPty, type SessionContext } from './session-runner.js';
import { prepareStderrPipes } from './session-pipes.js';
import { loadNodePty, ptySupport, runWithPty, type NodePty } from './pty.js';
import { credentialSwitch, lookupUser, type SystemUser } from './users.js';
import { isInternalSftp, startInternalSftp } from '../../sftp/internal-sftp.js';
import { checkChrootDirectory, expandChrootDirectory } from './chroot.js';
import { parseEnvironmentFile, readUserEnvironmentFile, userMaySet } from './user-environment.js';
import { existsSync } from 'node:fs';
import type { Logger } from './log.js';

export interface ServeOptions {
  readonly config: () => SshdConfig;
  readonly hostKeys: readonly SshPrivateKey[];
  readonly log: Logger;
  readonly onlyUser: SystemUser | undefined;
  readonly switchUser: boolean;
  readonly extraAuthorizedKeys?: (user: SystemUser) => Promise<readonly SshPublicKey[]>;
  readonly oneTimePassword?: { readonly user: string; readonly password: string };
  readonly pam?: (user: string, password: string) => Promise<boolean>;
  /** The Banner file's text, read at start (sshd reads it per connection; a reload re-reads it). */
  readonly banner?: string;
}

/**
 * What tsshd keeps for an authenticated connection. The listeners that serve it (onSession,
 * onDirectTcpip, ...) are functions shared by every connection, called with the connection as
 * `this` (as EventEmitter does), that find the rest here: closures made per connection, and the
 * contexts they close over, would cost every idle connection about a kilobyte.
 */
interface Served {
  readonly user: SystemUser;
  readonly settings: SshdSettings;
  readonly state: AuthResultState;
  readonly options: ServeOptions;
  readonly chroot: string | undefined;
  /** Open sessions, held to MaxSessions. */
  sessions: number;
  /** The forwarded agent's socket, made at the first auth-agent request. */
  agentSocket: Promise<string> | undefined;
  /** How the user's commands take the user's credentials (tsshd as root), asked at the first session. */
  credentials: ReturnType<typeof credentialSwitch> | undefined;
  forwards: RemoteForwards | undefined;
}

interface RemoteForwards {
  readonly tcp: Map<string, NetServer>;
  readonly unix: Map<string, NetServer>;
}

type OpenReject = (reason?: ChannelOpenFailureCode, description?: string) => void;

const servedConnections = new WeakMap<ServerConnection, Served>();

function settingsFor(config: SshdConfig, connection: ServerConnection, user: string): SshdSettings {
  return resolveForConnection(config, {
    user,
    address: connection.remoteAddress ?? '',
    host: connection.remoteAddress ?? '',
    localPort: 0,
    localAddress: '',
  });
}

export function createTsshdServer(options: ServeOptions): SshServer {
  const { log } = options;
  const base = options.config().settings;
  const states = new WeakMap<ServerConnection, AuthResultState>();
  // node-pty (optional) is imported now, in the background, so that a pty request finds it ready;
  // likewise the first FIFOs for sessions' standard error are made now.
  void loadNodePty();
  prepareStderrPipes();
  const server = createServer({
    hostKeys: options.hostKeys,
    algorithms: {
      kex: base.kexAlgorithms,
      hostKey: base.hostKeyAlgorithms,
      cipher: base.ciphers,
      mac: base.macs,
      compression: base.compression ? ['none', 'zlib@openssh.com'] : ['none'],
    },
    authenticationMethods: base.authenticationMethods === 'any' ? undefined : new MethodPolicy(base.authenticationMethods),
    maxAuthTries: base.maxAuthTries,
    banner: options.banner,
    loginGraceTime: base.loginGraceTime * 1000,
    keepaliveInterval: base.clientAliveInterval * 1000,
    keepaliveCountMax: base.clientAliveCountMax,
    rekeyBytes: base.rekeyLimit.bytes > 0 ? base.rekeyLimit.bytes : undefined,
    rekeyIntervalMs: base.rekeyLimit.seconds > 0 ? base.rekeyLimit.seconds * 1000 : undefined,
    auth: (connection) => {
      const state: AuthResultState = { user: undefined, keyOptions: undefined };
      states.set(connection, state);
      const config = options.config();
      return createAuthHooks(
        {
          settings: (user) => settingsFor(config, connection, user),
          remoteAddress: connection.remoteAddress ?? '',
          onlyUser: options.onlyUser,
          extraAuthorizedKeys: options.extraAuthorizedKeys,
          oneTimePassword: options.oneTimePassword,
          pam: options.pam,
          log: (line) => log.info(line),
        },
        state,
      );
    },
    authLog: (event, connection) => {
      // The key's description and fingerprint (a SHA-256) are built only for a log that shows them.
      if (!log.enabled('INFO')) return;
      const where = `from ${connection.remoteAddress ?? 'UNKNOWN'} port ${connection.remotePort ?? 65535} ssh2`;
      const key = event.key ? `: ${describeKey(event.key).label} ${fingerprint(event.key)}` : '';
      if (event.outcome === 'failed') {
        // sshd's wording, which fail2ban and similar tools look for.
        const invalid = lookupUser(event.user) === undefined ? 'invalid user ' : '';
        log.info(`Failed ${event.method} for ${invalid}${event.user} ${where}${key}`);
      } else if (event.outcome === 'accepted') {
        log.info(`Accepted ${event.method} for ${event.user} ${where}${key}`);
      } else {
        log.info(`Partial ${event.method} for ${event.user} ${where}${key}`);
      }
    },
    debug: (line, connection) => log.debug(`${connection.remoteAddress ?? ''}: ${line}`),
  });

  // MaxStartups start:rate:full: beyond `start` unauthenticated connections, refuse rate% of new
  // ones at random, and all of them from `full` on (sshd's drop_connection()).
  const unauthenticated = new Set<ServerConnection>();
  // The listeners below are made once per server and shared by its connections (`this` is the
  // connection): an idle connection would keep closures of its own, and their contexts.
  function closed(this: ServerConnection, error: SshError | undefined): void {
    unauthenticated.delete(this);
    const who = this.user ? `user ${this.user} ` : '';
    const where = `${this.remoteAddress ?? 'UNKNOWN'} port ${this.remotePort ?? 65535}`;
    if (error && error.code !== 'ERR_SSH_DISCONNECTED' && error.code !== 'ERR_SSH_CONNECTION_LOST') {
      log.info(`Disconnecting ${who}${where}: ${error.message}`);
    } else {
      log.info(`Disconnected from ${who}${where}`);
    }
  }
  server.on('connection', (connection) => {
    log.verbose(`Connection from ${connection.remoteAddress ?? 'UNKNOWN'} port ${connection.remotePort ?? 65535}`);
    const { start, rate, full } = options.config().settings.maxStartups;
    const count = unauthenticated.size;
    if (count >= full || (count >= start && Math.random() * 100 < rate + ((100 - rate) * (count - start)) / Math.max(1, full - start))) {
      log.info(`drop connection from ${connection.remoteAddress ?? 'UNKNOWN'} port ${connection.remotePort ?? 65535}: MaxStartups exceeded (${count} unauthenticated)`);
      connection.drop();
      return;
    }
    unauthenticated.add(connection);
    connection.on('close', closed);
    connection.once('authenticated', (userName) => {
      unauthenticated.delete(connection);
      const state = states.get(connection);
      const user = state?.user;
      if (!user) {
        connection.end();
        return;
      }
      const settings = settingsFor(options.config(), connection, userName);
      // ChrootDirectory: checked once authenticated, and the connection refused when the folder
      // is not safe, as sshd does (its session process dies with the same message).
      // (Synchronous: the handlers must be in place before the client's first channel arrives.)
      const chroot = chrootFor(user, settings, options);
      if (chroot === false) {
        connection.end();
        return;
      }
      servedConnections.set(connection, { user, settings, state: state!, options, chroot, sessions: 0, agentSocket: undefined, credentials: undefined, forwards: undefined });
      states.delete(connection);
      connection.on('session', onSession);
      connection.on('direct-streamlocal', onDirectStreamLocal);
      connection.on('direct-tcpip', onDirectTcpip);
      connection.on('tcpip-forward', onTcpipForward);
      connection.on('cancel-tcpip-forward', onCancelTcpipForward);
      connection.on('streamlocal-forward', onStreamLocalForward);
      connection.on('cancel-streamlocal-forward', onCancelStreamLocalForward);
    });
  });
  return server;
}

/**
 * The chroot folder for this user's sessions: undefined for none (or when not root: sshd applies
 * ChrootDirectory only as root), false after logging why the connection must be refused.
 */
function chrootFor(user: SystemUser, settings: SshdSettings, options: ServeOptions): string | undefined | false {
  if (settings.chrootDirectory === null || settings.chrootDirectory.toLowerCase() === 'none') return undefined;
  if (!options.switchUser) {
    options.log.verbose(`ChrootDirectory ignored for ${user.name}: tsshd is not running as root`);
    return undefined;
  }
  let dir: string | undefined;
  try {
    dir = expandChrootDirectory(settings.chrootDirectory, user);
  } catch (error) {
    options.log.fatal(`fatal: ${(error as Error).message}`);
    return false;
  }
  if (dir === undefined) return undefined;
  const problem = checkChrootDirectory(dir);
  if (problem) {
    options.log.fatal(`fatal: ${problem} (user ${user.name})`);
    return false;
  }
  options.log.verbose(`Changed root directory to "${dir}" for ${user.name}`);
  return dir;
}

/** PrintMotd: the file to show, for a login shell on a terminal without ~/.hushlogin (sshd's do_login). */
function motdFor(user: SystemUser, settings: SshdSettings): string | undefined {
  if (!settings.printMotd) return undefined;
  // sshd looks for .hushlogin before it enters the chroot, in the home as passwd names it.
  if (existsSync(`${user.home}/.hushlogin`)) return undefined;
  // TSSH_MOTD_FILE: a test hook (tsshd's environment is its administrator's).
  return process.env.TSSH_MOTD_FILE ?? '/etc/motd';
}

/** A session channel of an authenticated connection (the 'session' listener). */
function onSession(this: ServerConnection, session: ServerSession): void {
  const connection = this;
  const served = servedConnections.get(connection)!;
  const { user, settings, options, chroot } = served;
  const keyOptions = served.state.keyOptions;
  served.sessions++;
  session.once('channel-close', () => served.sessions--);
  if (served.sessions > settings.maxSessions) {
    session.close();
    return;
  }
  // sshd's order (do_setup_env): authorized_keys environment=, then ~/.ssh/environment (both
  // only as PermitUserEnvironment allows), then SetEnv; later ones win.
  const extraEnv: Record<string, string> = {};
  const permit = settings.permitUserEnvironment;
  if (keyOptions) {
    for (const { name, value } of keyOptions.environment) if (userMaySet(permit, name)) extraEnv[name] = value;
  }
  const userFile: Promise<string[]> =
    permit === false
      ? Promise.resolve([])
      : readUserEnvironmentFile(user, options.switchUser, chroot).then((text) => {
          if (text === undefined) return [];
          const parsed = parseEnvironmentFile(text, `${user.home}/.ssh/environment`);
          for (const [name, value] of parsed.variables) if (userMaySet(permit, name)) extraEnv[name] = value;
          return [...parsed.problems];
        });
  const setEnv = (): void => {
    for (const { name, value } of settings.setEnv) extraEnv[name] = value;
  };
  session.on('env', (request) => {
    const { name } = request.details;
    if (settings.acceptEnv.some((pattern) => matchPattern(name, pattern))) request.accept();
    else request.reject();
  });
  // A pty request is answered once node-pty's import has settled; shell/exec/subsystem wait for
  // that answer (replies still go out in order), so they know whether the session has a terminal.
  let ptyDecided: Promise<void> = Promise.resolve();
  let nodePty: NodePty | undefined;
  session.on('pty', (request) => {
    if (!settings.permitTTY || keyOptions?.pty === false) {
      options.log.verbose(`PTY allocation disabled for ${user.name} (${settings.permitTTY ? 'no-pty in authorized_keys' : 'PermitTTY no'})`);
      request.reject();
      return;
    }
    ptyDecided = ptySupport(options.switchUser).then((support) => {
      if (!support.nodePty) {
        options.log.info(`PTY allocation refused: ${support.reason}`);
        request.reject();
        return;
      }
      nodePty = support.nodePty;
      request.accept();
    });
  });
  session.on('x11', (request) => request.reject());
  session.on('auth-agent', (request) => {
    if (!settings.allowAgentForwarding || settings.disableForwarding || keyOptions?.agentForwarding === false) {
      request.reject();
      return;
    }
    if (chroot !== undefined) {
      // The agent socket would live outside the chroot, where the session cannot reach it.
      options.log.verbose(`agent forwarding refused for ${user.name}: the session is chrooted`);
      request.reject();
      return;
    }
    request.accept();
    served.agentSocket ??= startAgentSocket(connection, user, options.switchUser);
  });
  let credentials: SessionContext['credentials'];
  const credentialsKnown = options.switchUser
    ? (served.credentials ??= credentialSwitch(user)).then((how) => {
        credentials = how;
      })
    : undefined;
  const context = (): SessionContext => ({
    user,
    switchUser: options.switchUser,
    credentials,
    remoteAddress: connection.remoteAddress ?? '',
    remotePort: connection.remotePort ?? 0,
    localAddress: '127.0.0.1',
    localPort: 0,
    extraEnv: { ...extraEnv },
    clientEnv: { ...session.env },
    chroot,
  });
  const forced = keyOptions?.command ?? settings.forceCommand ?? undefined;
  const run = (command: string | undefined, original: string | undefined): void => {
    const socket = (served.agentSocket ?? Promise.resolve(undefined)).then((path) => path, () => undefined);
    // Signals and window changes that come while the process is being prepared are kept and handed
    // to it once it runs: sshd, which forks at once, always has the process to give them to.
    const early = holdEarlyRequests(session);
    void Promise.all([socket, ptyDecided, userFile, credentialsKnown]).then(([socketPath, , problems]) => {
      setEnv();
      // As sshd: a bad line in ~/.ssh/environment is reported to the session and skipped.
      for (const problem of problems) session.stderr.write(`${problem}\n`);
      early.stop();
      start(command, original, socketPath);
      early.replay();
    });
  };
  const start = (command: string | undefined, original: string | undefined, agentPath: string | undefined): void => {
    const env: SessionContext = { ...context(), motd: command === undefined ? motdFor(user, settings) : undefined };
    if (agentPath) (env.extraEnv as Record<string, string>).SSH_AUTH_SOCK = agentPath;
    if (forced !== undefined && original !== undefined) (env.extraEnv as Record<string, string>).SSH_ORIGINAL_COMMAND = original;
    // SFTP: internal-sftp, as a Subsystem or a ForceCommand, is tssh's own SFTP server (src/sftp/),
    // whatever the client asked to run and whether or not it has a pty, as in sshd.
    if (command !== undefined && isInternalSftp(command)) return startInternalSftp(session, env, command, options.log);
    if (session.pty && nodePty) runWithPty(session, env, command, nodePty);
    else runWithoutPty(session, env, command);
  };
  session.on('exec', (request) => {
    request.accept();
    run(forced ?? request.details.command, request.details.command);
  });
  session.on('shell', (request) => {
    request.accept();
    run(forced, undefined);
  });
  session.on('subsystem', (request) => {
    const subsystem = settings.subsystem.find((s) => s.name === request.details.name);
    if (!subsystem) {
      request.reject();
      return;
    }
    request.accept();
    run(forced ?? subsystem.command, undefined);
  });
}

/**
 * Collect the session's 'signal' and 'window-change' events until stop(); replay() emits them again
 * in order, for the listeners the started process has added by then.
 */
function holdEarlyRequests(session: ServerSession): { stop(): void; replay(): void } {
  const held: Array<['signal', string] | ['window-change', unknown]> = [];
  const onSignal = (name: string): void => void held.push(['signal', name]);
  const onWindow = (size: unknown): void => void held.push(['window-change', size]);
  session.on('signal', onSignal);
  session.on('window-change', onWindow);
  return {
    stop: () => {
      session.off('signal', onSignal);
      session.off('window-change', onWindow);
    },
    replay: () => {
      for (const [event, value] of held.splice(0)) session.emit(event, value);
    },
  };
}

/**
 * What every forwarding request must pass: DisableForwarding off, the Allow*Forwarding setting
 * (`permission`) `yes` or this direction, and no `no-port-forwarding` on the key.
 */
function forwardingAllowed(settings: SshdSettings, state: AuthResultState, permission: ForwardingPermission, direction: 'local' | 'remote'): boolean {
  return !settings.disableForwarding && (permission === 'yes' || permission === direction) && (state.keyOptions?.portForwarding ?? true);
}

/** ssh -L to a Unix socket (direct-streamlocal@openssh.com) under AllowStreamLocalForwarding. */
function onDirectStreamLocal(this: ServerConnection, request: { readonly path: string }, accept: () => ChannelStream, reject: OpenReject): void {
  const { settings, state, chroot } = servedConnections.get(this)!;
  const allowed =
    // Socket paths would be resolved outside the chroot: refused for chrooted users.
    chroot === undefined && forwardingAllowed(settings, state, settings.allowStreamLocalForwarding, 'local');
  if (!allowed) {
    reject(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'stream local forwarding refused');
    return;
  }
  // Half-open kept: one side's FIN must not cut the other direction short (as sshd).
  const socket = netConnect({ path: request.path, allowHalfOpen: true });
  socket.once('connect', () => {
    const stream = accept();
    joinStreams(socket, stream);
  });
  socket.once('error', (error) => reject(ChannelOpenFailure.CONNECT_FAILED, `connect to ${request.path}: ${error.message}`));
}

/** ssh -L (direct-tcpip) under AllowTcpForwarding and PermitOpen. */
function onDirectTcpip(this: ServerConnection, request: DirectTcpipRequest, accept: () => ChannelStream, reject: OpenReject): void {
  const connection = this;
  const { settings, state, options } = servedConnections.get(connection)!;
  const log = options.log;
  const allowed =
    forwardingAllowed(settings, state, settings.allowTcpForwarding, 'local') &&
    permitOpenAllows(settings.permitOpen, request.host, request.port) &&
    keyPermitOpenAllows(state, request.host, request.port);
  if (!allowed) {
    log.info(`refused local port forward to ${request.host}:${request.port} for ${connection.user ?? ''}`);
    reject(ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, 'port forwarding refused');
    return;
  }
  const socket = netConnect({ host: request.host, port: request.port, allowHalfOpen: true });
  socket.once('connect', () => {
    const stream = accept();
    joinStreams(socket, stream);
  });
  socket.once('error', (error) => reject(ChannelOpenFailure.CONNECT_FAILED, `connect to ${request.host} port ${request.port}: ${error.message}`));
}

/**
 * The listeners of a connection's remote forwards, by "address:port" (TCP) and by path (Unix
 * sockets), closed with the connection. Made at the first forward: most connections never ask for one.
 */
function forwardListeners(connection: ServerConnection, served: Served): RemoteForwards {
  if (!served.forwards) {
    const made: RemoteForwards = (served.forwards = { tcp: new Map(), unix: new Map() });
    connection.once('close', () => {
      for (const listener of made.tcp.values()) listener.close();
      for (const listener of made.unix.values()) listener.close();
    });
  }
  return served.forwards;
}

/** ssh -R: listen where the client asks (GatewayPorts decides the address) and forward to it. */
function onTcpipForward(this: ServerConnection, request: RemoteForwardRequest, accept: (boundPort: number) => void, reject: () => void): void {
  const connection = this;
  const served = servedConnections.get(connection)!;
  const { settings, state, options } = served;
  const log = options.log;
  const allowed =
    forwardingAllowed(settings, state, settings.allowTcpForwarding, 'remote') &&
    permitListenAllows(settings.permitListen, state, request.address, request.port) &&
    // Privileged ports only for root, as sshd.
    (request.port === 0 || request.port >= 1024 || state.user?.uid === 0);
  if (!allowed) {
    log.info(`refused remote port forward ${request.address}:${request.port} for ${connection.user ?? ''}`);
    reject();
    return;
  }
  const host = gatewayAddress(settings.gatewayPorts, request.address);
  const listener = createNetServer({ allowHalfOpen: true }, (socket) => {
    // As sshd does for a remote-forwarded port: small writes are not held for an ACK (Nagle).
    socket.setNoDelay(true);
    const bound = (listener.address() as AddressInfo).port;
    connection
      .openForwardedTcpip(request.address, bound, socket.remoteAddress ?? '', socket.remotePort ?? 0)
      .then((stream) => {
        joinStreams(socket, stream);
      })
      .catch(() => socket.destroy());
  });
  listener.once('error', () => reject());
  listener.listen(request.port, host, () => {
    const bound = (listener.address() as AddressInfo).port;
    forwardListeners(connection, served).tcp.set(`${request.address}:${bound}`, listener);
    log.verbose(`remote forward listening on ${host} port ${bound} for ${connection.user ?? ''}`);
    accept(bound);
  });
}

function onCancelTcpipForward(this: ServerConnection, request: RemoteForwardRequest, done: (ok: boolean) => void): void {
  const forwards = servedConnections.get(this)!.forwards;
  const listener = forwards?.tcp.get(`${request.address}:${request.port}`);
  if (!listener) return done(false);
  forwards!.tcp.delete(`${request.address}:${request.port}`);
  listener.close();
  done(true);
}

/** ssh -R to a Unix socket (streamlocal-forward@openssh.com) under AllowStreamLocalForwarding. */
function onStreamLocalForward(this: ServerConnection, request: { readonly path: string }, accept: () => void, reject: () => void): void {
  const connection = this;
  const served = servedConnections.get(connection)!;
  const { settings, state, options, chroot } = served;
  const log = options.log;
  const allowed =
    chroot === undefined && forwardingAllowed(settings, state, settings.allowStreamLocalForwarding, 'remote');
  if (!allowed) {
    log.info(`refused remote stream local forward ${request.path} for ${connection.user ?? ''}`);
    reject();
    return;
  }
  const listener = createNetServer({ allowHalfOpen: true }, (socket) => {
    connection
      .openForwardedStreamLocal(request.path)
      .then((stream) => {
        joinStreams(socket, stream);
      })
      .catch(() => socket.destroy());
  });
  listener.once('error', () => reject());
  listener.listen(request.path, () => {
    forwardListeners(connection, served).unix.set(request.path, listener);
    // The socket belongs to the user who asked for it (sshd creates it as that user).
    if (state.user && state.user.uid !== process.getuid?.()) void chown(request.path, state.user.uid, state.user.gid).catch(() => {});
    accept();
  });
}

function onCancelStreamLocalForward(this: ServerConnection, request: { readonly path: string }, done: (ok: boolean) => void): void {
  const forwards = servedConnections.get(this)!.forwards;
  const listener = forwards?.unix.get(request.path);
  if (!listener) return done(false);
  forwards!.unix.delete(request.path);
  listener.close();
  done(true);
}

/** sshd's GatewayPorts: `no` binds loopback only; `yes` every address; clientspecified as asked. */
function gatewayAddress(gatewayPorts: SshdSettings['gatewayPorts'], requested: string): string {
  const any = requested === '' || requested === '*' || requested === '0.0.0.0' || requested === '::';
  if (gatewayPorts === 'no') return requested === 'localhost' || requested === '::1' ? requested : '127.0.0.1';
  if (gatewayPorts === 'yes') return '0.0.0.0';
  return any ? '0.0.0.0' : requested === 'localhost' ? '127.0.0.1' : requested;
}

function permitListenAllows(list: readonly string[], state: AuthResultState, address: string, port: number): boolean {
  const keyTargets = state.keyOptions?.permitListen ?? [];
  if (keyTargets.length > 0 && !keyTargets.some((t) => (t.port === '*' || t.port === port) && (t.host === '*' || t.host === address || t.host === ''))) {
    return false;
  }
  if (list.length === 0 || list.includes('any')) return true;
  if (list.includes('none')) return false;
  return list.some((entry) => {
    const colon = entry.lastIndexOf(':');
    const p = colon < 0 ? entry : entry.slice(colon + 1);
    const h = colon < 0 ? '*' : entry.slice(0, colon);
    return (p === '*' || Number(p) === port) && (h === '*' || h === address);
  });
}

/**
 * ssh -A: a Unix socket in a private folder; each connection to it becomes an
 * auth-agent@openssh.com channel to the client. The folder belongs to the session's user.
 */
async function startAgentSocket(connection: ServerConnection, user: SystemUser, switchUser: boolean): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tssh-agent-'));
  const path = join(dir, `agent.${process.pid}`);
  const listener = createNetServer({ allowHalfOpen: true }, (socket) => {
    connection
      .openAgentChannel()
      .then((stream) => {
        joinStreams(socket, stream);
      })
      .catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => resolve());
  });
  if (switchUser) {
    await chown(dir, user.uid, user.gid);
    await chown(path, user.uid, user.gid);
  }
  connection.once('close', () => {
    listener.close();
    void rm(dir, { recursive: true, force: true });
  });
  return path;
}

function permitOpenAllows(list: readonly string[], host: string, port: number): boolean {
  if (list.length === 0 || list.includes('any')) return true;
  if (list.includes('none')) return false;
  return list.some((entry) => {
    const colon = entry.lastIndexOf(':');
    const h = entry.slice(0, colon).replace(/^\[|\]$/g, '');
    const p = entry.slice(colon + 1);
    return (h === '*' || h === host) && (p === '*' || Number(p) === port);
  });
}

function keyPermitOpenAllows(state: AuthResultState, host: string, port: number): boolean {
  const targets = state.keyOptions?.permitOpen ?? [];
  if (targets.length === 0) return true;
  return targets.some((t) => (t.host === '*' || t.host === host) && (t.port === '*' || t.port === port));
}

/** ~/.ssh/*.pub of a user: the embedded default accepts them as authorized keys. */
export async function readPublicKeyFiles(paths: readonly string[], parse: (text: string) => SshPublicKey | undefined): Promise<SshPublicKey[]> {
  const keys: SshPublicKey[] = [];
  for (const path of paths) {
    try {
      const key = parse(await readFile(path, 'utf8'));
      if (key) keys.push(key);
    } catch {
      // unreadable or not a key: skipped
    }
  }
  return keys;
}
