/**
 * Terminal sessions, end to end with real terminals: OpenSSH's ssh and our tssh, each run inside
 * tmux (a real terminal the test can type into and read), against tsshd (node-pty) and against
 * OpenSSH's sshd. The remote shell must see the TERM, a /dev/pts device, the window size and its
 * changes, the client's terminal modes, a login shell, SSH_TTY; C-c must interrupt a command;
 * `exit 3` must become the client's exit status. Also: output flow control with a slow reader loses
 * nothing (not even what a command wrote just before it exited), the shell of another user runs
 * without root's groups on a terminal that user owns, PermitTTY no / no-pty refuse as sshd does.
 * Without node-pty (simulated with tsshd's test hook TSSH_DISABLE_NODE_PTY=1) ssh is told
 * `PTY allocation request failed` and tsshd logs why; ssh without -t carries on without a terminal
 * (with -tt OpenSSH's ssh gives up on the session, exit 255, against sshd just the same).
 *
 * Every wait polls the screen (tmux capture-pane) or a log until the expected text appears, with a
 * time limit; tmux runs on its own socket in the test's folder and is stopped through it.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSshFixture, shellQuote, type OpenSshFixture } from '../helpers/openssh.js';
import { haveNodePty, havePeers, peerPath } from '../helpers/peers.js';
import { TmuxPane } from '../helpers/tmux.js';
import { canMakeSystemUsers, createSystemUser, run, startTsshd, waitForText } from '../helpers/auth-lab.js';
import { sttyArguments } from '../../src/cli/sshd/pty.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TSSH = join(REPO_ROOT, 'dist', 'bin', 'tssh.js');

interface FlowOptions {
  /** The client's argv, to run as `argv -tt 127.0.0.1` inside tmux. */
  readonly client: readonly string[];
  /** The client sends its terminal modes (OpenSSH and tssh do). */
  readonly checkModes: boolean;
  /**
   * The server starts the shell with argv[0] `-NAME`: sshd always; tsshd when /bin/bash exists
   * (otherwise it passes `-l`, and $0 has no dash).
   */
  readonly loginArgv0: boolean;
}

/**
 * The interactive flow: a client in a 100x30 tmux window logs in with -tt; the remote shell reports
 * TERM, its tty, `stty size`; the window grows to 120x40; `sleep 100` is interrupted by C-c; then
 * `exit 3` is the client's exit status.
 */
async function interactiveFlow(lab: OpenSshFixture, port: number, options: FlowOptions): Promise<void> {
  const tmux = new TmuxPane(lab.dir, 'pty');
  const script = lab.path(`client-${port}.sh`);
  // `stty kill ^X` on the client's terminal: a mode that differs from every default, to see it arrive.
  const command = [...options.client, ...lab.clientOptions(port), '-l', lab.user, '-tt', '127.0.0.1'].map(shellQuote).join(' ');
  writeFileSync(script, `#!/bin/sh\nstty kill '^X'\nTERM=xterm-256color ${command}\necho EXIT=$?\n`);
  chmodSync(script, 0o755);
  try {
    await tmux.start(script, 100, 30);
    // Arithmetic in the commands: the typed text never matches what the shell prints.
    await tmux.typeUntil('echo ready-$((40+2))', /^ready-42\s*$/m, 'the remote shell answering', { retryMs: 2000, timeoutMs: 30_000 });

    await tmux.type('echo "T=$TERM"; tty; stty size');
    await tmux.waitFor(/^T=xterm-256color\s*$/m, 'TERM from the pty request');
    await tmux.waitFor(/^\/dev\/pts\/\d+\s*$/m, 'a /dev/pts terminal');
    await tmux.waitFor(/^30 100\s*$/m, 'the window size (30 rows, 100 columns)');
    if (options.loginArgv0) {
      await tmux.type('echo "Z=$0" $((2+2))');
      await tmux.waitFor(/^Z=-\S+ 4\s*$/m, 'a login shell (argv[0] starting with -)');
    }
    await tmux.type('echo "S=${SSH_TTY:-none}" $((1+2))');
    const ssh = await tmux.waitFor(/^S=(\S+) 3\s*$/m, 'SSH_TTY');
    if (options.checkModes) {
      await tmux.type("stty -a | tr ';' '\\n' | grep -E '^ *kill ='");
      await tmux.waitFor(/^ *kill = \^X\s*$/m, "the client's kill character (^X)");
    }
    const tty = (await tmux.waitFor(/^(\/dev\/pts\/\d+)\s*$/m, 'the tty')).at(1);
    assert.equal(ssh[1], tty, 'SSH_TTY names the session\'s terminal');

    await tmux.run('resize-window', '-t', tmux.name, '-x', '120', '-y', '40');
    await tmux.typeUntil('stty size', /^40 120\s*$/m, 'the new window size (40 rows, 120 columns)');

    await tmux.type('echo sleeping-$((5*2)); sleep 100');
    await tmux.waitFor(/^sleeping-10\s*$/m, 'the sleep starting');
    await tmux.press('C-c');
    await tmux.type('echo back-$((6*7))');
    await tmux.waitFor(/^back-42\s*$/m, 'the shell back after C-c');

    await tmux.type('exit 3');
    await tmux.waitFor(/^EXIT=3\s*$/m, 'the client exiting with status 3');
  } finally {
    await tmux.stop();
  }
}

describe('PTY sessions', () => {
  test('stty arguments from a pty request\'s terminal modes', () => {
    assert.deepEqual(sttyArguments({ VINTR: 3, VEOL: 255, VERASE: 127, ECHO: 1, ICANON: 0, CS7: 0, CS8: 1, TTY_OP_ISPEED: 38400, TTY_OP_OSPEED: 12345 }), [
      'intr', '0x03', 'erase', '0x7f', 'eol', 'undef', '-icanon', 'echo', 'cs8', 'ispeed', '38400',
    ]);
    assert.deepEqual(sttyArguments({}), []);
  });

  test('ssh -tt to tsshd in tmux: TERM, tty, size, resize, modes, C-c, exit status', { timeout: 120_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    if (!(await haveNodePty(t))) return;
    const lab = await openSshFixture(t);
    const tsshd = await startTsshd(lab, []);
    t.after(() => tsshd.stop());
    await interactiveFlow(lab, tsshd.port, { client: [peerPath('ssh')], checkModes: true, loginArgv0: existsSync('/bin/bash') });
    assert.doesNotMatch(tsshd.log(), /PTY allocation refused/);
  });

  test('ssh -tt COMMAND to tsshd runs it in a terminal and returns its status', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    if (!(await haveNodePty(t))) return;
    const lab = await openSshFixture(t);
    const tsshd = await startTsshd(lab, []);
    t.after(() => tsshd.stop());
    const r = await lab.runSsh(['-tt', '-p', String(tsshd.port), '127.0.0.1', 'tty; echo "T=$TERM"; exit 5'], { env: { TERM: 'vt100' } });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stdout, /^\/dev\/pts\/\d+\r$/m);
    assert.match(r.stdout, /^T=vt100\r$/m);
  });

  // The reader stops for 2 s at the start, so ssh stops reading, the channel window fills and
  // tsshd pauses the pty. With 1,000,000 bytes the command then finishes while tsshd is paused, its
  // last output still in the terminal; with 3,000,000 it blocks until the reader comes back.
  for (const size of [1_000_000, 3_000_000]) {
    test(`output flow control: a slow reader gets all ${size} bytes (base64), also what came just before the exit`, { timeout: 120_000 }, async (t) => {
      if (!havePeers(t, 'ssh', 'sshd')) return;
      if (!(await haveNodePty(t))) return;
      const lab = await openSshFixture(t);
      const tsshd = await startTsshd(lab, []);
      t.after(() => tsshd.stop());
      const chars = Math.ceil(size / 3) * 4;
      const expectedLines = Math.ceil(chars / 100);
      const args = [...lab.clientOptions(tsshd.port), '-l', lab.user, '-o', 'LogLevel=ERROR', '-tt', '127.0.0.1', `head -c ${size} /dev/zero | base64 -w 100; exit 7`];
      const child = spawn(peerPath('ssh'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      });
      let bytes = 0;
      let lines = 0;
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.pause();
      const done = new Promise<number | null>((resolveExit) => child.once('close', (code) => resolveExit(code)));
      await new Promise((r) => setTimeout(r, 2000));
      child.stdout.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        for (const byte of chunk) if (byte === 0x0a) lines++;
      });
      child.stdout.resume();
      const code = await done;
      assert.equal(code, 7, stderr);
      // Every line ends CR LF on a terminal (ONLCR).
      assert.equal(lines, expectedLines, stderr);
      assert.equal(bytes, chars + 2 * expectedLines, stderr);
    });
  }

  test('tssh -tt to OpenSSH sshd in tmux: raw mode, resize forwarding, C-c, exit status', { timeout: 120_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    const lab = await openSshFixture(t);
    const sshd = await lab.spawnSshdListening(lab.sshdConfig());
    t.after(() => sshd.stop());
    await interactiveFlow(lab, sshd.port, { client: [process.execPath, TSSH], checkModes: true, loginArgv0: true });
  });

  test('tssh -tt to tsshd in tmux: the same flow, both ends ours', { timeout: 120_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    if (!(await haveNodePty(t))) return;
    const lab = await openSshFixture(t);
    const tsshd = await startTsshd(lab, []);
    t.after(() => tsshd.stop());
    await interactiveFlow(lab, tsshd.port, { client: [process.execPath, TSSH], checkModes: true, loginArgv0: existsSync('/bin/bash') });
  });

  test('as another user (tsshd as root): setpriv drops root\'s groups, the terminal is the user\'s', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    if (!(await haveNodePty(t))) return;
    if (!canMakeSystemUsers(t)) return;
    const lab = await openSshFixture(t);
    const user = await createSystemUser(randomBytes(9).toString('base64url'));
    t.after(() => user.remove());
    const tsshd = await startTsshd(lab, []);
    t.after(() => tsshd.stop());
    const command = 'id -u; echo "G=$(id -G)"; stat -c "%U %G %a" "$(tty)"; echo "S=$SSH_TTY T=$(tty)"; pwd';
    const r = await lab.runSsh(['-tt', '-p', String(tsshd.port), '127.0.0.1', command], { user: user.name });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\r\n');
    const uid = (await run('id', ['-u', user.name])).stdout.trim();
    assert.equal(lines[0], uid);
    assert.doesNotMatch(lines[1] ?? '', /\b0\b/, "root's group is gone");
    assert.match(lines[2] ?? '', new RegExp(`^${user.name} tty 620$`));
    assert.match(lines[3] ?? '', /^S=(\/dev\/pts\/\d+) T=\1$/);
    assert.equal(lines[4], `/home/${user.name}`);
  });

  test('PermitTTY no and an authorized_keys no-pty refuse the terminal, as sshd does', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd')) return;
    if (!(await haveNodePty(t))) return;
    const lab = await openSshFixture(t);
    const restricted = await lab.makeKey('ed25519', 'no_pty_key');
    lab.authorize(restricted.publicKeyLine, 'no-pty');
    const open = await startTsshd(lab, []);
    t.after(() => open.stop());
    const closed = await startTsshd(lab, ['PermitTTY no']);
    t.after(() => closed.stop());
    // With a terminal asked for explicitly, OpenSSH's ssh gives up when it is refused (exit 255).
    const viaKey = await lab.runSsh(['-tt', '-p', String(open.port), '127.0.0.1', 'true'], { identity: restricted.privateKey });
    assert.match(viaKey.stderr, /PTY allocation request failed/);
    assert.equal(viaKey.code, 255);
    const viaConfig = await lab.runSsh(['-tt', '-p', String(closed.port), '127.0.0.1', 'true']);
    assert.match(viaConfig.stderr, /PTY allocation request failed/);
    assert.equal(viaConfig.code, 255);
    // The same key without -tt still runs commands.
    const plain = await lab.runSsh(['-p', String(open.port), '127.0.0.1', 'echo ok-$((1+1))'], { identity: restricted.privateKey });
    assert.equal(plain.stdout, 'ok-2\n');
  });

  test('without node-pty: the pty is refused, with the reason in the log, and the shell runs without one', { timeout: 60_000 }, async (t) => {
    if (!havePeers(t, 'ssh', 'sshd', 'tmux')) return;
    const lab = await openSshFixture(t);
    // startTsshd gives tsshd this process's environment: set the test hook just for that spawn.
    process.env.TSSH_DISABLE_NODE_PTY = '1';
    let started;
    try {
      started = await startTsshd(lab, []);
    } finally {
      delete process.env.TSSH_DISABLE_NODE_PTY;
    }
    const tsshd = started;
    t.after(() => tsshd.stop());

    // ssh in a terminal with no command asks for a pty (RequestTTY auto) and carries on without one.
    const tmux = new TmuxPane(lab.dir, 'pty');
    const script = lab.path('client-nopty.sh');
    const command = [peerPath('ssh'), ...lab.clientOptions(tsshd.port), '-l', lab.user, '127.0.0.1'].map(shellQuote).join(' ');
    writeFileSync(script, `#!/bin/sh\n${command}\necho EXIT=$?\n`);
    chmodSync(script, 0o755);
    try {
      await tmux.start(script, 100, 30);
      await tmux.waitFor(/PTY allocation request failed/, "ssh's message");
      await tmux.type('tty; echo ran-$((6*7)); exit 4');
      await tmux.waitFor(/^not a tty\s*$/m, 'the shell running without a terminal');
      await tmux.waitFor(/^ran-42\s*$/m, 'the command output');
      await tmux.waitFor(/^EXIT=4\s*$/m, 'the exit status');
    } finally {
      await tmux.stop();
    }
    await waitForText(tsshd.log, /PTY allocation refused: node-pty is not installed \(npm install node-pty\)/, { what: 'tsshd log' });

    // ssh -tt insists on a terminal: OpenSSH's ssh closes the session when the pty is refused
    // (exit 255), against OpenSSH's sshd (a no-pty key) just the same.
    const r = await lab.runSsh(['-tt', '-p', String(tsshd.port), '127.0.0.1', 'true'], { options: ['LogLevel=INFO'] });
    assert.match(r.stderr, /PTY allocation request failed/, r.stderr);
    assert.equal(r.code, 255, r.stderr);
  });
});
