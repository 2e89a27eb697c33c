// The interop harness proves itself with OpenSSH against OpenSSH, so that when an interop test of
// ours fails, the harness is not the suspect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { freePort, openSshFixture, parseSshDebug, parseSshdLog } from '../helpers/openssh.js';
import { havePeers, needOpenSsh10 } from '../helpers/peers.js';

test('ssh runs a command on sshd -i through ProxyCommand with publickey auth', async (t) => {
  if (!havePeers(t, 'ssh', 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const proxy = fx.sshdProxyCommand(fx.sshdConfig());
  const result = await fx.runSsh(['tssh-peer', 'echo hello'], { proxyCommand: proxy.command, verbose: true });
  assert.equal(result.code, 0, `ssh failed:\n${result.stderr}\nsshd:\n${proxy.log()}`);
  assert.equal(result.stdout, 'hello\n');

  const client = parseSshDebug(result.stderr);
  assert.match(client.kex ?? '', /^(sntrup761x25519-sha512(@openssh\.com)?|mlkem768x25519-sha256|curve25519-sha256)$/);
  assert.equal(client.hostKeyAlgorithm, 'ssh-ed25519');
  assert.ok(client.clientToServer && client.serverToClient, 'both directions were logged');
  assert.equal(client.clientToServer.compression, 'none');
  assert.equal(client.serviceAccepted, true);
  assert.equal(client.authenticated, true);
  assert.equal(client.authMethod, 'publickey');
  assert.match(client.remoteSoftware ?? '', /^OpenSSH_/);
  assert.match(client.serverHostKey ?? '', /^ssh-ed25519 SHA256:/);

  const server = parseSshdLog(proxy.log());
  assert.equal(server.kex, client.kex);
  assert.deepEqual(server.clientToServer, client.clientToServer);
  assert.deepEqual(server.serverToClient, client.serverToClient);
  assert.deepEqual(server.accepted, { method: 'publickey', user: fx.user });
});

test('extra sshd_config lines pick the algorithms, and the parsed log shows them', async (t) => {
  if (!havePeers(t, 'ssh', 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const config = fx.sshdConfig({
    hostKeys: ['ecdsa', 'rsa'],
    extra: ['KexAlgorithms curve25519-sha256', 'Ciphers aes128-ctr', 'MACs hmac-sha2-256-etm@openssh.com'],
  });
  const proxy = fx.sshdProxyCommand(config);
  const result = await fx.runSsh(['tssh-peer', 'true'], {
    proxyCommand: proxy.command,
    verbose: true,
    options: ['HostKeyAlgorithms=rsa-sha2-512'],
  });
  assert.equal(result.code, 0, `ssh failed:\n${result.stderr}\nsshd:\n${proxy.log()}`);
  const client = parseSshDebug(result.stderr);
  assert.equal(client.kex, 'curve25519-sha256');
  assert.equal(client.hostKeyAlgorithm, 'rsa-sha2-512');
  const expected = { cipher: 'aes128-ctr', mac: 'hmac-sha2-256-etm@openssh.com', compression: 'none' };
  assert.deepEqual(client.clientToServer, expected);
  assert.deepEqual(client.serverToClient, expected);
});

test('an unknown user key is refused, and the parser sees the refusal', async (t) => {
  if (!havePeers(t, 'ssh', 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const stranger = await fx.makeKey('ed25519', 'stranger');
  const proxy = fx.sshdProxyCommand();
  const result = await fx.runSsh(['tssh-peer', 'true'], { proxyCommand: proxy.command, verbose: true, identity: stranger.privateKey });
  assert.equal(result.code, 255);
  const client = parseSshDebug(result.stderr);
  assert.equal(client.serviceAccepted, true);
  assert.equal(client.authenticated, false);
  assert.equal(client.permissionDenied, true);
  assert.ok(client.authMethodsOffered.includes('publickey'));
});

test('our side can speak over the pipes of sshd -i: it sends its identification first', async (t) => {
  if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const sshd = fx.spawnSshdInetd();
  const banner = await new Promise<string>((resolve, reject) => {
    let text = '';
    sshd.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) resolve(text.slice(0, text.indexOf('\r\n')));
    });
    void sshd.exited.then(() => reject(new Error(`sshd exited early:\n${sshd.stderrText()}`)));
  });
  assert.match(banner, /^SSH-2\.0-OpenSSH_/);
  // A 1.x-only identification makes sshd give up; it must exit on its own.
  sshd.stdin.write('SSH-1.5-ancient\r\n');
  const status = await sshd.exited;
  assert.notEqual(status.code, 0);
  assert.match(sshd.stderrText(), /Protocol major versions differ|protocol version mismatch|major/i);
});

test('a listening sshd on a free loopback port serves ssh', async (t) => {
  if (!havePeers(t, 'ssh', 'sshd', 'ssh-keygen')) return;
  const fx = await openSshFixture(t);
  const server = await fx.spawnSshdListening(fx.sshdConfig({ logLevel: 'VERBOSE' }));
  assert.ok(server.port > 0);
  const result = await fx.runSsh(['127.0.0.1', 'echo hello over tcp'], { port: server.port });
  assert.equal(result.code, 0, `ssh failed:\n${result.stderr}\nsshd:\n${server.stderrText()}`);
  assert.equal(result.stdout, 'hello over tcp\n');
  // known_hosts now holds the server's key under [127.0.0.1]:port.
  assert.match(readFileSync(fx.knownHosts, 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${server.port} `, 'm'));
  const status = await server.stop();
  assert.ok(status.signal === 'SIGTERM' || status.code !== null);
});

test('freePort returns a port that can be listened on', async () => {
  const port = await freePort();
  assert.ok(Number.isInteger(port) && port > 0 && port < 65536);
});

test('OpenSSH 10 ssh and sshd negotiate mlkem768x25519-sha256', async (t) => {
  if (!havePeers(t, 'ssh-keygen')) return;
  const openssh10 = await needOpenSsh10(t);
  if (!openssh10) return;
  const fx = await openSshFixture(t);
  const proxy = fx.sshdProxyCommand(fx.sshdConfig(), openssh10.sshd);
  const result = await fx.runSsh(['tssh-peer', 'echo hello'], {
    ssh: openssh10.ssh,
    proxyCommand: proxy.command,
    verbose: true,
  });
  assert.equal(result.code, 0, `ssh failed:\n${result.stderr}\nsshd:\n${proxy.log()}`);
  assert.equal(result.stdout, 'hello\n');
  const client = parseSshDebug(result.stderr);
  assert.equal(client.kex, 'mlkem768x25519-sha256');
  assert.match(client.remoteSoftware ?? '', /^OpenSSH_10/);
  assert.equal(parseSshdLog(proxy.log()).kex, 'mlkem768x25519-sha256');
});
