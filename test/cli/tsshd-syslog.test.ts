/**
 * Where tsshd's log goes, by sshd's rule: syslog without -e (through util-linux's logger, to a
 * Unix socket this test owns: TSSH_SYSLOG_SOCKET, tsshd's test hook, instead of /dev/log), with
 * SyslogFacility and LogLevel applied and the tag tsshd[PID]; stderr with -e; stderr for -t and
 * a bad configuration whatever the flags; and stderr, after one warning, when there is no syslog
 * socket. The receiver is a Node stream socket: logger falls back from datagram to stream.
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { havePeers, peersRequired } from '../helpers/peers.js';
import { createLab, run, TSSHD, waitForText } from '../helpers/auth-lab.js';
import { freePort, type OpenSshFixture } from '../helpers/openssh.js';
import { syslogPriority, syslogText } from '../../src/cli/sshd/log.js';

function haveLogger(t: TestContext): boolean {
  if (existsSync('/usr/bin/logger') || existsSync('/bin/logger')) return true;
  const message = 'needs logger (Debian package bsdutils)';
  if (peersRequired()) throw new Error(`${message}; TSSH_REQUIRE_PEERS=1 forbids skipping, so this is a failure`);
  t.skip(message);
  return false;
}

/** A syslog receiver on a Unix stream socket: every line logger sent. */
class Receiver {
  readonly server: Server;
  text = '';
  constructor(readonly path: string) {
    this.server = createServer((socket) => socket.on('data', (chunk: Buffer) => (this.text += chunk.toString('utf8'))));
  }
  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, () => resolve()));
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

function startTsshd(config: string, args: readonly string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, [TSSHD, '-f', config, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
      await exited;
    },
  };
}

describe('tsshd logging to syslog or stderr', () => {
  let lab: OpenSshFixture;
  let receiver: Receiver;
  before(async () => {
    lab = await createLab();
    receiver = new Receiver(lab.path('syslog.sock'));
    await receiver.listen();
  });
  after(async () => {
    await receiver.close();
    await lab.cleanup();
  });

  const writeConfig = (name: string, port: number, lines: readonly string[]): string => {
    const path = lab.path(name);
    writeFileSync(
      path,
      [...lines, `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${lab.hostKeys.ed25519.privateKey}`, `AuthorizedKeysFile ${lab.authorizedKeys}`, 'StrictModes no', 'SetEnv SHLVL=1', ''].join('\n'),
    );
    return path;
  };

  test('priorities and text as syslog gets them', () => {
    assert.equal(syslogPriority('AUTH', 'INFO'), 38);
    assert.equal(syslogPriority('LOCAL3', 'VERBOSE'), 158);
    assert.equal(syslogPriority('AUTHPRIV', 'ERROR'), 83);
    assert.equal(syslogPriority('DAEMON', 'DEBUG1'), 31);
    assert.equal(syslogPriority('USER', 'FATAL'), 10);
    assert.equal(syslogText('a\nb\tc'), 'a\\012b\\011c');
    assert.equal(syslogText('x'.repeat(600)).length, 500);
  });

  test('-D without -e: to syslog with SyslogFacility, LogLevel and the tag tsshd[PID]; nothing on stderr', { timeout: 60_000 }, async (t) => {
    if (!haveLogger(t) || !havePeers(t, 'ssh', 'ssh-keygen')) return;
    const port = await freePort();
    const config = writeConfig('syslog_config', port, ['SyslogFacility LOCAL3', 'LogLevel VERBOSE']);
    const since = receiver.text.length;
    const tsshd = startTsshd(config, ['-D'], { TSSH_SYSLOG_SOCKET: receiver.path });
    t.after(() => tsshd.stop());
    const pid = tsshd.child.pid!;
    const text = (): string => receiver.text.slice(since);
    await waitForText(text, new RegExp(`^<158>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d tsshd\\[${pid}\\]: Server listening on 127\\.0\\.0\\.1 port ${port}\\.$`, 'm'), { what: 'syslog', timeoutMs: 20_000 });
    const r = await lab.runSsh(['127.0.0.1', 'echo logged'], { port });
    assert.equal(r.stdout, 'logged\n', r.stderr);
    // VERBOSE and INFO both map to LOG_INFO: 19 * 8 + 6.
    await waitForText(text, new RegExp(`^<158>.* tsshd\\[${pid}\\]: Connection from 127\\.0\\.0\\.1 port \\d+$`, 'm'), { what: 'syslog' });
    await waitForText(text, new RegExp(`^<158>.* tsshd\\[${pid}\\]: Accepted publickey for ${lab.user} from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 SHA256:\\S+$`, 'm'), { what: 'syslog' });
    assert.doesNotMatch(tsshd.stderr(), /Accepted|Server listening/);
    await tsshd.stop();
    await waitForText(text, new RegExp(`tsshd\\[${pid}\\]: Received signal 15; terminating\\.$`, 'm'), { what: 'syslog' });
  });

  test('LogLevel INFO leaves VERBOSE lines out of syslog; -e sends everything to stderr instead', { timeout: 60_000 }, async (t) => {
    if (!haveLogger(t) || !havePeers(t, 'ssh', 'ssh-keygen')) return;
    const port = await freePort();
    const config = writeConfig('info_config', port, ['SyslogFacility AUTH']);
    const since = receiver.text.length;
    const tsshd = startTsshd(config, ['-D'], { TSSH_SYSLOG_SOCKET: receiver.path });
    const text = (): string => receiver.text.slice(since);
    try {
      await waitForText(text, /^<38>.*: Server listening/m, { what: 'syslog', timeoutMs: 20_000 });
      await lab.runSsh(['127.0.0.1', 'true'], { port });
      await waitForText(text, /^<38>.*: Accepted publickey/m, { what: 'syslog' });
      assert.doesNotMatch(text(), /Connection from/);
    } finally {
      await tsshd.stop();
    }
    const port2 = await freePort();
    const config2 = writeConfig('stderr_config', port2, ['SyslogFacility AUTH']);
    const since2 = receiver.text.length;
    const withE = startTsshd(config2, ['-D', '-e'], { TSSH_SYSLOG_SOCKET: receiver.path });
    try {
      await waitForText(withE.stderr, new RegExp(`^Server listening on 127\\.0\\.0\\.1 port ${port2}\\.$`, 'm'), { what: 'stderr', timeoutMs: 20_000 });
      assert.equal(receiver.text.slice(since2), '');
    } finally {
      await withE.stop();
    }
  });

  test('SIGHUP applies a new SyslogFacility and LogLevel, as sshd re-executing itself does', { timeout: 60_000 }, async (t) => {
    if (!haveLogger(t) || !havePeers(t, 'ssh', 'ssh-keygen')) return;
    const port = await freePort();
    const config = writeConfig('reload_config', port, ['SyslogFacility AUTH', 'LogLevel INFO']);
    const since = receiver.text.length;
    const tsshd = startTsshd(config, ['-D'], { TSSH_SYSLOG_SOCKET: receiver.path });
    t.after(() => tsshd.stop());
    const text = (): string => receiver.text.slice(since);
    await waitForText(text, /^<38>.*: Server listening/m, { what: 'syslog', timeoutMs: 20_000 });
    writeFileSync(config, readFileSync(config, 'utf8').replace('SyslogFacility AUTH', 'SyslogFacility LOCAL5').replace('LogLevel INFO', 'LogLevel VERBOSE'));
    process.kill(tsshd.child.pid!, 'SIGHUP');
    // LOCAL5 = 21: 21 * 8 + 6.
    await waitForText(text, /^<174>.*: Received SIGHUP; configuration reloaded/m, { what: 'syslog' });
    await lab.runSsh(['127.0.0.1', 'true'], { port });
    await waitForText(text, /^<174>.*: Connection from 127\.0\.0\.1/m, { what: 'syslog (a VERBOSE line after the reload)' });
  });

  test('-t and a bad configuration report on stderr without -e; no syslog socket: one warning, then stderr', { timeout: 60_000 }, async (t) => {
    if (!haveLogger(t)) return;
    const bad = lab.path('bad_config');
    writeFileSync(bad, 'LogLevel LOUD\n');
    const checked = await run(process.execPath, [TSSHD, '-f', bad, '-t'], { env: { ...process.env, TSSH_SYSLOG_SOCKET: receiver.path } });
    assert.equal(checked.code, 255);
    assert.match(checked.stderr, /bad_config line 1: .*LOUD/);
    const port = await freePort();
    const config = writeConfig('nosocket_config', port, []);
    const missing = lab.path('no-such.sock');
    const tsshd = startTsshd(config, ['-D'], { TSSH_SYSLOG_SOCKET: missing });
    try {
      await waitForText(tsshd.stderr, new RegExp(`^Server listening on 127\\.0\\.0\\.1 port ${port}\\.$`, 'm'), { what: 'stderr', timeoutMs: 20_000 });
      const warnings = tsshd.stderr().match(/cannot log to syslog/g) ?? [];
      assert.equal(warnings.length, 1, tsshd.stderr());
      assert.match(tsshd.stderr(), new RegExp(`tsshd: cannot log to syslog \\(no syslog socket at ${missing.replace(/[.]/g, '\\.')}\\); logging to stderr instead`));
    } finally {
      await tsshd.stop();
    }
  });
});
