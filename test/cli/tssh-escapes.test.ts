/**
 * tssh's escape sequences in a real terminal (tmux), against OpenSSH's sshd: `~C` opens the
 * `ssh>` command line (with EnableEscapeCommandline yes, OpenSSH's default being no since 9.2),
 * where -L, -R and -D add forwardings on the live connection and -KL, -KR, -KD cancel them; the
 * test carries real traffic through each forwarding and sees it refused once cancelled. Also `?`
 * in the command line, a bad command and a bad specification, `~#` listing a connection open
 * through a forwarding, `~?` listing `~C`, and `~C` refused without EnableEscapeCommandline.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, openSshFixture, shellQuote, type OpenSshFixture } from '../helpers/openssh.js';
import { havePeers } from '../helpers/peers.js';
import { TmuxPane } from '../helpers/tmux.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TSSH = join(REPO_ROOT, 'dist', 'bin', 'tssh.js');

/** The tmux pane tssh runs in, with what the escape tests type there. */
class EscapeTerminal extends TmuxPane {
  private marks = 0;

  constructor(dir: string) {
    super(dir, 'esc');
  }

  /** Types until `pattern` shows, for a state that arrives asynchronously (the remote shell being ready). */
  async typeUntilShown(text: string, pattern: RegExp, what: string): Promise<void> {
    await this.typeUntil(text, pattern, what, { retryMs: 2000, timeoutMs: 30_000 });
  }

  /**
   * A fresh line with the remote shell quiet: a command whose output and the prompt after it
   * have arrived, so that nothing the shell prints lands in the middle of what tssh prints next.
   */
  async settle(): Promise<number> {
    const n = ++this.marks;
    const since = (await this.screen()).length;
    await this.type(`echo mark-$((${n}*1000))`);
    await this.waitFor(new RegExp(`^mark-${n * 1000}\\s*\\n.*[#$]$`, 'm'), 'the shell prompt', { since });
    return (await this.screen()).length;
  }

  /** `~C`, then `line` at the `ssh>` prompt; resolves with the screen text after the prompt once `answer` shows. */
  async command(line: string, answer: RegExp): Promise<string> {
    const since = await this.settle();
    await this.keys('~C');
    await this.waitFor(/^ssh>\s*$/m, 'the ssh> prompt', { since });
    await this.type(line);
    const match = await this.waitFor(new RegExp(`ssh> ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*\\n([\\s\\S]*?${answer.source})`), `the answer to ${line}`, { since });
    return match[1]!;
  }
}

/** An echo server: what a connection sends comes back, prefixed with "echo:". */
async function echoServer(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.write('echo:');
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    server.close();
    for (const socket of sockets) socket.destroy();
  });
  return (server.address() as { port: number }).port;
}

function exchange(port: number, payload: string, socks?: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let data = Buffer.alloc(0);
    let stage = socks === undefined ? 0 : 2;
    socket.once('error', reject);
    socket.on('connect', () => {
      if (stage === 0) socket.end(payload);
      else socket.write(Buffer.from([5, 1, 0]));
    });
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (stage === 2 && data.length >= 2) {
        data = data.subarray(2);
        stage = 1;
        const request = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
        request.writeUInt16BE(socks!, 8);
        socket.write(request);
      }
      if (stage === 1 && data.length >= 10) {
        if (data[1] !== 0) return reject(new Error(`SOCKS refused: ${data[1]}`));
        data = data.subarray(10);
        stage = 0;
        socket.end(payload);
      }
    });
    socket.on('end', () => resolvePromise(data.toString('utf8')));
  });
}

/** Retried while a forwarding is being set up. */
async function exchangeSoon(port: number, payload: string, socks?: number): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      return await exchange(port, payload, socks);
    } catch (error) {
      last = error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}

async function refused(port: number): Promise<boolean> {
  return exchange(port, 'x').then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
  );
}

function tsshArgs(lab: OpenSshFixture, port: number, extra: readonly string[]): string {
  return [process.execPath, TSSH, ...lab.clientOptions(port), '-l', lab.user, ...extra, '-tt', '127.0.0.1'].map(shellQuote).join(' ');
}

async function startClient(lab: OpenSshFixture, tmux: EscapeTerminal, port: number, extra: readonly string[]): Promise<void> {
  const script = lab.path(`escapes-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(script, `#!/bin/sh\n${tsshArgs(lab, port, extra)}\necho EXIT=$?\n`);
  chmodSync(script, 0o755);
  await tmux.start(script, 160, 50);
  await tmux.typeUntilShown('echo ready-$((40+2))', /^ready-42\s*$/m, 'the remote shell answering');
}

describe('tssh escape sequences, in tmux against OpenSSH sshd', () => {
  test('~C: -L, -R, -D add forwardings that carry traffic, -KL, -KR, -KD cancel them; ~#, ~?, help and errors', { timeout: 180_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    const lab = await openSshFixture(t);
    const sshd = await lab.spawnSshdListening(lab.sshdConfig());
    t.after(() => sshd.stop());
    const echo = await echoServer(t);
    const tmux = new EscapeTerminal(lab.dir);
    try {
    await startClient(lab, tmux, sshd.port, ['-o', 'EnableEscapeCommandline=yes']);

    const help = await tmux.command('?', /-KD\[bind_address:\]port.*cancel a dynamic forwarding/);
    assert.match(help, /^Commands:/m);
    assert.match(help, /-L\[bind_address:\]port:host:hostport/);
    assert.match(help, /-KR\[bind_address:\]port/);
    assert.match(await tmux.command('-X 1', /Invalid command\./), /Invalid command\./);
    assert.match(await tmux.command('-L nonsense', /Bad local forwarding specification\./), /Bad local/);

    const local = await freePort();
    assert.match(await tmux.command(`-L ${local}:127.0.0.1:${echo}`, /Forwarding port\./), /Forwarding port\./);
    assert.equal(await exchangeSoon(local, 'through -L'), 'echo:through -L');

    // ~# while a connection through -L is open.
    const held = connect({ host: '127.0.0.1', port: local });
    await new Promise<void>((r) => held.once('data', () => r()));
    const since = await tmux.settle();
    await tmux.keys('~#');
    await tmux.waitFor(new RegExp(`The following connections are open:\\s*\\n\\s+#\\d+ direct-tcpip: listening on 127\\.0\\.0\\.1:${local} for 127\\.0\\.0\\.1:${echo}`), '~# listing the -L connection', { since });
    held.destroy();

    assert.match(await tmux.command(`-KL ${local}`, /Canceled forwarding\./), /Canceled/);
    assert.equal(await refused(local), true, 'the -L port is closed once cancelled');
    assert.match(await tmux.command(`-KL ${local}`, /Unknown port forwarding\./), /Unknown/);

    const remoteAnswer = await tmux.command(`-R 0:127.0.0.1:${echo}`, /Forwarding port\./);
    const allocated = Number(/Allocated port (\d+) for remote forward to 127\.0\.0\.1:\d+/.exec(remoteAnswer)?.[1]);
    assert.ok(allocated > 0, remoteAnswer);
    // sshd listens on this same machine: the test connects to it directly.
    assert.equal(await exchangeSoon(allocated, 'through -R'), 'echo:through -R');
    assert.match(await tmux.command(`-KR ${allocated}`, /Canceled forwarding\./), /Canceled/);
    assert.equal(await refused(allocated), true, 'sshd stopped listening once -KR went through');

    // Line editing at the prompt: a wrong last digit erased with Backspace before Enter.
    const socks = await freePort();
    const promptAt = await tmux.settle();
    await tmux.keys('~C');
    await tmux.waitFor(/^ssh>\s*$/m, 'the ssh> prompt', { since: promptAt });
    await tmux.keys(`-D ${socks}7`);
    await tmux.press('BSpace', 'Enter');
    await tmux.waitFor(/Forwarding port\./, 'the -D answer', { since: promptAt });
    assert.equal(await exchangeSoon(socks, 'through -D', echo), 'echo:through -D');
    assert.match(await tmux.command(`-KD ${socks}`, /Canceled forwarding\./), /Canceled/);
    assert.equal(await refused(socks), true);

    // ^C at the prompt abandons the command line, and tssh and the session carry on.
    const interruptAt = await tmux.settle();
    await tmux.keys('~C');
    await tmux.waitFor(/^ssh>\s*$/m, 'the ssh> prompt', { since: interruptAt });
    await tmux.keys('-L 1:2');
    await tmux.press('C-c');
    await tmux.typeUntilShown('echo after-$((3*3))', /^after-9\s*$/m, 'the session after ^C at the prompt');

    // ~? lists ~C when it is enabled; the session goes on to its end.
    const before = await tmux.settle();
    await tmux.keys('~?');
    await tmux.waitFor(/~C\s+- open a command line[\s\S]*~#\s+- list forwarded connections/, '~? help', { since: before });
    await tmux.type('exit 3');
    await tmux.waitFor(/^EXIT=3\s*$/m, 'tssh exiting with the remote status');
    } finally {
      // Before the fixture's folder (and the tmux socket in it) goes away.
      await tmux.stop();
    }
  });

  test('without EnableEscapeCommandline, ~C says the command line is disabled and ~? leaves it out', { timeout: 90_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    const lab = await openSshFixture(t);
    const sshd = await lab.spawnSshdListening(lab.sshdConfig());
    t.after(() => sshd.stop());
    const tmux = new EscapeTerminal(lab.dir);
    try {
    await startClient(lab, tmux, sshd.port, []);
    await tmux.settle();
    await tmux.keys('~C');
    await tmux.waitFor(/commandline disabled/, 'the refusal');
    const since = await tmux.settle();
    await tmux.keys('~?');
    const shown = await tmux.waitFor(/Supported escape sequences:[\s\S]*escapes are only recognized/, '~? help', { since });
    assert.doesNotMatch(shown[0], /~C/);
    await tmux.type('exit 0');
    await tmux.waitFor(/^EXIT=0\s*$/m, 'tssh exiting');
    } finally {
      await tmux.stop();
    }
  });
});
