/**
 * Start a program with V8's code cache: the tssh program (dist/bin/tssh-main.cjs, one CommonJS
 * file) is compiled through node:vm with the code V8 produced for it in an earlier run, so that
 * the functions that run at every start (the command line, the configuration, the key exchange,
 * the login) are not parsed and compiled again. Node 20 has no compile cache for modules of its
 * own (module.enableCompileCache came in Node 22), and none at all for ES modules, which is why the
 * program is a CommonJS bundle behind a small ES module launcher (scripts/bundle.mjs). The program
 * must not use import(): node:vm runs one only with --experimental-vm-modules on Node 20 (the
 * bundle has none; test/cli/bundle.test.ts holds it to that).
 *
 * Measured (docs/performance.md, "Program start-up"): `tssh host true` to tsshd 116 -> 101 ms of
 * wall time (medians), most of what tssh adds above Node's own start being compilation.
 *
 * The cache lives in `$XDG_CACHE_HOME/tssh/code-cache` (else `~/.cache/tssh/code-cache`), one file
 * per program text, Node version and architecture (a SHA-256 of them names it: V8 checks only the
 * source's length, so a changed program must never meet an old file). It is written when absent
 * or refused (by V8: another V8 version or flags; or by its digest: a damaged file), at the end of
 * that run, so it holds what that run compiled; through a temporary file and a rename, so
 * concurrent starts never see half a file. It is used only in a folder the user owns (a `sudo
 * tssh` that kept HOME must not leave root's files there), created 0700, files 0600; at most
 * MAX_FILES are kept. Any failure on the
 * way (no home, a read-only disk) only means no cache: it never changes what the program does.
 * `TSSH_CODE_CACHE=off` turns it off; another value is the folder to use instead.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/** Cache files kept in the folder (other versions of tssh, other Node versions); the oldest go. */
export const MAX_FILES = 8;

/** What happened to the cache when the program was loaded. */
export type CodeCacheStatus =
  /** Off (TSSH_CODE_CACHE=off) or no folder that can hold it. */
  | 'off'
  /** No file yet for this program, Node and architecture. */
  | 'absent'
  /** V8 took the file: the program started from it. */
  | 'accepted'
  /** The file was refused: by its digest (damaged) or by V8 (another version or flags). */
  | 'rejected';

export interface LoadedProgram {
  readonly status: CodeCacheStatus;
  /** The cache file of this program (undefined when off). */
  readonly file: string | undefined;
  /**
   * Write the cache when the status asks for it (absent or rejected), with what this process has
   * compiled so far; true if a file was written. Never throws.
   */
  save(): boolean;
  /** Run the program (its module code), as Node would run the file as CommonJS. */
  run(): void;
}

/** The folder for cache files, or undefined when there is none to use. */
export function codeCacheFolder(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const setting = env.TSSH_CODE_CACHE;
  if (setting === 'off' || setting === '0') return undefined;
  if (setting) return setting;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'tssh', 'code-cache');
}

/**
 * Compile `file` (a CommonJS program) with its cache in `folder` (none: undefined), ready to run.
 * Once per process: a second compilation of the same text in one process comes from V8's own
 * in-memory cache, whatever the file holds, so its status says nothing.
 */
export function loadProgram(file: string, folder: string | undefined): LoadedProgram {
  let source = readFileSync(file, 'utf8');
  // A #! line is not JavaScript to vm (Node strips it from files it loads itself); the line stays
  // counted, so positions in stack traces are the file's.
  if (source.startsWith('#!')) source = `//${source.slice(2)}`;
  // Strict, as the ES modules it was bundled from (esbuild's own "use strict" comes after the
  // bundle's first line, where it is no directive); on the first line, so line numbers stay.
  const wrapped = `(function (exports, require, module, __filename, __dirname) {'use strict';${source}\n})`;
  const cacheFile = folder && usableFolder(folder) ? join(folder, `${cacheKey(wrapped)}.bin`) : undefined;
  let stored: Buffer | undefined;
  if (cacheFile) {
    try {
      stored = readFileSync(cacheFile);
    } catch {
      stored = undefined;
    }
  }
  const cachedData = stored && unsealed(stored);
  const script = new Script(wrapped, { filename: file, cachedData });
  const status: CodeCacheStatus = !cacheFile ? 'off' : !stored ? 'absent' : !cachedData || script.cachedDataRejected ? 'rejected' : 'accepted';
  let saved = false;
  return {
    status,
    file: cacheFile,
    save() {
      if (saved || !cacheFile || status === 'accepted' || status === 'off') return false;
      saved = true;
      try {
        writeAtomically(cacheFile, sealed(script.createCachedData()));
        prune(dirname(cacheFile), cacheFile);
        return true;
      } catch {
        return false;
      }
    },
    run() {
      const compiled = script.runInThisContext() as (
        exports: unknown,
        require: NodeJS.Require,
        module: { exports: unknown },
        filename: string,
        dirname: string,
      ) => void;
      const module = { exports: {} };
      compiled.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
    },
  };
}

/**
 * Run the program at `file` as the process's program: its cache is written when the process
 * exits (process.exit included), so it holds everything the run compiled.
 */
export function runProgram(file: string): void {
  const program = loadProgram(file, codeCacheFolder());
  // save() itself writes only when the file was absent or refused.
  process.once('exit', () => program.save());
  program.run();
}

/**
 * A cache file: MAGIC, the SHA-256 of V8's data, the data. V8 checks its data's header (version,
 * flags, source length) but in a release build not the rest: damaged data past the header crashed
 * Node 20 (SIGSEGV, found by test/cli/code-cache.test.ts), so nothing reaches V8 that does not
 * match its digest.
 */
const MAGIC = Buffer.from('tssh-v8-cache-1\n', 'latin1');
const DIGEST_LENGTH = 32;

function sealed(data: Buffer): Buffer {
  return Buffer.concat([MAGIC, createHash('sha256').update(data).digest(), data]);
}

/** V8's data from a cache file, or undefined when the file is not whole. */
function unsealed(file: Buffer): Buffer | undefined {
  const start = MAGIC.length + DIGEST_LENGTH;
  if (file.length <= start || !file.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const data = file.subarray(start);
  const digest = createHash('sha256').update(data).digest();
  return digest.equals(file.subarray(MAGIC.length, start)) ? data : undefined;
}

function cacheKey(source: string): string {
  return createHash('sha256').update(`${process.version} ${process.arch}\n`).update(source).digest('hex').slice(0, 32);
}

/**
 * The folder is ours: it exists and belongs to this user, or it is created (0700) under the
 * nearest existing folder on its path, which must belong to this user (so that a `sudo tssh` that
 * kept the user's HOME creates nothing of root's there).
 */
function usableFolder(folder: string): boolean {
  const uid = process.getuid?.();
  const ours = (path: string): boolean => {
    const stats = statSync(path);
    return stats.isDirectory() && (uid === undefined || stats.uid === uid);
  };
  try {
    let existing = folder;
    for (;;) {
      try {
        statSync(existing);
        break;
      } catch {
        const parent = dirname(existing);
        if (parent === existing) return false;
        existing = parent;
      }
    }
    if (!ours(existing)) return false;
    if (existing !== folder) mkdirSync(folder, { recursive: true, mode: 0o700 });
    return ours(folder);
  } catch {
    return false;
  }
}

function writeAtomically(path: string, data: Buffer): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    unlinkSync(temporary);
    throw error;
  }
}

/** Keep the MAX_FILES newest cache files (by modification time); `keep` always stays. */
function prune(folder: string, keep: string): void {
  const files: { path: string; at: number }[] = [];
  for (const name of readdirSync(folder)) {
    const path = join(folder, name);
    if (!name.endsWith('.bin') || path === keep) continue;
    try {
      files.push({ path, at: statSync(path).mtimeMs });
    } catch {
      // Gone meanwhile (another tssh pruning).
    }
  }
  files.sort((a, b) => b.at - a.at);
  for (const { path } of files.slice(MAX_FILES - 1)) {
    try {
      unlinkSync(path);
    } catch {
      // Gone meanwhile.
    }
  }
}
