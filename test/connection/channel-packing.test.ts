/**
 * ChannelStream fills packets across the boundaries of writes that waited together (corked, or
 * behind a full window): an SFTP server's 32,781-byte DATA replies to a peer whose packets hold
 * 32 KiB leave as full packets, not as a 32 KiB packet and a 13-byte one each. Bytes arrive whole
 * and in order, every write is called back, stdout and stderr are never mixed in one packet, and
 * a single write is sent as before. A real MuxChannel over a multiplexer that records packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelStream } from '../../src/channel.js';
import { MuxChannel, type ChannelMux } from '../../src/connection/mux.js';

interface Packet {
  readonly type: number;
  readonly bytes: Buffer;
}

/** A multiplexer that only records what a channel sends. */
function recordingMux(packets: Packet[], canSend = () => true): ChannelMux {
  const mux = {
    sendData(_recipient: number, type: number, data: Buffer, offset: number, length: number) {
      packets.push({ type, bytes: Buffer.from(data.subarray(offset, offset + length)) });
    },
    canSend,
    send() {},
  };
  return mux as unknown as ChannelMux;
}

/** An open channel whose peer takes packets of `maxPacket` bytes and gives `window` bytes of window. */
function openChannel(packets: Packet[], maxPacket: number, window: number): MuxChannel {
  const channel = new MuxChannel(recordingMux(packets), 0, 'session', 2 * 1024 * 1024, 32 * 1024);
  channel.state = 'open';
  channel.remoteId = 7;
  channel.remoteMaxPacket = maxPacket;
  channel.remoteWindow = window;
  return channel;
}

/** A stream that can write stderr too (what server sessions do through writeExtended). */
class TwoStreams extends ChannelStream {
  writeStderr(chunk: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.writeExtended(chunk, (error) => (error ? reject(error) : resolve())));
  }
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return bytes;
}

function written(stream: ChannelStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (error) => (error ? reject(error) : resolve())));
}

test('corked writes of 32,781 bytes to 32 KiB packets: full packets across their boundaries, all called back', async () => {
  const packets: Packet[] = [];
  const stream = new ChannelStream(openChannel(packets, 32 * 1024, 64 * 1024 * 1024), false);
  const replies = [0, 1, 2, 3].map((i) => pattern(32 * 1024 + 13, i));
  stream.cork();
  const done = replies.map((reply) => written(stream, reply));
  process.nextTick(() => stream.uncork());
  await Promise.all(done);
  assert.deepEqual(packets.map((p) => p.bytes.length), [32768, 32768, 32768, 32768, 52]);
  assert.ok(Buffer.concat(packets.map((p) => p.bytes)).equals(Buffer.concat(replies)));
});

test('a single write is sent as before: whole packets, then its tail', async () => {
  const packets: Packet[] = [];
  const stream = new ChannelStream(openChannel(packets, 32 * 1024, 64 * 1024 * 1024), false);
  const reply = pattern(32 * 1024 + 13, 9);
  await written(stream, reply);
  assert.deepEqual(packets.map((p) => p.bytes.length), [32768, 13]);
  assert.ok(Buffer.concat(packets.map((p) => p.bytes)).equals(reply));
});

test('writes that waited behind a full window are packed together once it opens, in order', async () => {
  const packets: Packet[] = [];
  const channel = openChannel(packets, 1000, 2500);
  const stream = new ChannelStream(channel, false);
  const chunks = [pattern(2600, 1), pattern(300, 2), pattern(900, 3), pattern(50, 4)];
  const done = chunks.map((chunk) => written(stream, chunk));
  await new Promise((resolve) => setImmediate(resolve));
  // The first write filled the window; the others wait behind it.
  assert.deepEqual(packets.map((p) => p.bytes.length), [1000, 1000, 500]);
  channel.remoteWindow += 10_000;
  stream.events.onWritable();
  await Promise.all(done);
  // The 100 left of the first write (the one the window held back), then the three that waited
  // behind it, 1,250 bytes, in two packets rather than three.
  assert.deepEqual(packets.map((p) => p.bytes.length), [1000, 1000, 500, 100, 1000, 250]);
  assert.ok(Buffer.concat(packets.map((p) => p.bytes)).equals(Buffer.concat(chunks)));
});

test('a window smaller than the tail: what fits goes, the rest follows when the window grows', async () => {
  const packets: Packet[] = [];
  const channel = openChannel(packets, 1000, 1200);
  const stream = new ChannelStream(channel, false);
  const chunks = [pattern(1100, 5), pattern(700, 6)];
  stream.cork();
  const done = chunks.map((chunk) => written(stream, chunk));
  process.nextTick(() => stream.uncork());
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(packets.map((p) => p.bytes.length), [1000, 200]);
  channel.remoteWindow += 5000;
  stream.events.onWritable();
  await Promise.all(done);
  assert.deepEqual(packets.map((p) => p.bytes.length), [1000, 200, 600]);
  assert.ok(Buffer.concat(packets.map((p) => p.bytes)).equals(Buffer.concat(chunks)));
});

test('stdout and stderr queued together never share a packet, and keep their order', async () => {
  const packets: Packet[] = [];
  const channel = openChannel(packets, 1000, 0);
  const stream = new TwoStreams(channel, false);
  const out1 = pattern(1500, 7);
  const err1 = pattern(400, 8);
  const out2 = pattern(300, 9);
  const done = [written(stream, out1), stream.writeStderr(err1), written(stream, out2)];
  channel.remoteWindow = 100_000;
  stream.events.onWritable();
  await Promise.all(done);
  assert.deepEqual(
    packets.map((p) => [p.type, p.bytes.length]),
    [[0, 1000], [0, 500], [1, 400], [0, 300]],
  );
  assert.ok(Buffer.concat(packets.filter((p) => p.type === 0).map((p) => p.bytes)).equals(Buffer.concat([out1, out2])));
});
