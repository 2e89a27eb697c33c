#!/usr/bin/env node
// @ts-check
/**
 * A command-line SSH client made of the `ssh2` package, used like `ssh` in the throughput runs:
 * its stdin goes to the remote command, the command's stdout and stderr come out on ours, and
 * the exit status is the remote one (255 if the connection fails).
 *
 *   node bench/ssh2-client.mjs --port N --key FILE [--user NAME] [--cipher C] [--mac M]
 *       [--no-native] COMMAND
 *   node bench/ssh2-client.mjs … --sftp get REMOTE LOCAL | --sftp put LOCAL REMOTE
 *
 * With --sftp it copies one file over the SFTP subsystem with ssh2's fastGet or fastPut (64
 * requests of 32 KiB in flight, its defaults) and exits 0 when the copy completed.
 *
 * TCP_NODELAY is set on the socket (ssh2 leaves it off; see shared/NODE-CRYPTO.md).
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { hideSsh2Binding, loadSsh2 } from './lib/ssh2-loader.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    key: { type: 'string' },
    user: { type: 'string', default: userInfo().username },
    cipher: { type: 'string' },
    mac: { type: 'string' },
    'no-native': { type: 'boolean', default: false },
    sftp: { type: 'string' },
  },
});
const sftpMode = values.sftp;
if (!values.port || !values.key || positionals.length === 0 || (sftpMode !== undefined && ((sftpMode !== 'get' && sftpMode !== 'put') || positionals.length !== 2))) {
  process.stderr.write('usage: ssh2-client.mjs --port N --key FILE [--user NAME] [--cipher C] [--mac M] [--no-native] COMMAND | --sftp get|put FROM TO\n');
  process.exit(2);
}
if (values['no-native']) hideSsh2Binding();
const { Client } = loadSsh2();

const conn = new Client();
conn.on('error', (/** @type {Error} */ error) => {
  process.stderr.write(`ssh2-client: ${error.message}\n`);
  process.exit(255);
});
/** --sftp: one fastGet or fastPut, then close. */
function copyFile() {
  conn.sftp((/** @type {Error | undefined} */ error, /** @type {any} */ sftp) => {
    if (error) {
      process.stderr.write(`ssh2-client: sftp: ${error.message}\n`);
      process.exit(255);
    }
    const [from, to] = positionals;
    const done = (/** @type {Error | undefined | null} */ copyError) => {
      if (copyError) {
        process.stderr.write(`ssh2-client: ${sftpMode} ${from} ${to}: ${copyError.message}\n`);
        process.exit(1);
      }
      conn.end();
    };
    if (sftpMode === 'get') sftp.fastGet(from, to, done);
    else sftp.fastPut(from, to, done);
  });
}

conn.on('ready', () => {
  if (sftpMode !== undefined) return copyFile();
  conn.exec(positionals.join(' '), (/** @type {Error | undefined} */ error, /** @type {any} */ stream) => {
    if (error) {
      process.stderr.write(`ssh2-client: ${error.message}\n`);
      process.exit(255);
    }
    let code = 255;
    stream.on('exit', (/** @type {number | null} */ status) => (code = status ?? 255));
    stream.on('close', () => {
      conn.end();
      process.exitCode = code;
    });
    stream.pipe(process.stdout);
    stream.stderr.pipe(process.stderr);
    process.stdin.pipe(stream);
  });
});
conn.connect({
  host: values.host,
  port: Number(values.port),
  username: values.user,
  privateKey: readFileSync(values.key),
  algorithms: {
    kex: ['curve25519-sha256'],
    serverHostKey: ['ssh-ed25519'],
    ...(values.cipher ? { cipher: [values.cipher] } : {}),
    ...(values.mac ? { hmac: [values.mac] } : {}),
  },
  hostVerifier: () => true,
  readyTimeout: 20000,
});
conn.setNoDelay(true);
