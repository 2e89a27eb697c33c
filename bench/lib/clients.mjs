// @ts-check
/**
 * Driving bench/conn-client.mjs (in-process clients of either library) from the harness over its
 * stdin/stdout line protocol.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CONN_CLIENT } from './fixture.mjs';

/**
 * @typedef {object} ConnClient
 * @property {number} pid
 * @property {(prefix: string) => Promise<string>} expect  the next stdout line, which must start with prefix
 * @property {(line: string) => void} send
 * @property {() => void} endInput
 * @property {() => Promise<number | null>} exited
 * @property {() => void} kill
 */

/**
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ lib: 'tssh' | 'ssh2', port: number, mode: 'connect' | 'hold', count: number, concurrency: number, warmup?: number, ssh2NoNative?: boolean, nodeFlags?: string[] }} options
 * @returns {ConnClient}
 */
export function startConnClient(fx, options) {
  const argv = [
    CONN_CLIENT,
    '--lib', options.lib,
    '--port', String(options.port),
    '--key', fx.userKey,
    '--user', fx.user,
    '--count', String(options.count),
    '--concurrency', String(options.concurrency),
    ...(options.warmup !== undefined ? ['--warmup', String(options.warmup)] : []),
    ...(options.ssh2NoNative ? ['--no-native'] : []),
    options.mode,
  ];
  // A high open-file limit: `hold` keeps 1,000 sockets open.
  const child = spawn('/bin/sh', ['-c', 'ulimit -n 65536 2>/dev/null || true; exec "$@"', 'sh', process.execPath, ...(options.nodeFlags ?? []), ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  /** @type {Buffer[]} */
  const stderr = [];
  child.stderr?.on('data', (chunk) => stderr.push(chunk));
  const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) });
  /** @type {string[]} */
  const queue = [];
  /** @type {((line: string | undefined) => void)[]} */
  const waiting = [];
  let closed = false;
  lines.on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else queue.push(line);
  });
  lines.on('close', () => {
    closed = true;
    for (const waiter of waiting.splice(0)) waiter(undefined);
  });
  const exitPromise = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    pid: /** @type {number} */ (child.pid),
    expect: async (prefix) => {
      const line = queue.length > 0 ? queue.shift() : closed ? undefined : await new Promise((resolve) => waiting.push(resolve));
      if (line === undefined || !line.startsWith(prefix)) {
        throw new Error(`conn-client (${options.lib}): expected "${prefix}", got ${line === undefined ? 'end of output' : JSON.stringify(line)}\n${Buffer.concat(stderr).toString().slice(-2000)}`);
      }
      return line.slice(prefix.length);
    },
    send: (line) => child.stdin?.write(`${line}\n`),
    endInput: () => child.stdin?.end(),
    exited: () => /** @type {Promise<number | null>} */ (exitPromise),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
