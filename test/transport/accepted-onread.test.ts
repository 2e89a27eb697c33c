import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, createServer as netCreateServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { connect } from '../../src/client.js';
import { createServer } from '../../src/server.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { adoptAcceptedSocket, readsIntoSharedBuffer } from '../../src/transport-io.js';

describe('accepted sockets read into the shared buffer (adoptAcceptedSocket)', () => {
  test('on this Node the handle is taken over: reads use onread, the data and the end arrive', async (t) => {
    const server = netCreateServer({ pauseOnConnect: true });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const client = netConnect(port, '127.0.0.1');
    const [accepted] = (await once(server, 'connection')) as [Socket];
    const socket = adoptAcceptedSocket(accepted);
    // If this fails, Node changed how accepted sockets keep their handle: tsshd then still works,
    // through the stream path, but reads cost a fresh 64 KiB buffer each. Update adoptAcceptedSocket.
    assert.equal(readsIntoSharedBuffer(socket), true, 'the fast path was not taken');
    assert.notEqual(socket, accepted);
    assert.equal(socket.remotePort, client.localPort);
    const sent = randomBytes(3 * 1024 * 1024);
    client.end(sent);
    // No 'data' events on an onread socket: what arrives is checked end to end below (SshServer);
    // here only that the socket works for writing and sees the end.
    socket.end('bye');
    const reply: Buffer[] = [];
    client.on('data', (chunk: Buffer) => reply.push(chunk));
    socket.resume();
    await Promise.all([once(socket, 'close'), once(client, 'close')]);
    assert.equal(Buffer.concat(reply).toString(), 'bye');
  });

  test('a socket that is already flowing is used as it is', async (t) => {
    const server = netCreateServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const client = netConnect((server.address() as { port: number }).port, '127.0.0.1');
    const [accepted] = (await once(server, 'connection')) as [Socket];
    accepted.resume();
    assert.equal(adoptAcceptedSocket(accepted), accepted);
    assert.equal(readsIntoSharedBuffer(accepted), false);
    client.destroy();
    accepted.destroy();
  });

  test('several uploads at once through SshServer arrive byte-exact, and close() waits for the connections', async () => {
    // Every connection's reads share one buffer: interleaved bulk uploads from several clients
    // would come out mixed up if anything kept pointing into it after its read was handled.
    const host = await generatePrivateKey('ed25519');
    const user = await generatePrivateKey('ed25519');
    const server = createServer({
      hostKeys: [host],
      auth: { publicKeyAllowed: ({ key }) => key.blob.equals(user.publicKey.blob) },
    });
    server.on('connection', (connection) => {
      connection.on('session', (session) => {
        session.on('exec', (request) => {
          request.accept();
          const hash = createHash('sha256');
          session.on('data', (chunk: Buffer) => hash.update(chunk));
          session.on('end', () => {
            session.write(hash.digest('hex'));
            session.exit(0);
          });
        });
      });
    });
    const { port } = await server.listen(0);
    const uploads = [1, 2, 3].map(async (n) => {
      const client = await connect({ host: '127.0.0.1', port, username: 'u', privateKeys: [user], verifyHostKey: (key) => key.blob.equals(host.publicKey.blob) });
      const input = randomBytes(4 * 1024 * 1024 + n * 4099);
      const result = await client.exec('sha256', { stdin: input });
      assert.equal(result.stdout.toString(), createHash('sha256').update(input).digest('hex'));
      return client;
    });
    const clients = await Promise.all(uploads);
    assert.equal(server.connectionCount, 3);
    const clientsClosed = clients.map((client) => once(client, 'close'));
    await server.close();
    assert.equal(server.connectionCount, 0);
    await Promise.all(clientsClosed);
  });
});
