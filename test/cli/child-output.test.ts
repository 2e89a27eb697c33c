/**
 * Reading a child's stdout with onread (src/cli/sshd/child-output.ts): the pipe's handle moves into
 * a Socket whose reads land in the callback, in order and complete, then 'end'; a callback that
 * returns false stops the reads until resume(). On our Node the handle is always there to take:
 * the fallback (reading the stream) would cost every download a seventh more CPU, unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTPUT_PIPE_SIZE, readChildOutput, readOutputFd } from '../../src/cli/sshd/child-output.js';
import { findPerl } from '../../src/cli/sshd/chroot.js';
import { peersRequired } from '../helpers/peers.js';

/** A child that writes `size` bytes of a known pattern to stdout, in pieces, then exits. */
function writer(size: number) {
  const script = `const b = Buffer.alloc(${size}); for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
    let at = 0; (function more() { while (at < b.length) { const piece = b.subarray(at, at + 50000); at += piece.length; if (!process.stdout.write(piece)) return process.stdout.once('drain', more); } })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'pipe' });
  const expected = Buffer.alloc(size);
  for (let i = 0; i < size; i++) expected[i] = (i * 7 + (i >> 8)) & 0xff;
  return { child, expected };
}

test("a child's output arrives through the callback, whole and in order, then 'end'", async () => {
  const { child, expected } = writer(3_000_000);
  const received: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  const reader = readChildOutput(child.stdout, (bytes, buffer) => {
    buffers.add(buffer.buffer);
    received.push(Buffer.from(buffer.subarray(0, bytes)));
    return true;
  });
  assert.ok(reader, 'the pipe handle was taken (not the stream fallback)');
  assert.ok(child.stdout!.destroyed, "the stream Node made no longer owns the pipe");
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve) => reader.once('end', () => resolve()).resume());
  assert.equal(await exited, 0);
  assert.ok(Buffer.concat(received).equals(expected));
  assert.equal(buffers.size, 1, 'every read went into the one shared buffer');
});

test('a callback that returns false stops the reads until resume()', async () => {
  const { child, expected } = writer(1_000_000);
  const received: Buffer[] = [];
  let paused = false;
  let readsWhilePaused = 0;
  const reader = readChildOutput(child.stdout, (bytes, buffer) => {
    if (paused) readsWhilePaused++;
    received.push(Buffer.from(buffer.subarray(0, bytes)));
    if (received.length === 1) {
      paused = true;
      return false;
    }
    return true;
  });
  assert.ok(reader);
  reader.resume();
  // Wait while the child has more to write: nothing may arrive until resume().
  while (received.length === 0) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(received.length, 1);
  const ended = new Promise<void>((resolve) => reader.once('end', () => resolve()));
  paused = false;
  reader.resume();
  await ended;
  assert.equal(readsWhilePaused, 0);
  assert.ok(Buffer.concat(received).equals(expected));
});

test('a full pipe of the size the spawn helper sets is read in one go', async (t) => {
  // perl (Debian's perl-base, which the spawn helper itself needs) sets the pipe's size, as the
  // helper does for a command's stdout; Node cannot.
  const perl = findPerl();
  if (!perl) {
    assert.ok(!peersRequired(), 'perl is missing (Debian package perl-base)');
    t.skip('needs perl (Debian package perl-base)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tssh-child-output-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'out');
  assert.equal(spawnSync('mkfifo', ['-m', '600', fifo]).status, 0);
  const ours = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  // The writer fills the pipe without blocking, says so, and keeps it open until told to close.
  const writer = spawn(perl, ['-e', `$| = 1; open(my $f, '>', $ARGV[0]) or die; fcntl($f, 1031, ${OUTPUT_PIPE_SIZE}) or die "F_SETPIPE_SZ: $!";
    my $n = syswrite($f, 'x' x ${OUTPUT_PIPE_SIZE}); die "wrote $n" unless $n == ${OUTPUT_PIPE_SIZE}; print "full\\n"; <STDIN>; close($f);`, fifo], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    writer.stdout.once('data', () => resolve());
    writer.once('exit', (code) => reject(new Error(`the writer exited (${code}) before it filled the pipe`)));
  });
  const reads: number[] = [];
  const reader = readOutputFd(ours, (bytes) => {
    reads.push(bytes);
    return true;
  });
  const ended = new Promise<void>((resolve) => reader.once('end', () => resolve()));
  reader.resume();
  while (reads.length === 0) await new Promise((r) => setTimeout(r, 5));
  writer.stdin.end('\n');
  await ended;
  // (The Socket closed `ours` at the end.)
  assert.deepEqual(reads, [OUTPUT_PIPE_SIZE], 'the whole pipe in the first read');
});
