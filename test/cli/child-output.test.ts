/**
 * Reading a child's stdout with onread (src/cli/sshd/child-output.ts): the pipe's handle moves into
 * a Socket whose reads land in the callback, in order and complete, then 'end'; a callback that
 * returns false stops the reads until resume(). On our Node the handle is always there to take:
 * the fallback (reading the stream) would cost every download a seventh more CPU, unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readChildOutput } from '../../src/cli/sshd/child-output.js';

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
