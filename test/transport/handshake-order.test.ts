/**
 * When a server sends its first KEXINIT and EXT_INFO (src/transport/transport.ts, start() and
 * extInfoDue): each goes out in answer to something the client sent, so that it carries the TCP
 * acknowledgement a Nagle-delayed client waits for. The KEXINIT once the client's identification
 * is in; EXT_INFO, still the next packet after the server's NEWKEYS (RFC 8308 §2.4), once the
 * client's NEWKEYS is in. Driven by hand here, one direction at a time, to see each step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transport } from '../../src/transport/transport.js';
import { defaultAlgorithms, testHostKeys } from '../helpers/transport-pair.js';

interface Peer {
  transport: Transport;
  /** What it wrote and the other side has not been given yet. */
  outbox: Buffer[];
  /** Everything it wrote. */
  wire: Buffer[];
  extInfo: string[];
  kexDone: boolean;
}

async function peers(): Promise<{ client: Peer; server: Peer }> {
  const hostKeys = (await testHostKeys()).slice(0, 1);
  const make = (role: 'client' | 'server'): Peer => {
    const peer: Peer = { transport: undefined as unknown as Transport, outbox: [], wire: [], extInfo: [], kexDone: false };
    peer.transport = new Transport(
      {
        role,
        // curve25519 computes at once (ML-KEM's code would load asynchronously first).
        algorithms: { ...defaultAlgorithms(), kex: ['curve25519-sha256'] },
        identification: `SSH-2.0-tssh_order_${role}`,
        hostKeys: role === 'server' ? hostKeys : undefined,
        verifyHostKey: role === 'client' ? () => true : undefined,
        services: ['ssh-userauth'],
      },
      {
        send(chunks) {
          for (const chunk of chunks) {
            peer.outbox.push(Buffer.from(chunk));
            peer.wire.push(Buffer.from(chunk));
          }
        },
        message() {},
        close(error) {
          if (error) throw error;
        },
        kexComplete() {
          peer.kexDone = true;
        },
        extInfo(extensions) {
          peer.extInfo.push(...extensions.keys());
        },
      },
    );
    return peer;
  };
  return { client: make('client'), server: make('server') };
}

/** Hand what `from` wrote to `to`, all of it or only its first `chunks` writes. */
function deliver(from: Peer, to: Peer, chunks = from.outbox.length): void {
  for (const chunk of from.outbox.splice(0, chunks)) to.transport.receive(chunk);
}

/** Message numbers of the unencrypted packets in `bytes`, and what is left after them. */
function plainPackets(bytes: Buffer, count: number): { types: number[]; rest: number } {
  const types: number[] = [];
  let offset = 0;
  for (let i = 0; i < count && offset + 5 < bytes.length; i++) {
    const length = bytes.readUInt32BE(offset);
    types.push(bytes[offset + 5]!);
    offset += 4 + length;
  }
  return { types, rest: bytes.length - offset };
}

test("a server's first KEXINIT waits for the client's identification", async () => {
  const { client, server } = await peers();
  server.transport.start();
  assert.deepEqual(Buffer.concat(server.outbox).toString('latin1'), 'SSH-2.0-tssh_order_server\r\n', 'only the identification at first');
  client.transport.start();
  assert.equal(client.outbox.length, 2, 'a client sends its identification and KEXINIT at once');
  deliver(client, server, 1); // the identification line alone
  const after = Buffer.concat(server.outbox.slice(1));
  assert.deepEqual(plainPackets(after, 1), { types: [20], rest: 0 }, 'KEXINIT, as soon as the identification is in');
});

test("a server's first EXT_INFO goes when the client's NEWKEYS is in, as the next packet after the server's NEWKEYS", async () => {
  const { client, server } = await peers();
  server.transport.start();
  client.transport.start();
  deliver(client, server); // identification, KEXINIT
  deliver(server, client); // identification, KEXINIT
  deliver(client, server); // ECDH_INIT: the server replies and sends NEWKEYS
  const written = Buffer.concat(server.wire).subarray('SSH-2.0-tssh_order_server\r\n'.length);
  assert.deepEqual(plainPackets(written, 3), { types: [20, 31, 21], rest: 0 }, 'nothing after NEWKEYS yet');
  deliver(server, client); // the reply and NEWKEYS: the client sends its NEWKEYS
  assert.ok(client.kexDone);
  assert.equal(client.extInfo.length, 0);
  const before = server.wire.length;
  deliver(client, server); // the client's NEWKEYS
  assert.ok(server.kexDone);
  assert.ok(server.wire.length > before, 'EXT_INFO went out');
  deliver(server, client);
  assert.ok(client.extInfo.includes('server-sig-algs'), 'and the client read it as EXT_INFO');
});
