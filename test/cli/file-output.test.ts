/**
 * tssh's standard output to a file or a device (src/cli/ssh/file-output.ts): what one turn of the
 * event loop brings goes out in one writev(2), byte-exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { FileOutput, isFileOrDevice } from '../../src/cli/ssh/file-output.js';

/** Records how many chunks each system call was given. */
class CountingOutput extends FileOutput {
  readonly calls: number[] = [];

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.calls.push(chunks.length);
    super._writev(chunks, callback);
  }
}

test('the packets of one turn, piped in as a channel delivers them, leave in one writev', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-file-output-'));
  try {
    const path = join(dir, 'out.bin');
    const fd = openSync(path, 'w');
    const output = new CountingOutput(fd);
    // As tssh's relay() does: gather() before pipe()'s own 'data' listener.
    const source = new PassThrough();
    source.on('data', () => output.gather());
    source.pipe(output);
    // One read of the connection: eight 32 KiB packets opened in the same turn, as from sshd.
    const packets = Array.from({ length: 8 }, (_, i) => Buffer.alloc(32 * 1024, i + 1));
    for (const packet of packets) source.write(packet);
    await new Promise<void>((resolve) => setImmediate(resolve));
    // A second turn's packets are a second call.
    source.write(Buffer.from('tail'));
    source.end();
    await new Promise<void>((resolve) => output.once('finish', () => resolve()));
    closeSync(fd);
    assert.deepEqual(output.calls, [8, 1], 'one call per turn, each with every packet of the turn');
    assert.ok(readFileSync(path).equals(Buffer.concat([...packets, Buffer.from('tail')])), 'the file holds every byte in order');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a regular file and /dev/null are written this way; a closed descriptor is not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-file-output-'));
  const file = openSync(join(dir, 'f'), 'w');
  const devNull = openSync('/dev/null', 'w');
  try {
    assert.equal(isFileOrDevice(file), true);
    assert.equal(isFileOrDevice(devNull), true);
    const closed = openSync(join(dir, 'g'), 'w');
    closeSync(closed);
    assert.equal(isFileOrDevice(closed), false, 'a closed descriptor');
  } finally {
    closeSync(file);
    closeSync(devNull);
    rmSync(dir, { recursive: true, force: true });
  }
});
