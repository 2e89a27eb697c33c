#!/usr/bin/env node
// @ts-check
/**
 * `npm run bench` — tssh side by side with OpenSSH and the ssh2 package, on loopback.
 *
 *   npm run bench                    full mode: 2 GiB per throughput run, 1,000 idle connections, 3 rounds
 *   npm run bench -- --quick         under 2 minutes: 64 MiB per run, 100 idle connections, 2 rounds
 *
 * Options (after `--`): --rounds N, --bytes SIZE (e.g. 512M, 2G), --figures throughput,setup,memory,files,
 *   --ciphers LIST, --connections N (idle connections for memory), --setup-count N (sequential
 *   connections; 16-concurrent runs open 4×N), --ssh2-no-native (ssh2 without its native crypto
 *   binding), --no-verify (skip the byte-count check of each pairing), --out DIR, --no-build
 *   (measure dist/ as it is instead of compiling a snapshot into bench/.build/, see lib/build.mjs).
 *
 * Figures (see each module for how it measures): 1. throughput (lib/throughput.mjs),
 * 2. connection set-up (lib/setup.mjs), 3. idle memory (lib/memory.mjs), 4. file transfer over
 * SFTP (lib/files.mjs; a file of --bytes, on tmpfs). The implementations are
 * interleaved round by round (every pairing of round 1, then of round 2, …) so that drift on a
 * shared machine hits all alike; the tables give medians with min–max over the rounds and ratios
 * computed round by round. Results: DIR/latest.json, latest.md, throughput.svg (full mode) or
 * quick.json, quick.md, quick-throughput.svg (--quick), plus a dated JSON copy (not committed).
 * These are measurements, never test assertions.
 */
import './lib/build.mjs'; // first: compiles the snapshot of tssh the other modules point at
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Fixture, CIPHERS, ROOT, BENCH_DIR, SSH, SSHD, TSSHD, TSSH, findSshd10 } from './lib/fixture.mjs';
import { transfer, verifyPairing } from './lib/throughput.mjs';
import { connectionSetup, shellTrueCpuMs } from './lib/setup.mjs';
import { idleMemory } from './lib/memory.mjs';
import { SFTP, fileTransfer, makeFiles, verifyFilePairing } from './lib/files.mjs';
import { ssh2BindingAvailable, hideSsh2Binding } from './lib/ssh2-loader.mjs';
import { summarize } from './lib/stats.mjs';
import {
  PAIRINGS,
  macFor,
  cipherLabel,
  summarizeThroughput,
  throughputTable,
  summarizeSetup,
  setupTables,
  summarizeMemory,
  memoryTables,
  FILE_PAIRINGS,
  summarizeFiles,
  filesTable,
  checkTargets,
  targetsTable,
  renderText,
  renderMarkdown,
  oneCommandTable,
  throughputChart,
} from './lib/report.mjs';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    bytes: { type: 'string' },
    figures: { type: 'string', default: 'throughput,setup,memory,files' },
    ciphers: { type: 'string' },
    connections: { type: 'string' },
    'setup-count': { type: 'string' },
    'setup-warmup': { type: 'string' },
    'server-warmup': { type: 'string' },
    'ssh2-no-native': { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0].replace(/^#!.*\n\/\/ @ts-check\n\/\*\*\n/, '').replace(/^ \* ?/gm, ''));
  process.exit(0);
}

/** @param {string} text e.g. 64M, 2G, 1048576 */
function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text.trim());
  if (!match) throw new Error(`bad size ${text}`);
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[match[2].toUpperCase()] ?? 1;
  return Math.round(Number(match[1]) * unit);
}
/** @param {number} bytes */
const sizeLabel = (bytes) => (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`);

const quick = values.quick;
const config = {
  mode: quick ? 'quick' : 'full',
  rounds: Number(values.rounds ?? (quick ? 2 : 3)),
  bytes: parseSize(values.bytes ?? (quick ? '64M' : '2G')),
  figures: new Set(values.figures.split(',').map((s) => s.trim())),
  ciphers: values.ciphers ? values.ciphers.split(',') : CIPHERS,
  idleConnections: Number(values.connections ?? (quick ? 100 : 1000)),
  setupCount: Number(values['setup-count'] ?? (quick ? 10 : 50)),
  // Connections each set-up client makes before it is measured: enough for the JIT to have done
  // its work on the per-connection code of a Node client (and server); their cost is reported too.
  setupWarmup: Number(values['setup-warmup'] ?? (quick ? 10 : 200)),
  // Connections each server serves before the first set-up round (16 at a time, unmeasured): a
  // server that lives long has run its per-connection code thousands of times (the JIT's work on
  // tsshd and the ssh2 server; sshd forks per connection and has nothing to warm).
  serverWarmup: Number(values['server-warmup'] ?? (quick ? 50 : 1000)),
  memoryRounds: Number(values.rounds ?? (quick ? 1 : 3)),
  ssh2NoNative: values['ssh2-no-native'],
  verify: !values['no-verify'],
};
const outDir = values.out ?? join(BENCH_DIR, 'results');
const baseName = quick ? 'quick' : 'latest';

/** @param {string} line */
const progress = (line) => process.stderr.write(`${line}\n`);

for (const [program, what] of [[SSH, 'ssh (Debian package openssh-client)'], [SFTP, 'sftp (Debian package openssh-client)'], [SSHD, 'sshd (Debian package openssh-server)'], [TSSHD, 'tsshd (npm run build makes it)'], [TSSH, 'tssh (npm run build makes it)'], [join(ROOT, 'node_modules/ssh2/package.json'), 'the ssh2 package (npm install)']]) {
  if (!existsSync(program)) {
    process.stderr.write(`bench: ${program} is missing: needs ${what}\n`);
    process.exit(2);
  }
}

/**
 * What a command printed (stdout, else stderr: `ssh -V` writes there).
 * @param {string} cmd @param {string[]} args
 */
function tryRun(cmd, args) {
  const result = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return (result.stdout?.trim() || result.stderr?.trim()) ?? '';
}

if (config.ssh2NoNative) hideSsh2Binding();
const meta = {
  date: new Date().toISOString(),
  mode: config.mode,
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  rounds: config.rounds,
  bytesPerRun: config.bytes,
  idleConnections: config.idleConnections,
  setupCount: config.setupCount,
  setupWarmup: config.setupWarmup,
  serverWarmup: config.serverWarmup,
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))),
  },
  node: process.version,
  openssl: process.versions.openssl,
  openssh: tryRun(SSH, ['-V']),
  // The set-up figure runs OpenSSH 10's sshd too when the tests' cache has it (see fixture.mjs).
  openssh10: findSshd10()?.version,
  ssh2: JSON.parse(readFileSync(join(ROOT, 'node_modules/ssh2/package.json'), 'utf8')).version,
  ssh2NativeBinding: ssh2BindingAvailable(),
  tssh: `${tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${tryRun('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']) ? ' + uncommitted changes in src/' : ''}`,
};
progress(`bench (${config.mode}): ${config.rounds} rounds, ${sizeLabel(config.bytes)} per throughput run, ${config.idleConnections} idle connections; ${meta.openssh}${meta.openssh10 ? ` (set-up also ${meta.openssh10}'s sshd)` : ''}; ssh2 ${meta.ssh2} (native binding ${meta.ssh2NativeBinding ? 'on' : 'off'}); node ${meta.node}; tssh ${meta.tssh}; load ${meta.machine.loadAverageAtStart.join(' ')}`);

const fx = new Fixture();
let stopping = false;
const cleanUp = async () => {
  if (stopping) return;
  stopping = true;
  await fx.close();
};
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => {
    progress(`bench: ${signal}, stopping the servers`);
    void cleanUp().then(() => process.exit(130));
  });
}

const started = performance.now();
/** @type {any[]} */
const throughputRuns = [];
/** @type {any[]} */
const setupRuns = [];
/** @type {any[]} */
const memoryRuns = [];
/** @type {any[]} */
const fileRuns = [];
/** @type {string[]} */
const verification = [];
/** @type {Record<string, number>} */
const figureSeconds = {};
/** @type {Record<string, { clientCpuS: number, serverCpuS: number, seconds: number, wallSeconds?: number }>} */
const fixedCost = {};

try {
  if (config.figures.has('throughput') || config.figures.has('setup') || config.figures.has('files')) {
    const servers = {
      sshd: await fx.start('sshd'),
      tsshd: await fx.start('tsshd'),
      ssh2: await fx.start('ssh2', { ssh2NoNative: config.ssh2NoNative }),
      ...(meta.openssh10 && config.figures.has('setup') ? { sshd10: await fx.start('sshd10') } : {}),
    };
    /** The set-up figure's servers, by name: OpenSSH 10's after the system's sshd when there is one. */
    const setupServers = /** @type {[string, import('./lib/fixture.mjs').RunningServer][]} */ ([
      ['sshd', servers.sshd],
      ...(servers.sshd10 ? [['sshd10', servers.sshd10]] : []),
      ['tsshd', servers.tsshd],
      ['ssh2', servers.ssh2],
    ]);

    if (config.figures.has('throughput')) {
      const t0 = performance.now();
      // Check each pairing moves the bytes exactly (the timed runs cannot see them): every
      // cipher in full mode, the first one in quick mode.
      if (config.verify) {
        for (const cipher of quick ? config.ciphers.slice(0, 1) : config.ciphers) {
          for (const p of PAIRINGS) {
            const error = await verifyPairing(fx, { client: /** @type {any} */ (p.client), server: servers[/** @type {'sshd' | 'tsshd' | 'ssh2'} */ (p.server)], cipher, mac: macFor(cipher), ssh2NoNative: config.ssh2NoNative }, 1 << 20);
            if (error) {
              verification.push(`${p.id} ${cipherLabel(cipher)}: ${error}`);
              progress(`verify ${p.id} ${cipherLabel(cipher)}: FAILED ${error}`);
            }
          }
        }
        progress(`verified the pairings (1 MiB each way): ${verification.length === 0 ? 'all exact' : `${verification.length} failed`}`);
      }
      // The fixed cost of one run, measured per pairing and direction as the median of 5 runs that
      // move nothing: CPU time (process start, key exchange, login, channel, exit) and the time
      // from the remote command's start to the client's exit (the end of the channel and of the
      // client; sshd, which leaves TCP_NODELAY off for sessions without a terminal, spends ~40 ms
      // delayed-ACK waits there). Taken off each run, so that CPU per GiB and MB/s are those of
      // moving the bytes, and 64 MiB runs (quick mode) agree with 2 GiB ones. Reported too, as
      // what one command costs (the "one command" table), with the wall time from the client's
      // start to its exit.
      for (const p of PAIRINGS) {
        for (const direction of /** @type {const} */ (['down', 'up'])) {
          /** @type {any[]} */
          const empty = [];
          for (let i = 0; i < 5; i++) {
            empty.push(await transfer(fx, { client: /** @type {any} */ (p.client), server: servers[/** @type {'sshd' | 'tsshd' | 'ssh2'} */ (p.server)], cipher: config.ciphers[0], mac: macFor(config.ciphers[0]), direction, bytes: 0, ssh2NoNative: config.ssh2NoNative, timeoutMs: 30000 }));
          }
          const ok = empty.filter((r) => r.ok);
          fixedCost[`${p.id} ${direction}`] = {
            clientCpuS: summarize(ok.map((r) => r.clientCpuS)).median || 0,
            serverCpuS: summarize(ok.map((r) => r.serverCpuS)).median || 0,
            seconds: summarize(ok.map((r) => r.seconds)).median || 0,
            wallSeconds: summarize(ok.map((r) => r.wallSeconds)).median || 0,
          };
        }
      }
      progress(`fixed cost of a run (client CPU + server CPU s, end latency ms): ${Object.entries(fixedCost).map(([k, v]) => `${k} ${v.clientCpuS.toFixed(3)}+${v.serverCpuS.toFixed(3)} ${(v.seconds * 1000).toFixed(0)}`).join(', ')}`);
      for (let round = 1; round <= config.rounds; round++) {
        for (const cipher of config.ciphers) {
          for (const direction of /** @type {const} */ (['down', 'up'])) {
            for (const p of PAIRINGS) {
              const result = await transfer(fx, {
                client: /** @type {any} */ (p.client),
                server: servers[/** @type {'sshd' | 'tsshd' | 'ssh2'} */ (p.server)],
                cipher,
                mac: macFor(cipher),
                direction,
                bytes: config.bytes,
                ssh2NoNative: config.ssh2NoNative,
                // At 5 MB/s even: anything slower is a stall, not a speed.
                timeoutMs: Math.max(30000, (config.bytes / 5e6) * 1000),
              });
              const fixed = fixedCost[`${p.id} ${direction}`] ?? { clientCpuS: 0, serverCpuS: 0, seconds: 0 };
              // The end latency is taken off only while it is a small part of the run.
              const netSeconds = result.seconds - fixed.seconds > result.seconds / 2 ? result.seconds - fixed.seconds : result.seconds;
              throughputRuns.push({
                round, cipher, direction, pairing: p.id, client: p.client, server: p.server, load: loadavg()[0], ...result,
                mbps: config.bytes / netSeconds / 1e6,
                mbpsGross: result.mbps,
                netSeconds,
                clientCpuNetS: result.clientCpuS - fixed.clientCpuS,
                serverCpuNetS: result.serverCpuS - fixed.serverCpuS,
              });
              const run = throughputRuns[throughputRuns.length - 1];
              progress(
                `throughput r${round} ${cipherLabel(cipher).padEnd(30)} ${direction.padEnd(4)} ${p.id.padEnd(16)} ` +
                  (result.ok
                    ? `${run.mbps.toFixed(0).padStart(5)} MB/s  client ${((result.clientCpuS - fixed.clientCpuS) / (config.bytes / 2 ** 30)).toFixed(2)} s/GiB  server ${((result.serverCpuS - fixed.serverCpuS) / (config.bytes / 2 ** 30)).toFixed(2)} s/GiB`
                    : `FAILED ${result.error}`),
              );
            }
          }
        }
      }
      figureSeconds.throughput = (performance.now() - t0) / 1000;
    }

    if (config.figures.has('setup')) {
      const t0 = performance.now();
      const shellCpuMs = shellTrueCpuMs();
      progress(`set-up: one \`bash -c true\` costs ${shellCpuMs.toFixed(2)} ms CPU (each server's figure counts the processes it reaped, less this per connection)`);
      for (const [server, running] of setupServers) {
        if (config.serverWarmup <= 0) break;
        const warm = await connectionSetup(fx, { lib: 'tssh', server: running, count: config.serverWarmup, concurrency: 16, warmup: 0, shellCpuMs, ssh2NoNative: config.ssh2NoNative });
        progress(`set-up: ${server} served ${config.serverWarmup} connections first (16 at a time, not counted)${warm.ok ? '' : `: FAILED ${warm.error}`}`);
      }
      for (let round = 1; round <= config.rounds; round++) {
        for (const [concurrency, count] of [[1, config.setupCount], [16, config.setupCount * 4]]) {
          for (const lib of /** @type {const} */ (['tssh', 'ssh2'])) {
            for (const [server, running] of setupServers) {
              const result = await connectionSetup(fx, { lib, server: running, count, concurrency, warmup: config.setupWarmup, shellCpuMs, ssh2NoNative: config.ssh2NoNative });
              setupRuns.push({ round, concurrency, lib, server, shellCpuMs, load: loadavg()[0], ...result });
              progress(
                `set-up r${round} ${concurrency === 1 ? 'sequential' : `${concurrency} concurrent`} ${lib}→${server}: ` +
                  (result.ok
                    ? `${result.connectionsPerSecond.toFixed(1)} conn/s, server ${result.serverCpuMsPerConnection.toFixed(2)} ms/conn, client ${result.clientCpuMsPerConnection.toFixed(2)} ms/conn (first ${config.setupWarmup} of a fresh client ${result.clientColdCpuMsPerConnection.toFixed(2)})`
                    : `FAILED ${result.error}`),
              );
            }
          }
        }
      }
      figureSeconds.setup = (performance.now() - t0) / 1000;
    }

    if (config.figures.has('files')) {
      const t0 = performance.now();
      const files = makeFiles(config.bytes);
      const cipher = config.ciphers[0];
      try {
        /** @param {{ client: string, server: string }} p */
        const endpoints = (p) => ({ client: /** @type {'sftp' | 'ssh2'} */ (p.client), server: servers[/** @type {'sshd' | 'tsshd'} */ (p.server)], cipher });
        if (config.verify) {
          let failed = 0;
          for (const p of FILE_PAIRINGS) {
            const error = await verifyFilePairing(fx, endpoints(p), files);
            if (error) {
              failed++;
              verification.push(`files ${p.id}: ${error}`);
              progress(`verify files ${p.id}: FAILED ${error}`);
            }
          }
          progress(`verified the file pairings (1 MiB each way, byte count): ${failed === 0 ? 'all exact' : `${failed} failed`}`);
        }
        // Fixed cost per pairing and direction: the median of 3 runs moving an empty file.
        for (const p of FILE_PAIRINGS) {
          for (const direction of /** @type {const} */ (['down', 'up'])) {
            /** @type {any[]} */
            const empty = [];
            for (let i = 0; i < 3; i++) empty.push(await fileTransfer(fx, { ...endpoints(p), direction, file: files.empty, bytes: 0, timeoutMs: 30000 }));
            const ok = empty.filter((r) => r.ok);
            fixedCost[`files ${p.id} ${direction}`] = {
              clientCpuS: summarize(ok.map((r) => r.clientCpuS)).median || 0,
              serverCpuS: summarize(ok.map((r) => r.serverCpuS)).median || 0,
              seconds: summarize(ok.map((r) => r.seconds)).median || 0,
            };
          }
        }
        for (let round = 1; round <= config.rounds; round++) {
          for (const direction of /** @type {const} */ (['down', 'up'])) {
            for (const p of FILE_PAIRINGS) {
              const result = await fileTransfer(fx, { ...endpoints(p), direction, file: files.blob, bytes: config.bytes, timeoutMs: Math.max(30000, (config.bytes / 5e6) * 1000) });
              const fixed = fixedCost[`files ${p.id} ${direction}`] ?? { clientCpuS: 0, serverCpuS: 0, seconds: 0 };
              const netSeconds = result.seconds - fixed.seconds > result.seconds / 2 ? result.seconds - fixed.seconds : result.seconds;
              const run = {
                round, cipher, direction, pairing: p.id, client: p.client, server: p.server, load: loadavg()[0], ...result,
                mbps: config.bytes / netSeconds / 1e6,
                netSeconds,
                clientCpuNetS: result.clientCpuS - fixed.clientCpuS,
                serverCpuNetS: result.serverCpuS - fixed.serverCpuS,
              };
              fileRuns.push(run);
              const gib = config.bytes / 2 ** 30;
              progress(
                `files r${round} ${direction === 'down' ? 'get' : 'put'} ${p.id.padEnd(11)} ` +
                  (result.ok ? `${run.mbps.toFixed(0).padStart(5)} MB/s  client ${(run.clientCpuNetS / gib).toFixed(2)} s/GiB  server ${(run.serverCpuNetS / gib).toFixed(2)} s/GiB` : `FAILED ${result.error}`),
              );
            }
          }
        }
      } finally {
        files.remove();
      }
      figureSeconds.files = (performance.now() - t0) / 1000;
    }
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  }

  if (config.figures.has('memory')) {
    const t0 = performance.now();
    for (let round = 1; round <= config.memoryRounds; round++) {
      for (const server of /** @type {const} */ (['sshd', 'tsshd', 'ssh2'])) {
        // The same client library (ssh2's, a third party to two of the three servers) for all.
        const result = await idleMemory(fx, { kind: server, lib: 'ssh2', count: config.idleConnections, settleMs: quick ? 500 : 1500 });
        memoryRuns.push({ round, server, ...result });
        progress(
          `memory r${round} ${server}: ` +
            (result.ok
              ? `${result.rssKiBPerConnection.toFixed(1)} KiB RSS/conn (PSS ${result.pssKiBPerConnection.toFixed(1)}, marginal ${result.marginalRssKiBPerConnection.toFixed(1)}), ${result.processes} processes`
              : `FAILED ${result.error}`),
        );
      }
    }
    figureSeconds.memory = (performance.now() - t0) / 1000;
  }
} finally {
  await cleanUp();
}

// ----------------------------------------------------------------------------------------------
// Summaries, tables, files.

const throughput = throughputRuns.length > 0 ? summarizeThroughput(throughputRuns, config.ciphers) : undefined;
const setup = setupRuns.length > 0 ? summarizeSetup(setupRuns) : undefined;
const memory = memoryRuns.length > 0 ? summarizeMemory(memoryRuns) : undefined;
const files = fileRuns.length > 0 ? summarizeFiles(fileRuns) : undefined;
const targets = checkTargets({ throughput, setup, memory });
const totalSeconds = (performance.now() - started) / 1000;

/** @type {import('./lib/report.mjs').Table[]} */
const tables = [];
if (throughput) tables.push(throughputTable(throughput));
if (Object.keys(fixedCost).some((k) => !k.startsWith('files '))) tables.push(oneCommandTable(fixedCost, config.ciphers[0]));
if (setup) tables.push(...setupTables(setup));
if (memory) tables.push(...memoryTables(memory));
if (files) tables.push(filesTable(files, sizeLabel(config.bytes), config.ciphers[0]));
tables.push(targetsTable(targets));

const subtitle = `${config.mode} mode, ${sizeLabel(config.bytes)} per run, ${config.rounds} rounds, ${meta.machine.cpus} cores, loopback; ${meta.openssh.split(',')[0]}; ssh2 ${meta.ssh2}${meta.ssh2NativeBinding ? ' (native binding)' : ' (no native binding)'}; Node ${meta.node}`;
for (const table of tables) process.stdout.write(`${renderText(table)}\n`);
const missed = targets.filter((t) => !t.met);
process.stdout.write(`\n${targets.length - missed.length} of ${targets.length} targets met; ${verification.length} verification failures; ${totalSeconds.toFixed(0)} s (${Object.entries(figureSeconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')})\n`);

const notes = [
  `- Command: \`${meta.command}\`, ${meta.date}, ${totalSeconds.toFixed(0)} s in all (${Object.entries(figureSeconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')}).`,
  `- Machine: ${meta.machine.cpus} × ${meta.machine.cpuModel}, ${meta.machine.memoryGiB} GiB, Linux ${meta.machine.kernel}, load average at start ${meta.machine.loadAverageAtStart.join(' ')}; ${meta.openssh}; Node ${meta.node} (OpenSSL ${meta.openssl}); ssh2 ${meta.ssh2} with its native crypto binding ${meta.ssh2NativeBinding ? '**on**' : '**off**'}; tssh ${meta.tssh}.`,
  `- Throughput: ${sizeLabel(config.bytes)} per run, timed from the remote command's start to the client's exit; clients are programs (ssh, \`dist/bin/tssh.js\`, \`bench/ssh2-client.mjs\`) writing to /dev/null or reading \`head -c\` from a pipe; CPU from /usr/bin/time (client) and /proc (server, less the remote shell and command for sshd), less the fixed cost of a run that moves nothing (start-up, key exchange, login, exit; in the JSON as fixedCost), so CPU s/GiB is the cost of moving the bytes; MB/s likewise leaves out the end latency of such a run (mbpsGross in the JSON keeps it in).`,
  '- "tssh/OpenSSH" and "tssh/ssh2" are medians of ratios taken round by round against the pairing named (the same server with the other client, or the same client with the other server; tssh → tsshd against ssh → sshd and the ssh2 client).',
  `- Set-up: in-process clients (bench/conn-client.mjs); ${config.setupCount} sequential and ${config.setupCount * 4} connections 16 at a time per run, each run's client process first making ${config.setupWarmup} connections the same way, unmeasured but for its own CPU, reported as the "cold" client figure (a fresh Node process's first connections also pay for loading and compiling the code), and each server first serving ${config.serverWarmup} connections 16 at a time, not counted (a long-running server's per-connection code has been compiled); server CPU is the server's own plus that of the processes it reaped (sshd's per-connection processes, helpers such as setpriv), less one \`bash -c true\` per connection (every server runs the command through the shell).${meta.openssh10 ? ` "sshd 10" is ${meta.openssh10}'s sshd (Debian's backport, from the tests' cache, scripts/fetch-openssh10.sh), run with the same configuration: its rows are there to catch what only a newer sshd shows, and the targets stay those of the system's sshd.` : ''}`,
  `- File transfer: one ${sizeLabel(config.bytes)} file (sparse, on tmpfs) fetched to /dev/null and sent to /dev/null over SFTP, ${config.ciphers[0]}, against each server's \`Subsystem sftp internal-sftp\`; clients: OpenSSH's sftp (batch mode) and the ssh2 package's SFTP client (fastGet/fastPut, \`bench/ssh2-client.mjs --sftp\`); time and CPU of the whole client run less those of moving an empty file; server CPU includes the processes the server reaped (sshd's session process, tsshd's SFTP child). There is no tssh SFTP client program yet: the ratios compare tsshd's SFTP server with sshd's.`,
  `- Memory: ${config.idleConnections} idle authenticated connections (no channel) opened by the ssh2 client library; sshd's figure sums its per-connection processes (one per connection when the user is root: OpenSSH skips the unprivileged post-auth child for root).`,
  ...(verification.length > 0 ? ['- **Verification failures** (1 MiB each way through a pipe, byte-counted):', ...verification.map((v) => `  - ${v.replace(/\n/g, ' ')}`)] : ['- Every pairing verified: 1 MiB each way arrived exactly.']),
];
const failures = [...(throughput ?? []), ...(setup?.rows ?? []), ...(memory?.rows ?? []), ...(files ?? [])].flatMap((r) => r.errors ?? []);
if (failures.length > 0) notes.push('- **Failed runs**:', ...failures.map((f) => `  - ${f.replace(/\n/g, ' ').slice(0, 400)}`));

const markdown = [
  `## Benchmarks: tssh, OpenSSH and ssh2 (${config.mode} mode)`,
  '',
  ...notes,
  '',
  `![throughput](${baseName === 'latest' ? 'throughput.svg' : 'quick-throughput.svg'})`,
  '',
  ...tables.map(renderMarkdown),
].join('\n');

mkdirSync(outDir, { recursive: true });
const json = JSON.stringify({ meta: { ...meta, seconds: totalSeconds, figureSeconds }, verification, fixedCost, throughput: { runs: throughputRuns, summary: throughput }, setup: { runs: setupRuns, ...setup }, memory: { runs: memoryRuns, ...memory }, files: { runs: fileRuns, summary: files }, targets }, null, 2);
writeFileSync(join(outDir, `${baseName}.json`), `${json}\n`);
writeFileSync(join(outDir, `${baseName}.md`), markdown);
writeFileSync(join(outDir, `run-${meta.date.replace(/[:.]/g, '-')}.json`), `${json}\n`);
if (throughput) writeFileSync(join(outDir, baseName === 'latest' ? 'throughput.svg' : 'quick-throughput.svg'), throughputChart(throughput, subtitle));
process.stdout.write(`wrote ${join(outDir, `${baseName}.json`)}, ${baseName}.md${throughput ? `, ${baseName === 'latest' ? 'throughput.svg' : 'quick-throughput.svg'}` : ''}\n`);
