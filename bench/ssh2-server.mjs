#!/usr/bin/env node
// @ts-check
/**
 * An SSH server made of the `ssh2` package, for the benchmarks: publickey logins against one
 * authorized_keys file, and `exec` run through the user's shell with child_process (stdin from the
 * channel, stdout and stderr to it, the exit status back), like sshd and tsshd do.
 *
 *   node bench/ssh2-server.mjs --host-key FILE --authorized-keys FILE [--port 0] [--user NAME]
 *       [--no-native]
 *
 * Prints `listening PORT` on stdout once it accepts connections. TCP_NODELAY is set on every
 * connection (ssh2 leaves it off; see shared/NODE-CRYPTO.md). --no-native hides ssh2's optional
 * native crypto binding, so ssh2 runs on node:crypto alone.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { hideSsh2Binding, loadSsh2 } from './lib/ssh2-loader.mjs';

const { values } = parseArgs({
  options: {
    'host-key': { type: 'string' },
    'authorized-keys': { type: 'string' },
    port: { type: 'string', default: '0' },
    user: { type: 'string', default: userInfo().username },
    'no-native': { type: 'boolean', default: false },
  },
});
if (!values['host-key'] || !values['authorized-keys']) {
  process.stderr.write('usage: ssh2-server.mjs --host-key FILE --authorized-keys FILE [--port N] [--user NAME] [--no-native]\n');
  process.exit(2);
}
if (values['no-native']) hideSsh2Binding();
const ssh2 = loadSsh2();
const { Server, utils } = ssh2;

const user = values.user;
const shell = userInfo().shell || '/bin/sh';
/** The environment of commands: SHLVL=1 as the other servers' SetEnv, so bash skips ~/.bashrc. */
const commandEnv = { ...process.env, SHLVL: '1' };

/** @type {any[]} */
const allowed = readFileSync(values['authorized-keys'], 'utf8')
  .split('\n')
  .filter((line) => line.trim() && !line.startsWith('#'))
  .map((line) => utils.parseKey(line))
  .filter((key) => !(key instanceof Error));

/** @param {any} ctx */
function authenticate(ctx) {
  if (ctx.method !== 'publickey' || ctx.username !== user) return ctx.reject(['publickey']);
  const key = allowed.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data));
  if (!key) return ctx.reject(['publickey']);
  // Without a signature this is the "would you accept this key" query; with one, check it.
  if (ctx.signature && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(['publickey']);
  return ctx.accept();
}

/**
 * Run `command` in the user's shell over the channel `stream`.
 * @param {any} stream
 * @param {string} command
 */
function run(stream, command) {
  const child = spawn(shell, ['-c', command], { env: commandEnv, stdio: ['pipe', 'pipe', 'pipe'] });
  stream.pipe(child.stdin);
  child.stdin.on('error', () => {}); // the command may exit without reading its input
  child.stdout.pipe(stream, { end: false });
  child.stderr.pipe(stream.stderr, { end: false });
  child.on('error', (error) => {
    stream.stderr.write(`${error.message}\n`);
    stream.exit(127);
    stream.end();
  });
  // 'close' comes after the exit and after stdout and stderr ended: all output was handed to the
  // channel. Stderr may still wait for window, and ssh2 1.17 neither sends it before the channel's
  // EOF and CLOSE (the output was lost) nor always resumes it: a WINDOW_ADJUST resumes the waiting
  // stdout chunk *or* the stderr one (server.js, CHANNEL_WINDOW_ADJUST), so a stderr chunk blocked
  // behind stdout could wait forever (a run hung). Send what stderr still holds whenever the window
  // allows, then the exit status, EOF and CLOSE.
  child.on('close', (code, signal) => {
    const finish = () => {
      if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
      else stream.exit(code ?? 0);
      stream.end();
    };
    const deadline = Date.now() + 10000;
    const flushStderr = () => {
      if (stream._chunkErr === undefined && stream.stderr.writableLength === 0) return finish();
      if (Date.now() > deadline) return finish();
      if (stream._chunkErr !== undefined && !stream._waitWindow && stream.outgoing.window > 0) {
        const chunk = stream._chunkErr;
        const callback = stream._chunkcbErr;
        stream._chunkErr = undefined;
        stream._chunkcbErr = undefined;
        stream.stderr._write(chunk, null, callback);
      }
      setTimeout(flushStderr, 5);
    };
    flushStderr();
  });
  stream.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGHUP');
  });
}

const hostKey = readFileSync(values['host-key']);
const server = new Server(
  {
    hostKeys: [hostKey],
    algorithms: {
      kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'],
      serverHostKey: ['ssh-ed25519'],
      cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'],
      hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-256'],
    },
  },
  (/** @type {any} */ client) => {
    client.setNoDelay(true);
    client.on('error', () => {});
    client.on('authentication', authenticate);
    client.on('ready', () => {
      client.on('session', (/** @type {any} */ accept) => {
        const session = accept();
        session.on('env', (/** @type {any} */ acceptEnv) => acceptEnv?.());
        session.on('exec', (/** @type {any} */ acceptExec, /** @type {any} */ _reject, /** @type {any} */ info) => run(acceptExec(), info.command));
      });
    });
  },
);
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
