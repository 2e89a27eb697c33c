#!/usr/bin/env node
// @ts-check
/**
 * Where tssh's time goes during a transfer: runs the throughput pairings that involve tssh under
 * `node --cpu-prof` and prints the functions with the most self time.
 *
 *   node bench/profile.mjs [--bytes 512M] [--ciphers aes128-gcm@openssh.com,...] [--top 20]
 *   node bench/profile.mjs --setup [--count 200]
 *
 * For each cipher and direction: ssh → tsshd with tsshd profiled (one tsshd process per run, so
 * each profile holds one transfer), and tssh → sshd with the tssh program profiled. Profiles are
 * kept in bench/profiles/ (not committed) for Chrome DevTools or speedscope.
 *
 * With --setup: connection set-up instead (exec `true`, sequential): tsshd profiled while the ssh2
 * client connects, and the in-process tssh client profiled while it connects to sshd.
 */
import './lib/build.mjs'; // first: compiles the snapshot of tssh that is profiled
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Fixture, BENCH_DIR, ROOT } from './lib/fixture.mjs';
import { transfer } from './lib/throughput.mjs';
import { macFor, cipherLabel } from './lib/report.mjs';
import { startConnClient } from './lib/clients.mjs';

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '512M' },
    ciphers: { type: 'string', default: 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr' },
    top: { type: 'string', default: '18' },
    pairings: { type: 'string', default: 'ssh→tsshd,tssh→sshd' },
    setup: { type: 'boolean', default: false },
    count: { type: 'string', default: '200' },
    'no-build': { type: 'boolean', default: false },
  },
});
const match = /^(\d+)([MG])$/i.exec(values.bytes);
const bytes = match ? Number(match[1]) * (match[2].toUpperCase() === 'G' ? 2 ** 30 : 2 ** 20) : Number(values.bytes);
const top = Number(values.top);
const profileRoot = join(BENCH_DIR, 'profiles');

/**
 * Self time per function from a .cpuprofile (Chrome DevTools format), in ms, largest first.
 * @param {string} file
 */
export function selfTimes(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  /** @type {Map<number, any>} */
  const nodes = new Map(profile.nodes.map((/** @type {any} */ n) => [n.id, n]));
  /** @type {Map<string, number>} */
  const byFunction = new Map();
  let total = 0;
  profile.samples.forEach((/** @type {number} */ id, /** @type {number} */ i) => {
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const frame = nodes.get(id).callFrame;
    const url = String(frame.url).replace(`file://${ROOT}/bench/.build/`, 'dist/').replace(`file://${ROOT}/`, '');
    const name = `${frame.functionName || '(anonymous)'}  ${url ? `${url}:${frame.lineNumber + 1}` : ''}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + delta);
    total += delta;
  });
  const idle = byFunction.get('(idle)') ?? 0;
  return { total, busy: total - idle, rows: [...byFunction.entries()].sort((a, b) => b[1] - a[1]) };
}

/**
 * Self time grouped: our code by file, Node's internals by module, natives, GC.
 * @param {[string, number][]} rows
 */
function byArea(rows) {
  /** @type {Map<string, number>} */
  const areas = new Map();
  for (const [name, ms] of rows) {
    if (name.startsWith('(idle)')) continue;
    const url = name.split('  ')[1] ?? '';
    let area;
    if (name.startsWith('(garbage collector)')) area = 'garbage collector';
    else if (name.startsWith('(program)')) area = '(program: native, outside JS)';
    else if (url.startsWith('dist/')) area = url.replace(/:\d+$/, '');
    else if (url.startsWith('node:')) area = url.replace(/:\d+$/, '');
    else if (!url) area = `native: ${name}`;
    else area = url.replace(/:\d+$/, '');
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  return [...areas.entries()].sort((a, b) => b[1] - a[1]);
}

/** @param {string} dir */
function newestProfile(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no profile written in ${dir}`);
  return join(dir, files.sort().at(-1) ?? '');
}

/**
 * @param {string} title
 * @param {string} file
 */
function report(title, file) {
  const { busy, rows } = selfTimes(file);
  const lines = [`\n## ${title}`, `profile: ${file.replace(`${ROOT}/`, '')}; ${busy.toFixed(0)} ms busy`, '', 'top self time:'];
  for (const [name, ms] of rows.filter(([n]) => !n.startsWith('(idle)')).slice(0, top)) {
    lines.push(`${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(6)} ms  ${name}`);
  }
  lines.push('', 'by area:');
  for (const [area, ms] of byArea(rows).slice(0, 12)) lines.push(`${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${area}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

const fx = new Fixture();
rmSync(profileRoot, { recursive: true, force: true });
try {
  const sshd = await fx.start('sshd');
  if (values.setup) {
    const count = Number(values.count);
    /** @param {'tssh' | 'ssh2'} lib @param {import('./lib/fixture.mjs').RunningServer} server @param {string[]} [nodeFlags] */
    const connect = async (lib, server, nodeFlags) => {
      const client = startConnClient(fx, { lib, port: server.port, mode: 'connect', count, concurrency: 1, nodeFlags });
      await client.expect('ready');
      client.send('go');
      const result = JSON.parse(await client.expect(''));
      await client.exited();
      return result;
    };
    let dir = join(profileRoot, 'tsshd-setup');
    mkdirSync(dir, { recursive: true });
    const tsshd = await fx.start('tsshd', { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir] });
    let result = await connect('ssh2', tsshd);
    await tsshd.stop();
    report(`tsshd, ${count} sequential connections from the ssh2 client: ${((result.count / result.wallMs) * 1000).toFixed(1)} conn/s`, newestProfile(dir));
    dir = join(profileRoot, 'tssh-client-setup');
    mkdirSync(dir, { recursive: true });
    result = await connect('tssh', sshd, ['--cpu-prof', '--cpu-prof-dir', dir]);
    report(`tssh client in process, ${count} sequential connections to sshd: ${((result.count / result.wallMs) * 1000).toFixed(1)} conn/s, ${(result.cpuMs / result.count).toFixed(2)} ms CPU/conn`, newestProfile(dir));
  }
  for (const cipher of values.setup ? [] : values.ciphers.split(',')) {
    for (const direction of /** @type {const} */ (['down', 'up'])) {
      const tag = `${cipherLabel(cipher).replace(/[^a-z0-9]+/gi, '-')}-${direction}`;
      if (values.pairings.includes('ssh→tsshd')) {
        const dir = join(profileRoot, `tsshd-${tag}`);
        mkdirSync(dir, { recursive: true });
        const tsshd = await fx.start('tsshd', { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir] });
        const result = await transfer(fx, { client: 'ssh', server: tsshd, cipher, mac: macFor(cipher), direction, bytes });
        await tsshd.stop();
        report(`tsshd (ssh → tsshd), ${cipherLabel(cipher)}, ${direction === 'down' ? 'server → client' : 'client → server'}: ${result.mbps.toFixed(0)} MB/s`, newestProfile(dir));
      }
      if (values.pairings.includes('tssh→sshd')) {
        const dir = join(profileRoot, `tssh-${tag}`);
        mkdirSync(dir, { recursive: true });
        const result = await transfer(fx, { client: 'tssh', server: sshd, cipher, mac: macFor(cipher), direction, bytes, nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir] });
        report(`tssh program (tssh → sshd), ${cipherLabel(cipher)}, ${direction === 'down' ? 'server → client' : 'client → server'}: ${result.mbps.toFixed(0)} MB/s`, newestProfile(dir));
      }
    }
  }
} finally {
  await fx.close();
}
