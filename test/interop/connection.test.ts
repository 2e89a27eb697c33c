// The connection protocol against real OpenSSH (9.2), both ways, with real TCP traffic checked
// byte-exact (SHA-256) against a local echo server and a local HTTP server, all on 127.0.0.1 and
// free ports, every child stopped by its PID.
//
// (a) our client → sshd (`sshd -D` on a free port, SetEnv SHLVL=1): exec with 1 MiB of stdin
//     through sha256sum, stdout/stderr/exit status, a command killed by a signal (exit-signal),
//     100 concurrent session channels and 100 direct-tcpip channels on one connection,
//     forwardLocal (-L), forwardIn (-R, a fixed port and port 0), openSocksProxy (-D) used by curl
//     and by a SOCKS5 client, and agent forwarding proven by `ssh-add -l` and by an inner `ssh` to
//     a second sshd that only accepts the agent's key.
// (b) ssh → tsshd: ssh -L, -R (and -R 0 with the allocated port), -D (curl and a SOCKS5 client),
//     -A with ssh-add -l inside, -N with ExitOnForwardFailure, exec with stdin/stdout/stderr and
//     exit status, a command that kills itself with SIGTERM (exit-signal: ssh exits 255), and ssh
//     killed mid-output without tsshd going down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { connect, type ConnectOptions, type SshClient } from '../../src/client.js';
import { ChannelOpenError } from '../../src/connection/mux.js';
import { freePort, openSshFixture, type OpenSshFixture, type SshdListening } from '../helpers/openssh.js';
import { havePeers, missingPeers, type PeerName } from '../helpers/peers.js';
import { createLab, keygenFingerprint, startSshAgent, startTsshd, trustLabHostKeys, writeSshdConfig, type Tsshd } from '../helpers/auth-lab.js';
import {
  KiB,
  MiB,
  closedPort,
  exchange,
  patternBytes,
  readGreetingThenUpload,
  roundTrip,
  roundTripOver,
  exchangeOver,
  sha256,
  socks5Connect,
  startEchoServer,
  startGreeterServer,
  startHttpServer,
  waitUntil,
  type EchoServer,
} from '../helpers/conn-net.js';
import { findCurl, processAlive, spawnSshInBackground } from '../helpers/conn-openssh.js';

const CASE_TIMEOUT_MS = 90_000;

/** curl through a SOCKS5 proxy (names resolved by the proxy side); resolves with the body. */
function curlViaSocks(curl: string, proxyPort: number, url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      curl,
      ['--silent', '--show-error', '--fail', '--max-time', '30', '--socks5-hostname', `127.0.0.1:${proxyPort}`, url],
      { encoding: 'buffer', maxBuffer: 64 * MiB, timeout: 40_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`curl ${url}: ${error.message}\n${stderr.toString()}`)) : resolve(stdout)),
    );
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// (a) our client → sshd

describe('our client → OpenSSH sshd: channels, forwarding, agent', { timeout: 300_000 }, () => {
  const PEERS: PeerName[] = ['sshd', 'ssh-keygen'];
  let lab: OpenSshFixture | undefined;
  let sshd: SshdListening | undefined;
  let echo: EchoServer | undefined;
  const clients: SshClient[] = [];

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    echo = await startEchoServer();
    sshd = await lab.spawnSshdListening(
      lab.sshdConfig({
        logLevel: 'VERBOSE',
        extra: ['MaxSessions 110', 'AllowTcpForwarding yes', 'AllowAgentForwarding yes', 'GatewayPorts no'],
      }),
    );
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await echo?.close();
    await sshd?.stop();
    await lab?.cleanup();
  });

  function options(server: SshdListening, extra: Partial<ConnectOptions> = {}): ConnectOptions {
    return {
      host: '127.0.0.1',
      port: server.port,
      username: lab!.user,
      privateKeyFiles: [lab!.userKey.privateKey],
      knownHosts: { files: [trustLabHostKeys(lab!, server.port)], globalFiles: [] },
      readyTimeout: 30_000,
      ...extra,
    };
  }

  async function client(extra: Partial<ConnectOptions> = {}): Promise<SshClient> {
    const c = await connect(options(sshd!, extra));
    clients.push(c);
    return c;
  }

  test('exec with 1 MiB of random stdin: sshd\'s sha256sum prints the SHA-256 of what we sent', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const input = patternBytes('stdin-to-sshd', MiB);
    const result = await c.exec('sha256sum', { stdin: input });
    assert.equal(result.code, 0, result.stderr.toString());
    assert.equal(result.stdout.toString(), `${sha256(input)}  -\n`);
    assert.equal(result.stderr.length, 0);
  });

  test('exec: stdout and stderr arrive apart, exit statuses 0 and 42 are reported', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const ok = await c.exec('echo to-stdout; echo to-stderr >&2');
    assert.equal(ok.stdout.toString(), 'to-stdout\n');
    assert.equal(ok.stderr.toString(), 'to-stderr\n');
    assert.equal(ok.code, 0);
    assert.equal(ok.signal, undefined);
    const failed = await c.exec('echo partial; exit 42');
    assert.equal(failed.stdout.toString(), 'partial\n');
    assert.equal(failed.code, 42);
  });

  test('exec: a command killed by a signal is reported as exit-signal (TERM, KILL), without an exit status', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    for (const signal of ['TERM', 'KILL']) {
      const result = await c.exec(`echo before; kill -${signal} $$; echo after`);
      assert.equal(result.stdout.toString(), 'before\n');
      assert.equal(result.code, undefined);
      assert.equal(result.signal?.signal, signal);
      assert.equal(result.signal?.coreDumped, false);
    }
  });

  test('100 concurrent session channels on one connection each run cat on 256 KiB, byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const inputs = Array.from({ length: 100 }, (_, i) => patternBytes(`sshd-session-${i}`, 256 * KiB));
    const sessions = await Promise.all(inputs.map(() => c.execStream('cat')));
    // All 100 are open before any input is sent.
    const outputs = await Promise.all(
      sessions.map(
        (session, i) =>
          new Promise<Buffer>((resolve) => {
            const chunks: Buffer[] = [];
            session.on('data', (chunk: Buffer) => chunks.push(chunk));
            session.stderr.resume();
            session.once('end', () => resolve(Buffer.concat(chunks)));
            session.end(inputs[i]);
          }),
      ),
    );
    outputs.forEach((output, i) => assert.equal(sha256(output), sha256(inputs[i]!), `session ${i}`));
    await waitUntil(() => sessions.every((s) => s.exit !== undefined), 'every exit status');
    assert.ok(sessions.every((s) => s.exit?.code === 0));
  });

  test('100 concurrent direct-tcpip channels through sshd to an echo server, 256 KiB each, byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const inputs = Array.from({ length: 100 }, (_, i) => patternBytes(`sshd-tcpip-${i}`, 256 * KiB));
    const streams = await Promise.all(inputs.map(() => c.forwardOut('127.0.0.1', echo!.port)));
    const outputs = await Promise.all(streams.map((stream, i) => roundTripOver(stream, inputs[i]!)));
    outputs.forEach((output, i) => assert.equal(sha256(output), sha256(inputs[i]!), `channel ${i}`));
  });

  test('a direct-tcpip channel to a closed port: sshd answers CONNECT_FAILED, forwardOut rejects with "connect failed", the connection goes on', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const port = await closedPort();
    await assert.rejects(c.forwardOut('127.0.0.1', port), (error: unknown) => {
      assert.ok(error instanceof ChannelOpenError, String(error));
      assert.match(error.message, /^could not open direct-tcpip channel: connect failed/);
      return true;
    });
    assert.equal((await c.exec('echo still-here')).stdout.toString(), 'still-here\n');
  });

  test('forwardLocal (-L): connections to our local port reach the echo server through sshd, 1 MiB each, three at once, byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const listener = await c.forwardLocal(0, '127.0.0.1', echo!.port);
    t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    const localPort = (listener.address() as AddressInfo).port;
    const inputs = [0, 1, 2].map((i) => patternBytes(`forward-local-${i}`, MiB));
    const outputs = await Promise.all(inputs.map((input) => exchange(localPort, input)));
    outputs.forEach((output, i) => assert.equal(sha256(output), sha256(inputs[i]!), `connection ${i}`));
  });

  test('forwardLocal (-L) half-close: a client that shuts down its sending side after 1 MiB still gets the whole 1 MiB reply, which the target sends only after that', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const replyAfterEnd = await startEchoServer(t, { afterEnd: true });
    const c = await client();
    const listener = await c.forwardLocal(0, '127.0.0.1', replyAfterEnd.port);
    t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    const input = patternBytes('forward-local-half-close', MiB);
    const output = await roundTrip((listener.address() as AddressInfo).port, input);
    assert.equal(output.length, input.length);
    assert.equal(sha256(output), sha256(input));
  });

  test('forwardLocal (-L) half-close from the target: after the target sent its greeting and shut down, the client\'s 1 MiB upload still reaches it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const greeter = await startGreeterServer(Buffer.from('greetings, then FIN\n'), t);
    const c = await client();
    const listener = await c.forwardLocal(0, '127.0.0.1', greeter.port);
    t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    const upload = patternBytes('after-target-fin', MiB);
    assert.equal((await readGreetingThenUpload((listener.address() as AddressInfo).port, upload)).toString(), 'greetings, then FIN\n');
    assert.equal(sha256(await greeter.nextUpload()), sha256(upload));
  });

  test('forwardIn (-R) on port 0: sshd allocates a port and we learn it; connections to it reach our handler and the echo server byte-exact; cancel() stops it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const seen: { address: string; port: number; originAddress: string }[] = [];
    const forward = await c.forwardIn('127.0.0.1', 0, (stream, info) => {
      seen.push({ address: info.address, port: info.port, originAddress: info.originAddress });
      const socket = createConnectionToEcho(echo!.port);
      socket.pipe(stream).pipe(socket);
      socket.on('error', () => stream.destroy());
      stream.on('error', () => socket.destroy());
    });
    assert.ok(forward.port > 0 && forward.port < 65536, `allocated port ${forward.port}`);
    const input = patternBytes('forward-in-0', MiB);
    assert.equal(sha256(await roundTrip(forward.port, input)), sha256(input));
    assert.deepEqual(seen, [{ address: '127.0.0.1', port: forward.port, originAddress: '127.0.0.1' }]);
    assert.equal(await forward.cancel(), true);
    await assert.rejects(roundTrip(forward.port, Buffer.from('x')), /ECONNREFUSED/);
  });

  test('forwardIn (-R) on a fixed free port carries 1 MiB byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const port = await freePort();
    const forward = await c.forwardIn('127.0.0.1', port, (stream) => {
      const socket = createConnectionToEcho(echo!.port);
      socket.pipe(stream).pipe(socket);
    });
    assert.equal(forward.port, port);
    const input = patternBytes('forward-in-fixed', MiB);
    assert.equal(sha256(await roundTrip(port, input)), sha256(input));
    await forward.cancel();
  });

  test('openSocksProxy (-D): curl fetches 1 MiB over HTTP through sshd, and a SOCKS5 client echoes 1 MiB, byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const c = await client();
    const body = patternBytes('http-body', MiB);
    const http = await startHttpServer(body, t);
    const proxy = await c.openSocksProxy(0);
    t.after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const proxyPort = (proxy.address() as AddressInfo).port;
    const curl = findCurl();
    if (curl) {
      const fetched = await curlViaSocks(curl, proxyPort, `http://127.0.0.1:${http.port}/data`);
      assert.equal(sha256(fetched), sha256(body));
    } else {
      t.diagnostic('curl not installed: only the SOCKS5 client is used');
    }
    const socket = await socks5Connect(proxyPort, '127.0.0.1', echo!.port);
    const input = patternBytes('socks-echo', MiB);
    assert.equal(sha256(await exchangeOver(socket, input)), sha256(input));
    // Half-close: a reply the target sends only after the client's FIN arrives whole.
    const replyAfterEnd = await startEchoServer(t, { afterEnd: true });
    const halfClosed = await socks5Connect(proxyPort, '127.0.0.1', replyAfterEnd.port);
    assert.equal(sha256(await roundTripOver(halfClosed, input)), sha256(input));
    // A name is resolved on the server side (SOCKS5 ATYP 3).
    const named = await socks5Connect(proxyPort, 'localhost', echo!.port);
    assert.equal((await roundTripOver(named, Buffer.from('by name'))).toString(), 'by name');
  });

  test('forwardAgent: ssh-add -l in the session lists the real agent\'s key, and ssh from the session to a second sshd logs in with it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS, 'ssh', 'ssh-agent')) return;
    const fx = await openSshFixture(t);
    const agent = await startSshAgent(fx, 'forwarded-agent');
    t.after(() => agent.stop());
    const agentKey = await fx.makeKey('ed25519', 'agent_only_key');
    await agent.add(agentKey.privateKey);
    const { fingerprint } = await keygenFingerprint(agentKey.publicKey);
    // The second sshd accepts nothing but the agent's key.
    const secondAuthorized = fx.path('second_authorized_keys');
    writeFileSync(secondAuthorized, `${agentKey.publicKeyLine}\n`);
    const second = await fx.spawnSshdListening(writeSshdConfig(fx, [`AuthorizedKeysFile ${secondAuthorized}`, 'LogLevel VERBOSE', 'UsePAM no']));

    // Without agent forwarding there is no agent in the session.
    const plain = await client();
    const none = await plain.exec('ssh-add -l');
    assert.equal(none.code, 2, `ssh-add -l without an agent: ${none.stdout.toString()}${none.stderr.toString()}`);

    const c = await client();
    c.forwardAgent(agent.socket);
    const listed = await c.exec('ssh-add -l');
    assert.equal(listed.code, 0, listed.stderr.toString());
    assert.match(listed.stdout.toString(), new RegExp(`^256 ${escapeRegExp(fingerprint)} .*\\(ED25519\\)$`, 'm'));

    const inner = [
      'ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
      `-o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR -p ${second.port} -l ${fx.user} 127.0.0.1 echo second-hop-ok`,
    ].join(' ');
    const hop = await c.exec(inner);
    assert.equal(hop.stdout.toString(), 'second-hop-ok\n', hop.stderr.toString());
    assert.equal(hop.code, 0);
    await waitUntil(() => new RegExp(`Accepted publickey for ${escapeRegExp(fx.user)} from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${escapeRegExp(fingerprint)}`).test(second.stderrText()), 'the second sshd to log the agent key login');
  });
});

/** A TCP connection to the echo server, for a forwarded channel to be piped into. */
function createConnectionToEcho(port: number): Socket {
  return netConnect({ host: '127.0.0.1', port });
}

// ---------------------------------------------------------------------------------------------
// (b) OpenSSH's ssh → tsshd

describe('OpenSSH ssh → tsshd: forwarding, agent, exec and signals', { timeout: 300_000 }, () => {
  const PEERS: PeerName[] = ['ssh', 'ssh-keygen'];
  let lab: OpenSshFixture | undefined;
  let tsshd: Tsshd | undefined;
  let echo: EchoServer | undefined;

  before(async () => {
    if (missingPeers(...PEERS)) return;
    lab = await createLab();
    echo = await startEchoServer();
    tsshd = await startTsshd(lab, ['LogLevel VERBOSE', 'PermitRootLogin yes', 'AllowTcpForwarding yes', 'AllowAgentForwarding yes', 'GatewayPorts no']);
  });
  after(async () => {
    await tsshd?.stop();
    await echo?.close();
    await lab?.cleanup();
  });

  test('ssh -N -L: a local port forwarded through tsshd reaches the echo server, 1 MiB byte-exact, two connections', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const localPort = await freePort();
    const ssh = spawnSshInBackground(lab!, ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${echo!.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    await ssh.waitForStderr(new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${localPort}\\.`));
    for (const i of [0, 1]) {
      const input = patternBytes(`ssh-L-${i}`, MiB);
      assert.equal(sha256(await roundTrip(localPort, input)), sha256(input), `connection ${i}`);
    }
  });

  test('ssh -N -R on a fixed port: tsshd listens, a connection to it comes back through ssh to the echo server byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const remotePort = await freePort();
    const ssh = spawnSshInBackground(lab!, ['-N', '-R', `127.0.0.1:${remotePort}:127.0.0.1:${echo!.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    await ssh.waitForStderr(new RegExp(`remote forward success for: listen \\S*${remotePort}, connect 127\\.0\\.0\\.1:${echo!.port}`));
    const input = patternBytes('ssh-R-fixed', MiB);
    assert.equal(sha256(await exchange(remotePort, input)), sha256(input));
  });

  test('ssh -N -R half-close: a client of tsshd\'s remote-forward port that shuts down its sending side still gets the whole 1 MiB reply, which the target sends only after that', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const replyAfterEnd = await startEchoServer(t, { afterEnd: true });
    const ssh = spawnSshInBackground(lab!, ['-N', '-R', `0:127.0.0.1:${replyAfterEnd.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    const match = await ssh.waitForStderr(new RegExp(`Allocated port (\\d+) for remote forward to 127\\.0\\.0\\.1:${replyAfterEnd.port}`));
    const input = patternBytes('ssh-R-half-close', MiB);
    const output = await roundTrip(Number(match[1]), input);
    assert.equal(output.length, input.length, `${output.length} of ${input.length} bytes came back`);
    assert.equal(sha256(output), sha256(input));
  });

  test('ssh -N -L half-close from the target: after the target behind tsshd sent its greeting and shut down, the client\'s 1 MiB upload still reaches it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const greeter = await startGreeterServer(Buffer.from('greetings, then FIN\n'), t);
    const localPort = await freePort();
    const ssh = spawnSshInBackground(lab!, ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${greeter.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    await ssh.waitForStderr(new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${localPort}\\.`));
    const upload = patternBytes('ssh-L-after-target-fin', MiB);
    assert.equal((await readGreetingThenUpload(localPort, upload)).toString(), 'greetings, then FIN\n');
    const received = await greeter.nextUpload();
    assert.equal(received.length, upload.length, `the target received ${received.length} of ${upload.length} bytes`);
    assert.equal(sha256(received), sha256(upload));
  });

  test('ssh -R 0: ssh prints the port tsshd allocated, and a connection to it reaches the echo server byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const ssh = spawnSshInBackground(lab!, ['-N', '-R', `0:127.0.0.1:${echo!.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    const match = await ssh.waitForStderr(new RegExp(`Allocated port (\\d+) for remote forward to 127\\.0\\.0\\.1:${echo!.port}`));
    const allocated = Number(match[1]);
    assert.ok(allocated > 0 && allocated < 65536);
    const input = patternBytes('ssh-R-0', MiB);
    assert.equal(sha256(await exchange(allocated, input)), sha256(input));
  });

  test('ssh -N -D: curl through ssh\'s SOCKS proxy fetches 1 MiB from an HTTP server via tsshd, and a SOCKS5 client echoes 1 MiB, byte-exact', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const body = patternBytes('ssh-D-body', MiB);
    const http = await startHttpServer(body, t);
    const socksPort = await freePort();
    const ssh = spawnSshInBackground(lab!, ['-N', '-D', `127.0.0.1:${socksPort}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
    });
    t.after(() => ssh.stop());
    await ssh.waitForStderr(new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${socksPort}\\.`));
    const curl = findCurl();
    if (curl) assert.equal(sha256(await curlViaSocks(curl, socksPort, `http://127.0.0.1:${http.port}/data`)), sha256(body));
    else t.diagnostic('curl not installed: only the SOCKS5 client is used');
    const socket = await socks5Connect(socksPort, '127.0.0.1', echo!.port);
    const input = patternBytes('ssh-D-echo', MiB);
    assert.equal(sha256(await roundTripOver(socket, input)), sha256(input));
  });

  test('ssh -N with ExitOnForwardFailure: a remote forward tsshd cannot bind (port in use) makes ssh exit 255 saying so', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const busy = createNetServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const port = (busy.address() as AddressInfo).port;
    const r = await lab!.runSsh(['-N', '-R', `127.0.0.1:${port}:127.0.0.1:${echo!.port}`, '127.0.0.1'], {
      port: tsshd!.port,
      options: ['ExitOnForwardFailure=yes'],
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 255, r.stderr);
    assert.match(r.stderr, new RegExp(`Error: remote port forwarding failed for listen port ${port}`));
  });

  test('ssh -A: ssh-add -l inside the tsshd session lists the agent\'s key through the forwarded agent', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS, 'ssh-agent')) return;
    const agent = await startSshAgent(lab!, 'ssh-A-agent');
    t.after(() => agent.stop());
    const agentKey = await lab!.makeKey('ecdsa', 'ssh_A_agent_key');
    await agent.add(agentKey.privateKey);
    const { fingerprint } = await keygenFingerprint(agentKey.publicKey);
    const r = await lab!.runSsh(['-A', '127.0.0.1', 'ssh-add -l; echo "sock=${SSH_AUTH_SOCK:+set}"'], {
      port: tsshd!.port,
      options: [`IdentityAgent=${agent.socket}`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^256 ${escapeRegExp(fingerprint)} .*\\(ECDSA\\)$`, 'm'));
    assert.match(r.stdout, /^sock=set$/m);
    // Without -A the session has no agent.
    const without = await lab!.runSsh(['127.0.0.1', 'ssh-add -l'], { port: tsshd!.port, options: [`IdentityAgent=${agent.socket}`, 'ForwardAgent=no'] });
    assert.equal(without.code, 2, without.stdout + without.stderr);
  });

  test('ssh exec: 1 MiB of stdin through sha256sum, stdout and stderr apart, exit status 42', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const input = patternBytes('ssh-stdin', MiB);
    const hashed = await lab!.runSsh(['127.0.0.1', 'sha256sum'], { port: tsshd!.port, input });
    assert.equal(hashed.code, 0, hashed.stderr);
    assert.equal(hashed.stdout, `${sha256(input)}  -\n`);
    const r = await lab!.runSsh(['127.0.0.1', 'echo to-stdout; echo to-stderr >&2; exit 42'], { port: tsshd!.port });
    assert.equal(r.stdout, 'to-stdout\n');
    assert.equal(r.stderr, 'to-stderr\n');
    assert.equal(r.code, 42);
  });

  test('ssh exec of a command that kills itself with SIGTERM: tsshd sends exit-signal TERM and ssh exits 255', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const r = await lab!.runSsh(['127.0.0.1', 'echo before; kill -TERM $$; echo after'], { port: tsshd!.port, verbose: true });
    assert.equal(r.stdout, 'before\n');
    assert.equal(r.code, 255);
    assert.match(r.stderr, /client_input_channel_req: channel \d+ rtype exit-signal reply 0/);
    assert.doesNotMatch(r.stderr, /rtype exit-status/);
  });

  test('ssh killed while a command floods output: tsshd logs the lost connection, stays up and serves the next ssh', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    if (!havePeers(t, ...PEERS)) return;
    const since = tsshd!.log().length;
    const ssh = spawnSshInBackground(lab!, ['127.0.0.1', 'yes flood-line'], { port: tsshd!.port });
    t.after(() => ssh.stop());
    await waitUntil(() => ssh.stdout().length > 4 * MiB, 'ssh to receive the flood');
    // Stop reading so that tsshd's window runs out and its writes wait, then vanish without a word.
    ssh.signal('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 500));
    ssh.signal('SIGKILL');
    await ssh.exited;
    await tsshd!.waitForLog(/Disconnected from user \S+ 127\.0\.0\.1 port \d+/, since);
    assert.ok(processAlive(tsshd!.pid), `tsshd died:\n${tsshd!.log().slice(since)}`);
    const r = await lab!.runSsh(['127.0.0.1', 'echo next-login-ok'], { port: tsshd!.port });
    assert.equal(r.stdout, 'next-login-ok\n', r.stderr);
    assert.equal(r.code, 0);
  });
});
