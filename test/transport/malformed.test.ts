/**
 * Hostile and broken input to a server transport, fed as raw bytes: every case must end in a
 * typed error and a DISCONNECT with the right reason code on the wire, never a crash or a hang.
 */
import { before, test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Transport } from '../../src/transport/transport.js';
import { PacketDecoder, PacketEncoder } from '../../src/transport/packet.js';
import { noneCipher } from '../../src/algorithms/cipher/none.js';
import { curve25519Sha256 } from '../../src/algorithms/kex/curve25519.js';
import { Disconnect, KexEcdhInit, KexInit, MSG, type KexInitMessage } from '../../src/wire/messages.js';
import { SshError } from '../../src/errors.js';
import { defaultAlgorithms, testHostKeys } from '../helpers/transport-pair.js';
import { mlkem768x25519Sha256 } from '../../src/algorithms/kex/mlkem768x25519.js';

// These tests feed a transport by hand and look at its answers at once: the default method's code is
// loaded first, so no exchange waits for it (test/algorithms/kex-lazy.test.ts covers the waiting).
before(() => mlkem768x25519Sha256.prepare?.());

interface RawServer {
  transport: Transport;
  closed: SshError | undefined | 'open';
  /** Payloads the server sent, decoded from its plaintext (pre-NEWKEYS) output. */
  sent(): Buffer[];
  feed(...payloads: Buffer[]): void;
  feedBytes(bytes: Buffer): void;
}

async function rawServer(): Promise<RawServer> {
  const out: Buffer[] = [];
  const encoder = new PacketEncoder(noneCipher.createSealer(Buffer.alloc(0), Buffer.alloc(0)));
  const state: RawServer = {
    transport: undefined as unknown as Transport,
    closed: 'open',
    sent() {
      const all = Buffer.concat(out);
      const decoder = new PacketDecoder(noneCipher.createOpener(Buffer.alloc(0), Buffer.alloc(0)));
      decoder.push(all.subarray(all.indexOf('\r\n') + 2));
      const payloads: Buffer[] = [];
      // After its NEWKEYS the server encrypts: only the plaintext part is read here.
      for (let p = decoder.next(); p; p = p[0] === MSG.NEWKEYS ? undefined : decoder.next()) payloads.push(Buffer.from(p));
      return payloads;
    },
    feed(...payloads) {
      for (const payload of payloads) state.transport.receive(Buffer.concat(encoder.encode(payload)));
    },
    feedBytes(bytes) {
      state.transport.receive(bytes);
    },
  };
  state.transport = new Transport(
    { role: 'server', algorithms: defaultAlgorithms(), identification: 'SSH-2.0-tssh_test', hostKeys: await testHostKeys() },
    {
      send: (chunks) => out.push(...chunks.map((c) => Buffer.from(c))),
      message: () => {},
      close: (error) => (state.closed = error),
    },
  );
  state.transport.start();
  state.feedBytes(Buffer.from('SSH-2.0-hostile_client\r\n'));
  return state;
}

function clientKexInit(overrides: Partial<KexInitMessage> = {}): Buffer {
  const lists = defaultAlgorithms();
  return KexInit.encode({
    cookie: Buffer.alloc(16, 1),
    kexAlgorithms: [...lists.kex, 'ext-info-c', 'kex-strict-c-v00@openssh.com'],
    serverHostKeyAlgorithms: [...lists.hostKey],
    encryptionClientToServer: [...lists.cipher],
    encryptionServerToClient: [...lists.cipher],
    macClientToServer: [...lists.mac],
    macServerToClient: [...lists.mac],
    compressionClientToServer: ['none'],
    compressionServerToClient: ['none'],
    languagesClientToServer: [],
    languagesServerToClient: [],
    firstKexPacketFollows: false,
    reserved: 0,
    ...overrides,
  });
}

function assertDisconnected(server: RawServer, reason: number, message: RegExp): void {
  const error = server.closed;
  assert.ok(error instanceof SshError, `expected the server to close with an error, got ${String(error)}`);
  assert.match(error.message, message);
  assert.equal(error.reason, reason);
  const last = server.sent().at(-1)!;
  assert.equal(last[0], MSG.DISCONNECT, 'the last packet the server sent is a DISCONNECT');
  const disconnect = Disconnect.decode(last);
  assert.equal(disconnect.reason, reason);
  assert.match(disconnect.description, message);
}

describe('malformed and out-of-phase input', () => {
  test('a connection-layer message before key exchange is a protocol error', async () => {
    const server = await rawServer();
    server.feed(Buffer.from([MSG.CHANNEL_DATA, 0, 0, 0, 0, 0, 0, 0, 0]));
    assertDisconnected(server, 2, /unexpected SSH_MSG_CHANNEL_DATA/);
  });

  test('a userauth request before key exchange is a protocol error', async () => {
    const server = await rawServer();
    server.feed(Buffer.from([MSG.USERAUTH_REQUEST, 0, 0, 0, 0]));
    assertDisconnected(server, 2, /unexpected SSH_MSG_USERAUTH_REQUEST before the key exchange/);
  });

  test('a truncated KEXINIT is a protocol error naming the message', async () => {
    const server = await rawServer();
    server.feed(clientKexInit().subarray(0, 40));
    assertDisconnected(server, 2, /truncated SSH_MSG_KEXINIT/);
  });

  test('trailing bytes after a KEXINIT are rejected', async () => {
    const server = await rawServer();
    server.feed(Buffer.concat([clientKexInit(), Buffer.from([1, 2, 3])]));
    assertDisconnected(server, 2, /3 unexpected trailing bytes in SSH_MSG_KEXINIT/);
  });

  test('a repeated KEXINIT is a protocol error', async () => {
    const server = await rawServer();
    server.feed(clientKexInit(), clientKexInit());
    assertDisconnected(server, 2, /unexpected SSH_MSG_KEXINIT \(a key exchange is already in progress\)/);
  });

  test('NEWKEYS before the exchange produced keys is a protocol error', async () => {
    const server = await rawServer();
    server.feed(clientKexInit({ kexAlgorithms: ['curve25519-sha256'] }), Buffer.from([MSG.NEWKEYS]));
    assertDisconnected(server, 2, /unexpected SSH_MSG_NEWKEYS before the key exchange produced keys/);
  });

  test('a kex message for the wrong method is a protocol error', async () => {
    const server = await rawServer();
    server.feed(clientKexInit({ kexAlgorithms: ['curve25519-sha256'] }), Buffer.from([MSG.KEX_DH_GEX_INIT, 0, 0, 0, 0]));
    assertDisconnected(server, 2, /unexpected SSH_MSG_KEX_DH_GEX_INIT during curve25519-sha256 \(expected message 30\)/);
  });

  test('the client key exchange message is accepted only once', async () => {
    const server = await rawServer();
    const init = KexEcdhInit.encode({ clientValue: curve25519Sha256.startClient().clientValue });
    server.feed(clientKexInit({ kexAlgorithms: ['curve25519-sha256'] }), init, init);
    // The server answered the first (its DISCONNECT is then encrypted under the new keys).
    assert.deepEqual(server.sent().slice(-2).map((p) => p[0]), [MSG.KEX_ECDH_REPLY, MSG.NEWKEYS]);
    const error = server.closed;
    assert.ok(error instanceof SshError);
    assert.equal(error.reason, 2);
    assert.match(error.message, /unexpected SSH_MSG_KEX_ECDH_INIT during curve25519-sha256 \(expected message none\)/);
  });

  test('an invalid client public value fails the key exchange with KEY_EXCHANGE_FAILED', async () => {
    const server = await rawServer();
    server.feed(clientKexInit({ kexAlgorithms: ['curve25519-sha256'] }), KexEcdhInit.encode({ clientValue: Buffer.alloc(32) }));
    const error = server.closed;
    assert.ok(error instanceof SshError);
    assert.equal(error.reason, 3);
    assert.equal(server.sent().at(-1)![0], MSG.DISCONNECT);
  });

  test('an empty packet is a protocol error', async () => {
    const server = await rawServer();
    server.feed(Buffer.alloc(0));
    assertDisconnected(server, 2, /empty packet/);
  });

  test('an oversized packet length is refused with a DISCONNECT', async () => {
    const server = await rawServer();
    server.feedBytes(Buffer.from([0x7f, 0xff, 0xff, 0xf8, 4, 0, 0, 0]));
    assertDisconnected(server, 2, /packet length 2147483640 exceeds the maximum of 262144/);
  });

  test('an unknown message number gets SSH_MSG_UNIMPLEMENTED (without strict kex)', async () => {
    const server = await rawServer();
    server.feed(clientKexInit({ kexAlgorithms: ['curve25519-sha256'] }), Buffer.from([150, 1, 2, 3]));
    assert.equal(server.closed, 'open');
    const reply = server.sent().at(-1)!;
    assert.equal(reply[0], MSG.UNIMPLEMENTED);
    assert.equal(reply.readUInt32BE(1), 1, 'names the sequence number of the unknown packet');
  });

  test('strict kex: a packet before KEXINIT makes the KEXINIT fatal (Terrapin)', async () => {
    const server = await rawServer();
    server.feed(Buffer.from([MSG.IGNORE, 0, 0, 0, 0]), clientKexInit());
    assertDisconnected(server, 2, /strict kex: KEXINIT was not the first packet received/);
  });

  test('strict kex: IGNORE during the initial key exchange is fatal', async () => {
    const server = await rawServer();
    server.feed(clientKexInit(), Buffer.from([MSG.IGNORE, 0, 0, 0, 0]));
    assertDisconnected(server, 2, /unexpected SSH_MSG_IGNORE during the initial key exchange \(strict kex\)/);
  });

  test('without strict kex, IGNORE and DEBUG during the key exchange are accepted', async () => {
    const server = await rawServer();
    server.feed(
      Buffer.from([MSG.IGNORE, 0, 0, 0, 0]),
      clientKexInit({ kexAlgorithms: ['curve25519-sha256', 'ext-info-c'] }),
      Buffer.from([MSG.DEBUG, 0, 0, 0, 0, 1, 0x41, 0, 0, 0, 0]),
    );
    assert.equal(server.closed, 'open');
  });

  test('a wrong first_kex_packet_follows guess: the guessed packet is ignored', async () => {
    const server = await rawServer();
    // The server prefers mlkem768x25519-sha256; this client guesses curve25519 first.
    const exchange = curve25519Sha256.startClient();
    server.feed(
      clientKexInit({ kexAlgorithms: ['curve25519-sha256', 'mlkem768x25519-sha256'], firstKexPacketFollows: true }),
      KexEcdhInit.encode({ clientValue: Buffer.alloc(32, 9) }), // the wrong guess: must be ignored
      KexEcdhInit.encode({ clientValue: exchange.clientValue }),
    );
    assert.equal(server.closed, 'open');
    const reply = server.sent().find((p) => p[0] === MSG.KEX_ECDH_REPLY);
    assert.ok(reply, 'the server replied to the real init');
  });

  test('a right first_kex_packet_follows guess is processed', async () => {
    const server: RawServer = await rawServer();
    server.feed(
      clientKexInit({ kexAlgorithms: ['mlkem768x25519-sha256', 'curve25519-sha256'], firstKexPacketFollows: true }),
    );
    assert.equal(server.transport.isClosed, false);
    const before = server.sent().length;
    server.feed(Buffer.from([MSG.KEX_ECDH_INIT, 0, 0, 0, 3, 1, 2, 3]));
    // The guess was right, so the guessed packet is processed: here it is invalid and fails the kex.
    const closed: RawServer['closed'] = server.closed;
    assert.ok(closed instanceof SshError);
    assert.equal(closed.reason, 3);
    assert.ok(server.sent().length > before);
  });

  test('garbage after the identification is refused, not waited on forever', async () => {
    const server = await rawServer();
    server.feedBytes(Buffer.from('this is not a binary packet at all, just text\r\n'));
    assert.ok(server.closed instanceof SshError);
  });
});
