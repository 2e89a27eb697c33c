// @ts-check
/**
 * CPU time and memory of processes, read from Linux's /proc.
 *
 * - `liveCpuMs(pid)`: CPU time of a running process in milliseconds with microsecond precision,
 *   the sum of `se.sum_exec_runtime` over its threads (/proc/PID/task/TID/sched). Threads that
 *   already exited are not in it: use it for long-lived processes (Node servers: their worker
 *   threads live as long as the process). Falls back to /proc/PID/stat when sched is missing.
 * - `statCpuMs(pid)`: utime+stime of the process itself and cutime+cstime, the CPU time of the
 *   children it has waited for (all in clock ticks, 10 ms here). sshd's per-connection processes
 *   exit and are reaped by the listener, so their CPU ends up in the listener's cutime+cstime.
 * - `descendants(pid)`, `rssKiB(pid)`, `pssKiB(pid)`.
 * - `serverTreeCpuMs(server)`: a server's CPU with every process it started (see there).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { isOpenSshServer } from './fixture.mjs';

const TICK_MS = 10; // USER_HZ is 100 on Linux (getconf CLK_TCK)

/** @param {string} path */
function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses).
 * @param {number} pid
 * @returns {string[] | undefined} index 0 is field 3 (state)
 */
function statFields(pid) {
  const text = read(`/proc/${pid}/stat`);
  if (!text) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

/**
 * @param {number} pid
 * @returns {{ selfMs: number, childrenMs: number } | undefined}
 */
export function statCpuMs(pid) {
  const f = statFields(pid);
  if (!f) return undefined;
  // Fields 14-17 (utime, stime, cutime, cstime) are at index 11-14 here.
  const n = (/** @type {number} */ i) => Number(f[i]);
  return { selfMs: (n(11) + n(12)) * TICK_MS, childrenMs: (n(13) + n(14)) * TICK_MS };
}

/**
 * @param {number} pid
 * @returns {number} milliseconds, NaN if the process is gone
 */
export function liveCpuMs(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  let total = 0;
  for (const tid of tasks) {
    const text = read(`/proc/${pid}/task/${tid}/sched`);
    const match = text && /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(text);
    if (!match) {
      const stat = statCpuMs(pid);
      return stat ? stat.selfMs : NaN;
    }
    total += Number(match[1]);
  }
  return total;
}

/**
 * Direct children (from /proc/PID/task/TID/children).
 * @param {number} pid
 * @returns {number[]}
 */
export function children(pid) {
  /** @type {number[]} */
  const out = [];
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    const text = read(`/proc/${pid}/task/${tid}/children`);
    if (text) for (const word of text.trim().split(/\s+/)) if (word) out.push(Number(word));
  }
  return out;
}

/**
 * Every process below pid (children, grandchildren, …).
 * @param {number} pid
 * @returns {number[]}
 */
export function descendants(pid) {
  const out = [];
  const queue = children(pid);
  while (queue.length > 0) {
    const next = /** @type {number} */ (queue.shift());
    out.push(next);
    queue.push(...children(next));
  }
  return out;
}

/** @param {number} pid @returns {string | undefined} */
export function commandName(pid) {
  return read(`/proc/${pid}/comm`)?.trim();
}

/**
 * Resident set size in KiB (VmRSS), 0 if the process is gone.
 * @param {number} pid
 */
export function rssKiB(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return match ? Number(match[1]) : 0;
}

/**
 * Proportional set size in KiB (shared pages divided among the processes that map them), 0 if gone.
 * @param {number} pid
 */
export function pssKiB(pid) {
  const match = /^Pss:\s+(\d+) kB/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? '');
  return match ? Number(match[1]) : 0;
}

/** Long-lived helpers a server keeps (tsshd's spawn helper, src/cli/sshd/spawn-helper.ts), by name. */
const LASTING = new Set(['tsshd-spawner']);

/**
 * CPU milliseconds of a server and of every process it started: its own (a Node server's threads,
 * µs precise; sshd's idle C listener from /proc/PID/stat), the children it has reaped, and its
 * long-lived helpers' own and reaped (tsshd's spawn helper, which starts the commands). Waits (up
 * to 10 s) until every other descendant has gone, so that the last session's processes are counted.
 * @param {{ pid: number, kind: string }} server
 */
export async function serverTreeCpuMs(server) {
  const lasting = (/** @type {number} */ pid) => LASTING.has(commandName(pid) ?? '');
  const deadline = Date.now() + 10000;
  while (descendants(server.pid).some((pid) => !lasting(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const stat = statCpuMs(server.pid);
  if (!stat) return NaN;
  let ms = (isOpenSshServer(server.kind) ? stat.selfMs : liveCpuMs(server.pid)) + stat.childrenMs;
  for (const pid of descendants(server.pid).filter(lasting)) ms += liveCpuMs(pid) + (statCpuMs(pid)?.childrenMs ?? 0);
  return ms;
}
