// The client's publickey steps, message by message (RFC 4252 §7): a key whose private half is in
// this process (ClientIdentity.local) is sent signed at once, without the query; any other identity
// (an agent's key) is queried first and signed only after USERAUTH_PK_OK, as OpenSSH does. When a
// local key comes first, it goes before `none` (which then comes last, once, before giving up).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthClient, type ClientIdentity } from '../../src/auth/client.js';
import { decodePublicKeyFields, METHOD_NONE, METHOD_PUBLICKEY, METHOD_PUBLICKEY_HOSTBOUND, UserauthPkOk } from '../../src/auth/messages.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { MSG, UserauthFailure, UserauthRequest } from '../../src/wire/messages.js';

interface Sent {
  readonly method: string;
  /** For publickey: whether it carries a signature, and which key. */
  readonly signed?: boolean;
  readonly key?: string;
  /** Only when it is not the key's own type (RSA's rsa-sha2-*). */
  readonly algorithm?: string;
}

async function identity(name: string, local: boolean, failSigning = false, type: 'ed25519' | 'rsa' = 'ed25519'): Promise<ClientIdentity & { signed: number }> {
  const key = type === 'rsa' ? await generatePrivateKey('rsa', 2048) : await generatePrivateKey('ed25519');
  const id = {
    publicKey: key.publicKey,
    source: name,
    local,
    signed: 0,
    sign: async (): Promise<Buffer> => {
      if (failSigning) throw new Error('token removed');
      id.signed++;
      return Buffer.from(`signature by ${name}`);
    },
  };
  return id;
}

/** `loader`: the identities come from a function, as when a key file wants a passphrase. */
function run(identities: ClientIdentity[], loader = false): { sent: Sent[]; client: AuthClient; outcome: Promise<string>; nextSend(): Promise<Sent> } {
  const sent: Sent[] = [];
  const names = new Map(identities.map((i) => [i.publicKey.blob.toString('hex'), i.source]));
  let wake: (() => void) | undefined;
  let settle!: (value: string) => void;
  const outcome = new Promise<string>((resolve) => (settle = resolve));
  const client = new AuthClient(
    { user: 'alice', sessionId: Buffer.alloc(32, 1), identities: loader ? async () => identities : identities },
    {
      send: (payload) => {
        const request = UserauthRequest.decode(payload);
        if (request.method === METHOD_PUBLICKEY || request.method === METHOD_PUBLICKEY_HOSTBOUND) {
          const fields = decodePublicKeyFields(request.methodFields, request.method === METHOD_PUBLICKEY_HOSTBOUND);
          const key = names.get(fields.publicKey.toString('hex'));
          const own = identities.find((i) => i.source === key)?.publicKey.type;
          sent.push({ method: request.method, signed: fields.signed, key, ...(fields.algorithm === own ? {} : { algorithm: fields.algorithm }) });
        } else {
          sent.push({ method: request.method });
        }
        wake?.();
      },
      success: () => settle('success'),
      fail: (error) => settle(error.message),
    },
  );
  let seen = 0;
  const nextSend = async (): Promise<Sent> => {
    while (sent.length <= seen) await new Promise<void>((resolve) => (wake = resolve));
    return sent[seen++]!;
  };
  return { sent, client, outcome, nextSend };
}

const failure = (...methods: string[]): Buffer => UserauthFailure.encode({ methods, partialSuccess: false });
const success = Buffer.from([MSG.USERAUTH_SUCCESS]);

describe('client publickey authentication', () => {
  test('a key in this process goes signed at once, even before none; an agent key is queried first', async () => {
    const local = await identity('local', true);
    const agent = await identity('agent', false);
    const { client, outcome, nextSend } = run([local, agent]);
    client.start();
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'local' });
    assert.equal(local.signed, 1);
    client.receive(failure('publickey', 'password'));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: false, key: 'agent' });
    assert.equal(agent.signed, 0, 'nothing signed before the server accepts the key');
    client.receive(UserauthPkOk.encode({ algorithm: 'ssh-ed25519', publicKey: agent.publicKey.blob }));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'agent' });
    client.receive(success);
    assert.equal(await outcome, 'success');
  });

  test('a key that signs at once (signNow): the signed request is sent before start() returns, in the same write as what went just before', async () => {
    const slow = await identity('slow', true);
    const slowRun = run([slow]);
    slowRun.client.start();
    assert.equal(slowRun.sent.length, 0, 'sign() is asynchronous: the request follows later');
    assert.deepEqual(await slowRun.nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'slow' });

    const now = await identity('now', true);
    let signedNow = 0;
    const withSignNow: ClientIdentity = { ...now, signNow: () => (signedNow++, Buffer.from('signature by now')) };
    const nowRun = run([withSignNow]);
    nowRun.client.start();
    assert.deepEqual(nowRun.sent, [{ method: METHOD_PUBLICKEY, signed: true, key: 'now' }]);
    assert.equal(signedNow, 1);
    assert.equal(now.signed, 0, 'sign() was not used');
    nowRun.client.receive(success);
    assert.equal(await nowRun.outcome, 'success');

    // signNow that throws: the usual path takes over and passes the key by, as for sign().
    const broken: ClientIdentity = { ...(await identity('broken', true, true)), signNow: () => { throw new Error('token removed'); } };
    const good = await identity('good', true);
    const brokenRun = run([broken, good]);
    brokenRun.client.start();
    assert.equal(brokenRun.sent.length, 0);
    assert.deepEqual(await brokenRun.nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'good' });
  });

  test('a local key that cannot sign is passed over for the next identity', async () => {
    const broken = await identity('broken', true, true);
    const good = await identity('good', true);
    const { client, outcome, nextSend, sent } = run([broken, good]);
    client.start();
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'good' });
    client.receive(success);
    assert.equal(await outcome, 'success');
    assert.equal(sent.filter((s) => s.key === 'broken').length, 0);
  });

  test('every key refused: none is tried last, once, then Permission denied with the methods the server named', async () => {
    const a = await identity('a', true);
    const b = await identity('b', true);
    const { client, outcome, nextSend } = run([a, b]);
    client.start();
    assert.equal((await nextSend()).key, 'a');
    client.receive(failure('publickey'));
    assert.equal((await nextSend()).key, 'b');
    client.receive(failure('publickey'));
    assert.deepEqual(await nextSend(), { method: METHOD_NONE });
    client.receive(failure('publickey'));
    assert.equal(await outcome, 'Permission denied (publickey).');
  });

  test('a server that takes none when it refuses the key: none, tried last, logs in', async () => {
    const a = await identity('a', true);
    const { client, outcome, nextSend } = run([a]);
    client.start();
    assert.equal((await nextSend()).key, 'a');
    client.receive(failure('password'));
    assert.deepEqual(await nextSend(), { method: METHOD_NONE });
    client.receive(success);
    assert.equal(await outcome, 'success');
  });

  test('started before EXT_INFO (pipelined): the next requests use what it says, hostbound and server-sig-algs', async () => {
    const first = await identity('first', true);
    const rsa = await identity('rsa', true, false, 'rsa');
    const { client, outcome, nextSend } = run([first, rsa]);
    assert.equal(AuthClient.startsWithLocalKey(undefined, [first, rsa]), true);
    assert.equal(AuthClient.startsWithLocalKey(undefined, [rsa, first]), false, 'an RSA key waits for server-sig-algs');
    assert.equal(AuthClient.startsWithLocalKey(['password', 'publickey'], [first]), false);
    client.start();
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'first' });
    client.serverExtensions(['ssh-ed25519', 'rsa-sha2-256'], Buffer.from('host key blob'));
    client.receive(failure('publickey'));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY_HOSTBOUND, signed: true, key: 'rsa', algorithm: 'rsa-sha2-256' });
    client.receive(success);
    assert.equal(await outcome, 'success');
  });

  test('only keys held elsewhere (an agent), listed before authentication: the first is queried at once, before none', async () => {
    const agent = await identity('agent', false);
    const other = await identity('other', false);
    const { client, outcome, nextSend } = run([agent, other]);
    client.start();
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: false, key: 'agent' });
    client.receive(failure('publickey', 'password'));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: false, key: 'other' });
    client.receive(UserauthPkOk.encode({ algorithm: 'ssh-ed25519', publicKey: other.publicKey.blob }));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: true, key: 'other' });
    assert.equal(agent.signed + other.signed, 1, 'only the key the server takes is signed');
    client.receive(success);
    assert.equal(await outcome, 'success');
  });

  test('identities that load only when publickey is tried (a loader): none first, as OpenSSH', async () => {
    const agent = await identity('agent', false);
    const { client, outcome, nextSend } = run([agent], true);
    client.start();
    assert.deepEqual(await nextSend(), { method: METHOD_NONE });
    client.receive(failure('publickey'));
    assert.deepEqual(await nextSend(), { method: METHOD_PUBLICKEY, signed: false, key: 'agent' });
    client.receive(success);
    assert.equal(await outcome, 'success');
  });
});
