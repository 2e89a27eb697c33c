// @ts-check
/**
 * Figure 3: memory per idle authenticated connection on the server.
 *
 * For each round a fresh server is started and warmed up (16 connections opened and closed, so
 * code loaded on first use is not counted), then one client process (bench/conn-client.mjs, the
 * same library for every server) opens N/2 authenticated connections without channels, then N/2
 * more; after each step and a settling pause the server's memory is read:
 * - tsshd and the ssh2 server: the process's RSS (and PSS);
 * - sshd: the sum over its per-connection processes (every descendant of the listener; two per
 *   connection after login). RSS counts shared library pages in every process; PSS divides them
 *   among the processes that share them, so PSS is the fairer sum for sshd.
 * Per connection = (memory with N open − memory before) / N; `marginal` = the growth from N/2 to
 * N divided by N/2, which no warm-up effect reaches.
 */
import { descendants, pssKiB, rssKiB } from './procfs.mjs';
import { startConnClient } from './clients.mjs';
import { sleep } from './fixture.mjs';

/**
 * @param {import('./fixture.mjs').RunningServer} server
 * @returns {{ rssKiB: number, pssKiB: number, processes: number }}
 */
function serverMemory(server) {
  if (server.kind === 'sshd') {
    const pids = descendants(server.pid);
    let rss = 0;
    let pss = 0;
    for (const pid of pids) {
      rss += rssKiB(pid);
      pss += pssKiB(pid);
    }
    return { rssKiB: rss, pssKiB: pss, processes: pids.length };
  }
  return { rssKiB: rssKiB(server.pid), pssKiB: pssKiB(server.pid), processes: 1 };
}

/**
 * @typedef {object} MemoryResult
 * @property {boolean} ok
 * @property {string} [error]
 * @property {number} count
 * @property {number} rssKiBPerConnection
 * @property {number} pssKiBPerConnection
 * @property {number} marginalRssKiBPerConnection
 * @property {number} baseRssKiB
 * @property {number} rssKiB       with all connections open
 * @property {number} processes    server processes with all connections open
 */

/**
 * @param {import('./fixture.mjs').Fixture} fx
 * @param {{ kind: 'sshd' | 'tsshd' | 'ssh2', lib: 'tssh' | 'ssh2', count: number, settleMs: number }} run
 * @returns {Promise<MemoryResult>}
 */
export async function idleMemory(fx, run) {
  const server = await fx.start(run.kind);
  /** @type {import('./clients.mjs').ConnClient | undefined} */
  let client;
  const timer = setTimeout(() => client?.kill(), 300000);
  try {
    const warm = startConnClient(fx, { lib: run.lib, port: server.port, mode: 'hold', count: 16, concurrency: 16 });
    await warm.expect('held ');
    warm.endInput();
    await warm.exited();
    const deadline = Date.now() + 10000;
    while (server.kind === 'sshd' && descendants(server.pid).length > 0 && Date.now() < deadline) await sleep(20);
    await sleep(run.settleMs);
    const base = serverMemory(server);

    const half = Math.floor(run.count / 2);
    client = startConnClient(fx, { lib: run.lib, port: server.port, mode: 'hold', count: half, concurrency: 16 });
    await client.expect('held ');
    await sleep(run.settleMs);
    const middle = serverMemory(server);
    client.send(`open ${run.count - half}`);
    const held = JSON.parse(await client.expect('held '));
    await sleep(run.settleMs);
    const full = serverMemory(server);
    client.endInput();
    await client.exited();
    const ok = held.errors === 0 && held.count === run.count;
    return {
      ok,
      ...(ok ? {} : { error: `${held.count} of ${run.count} connections open, ${held.errors} failed: ${held.firstError}` }),
      count: held.count,
      rssKiBPerConnection: (full.rssKiB - base.rssKiB) / held.count,
      pssKiBPerConnection: (full.pssKiB - base.pssKiB) / held.count,
      marginalRssKiBPerConnection: (full.rssKiB - middle.rssKiB) / (held.count - half),
      baseRssKiB: base.rssKiB,
      rssKiB: full.rssKiB,
      processes: full.processes,
    };
  } catch (error) {
    client?.kill();
    return {
      ok: false,
      error: /** @type {Error} */ (error).message,
      count: run.count,
      rssKiBPerConnection: NaN,
      pssKiBPerConnection: NaN,
      marginalRssKiBPerConnection: NaN,
      baseRssKiB: NaN,
      rssKiB: NaN,
      processes: NaN,
    };
  } finally {
    clearTimeout(timer);
    await server.stop();
  }
}
