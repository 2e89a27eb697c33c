/**
 * src/cli/sshd/local-fs.ts: which folders tsshd may stat synchronously. A folder counts as local
 * only after a statfs check said so, for RECHECK_MS; before, after, and for anything statfs does
 * not name as local, the answer is no (the caller then goes through the thread pool).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkFolder, knownLocal, LOCAL_FILE_SYSTEM_TYPES, RECHECK_MS } from '../../src/cli/sshd/local-fs.js';

test('a folder is known local only once statfs said so, and for a minute', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tssh-localfs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Whatever the temporary folder is on here: ext4, tmpfs or overlayfs say yes, NFS would say no.
  const expected = LOCAL_FILE_SYSTEM_TYPES.has(statfsSync(dir).type);
  assert.equal(knownLocal(dir), false, 'not before a check (which this starts)');
  assert.equal(await checkFolder(dir), expected, 'the check');
  const now = Date.now();
  assert.equal(knownLocal(dir, now), expected, 'known now');
  assert.equal(knownLocal(dir, now + RECHECK_MS + 1), false, 'a minute later: checked again, and not local until it answers');
  assert.equal(await checkFolder(dir), expected);
  assert.equal(knownLocal(dir), expected);
});

test('a folder that does not exist, or a file system not in the list, is not local', async () => {
  const missing = join(tmpdir(), 'tssh-localfs-missing-' + process.pid, 'x');
  assert.equal(await checkFolder(missing), false);
  assert.equal(knownLocal(missing), false);
  // /proc is procfs (0x9fa0): answered at once, but not a place for files we may block on.
  assert.equal(await checkFolder('/proc'), false);
  assert.equal(knownLocal('/proc'), false);
});

test('the list names local file systems only', () => {
  for (const remote of [0x6969 /* nfs */, 0xff534d42 /* cifs */, 0xfe534d42 /* smb2 */, 0x65735546 /* fuse */, 0x00c36400 /* ceph */, 0x01021997 /* 9p */]) {
    assert.equal(LOCAL_FILE_SYSTEM_TYPES.has(remote), false, remote.toString(16));
  }
});
