/**
 * glibc's malloc setting for tssh, which its `#!` line passes as GLIBC_TUNABLES (glibc reads it
 * once, at start-up; nothing later in the process can change it).
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
 * Remove our own setting from the environment, so that the commands tssh starts (ProxyCommand,
 * LocalCommand, `Match exec`) run with the settings they would have had without it; a value the
 * user set, which differs, stays. Returns the value removed, for a copy of tssh started again.
 */
export function takeOwnMallocTunables(value: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.GLIBC_TUNABLES !== value) return undefined;
  delete env.GLIBC_TUNABLES;
  return value;
}
