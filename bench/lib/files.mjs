// @ts-check
/**
 * Figure 4: file transfer over SFTP, against each server's own in-process SFTP server
 * (`Subsystem sftp internal-sftp` in the shared config: sshd's is C inside its session process,
 * tsshd's is src/sftp/ in a Node child process per session). The ssh2 server script has no SFTP
 * server, and tssh has no SFTP client program yet, so the pairings are:
 *
 *   sftp → sshd, sftp → tsshd       OpenSSH's sftp in batch mode: `get FILE /dev/null`, `put FILE /dev/null`
 *   ssh2 → sshd, ssh2 → tsshd       the ssh2 package's SFTP client (bench/ssh2-client.mjs --sftp),
 *                                   fastGet/fastPut: 64 requests of 32 KiB in flight
 *
 * and the ratios compare the servers: X → tsshd against X → sshd with the same client X.
 *
 * The file is a sparse file on tmpfs (/dev/shm) and the far end is /dev/null, so no disk is
 * measured, only the protocol, the crypto and the file system calls. Time: the client program's
 * whole run (start, connection, login, transfer, exit), less the fixed cost of the same pairing
 * moving an empty file. CPU: the client from /usr/bin/time (sftp with its ssh child); the server
 * with every process it reaped during the run (sshd's session process, tsshd's SFTP child), which
 * is why each run waits until the server has no children left.
 */
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SSH2_CLIENT } from './fixture.mjs';
import { serverTreeCpuMs } from './procfs.mjs';

const TIME = '/usr/bin/time';
export const SFTP = process.env.BENCH_SFTP ?? '/usr/bin/sftp';

/** @typedef {'sftp' | 'ssh2'} FileClient */

/**
 * @typedef {object} FileTransferResult
 * @property {boolean} ok
 * @property {string} [error]
 * @property {number} bytes
 * @property {number} seconds     client start → client exit
 * @property {number} clientCpuS
 * @property {number} serverCpuS  the server and the processes it reaped during the run
 */

/** @param {string} path @param {number} size a sparse file of `size` zero bytes */
function sparseFile(path, size) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  return path;
}

/**
 * A folder on tmpfs with the files the runs move: `blob` (`size` bytes, sparse), `empty` (for the
 * fixed cost) and `sample` (1 MiB, for the verification).
 * @param {number} size
 */
export function makeFiles(size) {
  const dir = mkdtempSync('/dev/shm/tssh-bench-files-');
  return {
    dir,
    blob: sparseFile(join(dir, 'blob'), size),
    empty: sparseFile(join(dir, 'empty'), 0),
    sample: sparseFile(join(dir, 'sample'), 1 << 20),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}


/**
 * The argv of one transfer.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {FileClient} client
 * @param {number} port
 * @param {string} cipher
 * @param {'down' | 'up'} direction
 * @param {string} file  the local file to send (up) or the remote file to fetch (down)
 * @param {string} target  where it goes: a remote path (up) or a local one (down)
 * @param {string} batchFile  where sftp's batch file is written
 */
function fileClientArgv(fx, client, port, cipher, direction, file, target, batchFile) {
  if (client === 'sftp') {
    writeFileSync(batchFile, `${direction === 'down' ? 'get' : 'put'} ${file} ${target}\n`);
    // ssh's options minus -T (sftp has none: it asks for a subsystem, never a terminal).
    const options = fx.sshOptions().filter((option) => option !== '-T');
    return [SFTP, '-q', '-b', batchFile, '-P', String(port), ...options, '-o', `Ciphers=${cipher}`, `${fx.user}@127.0.0.1`];
  }
  return [
    process.execPath,
    SSH2_CLIENT,
    '--port', String(port),
    '--key', fx.userKey,
    '--user', fx.user,
    '--cipher', cipher,
    '--sftp', direction === 'down' ? 'get' : 'put',
    file,
    target,
  ];
}

/**
 * One file transfer.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ client: FileClient, server: import('./fixture.mjs').RunningServer, cipher: string, direction: 'down' | 'up',
 *           file: string, bytes: number, timeoutMs?: number }} run
 * @returns {Promise<FileTransferResult>}
 */
export async function fileTransfer(fx, run) {
  const argv = [TIME, '-f', 'BENCHTIME %e %U %S', ...fileClientArgv(fx, run.client, run.server.port, run.cipher, run.direction, run.file, '/dev/null', join(fx.dir, 'sftp-batch'))];
  const serverBefore = await serverTreeCpuMs(run.server);
  const started = performance.now();
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  /** @type {Buffer[]} */
  const stderr = [];
  child.stderr?.on('data', (chunk) => stderr.push(chunk));
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, run.timeoutMs ?? 600000);
  const code = await new Promise((resolve) => child.once('close', (status, signal) => resolve(signal ?? status)));
  const seconds = (performance.now() - started) / 1000;
  clearTimeout(timeout);
  const serverAfter = await serverTreeCpuMs(run.server);
  const text = Buffer.concat(stderr).toString('utf8');
  const usage = /BENCHTIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(text);
  const ok = code === 0 && usage !== null;
  return {
    ok,
    ...(ok ? {} : { error: `${timedOut ? 'timed out, ' : ''}exit ${code}: ${text.replace(/BENCHTIME.*/, '').trim().slice(-500)}` }),
    bytes: run.bytes,
    seconds,
    clientCpuS: usage ? Number(usage[2]) + Number(usage[3]) : NaN,
    serverCpuS: (serverAfter - serverBefore) / 1000,
  };
}

/**
 * Check that a pairing moves a file exactly: fetch `file` into a local copy and send it to a
 * remote copy (the timed runs use /dev/null and cannot see the bytes), and compare the sizes.
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ client: FileClient, server: import('./fixture.mjs').RunningServer, cipher: string }} run
 * @param {{ dir: string, sample: string }} files
 * @returns {Promise<string | undefined>} an error message, or undefined when both directions are right
 */
export async function verifyFilePairing(fx, run, files) {
  const expected = statSync(files.sample).size;
  const check = join(files.dir, `check-${run.client}-${run.server.kind}`);
  for (const direction of /** @type {const} */ (['down', 'up'])) {
    rmSync(check, { force: true });
    const argv = fileClientArgv(fx, run.client, run.server.port, run.cipher, direction, files.sample, check, join(fx.dir, 'sftp-batch'));
    const result = await new Promise((resolve) => {
      const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
      /** @type {Buffer[]} */
      const err = [];
      child.stderr?.on('data', (chunk) => err.push(chunk));
      child.once('close', (status) => resolve({ status, stderr: Buffer.concat(err).toString('utf8') }));
    });
    const { status, stderr } = /** @type {{ status: number | null, stderr: string }} */ (result);
    let size = -1;
    try {
      size = statSync(check).size;
    } catch {
      // missing
    }
    rmSync(check, { force: true });
    if (status !== 0 || size !== expected) return `${direction}: exit ${status}, ${size} of ${expected} bytes${stderr ? `: ${stderr.trim().slice(-300)}` : ''}`;
  }
  return undefined;
}
