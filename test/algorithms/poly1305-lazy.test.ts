/**
 * libsodium's WebAssembly Poly1305 is loaded when chacha20-poly1305 is first keyed, not at import
 * (src/algorithms/cipher/poly1305.ts): a process that never uses the cipher keeps ~7 MB less
 * resident memory, which makes every fork cheaper. This file runs in a process of its own (as every
 * test file does), so it sees the first use: nothing loaded before it, packets sealed while the load
 * is under way come out exactly as after it, and the first connection that negotiates the cipher
 * works from its first packet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chacha20Poly1305 } from '../../src/algorithms/cipher/chacha20-poly1305.js';
import { loadPoly1305Wasm, poly1305Implementation } from '../../src/algorithms/cipher/poly1305.js';
import { connect } from '../../src/client.js';
import { createServer } from '../../src/server.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';

const key = Buffer.alloc(64);
for (let i = 0; i < 64; i++) key[i] = (i * 37 + 11) & 0xff;
const packet = Buffer.alloc(4 + 60);
packet.writeUInt32BE(60, 0);
for (let i = 4; i < packet.length; i++) packet[i] = i & 0xff;

test('a connection that is the first use of chacha20-poly1305 in the process works from its first packet; tags made during the load match those made after it', async (t) => {
  assert.equal(poly1305Implementation(), 'js', 'nothing has keyed chacha20-poly1305 yet: libsodium is not loaded');
  // Keying the cipher starts the load; this packet is sealed before it can have completed (the
  // import resolves on a later turn of the event loop at the earliest).
  const early = Buffer.concat(chacha20Poly1305.createSealer(key, Buffer.alloc(0)).seal(3, packet));
  assert.equal(poly1305Implementation(), 'js');

  const [host, alice] = await Promise.all([generatePrivateKey('ed25519'), generatePrivateKey('ed25519')]);
  const server = createServer({ hostKeys: [host], auth: { publicKeyAllowed: ({ key: offered }) => offered.blob.equals(alice.publicKey.blob) } });
  server.on('connection', (connection) => {
    connection.on('session', (session) => {
      session.on('exec', (request) => {
        request.accept();
        session.write(`ran ${request.details.command}\n`);
        session.exit(0);
      });
    });
  });
  const { port } = await server.listen(0);
  t.after(() => server.close());
  const client = await connect({
    host: '127.0.0.1',
    port,
    username: 'alice',
    privateKeys: [alice],
    verifyHostKey: () => true,
    algorithms: { cipher: ['chacha20-poly1305@openssh.com'] },
  });
  assert.equal(client.algorithms?.cipherClientToServer, 'chacha20-poly1305@openssh.com');
  assert.equal(client.algorithms?.cipherServerToClient, 'chacha20-poly1305@openssh.com');
  assert.equal((await client.exec('true')).stdout.toString(), 'ran true\n');
  await client.end();

  await loadPoly1305Wasm();
  assert.equal(poly1305Implementation(), process.env.TSSH_POLY1305 === 'js' ? 'js' : 'wasm');
  const late = Buffer.concat(chacha20Poly1305.createSealer(key, Buffer.alloc(0)).seal(3, packet));
  assert.deepEqual(early, late);
  assert.deepEqual(chacha20Poly1305.createOpener(key, Buffer.alloc(0)).open(3, early), packet.subarray(4));
});
