// The channel multiplexer (src/connection/mux.ts) without sockets: two ChannelMux instances back
// to back (test/helpers/conn-mux.ts), messages moved by hand so that a test decides what is in
// flight. Covers RFC 4254 §5: open/confirm/failure, data and extended data within windows, EOF and
// CLOSE from either side in any order, channel ids reused only after both CLOSEs, 5,000 channels on
// one mux, the protocol errors a misbehaving peer earns (data beyond the window, an unknown
// channel, a window adjust past 2^32-1), and channel/global request replies in request order.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelMux, ChannelOpenError, DEFAULT_MAX_PACKET, DEFAULT_WINDOW } from '../../src/connection/mux.js';
import {
  ChannelClose,
  ChannelEof,
  ChannelOpen,
  ChannelOpenFailure,
  ChannelRequest,
  ChannelSuccess,
  ChannelWindowAdjust,
  GlobalRequest,
  RequestSuccess,
  encodeChannelData,
  encodeChannelExtendedData,
} from '../../src/connection/messages.js';
import { ConnectionLostError, DisconnectReason, ProtocolError } from '../../src/errors.js';
import { MSG } from '../../src/wire/messages.js';
import { ChannelRecorder, MuxEnd, MuxPair, settle } from '../helpers/conn-mux.js';

const MAX_UINT32 = 0xffffffff;

function data(recipient: number, bytes: number | Buffer): Buffer {
  const body = typeof bytes === 'number' ? Buffer.alloc(bytes, 0x61) : bytes;
  return encodeChannelData(recipient, body, 0, body.length);
}

function protocolError(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_SSH_PROTOCOL');
    assert.equal(error.reason, DisconnectReason.PROTOCOL_ERROR);
    assert.match(error.message, pattern);
    return true;
  };
}

describe('opening channels', () => {
  test('an open the peer accepts resolves with a channel whose remote id, window and packet size come from the confirmation', async () => {
    const pair = new MuxPair({ b: { window: 100_000, maxPacket: 4096 } });
    const { local, remote } = await pair.openChannel({ window: 50_000, maxPacket: 1024, data: Buffer.from('type-specific') });
    assert.deepEqual(pair.log, ['a→b SSH_MSG_CHANNEL_OPEN', 'b→a SSH_MSG_CHANNEL_OPEN_CONFIRMATION']);
    assert.equal(local.channel.state, 'open');
    assert.equal(remote.channel.state, 'open');
    assert.equal(local.channel.remoteId, remote.channel.localId);
    assert.equal(remote.channel.remoteId, local.channel.localId);
    // Each side may send what the other granted.
    assert.equal(local.channel.remoteWindow, 100_000);
    assert.equal(local.channel.remoteMaxPacket, 4096);
    assert.equal(remote.channel.remoteWindow, 50_000);
    assert.equal(remote.channel.remoteMaxPacket, 1024);
    assert.equal(pair.b.accepted[0]!.request.type, 'session');
    assert.equal(pair.b.accepted[0]!.request.data.toString(), 'type-specific');
    assert.equal(pair.a.mux.channelCount, 1);
    assert.equal(pair.b.mux.channelCount, 1);
  });

  test('the defaults: OpenSSH\'s 2 MiB window, and 64 KiB packets accepted', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    assert.equal(DEFAULT_WINDOW, 2 * 1024 * 1024);
    assert.equal(DEFAULT_MAX_PACKET, 64 * 1024);
    assert.equal(local.channel.remoteWindow, DEFAULT_WINDOW);
    assert.equal(remote.channel.remoteWindow, DEFAULT_WINDOW);
    assert.equal(local.channel.remoteMaxPacket, DEFAULT_MAX_PACKET);
  });

  test('an open the peer refuses rejects with ChannelOpenError carrying the reason code and description, and frees the id', async () => {
    const pair = new MuxPair();
    pair.b.openHandler = () => ({ reason: ChannelOpenFailure.CONNECT_FAILED, description: 'connect to 127.0.0.1 port 9: refused\u0007' });
    const opened = pair.a.mux.open('direct-tcpip', Buffer.alloc(0), () => new ChannelRecorder());
    pair.flush();
    await assert.rejects(opened, (error: unknown) => {
      assert.ok(error instanceof ChannelOpenError);
      assert.equal(error.code, 'ERR_SSH_CHANNEL_OPEN');
      assert.equal(error.channelType, 'direct-tcpip');
      assert.equal(error.failureReason, ChannelOpenFailure.CONNECT_FAILED);
      // The peer's text is shown, with control characters neutralised.
      assert.equal(error.message, 'could not open direct-tcpip channel: connect failed: connect to 127.0.0.1 port 9: refused?');
      return true;
    });
    assert.deepEqual(pair.log, ['a→b SSH_MSG_CHANNEL_OPEN', 'b→a SSH_MSG_CHANNEL_OPEN_FAILURE']);
    assert.equal(pair.a.mux.channelCount, 0);
    assert.equal(pair.b.mux.channelCount, 0);
    // Both ids are free again: the next channel gets id 0 on both sides.
    pair.b.openHandler = (request, channel) => {
      const events = new ChannelRecorder();
      pair.b.accepted.push({ channel, events, request });
      return { accept: events };
    };
    const { local, remote } = await pair.openChannel();
    assert.equal(local.channel.localId, 0);
    assert.equal(remote.channel.localId, 0);
  });

  test('every RFC 4254 failure reason is named in the error message', async () => {
    const names: Record<number, string> = {
      [ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED]: 'administratively prohibited',
      [ChannelOpenFailure.CONNECT_FAILED]: 'connect failed',
      [ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE]: 'unknown channel type',
      [ChannelOpenFailure.RESOURCE_SHORTAGE]: 'resource shortage',
    };
    for (const [code, name] of Object.entries(names)) {
      const pair = new MuxPair();
      pair.b.openHandler = () => ({ reason: Number(code) as 1 | 2 | 3 | 4, description: '' });
      const opened = pair.a.mux.open('x', Buffer.alloc(0), () => new ChannelRecorder());
      pair.flush();
      await assert.rejects(opened, { message: `could not open x channel: ${name}` });
    }
  });

  test('an accept decided later (a Promise) confirms once it resolves; a rejected Promise is refused with CONNECT_FAILED', async () => {
    const pair = new MuxPair();
    let decide!: () => void;
    pair.b.openHandler = () =>
      new Promise((resolve) => {
        decide = () => resolve({ accept: new ChannelRecorder() });
      });
    const opened = pair.a.mux.open('direct-tcpip', Buffer.alloc(0), () => new ChannelRecorder());
    pair.flush();
    await settle();
    assert.deepEqual(pair.b.outbox, [], 'nothing is answered before the decision');
    decide();
    await pair.flushAll();
    assert.equal((await opened).state, 'open');

    pair.b.openHandler = () => Promise.reject(new Error('no route to host'));
    const refused = assert.rejects(pair.a.mux.open('direct-tcpip', Buffer.alloc(0), () => new ChannelRecorder()), {
      message: 'could not open direct-tcpip channel: connect failed: no route to host',
    });
    await pair.flushAll();
    await refused;
  });

  test('CHANNEL_OPEN_CONFIRMATION or OPEN_FAILURE for a channel that is not being opened is a ProtocolError', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    // Channel 0 is open, not opening: a second confirmation for it is forged.
    const forged = Buffer.alloc(17);
    forged[0] = MSG.CHANNEL_OPEN_CONFIRMATION;
    forged.writeUInt32BE(local.channel.localId, 1);
    assert.throws(() => pair.a.mux.receive(forged), protocolError(/CHANNEL_OPEN_CONFIRMATION for channel 0, which is not being opened/));
    const failure = Buffer.concat([Buffer.from([MSG.CHANNEL_OPEN_FAILURE]), Buffer.from([0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0])]);
    assert.throws(() => pair.a.mux.receive(failure), protocolError(/CHANNEL_OPEN_FAILURE for channel 5, which is not being opened/));
  });
});

describe('data and extended data', () => {
  test('CHANNEL_DATA and CHANNEL_EXTENDED_DATA arrive in order, in packets no larger than the peer\'s maximum packet', async () => {
    const pair = new MuxPair({ b: { maxPacket: 1000 } });
    const { local, remote } = await pair.openChannel();
    const payload = Buffer.alloc(4500);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    assert.equal(local.channel.write(payload), 4500);
    assert.equal(local.channel.write(Buffer.from('to stderr'), 0, 1), 9);
    assert.equal(local.channel.write(Buffer.from('xyzabc'), 3), 3, 'write from an offset sends the rest');
    assert.deepEqual(pair.a.outboxNames(), [
      ...Array<string>(5).fill('SSH_MSG_CHANNEL_DATA'),
      'SSH_MSG_CHANNEL_EXTENDED_DATA',
      'SSH_MSG_CHANNEL_DATA',
    ]);
    pair.flush();
    assert.deepEqual(remote.events.data.map((b) => b.length), [1000, 1000, 1000, 1000, 500, 3]);
    assert.ok(Buffer.concat(remote.events.data).equals(Buffer.concat([payload, Buffer.from('abc')])));
    assert.equal(remote.events.extended.length, 1);
    assert.equal(remote.events.extended[0]!.dataType, 1);
    assert.equal(remote.events.extended[0]!.data.toString(), 'to stderr');
    // The sender's view of the window shrank by exactly what was sent.
    assert.equal(local.channel.remoteWindow, DEFAULT_WINDOW - 4512);
    assert.equal(remote.channel.localWindow, DEFAULT_WINDOW - 4512);
  });

  test('a write stops at the peer\'s window and continues once the reader consumed enough for a WINDOW_ADJUST', async () => {
    const pair = new MuxPair({ b: { window: 10_000, maxPacket: 4096 } });
    const { local, remote } = await pair.openChannel();
    const payload = Buffer.alloc(25_000, 1);
    let offset = local.channel.write(payload);
    assert.equal(offset, 10_000, 'only the window goes out');
    assert.equal(local.channel.writableBytes, 0);
    assert.equal(local.channel.write(payload, offset), 0, 'with no window nothing more goes out');
    local.events.whenWritable = () => (offset += local.channel.write(payload, offset));
    pair.flush();
    assert.equal(remote.events.dataBytes(), 10_000);
    assert.equal(remote.channel.localWindow, 0);
    // The reader has not consumed anything: no window comes back, the sender stays stopped.
    assert.equal(pair.b.outbox.length, 0);
    // With less than half the window left, whatever the reader consumed goes back at once (as OpenSSH).
    remote.channel.consumed(4000);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_WINDOW_ADJUST']);
    pair.flush();
    assert.equal(offset, 14_000);
    remote.channel.consumed(6000);
    pair.flush();
    assert.equal(offset, 20_000);
    remote.channel.consumed(10_000);
    pair.flush();
    assert.equal(offset, 25_000);
    assert.ok(Buffer.concat(remote.events.data).equals(payload));
    assert.ok(remote.channel.localWindow <= 10_000, `window ${remote.channel.localWindow} never exceeds what was granted`);
  });

  test('the window is returned in batches of half the window while the reader keeps up', async () => {
    const pair = new MuxPair({ b: { window: 1000 } });
    const { local, remote } = await pair.openChannel();
    local.channel.write(Buffer.alloc(100));
    pair.flush();
    remote.channel.consumed(100);
    assert.equal(pair.b.outbox.length, 0, '100 of 1000 consumed: no adjust yet');
    local.channel.write(Buffer.alloc(400));
    pair.flush();
    remote.channel.consumed(400);
    const adjust = pair.b.take();
    assert.equal(adjust.length, 1);
    const decoded = ChannelWindowAdjust.decode(adjust[0]!);
    assert.equal(decoded.bytesToAdd, 500);
    assert.equal(remote.channel.localWindow, 1000);
  });

  test('while the transport cannot send, write() sends nothing; drained() wakes channels that have window', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    pair.a.sendable = false;
    assert.equal(local.channel.write(Buffer.from('held')), 0);
    assert.equal(pair.a.outbox.length, 0);
    pair.a.sendable = true;
    const before = local.events.writableCount;
    pair.a.mux.drained();
    assert.equal(local.events.writableCount, before + 1);
    assert.equal(local.channel.write(Buffer.from('held')), 4);
  });

  test('data after the peer\'s EOF is dropped, not delivered, and its window is given back', async () => {
    const pair = new MuxPair({ b: { window: 1000 } });
    const { remote } = await pair.openChannel();
    // A peer that breaks the EOF rule: hand-made messages straight into b.
    pair.b.mux.receive(ChannelEof.encode({ recipientChannel: remote.channel.localId }));
    pair.b.mux.receive(data(remote.channel.localId, 600));
    assert.equal(remote.events.dataBytes(), 0);
    assert.equal(remote.events.eofCount, 1);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_WINDOW_ADJUST']);
    assert.equal(remote.channel.localWindow, 1000);
  });
});

type Side = 'a' | 'b';
type Action = `${Side}:eof` | `${Side}:close`;

describe('EOF and CLOSE', () => {
  const actions: Action[] = ['a:eof', 'b:eof', 'a:close', 'b:close'];
  const orders: Action[][] = [];
  const permute = (done: Action[], left: Action[]): void => {
    if (left.length === 0) orders.push(done);
    for (const action of left) permute([...done, action], left.filter((x) => x !== action));
  };
  permute([], actions);

  for (const inFlight of [false, true]) {
    const mode = inFlight ? 'all sent before any is delivered (messages cross)' : 'each delivered before the next';
    test(`EOF and CLOSE in all 24 orders, ${mode}: each side gets one close, each sends exactly one CLOSE, no error`, async (t) => {
      for (const order of orders) {
        await t.test(order.join(' → '), async () => {
          const pair = new MuxPair();
          const { local, remote } = await pair.openChannel();
          const side = { a: local, b: remote };
          pair.log.length = 0;
          for (const action of order) {
            const [who, what] = action.split(':') as [Side, 'eof' | 'close'];
            if (what === 'eof') side[who].channel.eof();
            else side[who].channel.close();
            if (!inFlight) pair.flush();
          }
          pair.flush();
          assert.deepEqual(local.events.closes, [undefined], 'a: exactly one onClose, without error');
          assert.deepEqual(remote.events.closes, [undefined], 'b: exactly one onClose, without error');
          assert.equal(pair.log.filter((l) => l === 'a→b SSH_MSG_CHANNEL_CLOSE').length, 1);
          assert.equal(pair.log.filter((l) => l === 'b→a SSH_MSG_CHANNEL_CLOSE').length, 1);
          assert.ok(local.events.eofCount <= 1 && remote.events.eofCount <= 1);
          // An EOF sent before either CLOSE, delivered at once, reaches the other side.
          if (!inFlight) {
            const firstClose = order.findIndex((a) => a.endsWith(':close'));
            assert.equal(remote.events.eofCount, order.indexOf('a:eof') < firstClose ? 1 : 0);
            assert.equal(local.events.eofCount, order.indexOf('b:eof') < firstClose ? 1 : 0);
          }
          assert.equal(pair.a.mux.channelCount, 0);
          assert.equal(pair.b.mux.channelCount, 0);
          assert.equal(local.channel.state, 'closed');
          assert.equal(remote.channel.state, 'closed');
        });
      }
    });
  }

  test('a peer\'s CLOSE without EOF is answered with our CLOSE at once and the channel is freed', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    remote.channel.close();
    pair.deliver(pair.b);
    assert.deepEqual(pair.a.outboxNames(), ['SSH_MSG_CHANNEL_CLOSE']);
    assert.deepEqual(local.events.closes, [undefined]);
    assert.equal(pair.a.mux.channelCount, 0, 'a has both CLOSEs: freed');
    assert.equal(pair.b.mux.channelCount, 1, 'b still waits for the answer');
    pair.flush();
    assert.deepEqual(remote.events.closes, [undefined]);
    assert.equal(pair.b.mux.channelCount, 0);
  });

  test('data, EOF, requests and window adjusts the peer sent before it saw our CLOSE are dropped without error', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    local.channel.close();
    // b, not yet aware, keeps talking.
    remote.channel.write(Buffer.from('late data'));
    remote.channel.write(Buffer.from('late stderr'), 0, 1);
    void remote.channel.request('exit-status', Buffer.alloc(4), false);
    remote.channel.consumed(DEFAULT_WINDOW);
    remote.channel.eof();
    pair.deliver(pair.b);
    assert.equal(local.events.dataBytes(), 0);
    assert.equal(local.events.extended.length, 0);
    assert.equal(local.events.requests.length, 0);
    assert.equal(local.events.eofCount, 0);
    pair.flush();
    assert.deepEqual(local.events.closes, [undefined]);
    assert.deepEqual(remote.events.closes, [undefined]);
  });

  test('a CLOSE for a channel that is already gone is a ProtocolError (unknown channel)', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    local.channel.close();
    pair.flush();
    assert.throws(() => pair.a.mux.receive(ChannelClose.encode({ recipientChannel: local.channel.localId })), protocolError(/SSH_MSG_CHANNEL_CLOSE for unknown channel 0/));
  });

  test('after EOF we send no more data; our close after the peer\'s EOF completes normally', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    local.channel.eof();
    assert.equal(local.channel.write(Buffer.from('after eof')), 0);
    assert.equal(local.channel.writableBytes, 0);
    pair.flush();
    assert.equal(remote.events.eofCount, 1);
    // The other direction is still open (half-close).
    assert.equal(remote.channel.write(Buffer.from('reply')), 5);
    pair.flush();
    assert.equal(local.events.dataText(), 'reply');
  });
});

describe('channel ids', () => {
  test('an id is reused only after both CLOSE messages: not while our CLOSE awaits the peer\'s', async () => {
    const pair = new MuxPair();
    const first = await pair.openChannel();
    assert.equal(first.local.channel.localId, 0);
    first.local.channel.close(); // our CLOSE is in flight
    const second = pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    pair.deliver(pair.a); // b gets CLOSE and OPEN: it answers CLOSE (both done on b's side) and confirms
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_CLOSE', 'SSH_MSG_CHANNEL_OPEN_CONFIRMATION']);
    // b had both CLOSEs when it confirmed, so it may already reuse its id 0 for the new channel.
    assert.equal(pair.b.accepted[1]!.channel.localId, 0);
    // a has not received b's CLOSE yet: id 0 is still taken on a's side.
    const third = pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    pair.flush();
    assert.equal((await second).localId, 1);
    assert.equal((await third).localId, 2);
    // Now both CLOSEs happened on a's side too: id 0 comes back.
    const fourth = pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    pair.flush();
    assert.equal((await fourth).localId, 0);
    assert.deepEqual(first.local.events.closes, [undefined]);
  });

  test('a message for a freed id is a ProtocolError, not delivered to whoever gets the id next', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    local.channel.close();
    pair.flush();
    assert.throws(() => pair.a.mux.receive(data(0, 5)), protocolError(/SSH_MSG_CHANNEL_DATA for unknown channel 0/));
  });

  test('5,000 channels on one mux: all open at once, data routed to the right channel, all closed, ids reused', async () => {
    const COUNT = 5000;
    const pair = new MuxPair();
    const started = Date.now();
    const recorders = Array.from({ length: COUNT }, () => new ChannelRecorder());
    const opening = recorders.map((events, i) => pair.a.mux.open('session', Buffer.from(String(i)), () => events));
    await pair.flushAll();
    const channels = await Promise.all(opening);
    assert.equal(pair.a.mux.channelCount, COUNT);
    assert.equal(pair.b.mux.channelCount, COUNT);
    assert.equal(new Set(channels.map((c) => c.localId)).size, COUNT);
    assert.equal(Math.max(...channels.map((c) => c.localId)), COUNT - 1);
    assert.equal(new Set(pair.b.accepted.map((x) => x.channel.localId)).size, COUNT);
    // Each channel says who it is, both ways; each message lands on its own channel.
    channels.forEach((channel, i) => channel.write(Buffer.from(`to-b-${i}`)));
    for (const { channel, request } of pair.b.accepted) channel.write(Buffer.from(`to-a-${request.data.toString()}`));
    pair.flush();
    pair.b.accepted.forEach(({ events, request }) => assert.equal(events.dataText(), `to-b-${request.data.toString()}`));
    recorders.forEach((events, i) => assert.equal(events.dataText(), `to-a-${i}`));
    // Close: even channels from a, odd ones from b.
    channels.forEach((channel, i) => {
      if (i % 2 === 0) channel.close();
    });
    pair.b.accepted.forEach(({ channel, request }) => {
      if (Number(request.data.toString()) % 2 === 1) channel.close();
    });
    pair.flush();
    assert.equal(pair.a.mux.channelCount, 0);
    assert.equal(pair.b.mux.channelCount, 0);
    for (const events of recorders) assert.deepEqual(events.closes, [undefined]);
    for (const { events } of pair.b.accepted) assert.deepEqual(events.closes, [undefined]);
    // Every id comes back: 5,000 new channels use the same 5,000 ids.
    const again = Array.from({ length: COUNT }, () => pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder()));
    await pair.flushAll();
    const ids = (await Promise.all(again)).map((c) => c.localId);
    assert.equal(new Set(ids).size, COUNT);
    assert.equal(Math.max(...ids), COUNT - 1);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10_000, `5,000 channels took ${elapsed} ms`);
  });

  test('beyond maxChannels our own open is refused locally, and a peer\'s open gets OPEN_FAILURE resource shortage', async () => {
    const local = new MuxPair({ a: { maxChannels: 1 } });
    await local.openChannel();
    await assert.rejects(local.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder()), (error: unknown) => {
      assert.ok(error instanceof ChannelOpenError);
      assert.equal(error.failureReason, ChannelOpenFailure.RESOURCE_SHORTAGE);
      assert.match(error.message, /too many channels/);
      return true;
    });
    assert.equal(local.a.outbox.length, 0, 'nothing was sent for the refused open');

    const remote = new MuxPair({ b: { maxChannels: 2 } });
    await remote.openChannel();
    await remote.openChannel();
    const refused = remote.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    remote.flush();
    await assert.rejects(refused, { message: 'could not open session channel: resource shortage: too many channels' });
    assert.equal(remote.a.mux.channelCount, 2);
  });
});

describe('protocol errors from a misbehaving peer', () => {
  test('data beyond the window is a ProtocolError naming the channel and the window left', async () => {
    const pair = new MuxPair({ b: { window: 1000 } });
    const { remote } = await pair.openChannel();
    const id = remote.channel.localId;
    pair.b.mux.receive(data(id, 600));
    assert.equal(remote.channel.localWindow, 400);
    assert.throws(() => pair.b.mux.receive(data(id, 401)), protocolError(/^channel 0: peer sent 401 bytes with only 400 left in the window$/));
    // Exactly the window is fine.
    pair.b.mux.receive(data(id, 400));
    assert.equal(remote.channel.localWindow, 0);
    assert.throws(() => pair.b.mux.receive(data(id, 1)), protocolError(/^channel 0: peer sent 1 bytes with only 0 left in the window$/));
  });

  test('extended data beyond the window is the same ProtocolError', async () => {
    const pair = new MuxPair({ b: { window: 100 } });
    await pair.openChannel(); // channel 0
    const { remote } = await pair.openChannel(); // channel 1
    const body = Buffer.alloc(101);
    assert.throws(
      () => pair.b.mux.receive(encodeChannelExtendedData(remote.channel.localId, 1, body, 0, body.length)),
      protocolError(/^channel 1: peer sent 101 bytes with only 100 left in the window$/),
    );
  });

  test('our own writes never exceed the window the peer granted, so an honest pair never trips the check', async () => {
    const pair = new MuxPair({ b: { window: 1000, maxPacket: 300 } });
    const { local, remote } = await pair.openChannel();
    assert.equal(local.channel.write(Buffer.alloc(5000)), 1000);
    pair.flush();
    assert.equal(remote.events.dataBytes(), 1000);
  });

  test('data, EOF, requests or window adjusts for a channel id never opened are ProtocolErrors', async () => {
    const pair = new MuxPair();
    await pair.openChannel();
    assert.throws(() => pair.b.mux.receive(data(7, 3)), protocolError(/^SSH_MSG_CHANNEL_DATA for unknown channel 7$/));
    const body = Buffer.from('x');
    assert.throws(() => pair.b.mux.receive(encodeChannelExtendedData(7, 1, body, 0, 1)), protocolError(/^SSH_MSG_CHANNEL_EXTENDED_DATA for unknown channel 7$/));
    assert.throws(() => pair.b.mux.receive(ChannelEof.encode({ recipientChannel: 7 })), protocolError(/CHANNEL_EOF for unknown channel 7/));
    assert.throws(() => pair.b.mux.receive(ChannelWindowAdjust.encode({ recipientChannel: 7, bytesToAdd: 1 })), protocolError(/CHANNEL_WINDOW_ADJUST for unknown channel 7/));
    assert.throws(
      () => pair.b.mux.receive(ChannelRequest.encode({ recipientChannel: 7, type: 'exec', wantReply: true, data: Buffer.alloc(0) })),
      protocolError(/CHANNEL_REQUEST for unknown channel 7/),
    );
    assert.throws(() => pair.b.mux.receive(ChannelSuccess.encode({ recipientChannel: 7 })), protocolError(/CHANNEL_SUCCESS for unknown channel 7/));
  });

  test('data for a channel we are still opening (no confirmation yet) is a ProtocolError', () => {
    const end = new MuxEnd('a');
    void end.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    assert.throws(() => end.mux.receive(data(0, 1)), protocolError(/^SSH_MSG_CHANNEL_DATA for unknown channel 0$/));
  });

  test('a WINDOW_ADJUST that takes the window past 2^32-1 is a ProtocolError; up to exactly 2^32-1 is accepted', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    const id = local.channel.localId;
    assert.throws(
      () => pair.a.mux.receive(ChannelWindowAdjust.encode({ recipientChannel: id, bytesToAdd: MAX_UINT32 })),
      protocolError(/^channel 0: window adjust of 4294967295 overflows the 32-bit window$/),
    );
    assert.equal(local.channel.remoteWindow, DEFAULT_WINDOW, 'the refused adjust changed nothing');
    pair.a.mux.receive(ChannelWindowAdjust.encode({ recipientChannel: id, bytesToAdd: MAX_UINT32 - DEFAULT_WINDOW }));
    assert.equal(local.channel.remoteWindow, MAX_UINT32);
    assert.throws(
      () => pair.a.mux.receive(ChannelWindowAdjust.encode({ recipientChannel: id, bytesToAdd: 1 })),
      protocolError(/^channel 0: window adjust of 1 overflows the 32-bit window$/),
    );
  });

  test('a reply to a request nobody made (channel or global) is a ProtocolError', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    assert.throws(() => pair.a.mux.receive(ChannelSuccess.encode({ recipientChannel: local.channel.localId })), protocolError(/channel 0: unexpected SSH_MSG_CHANNEL_SUCCESS: no request is pending/));
    assert.throws(() => pair.a.mux.receive(RequestSuccess.encode({ data: Buffer.alloc(0) })), protocolError(/unexpected SSH_MSG_REQUEST_SUCCESS: no global request is pending/));
  });

  test('a connection-protocol message number RFC 4254 does not assign is a ProtocolError', () => {
    const end = new MuxEnd('a');
    assert.throws(() => end.mux.receive(Buffer.from([127])), protocolError(/unknown connection protocol message 127/));
  });

  test('a truncated CHANNEL_DATA is a ProtocolError, not a crash', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    const truncated = data(local.channel.localId, 10).subarray(0, 12);
    assert.throws(() => pair.a.mux.receive(truncated), (error: unknown) => error instanceof ProtocolError);
  });
});

describe('channel requests', () => {
  test('replies go out in request order even when the handler answers out of order', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    const replies = ['pty-req', 'env', 'exec'].map((type) => local.channel.request(type, Buffer.alloc(0), true));
    pair.flush();
    assert.deepEqual(remote.events.requests.map((r) => r.type), ['pty-req', 'env', 'exec']);
    const [pty, env, exec] = remote.events.requests;
    exec!.reply(true);
    assert.equal(pair.b.outbox.length, 0, 'the third answer waits for the first two');
    pty!.reply(false);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_FAILURE'], 'the first answer goes out at once');
    env!.reply(true);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_FAILURE', 'SSH_MSG_CHANNEL_SUCCESS', 'SSH_MSG_CHANNEL_SUCCESS']);
    pair.flush();
    assert.deepEqual(await Promise.all(replies), [false, true, true]);
  });

  test('a request with want_reply false gets no reply even when answered, and does not hold up later replies', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    const quiet = local.channel.request('window-change', Buffer.alloc(16), false);
    const loud = local.channel.request('exec', Buffer.alloc(0), true);
    assert.equal(await quiet, true, 'a request without a reply resolves at once');
    pair.flush();
    const [first, second] = remote.events.requests;
    assert.equal(first!.wantReply, false);
    assert.equal(second!.wantReply, true);
    second!.reply(true);
    assert.equal(pair.b.outbox.length, 0, 'order is kept: the unanswered no-reply request is still first');
    first!.reply(true);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_SUCCESS'], 'only the request that wanted a reply is answered');
    pair.flush();
    assert.equal(await loud, true);
    // Answering twice sends nothing more.
    first!.reply(false);
    second!.reply(false);
    assert.equal(pair.b.outbox.length, 0);
  });

  test('a request whose handler throws is answered with CHANNEL_FAILURE', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    remote.events.answer = () => {
      throw new Error('handler bug');
    };
    const reply = local.channel.request('exec', Buffer.alloc(0), true);
    pair.flush();
    assert.equal(await reply, false);
  });

  test('a closing channel sends no more replies, and our pending requests resolve false when it closes', async () => {
    const pair = new MuxPair();
    const { local, remote } = await pair.openChannel();
    const pending = local.channel.request('exec', Buffer.alloc(0), true);
    pair.flush();
    remote.channel.close();
    remote.events.requests[0]!.reply(true);
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_CHANNEL_CLOSE']);
    pair.flush();
    assert.equal(await pending, false);
    assert.equal(await local.channel.request('exec'), false, 'a request on a closed channel resolves false');
  });
});

describe('global requests', () => {
  test('an unknown global request that wants a reply gets REQUEST_FAILURE; one that does not gets nothing', async () => {
    const pair = new MuxPair();
    const answered = pair.a.mux.globalRequest('unknown-request@example.com', Buffer.from('x'), true);
    const silent = pair.a.mux.globalRequest('also-unknown@example.com', Buffer.alloc(0), false);
    pair.flush();
    await settle();
    assert.deepEqual(pair.b.outboxNames(), ['SSH_MSG_REQUEST_FAILURE']);
    pair.flush();
    assert.equal(await answered, false);
    assert.deepEqual(await silent, Buffer.alloc(0));
    assert.deepEqual(pair.b.globalRequestsSeen.map((r) => [r.name, r.wantReply]), [
      ['unknown-request@example.com', true],
      ['also-unknown@example.com', false],
    ]);
  });

  test('global replies keep request order when an earlier handler answers later, and carry reply data', async () => {
    const pair = new MuxPair();
    let releaseFirst!: (value: Buffer) => void;
    pair.b.globalHandler = (name) => {
      if (name === 'slow') return new Promise<Buffer>((resolve) => (releaseFirst = resolve));
      if (name === 'fast') return true;
      return false;
    };
    const slow = pair.a.mux.globalRequest('slow');
    const fast = pair.a.mux.globalRequest('fast');
    const refused = pair.a.mux.globalRequest('refused');
    pair.flush();
    await settle();
    assert.equal(pair.b.outbox.length, 0, 'nothing goes out before the first request is answered');
    releaseFirst(Buffer.from([0, 0, 0x1f, 0x90]));
    await pair.flushAll();
    assert.deepEqual(pair.log.slice(-3), ['b→a SSH_MSG_REQUEST_SUCCESS', 'b→a SSH_MSG_REQUEST_SUCCESS', 'b→a SSH_MSG_REQUEST_FAILURE']);
    assert.deepEqual(await slow, Buffer.from([0, 0, 0x1f, 0x90]));
    assert.deepEqual(await fast, Buffer.alloc(0));
    assert.equal(await refused, false);
  });

  test('a global request handler that throws or rejects is answered with REQUEST_FAILURE', async () => {
    const pair = new MuxPair();
    pair.b.globalHandler = (name) => {
      if (name === 'throws') throw new Error('bug');
      return Promise.reject(new Error('async bug'));
    };
    const a = pair.a.mux.globalRequest('throws');
    const b = pair.a.mux.globalRequest('rejects');
    await pair.flushAll();
    assert.equal(await a, false);
    assert.equal(await b, false);
  });

  test('a GLOBAL_REQUEST fed by hand is decoded and passed on with its data', async () => {
    const end = new MuxEnd('b');
    end.mux.receive(GlobalRequest.encode({ name: 'tcpip-forward', wantReply: true, data: Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]) }));
    await settle();
    assert.equal(end.globalRequestsSeen[0]!.name, 'tcpip-forward');
    assert.equal(end.globalRequestsSeen[0]!.data.length, 8);
    assert.deepEqual(end.outboxNames(), ['SSH_MSG_REQUEST_FAILURE']);
  });
});

describe('the connection ending', () => {
  test('terminate() rejects pending opens, resolves pending requests false, closes every channel with the error', async () => {
    const pair = new MuxPair();
    const { local } = await pair.openChannel();
    const pendingRequest = local.channel.request('exec');
    const pendingGlobal = pair.a.mux.globalRequest('x');
    const pendingOpen = pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder());
    const error = new ConnectionLostError('connection lost: test');
    pair.a.mux.terminate(error);
    await assert.rejects(pendingOpen, error);
    assert.equal(await pendingRequest, false);
    assert.equal(await pendingGlobal, false);
    assert.deepEqual(local.events.closes, [error]);
    assert.equal(pair.a.mux.channelCount, 0);
    await assert.rejects(pair.a.mux.open('session', Buffer.alloc(0), () => new ChannelRecorder()), /connection closed/);
    // Nothing more is sent once terminated.
    pair.a.take();
    local.channel.close();
    assert.equal(pair.a.outbox.length, 0);
  });

  test('ChannelMux can be built with defaults and sends nothing by itself', () => {
    const sent: Buffer[] = [];
    const mux = new ChannelMux({
      send: (p) => sent.push(p),
      canSend: () => true,
      openRequested: () => ({ reason: ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, description: 'no' }),
      globalRequest: () => false,
      fatal: () => {},
    });
    assert.equal(mux.window, DEFAULT_WINDOW);
    assert.equal(mux.maxPacket, DEFAULT_MAX_PACKET);
    assert.equal(sent.length, 0);
    mux.receive(ChannelOpen.encode({ type: 'x11', senderChannel: 3, initialWindow: 10, maxPacket: 10, data: Buffer.alloc(0) }));
    assert.equal(sent.length, 1);
    assert.equal(sent[0]![0], MSG.CHANNEL_OPEN_FAILURE);
  });
});
