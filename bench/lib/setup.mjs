// @ts-check
/**
 * Figure 2: connection set-up. An in-process client (tssh's library or ssh2's) opens connections
 * to one server, each: curve25519-sha256, ssh-ed25519 host key, publickey login, exec `true`,
 * close; sequentially or 16 in flight, after `warmup` connections the same way (a fresh client
 * process's first connections cost it more: code loaded and compiled; their CPU is reported
 * apart, as the client's cold figure). Connections per second, client CPU per connection (the
 * client process's own, process.cpuUsage) and server CPU per connection: the server's own CPU time
 * (tsshd's and the ssh2 server's threads at µs resolution, sshd's listener from /proc/PID/stat)
 * plus that of every process it started (procfs.mjs serverTreeCpuMs: sshd's per-connection
 * processes, tsshd's spawn helper, 10 ms resolution), less the CPU time of the shells that ran
 * `true`, which every server starts alike (measured here on the same machine as `bash -c true`).
 */
import { spawnSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { serverTreeCpuMs, statCpuMs } from './procfs.mjs';
import { startConnClient } from './clients.mjs';

/**
 * CPU milliseconds of one `SHELL -c true` as sshd runs it (SHLVL=1 in its environment), started
 * from a small process (a /bin/sh loop): the shell's own cost. A shell forked from a large process
 * costs more (its copy of the parent's memory map is torn down at exec); that part is the
 * server's doing and stays in its figure.
 */
export function shellTrueCpuMs(n = 50) {
  const shell = userInfo().shell || '/bin/sh';
  const before = statCpuMs(process.pid);
  spawnSync('/bin/sh', ['-c', 'n=0; while [ $n -lt "$1" ]; do "$2" -c true; n=$((n+1)); done', 'sh', String(n), shell], {
    env: { ...process.env, SHLVL: '1' },
    stdio: 'ignore',
  });
  const after = statCpuMs(process.pid);
  if (!before || !after) return 0;
  return (after.childrenMs - before.childrenMs) / n;
}

/**
 * @typedef {object} SetupResult
 * @property {boolean} ok
 * @property {string} [error]
 * @property {number} count
 * @property {number} connectionsPerSecond
 * @property {number} serverCpuMsPerConnection
 * @property {number} clientCpuMsPerConnection
 * @property {number} clientColdCpuMsPerConnection  the same over the warm-up connections of a fresh client process
 */

/**
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ lib: 'tssh' | 'ssh2', server: import('./fixture.mjs').RunningServer, count: number, concurrency: number,
 *           warmup: number, shellCpuMs: number, ssh2NoNative?: boolean }} run
 * @returns {Promise<SetupResult>}
 */
export async function connectionSetup(fx, run) {
  const client = startConnClient(fx, { lib: run.lib, port: run.server.port, mode: 'connect', count: run.count, concurrency: run.concurrency, warmup: run.warmup, ssh2NoNative: run.ssh2NoNative });
  const timer = setTimeout(() => client.kill(), 180000);
  try {
    const warm = JSON.parse((await client.expect('ready')).trim());
    const before = await serverTreeCpuMs(run.server);
    client.send('go');
    const result = JSON.parse(await client.expect(''));
    const after = await serverTreeCpuMs(run.server);
    await client.exited();
    const serverMs = after - before - run.shellCpuMs * result.count;
    const ok = result.errors === 0;
    return {
      ok,
      ...(ok ? {} : { error: `${result.errors} of ${result.count} failed: ${result.firstError}` }),
      count: result.count,
      connectionsPerSecond: (result.count / result.wallMs) * 1000,
      serverCpuMsPerConnection: serverMs / result.count,
      clientCpuMsPerConnection: result.cpuMs / result.count,
      clientColdCpuMsPerConnection: warm.count > 0 ? warm.cpuMs / warm.count : NaN,
    };
  } catch (error) {
    client.kill();
    return { ok: false, error: /** @type {Error} */ (error).message, count: run.count, connectionsPerSecond: NaN, serverCpuMsPerConnection: NaN, clientCpuMsPerConnection: NaN, clientColdCpuMsPerConnection: NaN };
  } finally {
    clearTimeout(timer);
  }
}
