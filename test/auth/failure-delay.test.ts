// The failure delay of the server's authentication (OpenSSH's ensure_minimum_time_since): a refused
// password, key or keyboard-interactive attempt is answered no sooner than the minimum plus a
// per-user fraction of it, measured from the request's arrival, so a known and an unknown user look
// alike; a refused `none` (every client's first request) is answered at once, as sshd does. The
// wait goes through the `delay` option, so the test sees each requested wait without timing anything.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthServer, type ServerAuthHooks } from '../../src/auth/server.js';
import { encodePasswordFields, METHOD_NONE, METHOD_PASSWORD, SERVICE_CONNECTION } from '../../src/auth/messages.js';
import { MSG, UserauthRequest } from '../../src/wire/messages.js';

interface Run {
  /** Each wait the server asked for, in ms. */
  readonly waits: number[];
  /** Message numbers the server sent, in order. */
  readonly sent: number[];
  request(user: string, method: string, fields?: Buffer): Promise<void>;
}

function authServer(hooks: ServerAuthHooks, minimumFailureDelayMs?: number): Run {
  const waits: number[] = [];
  const sent: number[] = [];
  let replied: (() => void) | undefined;
  const server = new AuthServer(
    {
      sessionId: Buffer.alloc(32, 7),
      hostKeyBlob: undefined,
      hooks,
      ...(minimumFailureDelayMs === undefined ? {} : { minimumFailureDelayMs }),
      delay: async (ms) => {
        waits.push(ms);
      },
    },
    {
      send: (payload) => {
        sent.push(payload[0]!);
        replied?.();
      },
      success: () => replied?.(),
      fail: (error) => assert.fail(`unexpected fatal error: ${error.message}`),
    },
  );
  return {
    waits,
    sent,
    request: (user, method, fields = Buffer.alloc(0)) =>
      new Promise<void>((resolve) => {
        replied = resolve;
        server.receive(UserauthRequest.encode({ user, service: SERVICE_CONNECTION, method, methodFields: fields }));
      }),
  };
}

const password = (secret: string): Buffer => encodePasswordFields({ change: false, password: secret, newPassword: undefined });

describe('authentication failure delay', () => {
  test('a refused `none` is answered with USERAUTH_FAILURE at once, without a wait', async () => {
    const run = authServer({ password: () => 'failure' });
    await run.request('alice', METHOD_NONE);
    assert.deepEqual(run.sent, [MSG.USERAUTH_FAILURE]);
    assert.deepEqual(run.waits, []);
  });

  test('a wrong password waits between the minimum (5 ms) and twice it, the same for the same user every time', async () => {
    const run = authServer({ password: () => 'failure' });
    await run.request('alice', METHOD_PASSWORD, password('wrong'));
    await run.request('alice', METHOD_PASSWORD, password('wrong again'));
    assert.deepEqual(run.sent, [MSG.USERAUTH_FAILURE, MSG.USERAUTH_FAILURE]);
    assert.equal(run.waits.length, 2);
    for (const ms of run.waits) assert.ok(ms > 0 && ms <= 10, `waited ${ms} ms`);
    // The per-user part is derived from the name: elapsed time differs by at most a millisecond or so.
    assert.ok(Math.abs(run.waits[0]! - run.waits[1]!) <= 2, `${run.waits[0]} vs ${run.waits[1]}`);
  });

  test('a right password is answered at once; minimumFailureDelayMs 0 turns the wait off', async () => {
    const ok = authServer({ password: ({ password: secret }) => (secret === 'right' ? 'success' : 'failure') });
    await ok.request('alice', METHOD_PASSWORD, password('right'));
    assert.deepEqual(ok.waits, []);
    const off = authServer({ password: () => 'failure' }, 0);
    await off.request('alice', METHOD_PASSWORD, password('wrong'));
    assert.deepEqual(off.sent, [MSG.USERAUTH_FAILURE]);
    assert.deepEqual(off.waits, []);
  });

  test('a larger minimum scales the wait: 40 ms gives 40-80 ms', async () => {
    const run = authServer({ password: () => 'failure' }, 40);
    await run.request('bob', METHOD_PASSWORD, password('wrong'));
    assert.equal(run.waits.length, 1);
    assert.ok(run.waits[0]! > 30 && run.waits[0]! <= 80, `waited ${run.waits[0]} ms`);
  });
});
