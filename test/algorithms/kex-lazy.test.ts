// ML-KEM-768 (and @noble/curves, which it pulls in) is loaded only when mlkem768x25519-sha256 is
// negotiated: the transport takes no input until KexAlgorithm.prepare() has loaded it, then goes
// on. This file runs in a process of its own (node --test), so nothing has loaded it before; the
// tests run in order and depend on that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mlkem768x25519Sha256 } from '../../src/algorithms/kex/mlkem768x25519.js';
import { KexError } from '../../src/errors.js';
import { createPair, testHostKeys } from '../helpers/transport-pair.js';

test('before it is loaded, the method refuses to run rather than fail obscurely', () => {
  assert.throws(() => mlkem768x25519Sha256.startClient(), KexError);
  assert.throws(() => mlkem768x25519Sha256.respondServer(Buffer.alloc(1216)), KexError);
});

test('a connection that negotiates another method does not load it', async () => {
  const pair = createPair({ hostKeys: await testHostKeys(), client: { kex: ['curve25519-sha256'] } });
  await pair.settled();
  assert.equal(pair.client.kex[0]?.algorithms.kex, 'curve25519-sha256');
  assert.equal(pair.server.kex[0]?.algorithms.kex, 'curve25519-sha256');
  assert.throws(() => mlkem768x25519Sha256.startClient(), KexError, 'still not loaded');
});

test('the first exchange that negotiates it waits for it to load, on both sides, and completes', async () => {
  // Both transports reach the method before it is loaded: each must wait (otherwise startClient or
  // respondServer throws the KexError above and the connection fails).
  const pair = createPair({ hostKeys: await testHostKeys() });
  // settled() sees no bytes in flight while a side waits for the load: wait for the exchange itself.
  for (let i = 0; i < 500 && pair.client.kex.length === 0 && pair.client.closed === 'open'; i++) {
    await pair.settled();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await pair.settled();
  assert.equal(pair.client.closed, 'open');
  assert.equal(pair.server.closed, 'open');
  assert.equal(pair.client.kex[0]?.algorithms.kex, 'mlkem768x25519-sha256');
  assert.deepEqual(pair.client.kex[0]!.sessionId, pair.server.kex[0]!.sessionId);
  assert.equal(mlkem768x25519Sha256.prepare?.(), undefined, 'loaded: nothing more to wait for');
});
