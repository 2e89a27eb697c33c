/**
 * Every script in examples/ runs here as a child process, the way a reader would run it, against a
 * server this test starts: our own createServer() in this process, OpenSSH's sshd (where a real
 * shell or real forwarding is the point), or another example (the servers are examples too, and
 * the client examples and OpenSSH's ssh are pointed at them). Each asserts what the example printed
 * and its exit status. The examples import 'tssh', which resolves to this package's build.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  createServer,
  fingerprint,
  formatOpenSshPublicKey,
  formatPrivateKeyFile,
  generatePrivateKey,
  SshError,
  type ConnectOptions,
  type DirectTcpipRequest,
  type ServerSession,
  type SshPrivateKey,
  type SshPublicKey,
  type SshServer,
} from '../../src/index.js';
import { openSshFixture, type OpenSshFixture } from '../helpers/openssh.js';
import { havePeers } from '../helpers/peers.js';

/** The repository root: this file runs as dist/test/examples/examples.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');

// ---- Running examples ---------------------------------------------------------------------------

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stdout; rejects if the example exits first or after a timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends SIGINT (by PID) and waits for the exit. */
  interrupt(): Promise<Finished>;
  exited: Promise<Finished>;
}

/** Starts `node examples/NAME args…` with exactly `env` (plus PATH), registered to be stopped by PID after the test. */
function startExample(t: TestContext, name: string, args: readonly string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [join(EXAMPLES, name), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  child.stdin.on('error', () => {}); // an example that exits without reading its input
  const exited = new Promise<Finished>((resolveExit) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolveExit({ code, signal, stdout: out, stderr: err }));
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor: (pattern, timeoutMs = 20_000) =>
      new Promise((resolveMatch, reject) => {
        const check = (): boolean => {
          const match = pattern.exec(out);
          if (!match) return false;
          cleanup();
          resolveMatch(match);
          return true;
        };
        const onExit = (): void => {
          if (check()) return;
          cleanup();
          reject(new Error(`${name} exited before printing ${pattern}:\nstdout:\n${out}\nstderr:\n${err}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\nstdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          child.stdout.off('data', check);
          child.off('exit', onExit);
        };
        if (check()) return;
        child.stdout.on('data', check);
        child.once('exit', onExit);
      }),
    interrupt: async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGINT');
      return exited;
    },
  };
}

/** Runs an example to its end, with `input` on its stdin (closed after it), within a time limit. */
async function runExample(
  t: TestContext,
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  input = '',
  timeoutMs = 30_000,
): Promise<Finished> {
  const running = startExample(t, name, args, env);
  running.child.stdin.end(input);
  const timer = setTimeout(() => running.child.pid !== undefined && process.kill(running.child.pid, 'SIGKILL'), timeoutMs);
  const result = await running.exited;
  clearTimeout(timer);
  assert.notEqual(result.signal, 'SIGKILL', `${name} was killed after ${timeoutMs} ms:\n${describeRun(result)}`);
  return result;
}

/** What an example did, for assertion messages (long outputs cut). */
function describeRun(result: Finished): string {
  const cut = (text: string): string => (text.length > 2000 ? `${text.slice(0, 1000)}\n[… ${text.length - 2000} characters …]\n${text.slice(-1000)}` : text);
  return `exit ${result.code ?? result.signal}\nstdout (${result.stdout.length} characters):\n${cut(result.stdout)}\nstderr:\n${cut(result.stderr)}`;
}

// ---- Keys and files -----------------------------------------------------------------------------

interface Keys {
  host: SshPrivateKey;
  user: SshPrivateKey;
}
let keysPromise: Promise<Keys> | undefined;
function keys(): Promise<Keys> {
  keysPromise ??= (async () => ({ host: await generatePrivateKey('ed25519'), user: await generatePrivateKey('ed25519') }))();
  return keysPromise;
}

/** A temporary folder, removed after the test, with the user's key file in it. */
async function workDir(t: TestContext): Promise<{ dir: string; userKeyFile: string; hostKeyFile: string; knownHosts(entries: readonly [number, SshPublicKey | string][]): string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-examples-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const k = await keys();
  const userKeyFile = join(dir, 'id_ed25519');
  writeFileSync(userKeyFile, await formatPrivateKeyFile(k.user, { format: 'openssh', comment: 'examples-test' }), { mode: 0o600 });
  writeFileSync(`${userKeyFile}.pub`, `${formatOpenSshPublicKey(k.user.publicKey, 'examples-test')}\n`);
  const hostKeyFile = join(dir, 'host_ed25519');
  writeFileSync(hostKeyFile, await formatPrivateKeyFile(k.host, { format: 'openssh' }), { mode: 0o600 });
  let count = 0;
  return {
    dir,
    userKeyFile,
    hostKeyFile,
    knownHosts: (entries) => {
      const file = join(dir, `known_hosts.${++count}`);
      const lines = entries.map(([port, key]) => `[127.0.0.1]:${port} ${typeof key === 'string' ? key : formatOpenSshPublicKey(key)}`);
      writeFileSync(file, `${lines.join('\n')}\n`);
      return file;
    },
  };
}

// ---- Servers ------------------------------------------------------------------------------------

interface OurServer {
  server: SshServer;
  port: number;
  /** Every direct-tcpip request it was asked for. */
  forwards: DirectTcpipRequest[];
  /** Whether each session asked for a pty. */
  ptyRequests: number;
}

/**
 * Our server, as a test peer: user `alice` by key (the test user key) or password `secret`; exec
 * runs a tiny command language; shell echoes lines; direct-tcpip connects on 127.0.0.1.
 */
async function startOurServer(t: TestContext, options: { refusePty?: boolean } = {}): Promise<OurServer> {
  const k = await keys();
  const result: OurServer = { server: undefined as unknown as SshServer, port: 0, forwards: [], ptyRequests: 0 };
  const server = createServer({
    hostKeys: [k.host],
    auth: {
      publicKeyAllowed: ({ user, key }) => user === 'alice' && key.blob.equals(k.user.publicKey.blob),
      password: ({ user, password }) => (user === 'alice' && password === 'secret' ? 'success' : 'failure'),
    },
  });
  server.on('connection', (connection) => {
    connection.on('session', (session) => {
      session.on('pty', (request) => {
        result.ptyRequests++;
        if (options.refusePty) request.reject();
        else request.accept();
      });
      session.on('exec', (request) => {
        request.accept();
        runCommand(session, request.details.command, connection.user ?? '');
      });
      session.on('shell', (request) => {
        request.accept();
        let buffered = '';
        session.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          let newline: number;
          while ((newline = buffered.search(/\r?\n/)) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + (buffered[newline] === '\r' ? 2 : 1));
            if (line === 'exit') return session.exit(0);
            session.write(`you said: ${line}\n`);
          }
        });
      });
    });
    connection.on('direct-tcpip', (request, accept, reject) => {
      result.forwards.push(request);
      const socket = netConnect({ host: request.host, port: request.port });
      socket.once('connect', () => {
        const stream = accept();
        socket.pipe(stream).pipe(socket);
        stream.on('error', () => socket.destroy());
      });
      socket.once('error', () => reject());
    });
  });
  const address = await server.listen(0);
  t.after(() => server.close());
  result.server = server;
  result.port = address.port;
  return result;
}

/** The exec commands of our test server: `echo WORDS`, `fail N`, `bigoutput BYTES`, `whoami`. */
function runCommand(session: ServerSession, command: string, user: string): void {
  const [verb, ...rest] = command.split(' ');
  const argument = rest.join(' ');
  if (verb === 'echo') {
    session.write(`${argument}\n`);
    session.exit(0);
  } else if (verb === 'fail') {
    session.stderr.write('failing\n', () => session.exit(Number(argument)));
  } else if (verb === 'whoami') {
    session.write(`${user}\n`);
    session.exit(0);
  } else if (verb === 'bigoutput') {
    const total = Number(argument);
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        const size = Math.min(32 * 1024, total - sent);
        const chunk = Buffer.alloc(size, 'x');
        for (let i = 0; i < size; i += 1024) chunk[i] = 0x30 + (((sent + i) / 1024) % 10);
        sent += size;
        if (!session.write(chunk)) return void session.once('drain', more);
      }
      session.exit(0);
    };
    more();
  } else {
    session.stderr.write(`unknown command ${verb}\n`, () => session.exit(127));
  }
}

/** The bytes `bigoutput N` writes: 'x's with a digit every KiB. */
function bigOutput(total: number): string {
  const out = Buffer.alloc(total, 'x');
  for (let i = 0; i < total; i += 1024) out[i] = 0x30 + ((i / 1024) % 10);
  return out.toString('latin1');
}

interface SshdTarget {
  fx: OpenSshFixture;
  port: number;
  /** known_hosts lines for its host keys on 127.0.0.1:port. */
  knownHostsFile: string;
}

async function startSshd(t: TestContext): Promise<SshdTarget> {
  const fx = await openSshFixture(t);
  // LogLevel INFO: at DEBUG levels sshd also sends its session log lines to the client's stderr.
  const sshd = await fx.spawnSshdListening(fx.sshdConfig({ logLevel: 'INFO' }));
  const knownHostsFile = fx.path('known_hosts.examples');
  writeFileSync(knownHostsFile, Object.values(fx.hostKeys).map((key) => `[127.0.0.1]:${sshd.port} ${key.publicKeyLine}\n`).join(''));
  return { fx, port: sshd.port, knownHostsFile };
}

/** The environment for a client example pointed at one server. */
function clientEnv(target: { port: number; user: string; key: string; knownHosts: string; password?: string }, home: string): Record<string, string> {
  return {
    HOME: home,
    SSH_HOST: '127.0.0.1',
    SSH_PORT: String(target.port),
    SSH_USER: target.user,
    SSH_KEY: target.key,
    SSH_KNOWN_HOSTS: target.knownHosts,
    ...(target.password !== undefined ? { SSH_PASSWORD: target.password } : {}),
  };
}

/** An echo service on 127.0.0.1: each line comes back as `echo: LINE`. */
async function startEchoServer(t: TestContext): Promise<number> {
  const server: NetServer = createNetServer((socket) => {
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        socket.write(`echo: ${buffered.slice(0, newline)}\n`);
        buffered = buffered.slice(newline + 1);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  t.after(() => new Promise<void>((resolveClose) => server.close(() => resolveClose())));
  return (server.address() as AddressInfo).port;
}

/** Connects to 127.0.0.1:port, sends `line`, resolves with the first line that comes back. */
function askOverTcp(port: number, line: string): Promise<string> {
  return new Promise((resolveLine, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    let received = '';
    socket.on('connect', () => socket.write(`${line}\n`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      const newline = received.indexOf('\n');
      if (newline >= 0) {
        socket.end();
        resolveLine(received.slice(0, newline));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${JSON.stringify(received)}`)));
  });
}

// ---- The tests ----------------------------------------------------------------------------------

test('every example in examples/ is exercised by this file', () => {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const used = new Set([...source.matchAll(/'([a-z-]+\.mjs)'/g)].map((m) => m[1]));
  for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith('.mjs'))) {
    assert.ok(used.has(file), `examples/${file} is not run by test/examples/examples.test.ts`);
  }
});

test('the examples type-check against the published declarations (tsc -p examples)', () => {
  const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(EXAMPLES, 'tsconfig.json')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, `tsc -p examples:\n${result.stdout}${result.stderr}`);
});

describe('run-a-command.mjs', () => {
  test('against our server: output, stderr and exit status, by key and by password', async (t) => {
    const k = await keys();
    const server = await startOurServer(t);
    const w = await workDir(t);
    const env = clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, k.host.publicKey]]) }, w.dir);

    const hello = await runExample(t, 'run-a-command.mjs', ['echo', 'hello', 'world'], env);
    assert.equal(hello.code, 0, describeRun(hello));
    assert.equal(hello.stdout, 'hello world\n');
    assert.equal(hello.stderr, '');

    const failing = await runExample(t, 'run-a-command.mjs', ['fail 3'], env);
    assert.equal(failing.code, 3, describeRun(failing));
    assert.equal(failing.stdout, '');
    assert.equal(failing.stderr, 'failing\n');

    const byPassword = await runExample(t, 'run-a-command.mjs', ['whoami'], { ...env, SSH_KEY: join(w.dir, 'no-such-key'), SSH_PASSWORD: 'secret' });
    assert.equal(byPassword.code, 0, describeRun(byPassword));
    assert.equal(byPassword.stdout, 'alice\n');
  });

  test('refuses a server whose host key is not in known_hosts, and says so', async (t) => {
    const server = await startOurServer(t);
    const w = await workDir(t);
    const other = await generatePrivateKey('ed25519');
    const unknown = await runExample(t, 'run-a-command.mjs', ['echo', 'never'], clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([]) }, w.dir));
    assert.equal(unknown.code, 255, describeRun(unknown));
    assert.match(unknown.stderr, /^run-a-command: no host key is known for \[127\.0\.0\.1\]:\d+ and StrictHostKeyChecking is strict/);
    const changed = await runExample(t, 'run-a-command.mjs', ['echo', 'never'], clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, other.publicKey]]) }, w.dir));
    assert.equal(changed.code, 255, describeRun(changed));
    assert.match(changed.stderr, /host key for \[127\.0\.0\.1\]:\d+ has changed/);
    assert.equal(changed.stdout, '');
  });

  test(
    '--stream passes a large output through byte for byte, to a reader slower than the network',
    async (t) => {
      const k = await keys();
      const server = await startOurServer(t);
      const w = await workDir(t);
      const env = clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, k.host.publicKey]]) }, w.dir);
      const size = 3 * 1024 * 1024 + 17;
      const result = await runExample(t, 'run-a-command.mjs', ['--stream', `bigoutput ${size}`], env, '', 10_000);
      assert.equal(result.code, 0, describeRun(result));
      assert.equal(result.stdout.length, size);
      assert.ok(result.stdout === bigOutput(size), 'the output arrived intact');
    },
  );

  test('against OpenSSH sshd: a real shell command and its exit status', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const sshd = await startSshd(t);
    const env = clientEnv({ port: sshd.port, user: sshd.fx.user, key: sshd.fx.userKey.privateKey, knownHosts: sshd.knownHostsFile }, sshd.fx.dir);
    const result = await runExample(t, 'run-a-command.mjs', ['echo "hello from $(whoami)"; echo oops >&2; exit 7'], env);
    assert.equal(result.code, 7, describeRun(result));
    assert.equal(result.stdout, `hello from ${sshd.fx.user}\n`);
    assert.equal(result.stderr, 'oops\n');
  });

  test('against OpenSSH sshd: --stream', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const sshd = await startSshd(t);
    const env = clientEnv({ port: sshd.port, user: sshd.fx.user, key: sshd.fx.userKey.privateKey, knownHosts: sshd.knownHostsFile }, sshd.fx.dir);
    const streamed = await runExample(t, 'run-a-command.mjs', ['--stream', "head -c 2000000 /dev/zero | tr '\\0' x"], env, '', 10_000);
    assert.equal(streamed.code, 0, describeRun(streamed));
    assert.equal(streamed.stdout, 'x'.repeat(2_000_000));
  });
});

describe('interactive-shell.mjs', () => {
  test('against OpenSSH sshd with -t: a shell on a pseudo-terminal', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const sshd = await startSshd(t);
    const env = clientEnv({ port: sshd.port, user: sshd.fx.user, key: sshd.fx.userKey.privateKey, knownHosts: sshd.knownHostsFile }, sshd.fx.dir);
    const result = await runExample(t, 'interactive-shell.mjs', ['-t'], env, 'echo hello-$((6*7))\ntty\nexit 0\n');
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^hello-42\r?$/m, 'the shell ran the command');
    assert.match(result.stdout, /^\/dev\/pts\/\d+\r?$/m, 'on a pseudo-terminal');
  });

  test('a server that refuses the terminal: the shell goes on without one, with a note', async (t) => {
    const k = await keys();
    const server = await startOurServer(t, { refusePty: true });
    const w = await workDir(t);
    const env = clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, k.host.publicKey]]) }, w.dir);
    const result = await runExample(t, 'interactive-shell.mjs', ['-t'], env, 'hello\nexit\n');
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, 'you said: hello\n');
    assert.equal(result.stderr, '[server refused pty-req: continuing without a terminal]\n');
    assert.equal(server.ptyRequests, 1);
  });

  test('without -t and without a terminal on stdin, no pty is asked for (as ssh)', async (t) => {
    const k = await keys();
    const server = await startOurServer(t);
    const w = await workDir(t);
    const env = clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, k.host.publicKey]]) }, w.dir);
    const result = await runExample(t, 'interactive-shell.mjs', [], env, 'one\ntwo\nexit\n');
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, 'you said: one\nyou said: two\n');
    assert.equal(server.ptyRequests, 0);
  });
});

describe('port-forward.mjs', () => {
  test('through our server: a local port reaches the target, and Ctrl-C closes it', async (t) => {
    const k = await keys();
    const server = await startOurServer(t);
    const echoPort = await startEchoServer(t);
    const w = await workDir(t);
    const env = clientEnv({ port: server.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[server.port, k.host.publicKey]]) }, w.dir);
    const running = startExample(t, 'port-forward.mjs', ['0', `127.0.0.1:${echoPort}`], env);
    const [, localPort] = await running.waitFor(/^forwarding 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+)$/m);
    assert.equal(await askOverTcp(Number(localPort), 'ping'), 'echo: ping');
    assert.equal(await askOverTcp(Number(localPort), 'again'), 'echo: again');
    assert.deepEqual(
      server.forwards.map((f) => `${f.host}:${f.port}`),
      [`127.0.0.1:${echoPort}`, `127.0.0.1:${echoPort}`],
    );
    const finished = await running.interrupt();
    assert.equal(finished.code, 0, describeRun(finished));
    assert.match(finished.stdout, /\nclosed\n$/);
    await assert.rejects(askOverTcp(Number(localPort), 'gone'), /ECONNREFUSED/);
  });

  test('through OpenSSH sshd', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const sshd = await startSshd(t);
    const echoPort = await startEchoServer(t);
    const env = clientEnv({ port: sshd.port, user: sshd.fx.user, key: sshd.fx.userKey.privateKey, knownHosts: sshd.knownHostsFile }, sshd.fx.dir);
    const running = startExample(t, 'port-forward.mjs', ['0', `127.0.0.1:${echoPort}`], env);
    const [, localPort] = await running.waitFor(/^forwarding 127\.0\.0\.1:(\d+) -> /m);
    assert.equal(await askOverTcp(Number(localPort), 'via sshd'), 'echo: via sshd');
    const finished = await running.interrupt();
    assert.equal(finished.code, 0, describeRun(finished));
  });
});

describe('ssh-config-alias.mjs', () => {
  /** ~/.ssh/config in the work folder (the example runs with HOME there), alias lines first, then the shared ones. */
  function writeUserConfig(w: { dir: string; userKeyFile: string }, knownHosts: string, aliases: readonly string[]): void {
    mkdirSync(join(w.dir, '.ssh'), { recursive: true, mode: 0o700 });
    const shared = ['Host *', `  IdentityFile ${w.userKeyFile}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${knownHosts}`, '  GlobalKnownHostsFile /dev/null', '  HashKnownHosts no'];
    writeFileSync(join(w.dir, '.ssh', 'config'), `${[...aliases, ...shared].join('\n')}\n`, { mode: 0o600 });
  }

  test('an alias from ~/.ssh/config: HostName, Port, User and IdentityFile reach our server', async (t) => {
    const k = await keys();
    const server = await startOurServer(t);
    const w = await workDir(t);
    writeUserConfig(w, w.knownHosts([[server.port, k.host.publicKey]]), ['Host lab', '  HostName 127.0.0.1', `  Port ${server.port}`, '  User alice', '  StrictHostKeyChecking yes']);
    const result = await runExample(t, 'ssh-config-alias.mjs', ['lab', 'whoami'], { HOME: w.dir });
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, 'alice\n');
    assert.equal(result.stderr, '');
    const unknownAlias = await runExample(t, 'ssh-config-alias.mjs', ['no-such-alias.invalid', 'whoami'], { HOME: w.dir });
    assert.equal(unknownAlias.code, 255, describeRun(unknownAlias));
    assert.match(unknownAlias.stderr, /^ssh-config-alias: Could not resolve hostname no-such-alias\.invalid/);
  });

  test('StrictHostKeyChecking ask: the question on the terminal, yes records the key, no refuses', async (t) => {
    const k = await keys();
    const server = await startOurServer(t);
    const w = await workDir(t);
    const knownHosts = join(w.dir, 'known_hosts.asked');
    writeUserConfig(w, knownHosts, ['Host lab', '  HostName 127.0.0.1', `  Port ${server.port}`, '  User alice']);
    const question =
      `The authenticity of host '[127.0.0.1]:${server.port}' (127.0.0.1) can't be established.\n` +
      `ED25519 key fingerprint is ${fingerprint(k.host.publicKey)}.\n` +
      'Are you sure you want to continue connecting (yes/no/[fingerprint])? ';
    const refused = await runExample(t, 'ssh-config-alias.mjs', ['lab', 'whoami'], { HOME: w.dir }, 'no\n');
    assert.equal(refused.code, 255, describeRun(refused));
    assert.equal(refused.stderr, `${question}ssh-config-alias: host key verification failed: the ssh-ed25519 ${fingerprint(k.host.publicKey)} key of [127.0.0.1]:${server.port} was not accepted\n`);
    const accepted = await runExample(t, 'ssh-config-alias.mjs', ['lab', 'echo', 'trusted'], { HOME: w.dir }, 'yes\n');
    assert.equal(accepted.code, 0, describeRun(accepted));
    assert.equal(accepted.stdout, 'trusted\n');
    assert.equal(accepted.stderr, `${question}Warning: Permanently added '[127.0.0.1]:${server.port}' (ED25519) to the list of known hosts.\n`);
    assert.equal(readFileSync(knownHosts, 'utf8'), `[127.0.0.1]:${server.port} ${formatOpenSshPublicKey(k.host.publicKey)}\n`);
  });

  test('an alias behind a ProxyJump alias: through our server to OpenSSH sshd (SSH_CONFIG names the file)', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const k = await keys();
    const sshd = await startSshd(t);
    const jump = await startOurServer(t);
    const w = await workDir(t);
    sshd.fx.authorize(formatOpenSshPublicKey(k.user.publicKey));
    const knownHosts = w.knownHosts([[jump.port, k.host.publicKey], ...Object.values(sshd.fx.hostKeys).map((key): [number, string] => [sshd.port, key.publicKeyLine])]);
    writeUserConfig(w, knownHosts, [
      'Host db',
      '  HostName 127.0.0.1',
      `  Port ${sshd.port}`,
      `  User ${sshd.fx.user}`,
      '  ProxyJump bastion',
      'Host bastion',
      '  HostName 127.0.0.1',
      `  Port ${jump.port}`,
      '  User alice',
    ]);
    const result = await runExample(t, 'ssh-config-alias.mjs', ['db', 'echo "$(whoami) behind the bastion"'], { HOME: '/nonexistent', SSH_CONFIG: join(w.dir, '.ssh', 'config') });
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, `${sshd.fx.user} behind the bastion\n`);
    assert.deepEqual(jump.forwards.map((f) => `${f.host}:${f.port}`), [`127.0.0.1:${sshd.port}`]);
  });
});

describe('jump-host.mjs', () => {
  test('through our server to another of ours', async (t) => {
    const k = await keys();
    const jump = await startOurServer(t);
    const target = await startOurServer(t);
    const w = await workDir(t);
    const env = {
      ...clientEnv({ port: target.port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[jump.port, k.host.publicKey], [target.port, k.host.publicKey]]) }, w.dir),
      JUMP_HOST: '127.0.0.1',
      JUMP_PORT: String(jump.port),
    };
    const result = await runExample(t, 'jump-host.mjs', ['echo', 'behind', 'the', 'jump', 'host'], env);
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, 'behind the jump host\n');
    assert.deepEqual(jump.forwards, [{ host: '127.0.0.1', port: target.port, originHost: '127.0.0.1', originPort: 0 }]);
    assert.deepEqual(target.forwards, []);
  });

  test('through our server to OpenSSH sshd, whose host key is checked under its own name', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const k = await keys();
    const sshd = await startSshd(t);
    const jump = await startOurServer(t);
    const w = await workDir(t);
    // The jump host's key and sshd's keys, each under its own [127.0.0.1]:port.
    const knownHosts = w.knownHosts([[jump.port, k.host.publicKey], ...Object.values(sshd.fx.hostKeys).map((key): [number, string] => [sshd.port, key.publicKeyLine])]);
    // The same user name on both: alice's key file is authorized by sshd too.
    sshd.fx.authorize(formatOpenSshPublicKey(k.user.publicKey));
    const env = {
      ...clientEnv({ port: sshd.port, user: sshd.fx.user, key: w.userKeyFile, knownHosts }, w.dir),
      JUMP_HOST: '127.0.0.1',
      JUMP_PORT: String(jump.port),
      JUMP_USER: 'alice',
    };
    const result = await runExample(t, 'jump-host.mjs', ['echo "on $(whoami)@sshd"'], env);
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout, `on ${sshd.fx.user}@sshd\n`);
    assert.equal(jump.forwards.length, 1);
    assert.equal(jump.forwards[0]?.port, sshd.port);

    // A wrong key for sshd in known_hosts: the inner connection is refused, not the jump.
    const wrong = w.knownHosts([[jump.port, k.host.publicKey], [sshd.port, k.host.publicKey]]);
    const refused = await runExample(t, 'jump-host.mjs', ['true'], { ...env, SSH_KNOWN_HOSTS: wrong });
    assert.equal(refused.code, 255, describeRun(refused));
    assert.match(refused.stderr, new RegExp(`^jump-host: host key for \\[127\\.0\\.0\\.1\\]:${sshd.port} has changed`));
  });
});

/** Starts a server example on a free port and reads its address and host key fingerprint. */
async function startServerExample(t: TestContext, name: string, env: Record<string, string>): Promise<{ running: Running; port: number; hostFingerprint: string }> {
  const running = startExample(t, name, [], { PORT: '0', ...env });
  const [, port] = await running.waitFor(/^listening on 127\.0\.0\.1:(\d+)$/m);
  const [, hostFingerprint] = await running.waitFor(/^host key ssh-ed25519 (SHA256:\S+)$/m);
  return { running, port: Number(port), hostFingerprint: hostFingerprint! };
}

/** Connect options for a server example: its host key checked by fingerprint. */
function toExample(port: number, hostFingerprint: string, options: Partial<ConnectOptions> & { username: string }): ConnectOptions {
  return { host: '127.0.0.1', port, verifyHostKey: (key) => fingerprint(key) === hostFingerprint, ...options };
}

describe('custom-auth-server.mjs', () => {
  async function start(t: TestContext, moreKeys = '') {
    const w = await workDir(t);
    const authorizedKeys = join(w.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `# alice's keys\n${formatOpenSshPublicKey((await keys()).user.publicKey, 'alice@laptop')}\n${moreKeys}`);
    const started = await startServerExample(t, 'custom-auth-server.mjs', { HOME: w.dir, ALICE_PASSWORD: 'rabbit-hole', AUTHORIZED_KEYS: authorizedKeys, HOST_KEY: w.hostKeyFile });
    return { ...started, w };
  }

  test('password and publickey logins, commands through /bin/sh, refusals, and its log', async (t) => {
    const k = await keys();
    const { running, port, hostFingerprint } = await start(t);
    assert.equal(hostFingerprint, fingerprint(k.host.publicKey), 'the HOST_KEY file was used');

    const banners: string[] = [];
    const byPassword = await connect(toExample(port, hostFingerprint, { username: 'alice', password: 'rabbit-hole' }));
    byPassword.on('banner', (message) => banners.push(message));
    const result = await byPassword.exec('echo "$USER"; echo to-stderr >&2; exit 5');
    assert.equal(result.stdout.toString(), 'alice\n');
    assert.equal(result.stderr.toString(), 'to-stderr\n');
    assert.equal(result.code, 5);
    // Much stderr just before the exit: all of it arrives before the exit status closes the channel.
    const loud = await byPassword.exec("head -c 600000 /dev/zero | tr '\\0' e >&2; exit 2");
    assert.equal(loud.stderr.length, 600_000);
    assert.equal(loud.code, 2);
    const piped = await byPassword.exec('tr a-z A-Z', { stdin: 'shout\n' });
    assert.equal(piped.stdout.toString(), 'SHOUT\n');
    // No pty or shell listeners on the server: both are refused.
    await assert.rejects(byPassword.shell(), (error: unknown) => error instanceof SshError && /refused pty-req/.test(error.message));
    await assert.rejects(byPassword.shell({ pty: false }), (error: unknown) => error instanceof SshError && /refused shell/.test(error.message));
    await byPassword.end();

    const byKey = await connect(toExample(port, hostFingerprint, { username: 'alice', privateKeys: [k.user] }));
    assert.equal((await byKey.exec('echo key ok')).stdout.toString(), 'key ok\n');
    const killed = await byKey.exec('kill -TERM $$');
    assert.equal(killed.code, undefined);
    assert.equal(killed.signal?.signal, 'TERM');
    await byKey.end();

    await assert.rejects(connect(toExample(port, hostFingerprint, { username: 'alice', password: 'wrong' })), /Permission denied \(publickey,password\)\./);
    await assert.rejects(connect(toExample(port, hostFingerprint, { username: 'bob', password: 'rabbit-hole' })), /Permission denied \(publickey,password\)\./);
    await assert.rejects(connect(toExample(port, hostFingerprint, { username: 'bob', privateKeys: [k.user] })), /Permission denied \(publickey,password\)\./);

    const log = running.stdout();
    assert.match(log, /^Accepted password for alice from 127\.0\.0\.1 port \d+$/m);
    assert.match(log, new RegExp(`^Accepted publickey for alice from 127\\.0\\.0\\.1 port \\d+ ssh-ed25519 ${fingerprint(k.user.publicKey).replace(/[+/]/g, '\\$&')}$`, 'm'));
    assert.match(log, /^Failed password for alice from 127\.0\.0\.1 port \d+$/m);
    assert.match(log, /^Failed password for bob from 127\.0\.0\.1 port \d+$/m);
    const stopped = await running.interrupt();
    assert.equal(stopped.code, 0, describeRun(stopped));
    assert.match(stopped.stdout, /\nstopped\n$/);
  });

  test('the run-a-command example logs in to it (known_hosts and key file from the environment)', async (t) => {
    const k = await keys();
    const { port, w } = await start(t);
    const env = clientEnv({ port, user: 'alice', key: w.userKeyFile, knownHosts: w.knownHosts([[port, k.host.publicKey]]) }, w.dir);
    const result = await runExample(t, 'run-a-command.mjs', ['printf "%s\\n" "$HOME" | wc -l'], env);
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(result.stdout.trim(), '1');
    assert.equal(result.stderr, '', 'the banner goes to the banner event, which run-a-command does not print');
  });

  test("OpenSSH's ssh logs in to it with a key", async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
    const fx = await openSshFixture(t);
    const { port } = await start(t, `${fx.userKey.publicKeyLine}\n`);
    const result = await fx.runSsh(['127.0.0.1', 'echo "from OpenSSH as $USER"; exit 3'], { port, user: 'alice' });
    assert.equal(result.code, 3, `ssh: ${result.stderr}`);
    assert.equal(result.stdout, 'from OpenSSH as alice\n');
  });
});

describe('restricted-shell-server.mjs', () => {
  async function start(t: TestContext) {
    const w = await workDir(t);
    const authorizedKeys = join(w.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `${formatOpenSshPublicKey((await keys()).user.publicKey)}\n`);
    const started = await startServerExample(t, 'restricted-shell-server.mjs', { HOME: w.dir, SWITCH_PASSWORD: 's3cret', HOST_KEY: w.hostKeyFile, AUTHORIZED_KEYS: authorizedKeys });
    return { ...started, w };
  }

  test('one-line commands, abbreviations, errors, shared state, and nothing else', async (t) => {
    const { running, port, hostFingerprint } = await start(t);
    const client = await connect(toExample(port, hostFingerprint, { username: 'admin', password: 's3cret' }));
    const version = await client.exec('show version');
    assert.match(version.stdout.toString(), /^tssh-switch 1\.0 \(an example of tssh's server API\)\nuptime \d+ s\n$/);
    assert.equal(version.code, 0);
    const interfaces = await client.exec('sh int');
    assert.equal(interfaces.stdout.toString(), 'Interface  Status  Description\neth0       up      uplink\neth1       up      \neth2       down    \n');
    const unknown = await client.exec('reboot');
    assert.equal(unknown.stdout.toString(), '% Unknown command: reboot (try help)\n');
    assert.equal(unknown.code, 1);
    assert.equal((await client.exec('show')).stdout.toString(), '% Incomplete command: show\n');
    const configured = await client.exec('configure; hostname core1; no shutdown eth2; description eth2 to rack 4; end; show running-config');
    assert.equal(configured.code, 0, configured.stdout.toString());
    assert.match(configured.stdout.toString(), /^Enter configuration commands.*\nhostname core1\n(.*\n)*interface eth2\n description to rack 4\n no shutdown\n$/);
    // The device is shared: another connection sees the new hostname and who is logged in.
    const other = await connect(toExample(port, hostFingerprint, { username: 'operator', password: 's3cret' }));
    assert.match((await other.exec('show running-config')).stdout.toString(), /^hostname core1\n/);
    assert.match((await other.exec('show users')).stdout.toString(), /^operator from 127\.0\.0\.1 port \d+\n$/);

    // Nothing of the host: no port forwarding, no subsystems.
    await assert.rejects(client.forwardOut('127.0.0.1', port), /prohibited|forwarding is disabled/);
    await assert.rejects(client.subsystem('sftp'), /refused subsystem "sftp"/);
    await client.end();
    await other.end();
    await assert.rejects(connect(toExample(port, hostFingerprint, { username: 'admin', password: 'guess' })), /Permission denied/);
    assert.match(running.stdout(), /^accepted password for admin from 127\.0\.0\.1$/m);
    assert.match(running.stdout(), /^failed password for admin from 127\.0\.0\.1$/m);
  });

  test('an interactive session on a pty: echo, line editing, Ctrl-C, modes and prompts', async (t) => {
    const { port, hostFingerprint } = await start(t);
    const client = await connect(toExample(port, hostFingerprint, { username: 'admin', privateKeys: [(await keys()).user] }));
    const shell = await client.shell({ pty: { columns: 100, rows: 30 } });
    let screen = '';
    shell.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
    const waitForScreen = async (text: string): Promise<void> => {
      for (let i = 0; i < 200 && !screen.includes(text); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(screen.includes(text), `waiting for ${JSON.stringify(text)} in ${JSON.stringify(screen)}`);
    };
    await waitForScreen('switch> ');
    shell.write('shw\x7f\x7fhow ver\r'); // typo, two backspaces, the rest
    await waitForScreen('uptime');
    shell.write('reload now\x03'); // Ctrl-C drops the line
    shell.write('\x1b[Aconf\r'); // an arrow key is ignored
    await waitForScreen('switch(config)# ');
    shell.write('hostname lab9\r');
    await waitForScreen('lab9(config)# ');
    shell.write('exit\rexit\r');
    const [exit] = (await new Promise((resolveExit) => shell.once('exit', (info) => resolveExit([info])))) as [{ code: number | undefined }];
    assert.equal(exit.code, 0);
    assert.ok(screen.includes('switch> shw\b \b\b \bhow ver\r\ntssh-switch 1.0'), JSON.stringify(screen));
    assert.ok(screen.includes('switch> reload now^C\r\nswitch> conf\r\nEnter configuration commands'), JSON.stringify(screen));
    assert.ok(!screen.includes('Unknown'), JSON.stringify(screen));
    await client.end();
  });

  test('the interactive-shell example drives it (-t, input from a pipe), trusting the known_hosts line it printed', async (t) => {
    const w = await workDir(t);
    const authorizedKeys = join(w.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `${formatOpenSshPublicKey((await keys()).user.publicKey)}\n`);
    // No HOST_KEY: a new key, announced on stdout.
    const { running, port } = await startServerExample(t, 'restricted-shell-server.mjs', { HOME: w.dir, AUTHORIZED_KEYS: authorizedKeys });
    const [, knownHostsLine] = await running.waitFor(/^known_hosts line: (\[127\.0\.0\.1\]:\d+ ssh-ed25519 \S+)$/m);
    const knownHosts = join(w.dir, 'known_hosts.printed');
    writeFileSync(knownHosts, `${knownHostsLine}\n`);
    const env = clientEnv({ port, user: 'admin', key: w.userKeyFile, knownHosts }, w.dir);
    const result = await runExample(t, 'interactive-shell.mjs', ['-t'], env, 'show users\nconfigure\nhostname edge7\nexit\nexit\n');
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /switch> show users\r\nadmin from 127\.0\.0\.1 port \d+\r\n/);
    assert.match(result.stdout, /edge7\(config\)# exit\r\nedge7> exit\r\n$/);
  });

  test("OpenSSH's ssh runs a line on it", async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
    const fx = await openSshFixture(t);
    const w = await workDir(t);
    const authorizedKeys = join(w.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `${fx.userKey.publicKeyLine}\n`);
    const { port } = await startServerExample(t, 'restricted-shell-server.mjs', { HOME: w.dir, AUTHORIZED_KEYS: authorizedKeys });
    const result = await fx.runSsh(['127.0.0.1', 'sh ver; sh int'], { port, user: 'netops' });
    assert.equal(result.code, 0, `ssh: ${result.stderr}`);
    assert.match(result.stdout, /^tssh-switch 1\.0 .*\nuptime \d+ s\nInterface  Status  Description\n/);
    const refused = await fx.runSsh(['127.0.0.1', 'bash -i'], { port, user: 'netops' });
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '% Unknown command: bash -i (try help)\n');
  });
});
