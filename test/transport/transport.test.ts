import { before, test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createPair, dataMessage, testHostKeys, type Side } from '../helpers/transport-pair.js';
import { mlkem768x25519Sha256 } from '../../src/algorithms/kex/mlkem768x25519.js';
import { cipherAlgorithms, kexAlgorithms, macAlgorithms, signatureAlgorithms } from '../../src/algorithms/registry.js';
import { SshError } from '../../src/errors.js';

// settled() means no bytes in flight: the default method's code is loaded first, so that no exchange
// is still waiting for it then (test/algorithms/kex-lazy.test.ts covers the waiting).
before(() => mlkem768x25519Sha256.prepare?.());

function assertOpen(side: Side, label: string): void {
  if (side.closed !== 'open') {
    const error = side.closed;
    assert.fail(`${label}: ${side.transport.role} closed: ${error ? `${error.code} ${error.message}` : 'clean'}`);
  }
}

/** Authenticate both sides by fiat (the auth layer is tested elsewhere) so 80+ messages flow. */
async function openSession(pair: ReturnType<typeof createPair>): Promise<void> {
  await pair.settled();
  pair.client.transport.requestService('ssh-userauth');
  await pair.settled();
  pair.server.transport.setAuthenticated();
  pair.client.transport.setAuthenticated();
}

describe('transport between our client and our server', () => {
  test('completes the default key exchange and agrees on the session id', async () => {
    const pair = createPair({ hostKeys: await testHostKeys() });
    await pair.settled();
    assertOpen(pair.client, 'default');
    assertOpen(pair.server, 'default');
    assert.equal(pair.client.kex.length, 1);
    assert.equal(pair.server.kex.length, 1);
    assert.deepEqual(pair.client.kex[0]!.sessionId, pair.server.kex[0]!.sessionId);
    assert.equal(pair.client.kex[0]!.algorithms.kex, 'mlkem768x25519-sha256');
    assert.equal(pair.client.kex[0]!.algorithms.hostKey, 'ssh-ed25519');
    assert.equal(pair.client.kex[0]!.algorithms.cipherClientToServer, 'chacha20-poly1305@openssh.com');
    assert.equal(pair.client.kex[0]!.strictKex, true);
    // RFC 8308: the server announced its signature algorithms and ping.
    assert.ok(pair.client.transport.peerExtensions.get('server-sig-algs')?.toString().includes('ssh-ed25519'));
    assert.ok(pair.client.transport.peerExtensions.has('ping@openssh.com'));
  });

  test("keeps the peer's identification and extensions after the exchange, with nothing left of the reading", async () => {
    const pair = createPair({ hostKeys: await testHostKeys() });
    await pair.settled();
    // The identification is kept as its line and parsed again on demand (the reader is gone).
    assert.deepEqual(pair.client.transport.peer, { line: 'SSH-2.0-tssh_test_server', protoVersion: '2.0', softwareVersion: 'tssh_test_server', comments: '' });
    assert.equal(pair.server.transport.peer?.line, 'SSH-2.0-tssh_test_client');
    // The client sent no EXT_INFO: the server sees an empty map, and the same one on every call.
    assert.equal(pair.server.transport.peerExtensions.size, 0);
    assert.equal(pair.server.transport.peerExtensions, pair.server.transport.peerExtensions);
  });

  test('accepts the ssh-userauth service and carries messages both ways after authentication', async () => {
    const pair = createPair({ hostKeys: await testHostKeys() });
    await openSession(pair);
    assert.deepEqual(pair.client.services, ['ssh-userauth']);
    assert.deepEqual(pair.server.services, ['ssh-userauth']);
    for (let i = 0; i < 20; i++) {
      pair.client.transport.send(dataMessage(i, i * 100));
      pair.server.transport.send(dataMessage(i, i * 50));
    }
    await pair.settled();
    assert.deepEqual(pair.server.messages, Array.from({ length: 20 }, (_, i) => dataMessage(i, i * 100)));
    assert.deepEqual(pair.client.messages, Array.from({ length: 20 }, (_, i) => dataMessage(i, i * 50)));
  });

  test('every kex x host key x cipher x MAC combination completes and carries data', { timeout: 600_000 }, async () => {
    const hostKeys = await testHostKeys();
    const ciphers = [...cipherAlgorithms.all.values()];
    const macs = [...macAlgorithms.all.keys()];
    let combinations = 0;
    for (const kex of kexAlgorithms.all.keys()) {
      for (const hostKey of signatureAlgorithms.all.keys()) {
        for (const cipher of ciphers) {
          // An AEAD cipher has no separate MAC: one combination covers it.
          for (const mac of cipher.aead ? [macs[0]!] : macs) {
            const lists = { kex: [kex], hostKey: [hostKey], cipher: [cipher.name], mac: [mac] };
            const pair = createPair({ hostKeys, client: lists, server: lists, splitChunks: combinations % 4 === 0 });
            await openSession(pair);
            pair.client.transport.send(dataMessage(1, 3000));
            pair.server.transport.send(dataMessage(2, 70));
            await pair.settled();
            const label = `${kex} / ${hostKey} / ${cipher.name} / ${cipher.aead ? '(aead)' : mac}`;
            assertOpen(pair.client, label);
            assertOpen(pair.server, label);
            const algorithms = pair.client.kex[0]!.algorithms;
            assert.equal(algorithms.kex, kex, label);
            assert.equal(algorithms.hostKey, hostKey, label);
            assert.equal(algorithms.cipherServerToClient, cipher.name, label);
            assert.equal(algorithms.macClientToServer, cipher.aead ? undefined : mac, label);
            assert.deepEqual(pair.server.messages, [dataMessage(1, 3000)], label);
            assert.deepEqual(pair.client.messages, [dataMessage(2, 70)], label);
            combinations++;
          }
        }
      }
    }
    const expected =
      kexAlgorithms.all.size *
      signatureAlgorithms.all.size *
      ciphers.reduce((n, c) => n + (c.aead ? 1 : macs.length), 0);
    assert.equal(combinations, expected);
  });

  test('rekeys on demand and by byte limit while data flows, losing and reordering nothing', async () => {
    for (const cipher of ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-ctr']) {
      const lists = { cipher: [cipher], compression: ['zlib@openssh.com', 'none'] };
      const pair = createPair({ hostKeys: await testHostKeys(), client: lists, server: lists, rekeyBytes: 32_768 });
      await openSession(pair);
      const sentByClient: Buffer[] = [];
      const sentByServer: Buffer[] = [];
      for (let round = 0; round < 40; round++) {
        for (let i = 0; i < 10; i++) {
          const a = dataMessage(round * 10 + i, 2000 + ((round * 7919 + i) % 9000));
          const b = dataMessage(round * 10 + i, 500 + ((round * 31 + i) % 3000));
          pair.client.transport.send(a);
          pair.server.transport.send(b);
          sentByClient.push(a);
          sentByServer.push(b);
        }
        if (round === 5) pair.client.transport.rekey();
        if (round === 17) pair.server.transport.rekey();
        if (round % 3 === 0) await pair.settled();
      }
      await pair.settled();
      assertOpen(pair.client, cipher);
      assertOpen(pair.server, cipher);
      assert.ok(pair.client.kex.length >= 4, `${cipher}: expected several key exchanges, saw ${pair.client.kex.length}`);
      assert.equal(pair.client.kex.length, pair.server.kex.length);
      assert.ok(pair.client.kex.slice(1).every((k) => !k.initial && k.sessionId.equals(pair.client.kex[0]!.sessionId)));
      assert.equal(pair.server.messages.length, sentByClient.length);
      assert.ok(pair.server.messages.every((m, i) => m.equals(sentByClient[i]!)), `${cipher}: client-to-server data differs`);
      assert.ok(pair.client.messages.every((m, i) => m.equals(sentByServer[i]!)), `${cipher}: server-to-client data differs`);
      assert.equal(pair.client.messages.length, sentByServer.length);
    }
  });

  test('rekeys when the keys reach the time limit, at the next packet', async () => {
    let clock = 1_000_000;
    const pair = createPair({ hostKeys: await testHostKeys(), now: () => clock, rekeyIntervalMs: 3_600_000 });
    await openSession(pair);
    pair.client.transport.send(dataMessage(1, 10));
    await pair.settled();
    assert.equal(pair.client.kex.length, 1);
    clock += 3_600_000;
    pair.client.transport.send(dataMessage(2, 10));
    await pair.settled();
    assert.equal(pair.client.kex.length, 2);
    assert.deepEqual(pair.server.messages, [dataMessage(1, 10), dataMessage(2, 10)]);
  });

  test('a rekey asked for before authentication waits until authentication succeeds (as OpenSSH requires)', async () => {
    const pair = createPair({ hostKeys: await testHostKeys() });
    await pair.settled();
    pair.client.transport.rekey();
    await pair.settled();
    assert.equal(pair.client.kex.length, 1);
    pair.server.transport.setAuthenticated();
    pair.client.transport.setAuthenticated();
    await pair.settled();
    assert.equal(pair.client.kex.length, 2);
    assertOpen(pair.server, 'deferred rekey');
  });

  test('a refused host key ends the connection with HOST_KEY_NOT_VERIFIABLE on both sides', async () => {
    const pair = createPair({ hostKeys: await testHostKeys(), verifyHostKey: async () => false });
    await pair.settled();
    assert.ok(pair.client.closed instanceof SshError);
    assert.equal(pair.client.closed.code, 'ERR_SSH_HOST_KEY');
    assert.ok(pair.server.closed instanceof SshError);
    assert.equal(pair.server.closed.code, 'ERR_SSH_DISCONNECTED');
    assert.match(pair.server.closed.message, /HOST_KEY_NOT_VERIFIABLE/);
  });

  test('waits for an asynchronous host key decision before sending NEWKEYS', async () => {
    let release!: (ok: boolean) => void;
    const decision = new Promise<boolean>((resolve) => (release = resolve));
    const pair = createPair({ hostKeys: await testHostKeys(), verifyHostKey: () => decision });
    await pair.settled();
    assert.equal(pair.client.kex.length, 0);
    assert.equal(pair.client.transport.isPaused, true);
    release(true);
    await pair.settled();
    assert.equal(pair.client.kex.length, 1);
    assertOpen(pair.server, 'async verify');
  });

  test('names the category and both lists when nothing matches', async () => {
    const pair = createPair({
      hostKeys: await testHostKeys(),
      client: { cipher: ['aes128-ctr'] },
      server: { cipher: ['aes256-gcm@openssh.com'] },
    });
    await pair.settled();
    const error = pair.client.closed;
    assert.ok(error instanceof SshError);
    assert.equal(error.code, 'ERR_SSH_NEGOTIATION');
    assert.equal(
      error.message,
      'no matching cipher client to server: client offers [aes128-ctr], server offers [aes256-gcm@openssh.com]',
    );
  });

  test('answers SSH_MSG_PING with an exact SSH_MSG_PONG', async () => {
    const pair = createPair({ hostKeys: await testHostKeys() });
    await openSession(pair);
    assert.equal(pair.client.transport.ping(Buffer.from('hello')), true);
    await pair.settled();
    assertOpen(pair.client, 'ping');
    assert.ok(pair.server.debug.every((line) => !line.startsWith('fatal')));
  });

  test('a byte flipped anywhere in the encrypted stream is detected and never accepted', { timeout: 300_000 }, async () => {
    const hostKeys = await testHostKeys();
    for (const [cipher, mac] of [
      ['chacha20-poly1305@openssh.com', 'hmac-sha2-256-etm@openssh.com'],
      ['aes128-gcm@openssh.com', 'hmac-sha2-256-etm@openssh.com'],
      ['aes128-ctr', 'hmac-sha2-256-etm@openssh.com'],
      ['aes256-ctr', 'hmac-sha2-512'],
    ] as const) {
      for (let offset = 0; offset < 120; offset += 3) {
        let afterKex = -1;
        let flipped = false;
        const lists = { kex: ['curve25519-sha256'], hostKey: ['ssh-ed25519'], cipher: [cipher], mac: [mac] };
        let clientRef: Side | undefined;
        const pair = createPair({
          hostKeys,
          client: lists,
          server: lists,
          splitChunks: false,
          tamperClientToServer: (chunk) => {
            if (!clientRef || clientRef.kex.length === 0 || flipped) return chunk;
            if (afterKex < 0) afterKex = 0;
            if (offset >= afterKex && offset < afterKex + chunk.length) {
              chunk[offset - afterKex]! ^= 0x40;
              flipped = true;
            }
            afterKex += chunk.length;
            return chunk;
          },
        });
        clientRef = pair.client;
        await openSession(pair);
        for (let i = 0; i < 30 && pair.server.closed === 'open'; i++) {
          pair.client.transport.send(dataMessage(i, 10_000));
          await pair.settled();
        }
        const label = `${cipher}+${mac} flip at ${offset}`;
        assert.ok(flipped, `${label}: nothing flipped`);
        const error = pair.server.closed;
        assert.ok(error instanceof SshError, `${label}: server did not detect the corruption`);
        assert.ok(['ERR_SSH_MAC', 'ERR_SSH_PROTOCOL'].includes(error.code), `${label}: ${error.code}`);
        // Whatever was delivered before detection is intact: a corrupted message is never delivered.
        for (const message of pair.server.messages) {
          if (message[0] !== 94) continue;
          const index = message.readUInt32BE(1);
          assert.ok(message.equals(dataMessage(index, 10_000)), `${label}: corrupted data delivered`);
        }
        // The client was told why, with the DISCONNECT reason code on the wire.
        const clientError = pair.client.closed;
        assert.ok(clientError instanceof SshError && clientError.code === 'ERR_SSH_DISCONNECTED', `${label}: no DISCONNECT`);
      }
    }
  });
});
