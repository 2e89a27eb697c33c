// @ts-check
/**
 * Figure 1: throughput of one channel.
 *
 * Each run is one client program against one server, like a person would run it:
 *   server → client ("down"):  CLIENT … 'head -c N /dev/zero' > /dev/null
 *   client → server ("up"):    head -c N /dev/zero | CLIENT … 'cat > /dev/null'
 * with CLIENT one of ssh, the tssh program (dist/bin/tssh.js) or our ssh2 client script, all
 * started under /usr/bin/time for their CPU time (user+system, 10 ms resolution).
 *
 * The remote command is wrapped as `date +%s.%N >&2; COMMAND; times >&2`:
 * - the transfer time runs from the remote command's start (the date it prints; same machine,
 *   same clock) to the client's exit, so connection set-up and the client's own start-up (Node's
 *   is ~50 ms) are not counted, but the end of the channel and the client's exit are;
 * - `times` prints the CPU time of the shell and of its children (date, head or cat).
 * Server CPU time: for tsshd and the ssh2 server, the server process's own CPU time over the run
 * (sum of its threads, µs resolution; the command's CPU goes to the command, not to the server);
 * for sshd, whose per-connection processes exit, the listener's own + reaped children's CPU time
 * (10 ms resolution) minus what `times` reported for the shell and command.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { liveCpuMs, statCpuMs, descendants } from './procfs.mjs';
import { SSH, TSSH, SSH2_CLIENT, sleep, programLauncher } from './fixture.mjs';

const TIME = '/usr/bin/time';
const DEV_NULL_FD = openSync('/dev/null', 'w');

/** @typedef {'ssh' | 'tssh' | 'ssh2'} ClientKind */
/** @typedef {'down' | 'up'} Direction */

/**
 * @typedef {object} TransferResult
 * @property {boolean} ok
 * @property {string} [error]
 * @property {number} bytes
 * @property {number} seconds   remote command start → client exit
 * @property {number} mbps      bytes / seconds / 1e6
 * @property {number} wallSeconds  client start → client exit (includes connection set-up)
 * @property {number} clientCpuS
 * @property {number} serverCpuS
 * @property {number} commandCpuS  the remote shell and command (not counted for any server)
 */

/**
 * The argv of a client program.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {ClientKind} client
 * @param {number} port
 * @param {string} cipher
 * @param {string | undefined} mac
 * @param {string} command
 * @param {{ ssh2NoNative?: boolean, nodeFlags?: string[] }} [options]
 */
export function clientArgv(fx, client, port, cipher, mac, command, options = {}) {
  const destination = `${fx.user}@127.0.0.1`;
  const algorithms = ['-c', cipher, ...(mac ? ['-m', mac] : [])];
  if (client === 'ssh') return [SSH, ...fx.sshOptions(), ...algorithms, '-p', String(port), destination, command];
  if (client === 'tssh') return [...programLauncher(TSSH), ...(options.nodeFlags ?? []), TSSH, ...fx.sshOptions(), ...algorithms, '-p', String(port), destination, command];
  return [
    process.execPath,
    ...(options.nodeFlags ?? []),
    SSH2_CLIENT,
    '--port', String(port),
    '--key', fx.userKey,
    '--user', fx.user,
    '--cipher', cipher,
    ...(mac ? ['--mac', mac] : []),
    ...(options.ssh2NoNative ? ['--no-native'] : []),
    command,
  ];
}

/**
 * Stop a client we started (in its own process group: the time wrapper, the client, head) by
 * that group's id.
 * @param {import('node:child_process').ChildProcess} child
 */
function killGroup(child) {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Wall-clock time in seconds since the epoch, sub-millisecond. */
const now = () => (performance.timeOrigin + performance.now()) / 1000;

/**
 * Server CPU time so far, in ms. For sshd this waits until its per-connection processes are gone
 * (their CPU time reaches the listener only once they are reaped).
 * @param {import('./fixture.mjs').RunningServer} server
 */
export async function serverCpuMs(server) {
  if (server.kind !== 'sshd') return liveCpuMs(server.pid);
  const deadline = Date.now() + 10000;
  while (descendants(server.pid).length > 0 && Date.now() < deadline) await sleep(5);
  const stat = statCpuMs(server.pid);
  return stat ? stat.selfMs + stat.childrenMs : NaN;
}

/**
 * One transfer.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ client: ClientKind, server: import('./fixture.mjs').RunningServer, cipher: string, mac?: string,
 *           direction: Direction, bytes: number, ssh2NoNative?: boolean, nodeFlags?: string[], timeoutMs?: number }} run
 * @returns {Promise<TransferResult>}
 */
export async function transfer(fx, run) {
  const remote = run.direction === 'down' ? `head -c ${run.bytes} /dev/zero` : 'cat > /dev/null';
  const command = `date +%s.%N >&2; ${remote}; times >&2`;
  const argv = clientArgv(fx, run.client, run.server.port, run.cipher, run.mac, command, run);
  const timed = existsSync(TIME) ? [TIME, '-f', 'BENCHTIME %e %U %S', ...argv] : argv;
  const serverBefore = await serverCpuMs(run.server);
  const started = now();
  const child =
    run.direction === 'down'
      ? spawn(timed[0], timed.slice(1), { stdio: ['ignore', DEV_NULL_FD, 'pipe'], detached: true })
      : spawn('/bin/sh', ['-c', 'head -c "$0" /dev/zero | "$@"', String(run.bytes), ...timed], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  /** @type {Buffer[]} */
  const stderr = [];
  child.stderr?.on('data', (chunk) => stderr.push(chunk));
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    killGroup(child);
  }, run.timeoutMs ?? 600000);
  const code = await new Promise((resolve) => child.once('close', (status, signal) => resolve(signal ?? status)));
  const ended = now();
  clearTimeout(timeout);
  const serverAfter = await serverCpuMs(run.server);
  const text = Buffer.concat(stderr).toString('utf8');

  const stamp = /^(\d{9,}\.\d+)$/m.exec(text);
  const times = [...text.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]));
  const usage = /BENCHTIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(text);
  const commandCpuS = times.length >= 2 ? times[0] + times[1] : NaN;
  const seconds = stamp ? ended - Number(stamp[1]) : NaN;
  let serverCpuS = (serverAfter - serverBefore) / 1000;
  if (run.server.kind === 'sshd') serverCpuS -= commandCpuS;
  const ok = code === 0 && stamp !== null && times.length >= 2;
  return {
    ok,
    ...(ok ? {} : { error: `${timedOut ? 'timed out, ' : ''}exit ${code}: ${text.replace(/BENCHTIME.*/, '').trim().slice(-500)}` }),
    bytes: run.bytes,
    seconds,
    mbps: run.bytes / seconds / 1e6,
    wallSeconds: ended - started,
    clientCpuS: usage ? Number(usage[2]) + Number(usage[3]) : NaN,
    serverCpuS,
    commandCpuS,
  };
}

/**
 * Check that a pairing moves exactly `bytes` each way (the timed runs send output to /dev/null
 * and cannot see it): down through `wc -c` here, up through `wc -c` on the server.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ client: ClientKind, server: import('./fixture.mjs').RunningServer, cipher: string, mac?: string, ssh2NoNative?: boolean }} run
 * @param {number} bytes
 * @returns {Promise<string | undefined>} an error message, or undefined when both directions are right
 */
export async function verifyPairing(fx, run, bytes) {
  /**
   * @param {string} command
   * @param {boolean} upload
   * @returns {Promise<{ code: number | null, stdout: string, stderr: string }>}
   */
  const go = (command, upload) =>
    new Promise((resolve) => {
      const argv = clientArgv(fx, run.client, run.server.port, run.cipher, run.mac, command, run);
      const child = upload
        ? spawn('/bin/sh', ['-c', 'head -c "$0" /dev/zero | "$@"', String(bytes), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
        : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const timer = setTimeout(() => {
        err.push(Buffer.from(' (timed out after 30 s)'));
        killGroup(child);
      }, 30000);
      let stdoutBytes = 0;
      /** @type {Buffer[]} */
      const out = [];
      /** @type {Buffer[]} */
      const err = [];
      child.stdout?.on('data', (chunk) => {
        stdoutBytes += chunk.length;
        if (upload) out.push(chunk);
      });
      child.stderr?.on('data', (chunk) => err.push(chunk));
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: upload ? Buffer.concat(out).toString() : String(stdoutBytes), stderr: Buffer.concat(err).toString() });
      });
    });
  const down = await go(`head -c ${bytes} /dev/zero`, false);
  if (down.code !== 0 || Number(down.stdout) !== bytes) return `down: exit ${down.code}, ${down.stdout} of ${bytes} bytes ${down.stderr.trim().slice(-300)}`;
  const up = await go('wc -c', true);
  if (up.code !== 0 || Number(up.stdout.trim()) !== bytes) return `up: exit ${up.code}, server counted ${up.stdout.trim()} of ${bytes} bytes ${up.stderr.trim().slice(-300)}`;
  return undefined;
}
