/**
 * Whether a folder is on a file system kept on this machine's own disks or memory, where a stat
 * answers at once. tsshd serves every connection from one event loop, so a system call that can
 * block for long (a stat on an NFS or SMB mount whose server is gone blocks until it returns) must
 * go to libuv's thread pool; but each such hand-off costs the event loop a wake-up and about
 * 0.1 ms of CPU in a login that costs 2-4 ms. Files in folders known to be local are therefore
 * looked at synchronously, and every other file, or one in a folder not yet checked, through the
 * thread pool.
 *
 * A folder's verdict comes from statfs(2), itself asked through the thread pool, and holds for a
 * minute (a file system mounted over the folder later is then noticed within a minute; until the
 * new check answers, the folder counts as not local). The file system types are a list of local
 * ones (linux/magic.h): anything else, FUSE included, counts as possibly remote.
 */
import { statfs } from 'node:fs/promises';

/** statfs(2) f_type of local file systems (linux/magic.h). */
export const LOCAL_FILE_SYSTEM_TYPES: ReadonlySet<number> = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs (containers)
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
  0xca451a4e, // bcachefs
  0x3153464a, // jfs
  0x52654973, // reiserfs
  0x73717368, // squashfs
  0x4d44, // vfat, msdos
  0x2011bab0, // exfat
  0x9660, // iso9660
]);

/** How long a verdict holds (ms). */
export const RECHECK_MS = 60_000;
/** Folders remembered at most (oldest forgotten first): one per user's ~/.ssh in practice. */
const MAX_FOLDERS = 1024;

const verdicts = new Map<string, { readonly local: boolean; readonly at: number }>();
const checking = new Map<string, Promise<boolean>>();

/**
 * Whether `folder` is known, from a check less than RECHECK_MS old, to be on a local file system.
 * Starts a check (in the background) when there is none or it is old; until it answers, false.
 */
export function knownLocal(folder: string, now: number = Date.now()): boolean {
  const verdict = verdicts.get(folder);
  if (verdict && now - verdict.at < RECHECK_MS) return verdict.local;
  void checkFolder(folder);
  return false;
}

/** Ask statfs about `folder` (one question at a time per folder) and remember the answer. */
export function checkFolder(folder: string): Promise<boolean> {
  let check = checking.get(folder);
  if (check) return check;
  check = statfs(folder).then(
    (info) => LOCAL_FILE_SYSTEM_TYPES.has(info.type),
    () => false,
  ).then((local) => {
    checking.delete(folder);
    verdicts.delete(folder);
    verdicts.set(folder, { local, at: Date.now() });
    if (verdicts.size > MAX_FOLDERS) verdicts.delete(verdicts.keys().next().value!);
    return local;
  });
  checking.set(folder, check);
  return check;
}
