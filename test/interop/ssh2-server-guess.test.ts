/**
 * Key exchange guesses with a server we do not guess with by default: the ssh2 package's server (a
 * dev dependency, so always here). Without guessKex the client sends no guess to it, and a wrong
 * guess (guessKex: true) is dropped as RFC 4253 §7 says. A right one is dropped too: ssh2 1.17
 * decides whether to skip the guessed packet by comparing the method it chose with the first
 * element of the client's list after it has overwritten that list with the chosen name
 * (lib/protocol/kex.js, `init.kex = clientList[i]` before `clientList[i] !== remote.kex[0]`,
 * `remote` being `init`), so it compares with the name's first letter and skips every guess. The
 * client, its guess right, waits for a reply that never comes. This is why the default guesses
 * only with servers known to handle a guess (tssh, OpenSSH 10 or later).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { connect } from '../../src/client.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { encodeOpensshPrivateKey } from '../../src/keys/openssh-private.js';

/** The little of the ssh2 package's server API used here (the package ships no types). */
interface Ssh2Stream {
  write(data: string): void;
  exit(code: number): void;
  end(): void;
}
interface Ssh2Session {
  on(event: 'exec', listener: (accept: () => Ssh2Stream) => void): void;
}
interface Ssh2Connection {
  on(event: 'authentication', listener: (context: { accept(): void }) => void): Ssh2Connection;
  on(event: 'ready', listener: () => void): Ssh2Connection;
  on(event: 'session', listener: (accept: () => Ssh2Session) => void): Ssh2Connection;
  on(event: 'error', listener: (error: Error) => void): Ssh2Connection;
}
interface Ssh2Server {
  listen(port: number, host: string, callback: () => void): void;
  address(): AddressInfo;
  close(): void;
}
interface Ssh2Module {
  Server: new (config: { hostKeys: string[]; algorithms: { kex: string[] } }, listener: (client: Ssh2Connection) => void) => Ssh2Server;
}

const ssh2 = createRequire(import.meta.url)('ssh2') as Ssh2Module;

async function ssh2Server(t: { after(fn: () => unknown): void }, kex: string[]): Promise<number> {
  const hostKey = encodeOpensshPrivateKey(await generatePrivateKey('ed25519'));
  const server = new ssh2.Server({ hostKeys: [hostKey], algorithms: { kex } }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (context) => context.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        accept().on('exec', (acceptExec) => {
          const stream = acceptExec();
          stream.write('ok\n');
          stream.exit(0);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return server.address().port;
}

const AGREEING = ['curve25519-sha256', 'curve25519-sha256@libssh.org'];
const OTHER = ['curve25519-sha256@libssh.org', 'curve25519-sha256'];

async function login(port: number, guessKex: boolean | undefined, readyTimeout?: number): Promise<{ lines: string[]; error?: Error }> {
  const lines: string[] = [];
  try {
    const client = await connect({
      host: '127.0.0.1',
      port,
      username: 'anyone',
      privateKeys: [await generatePrivateKey('ed25519')],
      verifyHostKey: () => true,
      algorithms: { kex: AGREEING },
      ...(guessKex !== undefined && { guessKex }),
      ...(readyTimeout !== undefined && { readyTimeout }),
      debug: (line) => lines.push(line),
    });
    const result = await client.exec('anything');
    assert.equal(result.stdout.toString(), 'ok\n');
    assert.equal(result.code, 0);
    await client.end();
    return { lines };
  } catch (error) {
    return { lines, error: error as Error };
  }
}

test("the ssh2 package's server: no guess by default, and a wrong one (guessKex: true) is dropped", { timeout: 30_000 }, async (t) => {
  const agreeing = await login(await ssh2Server(t, AGREEING), undefined);
  assert.equal(agreeing.error, undefined, agreeing.lines.join('\n'));
  assert.ok(!agreeing.lines.some((l) => l.startsWith('kex: guessed')), 'no guess to software not known to handle one');
  const wrong = await login(await ssh2Server(t, OTHER), true);
  assert.equal(wrong.error, undefined, wrong.lines.join('\n'));
  assert.ok(wrong.lines.includes('kex: our guess was wrong'), wrong.lines.join('\n'));
});

test("the ssh2 package's server (1.17) drops even a right guess: the exchange stalls, why guessing is not the default with it", { timeout: 30_000 }, async (t) => {
  const right = await login(await ssh2Server(t, AGREEING), true, 1500);
  assert.ok(right.lines.includes('kex: our guess was right'), right.lines.join('\n'));
  assert.match(String(right.error), /timed out/, 'no reply to the guessed message');
});
