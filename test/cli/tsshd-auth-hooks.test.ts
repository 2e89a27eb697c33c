/**
 * tsshd's publickey hook (src/cli/sshd/auth.ts): a query's yes serves the signed request that
 * follows with the same key, once and only for a few seconds; anything else reads
 * authorized_keys again. Driven directly, with the file changed between the calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { createAuthHooks, type AuthResultState } from '../../src/cli/sshd/auth.js';
import { parseSshdConfig, resolveForConnection } from '../../src/config/sshd-config.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { lookupUser } from '../../src/cli/sshd/users.js';
import { checkFolder } from '../../src/cli/sshd/local-fs.js';

test("a publickey query's yes serves the signed request that follows, once, within 5 s", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tssh-authhooks-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const me = lookupUser(userInfo().username);
  assert.ok(me, 'the user running the test is in the passwd file');
  const file = join(dir, 'authorized_keys');
  const config = parseSshdConfig(`AuthorizedKeysFile ${file}\nStrictModes no\nPermitRootLogin yes\n`);
  const alice = await generatePrivateKey('ed25519');
  const other = await generatePrivateKey('ed25519');
  const line = (key: typeof alice, options = ''): string => `${options}ssh-ed25519 ${key.publicKey.blob.toString('base64')} test\n`;
  const state: AuthResultState = { user: undefined, keyOptions: undefined };
  const hooks = createAuthHooks(
    {
      settings: (user) => resolveForConnection(config, { user, address: '127.0.0.1', host: '127.0.0.1', localPort: 0, localAddress: '' }),
      remoteAddress: '127.0.0.1',
      onlyUser: undefined,
      log: () => {},
    },
    state,
  );
  // Read through a function: TypeScript would narrow the property after it is cleared below.
  const keyOptions = (): AuthResultState['keyOptions'] => state.keyOptions;
  const ask = (key: typeof alice): Promise<boolean> =>
    Promise.resolve(hooks.publicKeyAllowed!({ user: me.name, method: 'publickey', key: key.publicKey, algorithm: 'ssh-ed25519' }));

  await writeFile(file, line(alice, 'no-pty '));
  assert.equal(await ask(alice), true, 'the query');
  assert.equal(keyOptions()?.pty, false);
  state.keyOptions = undefined;
  await rm(file);
  assert.equal(await ask(alice), true, 'the signed request: answered by the query, the file not read again');
  assert.equal(keyOptions()?.pty, false, 'with the options the query found');
  assert.equal(await ask(alice), false, 'only once: the file is gone');

  // Another key in between: the answer was for alice's key only.
  await writeFile(file, line(alice));
  assert.equal(await ask(alice), true);
  await writeFile(file, line(other));
  assert.equal(await ask(other), true, 'asked about another key: read from the file');
  await rm(file);
  assert.equal(await ask(alice), false, "alice's earlier yes went with the question about the other key");

  // A symbolic link (which could lead to any file system) is followed, through the thread pool.
  const target = join(dir, 'keys-elsewhere');
  await writeFile(target, line(alice));
  await symlink(target, file);
  await checkFolder(dir); // the folder is known local (where it is), so only the link sends the stat to the pool
  assert.equal(await ask(other), false);
  assert.equal(await ask(alice), true, 'the key in the file the link names');
  await rm(file);

  // An answer older than 5 s is not used.
  await writeFile(file, line(alice));
  assert.equal(await ask(alice), true);
  await rm(file);
  const realNow = Date.now;
  Date.now = () => realNow() + 6_000;
  try {
    assert.equal(await ask(alice), false, 'too old: the file is read, and it is gone');
  } finally {
    Date.now = realNow;
  }
});
