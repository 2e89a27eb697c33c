/**
 * glibc's malloc settings for tssh and tsshd, which their `#!` lines pass as GLIBC_TUNABLES (glibc
 * reads it once, at start-up; nothing later in the process can change it).
 *
 * Every packet node:crypto seals or opens is a fresh buffer from malloc, freed only when V8
 * collects it, so megabytes of them are freed at once after each collection. With glibc's default
 * padding at the top of the heap (128 KiB), that memory goes back to the kernel at once and the
 * next packets fault fresh, zeroed pages back in (`perf`: page faults under the buffers' memset
 * and memmove, and brk). A 16 MiB pad keeps them: a 1 GiB upload to sshd cost tssh 2.45 -> 1.99
 * CPU s/GiB, a download 1.63 -> 1.45, with the largest resident size 71 -> 75 MiB
 * (docs/performance.md). Other C libraries ignore the variable.
 */
export const CLIENT_MALLOC_TUNABLES = 'glibc.malloc.top_pad=16777216';

/**
 * tsshd's: at most two malloc arenas, the main thread's and one for every other thread. glibc
 * gives each thread that allocates its own arena (up to eight per core), and V8's helper threads
 * (concurrent compilation above all) fill theirs and keep the pages: measured with 1,000 idle
 * connections (bench/lib/memory.mjs' procedure, traced with `--trace-gc`), the bundled tsshd's
 * resident size grew 4-5 MiB more than its JavaScript heap explains, and not with
 * `--no-concurrent-recompilation` or one arena. With two, the RSS with 1,000 connections open was
 * 72.5 MiB instead of 75.8 (one arena: 70.4), and neither logins nor transfers cost measurably
 * more CPU (interleaved rounds, docs/performance.md).
 */
export const SERVER_MALLOC_TUNABLES = 'glibc.malloc.arena_max=2';

/**
 * Remove our own setting from the environment, so that the commands tssh starts (ProxyCommand,
 * LocalCommand, `Match exec`), or the helpers tsshd runs with its environment (getent, mkfifo),
 * run with the settings they would have had without it; a value the user set, which differs,
 * stays. Returns the value removed, for a copy of tssh started again. (A session's commands get
 * an environment of their own anyway, as under sshd.)
 */
export function takeOwnMallocTunables(value: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.GLIBC_TUNABLES !== value) return undefined;
  delete env.GLIBC_TUNABLES;
  return value;
}
