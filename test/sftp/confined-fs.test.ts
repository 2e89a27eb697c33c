/**
 * Paths confined to a root (tsshd's ChrootDirectory for internal-sftp): `..` stops at the root,
 * symbolic links (absolute or relative) are resolved inside it, link loops end in ELOOP, the last
 * component is followed or not as the operation needs, a name created where nothing was cannot
 * be redirected by a link planted in between, and a resolved file stays the same file when the
 * folders above it are swapped for links that point outside.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { constants, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { confinedPaths, hostPaths, type PathResolver } from '../../src/sftp/confined-fs.js';

const b = (text: string): Buffer => Buffer.from(text);

describe('paths confined to a root folder', () => {
  let root = '';
  let outside = '';
  let paths: PathResolver;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'tssh-confined-'));
    outside = mkdtempSync(join(tmpdir(), 'tssh-outside-'));
    writeFileSync(join(outside, 'secret'), 'outside\n');
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    writeFileSync(join(root, 'a', 'b', 'f'), 'inside\n');
    symlinkSync(outside, join(root, 'abs-out'));
    symlinkSync(`${'../'.repeat(12)}${relative('/', outside)}`, join(root, 'a', 'rel-out'));
    symlinkSync('../..', join(root, 'a', 'b', 'up'));
    symlinkSync('a/b/f', join(root, 'to-file'));
    symlinkSync('/a/b', join(root, 'abs-in'));
    symlinkSync('loop2', join(root, 'loop1'));
    symlinkSync('loop1', join(root, 'loop2'));
    paths = confinedPaths(root);
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  const canonical = async (path: string): Promise<string> => (await paths.canonical(b(path))).toString();
  const code = (promise: Promise<unknown>): Promise<string | undefined> =>
    promise.then(
      () => undefined,
      (error: NodeJS.ErrnoException) => error.code,
    );

  test('.. stops at the root; links are resolved inside it', async () => {
    assert.equal(await canonical('/'), '/');
    assert.equal(await canonical('/../../..'), '/');
    assert.equal(await canonical('../a/./b/../b/f'), '/a/b/f');
    assert.equal(await canonical('/a/b/up'), '/');
    assert.equal(await canonical('/to-file'), '/a/b/f');
    assert.equal(await canonical('/abs-in/f'), '/a/b/f');
    assert.equal(await canonical('/new-name'), '/new-name', 'the last component may be missing');
    assert.equal(await code(paths.canonical(b('/missing/x'))), 'ENOENT');
    assert.equal(await code(paths.canonical(b('/loop1'))), 'ELOOP');
  });

  test('links that point outside lead nowhere outside', async () => {
    // The outside folder's path, taken inside the root, does not exist there.
    assert.equal(await code(paths.resolve(b('/abs-out/secret'), 'follow')), 'ENOENT');
    assert.equal(await code(paths.resolve(b('/a/rel-out/secret'), 'follow')), 'ENOENT');
    assert.equal(await code(paths.resolve(b(`${outside}/secret`), 'follow')), 'ENOENT');
    assert.equal(await code(paths.resolve(b('/a/b/f/x'), 'follow')), 'ENOTDIR');
  });

  test('follow gives the file itself; nofollow the link; / and .. the folder', async () => {
    const file = await paths.resolve(b('/to-file'), 'follow');
    try {
      assert.equal(readFileSync(file.path, 'utf8'), 'inside\n');
    } finally {
      file.release();
    }
    const link = await paths.resolve(b('/to-file'), 'nofollow');
    try {
      assert.equal(lstatSync(link.path).isSymbolicLink(), true);
    } finally {
      link.release();
    }
    for (const path of ['/', '/a/..', '/a/b/..']) {
      const dir = await paths.resolve(b(path), 'nofollow');
      try {
        assert.equal(lstatSync(dir.path).isDirectory(), true, path);
      } finally {
        dir.release();
      }
    }
  });

  test('a name created where nothing was cannot be redirected by a link planted in between', async () => {
    const created = await paths.resolve(b('/a/planted'), 'create');
    try {
      assert.equal(created.missing, true);
      symlinkSync(join(outside, 'secret'), join(root, 'a', 'planted'));
      assert.throws(() => openSync(created.path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW), { code: 'ELOOP' });
      assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'outside\n');
    } finally {
      created.release();
    }
  });

  test('a resolved file stays that file when a folder above it is swapped for a link to outside', async () => {
    const resolved = await paths.resolve(b('/a/b/f'), 'follow');
    try {
      renameSync(join(root, 'a', 'b'), join(root, 'a', 'moved'));
      symlinkSync(outside, join(root, 'a', 'b'));
      writeFileSync(join(outside, 'f'), 'outside\n');
      const fd = openSync(resolved.path, constants.O_RDONLY);
      try {
        assert.equal(readFileSync(fd, 'utf8'), 'inside\n');
      } finally {
        closeSync(fd);
      }
    } finally {
      resolved.release();
      rmSync(join(root, 'a', 'b'));
      renameSync(join(root, 'a', 'moved'), join(root, 'a', 'b'));
    }
    // And the swapped-in link is, from then on, resolved inside the root like any other.
  });

  test('host paths are used as they are', async () => {
    const host = hostPaths();
    assert.equal(host.confined, false);
    const r = await host.resolve(b('/etc/hostname'), 'follow');
    assert.equal(r.path.toString(), '/etc/hostname');
    assert.equal((await host.canonical(b(`${root}/a/b/up`))).toString(), root);
  });
});
