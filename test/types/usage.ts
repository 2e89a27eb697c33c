/**
 * The public types, pinned. This file is compiled by the normal build (`tsc -p .`), so:
 *
 * - every usage here must compile, and the `check<…>()` lines pin exact types (an `any` is equal to
 *   nothing, so a type that decays to `any` fails the build);
 * - every line after a `// @ts-expect-error TSnnnn …` must NOT compile: if it ever does, the build
 *   fails. test/types/types.test.ts also compiles a copy without those directives and checks that
 *   each such line fails with exactly the error code written after the directive, so none of them
 *   passes for an unrelated reason.
 *
 * Nothing here runs: the functions are never called.
 */
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import {
  connect,
  createServer,
  ChannelStream,
  ClientSession,
  DisconnectReason,
  HostKeyError,
  MethodPolicy,
  ServerConnection,
  ServerSession,
  SshClient,
  SshError,
  SshServer,
  type AuthOutcome,
  type ClientEvents,
  type ConnectOptions,
  type DirectTcpipRequest,
  type ExecResult,
  type ExitInfo,
  type ExitSignal,
  type ForwardedConnection,
  type InfoRequest,
  type KeyboardInteractivePrompt,
  type PasswordOutcome,
  type PasswordRequest,
  type PtyRequest,
  type PublicKeyRequest,
  type RemoteForwardRequest,
  type ServerAuthHooks,
  type ServerConnectionEvents,
  type ServerOptions,
  type ServerSessionEvents,
  type SessionRequest,
  type SshErrorCode,
  type SshPrivateKey,
  type SshPublicKey,
  type WindowChange,
  connectWithSshOptions,
  loadSshConfigs,
  parseSshConfig,
  resolveHost,
  ConfigError,
  type HostKeyAsk,
  type HostKeyQuestion,
  type JumpHost,
  type KnownHostsOtherName,
  type PasswordContext,
  type ResolvedConnectOptions,
  type SshConfig,
  type SshConfigConnectOptions,
  type SshConfigStrictHostKeyChecking,
  type SshOptions,
} from '../../src/index.js';

/** True when A and B are the same type; `any` is the same as nothing but `any`. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type IsAny<T> = 0 extends 1 & T ? true : false;
type NotAny<T> = IsAny<T> extends true ? false : true;
/** Compiles only when T is `true`. */
function check<T extends true>(_proof?: T): void {}
declare const hostKey: SshPrivateKey;
declare const someKey: SshPublicKey;

// ---- connect() and the client -------------------------------------------------------------------

export async function clientUsage(signal: AbortSignal): Promise<void> {
  check<Equal<ReturnType<typeof connect>, Promise<SshClient>>>();
  const client = await connect({
    host: 'example.org',
    port: 22,
    username: 'alice',
    privateKeyFiles: ['/home/alice/.ssh/id_ed25519'],
    passphrase: async (path) => `passphrase for ${path}`,
    agent: process.env.SSH_AUTH_SOCK,
    password: (attempt) => (attempt === 1 ? 'secret' : undefined),
    keyboardInteractive: (request) => request.prompts.map(() => '123456'),
    knownHosts: { files: ['/tmp/known_hosts'], policy: 'accept-new', hash: true },
    algorithms: { kex: '-diffie-hellman-group14-sha256', cipher: ['aes256-gcm@openssh.com'], mac: '+hmac-sha1' },
    readyTimeout: 10_000,
    keepaliveInterval: 15_000,
    signal,
    debug: (line) => console.error(line),
  });
  check<Equal<typeof client, SshClient>>();
  await connect({ username: 'bob', verifyHostKey: (key, context) => key.type === 'ssh-ed25519' && context.port === 22 });
  await connect({ username: 'bob', verifyHostKey: async () => true, privateKeys: [hostKey] });

  const result = await client.exec('uname -a', { stdin: 'input', env: { LANG: 'C' }, pty: { columns: 80 }, signal });
  check<Equal<typeof result, ExecResult>>();
  check<Equal<typeof result.stdout, Buffer>>();
  check<Equal<typeof result.stderr, Buffer>>();
  check<Equal<typeof result.code, number | undefined>>();
  check<Equal<typeof result.signal, ExitSignal | undefined>>();
  check<Equal<ExitSignal['signal'], string>>();

  const stream = await client.execStream('tail -f log', { signal });
  check<Equal<typeof stream, ClientSession>>();
  check<Equal<typeof stream.stderr, Readable>>();
  check<Equal<typeof stream.exit, ExitInfo | undefined>>();
  stream.setWindow(120, 40);
  stream.signal('INT');
  check<Equal<Awaited<ReturnType<ClientSession['sendBreak']>>, boolean>>();

  check<Equal<Awaited<ReturnType<SshClient['shell']>>, ClientSession>>();
  await client.shell({ pty: { term: 'xterm', columns: 100, rows: 30, modes: { ECHO: 0 } } });
  await client.shell({ pty: false, env: { LANG: 'C' } });
  check<Equal<Awaited<ReturnType<SshClient['subsystem']>>, ClientSession>>();
  check<Equal<Awaited<ReturnType<SshClient['openSession']>>, ClientSession>>();

  const tunnel = await client.forwardOut('intranet', 80);
  check<Equal<typeof tunnel, ChannelStream>>();
  check<Equal<Awaited<ReturnType<SshClient['forwardOutStreamLocal']>>, ChannelStream>>();
  check<Equal<Awaited<ReturnType<SshClient['forwardLocal']>>, NetServer>>();
  check<Equal<Awaited<ReturnType<SshClient['openSocksProxy']>>, NetServer>>();
  const remote = await client.forwardIn('127.0.0.1', 0, (connection, info) => {
    check<Equal<typeof connection, ChannelStream>>();
    check<Equal<typeof info, ForwardedConnection>>();
    connection.end(`hello ${info.originAddress}:${info.originPort}`);
  });
  check<Equal<typeof remote.port, number>>();
  check<Equal<Awaited<ReturnType<typeof remote.cancel>>, boolean>>();
  check<Equal<Awaited<ReturnType<SshClient['proveHostKeys']>>, SshPublicKey[]>>();
  check<Equal<Awaited<ReturnType<SshClient['globalRequest']>>, Buffer | false>>();
  check<Equal<ReturnType<SshClient['end']>, Promise<void>>>();
  check<Equal<typeof client.sessionId, Buffer | undefined>>();
  check<Equal<typeof client.serverHostKey, SshPublicKey | undefined>>();
  check<NotAny<typeof client.algorithms>>();

  // Events: each listener's arguments are typed.
  client.on('banner', (message) => check<Equal<typeof message, string>>());
  client.on('hostkeys', (keys) => check<Equal<typeof keys, SshPublicKey[]>>());
  client.on('rekey', (info) => check<NotAny<typeof info>>());
  client.once('close', (error) => check<Equal<typeof error, SshError | undefined>>());
  check<Equal<ClientEvents['close'], [error: SshError | undefined]>>();

  // @ts-expect-error TS2345 an event the client does not have (ssh2's 'ready': connect() resolves instead)
  client.on('ready', () => {});
  // @ts-expect-error TS2345 a listener with the wrong argument type
  client.on('banner', (message: number) => message);
  // @ts-expect-error TS2345 exec takes one command string
  await client.exec(['ls', '-l']);
  // @ts-expect-error TS2540 results are read-only
  result.code = 0;
  // @ts-expect-error TS2345 forwardOut takes the port as a number
  await client.forwardOut('intranet', '80');
}

export async function connectOptionsMistakes(): Promise<void> {
  // @ts-expect-error TS2345 username is required (unless an ssh_config is read: sshConfig)
  await connect({ host: 'example.org', password: 'secret' });
  // @ts-expect-error TS2561 ssh2's privateKey (a buffer) is privateKeys (parsed keys) or privateKeyFiles here
  await connect({ username: 'alice', privateKey: Buffer.from('') });
  // @ts-expect-error TS2353 ssh2's hostVerifier is verifyHostKey here
  await connect({ username: 'alice', hostVerifier: () => true });
  // @ts-expect-error TS2322 a password is a string or a function
  await connect({ username: 'alice', password: 1234 });
  // @ts-expect-error TS2322 StrictHostKeyChecking has no 'yes': strict, ask, accept-new or off
  await connect({ username: 'alice', knownHosts: { policy: 'yes' } });
  // @ts-expect-error TS2322 verifyHostKey answers with a boolean
  await connect({ username: 'alice', verifyHostKey: () => 'yes' });
  // @ts-expect-error TS2322 timeouts are milliseconds
  await connect({ username: 'alice', readyTimeout: '20s' });
  const options: ConnectOptions = { username: 'alice' };
  // @ts-expect-error TS2540 options are read-only
  options.username = 'bob';
}

// ---- connect() through ssh_config, StrictHostKeyChecking=ask --------------------------------------

export async function sshConfigUsage(): Promise<void> {
  // The alias's User, HostName, Port, IdentityFile, ProxyJump … come from ~/.ssh/config.
  check<Equal<Awaited<ReturnType<typeof connect>>, SshClient>>();
  await connect({ host: 'myalias', sshConfig: true });
  await connect({ host: 'myalias', sshConfig: '/home/alice/.ssh/config', username: 'bob', port: 2222 });
  const parsed: SshConfig = parseSshConfig('Host myalias\n  HostName 10.0.0.5\n', { file: 'inline' });
  await connect({ host: 'myalias', sshConfig: [parsed, '/etc/ssh/ssh_config'], sshConfigOverrides: ['StrictHostKeyChecking accept-new'] });
  const viaConfig: SshConfigConnectOptions = {
    host: 'myalias',
    sshConfig: true,
    password: (attempt, account) => {
      check<Equal<typeof account, PasswordContext>>();
      return attempt === 1 ? `secret for ${account.username}@${account.host}:${account.port}` : undefined;
    },
    knownHosts: {
      // Asked only when the files say StrictHostKeyChecking ask (ssh's default) and BatchMode is off.
      ask: async (question) => {
        check<Equal<typeof question, HostKeyQuestion>>();
        check<Equal<typeof question.address, string | undefined>>();
        check<Equal<typeof question.otherNames, readonly KnownHostsOtherName[]>>();
        return question.fingerprint === 'SHA256:known' && question.keyType === 'ED25519';
      },
    },
  };
  await connect(viaConfig);
  // The policy itself, without any ssh_config: unknown hosts are put to the callback.
  const ask: HostKeyAsk = (question) => question.name === '[127.0.0.1]:2222';
  await connect({ username: 'alice', knownHosts: { policy: 'ask', ask, hash: true, hostKeyAlias: 'lab' } });

  const options: SshOptions = resolveHost(loadSshConfigs(true), 'myalias', { user: 'alice' });
  check<Equal<typeof options.strictHostKeyChecking, SshConfigStrictHostKeyChecking>>();
  check<Equal<typeof options.proxyJump, readonly JumpHost[] | null>>();
  const resolved: ResolvedConnectOptions = { jumpConfigs: loadSshConfigs('/home/alice/.ssh/config'), readyTimeout: 60_000 };
  check<Equal<Awaited<ReturnType<typeof connectWithSshOptions>>, SshClient>>();
  await connectWithSshOptions(options, resolved);
  try {
    await connect({ host: 'myalias', sshConfig: true });
  } catch (error) {
    if (error instanceof ConfigError) check<Equal<[typeof error.file, typeof error.line], [string, number]>>();
  }

  // @ts-expect-error TS2345 reading an ssh_config needs the destination (host) to look up
  await connect({ sshConfig: true });
  // @ts-expect-error TS2322 sshConfig is true, a path, a parsed config or a list of those
  await connect({ host: 'myalias', sshConfig: 1 });
  // @ts-expect-error TS2322 policy 'ask' needs the callback that answers
  await connect({ username: 'alice', knownHosts: { policy: 'ask' } });
  // @ts-expect-error TS2322 ask answers yes or no with a boolean, not ssh's words
  await connect({ username: 'alice', knownHosts: { policy: 'ask', ask: () => 'yes' } });
  // @ts-expect-error TS2540 the resolved options (SshOptions) are read-only
  options.port = 22;
}

// ---- createServer(), auth hooks and sessions ------------------------------------------------------

export async function serverUsage(): Promise<void> {
  const hooks: ServerAuthHooks = {
    none: ({ user }) => (user === 'guest' ? 'success' : 'failure'),
    publicKeyAllowed: async (request) => {
      check<Equal<typeof request, PublicKeyRequest>>();
      check<Equal<typeof request.key, SshPublicKey>>();
      return request.user === 'alice' && request.key.blob.equals(someKey.blob);
    },
    publicKeyVerified: () => 'partial',
    password: (request) => {
      check<Equal<typeof request, PasswordRequest>>();
      return request.password === 'expired' ? { changePassword: 'Your password has expired' } : 'failure';
    },
    changePassword: ({ oldPassword, newPassword }) => (oldPassword !== newPassword ? 'success' : 'failure'),
    keyboardInteractive: async (request, prompt) => {
      check<Equal<typeof prompt, KeyboardInteractivePrompt>>();
      const answers = await prompt({ name: '', instruction: request.submethods, prompts: [{ prompt: 'Code: ', echo: false }] });
      check<Equal<typeof answers, string[]>>();
      return answers[0] === '123456' ? 'success' : 'failure';
    },
  };
  const server = createServer({
    hostKeys: [hostKey],
    auth: hooks,
    authenticationMethods: MethodPolicy.parse('publickey,password publickey,keyboard-interactive'),
    maxAuthTries: 3,
    loginGraceTime: 30_000,
    banner: 'hello\n',
    authLog: (event, connection) => console.log(event.outcome, event.method, event.user, connection.remoteAddress),
  });
  check<Equal<typeof server, SshServer>>();
  // Hooks per connection, to see where it comes from.
  createServer({ hostKeys: [hostKey], auth: (connection) => ({ password: () => (connection.remoteAddress === '127.0.0.1' ? 'success' : 'failure') }) });

  const address = await server.listen(0);
  check<Equal<typeof address, AddressInfo>>();
  check<Equal<ReturnType<SshServer['close']>, Promise<void>>>();

  server.on('connection', (connection) => {
    check<Equal<typeof connection, ServerConnection>>();
    check<Equal<typeof connection.user, string | undefined>>();
    check<Equal<typeof connection.remoteAddress, string | undefined>>();
    check<Equal<typeof connection.sessionId, Buffer | undefined>>();
    connection.on('authenticated', (user, methods) => {
      check<Equal<typeof user, string>>();
      check<Equal<typeof methods, readonly string[]>>();
    });
    connection.on('session', (session) => {
      check<Equal<typeof session, ServerSession>>();
      check<Equal<typeof session.stderr, Writable>>();
      check<Equal<typeof session.pty, PtyRequest | undefined>>();
      check<Equal<typeof session.env, Record<string, string>>>();
      // Annotated listeners compile whether or not the session's events are typed.
      session.on('exec', (request: SessionRequest<{ command: string }>) => {
        request.accept();
        session.write(`ran ${request.details.command}\n`);
        session.exit(0);
      });
      session.on('pty', (request: SessionRequest<PtyRequest>) => request.reject());
      session.on('window-change', (size: WindowChange) => size.columns);
      session.exitSignal('TERM', false, 'terminated');
    });
    connection.on('direct-tcpip', (request, accept, reject) => {
      check<Equal<typeof request, DirectTcpipRequest>>();
      check<Equal<ReturnType<typeof accept>, ChannelStream>>();
      if (request.port !== 80) reject();
      else accept().end();
    });
    connection.on('tcpip-forward', (request, accept, reject) => {
      check<Equal<typeof request, RemoteForwardRequest>>();
      if (request.port === 0) accept(40000);
      else reject();
    });
    connection.on('close', (error) => check<Equal<typeof error, SshError | undefined>>());
    check<Equal<Awaited<ReturnType<ServerConnection['openForwardedTcpip']>>, ChannelStream>>();
    check<Equal<Awaited<ReturnType<ServerConnection['openAgentChannel']>>, ChannelStream>>();

    // @ts-expect-error TS2345 ssh2's 'authentication' event is the auth hooks here
    connection.on('authentication', () => {});
    // @ts-expect-error TS2345 'ready' is 'authenticated' here
    connection.on('ready', () => {});
  });
  check<Equal<ServerSessionEvents['exec'], [request: SessionRequest<{ command: string }>]>>();
  check<Equal<ServerSessionEvents['signal'], [name: string]>>();
  check<Equal<ServerConnectionEvents['authenticated'], [user: string, methods: readonly string[]]>>();
}

export function serverMistakes(): void {
  // @ts-expect-error TS2741 hostKeys is required
  createServer({ auth: {} });
  // @ts-expect-error TS2322 an outcome is 'success', 'partial' or 'failure', not a boolean
  createServer({ hostKeys: [hostKey], auth: { password: () => true } });
  // @ts-expect-error TS2322 publicKeyAllowed only answers whether the key may be used: a boolean, never a login
  createServer({ hostKeys: [hostKey], auth: { publicKeyAllowed: () => 'success' } });
  // @ts-expect-error TS2322 publicKeyVerified decides the login with an outcome, not a boolean
  createServer({ hostKeys: [hostKey], auth: { publicKeyVerified: async () => true } });
  // @ts-expect-error TS2322 a keyboard-interactive hook resolves with an outcome
  createServer({ hostKeys: [hostKey], auth: { keyboardInteractive: async () => ['123456'] } });
  // @ts-expect-error TS2353 ssh2's per-connection callback is the 'connection' event here
  createServer({ hostKeys: [hostKey], auth: {}, connectionListener: () => {} });
  const outcome: AuthOutcome = 'success';
  // @ts-expect-error TS2322 'accept' is not an outcome
  const wrong: PasswordOutcome = 'accept';
  void outcome;
  void wrong;
  const options: ServerOptions = { hostKeys: [hostKey], auth: {} };
  // @ts-expect-error TS2540 options are read-only
  options.maxAuthTries = 10;
}

// ---- errors ---------------------------------------------------------------------------------------

export function errorUsage(error: unknown): string {
  if (error instanceof HostKeyError) {
    check<Equal<typeof error.code, SshErrorCode>>();
    return `host key: ${error.message}`;
  }
  if (error instanceof SshError) {
    if (error.code === 'ERR_SSH_AUTH') return 'permission denied';
    if (error.reason === DisconnectReason.CONNECTION_LOST) return 'lost';
    // @ts-expect-error TS2367 codes are a closed set (a typo cannot match)
    if (error.code === 'ERR_SSH_HOSTKEY') return 'never';
    // @ts-expect-error TS2540 DisconnectReason is a constant table
    DisconnectReason.CONNECTION_LOST = 11;
  }
  return 'other';
}

export function keyboardInteractiveRequest(request: InfoRequest): string[] {
  check<Equal<(typeof request.prompts)[number]['echo'], boolean>>();
  return request.prompts.map((p) => (p.echo ? 'visible' : 'hidden'));
}
