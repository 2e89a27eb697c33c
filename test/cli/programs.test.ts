/**
 * tsshd and tssh as a user runs them: clear messages and non-zero exits for a bad config line, a
 * port in use, an unreadable host key and an unknown host; and tssh driven by an ssh_config with
 * Host patterns, Include and a jump host, against real OpenSSH and against tsshd.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { havePeers, peerPath } from '../helpers/peers.js';
import { createLab, run, startTsshd, TSSHD, type Tsshd } from '../helpers/auth-lab.js';
import { freePort } from '../helpers/openssh.js';
import { fifoBase } from '../../src/cli/sshd/session-pipes.js';
import type { OpenSshFixture, SshdListening } from '../helpers/openssh.js';

const TSSH = resolve('dist/bin/tssh.js');
const NO_DNS = resolve('dist/test/helpers/no-dns.js');
const NODELAY_SPY = resolve('dist/test/helpers/nodelay-spy.js');
const node = process.execPath;

/** Send `payload` through host:port (or a Unix socket, or a SOCKS5 proxy to 127.0.0.1:socksTo) and collect the echo; retried while the forward is being set up. */
async function retryExchange(target: { port?: number; path?: string; socksTo?: number }, payload: Buffer): Promise<Buffer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      return await exchangeOnce(target, payload);
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw lastError;
}

function exchangeOnce(target: { port?: number; path?: string; socksTo?: number }, payload: Buffer): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const socket = target.path ? connect({ path: target.path, allowHalfOpen: true }) : connect({ host: '127.0.0.1', port: target.port!, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let handshake = target.socksTo === undefined ? 0 : 2;
    socket.once('error', reject);
    socket.on('connect', () => {
      if (target.socksTo === undefined) socket.end(payload);
      else socket.write(Buffer.from([5, 1, 0]));
    });
    socket.on('data', (chunk: Buffer) => {
      if (handshake === 2) {
        handshake = 1;
        const request = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
        request.writeUInt16BE(target.socksTo!, 8);
        socket.write(request);
        return;
      }
      if (handshake === 1) {
        if (chunk[1] !== 0) return reject(new Error(`SOCKS refused: ${chunk[1]}`));
        handshake = 0;
        socket.end(payload);
        if (chunk.length > 10) chunks.push(chunk.subarray(10));
        return;
      }
      chunks.push(chunk);
    });
    socket.on('end', () => {
      const data = Buffer.concat(chunks);
      if (data.length === 0) reject(new Error('nothing came back'));
      else resolvePromise(data);
    });
  });
}

describe('tsshd refuses to start, with a message and a non-zero exit', () => {
  let lab: OpenSshFixture;
  before(async () => (lab = await createLab()));
  after(() => lab.cleanup());

  test('a bad config line names the file, the line and the problem', async () => {
    const config = lab.path('bad_sshd_config');
    writeFileSync(config, `Port 2222\nPasswordAuthentication maybe\n`);
    const result = await run(node, [TSSHD, '-f', config, '-t']);
    assert.equal(result.code, 255);
    assert.equal(result.stderr.trim(), `${config} line 2: Bad yes/no argument: maybe`);
  });

  test('an unknown keyword is an error, a keyword sshd knows but tsshd ignores is a warning', async () => {
    const config = lab.path('unknown_sshd_config');
    writeFileSync(config, `UseDNS no\nFrobnicate yes\n`);
    const result = await run(node, [TSSHD, '-f', config, '-t']);
    assert.equal(result.code, 255);
    assert.match(result.stderr, new RegExp(`${config.replace(/[.]/g, '\\.')} line 2: unsupported option "Frobnicate"`));
    const ok = lab.path('ignored_sshd_config');
    writeFileSync(ok, `UseDNS no\nHostKey ${lab.hostKeys.ed25519.privateKey}\n`);
    const checked = await run(node, [TSSHD, '-f', ok, '-t']);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stderr, /line 1: tsshd ignores UseDNS/);
  });

  test('a port already in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const config = lab.path('busy_sshd_config');
      writeFileSync(config, `ListenAddress 127.0.0.1\nHostKey ${lab.hostKeys.ed25519.privateKey}\n`);
      const result = await run(node, [TSSHD, '-f', config, '-p', String(port), '-D', '-e']);
      assert.equal(result.code, 255);
      assert.match(result.stderr, new RegExp(`Bind to port ${port} on 127\\.0\\.0\\.1 failed: Address already in use\\.`));
    } finally {
      blocker.close();
    }
  });

  test('an unreadable host key', async () => {
    const key = lab.path('garbage_host_key');
    writeFileSync(key, 'this is not a key\n', { mode: 0o600 });
    const config = lab.path('garbage_sshd_config');
    writeFileSync(config, `HostKey ${key}\n`);
    const result = await run(node, [TSSHD, '-f', config, '-t']);
    assert.equal(result.code, 255);
    assert.match(result.stderr, new RegExp(`Unable to load host key ${key.replace(/[.]/g, '\\.')}: `));
  });

  test('-T prints the effective configuration, -o and -p winning over the file', async () => {
    const config = lab.path('print_sshd_config');
    writeFileSync(config, `Port 2200\nMaxAuthTries 3\nHostKey ${lab.hostKeys.ed25519.privateKey}\n`);
    const result = await run(node, [TSSHD, '-f', config, '-T', '-p', '2201', '-o', 'MaxAuthTries 5']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^port 2201$/m);
    assert.match(result.stdout, /^maxauthtries 5$/m);
  });
});

describe('tsshd modes', () => {
  let lab: OpenSshFixture;
  before(async () => (lab = await createLab()));
  after(() => lab.cleanup());

  test('-i serves one connection on stdin/stdout (inetd mode), as ssh\'s ProxyCommand', async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
    const config = lab.path('inetd_sshd_config');
    writeFileSync(
      config,
      [`HostKey ${lab.hostKeys.ed25519.privateKey}`, `AuthorizedKeysFile ${lab.authorizedKeys}`, 'StrictModes no', 'SetEnv SHLVL=1', ''].join('\n'),
    );
    // One connection long, it starts commands itself: no spawn helper (a Perl start) for one command.
    const result = await lab.runSsh(['tsshd-inetd', 'echo inetd works; sleep 0.3; cat /proc/$PPID/comm'], {
      proxyCommand: `${node} ${TSSHD} -i -f ${config}`,
    });
    assert.equal(result.code, 0, result.stderr);
    const [first, parent] = result.stdout.split('\n');
    assert.equal(first, 'inetd works');
    assert.notEqual(parent, 'tsshd-spawner');
  });

  test("a session's output arrives whole and in order, with its errors through a real pipe that the command can open by name, or through a socket when no FIFO can be made", async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
    // 3 MiB on stdout interleaved with stderr, then a status: checked byte for byte.
    const command = 'i=0; while [ $i -lt 3 ]; do head -c 1048576 /dev/zero | tr "\\0" "$i"; echo "chunk $i" >&2; i=$((i+1)); done; exit 5';
    const expected = ['0', '1', '2'].map((digit) => digit.repeat(1048576)).join('');
    // What sshd allows: reporting an error by opening standard error by name, as scripts do.
    const byName = 'echo err > /dev/stderr && test -p /dev/stderr && echo pipe';
    for (const tmp of [undefined, '/nonexistent/tsshd-tmp']) {
      // TMPDIR is where tsshd makes its FIFOs; one that cannot exist leaves it Node's sockets.
      const saved = process.env.TMPDIR;
      if (tmp) process.env.TMPDIR = tmp;
      let tsshd: Tsshd;
      try {
        tsshd = await startTsshd(lab, []);
      } finally {
        if (saved === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = saved;
      }
      try {
        if (!tmp) {
          // The first FIFOs are made in the background as tsshd starts; sessions before that get
          // sockets. Ask until a session has a pipe (once they exist, every session does).
          let named = await lab.runSsh(['127.0.0.1', byName], { port: tsshd.port });
          for (let i = 0; i < 40 && named.stdout !== 'pipe\n'; i++) {
            await new Promise((r) => setTimeout(r, 50));
            named = await lab.runSsh(['127.0.0.1', byName], { port: tsshd.port });
          }
          assert.equal(named.code, 0, named.stderr);
          assert.equal(named.stdout, 'pipe\n');
          assert.match(named.stderr, /^err$/m);
          assert.ok(readdirSync(fifoBase()).some((name) => name.startsWith(`tsshd-pipes-${tsshd.pid}-`)), `the FIFO folder is in ${fifoBase()}`);
        }
        const result = await lab.runSsh(['127.0.0.1', command], { port: tsshd.port });
        assert.equal(result.code, 5, `${tmp ?? 'pipes'}: ${result.stderr}`);
        assert.ok(result.stdout === expected, `${tmp ?? 'pipes'}: stdout intact (${result.stdout.length} bytes)`);
        assert.match(result.stderr, /chunk 0\nchunk 1\nchunk 2\n/);
      } finally {
        await tsshd.stop();
      }
      if (!tmp) {
        assert.ok(!readdirSync(fifoBase()).some((name) => name.startsWith(`tsshd-pipes-${tsshd.pid}-`)), 'the FIFO folder is gone with tsshd');
      }
    }
  });

  test('the FIFOs are made in memory (/dev/shm when it is a tmpfs) unless TMPDIR says where', () => {
    let shmIsTmpfs = false;
    try {
      shmIsTmpfs = statfsSync('/dev/shm').type === 0x01021994;
    } catch {
      // No /dev/shm: the system's temporary folder is the only choice.
    }
    const saved = process.env.TMPDIR;
    try {
      delete process.env.TMPDIR;
      assert.equal(fifoBase(), shmIsTmpfs ? '/dev/shm' : tmpdir());
      process.env.TMPDIR = '/nonexistent/tsshd-tmp';
      assert.equal(fifoBase(), '/nonexistent/tsshd-tmp');
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  test('SIGHUP re-reads the configuration for new connections', async (t) => {
    if (!havePeers(t, 'ssh', 'ssh-keygen')) return;
    const tsshd = await startTsshd(lab, []);
    try {
      const before = await lab.runSsh(['127.0.0.1', 'echo as asked'], { port: tsshd.port });
      assert.equal(before.stdout, 'as asked\n');
      // The first value wins: a ForceCommand put first takes effect after the reload.
      const original = readFileSync(tsshd.config, 'utf8');
      writeFileSync(tsshd.config, `ForceCommand echo forced by the new config\n${original}`);
      const since = tsshd.log().length;
      process.kill(tsshd.pid, 'SIGHUP');
      await tsshd.waitForLog(/configuration reloaded/, since);
      const after = await lab.runSsh(['127.0.0.1', 'echo as asked'], { port: tsshd.port });
      assert.equal(after.stdout, 'forced by the new config\n');
    } finally {
      await tsshd.stop();
    }
  });
});

describe('tssh as ssh is used', () => {
  let lab: OpenSshFixture;
  let sshd: SshdListening | undefined;
  let tsshd: Tsshd | undefined;
  let configDir: string;

  before(async () => {
    lab = await createLab();
    configDir = lab.path('dotssh');
    mkdirSync(configDir, { recursive: true });
  });
  after(async () => {
    await tsshd?.stop();
    await lab.cleanup();
  });

  async function startPeers(): Promise<void> {
    sshd ??= await lab.spawnSshdListening(lab.sshdConfig({ extra: ['SetEnv SHLVL=1'] }));
    // With the spy (nodelay-spy.ts) that logs which sockets get TCP_NODELAY; it changes nothing else.
    tsshd ??= await startTsshd(lab, [], [], [], { nodeArgs: ['--import', NODELAY_SPY], env: { TSSH_NODELAY_LOG: lab.path('tsshd-nodelay.log') } });
  }

  function writeConfig(): string {
    // Host patterns with wildcards and negation, and an Include that defines more hosts.
    const included = join(configDir, 'hosts.d');
    mkdirSync(included, { recursive: true });
    writeFileSync(
      join(included, 'lab.conf'),
      `Host tsshd-box\n  HostName 127.0.0.1\n  Port ${tsshd!.port}\n`,
    );
    const config = join(configDir, 'config');
    writeFileSync(
      config,
      [
        `Include ${included}/*.conf`,
        `Host sshd-* !sshd-excluded`,
        `  HostName 127.0.0.1`,
        `  Port ${sshd!.port}`,
        `Host *`,
        `  User ${lab.user}`,
        `  IdentityFile ${lab.userKey.privateKey}`,
        `  IdentitiesOnly yes`,
        `  IdentityAgent none`,
        `  UserKnownHostsFile ${lab.path('tssh_known_hosts')}`,
        `  StrictHostKeyChecking accept-new`,
        `  BatchMode yes`,
        '',
      ].join('\n'),
    );
    return config;
  }

  test('exec through a config file with Host patterns and Include, stdout, stderr and exit code passed through', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const config = writeConfig();
    const toSshd = await run(node, [TSSH, '-F', config, 'sshd-main', 'echo out; echo err >&2; exit 3']);
    assert.equal(toSshd.code, 3, toSshd.stderr);
    assert.equal(toSshd.stdout, 'out\n');
    assert.match(toSshd.stderr, /^err$/m);
    const toTsshd = await run(node, [TSSH, '-F', config, 'tsshd-box', 'echo from-tsshd']);
    assert.equal(toTsshd.code, 0, toTsshd.stderr);
    assert.equal(toTsshd.stdout, 'from-tsshd\n');
    // The negated pattern does not match: no HostName, so the name itself is used, and fails.
    const excluded = await run(node, ['--import', NO_DNS, TSSH, '-F', config, 'sshd-excluded', 'true']);
    assert.equal(excluded.code, 255);
    assert.match(excluded.stderr, /Could not resolve hostname sshd-excluded/);
  });

  test('stdin passes through byte-exact from a pipe, a socket and a file; a command that stops reading early ends tssh with its status', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const config = writeConfig();
    const data = randomBytes(20 * 1024 * 1024 + 12345);
    const digest = createHash('sha256').update(data).digest('hex');
    const file = lab.path('upload.bin');
    writeFileSync(file, data);
    /** tssh with `stdin` as its standard input; resolves with its exit code and output. */
    const tssh = (host: string, command: string, stdin: 'pipe' | 'socket' | 'file'): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolveRun, reject) => {
        const fd = stdin === 'file' ? openSync(file, 'r') : undefined;
        const child = spawn(node, [TSSH, '-F', config, host, command], {
          // 'pipe' gives the child a socket pair; a shell pipeline gives it a real pipe (FIFO).
          stdio: [fd ?? 'pipe', 'pipe', 'pipe'],
        });
        if (fd !== undefined) closeSync(fd);
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout!.on('data', (c: Buffer) => out.push(c));
        child.stderr!.on('data', (c: Buffer) => err.push(c));
        child.on('error', reject);
        child.on('close', (code) => resolveRun({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
        if (stdin === 'socket') {
          child.stdin!.on('error', () => undefined);
          child.stdin!.end(data);
        }
      });
    const throughFifo = (host: string, command: string): ReturnType<typeof run> =>
      run('/bin/sh', ['-c', `cat "$0" | "$1" "$2" -F "$3" "$4" "$5"`, file, node, TSSH, config, host, command], { timeoutMs: 60_000 });
    for (const host of ['sshd-main', 'tsshd-box']) {
      for (const stdin of ['socket', 'file'] as const) {
        const r = await tssh(host, 'sha256sum', stdin);
        assert.equal(r.code, 0, `${host} ${stdin}: ${r.stderr}`);
        assert.equal(r.stdout.split(' ')[0], digest, `${host}, stdin from a ${stdin}`);
      }
      const fifo = await throughFifo(host, 'sha256sum');
      assert.equal(fifo.code, 0, fifo.stderr);
      assert.equal(fifo.stdout.split(' ')[0], digest, `${host}, stdin from a pipe`);
      // The remote command reads 100 bytes and exits 7 while 20 MiB are still coming.
      const early = await tssh(host, 'head -c 100 > /dev/null; exit 7', 'socket');
      assert.equal(early.code, 7, early.stderr);
    }
  });

  test('stdout to a file gets the output byte-exact; a full device is an error with exit 255', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const config = writeConfig();
    const source = lab.path('download-source.bin');
    writeFileSync(source, randomBytes(24 * 1024 * 1024 + 777));
    for (const host of ['sshd-main', 'tsshd-box']) {
      const out = lab.path(`download-${host}.bin`);
      const outFd = openSync(out, 'w');
      const child = spawn(node, [TSSH, '-F', config, host, `cat ${source}`], { stdio: ['ignore', outFd, 'pipe'] });
      closeSync(outFd);
      const err: Buffer[] = [];
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      const code = await new Promise((r) => child.once('close', r));
      assert.equal(code, 0, `${host}: ${Buffer.concat(err).toString()}`);
      assert.ok(readFileSync(out).equals(readFileSync(source)), `${host}: the file holds what the command sent`);
    }
    // /dev/full: every write fails with ENOSPC.
    const full = spawn(node, [TSSH, '-F', config, 'tsshd-box', 'head -c 100000 /dev/zero'], { stdio: ['ignore', openSync('/dev/full', 'w'), 'pipe'] });
    const err: Buffer[] = [];
    full.stderr!.on('data', (c: Buffer) => err.push(c));
    const fullCode = await new Promise((r) => full.once('close', r));
    assert.equal(fullCode, 255);
    assert.match(Buffer.concat(err).toString(), /cannot write to standard output: .*ENOSPC/);
  });

  test('-G prints the resolved configuration', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const result = await run(node, [TSSH, '-F', writeConfig(), '-G', 'tsshd-box']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^hostname 127\.0\.0\.1$/m);
    assert.match(result.stdout, new RegExp(`^port ${tsshd!.port}$`, 'm'));
  });

  test('a jump host: tssh -J through OpenSSH to tsshd, and ssh -J through tsshd to sshd', async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const config = writeConfig();
    const viaSshd = await run(node, [TSSH, '-F', config, '-J', 'sshd-jump', 'tsshd-box', 'echo jumped']);
    assert.equal(viaSshd.code, 0, viaSshd.stderr);
    assert.equal(viaSshd.stdout, 'jumped\n');
    // OpenSSH's ssh reads the same config file: the jump host is tsshd.
    const viaTsshd = await run(peerPath('ssh'), ['-F', config, '-J', 'tsshd-box', 'sshd-main', 'echo through-tsshd']);
    assert.equal(viaTsshd.code, 0, viaTsshd.stderr);
    assert.equal(viaTsshd.stdout, 'through-tsshd\n');
  });

  test('tssh -N with -L, -R, -D and Unix-socket -R and -L carries real traffic, byte-exact, through sshd and tsshd; TCP_NODELAY on the forwarded TCP ports, as OpenSSH', async (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    await startPeers();
    const config = writeConfig();
    const echo = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const echoPort = (echo.address() as { port: number }).port;
    const unixTarget = lab.path('echo.sock');
    const unixEcho = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((r) => unixEcho.listen(unixTarget, () => r()));
    t.after(() => {
      echo.close();
      unixEcho.close();
    });
    const payload = Buffer.alloc(256 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + (i >> 9)) & 0xff;
    for (const host of ['sshd-main', 'tsshd-box']) {
      const [l, r, d] = [await freePort(), await freePort(), await freePort()];
      const remoteSocket = lab.path(`remote-${host}.sock`);
      const localSocket = lab.path(`local-${host}.sock`);
      const nodelayLog = lab.path(`tssh-nodelay-${host}.log`);
      const child = spawn(node, [
        '--import', NODELAY_SPY,
        TSSH, '-F', config, '-N',
        '-L', `${l}:127.0.0.1:${echoPort}`,
        '-R', `${r}:127.0.0.1:${echoPort}`,
        '-D', String(d),
        '-R', `${remoteSocket}:${unixTarget}`,
        '-L', `${localSocket}:${unixTarget}`,
        host,
      ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TSSH_NODELAY_LOG: nodelayLog } });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      try {
        const viaL = await retryExchange({ port: l }, payload);
        assert.ok(viaL.equals(payload), `${host} -L: ${stderr}`);
        const viaR = await retryExchange({ port: r }, payload);
        assert.ok(viaR.equals(payload), `${host} -R: ${stderr}`);
        const viaUnix = await retryExchange({ path: remoteSocket }, payload);
        assert.ok(viaUnix.equals(payload), `${host} -R unix: ${stderr}`);
        const viaLocalUnix = await retryExchange({ path: localSocket }, payload);
        assert.ok(viaLocalUnix.equals(payload), `${host} -L unix: ${stderr}`);
        const viaSocks = await retryExchange({ port: d, socksTo: echoPort }, payload);
        assert.ok(viaSocks.equals(payload), `${host} -D: ${stderr}`);
        // Connections accepted on the -L port (tssh) and on the -R port (tsshd) had Nagle turned off.
        const localPorts = (file: string): string[] => readFileSync(file, 'utf8').split('\n').map((line) => line.split(' ')[0]!);
        assert.ok(localPorts(nodelayLog).includes(String(l)), `tssh -L port ${l}: ${localPorts(nodelayLog).join(',')}`);
        assert.ok(localPorts(nodelayLog).includes(String(d)), `tssh -D port ${d}`);
        if (host === 'tsshd-box') assert.ok(localPorts(lab.path('tsshd-nodelay.log')).includes(String(r)), `tsshd -R port ${r}`);
      } finally {
        child.kill('SIGTERM');
      }
    }
  });

  test('an unknown host: a clear message and exit 255', async () => {
    const result = await run(node, ['--import', NO_DNS, TSSH, '-F', '/dev/null', 'nosuchhost.invalid', 'true']);
    assert.equal(result.code, 255);
    assert.equal(result.stderr.trim(), 'tssh: Could not resolve hostname nosuchhost.invalid: Name or service not known');
  });

  test('a refused connection: a clear message and exit 255', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    blocker.close();
    const result = await run(node, [TSSH, '-F', '/dev/null', '-p', String(port), '127.0.0.1', 'true']);
    assert.equal(result.code, 255);
    assert.equal(result.stderr.trim(), `tssh: connect to host 127.0.0.1 port ${port}: Connection refused`);
  });
});
