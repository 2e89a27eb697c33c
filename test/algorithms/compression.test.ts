import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as nodeZlib from 'node:zlib';
import { noCompression } from '../../src/algorithms/compression/none.js';
import { zlib, zlibOpenssh } from '../../src/algorithms/compression/zlib.js';
import { CompressionError } from '../../src/errors.js';
import type { Compressor, Decompressor } from '../../src/algorithms/types.js';

const MAX = 256 * 1024;

function compressor(): Compressor {
  const c = zlib.createCompressor();
  assert.ok(c);
  return c;
}

function decompressor(): Decompressor {
  const d = zlib.createDecompressor();
  assert.ok(d);
  return d;
}

/** Payloads like an SSH session's: repetitive text, binary noise, empty-ish and large ones. */
function samplePayloads(): Buffer[] {
  const text = Buffer.from('drwxr-xr-x  2 user user 4096 Jan  1 00:00 some-directory-name\n'.repeat(40));
  return [
    Buffer.from([94, 0, 0, 0, 0]),
    text,
    randomBytes(1000),
    text, // repeats earlier data: compresses to back-references into the previous packet
    Buffer.alloc(32768, 0x41),
    randomBytes(32768),
    Buffer.from('x'),
    Buffer.concat([text, randomBytes(300), text]),
  ];
}

/** Node's deflate with a partial flush after each payload: what an OpenSSH peer sends. */
async function nodeDeflatePackets(payloads: Buffer[]): Promise<Buffer[]> {
  const deflate = nodeZlib.createDeflate({ level: 6 });
  const out: Buffer[] = [];
  let pending: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => pending.push(chunk));
  for (const payload of payloads) {
    deflate.write(payload);
    await new Promise<void>((resolve) => deflate.flush(nodeZlib.constants.Z_PARTIAL_FLUSH, () => resolve()));
    // Let the 'data' events of this flush arrive.
    await new Promise<void>((resolve) => setImmediate(resolve));
    out.push(Buffer.concat(pending));
    pending = [];
  }
  deflate.destroy();
  return out;
}

describe('compression algorithm descriptions', () => {
  test('none does no compression at all', () => {
    assert.equal(noCompression.name, 'none');
    assert.equal(noCompression.delayed, false);
    assert.equal(noCompression.createCompressor(), undefined);
    assert.equal(noCompression.createDecompressor(), undefined);
  });

  test('zlib@openssh.com is delayed until after authentication; zlib is not', () => {
    assert.deepEqual([zlibOpenssh.name, zlibOpenssh.delayed], ['zlib@openssh.com', true]);
    assert.deepEqual([zlib.name, zlib.delayed], ['zlib', false]);
    assert.ok(zlibOpenssh.createCompressor());
    assert.ok(zlibOpenssh.createDecompressor());
  });
});

describe('zlib streams', () => {
  test('round-trips a sequence of packets through one persistent stream per direction', () => {
    const c = compressor();
    const d = decompressor();
    for (const payload of samplePayloads()) {
      const compressed = c.compress(payload);
      assert.deepEqual(d.decompress(compressed, MAX), payload);
    }
  });

  test('the stream persists across packets: a repeated payload compresses to a few bytes', () => {
    const c = compressor();
    const text = randomBytes(2000).toString('base64');
    const first = c.compress(Buffer.from(text));
    const second = c.compress(Buffer.from(text));
    assert.ok(first.length > 1000);
    assert.ok(second.length < 40, `second copy took ${second.length} bytes`);
  });

  test('the compressor does not keep or modify the caller\'s payload buffer', () => {
    const c = compressor();
    const d = decompressor();
    const payload = Buffer.from('a payload buffer the caller reuses');
    const copy = Buffer.from(payload);
    const compressed = c.compress(payload);
    payload.fill(0);
    assert.deepEqual(d.decompress(compressed, MAX), copy);
  });

  test('each packet ends with a partial flush: node:zlib inflates every prefix of the stream to the payloads so far', () => {
    const c = compressor();
    const payloads = samplePayloads();
    const compressed = payloads.map((p) => c.compress(p));
    for (let k = 1; k <= compressed.length; k++) {
      // One node inflate stream over the first k packets; Z_SYNC_FLUSH: the stream is not finished.
      const inflated = nodeZlib.inflateSync(Buffer.concat(compressed.slice(0, k)), {
        finishFlush: nodeZlib.constants.Z_SYNC_FLUSH,
      });
      assert.deepEqual(inflated, Buffer.concat(payloads.slice(0, k)), `first ${k} packets`);
    }
  });

  test('inflates what node:zlib (the zlib library OpenSSH uses) deflates with a partial flush per packet', async () => {
    const payloads = samplePayloads();
    const packets = await nodeDeflatePackets(payloads);
    const d = decompressor();
    for (const [i, packet] of packets.entries()) assert.deepEqual(d.decompress(packet, MAX), payloads[i], `packet ${i}`);
  });

  test('an empty payload compresses and inflates to an empty payload', () => {
    const c = compressor();
    const d = decompressor();
    assert.deepEqual(d.decompress(c.compress(Buffer.from('before')), MAX), Buffer.from('before'));
    assert.equal(d.decompress(c.compress(Buffer.alloc(0)), MAX).length, 0);
    assert.deepEqual(d.decompress(c.compress(Buffer.from('after')), MAX), Buffer.from('after'));
  });
});

describe('zlib decompression limits and errors', () => {
  test('output of exactly maxLength is accepted; one byte more throws CompressionError', () => {
    const payload = Buffer.alloc(5000, 7);
    const compressed = compressor().compress(payload);
    assert.deepEqual(decompressor().decompress(compressed, 5000), payload);
    assert.throws(() => decompressor().decompress(compressed, 4999), CompressionError);
  });

  test('a highly compressible bomb is stopped at the limit rather than inflated in full', () => {
    // 64 MiB of zeros in ~64 KiB, from node's zlib with a sync flush (an unfinished stream).
    const bomb = nodeZlib.deflateSync(Buffer.alloc(64 * 1024 * 1024), { finishFlush: nodeZlib.constants.Z_SYNC_FLUSH });
    const d = decompressor();
    const started = process.hrtime.bigint();
    assert.throws(() => d.decompress(bomb, 64 * 1024), /exceeds the limit of 65536 bytes/);
    // Inflating all 64 MiB would take hundreds of milliseconds; stopping after 64 KiB takes about one.
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 100, `took ${ms} ms`);
  });

  test('invalid compressed data throws CompressionError, and so does every later packet', () => {
    const d = decompressor();
    assert.throws(() => d.decompress(Buffer.from('definitely not a zlib stream'), MAX), CompressionError);
    const valid = compressor().compress(Buffer.from('valid'));
    assert.throws(() => d.decompress(valid, MAX), CompressionError);
  });

  test('a corrupted packet in the middle of a valid stream throws CompressionError', () => {
    const c = compressor();
    const d = decompressor();
    assert.deepEqual(d.decompress(c.compress(Buffer.from('first packet')), MAX), Buffer.from('first packet'));
    const second = c.compress(randomBytes(200));
    second.fill(0xff, 0, 8);
    assert.throws(() => d.decompress(second, MAX), CompressionError);
  });

  test('a finished (Z_FINISH) zlib stream throws CompressionError: SSH streams never end', () => {
    const finished = nodeZlib.deflateSync(Buffer.from('complete stream'));
    assert.throws(() => decompressor().decompress(finished, MAX), /stream ended/);
  });

  test('the limit applies per packet, not to the stream so far', () => {
    const c = compressor();
    const d = decompressor();
    for (let i = 0; i < 10; i++) {
      const payload = randomBytes(1000);
      assert.deepEqual(d.decompress(c.compress(payload), 1000), payload);
    }
  });
});
