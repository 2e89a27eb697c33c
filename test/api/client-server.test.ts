import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type ConnectOptions } from '../../src/client.js';
import { createServer, type ServerOptions, type SshServer } from '../../src/server.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { MethodPolicy } from '../../src/auth/policy.js';
import type { SshPrivateKey } from '../../src/algorithms/types.js';
import { SshError } from '../../src/errors.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, type Socket } from 'node:net';
import { AgentServer, InMemoryAgent } from '../../src/keys/agent.js';

let keysPromise: Promise<{ host: SshPrivateKey; alice: SshPrivateKey; stranger: SshPrivateKey; rsa: SshPrivateKey }> | undefined;
function keys() {
  keysPromise ??= (async () => ({
    host: await generatePrivateKey('ed25519'),
    alice: await generatePrivateKey('ed25519'),
    stranger: await generatePrivateKey('ecdsa-p256'),
    rsa: await generatePrivateKey('rsa', 2048),
  }))();
  return keysPromise;
}

let sleepClosed = false;

/** A server whose sessions run a tiny command language: `echo X`, `exit N`, `cat`. */
async function startServer(t: { after(fn: () => unknown): void }, options: Partial<ServerOptions> = {}): Promise<{ server: SshServer; port: number }> {
  const k = await keys();
  const server = createServer({
    hostKeys: [k.host],
    auth: {
      publicKeyAllowed: ({ user, key }) => user === 'alice' && (key.blob.equals(k.alice.publicKey.blob) || key.blob.equals(k.rsa.publicKey.blob)),
      password: ({ user, password }) => (user === 'alice' && password === 'secret' ? 'success' : 'failure'),
    },
    ...options,
  });
  server.on('connection', (connection) => {
    connection.on('session', (session) => {
      session.on('exec', (request) => {
        request.accept();
        const command = request.details.command;
        if (command.startsWith('echo ')) {
          session.write(command.slice(5) + '\n');
          session.stderr.write('to stderr\n');
          session.exit(0);
        } else if (command.startsWith('exit ')) {
          session.exit(Number(command.slice(5)));
        } else if (command === 'sleep') {
          // Never exits by itself: only the client closing the channel ends it.
          session.once('channel-close', () => (sleepClosed = true));
        } else if (command === 'cat') {
          session.pipe(session, { end: false });
          session.on('end', () => session.exit(0));
        } else {
          session.stderr.write(`unknown command ${command}\n`);
          session.exit(127);
        }
      });
    });
  });
  const address = await server.listen(0);
  t.after(() => server.close());
  return { server, port: address.port };
}

async function baseOptions(port: number): Promise<ConnectOptions> {
  const k = await keys();
  return {
    host: '127.0.0.1',
    port,
    username: 'alice',
    verifyHostKey: (key) => key.blob.equals(k.host.publicKey.blob),
  };
}

describe('our client and our server over TCP', () => {
  test('publickey login, exec with stdout, stderr and exit status', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
    const result = await client.exec('echo hello world');
    assert.equal(result.stdout.toString(), 'hello world\n');
    assert.equal(result.stderr.toString(), 'to stderr\n');
    assert.equal(result.code, 0);
    assert.equal((await client.exec('exit 42')).code, 42);
    await client.end();
  });

  test('exec with an AbortSignal: an abort closes the channel and rejects with the reason', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
    const controller = new AbortController();
    const running = client.exec('sleep', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('took too long')), 50);
    await assert.rejects(running, /took too long/);
    assert.equal((await client.exec('echo still usable')).stdout.toString(), 'still usable\n');
    assert.equal(sleepClosed, true);
    // forwardOut takes a signal too: an abort rejects at once with its reason.
    await assert.rejects(client.forwardOut('127.0.0.1', 9, '127.0.0.1', 0, { signal: AbortSignal.abort(new Error('cancelled')) }), /cancelled/);
    await client.end();
  });

  test('the server announces its host keys and proves it holds them (hostkeys-00 / hostkeys-prove-00)', async (t) => {
    const k = await keys();
    const { port } = await startServer(t, { hostKeys: [k.host, k.rsa] });
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
    await new Promise((r) => setTimeout(r, 20));
    const announced = client.announcedHostKeys ?? [];
    assert.deepEqual(announced.map((key) => key.type).sort(), ['ssh-ed25519', 'ssh-rsa']);
    const proven = await client.proveHostKeys(announced);
    assert.equal(proven.length, 2);
    // A key the server does not hold is not "proven".
    assert.deepEqual(await client.proveHostKeys([k.stranger.publicKey]), []);
    await client.end();
  });

  test('the client answers the host key announcement at once (an IGNORE), so that a Nagle-bound server is not left waiting for an ACK', async (t) => {
    const k = await keys();
    const lines: string[] = [];
    const { port } = await startServer(t, { debug: (line) => lines.push(line) });
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
    assert.equal((await client.exec('echo hello')).stdout.toString(), 'hello\n');
    await client.end();
    assert.ok(client.announcedHostKeys, 'the server announced its keys');
    assert.ok(lines.includes('SSH2_MSG_IGNORE received'), 'the client replied with SSH_MSG_IGNORE');
  });

  test('stdin reaches the command and comes back byte-exact', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
    const input = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 11)) & 0xff;
    const result = await client.exec('cat', { stdin: input });
    assert.equal(result.stdout.length, input.length);
    assert.ok(result.stdout.equals(input));
    await client.end();
  });

  test('rsa-sha2-512 is chosen for an RSA key from server-sig-algs', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const lines: string[] = [];
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.rsa], debug: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /Offering public key: .* rsa-sha2-512/.test(l)), lines.join('\n'));
    await client.end();
  });

  // pipelineAuthentication: the client's debug log shows "Offering public key" (written as the
  // request is sent) before "SSH2_MSG_SERVICE_ACCEPT received" only when the request went out
  // before the server's answer to the service request had arrived.
  const offeredBeforeAccept = (lines: readonly string[]): boolean => {
    const offered = lines.findIndex((l) => l.startsWith('Offering public key'));
    const accepted = lines.findIndex((l) => l.startsWith('SSH2_MSG_SERVICE_ACCEPT received'));
    assert.ok(offered >= 0 && accepted >= 0, lines.join('\n'));
    return offered < accepted;
  };

  test('an Ed25519 key in memory: its signed request follows the service request without waiting for the accept', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const lines: string[] = [];
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice], debug: (l) => lines.push(l) });
    assert.equal(offeredBeforeAccept(lines), true);
    assert.equal((await client.exec('echo pipelined')).stdout.toString(), 'pipelined\n');
    await client.end();
  });

  test('the server holds its SERVICE_ACCEPT while it decides the pipelined request, and sends both in one write', async (t) => {
    const k = await keys();
    const lines: string[] = [];
    let acceptSeenDuringDecision: boolean | undefined;
    const { port } = await startServer(t, {
      auth: {
        publicKeyAllowed: async ({ key }) => {
          // Long enough for an accept sent on its own to cross loopback and be logged.
          await new Promise((resolve) => setTimeout(resolve, 100));
          acceptSeenDuringDecision ??= lines.some((l) => l.startsWith('SSH2_MSG_SERVICE_ACCEPT received'));
          return key.blob.equals(k.alice.publicKey.blob);
        },
      },
    });
    const client = await connect({
      ...(await baseOptions(port)),
      privateKeys: [k.alice],
      debug: (l) => lines.push(l),
    });
    assert.equal(offeredBeforeAccept(lines), true);
    assert.equal(acceptSeenDuringDecision, false, lines.join('\n'));
    assert.equal((await client.exec('echo held')).stdout.toString(), 'held\n');
    await client.end();
  });

  test('a closed connection leaves no timer behind on either side (the 2 s cut-off goes when the socket closes)', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const cutOffs = new Set<unknown>();
    let made = 0;
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    // Every 2 s timer made while the connections end is recorded, and forgotten when cleared.
    const patchedSet = ((fn: () => void, ms?: number) => {
      const timer = realSet(fn, ms);
      if (ms === 2000) {
        made++;
        cutOffs.add(timer);
      }
      return timer;
    }) as typeof setTimeout;
    const patchedClear = ((timer: NodeJS.Timeout | undefined) => {
      cutOffs.delete(timer);
      realClear(timer);
    }) as typeof clearTimeout;
    globalThis.setTimeout = patchedSet;
    globalThis.clearTimeout = patchedClear;
    t.after(() => {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    });
    for (let i = 0; i < 3; i++) {
      const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice] });
      assert.equal((await client.exec('echo x')).stdout.toString(), 'x\n');
      await client.end();
    }
    const deadline = Date.now() + 1500;
    while (cutOffs.size > 0 && Date.now() < deadline) await new Promise((resolve) => realSet(resolve, 10));
    assert.ok(made >= 6, `a cut-off timer per connection and side (${made})`);
    assert.equal(cutOffs.size, 0, 'every cut-off timer was cleared once its socket closed');
  });

  test('a key exchange guess: right with a server that shares our first choices; after a wrong one, none to that server for a while', async (t) => {
    const k = await keys();
    const agreeing = await startServer(t, { algorithms: { kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'] } });
    const other = await startServer(t, { algorithms: { kex: ['curve25519-sha256@libssh.org', 'curve25519-sha256'] } });
    const algorithms = { kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'] };
    const run = async (port: number): Promise<{ guess: string | undefined; lines: string[] }> => {
      const lines: string[] = [];
      const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice], algorithms, debug: (l) => lines.push(l) });
      const said = lines.find((l) => l.startsWith('kex: our guess was '));
      const guess = said?.slice('kex: our guess was '.length);
      assert.equal((await client.exec('echo ok')).stdout.toString(), 'ok\n');
      await client.end();
      return { guess, lines };
    };
    assert.equal((await run(agreeing.port)).guess, 'right');
    assert.equal((await run(agreeing.port)).guess, 'right', 'and again');
    assert.equal((await run(other.port)).guess, 'wrong', 'the other server prefers curve25519-sha256@libssh.org');
    const next = await run(other.port);
    assert.equal(next.guess, undefined, 'no guess to that server now');
    assert.ok(!next.lines.some((l) => l.startsWith('kex: guessed')), next.lines.join('\n'));
    assert.equal((await run(agreeing.port)).guess, 'right', 'the pause is per destination');
  });

  test("exec's input and EOF follow the request without waiting for the reply (with a terminal, after it)", async (t) => {
    const k = await keys();
    const server = createServer({ hostKeys: [k.host], auth: { publicKeyAllowed: ({ key }) => key.blob.equals(k.alice.publicKey.blob) } });
    server.on('connection', (connection) => {
      connection.on('session', (session) => {
        session.on('pty', (request) => request.accept());
        session.on('exec', (request) => {
          // Decide only once the input has ended, or 1 s passed: was it all there before the reply?
          const input: Buffer[] = [];
          session.on('data', (chunk: Buffer) => input.push(chunk));
          let ended = false;
          const timer = setTimeout(() => answer(), 1000);
          session.once('end', () => {
            ended = true;
            clearTimeout(timer);
            answer();
          });
          const answer = (): void => {
            request.accept();
            session.write(`${ended ? 'before' : 'after'} ${Buffer.concat(input).toString()}\n`);
            session.exit(0);
          };
        });
      });
    });
    const address = await server.listen(0);
    t.after(() => server.close());
    const client = await connect({ ...(await baseOptions(address.port)), privateKeys: [k.alice] });
    assert.equal((await client.exec('x')).stdout.toString(), 'before \n', 'EOF before the reply');
    assert.equal((await client.exec('x', { stdin: 'hello' })).stdout.toString(), 'before hello\n', 'input and EOF before the reply');
    // With a terminal the request comes after pty-req's reply, and the input after exec's.
    assert.equal((await client.exec('x', { pty: {} })).stdout.toString().trim(), 'after');
    await client.end();
  });

  test('pipelineAuthentication: false, an RSA key (its algorithm waits for server-sig-algs), a key not first, or delayed compression: the request waits for the accept', async (t) => {
    const { port } = await startServer(t, { algorithms: { compression: ['none', 'zlib@openssh.com'] } });
    const k = await keys();
    const cases: Partial<ConnectOptions>[] = [
      { privateKeys: [k.alice], pipelineAuthentication: false },
      { privateKeys: [k.rsa] },
      { privateKeys: [k.alice], password: 'secret', authMethods: ['password', 'publickey'] },
      // Delayed compression: nothing may cross the server's USERAUTH_SUCCESS uncompressed.
      { privateKeys: [k.alice], algorithms: { compression: ['zlib@openssh.com'] } },
    ];
    for (const extra of cases) {
      const lines: string[] = [];
      const client = await connect({ ...(await baseOptions(port)), ...extra, debug: (l) => lines.push(l) });
      if (extra.authMethods) assert.ok(!lines.some((l) => l.startsWith('Offering public key')), lines.join('\n'));
      else assert.equal(offeredBeforeAccept(lines), false);
      if (extra.algorithms) assert.equal(client.algorithms?.compressionClientToServer, 'zlib@openssh.com');
      await client.end();
    }
  });

  test('after a refused pipelined key, the next (RSA, publickey-hostbound as the EXT_INFO allows) logs in', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const refused = await generatePrivateKey('ed25519');
    const lines: string[] = [];
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [refused, k.rsa], debug: (l) => lines.push(l) });
    assert.equal(offeredBeforeAccept(lines), true);
    assert.ok(lines.some((l) => /Offering public key: .* rsa-sha2-512/.test(l)), lines.join('\n'));
    await client.end();
  });

  test('an agent given by its socket path: its first key is queried before none, and our connection to it is closed once authentication is over', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const dir = await mkdtemp(join(tmpdir(), 'tssh-agent-'));
    const agentSockets = new Set<Socket>();
    let connections = 0;
    const agent = new AgentServer(new InMemoryAgent([{ key: k.alice, comment: 'alice' }]));
    const listener = createNetServer((socket) => {
      connections++;
      agentSockets.add(socket);
      socket.once('close', () => agentSockets.delete(socket));
      void agent.serve(socket);
    });
    await new Promise<void>((resolve) => listener.listen(join(dir, 'agent.sock'), resolve));
    t.after(async () => {
      for (const socket of agentSockets) socket.destroy();
      await new Promise((resolve) => listener.close(resolve));
      await rm(dir, { recursive: true, force: true });
    });
    const lines: string[] = [];
    const client = await connect({ ...(await baseOptions(port)), agent: join(dir, 'agent.sock'), debug: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.startsWith('Offering public key: agent: alice')), lines.join('\n'));
    assert.ok(!lines.some((l) => l.startsWith('Authentications that can continue')), 'no none before the key');
    for (let i = 0; i < 100 && agentSockets.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(connections, 1, 'one connection to the agent');
    assert.equal(agentSockets.size, 0, 'closed after authentication');
    assert.equal((await client.exec('echo still here')).stdout.toString(), 'still here\n');
    await client.end();
  });

  test('password login, and a wrong password is refused with the methods that remain', async (t) => {
    const { port } = await startServer(t);
    const client = await connect({ ...(await baseOptions(port)), password: 'secret' });
    assert.equal((await client.exec('echo ok')).stdout.toString(), 'ok\n');
    await client.end();
    await assert.rejects(connect({ ...(await baseOptions(port)), password: 'wrong' }), (error: unknown) => {
      assert.ok(error instanceof SshError);
      assert.equal(error.message, 'Permission denied (publickey,password).');
      return true;
    });
  });

  test('an expired password is changed through SSH_MSG_USERAUTH_PASSWD_CHANGEREQ, and refused without a change hook', async (t) => {
    let current = 'old-secret';
    const { port } = await startServer(t, {
      auth: {
        password: ({ password }) => (password === current ? { changePassword: 'Your password has expired' } : 'failure'),
        changePassword: ({ oldPassword, newPassword }) => {
          if (oldPassword !== current || newPassword.length < 8) return 'failure';
          current = newPassword;
          return 'success';
        },
      },
    });
    const prompts: string[] = [];
    const client = await connect({
      ...(await baseOptions(port)),
      password: 'old-secret',
      changePassword: (prompt) => {
        prompts.push(prompt);
        return { oldPassword: 'old-secret', newPassword: 'new-secret-1' };
      },
    });
    assert.deepEqual(prompts, ['Your password has expired']);
    assert.equal(current, 'new-secret-1');
    await client.end();
    await assert.rejects(connect({ ...(await baseOptions(port)), password: 'new-secret-1' }), /Permission denied/);
  });

  test('an unknown user gets exactly the answer a wrong password gets', async (t) => {
    const { port } = await startServer(t);
    const wrongPassword = await connect({ ...(await baseOptions(port)), password: 'nope' }).catch((e: Error) => e.message);
    const unknownUser = await connect({ ...(await baseOptions(port)), username: 'mallory', password: 'secret' }).catch((e: Error) => e.message);
    assert.equal(unknownUser, wrongPassword);
  });

  test('a key the server does not accept is refused, and a stranger key never gets a signature request', async (t) => {
    const { port } = await startServer(t);
    const k = await keys();
    const lines: string[] = [];
    await assert.rejects(connect({ ...(await baseOptions(port)), privateKeys: [k.stranger], debug: (l) => lines.push(l) }), /Permission denied \(publickey,password\)\./);
    assert.ok(!lines.some((l) => /Server accepts key/.test(l)));
  });

  test('keyboard-interactive with two rounds', async (t) => {
    const { port } = await startServer(t, {
      auth: {
        keyboardInteractive: async ({ user }, prompt) => {
          const [code] = await prompt({ name: 'OTP', instruction: 'first round', prompts: [{ prompt: 'Code: ', echo: true }] });
          const [pin] = await prompt({ name: '', instruction: '', prompts: [{ prompt: 'PIN: ', echo: false }] });
          return user === 'alice' && code === '123' && pin === '9' ? 'success' : 'failure';
        },
      },
    });
    const seen: string[] = [];
    const client = await connect({
      ...(await baseOptions(port)),
      keyboardInteractive: (request) => {
        seen.push(request.prompts.map((p) => p.prompt).join('|'));
        return request.prompts[0]!.prompt === 'Code: ' ? ['123'] : ['9'];
      },
    });
    assert.deepEqual(seen, ['Code: ', 'PIN: ']);
    await client.end();
  });

  test('multi-factor: publickey then password, with partial success', async (t) => {
    const { port } = await startServer(t, { authenticationMethods: MethodPolicy.parse('publickey,password') });
    const k = await keys();
    await assert.rejects(connect({ ...(await baseOptions(port)), privateKeys: [k.alice] }), /Permission denied \(password\)\./);
    const lines: string[] = [];
    const client = await connect({ ...(await baseOptions(port)), privateKeys: [k.alice], password: 'secret', debug: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /partial success/.test(l)));
    await client.end();
  });

  test('too many failures end the connection with the reason', async (t) => {
    const { port } = await startServer(t, { maxAuthTries: 2 });
    let attempts = 0;
    await assert.rejects(
      connect({ ...(await baseOptions(port)), password: () => `guess${++attempts}` }),
      (error: unknown) => error instanceof SshError && /Too many authentication failures/.test(error.message),
    );
    assert.equal(attempts, 2);
  });

  test('the login grace time drops a client that never authenticates', async (t) => {
    const { server, port } = await startServer(t, {
      loginGraceTime: 200,
      auth: {
        keyboardInteractive: async (_request, prompt) => {
          await prompt({ name: '', instruction: '', prompts: [{ prompt: 'Code: ', echo: false }] });
          return 'failure' as const;
        },
      },
    });
    const closed = new Promise<SshError | undefined>((resolve) => server.once('connection', (c) => c.once('close', resolve)));
    await assert.rejects(
      connect({ ...(await baseOptions(port)), keyboardInteractive: () => new Promise(() => {}), authMethods: ['keyboard-interactive'] }),
      /login grace time exceeded/,
    );
    const error = await closed;
    assert.match(String(error?.message), /Timeout before authentication/);
  });

  test('by default the host key is checked against known_hosts: unknown refused, accept-new records, a changed key is refused', async (t) => {
    const { port } = await startServer(t);
    const dir = await mkdtemp(join(tmpdir(), 'tssh-kh-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'known_hosts');
    const { verifyHostKey: _unused, ...options } = await baseOptions(port);
    await assert.rejects(
      connect({ ...options, password: 'secret', knownHosts: { files: [file], globalFiles: [] } }),
      /no host key is known for \[127\.0\.0\.1\]:\d+ and StrictHostKeyChecking is strict/,
    );
    const client = await connect({ ...options, password: 'secret', knownHosts: { files: [file], globalFiles: [], policy: 'accept-new' } });
    await client.end();
    assert.match(await readFile(file, 'utf8'), /^\[127\.0\.0\.1\]:\d+ ssh-ed25519 AAAA/);
    const again = await connect({ ...options, password: 'secret', knownHosts: { files: [file], globalFiles: [] } });
    await again.end();
    const other = await generatePrivateKey('ed25519');
    const { port: port2 } = await startServer(t, { hostKeys: [other] });
    await writeFile(file, (await readFile(file, 'utf8')).replace(`]:${port} `, `]:${port2} `));
    await assert.rejects(
      connect({ ...options, port: port2, password: 'secret', knownHosts: { files: [file], globalFiles: [] } }),
      new RegExp(`host key for \\[127\\.0\\.0\\.1\\]:${port2} has changed: expected SHA256:.*, got SHA256:.* \\(offending key in ${file.replace(/[.]/g, '\\.')}:1\\)`),
    );
  });

  test('a host key the client does not trust ends the connection before authentication', async (t) => {
    const { port } = await startServer(t);
    await assert.rejects(
      connect({ ...(await baseOptions(port)), verifyHostKey: () => false, password: 'secret' }),
      (error: unknown) => error instanceof SshError && error.code === 'ERR_SSH_HOST_KEY',
    );
  });
});
