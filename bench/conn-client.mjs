#!/usr/bin/env node
// @ts-check
/**
 * In-process SSH clients for the connection figures, with either library:
 *
 *   node bench/conn-client.mjs --lib tssh|ssh2 --port N --key FILE [--user NAME] MODE ...
 *
 * MODE `connect --count N --concurrency C`: open connections (curve25519-sha256, ssh-ed25519 host
 *   key, publickey), run `true` in each, close; C in flight at a time. First W warm-up
 *   connections (--warmup W, default 2), then `ready {count, errors, cpuMs}` (theirs) on stdout; on a line `go` on stdin it runs the N and prints one JSON
 *   line {count, errors, wallMs, cpuMs} (cpuMs: this process's CPU time, process.cpuUsage).
 * MODE `hold --count N --concurrency C`: open N authenticated connections (no channel) and keep
 *   them; prints `held {"count":…,"errors":…}`. Each line `open K` on stdin opens K more and
 *   prints `held …` again; when stdin ends it closes them all and exits.
 *
 * The harness reads the server's CPU time between `ready` and the result line, so client start-up
 * and warm-up are not counted.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadSsh2, hideSsh2Binding } from './lib/ssh2-loader.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    lib: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    key: { type: 'string' },
    user: { type: 'string', default: userInfo().username },
    count: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '2' },
    'no-native': { type: 'boolean', default: false },
  },
});
const mode = positionals[0];
if (!values.port || !values.key || (values.lib !== 'tssh' && values.lib !== 'ssh2') || (mode !== 'connect' && mode !== 'hold')) {
  process.stderr.write('usage: conn-client.mjs --lib tssh|ssh2 --port N --key FILE [--user NAME] connect|hold --count N --concurrency C\n');
  process.exit(2);
}
const port = Number(values.port);
const host = values.host;
const count = Number(values.count);
const concurrency = Number(values.concurrency);

/**
 * @typedef {{ exec(command: string): Promise<void>, close(): Promise<void> }} Connection
 * @typedef {() => Promise<Connection>} Connector
 */

/** @returns {Promise<Connector>} */
async function tsshConnector() {
  // The build the harness measures (bench/lib/build.mjs), else dist/.
  const dist = process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname;
  const tssh = await import(pathToFileURL(join(dist, 'src', 'index.js')).href);
  const { key } = await tssh.parsePrivateKeyFile(readFileSync(/** @type {string} */ (values.key)));
  return async () => {
    const client = await tssh.connect({
      host,
      port,
      username: /** @type {string} */ (values.user),
      privateKeys: [key],
      verifyHostKey: () => true,
      algorithms: { kex: ['curve25519-sha256'], hostKey: ['ssh-ed25519'] },
    });
    return {
      exec: async (command) => {
        await client.exec(command);
      },
      close: () => client.end(),
    };
  };
}

/** @returns {Promise<Connector>} */
async function ssh2Connector() {
  if (values['no-native']) hideSsh2Binding();
  const { Client } = loadSsh2();
  const privateKey = readFileSync(/** @type {string} */ (values.key));
  return () =>
    new Promise((resolve, reject) => {
      const conn = new Client();
      conn.once('error', reject);
      conn.once('ready', () => {
        conn.off('error', reject);
        conn.on('error', () => {});
        resolve({
          exec: (command) =>
            new Promise((done, failed) => {
              conn.exec(command, (/** @type {Error | undefined} */ error, /** @type {any} */ stream) => {
                if (error) return failed(error);
                stream.on('close', () => done());
                stream.resume();
                stream.stderr.resume();
                stream.end();
              });
            }),
          close: () =>
            new Promise((done) => {
              conn.once('close', () => done());
              conn.end();
            }),
        });
      });
      conn.connect({
        host,
        port,
        username: values.user,
        privateKey,
        algorithms: { kex: ['curve25519-sha256'], serverHostKey: ['ssh-ed25519'] },
        hostVerifier: () => true,
        readyTimeout: 60000,
      });
      conn.setNoDelay(true);
    });
}

/**
 * Run `task` for indices 0..n-1 with at most `limit` at a time; count failures.
 * @param {number} n
 * @param {number} limit
 * @param {(i: number) => Promise<void>} task
 */
async function pool(n, limit, task) {
  let next = 0;
  let errors = 0;
  /** @type {string | undefined} */
  let firstError;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        errors++;
        firstError ??= /** @type {Error} */ (error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return { errors, firstError };
}

const lines = createInterface({ input: process.stdin });
/** @type {string[]} */
const pending = [];
/** @type {((line: string | undefined) => void) | undefined} */
let waiter;
let inputEnded = false;
lines.on('line', (line) => (waiter ? (waiter(line), (waiter = undefined)) : pending.push(line)));
lines.on('close', () => {
  inputEnded = true;
  waiter?.(undefined);
});
/** @returns {Promise<string | undefined>} */
const nextLine = () => (pending.length > 0 ? Promise.resolve(pending.shift()) : inputEnded ? Promise.resolve(undefined) : new Promise((resolve) => (waiter = resolve)));

const connectOne = values.lib === 'tssh' ? await tsshConnector() : await ssh2Connector();

if (mode === 'connect') {
  const once = async () => {
    const connection = await connectOne();
    await connection.exec('true');
    await connection.close();
  };
  // Warm-up, at the same concurrency: code loaded, key parsed, and (with enough of them) the JIT's
  // work on the per-connection code done in the client and in the server.
  const warmCpu0 = process.cpuUsage();
  const warmup = await pool(Number(values.warmup), concurrency, once);
  const warmCpu = process.cpuUsage(warmCpu0);
  process.stdout.write(`ready ${JSON.stringify({ count: Number(values.warmup), errors: warmup.errors, cpuMs: (warmCpu.user + warmCpu.system) / 1000 })}\n`);
  await nextLine();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { errors, firstError } = await pool(count, concurrency, once);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ count, errors, firstError, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
  process.exit(0);
} else {
  /** @type {Connection[]} */
  const held = [];
  let errors = 0;
  /** @type {string | undefined} */
  let firstError;
  /** @param {number} n */
  const open = async (n) => {
    const result = await pool(n, concurrency, async () => {
      held.push(await connectOne());
    });
    errors += result.errors;
    firstError ??= result.firstError;
    process.stdout.write(`held ${JSON.stringify({ count: held.length, errors, firstError })}\n`);
  };
  await open(count);
  for (let line = await nextLine(); line !== undefined; line = await nextLine()) {
    const more = /^open (\d+)$/.exec(line);
    if (more) await open(Number(more[1]));
  }
  await Promise.all(held.map((c) => c.close().catch(() => {})));
  process.exit(0);
}
