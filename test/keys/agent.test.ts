import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { signatureAlgorithms } from '../../src/algorithms/registry.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';
import { ConnectionLostError, ProtocolError, TimeoutError } from '../../src/errors.js';
import {
  AGENT_MAX_MESSAGE_LENGTH,
  AgentClient,
  AgentConnectError,
  AgentFailureError,
  AgentMessage,
  AgentServer,
  InMemoryAgent,
  agentSignAlgorithm,
  agentSignFlags,
} from '../../src/keys/agent.js';
import type { AgentIdentity, SshAgent } from '../../src/keys/agent.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import type { GeneratedKeyType } from '../../src/keys/private-key.js';
import { decodeSignatureBlob, parsePublicKeyBlob } from '../../src/keys/public-key.js';
import { Writer } from '../../src/wire/writer.js';
import { havePeers, peerPath } from '../helpers/peers.js';

// ---- Helpers ----------------------------------------------------------------------------------

const scratch = mkdtempSync(join(tmpdir(), 'tssh-agent-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let folderCount = 0;

/** A fresh private folder (mkdtemp makes it 0700, as an agent socket's folder must be). */
function folder(): string {
  return mkdtempSync(join(scratch, `${++folderCount}-`));
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(program: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function runOk(program: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await run(program, args, env);
  assert.equal(result.code, 0, `${program} ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** ssh-add ships with ssh-agent (Debian's openssh-client): look for it beside it. */
function sshAdd(): string {
  const path = join(dirname(peerPath('ssh-agent')), 'ssh-add');
  if (!existsSync(path)) throw new Error(`ssh-add not found next to ssh-agent (${path})`);
  return path;
}

/** `ssh-add ARGS` against the agent at `socket`. */
function runSshAdd(socket: string, args: readonly string[]): Promise<RunResult> {
  return run(sshAdd(), args, { SSH_AUTH_SOCK: socket });
}

/** The blob of a `.pub` line / `ssh-add -L` line. */
function blobOf(line: string): Buffer {
  const field = line.trim().split(/\s+/)[1];
  assert.ok(field !== undefined, `no key in ${JSON.stringify(line)}`);
  return Buffer.from(field, 'base64');
}

/** The blobs `ssh-add -L` prints ([] when the agent has none: ssh-add then exits 1). */
async function sshAddBlobs(socket: string): Promise<Array<{ blob: string; comment: string }>> {
  const result = await runSshAdd(socket, ['-L']);
  if (result.code === 1 && /no identities/i.test(result.stdout + result.stderr)) return [];
  assert.equal(result.code, 0, result.stderr);
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [, blob = '', ...comment] = line.split(' ');
      return { blob, comment: comment.join(' ') };
    });
}

interface RunningAgent {
  socket: string;
  /** Stop the agent by PID (SIGTERM) and wait for it to exit. */
  stop(): Promise<void>;
}

/**
 * `ssh-agent -D -a SOCKET` as a child, stopped by PID when the test ends (if not before). `env`
 * adds to its environment (SSH_ASKPASS for confirmations).
 */
async function spawnAgent(t: TestContext, env: NodeJS.ProcessEnv = {}, socket = join(folder(), 'agent.sock')): Promise<RunningAgent> {
  const child = spawn(peerPath('ssh-agent'), ['-D', '-a', socket], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      await exited;
    }
  };
  t.after(stop);
  let output = '';
  // With -D the agent prints its SSH_AUTH_SOCK line once the socket is listening.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ssh-agent did not start: ${output}`)), 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('SSH_AUTH_SOCK=')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ssh-agent exited (${code}): ${output}`));
    });
  });
  return { socket, stop };
}

async function startAgent(t: TestContext, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return (await spawnAgent(t, env)).socket;
}

interface KeyFile {
  /** What the key is called in test names. */
  label: string;
  path: string;
  pubLine: string;
  blob: Buffer;
  comment: string;
  /** The signature algorithms to try. */
  algorithms: string[];
}

let keyFilesMade: Promise<KeyFile[]> | undefined;

/** OpenSSH key files made by ssh-keygen once per run: ed25519, ECDSA on all three curves, RSA. */
function keyFiles(): Promise<KeyFile[]> {
  keyFilesMade ??= (async () => {
    const dir = folder();
    const specs: Array<[string, string[], string[]]> = [
      ['ed25519', ['-t', 'ed25519'], ['ssh-ed25519']],
      ['ecdsa-p256', ['-t', 'ecdsa', '-b', '256'], ['ecdsa-sha2-nistp256']],
      ['ecdsa-p384', ['-t', 'ecdsa', '-b', '384'], ['ecdsa-sha2-nistp384']],
      ['ecdsa-p521', ['-t', 'ecdsa', '-b', '521'], ['ecdsa-sha2-nistp521']],
      ['rsa', ['-t', 'rsa', '-b', '2048'], ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']],
    ];
    return Promise.all(
      specs.map(async ([label, typeArgs, algorithms]) => {
        const path = join(dir, `id_${label}`);
        const comment = `${label} key for the agent test`;
        await runOk(peerPath('ssh-keygen'), ['-q', ...typeArgs, '-N', '', '-C', comment, '-f', path]);
        const pubLine = readFileSync(`${path}.pub`, 'utf8').trim();
        return { label, path, pubLine, blob: blobOf(pubLine), comment, algorithms };
      }),
    );
  })();
  return keyFilesMade;
}

const GENERATED: readonly GeneratedKeyType[] = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa'];
let generatedMade: Promise<SshPrivateKey[]> | undefined;

/** Keys made by tssh itself, one of each type (RSA 2048 bits to keep the run short). */
function generatedKeys(): Promise<SshPrivateKey[]> {
  generatedMade ??= Promise.all(GENERATED.map((type) => generatePrivateKey(type, 2048)));
  return generatedMade;
}

/** Check a signature blob with our own signature algorithms. */
function assertVerifies(blob: Buffer, data: Buffer, algorithm: string, signature: Buffer, label: string): void {
  assert.equal(decodeSignatureBlob(signature)?.algorithm, algorithm, `${label}: signature names ${algorithm}`);
  const verifier = signatureAlgorithms.all.get(algorithm);
  assert.ok(verifier, `${algorithm} is in the registry`);
  assert.ok(verifier.verify(parsePublicKeyBlob(blob), data, signature), `${label}: ${algorithm} signature verifies`);
  assert.ok(!verifier.verify(parsePublicKeyBlob(blob), Buffer.concat([data, Buffer.from('x')]), signature), `${label}: not over other data`);
}

/** A Unix socket server in a private folder whose connections `onConnection` gets; closed when the test ends. */
async function listen(t: TestContext, onConnection: (socket: Socket) => void): Promise<string> {
  const path = join(folder(), 'fake.sock');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  });
  return path;
}

/** Our AgentServer for `agent` on a Unix socket, closed when the test ends. */
async function serveAgent(t: TestContext, agent: SshAgent, errors: unknown[] = []): Promise<string> {
  const server = new AgentServer(agent, { onError: (error) => errors.push(error) });
  const listener = await server.listen(join(folder(), 'agent.sock'));
  t.after(() => listener.close());
  return listener.path;
}

function client(t: TestContext, options: ConstructorParameters<typeof AgentClient>[0]): AgentClient {
  const agent = new AgentClient(options);
  t.after(() => agent.close());
  return agent;
}

/** Raw agent messages over one connection: send bodies, read reply bodies. */
async function rawConnection(t: TestContext, path: string): Promise<{ send(body: Buffer): void; reply(): Promise<Buffer> }> {
  const socket = createConnection({ path });
  t.after(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let pending = Buffer.alloc(0);
  const waiting: Array<(body: Buffer) => void> = [];
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0) && waiting.length > 0) {
      const length = pending.readUInt32BE(0);
      const body = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      waiting.shift()!(body);
    }
  });
  const replies: Array<Promise<Buffer>> = [];
  return {
    send(body: Buffer): void {
      replies.push(new Promise((resolve) => waiting.push(resolve)));
      socket.write(new Writer(body.length + 4).string(body).finish());
    },
    reply(): Promise<Buffer> {
      const next = replies.shift();
      assert.ok(next, 'a request was sent');
      return next;
    },
  };
}

const DATA = Buffer.from('session id and userauth request, standing in for the real thing');

// ---- Against OpenSSH's ssh-agent --------------------------------------------------------------

describe('AgentClient against OpenSSH ssh-agent', () => {
  test('lists the keys ssh-add gave the agent, with the blobs and comments of their .pub files', async (t) => {
    if (!havePeers(t, 'ssh-agent', 'ssh-keygen')) return;
    const socket = await startAgent(t);
    const keys = await keyFiles();
    for (const key of keys) await runOk(sshAdd(), [key.path], { SSH_AUTH_SOCK: socket });
    const agent = client(t, { socketPath: socket });
    const identities = await agent.listIdentities();
    assert.deepEqual(
      identities.map((identity) => [identity.blob.toString('base64'), identity.comment]),
      keys.map((key) => [key.blob.toString('base64'), key.comment]),
    );
    for (const identity of identities) {
      assert.equal(identity.publicKey.type, identity.blob.toString('latin1', 4, 4 + identity.blob.readUInt32BE(0)));
      assert.deepEqual(identity.publicKey.blob, identity.blob);
    }
    assert.equal((await agent.listRawIdentities()).length, keys.length);
  });

  test('signs with every key type, RSA with ssh-rsa, rsa-sha2-256 and rsa-sha2-512, and the signatures verify', async (t) => {
    if (!havePeers(t, 'ssh-agent', 'ssh-keygen')) return;
    const socket = await startAgent(t);
    const keys = await keyFiles();
    for (const key of keys) await runOk(sshAdd(), [key.path], { SSH_AUTH_SOCK: socket });
    const agent = client(t, { socketPath: socket });
    for (const key of keys) {
      for (const algorithm of key.algorithms) {
        const signature = await agent.sign(key.blob, DATA, algorithm);
        assertVerifies(key.blob, DATA, algorithm, signature, key.label);
      }
    }
  });

  test('keys given with addIdentity are listed by ssh-add -L, sign, and can be removed', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    const socket = await startAgent(t);
    const agent = client(t, { socketPath: socket });
    const keys = await generatedKeys();
    for (const [i, key] of keys.entries()) await agent.addIdentity(key, `generated ${GENERATED[i]} ✓`);
    assert.deepEqual(
      await sshAddBlobs(socket),
      keys.map((key, i) => ({ blob: key.publicKey.blob.toString('base64'), comment: `generated ${GENERATED[i]} ✓` })),
    );
    for (const key of keys) {
      for (const algorithm of key.type === 'ssh-rsa' ? ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512'] : [key.type]) {
        assertVerifies(key.publicKey.blob, DATA, algorithm, await agent.sign(key.publicKey.blob, DATA, algorithm), key.type);
      }
    }

    // Remove one, then the rest.
    await agent.removeIdentity(keys[0]!.publicKey.blob);
    assert.deepEqual(
      (await sshAddBlobs(socket)).map((entry) => entry.blob),
      keys.slice(1).map((key) => key.publicKey.blob.toString('base64')),
    );
    await assert.rejects(agent.removeIdentity(keys[0]!.publicKey.blob), AgentFailureError);
    await agent.removeAllIdentities();
    assert.deepEqual(await agent.listIdentities(), []);
    const listed = await runSshAdd(socket, ['-l']);
    assert.equal(listed.code, 1);
    assert.match(listed.stdout, /The agent has no identities/);
  });

  test('constraints reach the agent: a confirm key is refused when confirmation is denied, a lifetime expires', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    // /bin/false as the agent's askpass: every confirmation is denied.
    const socket = await startAgent(t, { SSH_ASKPASS: '/bin/false', SSH_ASKPASS_REQUIRE: 'force' });
    const agent = client(t, { socketPath: socket });
    const [ed25519, p256] = await generatedKeys();
    await agent.addIdentity(ed25519!, 'confirm me', { confirm: true });
    await agent.addIdentity(p256!, 'short-lived', { lifetimeSeconds: 1 });
    assert.equal((await agent.listIdentities()).length, 2);
    await assert.rejects(agent.sign(ed25519!.publicKey.blob, DATA, 'ssh-ed25519'), AgentFailureError);
    // The same key without the constraint signs.
    await agent.addIdentity(ed25519!, 'no confirmation');
    assertVerifies(ed25519!.publicKey.blob, DATA, 'ssh-ed25519', await agent.sign(ed25519!.publicKey.blob, DATA, 'ssh-ed25519'), 'ed25519');
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.deepEqual(
      (await agent.listIdentities()).map((identity) => identity.comment),
      ['no confirmation'],
    );
  });

  test('a sign request for a key the agent does not hold is an AgentFailureError; the connection stays usable', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    const socket = await startAgent(t);
    const agent = client(t, { socketPath: socket });
    const [held, missing] = await generatedKeys();
    await agent.addIdentity(held!, 'held');
    await assert.rejects(agent.sign(missing!.publicKey.blob, DATA, missing!.type), (error: unknown) => {
      assert.ok(error instanceof AgentFailureError);
      assert.equal(error.request, 'SSH_AGENTC_SIGN_REQUEST');
      assert.equal(error.code, 'ERR_SSH_AUTH');
      assert.match(error.message, /refused to sign with ecdsa-sha2-nistp256 SHA256:/);
      return true;
    });
    assert.equal((await agent.listIdentities()).length, 1);
  });

  test('concurrent callers are queued on one connection and each gets its own answer', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    const socket = await startAgent(t);
    const agent = client(t, { socketPath: socket });
    const keys = await generatedKeys();
    for (const key of keys) await agent.addIdentity(key, key.type);
    const results = await Promise.all(
      keys.flatMap((key) => [agent.sign(key.publicKey.blob, DATA, key.type === 'ssh-rsa' ? 'rsa-sha2-512' : key.type), agent.listIdentities()]),
    );
    for (const [i, key] of keys.entries()) {
      const signature = results[2 * i];
      assert.ok(Buffer.isBuffer(signature));
      assertVerifies(key.publicKey.blob, DATA, key.type === 'ssh-rsa' ? 'rsa-sha2-512' : key.type, signature, key.type);
      assert.equal((results[2 * i + 1] as AgentIdentity[]).length, keys.length);
    }
  });

  test('an agent restarted at the same path is reconnected to on the next request', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    const first = await spawnAgent(t);
    const agent = client(t, { socketPath: first.socket });
    const [ed25519] = await generatedKeys();
    await agent.addIdentity(ed25519!, 'first agent');
    await first.stop();
    // The idle connection learns that its agent is gone; a new agent takes the same path.
    await new Promise((resolve) => setTimeout(resolve, 50));
    rmSync(first.socket, { force: true });
    await spawnAgent(t, {}, first.socket);
    assert.deepEqual(await agent.listIdentities(), []);
  });
});

// ---- Errors without any agent -----------------------------------------------------------------

describe('AgentClient errors', () => {
  test('a missing socket names the path, the error and SSH_AUTH_SOCK', async (t) => {
    const path = join(folder(), 'no-agent-here.sock');
    await assert.rejects(client(t, { socketPath: path }).listIdentities(), (error: unknown) => {
      assert.ok(error instanceof AgentConnectError);
      assert.equal(error.path, path);
      assert.equal(error.systemCode, 'ENOENT');
      assert.equal(error.message, `could not connect to the agent at ${path}: ENOENT; is ssh-agent running? (socketPath option)`);
      return true;
    });
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      process.env.SSH_AUTH_SOCK = path;
      const fromEnvironment = client(t, {});
      await assert.rejects(fromEnvironment.connect(), {
        message: `could not connect to the agent at ${path}: ENOENT; is ssh-agent running? (SSH_AUTH_SOCK)`,
      });
      delete process.env.SSH_AUTH_SOCK;
      await assert.rejects(client(t, {}).listIdentities(), (error: unknown) => {
        assert.ok(error instanceof AgentConnectError);
        assert.match(error.message, /SSH_AUTH_SOCK is not set/);
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  });

  test('a reply over 256 KiB is refused before it is buffered; the next request reconnects', async (t) => {
    let connections = 0;
    const path = await listen(t, (socket) => {
      connections++;
      const first = connections === 1;
      socket.once('data', () => {
        if (first) {
          const header = Buffer.alloc(5);
          header.writeUInt32BE(AGENT_MAX_MESSAGE_LENGTH + 1);
          header[4] = AgentMessage.IDENTITIES_ANSWER;
          socket.write(header);
        } else {
          socket.write(Buffer.from([0, 0, 0, 5, AgentMessage.IDENTITIES_ANSWER, 0, 0, 0, 0]));
        }
      });
    });
    const agent = client(t, { socketPath: path });
    await assert.rejects(agent.listIdentities(), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, /262145 bytes refused/);
      return true;
    });
    assert.deepEqual(await agent.listIdentities(), []);
    assert.equal(connections, 2);
  });

  test('malformed and unexpected replies are protocol errors', async (t) => {
    const replies = [
      Buffer.from([0, 0, 0, 5, AgentMessage.IDENTITIES_ANSWER, 0, 0, 0, 200]), // 200 keys in 0 bytes
      Buffer.from([0, 0, 0, 1, AgentMessage.SIGN_RESPONSE]), // wrong type
      Buffer.from([0, 0, 0, 0]), // empty message
    ];
    const path = await listen(t, (socket) => {
      socket.on('data', () => socket.write(replies.shift()!));
    });
    const agent = client(t, { socketPath: path });
    for (const pattern of [/announced 200 keys/, /answered SSH_AGENTC_REQUEST_IDENTITIES with message type 14/, /empty agent reply/]) {
      await assert.rejects(agent.listIdentities(), (error: unknown) => error instanceof ProtocolError && pattern.test(error.message));
    }
  });

  test('an ssh-rsa signature where rsa-sha2-256 was asked for is refused (an agent ignoring the flags)', async (t) => {
    const [, , , , rsa] = await generatedKeys();
    const legacy = signatureAlgorithms.all.get('ssh-rsa')!.sign(rsa!, DATA);
    let flags = -1;
    const path = await listen(t, (socket) => {
      socket.once('data', (request: Buffer) => {
        flags = request.readUInt32BE(request.length - 4);
        socket.write(new Writer().string(new Writer().byte(AgentMessage.SIGN_RESPONSE).string(legacy).finish()).finish());
      });
    });
    await assert.rejects(client(t, { socketPath: path }).sign(rsa!.publicKey.blob, DATA, 'rsa-sha2-256'), /ssh-rsa signature when rsa-sha2-256 was asked for/);
    assert.equal(flags, 2);
  });

  test('a timeout rejects with TimeoutError and drops the connection (a late reply must not answer the next request)', async (t) => {
    let connections = 0;
    const path = await listen(t, () => {
      connections++;
    });
    const agent = client(t, { socketPath: path, timeout: 100 });
    const started = Date.now();
    await assert.rejects(agent.listIdentities(), (error: unknown) => {
      assert.ok(error instanceof TimeoutError);
      assert.equal(error.message, 'the agent did not answer SSH_AGENTC_REQUEST_IDENTITIES within 100 ms');
      return true;
    });
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(agent.listIdentities({ timeout: 50 }), TimeoutError);
    assert.equal(connections, 2);
  });

  test('an AbortSignal abandons a request in flight, or one still queued without disturbing the others', async (t) => {
    const pending: Socket[] = [];
    const path = await listen(t, (socket) => {
      socket.on('data', () => pending.push(socket));
    });
    const agent = client(t, { socketPath: path, timeout: 0 });
    const aborted = new AbortController();
    aborted.abort(new Error('gave up early'));
    await assert.rejects(agent.listIdentities({ signal: aborted.signal }), /gave up early/);

    const inFlight = new AbortController();
    const first = agent.listIdentities({ signal: inFlight.signal });
    const queued = new AbortController();
    const second = agent.listIdentities({ signal: queued.signal });
    const third = agent.listIdentities();
    while (pending.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    queued.abort(new Error('second gave up'));
    await assert.rejects(second, /second gave up/);
    // The first still holds the connection: nothing more was sent.
    assert.equal(pending.length, 1);
    inFlight.abort(new Error('first gave up'));
    await assert.rejects(first, /first gave up/);
    // The third then goes out, on a new connection; answer it.
    while (pending.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    pending[1]!.write(Buffer.from([0, 0, 0, 5, AgentMessage.IDENTITIES_ANSWER, 0, 0, 0, 0]));
    assert.deepEqual(await third, []);
  });

  test('close() rejects the request in flight and every later one', async (t) => {
    const path = await listen(t, () => undefined);
    const agent = new AgentClient({ socketPath: path });
    const inFlight = assert.rejects(agent.listIdentities(), ConnectionLostError);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await agent.close();
    await inFlight;
    await assert.rejects(agent.listIdentities(), ConnectionLostError);
  });

  test('a message the agent sends unasked breaks the connection; the next request reconnects', async (t) => {
    let connections = 0;
    const path = await listen(t, (socket) => {
      connections++;
      if (connections === 1) socket.write(Buffer.from([0, 0, 0, 1, AgentMessage.SUCCESS]));
      socket.on('data', () => socket.write(Buffer.from([0, 0, 0, 5, AgentMessage.IDENTITIES_ANSWER, 0, 0, 0, 0])));
    });
    const agent = client(t, { socketPath: path });
    await agent.connect();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await agent.listIdentities(), []);
    assert.equal(connections, 2);
  });

  test('over a given stream: no reconnection once it is gone', async (t) => {
    const path = await listen(t, (socket) => {
      socket.once('data', () => socket.end(Buffer.from([0, 0, 0, 5, AgentMessage.IDENTITIES_ANSWER, 0, 0, 0, 0])));
    });
    const stream = createConnection({ path });
    const agent = client(t, { stream });
    assert.deepEqual(await agent.listIdentities(), []);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(agent.listIdentities(), ConnectionLostError);
    assert.throws(() => new AgentClient({ stream, socketPath: path }), TypeError);
  });

  test('sign refuses an algorithm that does not fit the key before asking', async (t) => {
    const [ed25519] = await generatedKeys();
    const agent = client(t, { socketPath: join(folder(), 'never-used.sock') });
    await assert.rejects(agent.sign(ed25519!.publicKey.blob, DATA, 'rsa-sha2-256'), RangeError);
  });

  test('flags follow the algorithm name, and back (RFC 9987 §5.6.1)', () => {
    assert.equal(agentSignFlags('rsa-sha2-256'), 2);
    assert.equal(agentSignFlags('rsa-sha2-512'), 4);
    assert.equal(agentSignFlags('rsa-sha2-512-cert-v01@openssh.com'), 4);
    assert.equal(agentSignFlags('ssh-rsa'), 0);
    assert.equal(agentSignFlags('ssh-ed25519'), 0);
    assert.equal(agentSignAlgorithm('ssh-rsa', 0), 'ssh-rsa');
    assert.equal(agentSignAlgorithm('ssh-rsa', 2), 'rsa-sha2-256');
    assert.equal(agentSignAlgorithm('ssh-rsa', 4), 'rsa-sha2-512');
    assert.equal(agentSignAlgorithm('ssh-rsa-cert-v01@openssh.com', 2), 'rsa-sha2-256');
    assert.equal(agentSignAlgorithm('ssh-ed25519', 4), 'ssh-ed25519');
    assert.equal(agentSignAlgorithm('ssh-rsa', 1), undefined);
  });
});

// ---- Our AgentServer --------------------------------------------------------------------------

describe('AgentServer serving an InMemoryAgent', () => {
  test('OpenSSH ssh-add -l and -L list its keys', async (t) => {
    if (!havePeers(t, 'ssh-agent')) return;
    const keys = await generatedKeys();
    const socket = await serveAgent(t, new InMemoryAgent(keys.map((key, i) => ({ key, comment: `in memory ${i}` }))));
    assert.deepEqual(
      await sshAddBlobs(socket),
      keys.map((key, i) => ({ blob: key.publicKey.blob.toString('base64'), comment: `in memory ${i}` })),
    );
    const listed = await runSshAdd(socket, ['-l']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split('\n').length, keys.length);
    assert.match(listed.stdout, /^256 SHA256:\S+ in memory 0 \(ED25519\)$/m);
    assert.match(listed.stdout, /^2048 SHA256:\S+ in memory 4 \(RSA\)$/m);
  });

  test('ssh-add loads OpenSSH key files into it, we sign with them, ssh-add -d and -D remove them', async (t) => {
    if (!havePeers(t, 'ssh-agent', 'ssh-keygen')) return;
    const errors: unknown[] = [];
    const memory = new InMemoryAgent();
    const socket = await serveAgent(t, memory, errors);
    const keys = await keyFiles();
    for (const key of keys) await runOk(sshAdd(), [key.path], { SSH_AUTH_SOCK: socket });
    assert.deepEqual(errors, []);
    const agent = client(t, { socketPath: socket });
    assert.deepEqual(
      (await agent.listIdentities()).map((identity) => [identity.blob.toString('base64'), identity.comment]),
      keys.map((key) => [key.blob.toString('base64'), key.comment]),
    );
    for (const key of keys) {
      for (const algorithm of key.algorithms) {
        assertVerifies(key.blob, DATA, algorithm, await agent.sign(key.blob, DATA, algorithm), key.label);
      }
    }
    await runOk(sshAdd(), ['-d', `${keys[0]!.path}.pub`], { SSH_AUTH_SOCK: socket });
    assert.equal((await memory.listIdentities()).length, keys.length - 1);
    await runOk(sshAdd(), ['-D'], { SSH_AUTH_SOCK: socket });
    assert.deepEqual(await memory.listIdentities(), []);
  });

  test('ssh-keygen -Y sign signs through it, and ssh-keygen -Y verify accepts the signatures', async (t) => {
    if (!havePeers(t, 'ssh-agent', 'ssh-keygen')) return;
    const keys = await generatedKeys();
    const socket = await serveAgent(t, new InMemoryAgent(keys));
    const dir = folder();
    const message = join(dir, 'message');
    writeFileSync(message, 'signed by tssh acting as the agent\n');
    for (const [i, key] of keys.entries()) {
      // Only the public key is on disk: the private half is in our agent and nowhere else.
      const pub = join(dir, `key${i}.pub`);
      const line = `${key.type} ${key.publicKey.blob.toString('base64')}`;
      writeFileSync(pub, `${line}\n`);
      writeFileSync(join(dir, 'allowed'), `signer ${line}\n`);
      rmSync(`${message}.sig`, { force: true });
      await runOk(peerPath('ssh-keygen'), ['-Y', 'sign', '-f', pub, '-n', 'file', message], { SSH_AUTH_SOCK: socket });
      const verified = await run('sh', ['-c', `"$0" -Y verify -f "$1" -I signer -n file -s "$2" < "$3"`, peerPath('ssh-keygen'), join(dir, 'allowed'), `${message}.sig`, message]);
      assert.equal(verified.code, 0, `${key.type}: ${verified.stderr}`);
      assert.match(verified.stdout, /Good "file" signature for signer/);
    }
  });

  test('AgentClient and AgentServer: add (all key types), list, sign, remove', async (t) => {
    const memory = new InMemoryAgent();
    const socket = await serveAgent(t, memory);
    const agent = client(t, { socketPath: socket });
    const keys = await generatedKeys();
    for (const key of keys) await agent.addIdentity(key, `${key.type} via the protocol`);
    const held = await memory.listIdentities();
    assert.deepEqual(
      held.map((identity) => identity.blob.toString('hex')),
      keys.map((key) => key.publicKey.blob.toString('hex')),
    );
    for (const key of keys) {
      for (const algorithm of key.type === 'ssh-rsa' ? ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512'] : [key.type]) {
        assertVerifies(key.publicKey.blob, DATA, algorithm, await agent.sign(key.publicKey.blob, DATA, algorithm), key.type);
      }
    }
    await agent.removeIdentity(keys[1]!.publicKey.blob);
    await assert.rejects(agent.sign(keys[1]!.publicKey.blob, DATA, keys[1]!.type), AgentFailureError);
    await agent.removeAllIdentities();
    assert.deepEqual(await agent.listIdentities(), []);
  });

  test('unknown, unsupported and malformed requests get SSH_AGENT_FAILURE; the connection goes on', async (t) => {
    const [ed25519] = await generatedKeys();
    const errors: unknown[] = [];
    const socket = await serveAgent(t, new InMemoryAgent([ed25519!]), errors);
    const raw = await rawConnection(t, socket);
    const failure = Buffer.from([AgentMessage.FAILURE]);
    const requests = [
      Buffer.from([22, 0, 0, 0, 0]), // SSH_AGENTC_LOCK with an empty passphrase
      new Writer().byte(AgentMessage.EXTENSION).string('query').finish(),
      Buffer.from([200]),
      Buffer.from([AgentMessage.SIGN_REQUEST, 0, 0, 0, 99]), // truncated
      Buffer.from([AgentMessage.REQUEST_IDENTITIES, 0]), // trailing byte
      new Writer().byte(AgentMessage.SIGN_REQUEST).string(ed25519!.publicKey.blob).string(DATA).uint32(8).finish(), // unknown flag
      new Writer().byte(AgentMessage.ADD_IDENTITY).string('ssh-dss').finish(),
    ];
    // Pipelined: all at once, answered in order.
    for (const request of requests) raw.send(request);
    for (const request of requests) assert.deepEqual(await raw.reply(), failure, `request type ${request[0]}`);
    assert.equal(errors.length, requests.length);
    raw.send(Buffer.from([AgentMessage.REQUEST_IDENTITIES]));
    const answer = await raw.reply();
    assert.equal(answer[0], AgentMessage.IDENTITIES_ANSWER);
    assert.equal(answer.readUInt32BE(1), 1);
  });

  test('an added key whose private half does not match its public half is refused', async (t) => {
    const [ed25519, p256, , , rsa] = await generatedKeys();
    const [other] = await Promise.all([generatePrivateKey('ed25519')]);
    const memory = new InMemoryAgent();
    const socket = await serveAgent(t, memory);
    const raw = await rawConnection(t, socket);
    const seed = (key: SshPrivateKey): Buffer => Buffer.from((key.keyObject.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
    const a = ed25519!.publicKey.blob.subarray(19);
    // Ed25519 seed of another key with this key's public half.
    raw.send(new Writer().byte(AgentMessage.ADD_IDENTITY).string('ssh-ed25519').string(a).string(Buffer.concat([seed(other!), a])).string('').finish());
    // ECDSA with a private scalar of 1.
    const q = parsePublicKeyBlob(p256!.publicKey.blob).blob.subarray(4 + 19 + 4 + 8 + 4);
    raw.send(new Writer().byte(AgentMessage.ADD_IDENTITY).string('ecdsa-sha2-nistp256').string('nistp256').string(q).mpintUnsigned(Buffer.from([1])).string('').finish());
    // RSA with p and q swapped but iqmp left as is.
    const jwk = rsa!.keyObject.export({ format: 'jwk' }) as { [name: string]: string };
    const mp = (name: string): Buffer => Buffer.from(jwk[name]!, 'base64url');
    raw.send(
      new Writer()
        .byte(AgentMessage.ADD_IDENTITY)
        .string('ssh-rsa')
        .mpintUnsigned(mp('n'))
        .mpintUnsigned(mp('e'))
        .mpintUnsigned(mp('d'))
        .mpintUnsigned(mp('qi'))
        .mpintUnsigned(mp('q'))
        .mpintUnsigned(mp('p'))
        .string('')
        .finish(),
    );
    for (let i = 0; i < 3; i++) assert.deepEqual(await raw.reply(), Buffer.from([AgentMessage.FAILURE]));
    assert.deepEqual(await memory.listIdentities(), []);
  });

  test('requests are answered one at a time, in order, even when a client sends them together', async (t) => {
    const [ed25519] = await generatedKeys();
    const inner = new InMemoryAgent([ed25519!]);
    let busy = 0;
    let most = 0;
    const slow: SshAgent = {
      async listIdentities() {
        most = Math.max(most, ++busy);
        await new Promise((resolve) => setTimeout(resolve, 10));
        busy--;
        return inner.listIdentities();
      },
      async sign(blob, data, algorithm) {
        most = Math.max(most, ++busy);
        await new Promise((resolve) => setTimeout(resolve, 5));
        busy--;
        return inner.sign(blob, data, algorithm);
      },
    };
    const socket = await serveAgent(t, slow);
    const raw = await rawConnection(t, socket);
    const sign = new Writer().byte(AgentMessage.SIGN_REQUEST).string(ed25519!.publicKey.blob).string(DATA).uint32(0).finish();
    const order = [AgentMessage.REQUEST_IDENTITIES, AgentMessage.SIGN_REQUEST, AgentMessage.REQUEST_IDENTITIES, AgentMessage.SIGN_REQUEST];
    for (const type of order) raw.send(type === AgentMessage.SIGN_REQUEST ? sign : Buffer.from([type]));
    for (const type of order) {
      const reply = await raw.reply();
      assert.equal(reply[0], type === AgentMessage.SIGN_REQUEST ? AgentMessage.SIGN_RESPONSE : AgentMessage.IDENTITIES_ANSWER);
    }
    assert.equal(most, 1);
    // An agent without key management refuses add and remove.
    raw.send(Buffer.from([AgentMessage.REMOVE_ALL_IDENTITIES]));
    assert.deepEqual(await raw.reply(), Buffer.from([AgentMessage.FAILURE]));
  });

  test('a request over 256 KiB closes the connection', async (t) => {
    const errors: unknown[] = [];
    const socket = await serveAgent(t, new InMemoryAgent(), errors);
    const connection = createConnection({ path: socket });
    t.after(() => connection.destroy());
    const header = Buffer.alloc(4);
    header.writeUInt32BE(AGENT_MAX_MESSAGE_LENGTH + 1);
    connection.write(header);
    await new Promise<void>((resolve) => connection.on('close', () => resolve()).resume());
    assert.ok(errors.some((error) => error instanceof ProtocolError));
  });
});

test('AgentServer.serve answers what a client sent before it shut down its side, then resolves', async (t) => {
  const [ed25519] = await generatedKeys();
  const server = new AgentServer(new InMemoryAgent([{ key: ed25519!, comment: 'served' }]));
  let served: Promise<void> | undefined;
  const path = join(folder(), 'half-open.sock');
  const listener = createServer({ allowHalfOpen: true }, (socket) => {
    served = server.serve(socket);
  });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  const socket = createConnection({ path });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.end(Buffer.from([0, 0, 0, 1, AgentMessage.REQUEST_IDENTITIES]));
  await closed;
  await served;
  const agent = new AgentClient({ stream: createConnection({ path }) });
  assert.deepEqual((await agent.listIdentities()).map((identity) => identity.comment), ['served']);
  await agent.close();
  const reply = Buffer.concat(chunks);
  assert.equal(reply.readUInt32BE(0), reply.length - 4);
  assert.equal(reply[4], AgentMessage.IDENTITIES_ANSWER);
  assert.equal(reply.readUInt32BE(5), 1);
});

describe('InMemoryAgent', () => {
  test('signs only with the algorithms of the key type, and only keys it holds', async () => {
    const [ed25519, p256, , , rsa] = await generatedKeys();
    const agent = new InMemoryAgent([{ key: ed25519!, comment: 'one' }, rsa!]);
    assert.deepEqual(
      (await agent.listIdentities()).map((identity) => identity.comment),
      ['one', ''],
    );
    await assert.rejects(agent.sign(ed25519!.publicKey.blob, DATA, 'rsa-sha2-256'), AgentFailureError);
    await assert.rejects(agent.sign(p256!.publicKey.blob, DATA, p256!.type), AgentFailureError);
    await assert.rejects(agent.removeIdentity(p256!.publicKey.blob), AgentFailureError);
    for (const algorithm of ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']) {
      assertVerifies(rsa!.publicKey.blob, DATA, algorithm, await agent.sign(rsa!.publicKey.blob, DATA, algorithm), 'rsa');
    }
  });

  test('confirm asks the callback; without one such keys are refused; lifetimes expire', async () => {
    const [ed25519, p256] = await generatedKeys();
    assert.throws(() => new InMemoryAgent().add(ed25519!, '', { confirm: true }), AgentFailureError);
    let answer = false;
    const asked: string[] = [];
    const agent = new InMemoryAgent([], {
      confirm: (identity, algorithm) => {
        asked.push(`${identity.comment} ${algorithm}`);
        return answer;
      },
    });
    await agent.addIdentity(ed25519!, 'careful', { confirm: true });
    await assert.rejects(agent.sign(ed25519!.publicKey.blob, DATA, 'ssh-ed25519'), AgentFailureError);
    answer = true;
    assertVerifies(ed25519!.publicKey.blob, DATA, 'ssh-ed25519', await agent.sign(ed25519!.publicKey.blob, DATA, 'ssh-ed25519'), 'ed25519');
    assert.deepEqual(asked, ['careful ssh-ed25519', 'careful ssh-ed25519']);
    await agent.addIdentity(p256!, 'brief', { lifetimeSeconds: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      (await agent.listIdentities()).map((identity) => identity.comment),
      ['careful'],
    );
  });
});
