/**
 * The SFTP v3 wire format (draft-ietf-secsh-filexfer-02) and the server in process over a pair of
 * streams: attribute encoding, the caps on every length a client sends, bad handles, unknown
 * requests, ordering of pipelined requests, back-pressure and the open flags.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, realpathSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import fsModule from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import type { TestContext } from 'node:test';
import { ProtocolError } from '../../src/errors.js';
import { Reader } from '../../src/wire/reader.js';
import { Writer } from '../../src/wire/writer.js';
import {
  ATTR,
  attrsFromStats,
  decodeAttrs,
  encodeAttrs,
  FX,
  FXF,
  FXP,
  MAX_EXTENDED_ATTRS,
  MAX_OPEN_HANDLES,
  MAX_PACKET_LENGTH,
  MAX_READ_LENGTH,
  PacketFramer,
  statusFromError,
  type Attrs,
} from '../../src/sftp/protocol.js';
import { EXTENSIONS, longname, modeString, SftpServer, type NameService, type SftpServerOptions } from '../../src/sftp/server.js';
import { isInternalSftp, parseInternalSftp } from '../../src/sftp/internal-sftp.js';
import { attrsOf, dataOf, handleOf, namesOf, packet, RawSftpClient, status } from '../helpers/sftp-client.js';
import { patternBytes } from '../helpers/conn-net.js';

const fixedNames: NameService = {
  userName: async (uid) => (uid === 0 ? 'root' : undefined),
  groupName: async (gid) => (gid === 0 ? 'root' : undefined),
  homeOf: async (user) => (user === 'someone' ? '/home/someone' : undefined),
};

interface Harness {
  dir: string;
  client: RawSftpClient;
  server: SftpServer;
  toServer: PassThrough;
  done: Promise<{ code: number; error: Error | undefined }>;
}

/** A server on a fresh folder, with a client on the other ends of two PassThroughs. */
/**
 * Counts the server's file reads until the test ends: `readv` gets the number of buffers of each
 * preadv, `read` the number of single reads. The server calls node:fs through its namespace, which
 * follows these properties once syncBuiltinESMExports() has run.
 */
function spyOnReads(t: TestContext): { readv: number[]; read: number } {
  const calls = { readv: [] as number[], read: 0 };
  const fs = fsModule as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved = { readv: fs.readv!, readvSync: fs.readvSync!, read: fs.read!, readSync: fs.readSync! };
  fs.readv = (...args) => (calls.readv.push((args[1] as unknown[]).length), saved.readv(...args));
  fs.readvSync = (...args) => (calls.readv.push((args[1] as unknown[]).length), saved.readvSync(...args));
  fs.read = (...args) => (calls.read++, saved.read(...args));
  fs.readSync = (...args) => (calls.read++, saved.readSync(...args));
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, saved);
    syncBuiltinESMExports();
  });
  return calls;
}

function harness(t: TestContext, options: Partial<SftpServerOptions> = {}, output?: Writable & { readable?: boolean }): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-sftp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  const server = new SftpServer(toServer, output ?? fromServer, { cwd: dir, home: dir, names: fixedNames, ...options });
  const done = new Promise<{ code: number; error: Error | undefined }>((resolve) => server.once('done', (code, error) => resolve({ code, error })));
  t.after(() => server.destroy());
  return { dir, client: new RawSftpClient(toServer, fromServer), server, toServer, done };
}

async function ready(t: TestContext, options: Partial<SftpServerOptions> = {}): Promise<Harness> {
  const h = harness(t, options);
  await h.client.init();
  return h;
}

async function openFile(client: RawSftpClient, path: string, pflags: number, attrs: Attrs = {}): Promise<Buffer> {
  return handleOf(await client.request(FXP.OPEN, (w) => encodeAttrs(w.string(path).uint32(pflags), attrs)));
}

// ---------------------------------------------------------------------------------------------

describe('ATTRS (§5)', () => {
  test('every field round-trips, with the flags for the fields present', () => {
    const attrs: Attrs = {
      size: 0x1_0000_0001n,
      uid: 1000,
      gid: 100,
      permissions: 0o100644,
      atime: 1_700_000_000,
      mtime: 1_700_000_001,
      extended: [{ type: Buffer.from('x@example.com'), data: Buffer.from([1, 2, 3]) }],
    };
    const bytes = encodeAttrs(new Writer(), attrs).finish();
    assert.equal(bytes.readUInt32BE(0), (ATTR.SIZE | ATTR.UIDGID | ATTR.PERMISSIONS | ATTR.ACMODTIME | ATTR.EXTENDED) >>> 0);
    const reader = new Reader(bytes);
    assert.deepEqual(decodeAttrs(reader), attrs);
    reader.done();
  });

  test('no fields: flags 0 and nothing else', () => {
    assert.equal(encodeAttrs(new Writer(), {}).finish().toString('hex'), '00000000');
    assert.deepEqual(decodeAttrs(new Reader(Buffer.alloc(4))), {});
  });

  test('unknown flag bits are a protocol error (the layout after them is unknowable)', () => {
    assert.throws(() => decodeAttrs(new Reader(new Writer().uint32(0x10).finish())), (e: unknown) => e instanceof ProtocolError && /unsupported flag bits 0x10/.test(e.message));
  });

  test('the extended count is capped before the loop, and cannot claim more pairs than bytes', () => {
    const many = new Writer().uint32(ATTR.EXTENDED).uint32(MAX_EXTENDED_ATTRS + 1);
    for (let i = 0; i <= MAX_EXTENDED_ATTRS; i++) many.string('a').string('b');
    assert.throws(() => decodeAttrs(new Reader(many.finish())), /extended attributes/);
    assert.throws(() => decodeAttrs(new Reader(new Writer().uint32(ATTR.EXTENDED).uint32(0xffffffff).finish())), /4294967295 extended attributes/);
    assert.throws(() => decodeAttrs(new Reader(new Writer().uint32(ATTR.EXTENDED).uint32(2).string('a').finish())), ProtocolError);
  });

  test('truncated fields are refused, not read past the end', () => {
    assert.throws(() => decodeAttrs(new Reader(new Writer().uint32(ATTR.SIZE).uint32(1).finish())), ProtocolError);
  });

  test('from stat(2): size, ids, the whole st_mode and seconds', () => {
    const attrs = attrsFromStats({ size: 5, uid: 1, gid: 2, mode: 0o40755, atimeMs: 1999.9, mtimeMs: 3000 });
    assert.deepEqual(attrs, { size: 5n, uid: 1, gid: 2, permissions: 0o40755, atime: 1, mtime: 3 });
  });
});

describe('framing (§3)', () => {
  test('packets split across chunks and packed together come out whole', () => {
    const framer = new PacketFramer();
    const a = packet(FXP.STAT, (w) => w.uint32(1).string('x'));
    const b = packet(FXP.STAT, (w) => w.uint32(2).string('yy'));
    const all = Buffer.concat([a, b]);
    for (const byte of all) framer.push(Buffer.from([byte]));
    assert.deepEqual(framer.next(), a.subarray(4));
    assert.deepEqual(framer.next(), b.subarray(4));
    assert.equal(framer.next(), undefined);
    framer.push(all);
    assert.deepEqual(framer.next(), a.subarray(4));
    assert.deepEqual(framer.next(), b.subarray(4));
  });

  test('chunks that lie next to each other in one buffer make a view, others a copy', () => {
    const a = packet(FXP.WRITE, (w) => w.uint32(1).string('h').uint64(0n).string(Buffer.alloc(300, 1)));
    const b = packet(FXP.WRITE, (w) => w.uint32(2).string('h').uint64(300n).string(Buffer.alloc(200, 2)));
    // Reads into consecutive parts of one slab, as the SFTP child makes them, split inside both packets.
    const slab = Buffer.alloc(a.length + b.length + 64);
    Buffer.concat([a, b]).copy(slab);
    const framer = new PacketFramer();
    for (const [start, end] of [[0, 3], [3, 100], [100, a.length + 7], [a.length + 7, a.length + b.length]]) {
      framer.push(slab.subarray(start!, end!));
    }
    const first = framer.next()!;
    const second = framer.next()!;
    assert.deepEqual(first, a.subarray(4));
    assert.deepEqual(second, b.subarray(4));
    assert.equal(first.buffer, slab.buffer, 'a view of the slab, not a copy');
    assert.equal(first.byteOffset, slab.byteOffset + 4);
    assert.equal(second.buffer, slab.buffer);
    assert.equal(framer.bufferedLength, 0);
    // The same split over separate buffers is copied, and comes out the same.
    const apart = new PacketFramer();
    const head = Buffer.allocUnsafeSlow(100);
    const tail = Buffer.allocUnsafeSlow(a.length - 100);
    a.copy(head, 0, 0, 100);
    a.copy(tail, 0, 100);
    apart.push(head);
    apart.push(tail);
    const copied = apart.next()!;
    assert.deepEqual(copied, a.subarray(4));
    assert.ok(copied.buffer !== head.buffer && copied.buffer !== tail.buffer);
    // Adjacent parts of a buffer that do not touch (a gap between them) are not joined.
    const gapped = new PacketFramer();
    const spaced = Buffer.alloc(a.length + 10);
    a.copy(spaced, 0, 0, 50);
    a.copy(spaced, 60, 50);
    gapped.push(spaced.subarray(0, 50));
    gapped.push(spaced.subarray(60, a.length + 10));
    assert.deepEqual(gapped.next(), a.subarray(4));
  });

  test('an oversized length is refused as soon as its four bytes arrive, nothing buffered for it', () => {
    const framer = new PacketFramer();
    framer.push(Buffer.from([0x7f, 0xff, 0xff, 0xff]));
    assert.throws(() => framer.next(), /exceeds the limit/);
    const atLimit = new PacketFramer();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_PACKET_LENGTH + 1);
    atLimit.push(header);
    assert.throws(() => atLimit.next(), /exceeds the limit/);
    const zero = new PacketFramer();
    zero.push(Buffer.alloc(4));
    assert.throws(() => zero.next(), /length 0/);
  });
});

describe('status codes (§7)', () => {
  test('errno values map as OpenSSH maps them, others are FAILURE with the system\'s words', () => {
    const error = (code: string, message: string): NodeJS.ErrnoException => Object.assign(new Error(message), { code });
    assert.equal(statusFromError(error('ENOENT', 'x')).status, FX.NO_SUCH_FILE);
    assert.equal(statusFromError(error('EACCES', 'x')).status, FX.PERMISSION_DENIED);
    assert.equal(statusFromError(error('EPERM', 'x')).status, FX.PERMISSION_DENIED);
    assert.equal(statusFromError(error('ENOSYS', 'x')).status, FX.OP_UNSUPPORTED);
    assert.deepEqual(statusFromError(error('EEXIST', "EEXIST: file already exists, mkdir '/tmp/x'")), { status: FX.FAILURE, message: 'file already exists' });
    assert.equal(statusFromError(new ProtocolError('bad')).status, FX.BAD_MESSAGE);
  });
});

describe('ls -l longnames', () => {
  test('modes as strmode(3) writes them', () => {
    assert.equal(modeString(0o100644), '-rw-r--r--');
    assert.equal(modeString(0o40755), 'drwxr-xr-x');
    assert.equal(modeString(0o120777), 'lrwxrwxrwx');
    assert.equal(modeString(0o104755), '-rwsr-xr-x');
    assert.equal(modeString(0o102644), '-rw-r-Sr--');
    assert.equal(modeString(0o41777), 'drwxrwxrwt');
    assert.equal(modeString(0o41776), 'drwxrwxrwT');
  });

  test('OpenSSH\'s layout: widths 3, 8, 8, 8; the year for old files', () => {
    const old = { mode: 0o100644, nlink: 1, uid: 0, gid: 0, size: 348911, mtimeMs: new Date(2001, 2, 5, 14, 29).getTime() };
    const text = longname(Buffer.from('t-filexfer'), old as never, 'mjos', 'staff', new Date(2024, 0, 1).getTime()).toString();
    assert.equal(text, '-rw-r--r--    1 mjos     staff      348911 Mar  5  2001 t-filexfer');
    const now = new Date(2024, 5, 10, 12, 0).getTime();
    const recent = { ...old, mtimeMs: new Date(2024, 5, 9, 8, 7).getTime(), uid: 1234, gid: 99 };
    assert.equal(longname(Buffer.from('f'), recent as never, undefined, undefined, now).toString(), '-rw-r--r--    1 1234     99         348911 Jun  9 08:07 f');
  });
});

describe('internal-sftp options', () => {
  test('-R, -u, -d with %d and %u; logging flags ignored; restrictions refused (fail closed)', () => {
    const user = { name: 'alice', home: '/home/alice' };
    assert.equal(isInternalSftp('internal-sftp'), true);
    assert.equal(isInternalSftp('internal-sftp -R'), true);
    assert.equal(isInternalSftp('/usr/lib/openssh/sftp-server'), false);
    assert.deepEqual(parseInternalSftp('internal-sftp', user), { readOnly: false, umask: undefined, startDirectory: undefined });
    assert.deepEqual(parseInternalSftp('internal-sftp -R -u 027 -e -l INFO -f AUTH -d %d/up', user), { readOnly: true, umask: 0o27, startDirectory: '/home/alice/up' });
    assert.deepEqual(parseInternalSftp('internal-sftp -d /srv/%u', user).startDirectory, '/srv/alice');
    assert.deepEqual(parseInternalSftp('internal-sftp -d files', user).startDirectory, '/home/alice/files');
    assert.throws(() => parseInternalSftp('internal-sftp -P write', user), /not supported/);
    assert.throws(() => parseInternalSftp('internal-sftp -u 999', user), /invalid umask/);
    assert.throws(() => parseInternalSftp('internal-sftp -d %x', user), /unknown %-token/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('the server', () => {
  test('INIT: version 3 and the OpenSSH extensions, each with its version', async (t) => {
    const { client } = harness(t);
    const { version, extensions } = await client.init(6);
    assert.equal(version, 3);
    assert.deepEqual([...extensions], EXTENSIONS.map(([n, v]) => [n, v]));
    for (const name of ['posix-rename@openssh.com', 'statvfs@openssh.com', 'hardlink@openssh.com', 'fsync@openssh.com', 'limits@openssh.com', 'expand-path@openssh.com']) {
      assert.ok(extensions.has(name), name);
    }
  });

  test('a request before INIT ends the session', async (t) => {
    const { client, done } = harness(t);
    client.raw(packet(FXP.STAT, (w) => w.uint32(1).string('.')));
    const { code, error } = await done;
    assert.equal(code, 1);
    assert.match(error!.message, /before SSH_FXP_INIT/);
  });

  test('an oversized packet ends the session before its body is buffered', async (t) => {
    const h = await ready(t);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(0xfffffff0, 0);
    header[4] = FXP.WRITE;
    h.client.raw(header);
    const { code, error } = await h.done;
    assert.equal(code, 1);
    assert.match(error!.message, /exceeds the limit/);
    await h.client.whenEnded();
  });

  test('unknown packet types and unknown extensions: SSH_FX_OP_UNSUPPORTED with the request id', async (t) => {
    const { client } = await ready(t);
    const reply = await client.requestWithId(99, 0xabcdef01, (w) => w.string('whatever'));
    assert.equal(reply.id, 0xabcdef01);
    assert.equal(status(reply).code, FX.OP_UNSUPPORTED);
    assert.equal(status(await client.extended('nope@example.com', (w) => w.string('x'))).code, FX.OP_UNSUPPORTED);
    // An unrequested server-to-client type sent as a request is just as unsupported.
    assert.equal(status(await client.request(FXP.DATA, (w) => w.string('x'))).code, FX.OP_UNSUPPORTED);
  });

  test('malformed requests are answered SSH_FX_BAD_MESSAGE, and the session goes on', async (t) => {
    const { client } = await ready(t);
    assert.equal(status(await client.request(FXP.OPEN, (w) => w.uint32(1000))).code, FX.BAD_MESSAGE);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string('abcd'))).code, FX.BAD_MESSAGE);
    assert.equal(status(await client.request(FXP.STAT, (w) => w.string(Buffer.from('a\0b')))).code, FX.BAD_MESSAGE);
    assert.equal(status(await client.request(FXP.SETSTAT, (w) => w.string('.').uint32(0x40))).code, FX.BAD_MESSAGE);
    const ok = await client.request(FXP.STAT, (w) => w.string('.'));
    assert.equal(ok.type, FXP.ATTRS);
  });

  test('bad handles: unknown, closed, fabricated, too long, or of the wrong kind', async (t) => {
    const { client, dir } = await ready(t);
    writeFileSync(join(dir, 'f'), 'data');
    const bogus = Buffer.from([0, 0, 0x12, 0x34]);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(bogus).uint64(0n).uint32(10))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.WRITE, (w) => w.string(bogus).uint64(0n).string('x'))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(bogus))).code, FX.NO_SUCH_FILE);
    assert.equal(status(await client.request(FXP.FSTAT, (w) => w.string('not four bytes'))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(Buffer.alloc(300)).uint64(0n).uint32(1))).code, FX.BAD_MESSAGE);
    const file = await openFile(client, 'f', FXF.READ);
    const dirHandle = handleOf(await client.request(FXP.OPENDIR, (w) => w.string('.')));
    assert.equal(status(await client.request(FXP.READDIR, (w) => w.string(file))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(dirHandle).uint64(0n).uint32(4))).code, FX.FAILURE);
    assert.equal(dataOf(await client.request(FXP.READ, (w) => w.string(file).uint64(0n).uint32(4))).toString(), 'data');
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(file))).code, FX.OK);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(file).uint64(0n).uint32(4))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(file))).code, FX.NO_SUCH_FILE);
  });

  test('a READ longer than the cap is answered with at most MAX_READ_LENGTH bytes; then EOF', async (t) => {
    const { client, dir } = await ready(t);
    writeFileSync(join(dir, 'big'), Buffer.alloc(MAX_READ_LENGTH + 5000, 7));
    const file = await openFile(client, 'big', FXF.READ);
    const data = dataOf(await client.request(FXP.READ, (w) => w.string(file).uint64(0n).uint32(0xffffffff)));
    assert.equal(data.length, MAX_READ_LENGTH);
    const rest = dataOf(await client.request(FXP.READ, (w) => w.string(file).uint64(BigInt(MAX_READ_LENGTH)).uint32(0xffffffff)));
    assert.equal(rest.length, 5000);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(file).uint64(BigInt(MAX_READ_LENGTH + 5000)).uint32(10))).code, FX.EOF);
    assert.equal(status(await client.request(FXP.READ, (w) => w.string(file).uint64(0xffffffffffffffffn).uint32(10))).code, FX.EOF);
  });

  test('reuseDataBuffers: a DATA reply\'s buffer serves a later READ once its write called back, and only then', async (t) => {
    for (const reuse of [true, false]) {
      const dir = mkdtempSync(join(tmpdir(), 'tssh-sftp-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const content = Buffer.alloc(8 * 40000);
      for (let i = 0; i < content.length; i++) content[i] = (i * 13 + (i >> 9)) & 0xff;
      writeFileSync(join(dir, 'f'), content);
      const toServer = new PassThrough();
      const fromServer = new PassThrough();
      // An output that is done with each chunk when it calls back: it passes on a copy.
      const dataBuffers: ArrayBufferLike[] = [];
      const output = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (chunk[4] === FXP.DATA) dataBuffers.push(chunk.buffer);
          fromServer.write(Buffer.from(chunk));
          // The fourth DATA reply's write completes late (the client has its copy already and
          // sends the next READ): that buffer must not be lent again meanwhile.
          if (dataBuffers.length === 4) setTimeout(callback, 50);
          else callback();
        },
      });
      const server = new SftpServer(toServer, output, { cwd: dir, home: dir, names: fixedNames, syncFileIo: true, reuseDataBuffers: reuse });
      t.after(() => server.destroy());
      const client = new RawSftpClient(toServer, fromServer);
      await client.init();
      const file = await openFile(client, 'f', FXF.READ);
      // One READ at a time, so that each reply's write has called back before the next READ.
      for (let i = 0; i < 8; i++) {
        const data = dataOf(await client.request(FXP.READ, (w) => w.string(file).uint64(BigInt(i * 40000)).uint32(40000)));
        assert.ok(data.equals(content.subarray(i * 40000, (i + 1) * 40000)), `block ${i}`);
      }
      assert.equal(dataBuffers.length, 8);
      const distinct = new Set(dataBuffers).size;
      if (reuse) {
        // One buffer served every READ but the one made while the late write held it (a second then).
        assert.equal(distinct, 2);
        assert.notEqual(dataBuffers[4], dataBuffers[3]);
      } else {
        assert.ok(distinct > 2, 'without reuse, fresh buffers');
      }
    }
  });

  test('limits@openssh.com states the caps', async (t) => {
    const { client } = await ready(t);
    const reply = await client.extended('limits@openssh.com');
    assert.equal(reply.type, FXP.EXTENDED_REPLY);
    assert.deepEqual([reply.reader.uint64(), reply.reader.uint64(), reply.reader.uint64(), reply.reader.uint64()], [BigInt(MAX_PACKET_LENGTH), BigInt(MAX_READ_LENGTH), BigInt(MAX_READ_LENGTH), BigInt(MAX_OPEN_HANDLES)]);
  });

  test('the handle table is bounded; closing makes room again', async (t) => {
    const { client, dir } = await ready(t, { maxOpenHandles: 20 });
    writeFileSync(join(dir, 'f'), '');
    const handles: Buffer[] = [];
    for (let i = 0; i < 20; i++) handles.push(await openFile(client, 'f', FXF.READ));
    const refused = status(await client.request(FXP.OPEN, (w) => w.string('f').uint32(FXF.READ).uint32(0)));
    assert.equal(refused.code, FX.FAILURE);
    assert.match(refused.message, /Too many open handles/);
    assert.equal(status(await client.request(FXP.OPENDIR, (w) => w.string('.'))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(handles[3]!))).code, FX.OK);
    await openFile(client, 'f', FXF.READ);
    assert.equal(new Set(handles.map((h) => h.toString('hex'))).size, 20);
  });

  test('OPEN flags: CREAT with permissions as the mode, EXCL, TRUNC, APPEND, read-only', async (t) => {
    const { client, dir } = await ready(t);
    const created = await openFile(client, 'new', FXF.WRITE | FXF.CREAT | FXF.EXCL, { permissions: 0o600 });
    assert.equal(statSync(join(dir, 'new')).mode & 0o777, 0o600);
    assert.equal(status(await client.request(FXP.WRITE, (w) => w.string(created).uint64(0n).string('hello world'))).code, FX.OK);
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(created))).code, FX.OK);
    const again = status(await client.request(FXP.OPEN, (w) => w.string('new').uint32(FXF.WRITE | FXF.CREAT | FXF.EXCL).uint32(0)));
    assert.equal(again.code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.OPEN, (w) => w.string('missing').uint32(FXF.READ).uint32(0))).code, FX.NO_SUCH_FILE);
    // APPEND writes at the end whatever the offset.
    const append = await openFile(client, 'new', FXF.WRITE | FXF.APPEND);
    assert.equal(status(await client.request(FXP.WRITE, (w) => w.string(append).uint64(0n).string('!'))).code, FX.OK);
    await client.request(FXP.CLOSE, (w) => w.string(append));
    assert.equal(readFileSync(join(dir, 'new'), 'utf8'), 'hello world!');
    // A READ-only handle cannot write.
    const readOnly = await openFile(client, 'new', FXF.READ);
    assert.notEqual(status(await client.request(FXP.WRITE, (w) => w.string(readOnly).uint64(0n).string('x'))).code, FX.OK);
    const trunc = await openFile(client, 'new', FXF.WRITE | FXF.CREAT | FXF.TRUNC);
    await client.request(FXP.CLOSE, (w) => w.string(trunc));
    assert.equal(statSync(join(dir, 'new')).size, 0);
  });

  for (const syncFileIo of [false, true]) {
    const io = syncFileIo ? 'with synchronous file I/O (the child)' : 'with the thread pool';
    test(`a failed read or write is answered with a status and the session goes on, ${io}`, async (t) => {
      const { client, dir } = await ready(t, { syncFileIo });
      writeFileSync(join(dir, 'r'), 'abc');
      const readOnly = await openFile(client, 'r', FXF.READ);
      const write = status(await client.request(FXP.WRITE, (w) => w.string(readOnly).uint64(0n).string('x')));
      // EBADF, which OpenSSH's errno_to_portable maps to NO_SUCH_FILE; so does ours.
      assert.equal(write.code, FX.NO_SUCH_FILE, write.message);
      const writeOnly = await openFile(client, 'w', FXF.WRITE | FXF.CREAT);
      const read = status(await client.request(FXP.READ, (w) => w.string(writeOnly).uint64(0n).uint32(16)));
      assert.equal(read.code, FX.NO_SUCH_FILE, read.message);
      assert.equal(dataOf(await client.request(FXP.READ, (w) => w.string(readOnly).uint64(0n).uint32(16))).toString(), 'abc');
    });

    test(`pipelined WRITEs and READs on one file act as if run one at a time (§6.1), ${io}`, async (t) => {
      const { client, dir } = await ready(t, { concurrency: 8, syncFileIo });
      const handle = await openFile(client, 'p', FXF.READ | FXF.WRITE | FXF.CREAT);
      const chunk = 4096;
      const replies = [];
      // 200 requests without waiting: overlapping writes of the same range, each followed by a read
      // of that range, which must see exactly the write before it.
      for (let round = 0; round < 50; round++) {
        for (let block = 0; block < 2; block++) {
          const offset = BigInt(block * chunk);
          const fill = (round * 2 + block) & 0xff;
          replies.push(client.request(FXP.WRITE, (w) => w.string(handle).uint64(offset).string(Buffer.alloc(chunk, fill))));
          replies.push(client.request(FXP.READ, (w) => w.string(handle).uint64(offset).uint32(chunk)).then((r) => ({ fill, data: dataOf(r) })));
        }
      }
      const first = client.arrivals.length;
      for (const reply of await Promise.all(replies)) {
        if ('fill' in reply) assert.ok(reply.data.equals(Buffer.alloc(chunk, reply.fill)), `a read saw ${reply.data[0]} instead of ${reply.fill}`);
        else assert.equal(status(reply).code, FX.OK);
      }
      const order = client.arrivals.slice(first);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), 'replies in request order');
      // A barrier (FSTAT) sees all the writes before it.
      const attrs = attrsOf(await client.request(FXP.FSTAT, (w) => w.string(handle)));
      assert.equal(attrs.size, BigInt(2 * chunk));
      assert.equal(readFileSync(join(dir, 'p'))[0], 98);
    });

    test(`adjacent READs queued together are read with one preadv and answered as if alone: whole blocks, the short last one, then EOF, ${io}`, async (t) => {
      const { client, dir } = await ready(t, { syncFileIo });
      const block = 32768;
      const content = Buffer.alloc(5 * block + 1000);
      for (let i = 0; i < content.length; i++) content[i] = (i * 31 + (i >> 10)) & 0xff;
      writeFileSync(join(dir, 'f'), content);
      const handle = await openFile(client, 'f', FXF.READ);
      const calls = spyOnReads(t);
      const replies = await client.requestsTogether(
        Array.from({ length: 8 }, (_, k) => ({ type: FXP.READ, body: (w: Writer) => w.string(handle).uint64(BigInt(k * block)).uint32(block) })),
      );
      for (let k = 0; k < 5; k++) assert.ok(dataOf(replies[k]!).equals(content.subarray(k * block, (k + 1) * block)), `block ${k}`);
      assert.ok(dataOf(replies[5]!).equals(content.subarray(5 * block)), 'the block the file ends in');
      assert.equal(status(replies[6]!).code, FX.EOF);
      assert.equal(status(replies[7]!).code, FX.EOF);
      // Seven 32 KiB READs fit under MAX_READ_LENGTH: one preadv; the eighth alone. The two the
      // preadv did not fill were read again, each on its own: the one the file ends in with two
      // reads (its 1000 bytes, then the end), the next with one, as the eighth.
      assert.deepEqual(calls.readv, [7]);
      assert.equal(calls.read, 2 + 1 + 1);
    });

    test(`random runs of adjacent READs and WRITEs through two handles, with truncations and FSTATs, sent together answer as a serial server would (a model of the file), ${io}`, async (t) => {
      const { client, dir } = await ready(t, { syncFileIo });
      const calls = spyOnReads(t);
      // A small deterministic generator (xorshift32), so a failure can be replayed.
      let state = 0x9e3779b9;
      const random = (n: number): number => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return (state >>> 0) % n;
      };
      const sizes = [1000, 4096, 32768, 40000];
      for (let round = 0; round < 20; round++) {
        const initial = patternBytes(`round ${round}`, random(6) * 30000 + random(30000));
        writeFileSync(join(dir, 'm'), initial);
        let model = Buffer.from(initial);
        // Two handles to the one file: requests through either relate to the same file (§6.1).
        const handles = [await openFile(client, 'm', FXF.READ | FXF.WRITE), await openFile(client, 'm', FXF.READ | FXF.WRITE)];
        const requests: { type: number; body: (w: Writer) => void }[] = [];
        const expected: (Buffer | 'EOF' | 'OK' | bigint)[] = [];
        let offset = 0;
        for (let k = 0; k < 40; k++) {
          // Mostly the next block of a run; now and then a jump, a step back, a write, a
          // truncation or an FSTAT (barriers: everything before them finishes first).
          if (random(6) === 0) offset = random(model.length + 50000);
          const length = sizes[random(sizes.length)]!;
          const at = offset;
          const handle = handles[random(4) === 0 ? 1 : 0]!;
          const choice = random(20);
          if (choice === 0) {
            const size = random(model.length + 1);
            requests.push({ type: FXP.FSETSTAT, body: (w) => encodeAttrs(w.string(handle), { size: BigInt(size) }) });
            model = Buffer.from(model.subarray(0, size));
            expected.push('OK');
          } else if (choice === 1) {
            requests.push({ type: FXP.FSTAT, body: (w) => w.string(handle) });
            expected.push(BigInt(model.length));
          } else if (choice < 6) {
            const data = patternBytes(`round ${round} write ${k}`, length);
            requests.push({ type: FXP.WRITE, body: (w) => w.string(handle).uint64(BigInt(at)).string(data) });
            if (at + length > model.length) model = Buffer.concat([model, Buffer.alloc(at + length - model.length)]);
            data.copy(model, at);
            expected.push('OK');
          } else {
            requests.push({ type: FXP.READ, body: (w) => w.string(handle).uint64(BigInt(at)).uint32(length) });
            expected.push(at >= model.length ? 'EOF' : Buffer.from(model.subarray(at, Math.min(at + length, model.length))));
          }
          offset += length;
        }
        const replies = await client.requestsTogether(requests);
        replies.forEach((reply, k) => {
          const want = expected[k]!;
          if (want === 'EOF') assert.equal(status(reply).code, FX.EOF, `round ${round} request ${k}`);
          else if (want === 'OK') assert.equal(status(reply).code, FX.OK, `round ${round} request ${k}`);
          else if (typeof want === 'bigint') assert.equal(attrsOf(reply).size, want, `round ${round} request ${k}: FSTAT`);
          else {
            assert.equal(reply.type, FXP.DATA, `round ${round} request ${k}: ${reply.type === FXP.STATUS ? JSON.stringify(status(reply)) : reply.type}, expected ${want.length} bytes`);
            const data = dataOf(reply);
            assert.ok(data.equals(want), `round ${round} request ${k}: ${data.length} bytes, expected ${want.length}`);
          }
        });
        for (const handle of handles) await client.request(FXP.CLOSE, (w) => w.string(handle));
        assert.ok(readFileSync(join(dir, 'm')).equals(model), `round ${round}: the file`);
      }
      assert.ok(calls.readv.length > 0, 'some READs were batched');
    });

    test(`a batch of READs and a WRITE queued behind them to the same bytes keep their order (§6.1), ${io}`, async (t) => {
      const { client, dir } = await ready(t, { syncFileIo });
      const block = 32768;
      writeFileSync(join(dir, 'f'), Buffer.alloc(2 * block, 1));
      const handle = await openFile(client, 'f', FXF.READ | FXF.WRITE);
      const calls = spyOnReads(t);
      const read = (offset: number) => ({ type: FXP.READ, body: (w: Writer) => w.string(handle).uint64(BigInt(offset)).uint32(block) });
      const replies = await client.requestsTogether([
        read(0),
        read(block),
        { type: FXP.WRITE, body: (w: Writer) => w.string(handle).uint64(0n).string(Buffer.alloc(block, 2)) },
        read(0),
      ]);
      assert.deepEqual(calls.readv, [2]);
      assert.ok(dataOf(replies[0]!).equals(Buffer.alloc(block, 1)));
      assert.ok(dataOf(replies[1]!).equals(Buffer.alloc(block, 1)));
      assert.equal(status(replies[2]!).code, FX.OK);
      assert.ok(dataOf(replies[3]!).equals(Buffer.alloc(block, 2)), 'the READ after the WRITE sees it');
    });

    test(`non-overlapping WRITEs of a large upload all land, replies carry their ids, ${io}`, async (t) => {
      const { client, dir } = await ready(t, { syncFileIo });
      const handle = await openFile(client, 'up', FXF.WRITE | FXF.CREAT | FXF.TRUNC);
      const content = Buffer.alloc(64 * 32768);
      for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 12)) & 0xff;
      const ids: number[] = [];
      const replies = [];
      for (let offset = 0; offset < content.length; offset += 32768) {
        const id = 5000 + offset / 32768;
        ids.push(id);
        replies.push(client.requestWithId(FXP.WRITE, id, (w) => w.string(handle).uint64(BigInt(offset)).string(content.subarray(offset, offset + 32768))));
      }
      const answered = await Promise.all(replies);
      assert.deepEqual(answered.map((r) => r.id), ids);
      // Run concurrently, answered in request order: OpenSSH 9.2's scp truncates an in-place upload
      // at the highest in-order acknowledgement.
      assert.deepEqual(client.arrivals.slice(-ids.length), ids);
      assert.ok(answered.every((r) => status(r).code === FX.OK));
      await client.request(FXP.CLOSE, (w) => w.string(handle));
      assert.ok(readFileSync(join(dir, 'up')).equals(content));
    });
  }

  test('back-pressure: a client that does not read its replies stops being read', async (t) => {
    // An output that takes one chunk and then never calls back: the server must stop starting
    // requests, and then stop reading its input.
    const stuck = new Writable({ highWaterMark: 1024, write: () => {} });
    const h = harness(t, {}, stuck);
    const init = packet(FXP.INIT, (w) => w.uint32(3));
    const stat = packet(FXP.STAT, (w) => w.uint32(7).string('.'));
    h.toServer.write(init);
    for (let i = 0; i < 5000; i++) h.toServer.write(stat);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(h.toServer.isPaused(), 'the input was paused');
    // Only a bounded part was taken off the input: most of the 5000 requests still wait in it.
    const left = h.toServer.readableLength + h.toServer.writableLength;
    assert.ok(left > 4000 * stat.length, `input left: ${left}`);
  });

  test('RENAME fails when the target exists (§6.5); posix-rename@openssh.com replaces it', async (t) => {
    const { client, dir } = await ready(t);
    writeFileSync(join(dir, 'a'), 'A');
    writeFileSync(join(dir, 'b'), 'B');
    assert.equal(status(await client.request(FXP.RENAME, (w) => w.string('a').string('b'))).code, FX.FAILURE);
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'A');
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'B');
    assert.equal(status(await client.request(FXP.RENAME, (w) => w.string('a').string('c'))).code, FX.OK);
    assert.equal(existsSync(join(dir, 'a')), false);
    assert.equal(readFileSync(join(dir, 'c'), 'utf8'), 'A');
    mkdirSync(join(dir, 'd1'));
    mkdirSync(join(dir, 'd2'));
    assert.equal(status(await client.request(FXP.RENAME, (w) => w.string('d1').string('d2'))).code, FX.FAILURE);
    assert.equal(status(await client.extended('posix-rename@openssh.com', (w) => w.string('c').string('b'))).code, FX.OK);
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'A');
    assert.equal(status(await client.request(FXP.RENAME, (w) => w.string('nothing').string('x'))).code, FX.NO_SUCH_FILE);
  });

  test('SYMLINK takes the target first, the link second (OpenSSH\'s order); READLINK returns the target as stored', async (t) => {
    const { client, dir } = await ready(t);
    assert.equal(status(await client.request(FXP.SYMLINK, (w) => w.string('../elsewhere/target').string('link'))).code, FX.OK);
    assert.equal(readlinkSync(join(dir, 'link')), '../elsewhere/target');
    const [name] = namesOf(await client.request(FXP.READLINK, (w) => w.string('link')));
    assert.equal(name!.filename, '../elsewhere/target');
    // LSTAT sees the link, STAT follows it (to nothing).
    assert.equal((attrsOf(await client.request(FXP.LSTAT, (w) => w.string('link'))).permissions! & 0o170000), 0o120000);
    assert.equal(status(await client.request(FXP.STAT, (w) => w.string('link'))).code, FX.NO_SUCH_FILE);
    assert.equal(status(await client.extended('hardlink@openssh.com', (w) => w.string('link').string('hard'))).code, FX.OK);
    assert.equal(lstatSync(join(dir, 'hard')).isSymbolicLink(), true);
  });

  test('REALPATH: relative to the session folder, `..` resolved, a missing last component allowed', async (t) => {
    const { client, dir } = await ready(t);
    mkdirSync(join(dir, 'sub'));
    symlinkSync('sub', join(dir, 'via'));
    const real = (path: string): Promise<string> => client.request(FXP.REALPATH, (w) => w.string(path)).then((r) => namesOf(r)[0]!.filename);
    const base = await real('.');
    assert.equal(base, realpathSync(dir));
    assert.equal(await real(''), base);
    assert.equal(await real('sub/../sub/'), `${base}/sub`);
    assert.equal(await real('via/new-file'), `${base}/sub/new-file`);
    assert.equal(await real('/'), '/');
    assert.equal(status(await client.request(FXP.REALPATH, (w) => w.string('missing/deeper'))).code, FX.NO_SUCH_FILE);
    const expand = async (path: string): Promise<string> => namesOf(await client.extended('expand-path@openssh.com', (w) => w.string(path)))[0]!.filename;
    assert.equal(await expand('~/sub'), `${base}/sub`);
    assert.equal(await expand('sub'), `${base}/sub`);
    assert.equal(status(await client.extended('expand-path@openssh.com', (w) => w.string('~nobody-here/x'))).code, FX.NO_SUCH_FILE);
    assert.equal(namesOf(await client.extended('home-directory', (w) => w.string('someone')))[0]!.filename, '/home/someone');
  });

  test('MKDIR, OPENDIR/READDIR with longnames and EOF, SETSTAT, REMOVE, RMDIR', async (t) => {
    const { client, dir } = await ready(t);
    assert.equal(status(await client.request(FXP.MKDIR, (w) => encodeAttrs(w.string('d'), { permissions: 0o750 }))).code, FX.OK);
    assert.equal(statSync(join(dir, 'd')).mode & 0o777, 0o750);
    assert.equal(status(await client.request(FXP.MKDIR, (w) => encodeAttrs(w.string('d'), {}))).code, FX.FAILURE);
    for (let i = 0; i < 150; i++) writeFileSync(join(dir, 'd', `file${i}`), 'x'.repeat(i));
    const handle = handleOf(await client.request(FXP.OPENDIR, (w) => w.string('d')));
    const seen = new Map<string, { longname: string; attrs: Attrs }>();
    let batches = 0;
    for (;;) {
      const reply = await client.request(FXP.READDIR, (w) => w.string(handle));
      if (reply.type === FXP.STATUS) {
        assert.equal(status(reply).code, FX.EOF);
        break;
      }
      batches++;
      for (const n of namesOf(reply)) seen.set(n.filename, n);
    }
    assert.ok(batches >= 2, 'more than one READDIR reply for 152 names');
    assert.equal(seen.size, 152);
    assert.ok(seen.has('.') && seen.has('..'));
    const f7 = seen.get('file7')!;
    assert.equal(f7.attrs.size, 7n);
    assert.match(f7.longname, /^-rw-r--r-- +1 \S+ +\S+ +7 \w{3} [ \d]\d \d\d:\d\d file7$/);
    assert.equal(status(await client.request(FXP.CLOSE, (w) => w.string(handle))).code, FX.OK);
    assert.equal(status(await client.request(FXP.SETSTAT, (w) => encodeAttrs(w.string('d/file9'), { size: 3n, permissions: 0o640, atime: 1000, mtime: 2000 }))).code, FX.OK);
    const after = statSync(join(dir, 'd', 'file9'));
    assert.deepEqual([after.size, after.mode & 0o777, Math.round(after.mtimeMs / 1000)], [3, 0o640, 2000]);
    assert.equal(status(await client.request(FXP.RMDIR, (w) => w.string('d'))).code, FX.FAILURE);
    assert.equal(status(await client.request(FXP.REMOVE, (w) => w.string('d/file1'))).code, FX.OK);
    assert.equal(status(await client.request(FXP.REMOVE, (w) => w.string('d/file1'))).code, FX.NO_SUCH_FILE);
    rmSync(join(dir, 'd'), { recursive: true });
    mkdirSync(join(dir, 'd'));
    assert.equal(status(await client.request(FXP.RMDIR, (w) => w.string('d'))).code, FX.OK);
  });

  test('statvfs, fstatvfs, fsync, copy-data, users-groups-by-id', async (t) => {
    const { client, dir } = await ready(t);
    const statvfs = await client.extended('statvfs@openssh.com', (w) => w.string('.'));
    assert.equal(statvfs.type, FXP.EXTENDED_REPLY);
    const values = Array.from({ length: 11 }, () => statvfs.reader.uint64());
    assert.ok(values[0]! > 0n && values[2]! > 0n, 'block size and block count');
    writeFileSync(join(dir, 'src'), 'copy me, please');
    const from = await openFile(client, 'src', FXF.READ);
    const to = await openFile(client, 'dst', FXF.WRITE | FXF.CREAT);
    assert.equal((await client.extended('fstatvfs@openssh.com', (w) => w.string(from))).type, FXP.EXTENDED_REPLY);
    assert.equal(status(await client.extended('copy-data', (w) => w.string(from).uint64(5n).uint64(0n).string(to).uint64(0n))).code, FX.OK);
    assert.equal(status(await client.extended('copy-data', (w) => w.string(from).uint64(0n).uint64(0n).string(from).uint64(0n))).code, FX.FAILURE);
    assert.equal(status(await client.extended('fsync@openssh.com', (w) => w.string(to))).code, FX.OK);
    assert.equal(readFileSync(join(dir, 'dst'), 'utf8'), 'me, please');
    const ids = await client.extended('users-groups-by-id@openssh.com', (w) => w.string(new Writer().uint32(0).uint32(4242).finish()).string(new Writer().uint32(0).finish()));
    const users = new Reader(ids.reader.string());
    const groups = new Reader(ids.reader.string());
    assert.deepEqual([users.utf8(), users.utf8(), groups.utf8()], ['root', '', 'root']);
  });

  test('read-only (-R): changes are refused with SSH_FX_PERMISSION_DENIED, reads work', async (t) => {
    const { client, dir } = await ready(t, { readOnly: true });
    writeFileSync(join(dir, 'f'), 'ro');
    assert.equal(status(await client.request(FXP.OPEN, (w) => w.string('g').uint32(FXF.WRITE | FXF.CREAT).uint32(0))).code, FX.PERMISSION_DENIED);
    assert.equal(status(await client.request(FXP.REMOVE, (w) => w.string('f'))).code, FX.PERMISSION_DENIED);
    assert.equal(status(await client.request(FXP.MKDIR, (w) => w.string('x').uint32(0))).code, FX.PERMISSION_DENIED);
    assert.equal(status(await client.request(FXP.SETSTAT, (w) => encodeAttrs(w.string('f'), { permissions: 0o777 }))).code, FX.PERMISSION_DENIED);
    assert.equal(status(await client.extended('posix-rename@openssh.com', (w) => w.string('f').string('h'))).code, FX.PERMISSION_DENIED);
    const handle = await openFile(client, 'f', FXF.READ);
    assert.equal(dataOf(await client.request(FXP.READ, (w) => w.string(handle).uint64(0n).uint32(10))).toString(), 'ro');
  });

  test('the client\'s EOF ends the session after the last reply, with every handle closed', async (t) => {
    const h = await ready(t);
    writeFileSync(join(h.dir, 'f'), 'x');
    await openFile(h.client, 'f', FXF.READ);
    const last = h.client.request(FXP.STAT, (w) => w.string('f'));
    h.client.end();
    assert.equal((await last).type, FXP.ATTRS);
    assert.deepEqual(await h.done, { code: 0, error: undefined });
    await h.client.whenEnded();
  });
});
