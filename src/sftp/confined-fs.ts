/**
 * Paths for the SFTP server: as they are (a normal session), or confined to a root folder, for
 * tsshd's ChrootDirectory with internal-sftp.
 *
 * Why not a real chroot: Node has no chroot(2), and Node itself (its binary, its libraries, our
 * scripts) would have to exist inside the user's jail for a chrooted child to start. So the
 * server, which runs as the user (internal-sftp.ts), resolves every path itself, inside the root:
 *
 *  - one component at a time, each looked up *in the directory we already hold open*, never by
 *    a path string from `/`: the directory is an O_PATH file descriptor, and the next component
 *    is opened as `/proc/self/fd/DIRFD/NAME` with O_NOFOLLOW. The kernel jumps through the
 *    /proc magic link to exactly the directory we opened (wherever it has been moved to since)
 *    and looks NAME up there without following it if it is a symbolic link;
 *  - a symbolic link is read and its target resolved by us: an absolute target starts again at
 *    the root, `..` never goes above the root (as in a real chroot), at most 40 links per path;
 *  - the operation then works on `/proc/self/fd/FD` (a descriptor pinned to the final file: no
 *    later rename or symlink swap can redirect it) or on `/proc/self/fd/DIRFD/NAME` for the
 *    operations that never follow a final symbolic link (lstat, unlink, rename, mkdir, …). A file
 *    created where nothing existed is opened with O_NOFOLLOW, so a link planted in between
 *    fails the request instead of being followed.
 * This is what openat2(2)'s RESOLVE_IN_ROOT does in the kernel, which Node cannot call.
 *
 * Limits: Linux only (O_PATH and /proc must exist; tsshd chroots only as root on Linux anyway);
 * a few more system calls per request; hard links and bind mounts made by an administrator that
 * lead outside the folder are followed, as they would be in a real chroot; and it confines the
 * SFTP server only. The process still runs as the user (not chrooted), so the kernel's checks
 * still apply to everything it touches.
 */
import * as fs from 'node:fs';

const fsp = fs.promises;

/** Linux's O_PATH (the same value on x86, ARM and most architectures Node runs on). */
const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY } = fs.constants;
/** As Linux's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;

/**
 * How the final component is treated:
 *  - `follow`: symbolic links followed; it must exist (stat, opendir, setstat, statvfs);
 *  - `create`: followed; it may be missing (open, perhaps with O_CREAT);
 *  - `nofollow`: not followed, may be missing (lstat, readlink, remove, rename, mkdir, link, symlink).
 */
export type ResolveMode = 'follow' | 'create' | 'nofollow';

export interface ResolvedPath {
  /** The path for the system call. */
  readonly path: Buffer;
  /** Confined and the final component was missing: an open must add O_NOFOLLOW. */
  readonly missing: boolean;
  /** Closes the descriptors that `path` refers to; call once the operation is done. */
  release(): void;
}

export interface PathResolver {
  /** True when paths are confined to a root (fstatvfs and handles then use /proc paths). */
  readonly confined: boolean;
  resolve(path: Buffer, mode: ResolveMode): Promise<ResolvedPath>;
  /** REALPATH: `..` and links resolved; the last component may be missing, no earlier one. */
  canonical(path: Buffer): Promise<Buffer>;
}

const ROOT = Buffer.from('/');
const EMPTY = Buffer.alloc(0);
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** Paths used as they are, with the process's own view of the file system. */
export function hostPaths(): PathResolver {
  return {
    confined: false,
    resolve: (path) => Promise.resolve({ path, missing: false, release: () => {} }),
    async canonical(path) {
      try {
        return await fsp.realpath(path, { encoding: 'buffer' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        let end = path.length;
        while (end > 1 && path[end - 1] === 0x2f) end--;
        const slash = path.lastIndexOf(0x2f, end - 1);
        const base = path.subarray(slash + 1, end);
        if (slash < 0 || base.length === 0 || base.equals(DOT) || base.equals(DOTDOT)) throw error;
        const parent = await fsp.realpath(slash === 0 ? ROOT : path.subarray(0, slash), { encoding: 'buffer' });
        return Buffer.concat([parent, parent.equals(ROOT) ? EMPTY : ROOT, base]);
      }
    },
  };
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

function components(path: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (i > start) {
        const part = path.subarray(start, i);
        if (!part.equals(DOT)) parts.push(part);
      }
      start = i + 1;
    }
  }
  return parts;
}

function procPath(fd: number, name?: Buffer): Buffer {
  const base = Buffer.from(`/proc/self/fd/${fd}`);
  return name ? Buffer.concat([base, ROOT, name]) : base;
}

function openPath(path: Buffer, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (error, fd) => (error ? reject(error) : resolve(fd))));
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))));
}

function closeQuietly(fd: number): void {
  fs.close(fd, () => {});
}

/** One directory on the walk: its descriptor and its name in its parent. */
interface Step {
  readonly fd: number;
  readonly name: Buffer;
}

interface Walk {
  /** Directories from the root down; stack[0] is the root. */
  readonly stack: Step[];
  /** The final component: a pinned descriptor, or a missing name in the top directory. */
  readonly final: { readonly fd: number; readonly name: Buffer } | { readonly missing: Buffer } | undefined;
}

/**
 * Paths confined to `root`, which is opened now (O_PATH) and stays open for the server's life.
 * Every path is taken as inside the root, whether it starts with `/` or not.
 */
export function confinedPaths(root: string): PathResolver {
  const rootFd = fs.openSync(root, O_PATH | O_DIRECTORY);

  const releaseWalk = (walk: Walk): void => {
    for (const step of walk.stack) if (step.fd !== rootFd) closeQuietly(step.fd);
    if (walk.final && 'fd' in walk.final) closeQuietly(walk.final.fd);
  };

  /**
   * Walks `path` from the root. With `followLast` false the final component is left as a name in
   * the directory on top of the stack (`final.missing` then just means "not looked up").
   */
  const walk = async (path: Buffer, followLast: boolean): Promise<Walk> => {
    const stack: Step[] = [{ fd: rootFd, name: EMPTY }];
    const queue = components(path);
    let links = 0;
    const done = (final: Walk['final']): Walk => ({ stack, final });
    try {
      while (queue.length > 0) {
        const name = queue.shift()!;
        const top = stack[stack.length - 1]!;
        if (name.equals(DOTDOT)) {
          // Never above the root, as in a chroot.
          if (stack.length > 1) closeQuietly(stack.pop()!.fd);
          continue;
        }
        const last = queue.length === 0;
        if (last && !followLast) return done({ missing: name });
        let fd: number;
        try {
          fd = await openPath(procPath(top.fd, name), O_PATH | O_NOFOLLOW);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT' && last) return done({ missing: name });
          throw error;
        }
        let stats: fs.Stats;
        try {
          stats = await fstat(fd);
        } catch (error) {
          closeQuietly(fd);
          throw error;
        }
        if (stats.isSymbolicLink()) {
          closeQuietly(fd);
          if (++links > MAX_SYMLINKS) throw errno('ELOOP', 'too many levels of symbolic links');
          // Read through the directory we hold; whatever the link says is resolved by us, inside the root.
          const target = await fsp.readlink(procPath(top.fd, name), { encoding: 'buffer' });
          if (target[0] === 0x2f) {
            while (stack.length > 1) closeQuietly(stack.pop()!.fd);
          }
          queue.unshift(...components(target));
          continue;
        }
        if (last) return done({ fd, name });
        if (!stats.isDirectory()) {
          closeQuietly(fd);
          throw errno('ENOTDIR', 'not a directory');
        }
        stack.push({ fd, name });
      }
      // The path named a directory on the stack (the root, or one reached through `..`).
      return done(undefined);
    } catch (error) {
      releaseWalk({ stack, final: undefined });
      throw error;
    }
  };

  const logical = (w: Walk): Buffer => {
    const names = w.stack.slice(1).map((s) => s.name);
    if (w.final) names.push('fd' in w.final ? w.final.name : w.final.missing);
    if (names.length === 0) return ROOT;
    return Buffer.concat(names.flatMap((n) => [ROOT, n]));
  };

  return {
    confined: true,
    async resolve(path, mode) {
      const w = await walk(path, mode !== 'nofollow');
      const release = (): void => releaseWalk(w);
      const top = w.stack[w.stack.length - 1]!;
      if (w.final === undefined) {
        // A directory on the stack (`/`, or a path ending in `..`): `/proc/self/fd/N/.` is that
        // directory itself even for lstat, which would report the magic link for `/proc/self/fd/N`.
        return { path: procPath(top.fd, DOT), missing: false, release };
      }
      if ('fd' in w.final) return { path: procPath(w.final.fd), missing: false, release };
      if (mode === 'follow') {
        release();
        throw errno('ENOENT', 'no such file or directory');
      }
      return { path: procPath(top.fd, w.final.missing), missing: mode === 'create', release };
    },
    async canonical(path) {
      const w = await walk(path, true);
      try {
        return logical(w);
      } finally {
        releaseWalk(w);
      }
    },
  };
}
