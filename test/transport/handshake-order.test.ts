/**
 * When a server sends its first KEXINIT and EXT_INFO (src/transport/transport.ts, start() and
 * extInfoDue): each goes out in answer to something the client sent, so that it carries the TCP
 * acknowledgement a Nagle-delayed client waits for. The KEXINIT once the client's identification
 * is in; EXT_INFO, still the next packet after the server's NEWKEYS (RFC 8308 §2.4), once the
 * client's NEWKEYS is in. And when a client sends its first KEXINIT, with or without a guessed
 * key exchange message (guessKex): once it has the server's identification. Driven by hand
 * here, one direction at a time, to see each step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transport } from '../../src/transport/transport.js';
import { KexInit } from '../../src/wire/messages.js';
import { defaultAlgorithms, testHostKeys } from '../helpers/transport-pair.js';

interface Peer {
  transport: Transport;
  /** What it wrote and the other side has not been given yet. */
  outbox: Buffer[];
  /** Everything it wrote. */
  wire: Buffer[];
  extInfo: string[];
  kexDone: boolean;
  /** Where its debug lines go, when set. */
  debug?: string[];
}

interface PeerOptions {
  readonly kex?: readonly string[];
  readonly guessKex?: boolean;
}

async function peers(options: { client?: PeerOptions; server?: PeerOptions } = {}): Promise<{ client: Peer; server: Peer }> {
  const hostKeys = (await testHostKeys()).slice(0, 1);
  const make = (role: 'client' | 'server'): Peer => {
    const peer: Peer = { transport: undefined as unknown as Transport, outbox: [], wire: [], extInfo: [], kexDone: false };
    const own = options[role];
    peer.transport = new Transport(
      {
        role,
        // curve25519 computes at once (ML-KEM's code would load asynchronously first).
        algorithms: { ...defaultAlgorithms(), kex: own?.kex ?? ['curve25519-sha256'] },
        guessKex: own?.guessKex,
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
        debug(line) {
          peer.debug?.push(line);
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
  assert.deepEqual(Buffer.concat(client.outbox).toString('latin1'), 'SSH-2.0-tssh_order_client\r\n', 'a client too');
  deliver(client, server); // the identification line alone
  const after = Buffer.concat(server.outbox.slice(1));
  assert.deepEqual(plainPackets(after, 1), { types: [20], rest: 0 }, 'KEXINIT, as soon as the identification is in');
});

/** The payloads of the unencrypted packets in `bytes`. */
function plainPayloads(bytes: Buffer): Buffer[] {
  const payloads: Buffer[] = [];
  for (let offset = 0; offset + 5 < bytes.length; ) {
    const length = bytes.readUInt32BE(offset);
    const padding = bytes[offset + 4]!;
    payloads.push(bytes.subarray(offset + 5, offset + 4 + length - padding));
    offset += 4 + length;
  }
  return payloads;
}

test('a client that knows the server (tssh) sends its KEXINIT with a guessed ECDH_INIT; the server answers both at once', async () => {
  const { client, server } = await peers();
  server.transport.start();
  client.transport.start();
  deliver(server, client); // the server's identification: now the client knows whom it speaks to
  const [kexInit, guessed, ...more] = plainPayloads(Buffer.concat(client.outbox.slice(1)));
  assert.equal(more.length, 0);
  assert.equal(kexInit![0], 20);
  assert.equal(KexInit.decode(kexInit!).firstKexPacketFollows, true);
  assert.equal(guessed![0], 30, 'the guessed KEX_ECDH_INIT follows');
  deliver(client, server); // identification, KEXINIT, ECDH_INIT together
  const written = Buffer.concat(server.wire).subarray('SSH-2.0-tssh_order_server\r\n'.length);
  assert.deepEqual(plainPackets(written, 3), { types: [20, 31, 21], rest: 0 }, 'KEXINIT, the reply and NEWKEYS in one pass');
  deliver(server, client);
  assert.ok(client.kexDone, 'the guess was right: the reply completes the exchange');
  deliver(client, server);
  assert.ok(server.kexDone);
});

test('a wrong guess: the server drops the guessed packet, the client starts the negotiated exchange, both finish', async () => {
  const { client, server } = await peers({
    client: { kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'], guessKex: true },
    server: { kex: ['curve25519-sha256@libssh.org', 'curve25519-sha256'] },
  });
  const lines: string[] = [];
  client.debug = lines;
  server.transport.start();
  client.transport.start();
  deliver(server, client);
  deliver(client, server);
  const written = Buffer.concat(server.wire).subarray('SSH-2.0-tssh_order_server\r\n'.length);
  assert.deepEqual(plainPackets(written, 1), { types: [20], rest: 0 }, 'the server ignored the guess and waits');
  for (let i = 0; i < 4 && !(client.kexDone && server.kexDone); i++) {
    deliver(server, client);
    deliver(client, server);
  }
  assert.ok(client.kexDone && server.kexDone);
  assert.equal(client.transport.algorithms?.kex, 'curve25519-sha256');
  assert.ok(lines.includes('kex: our guess was wrong'), lines.join('\n'));
});

test('whom a client guesses with: tssh unless told (not OpenSSH, whose reply to a guess waits for a delayed ACK); never with a group exchange first', async () => {
  const cases: { identification: string; options?: PeerOptions; guess: boolean }[] = [
    { identification: 'SSH-2.0-tssh_0.1.0', guess: true },
    { identification: 'SSH-2.0-OpenSSH_10.0', guess: false },
    { identification: 'SSH-2.0-OpenSSH_10.0', options: { guessKex: true }, guess: true },
    { identification: 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3', guess: false },
    { identification: 'SSH-2.0-dropbear_2022.83', guess: false },
    { identification: 'SSH-2.0-dropbear_2022.83', options: { guessKex: true }, guess: true },
    { identification: 'SSH-2.0-tssh_0.1.0', options: { guessKex: false }, guess: false },
    { identification: 'SSH-2.0-tssh_0.1.0', options: { kex: ['diffie-hellman-group-exchange-sha256'] }, guess: false },
  ];
  for (const { identification, options, guess } of cases) {
    const { client } = await peers({ client: options });
    client.transport.start();
    client.outbox.length = 0;
    client.transport.receive(Buffer.from(`${identification}\r\n`, 'latin1'));
    const payloads = plainPayloads(Buffer.concat(client.outbox));
    const what = `${identification} ${JSON.stringify(options ?? {})}`;
    assert.equal(KexInit.decode(payloads[0]!).firstKexPacketFollows, guess, what);
    assert.deepEqual(payloads.slice(1).map((p) => p[0]), guess ? [30] : [], what);
  }
});

test("a server's first EXT_INFO goes when the client's NEWKEYS is in, as the next packet after the server's NEWKEYS", async () => {
  const { client, server } = await peers();
  server.transport.start();
  client.transport.start();
  deliver(client, server); // identification: the server sends its KEXINIT
  deliver(server, client); // identification, KEXINIT: the client's KEXINIT and (guessed, right) ECDH_INIT
  deliver(client, server); // KEXINIT, ECDH_INIT: the server replies and sends NEWKEYS
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
