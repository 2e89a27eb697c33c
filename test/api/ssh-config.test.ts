/**
 * connect({ host: alias, sshConfig }) as `ssh alias` would: an ssh_config in a temporary folder
 * sends the alias to our server or to a real OpenSSH sshd (HostName, Port, User, IdentityFile,
 * Host patterns), through a ProxyJump hop, with the options given to connect() winning over the
 * file, and a bad file reported with its name and line.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net';
import {
  AgentServer,
  connect,
  ConfigError,
  createServer,
  formatOpenSshPublicKey,
  generatePrivateKey,
  HostKeyError,
  InMemoryAgent,
  SshError,
  parseSshConfig,
  type SshClient,
} from '../../src/index.js';
import { configLab, type ConfigLab } from '../helpers/config-lab.js';
import { freePort, openSshFixture } from '../helpers/openssh.js';
import { havePeers } from '../helpers/peers.js';

/** Lines every alias of a test config shares: the lab's key only, its own known_hosts, never a prompt. */
function commonLines(lab: ConfigLab, knownHosts: string): string[] {
  return [
    'Host *',
    '  User alice',
    `  IdentityFile ${lab.userKeyFile}`,
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    `  UserKnownHostsFile ${knownHosts}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  BatchMode yes',
  ];
}

async function run(client: SshClient, command: string): Promise<string> {
  try {
    const result = await client.exec(command);
    assert.equal(result.code, 0, result.stderr.toString());
    return result.stdout.toString();
  } finally {
    await client.end();
  }
}

describe('connect() through an ssh_config alias', () => {
  test('HostName, Port, User and IdentityFile from Host blocks with patterns reach the right one of two servers', async (t) => {
    const lab = await configLab(t);
    const red = await lab.startServer('red');
    const blue = await lab.startServer('blue');
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(red.port)}\n${lab.knownHostsLine(blue.port)}\n`);
    const config = lab.writeFile(
      'config',
      [
        'Host lab-* !lab-blue',
        '  HostName 127.0.0.1',
        `  Port ${red.port}`,
        'Host lab-blue',
        '  HostName 127.0.0.1',
        `  Port ${blue.port}`,
        ...commonLines(lab, knownHosts),
        '',
      ].join('\n'),
    );
    assert.equal(await run(await connect({ host: 'lab-red', sshConfig: config }), 'hostname'), 'red\n');
    assert.equal(await run(await connect({ host: 'lab-blue', sshConfig: config }), 'hostname'), 'blue\n');
    assert.deepEqual(red.logins, [{ user: 'alice', methods: ['publickey'] }]);
    assert.deepEqual(blue.logins, [{ user: 'alice', methods: ['publickey'] }]);
    // A parsed config works the same, and a list is read in order (the first value wins).
    const parsed = parseSshConfig({ path: config });
    const override = parseSshConfig(`Host lab-red\n  Port ${blue.port}\n`, { file: 'override' });
    assert.equal(await run(await connect({ host: 'lab-red', sshConfig: [override, parsed] }), 'hostname'), 'blue\n');
  });

  test('logs in to a real OpenSSH sshd and runs a shell command', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const fx = await openSshFixture(t);
    const sshd = await fx.spawnSshdListening(fx.sshdConfig({ logLevel: 'INFO' }));
    const knownHosts = fx.path('known_hosts.config');
    writeFileSync(knownHosts, Object.values(fx.hostKeys).map((key) => `[127.0.0.1]:${sshd.port} ${key.publicKeyLine}\n`).join(''));
    const config = fx.path('ssh_config');
    writeFileSync(
      config,
      [
        'Host openssh',
        '  HostName 127.0.0.1',
        `  Port ${sshd.port}`,
        `  User ${fx.user}`,
        `  IdentityFile ${fx.userKey.privateKey}`,
        '  IdentitiesOnly yes',
        '  IdentityAgent none',
        `  UserKnownHostsFile ${knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        '  Ciphers aes256-ctr',
        '  MACs hmac-sha2-512-etm@openssh.com',
        '  Compression yes',
        '',
      ].join('\n'),
    );
    const client = await connect({ host: 'openssh', sshConfig: config });
    // Ciphers, MACs and Compression from the file were offered, and the server took them.
    assert.equal(client.algorithms?.cipherClientToServer, 'aes256-ctr');
    assert.equal(client.algorithms?.macClientToServer, 'hmac-sha2-512-etm@openssh.com');
    assert.equal(client.algorithms?.compressionClientToServer, 'zlib@openssh.com');
    assert.equal(await run(client, 'echo "hello from $(whoami)"; exit 0'), `hello from ${fx.user}\n`);
  });

  test('ProxyJump: the destination is reached through a direct-tcpip channel of the jump host, which closes with it', async (t) => {
    const lab = await configLab(t);
    const jump = await lab.startServer('jump');
    const target = await lab.startServer('target');
    // The target's port is known to the jump host only in the file: no one connects to it directly but the jump host.
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(jump.port)}\n${lab.knownHostsLine(target.port)}\n`);
    const config = lab.writeFile(
      'config',
      [
        'Host inner',
        '  HostName 127.0.0.1',
        `  Port ${target.port}`,
        '  ProxyJump gateway',
        'Host gateway',
        '  HostName 127.0.0.1',
        `  Port ${jump.port}`,
        ...commonLines(lab, knownHosts),
        '',
      ].join('\n'),
    );
    const lines: string[] = [];
    const client = await connect({ host: 'inner', sshConfig: config, debug: (line) => lines.push(line) });
    assert.deepEqual(jump.forwards, [`127.0.0.1:${target.port}`]);
    assert.ok(lines.includes(`Connecting to jump host 127.0.0.1 port ${jump.port}.`), lines.join('\n'));
    assert.equal(jump.open(), 1);
    assert.equal(await run(client, 'hostname'), 'target\n');
    assert.deepEqual(target.logins, [{ user: 'alice', methods: ['publickey'] }]);
    for (let i = 0; i < 100 && jump.open() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(jump.open(), 0, 'the jump connection ended with the destination');
  });

  test("ProxyJump hops that have ProxyJump of their own are chained, as ssh does; a loop is an error", async (t) => {
    const lab = await configLab(t);
    const outer = await lab.startServer('outer');
    const middle = await lab.startServer('middle');
    const target = await lab.startServer('target');
    const knownHosts = lab.writeFile('known_hosts', [outer, middle, target].map((s) => `${lab.knownHostsLine(s.port)}\n`).join(''));
    const config = lab.writeFile(
      'config',
      [
        'Host target',
        `  Port ${target.port}`,
        '  ProxyJump middle',
        'Host middle',
        `  Port ${middle.port}`,
        '  ProxyJump outer',
        'Host outer',
        `  Port ${outer.port}`,
        'Host loop-a',
        '  ProxyJump loop-b',
        'Host loop-b',
        '  ProxyJump loop-a',
        'Host *',
        '  HostName 127.0.0.1',
        ...commonLines(lab, knownHosts).slice(1),
        '',
      ].join('\n'),
    );
    assert.equal(await run(await connect({ host: 'target', sshConfig: config }), 'hostname'), 'target\n');
    assert.deepEqual(outer.forwards, [`127.0.0.1:${middle.port}`]);
    assert.deepEqual(middle.forwards, [`127.0.0.1:${target.port}`]);
    assert.deepEqual(target.forwards, []);
    await assert.rejects(connect({ host: 'loop-a', sshConfig: config }), /ProxyJump: more than 8 jump hosts deep/);
  });

  test('ProxyJump through our server to a real OpenSSH sshd', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    const lab = await configLab(t);
    const jump = await lab.startServer('jump');
    const fx = await openSshFixture(t);
    const sshd = await fx.spawnSshdListening(fx.sshdConfig({ logLevel: 'INFO' }));
    const knownHosts = lab.writeFile(
      'known_hosts',
      `${lab.knownHostsLine(jump.port)}\n${Object.values(fx.hostKeys).map((key) => `[127.0.0.1]:${sshd.port} ${key.publicKeyLine}\n`).join('')}`,
    );
    const config = lab.writeFile(
      'config',
      [
        'Host behind',
        '  HostName 127.0.0.1',
        `  Port ${sshd.port}`,
        `  User ${fx.user}`,
        `  IdentityFile ${fx.userKey.privateKey}`,
        `  ProxyJump alice@127.0.0.1:${jump.port}`,
        ...commonLines(lab, knownHosts),
        '',
      ].join('\n'),
    );
    const client = await connect({ host: 'behind', sshConfig: config });
    assert.equal(await run(client, 'echo "$(whoami) via jump"'), `${fx.user} via jump\n`);
    assert.deepEqual(jump.forwards, [`127.0.0.1:${sshd.port}`]);
  });

  test('ProxyCommand: the connection runs over the command\'s stdin and stdout, with %h and %p expanded', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(box.port)}\n`);
    // A relay in node: the only way in, since HostName does not resolve.
    const relay = lab.writeFile(
      'relay.mjs',
      "import { connect } from 'node:net';\nconst s = connect({ host: process.argv[2], port: Number(process.argv[3]) });\nprocess.stdin.pipe(s).pipe(process.stdout);\n",
    );
    const config = lab.writeFile(
      'config',
      [
        'Host piped',
        '  HostName 127.0.0.1',
        `  Port ${box.port}`,
        `  ProxyCommand ${process.execPath} ${relay} %h %p`,
        ...commonLines(lab, knownHosts),
        '',
      ].join('\n'),
    );
    assert.equal(await run(await connect({ host: 'piped', sshConfig: config }), 'whoami'), 'alice\n');
  });

  test('options given to connect() win over the file', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const closedPort = await freePort();
    const knownHosts = lab.writeFile('known_hosts', '');
    const config = lab.writeFile(
      'config',
      [
        'Host box',
        '  HostName 127.0.0.1',
        `  Port ${closedPort}`,
        '  User mallory',
        `  IdentityFile ${lab.dir}/no-such-key`,
        '  Ciphers aes128-ctr',
        '  PreferredAuthentications publickey',
        '  ConnectTimeout 5',
        ...commonLines(lab, knownHosts),
        '',
      ].join('\n'),
    );
    // As the file says: the port is closed.
    await assert.rejects(connect({ host: 'box', sshConfig: config }), (error: unknown) => {
      assert.ok(error instanceof SshError);
      assert.equal(error.message, `connect to host 127.0.0.1 port ${closedPort}: Connection refused`);
      return true;
    });
    // The port, the user, the cipher and the host key policy given here win; the file's key is missing, the one given is used.
    const client = await connect({
      host: 'box',
      sshConfig: config,
      port: box.port,
      username: 'alice',
      privateKeyFiles: [lab.userKeyFile],
      algorithms: { cipher: ['aes256-gcm@openssh.com'] },
      knownHosts: { policy: 'accept-new' },
    });
    assert.equal(client.algorithms?.cipherClientToServer, 'aes256-gcm@openssh.com');
    assert.equal(await run(client, 'whoami'), 'alice\n');
    assert.equal(readFileSync(knownHosts, 'utf8'), `${lab.knownHostsLine(box.port)}\n`, 'accept-new recorded the key in the file\'s UserKnownHostsFile');
    // The file's cipher applies when none is given.
    const second = await connect({ host: 'box', sshConfig: config, port: box.port, username: 'alice', privateKeyFiles: [lab.userKeyFile] });
    assert.equal(second.algorithms?.cipherClientToServer, 'aes128-ctr');
    await second.end();
    // authMethods given here win over PreferredAuthentications: password only, the key never offered.
    const byPassword = await connect({ host: 'box', sshConfig: config, port: box.port, username: 'alice', password: 'secret', authMethods: ['password'] });
    await byPassword.end();
    assert.deepEqual(box.logins.map((l) => l.methods), [['publickey'], ['publickey'], ['password']]);
  });

  test('PasswordAuthentication no and sshConfigOverrides (as ssh -o) are applied', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(box.port)}\n`);
    const config = lab.writeFile(
      'config',
      [
        'Host box',
        '  HostName 127.0.0.1',
        `  Port ${box.port}`,
        '  User alice',
        '  PasswordAuthentication no',
        '  PubkeyAuthentication no',
        '  IdentityAgent none',
        `  UserKnownHostsFile ${knownHosts}`,
        '  StrictHostKeyChecking yes',
        '',
      ].join('\n'),
    );
    // Only a password to offer, and the file forbids it.
    await assert.rejects(connect({ host: 'box', sshConfig: config, password: 'secret' }), /Permission denied/);
    // -o PasswordAuthentication=yes comes before the file, so it wins.
    const client = await connect({ host: 'box', sshConfig: config, password: 'secret', sshConfigOverrides: ['PasswordAuthentication yes'] });
    await client.end();
    assert.deepEqual(box.logins, [{ user: 'alice', methods: ['password'] }]);
  });

  test('IdentityAgent (or SSH_AUTH_SOCK) lends its keys; IdentitiesOnly keeps the agent out', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const agent = await new AgentServer(new InMemoryAgent([{ key: lab.keys.user, comment: 'in the agent' }])).listen(`${lab.dir}/agent.sock`);
    t.after(() => agent.close());
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(box.port)}\n`);
    const lines = (extra: string[]): string =>
      [
        'Host box',
        ...extra,
        '  HostName 127.0.0.1',
        `  Port ${box.port}`,
        '  User alice',
        '  IdentityFile /nonexistent/key',
        '  PasswordAuthentication no',
        '  KbdInteractiveAuthentication no',
        `  UserKnownHostsFile ${knownHosts}`,
        '  StrictHostKeyChecking yes',
        '',
      ].join('\n');
    // The only key is in the agent the file names.
    await (await connect({ host: 'box', sshConfig: lab.writeFile('config.agent', lines([`  IdentityAgent ${agent.path}`])) })).end();
    assert.deepEqual(box.logins, [{ user: 'alice', methods: ['publickey'] }]);
    // IdentitiesOnly: the agent is not asked, and the file key does not exist.
    await assert.rejects(connect({ host: 'box', sshConfig: lab.writeFile('config.only', lines([`  IdentityAgent ${agent.path}`, '  IdentitiesOnly yes'])) }), /Permission denied/);
    // No IdentityAgent line: $SSH_AUTH_SOCK, as for ssh.
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = agent.path;
    t.after(() => (saved === undefined ? delete process.env.SSH_AUTH_SOCK : (process.env.SSH_AUTH_SOCK = saved)));
    await (await connect({ host: 'box', sshConfig: lab.writeFile('config.env', lines([])) })).end();
    assert.equal(box.logins.length, 2);
  });

  test('ServerAliveInterval and ServerAliveCountMax: a server that stops answering is given up on', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    // A relay that can freeze: after the login, nothing from the server gets through any more.
    let frozen = false;
    const sockets: Socket[] = [];
    const relay = createNetServer((socket) => {
      const upstream = netConnect({ host: '127.0.0.1', port: box.port });
      sockets.push(socket, upstream);
      socket.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (!frozen) socket.write(chunk);
      });
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    t.after(() => relay.close());
    const relayPort = (relay.address() as { port: number }).port;
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(relayPort)}\n`);
    const config = lab.writeFile(
      'config',
      ['Host box', '  HostName 127.0.0.1', `  Port ${relayPort}`, '  ServerAliveInterval 1', '  ServerAliveCountMax 2', ...commonLines(lab, knownHosts), ''].join('\n'),
    );
    const client = await connect({ host: 'box', sshConfig: config });
    assert.equal((await client.exec('whoami')).stdout.toString(), 'alice\n');
    let closeError: Error | undefined;
    const closed = new Promise<void>((r) =>
      client.once('close', (error?: Error) => {
        closeError = error;
        r();
      }),
    );
    frozen = true;
    const started = Date.now();
    // Without ServerAliveInterval (the default) the client would wait for TCP forever; with it, it
    // gives up after the interval times (CountMax + 1).
    let limit: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => (limit = setTimeout(() => r(false), 8000)))]);
    clearTimeout(limit);
    const waited = Date.now() - started;
    // The relay's sockets wait for the silent side; end them so the server can close.
    for (const socket of sockets) socket.destroy();
    assert.ok(gaveUp, 'the client noticed the silent server');
    assert.ok(waited >= 1500 && waited < 6000, `gave up after ${waited} ms`);
    // The close says why: a lost connection, not a clean end.
    assert.equal((closeError as { code?: string } | undefined)?.code, 'ERR_SSH_CONNECTION_LOST');
    assert.match(closeError!.message, /keepalives unanswered/);
  });

  test('StrictHostKeyChecking and UserKnownHostsFile from the file: an unknown host is refused and nothing is written', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const empty = lab.writeFile('known_hosts.empty', '');
    const config = lab.writeFile('config', ['Host box', '  HostName 127.0.0.1', `  Port ${box.port}`, ...commonLines(lab, empty), ''].join('\n'));
    await assert.rejects(connect({ host: 'box', sshConfig: config }), (error: unknown) => {
      assert.ok(error instanceof HostKeyError);
      assert.match(error.message, new RegExp(`^no host key is known for \\[127\\.0\\.0\\.1\\]:${box.port} and StrictHostKeyChecking is strict`));
      return true;
    });
    assert.equal(readFileSync(empty, 'utf8'), '');
    assert.equal(box.logins.length, 0);
  });

  test('HostKeyAlias names the known_hosts entry; the other host keys the server proves are learned (UpdateHostKeys)', async (t) => {
    const lab = await configLab(t);
    const ecdsa = await generatePrivateKey('ecdsa-p256');
    const server = createServer({
      hostKeys: [lab.keys.host, ecdsa],
      auth: { publicKeyAllowed: ({ user, key }) => user === 'alice' && key.blob.equals(lab.keys.user.publicKey.blob) },
    });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    const knownHosts = lab.writeFile('known_hosts', `lab-alias ${formatOpenSshPublicKey(lab.keys.host.publicKey)}\n`);
    const config = lab.writeFile(
      'config',
      ['Host box', '  HostName 127.0.0.1', `  Port ${port}`, '  HostKeyAlias lab-alias', '  HostKeyAlgorithms ssh-ed25519', ...commonLines(lab, knownHosts), ''].join('\n'),
    );
    const client = await connect({ host: 'box', sshConfig: config });
    const expected = `lab-alias ${formatOpenSshPublicKey(lab.keys.host.publicKey)}\nlab-alias ${formatOpenSshPublicKey(ecdsa.publicKey)}\n`;
    for (let i = 0; i < 100 && readFileSync(knownHosts, 'utf8') !== expected; i++) await new Promise((r) => setTimeout(r, 20));
    await client.end();
    assert.equal(readFileSync(knownHosts, 'utf8'), expected, 'the ECDSA key was proven and recorded under the alias');
    // updateHostKeys: false turns the learning off.
    const other = lab.writeFile('known_hosts.2', `lab-alias ${formatOpenSshPublicKey(lab.keys.host.publicKey)}\n`);
    const quiet = await connect({ host: 'box', sshConfig: config, knownHosts: { files: [other], updateHostKeys: false } });
    await new Promise((r) => setTimeout(r, 300));
    await quiet.end();
    assert.equal(readFileSync(other, 'utf8'), `lab-alias ${formatOpenSshPublicKey(lab.keys.host.publicKey)}\n`);
  });

  test('a bad config is a ConfigError naming the file and the line', async (t) => {
    const lab = await configLab(t);
    const config = lab.writeFile('config', 'Host box\n  HostName 127.0.0.1\n  Port twenty-two\n');
    await assert.rejects(connect({ host: 'box', sshConfig: config }), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.file, config);
      assert.equal(error.line, 3);
      assert.match(error.message, new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line 3: `));
      return true;
    });
    const unknown = lab.writeFile('config.unknown', 'Host box\n  HostName 127.0.0.1\n\n  NoSuchKeyword yes\n');
    await assert.rejects(connect({ host: 'box', sshConfig: unknown }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(`${error.file}:${error.line}`, `${unknown}:4`);
      assert.match(error.problem, /NoSuchKeyword/);
      return true;
    });
    // A path that does not exist is an error too (only `true`'s files are optional).
    await assert.rejects(connect({ host: 'box', sshConfig: `${lab.dir}/missing` }), (error: unknown) => error instanceof ConfigError && error.file === `${lab.dir}/missing`);
  });
});
