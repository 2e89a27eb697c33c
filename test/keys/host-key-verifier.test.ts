import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { HostKeyError } from '../../src/errors.js';
import { HostKeyVerifier } from '../../src/keys/host-key-verifier.js';
import type { HostKeyVerifierOptions } from '../../src/keys/host-key-verifier.js';
import { parseOpenSshPublicKey } from '../../src/keys/public-key-text.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const KEYS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'openssh-keys');

function fixture(name: string): string {
  return readFileSync(join(KEYS, name), 'utf8');
}
const ED1 = parseOpenSshPublicKey(fixture('ed25519_1.pub')).key;
const ED2 = parseOpenSshPublicKey(fixture('ed25519_2.pub')).key;
const RSA1 = parseOpenSshPublicKey(fixture('rsa_1.pub')).key;
const ED1_FP = fixture('ed25519_1.fp').trim();
const ED2_FP = fixture('ed25519_2.fp').trim();
const RSA1_FP = fixture('rsa_1.fp').trim();

function keyText(key: { type: string; blob: Buffer }): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** A temporary home with ~/.ssh/known_hosts (not created), removed after the test. */
function withHome(run: (home: { dir: string; knownHosts: string; t: TestContext }) => Promise<void>): (t: TestContext) => Promise<void> {
  return async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tssh-verifier-'));
    try {
      await run({ dir, knownHosts: join(dir, 'home', '.ssh', 'known_hosts'), t });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function verifier(options: Partial<HostKeyVerifierOptions> & { userKnownHostsFiles: string[] }, warnings: string[] = []): HostKeyVerifier {
  return new HostKeyVerifier({ policy: 'strict', onWarning: (m) => warnings.push(m), ...options });
}

describe('HostKeyVerifier', () => {
  test(
    'accept-new records an unknown host as ssh does, then matches it',
    withHome(async ({ dir, knownHosts }) => {
      const warnings: string[] = [];
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new' }, warnings);
      const first = await v.verify('127.0.0.1', 2222, ED1);
      assert.equal(first.lookup.status, 'unknown');
      assert.equal(first.trusted, true);
      assert.deepEqual(first.added, { file: knownHosts, line: 1 });
      assert.equal(readFileSync(knownHosts, 'utf8'), `[127.0.0.1]:2222 ${keyText(ED1)}\n`);
      assert.equal(statSync(knownHosts).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'home', '.ssh')).mode & 0o777, 0o700);
      // ssh(1)'s own words, which tssh prints after "Warning: ".
      assert.deepEqual(warnings, [`Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.`]);

      const second = await v.verify('127.0.0.1', 2222, ED1);
      assert.equal(second.lookup.status, 'match');
      assert.equal(second.added, undefined);
      assert.equal(readFileSync(knownHosts, 'utf8').split('\n').length, 2, 'nothing more written');
    }),
  );

  test(
    'a changed key is refused with both fingerprints, the file and line, and the fix',
    withHome(async ({ knownHosts }) => {
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new' });
      await v.verify('127.0.0.1', 2222, ED1);
      await v.verify('127.0.0.1', 2200, RSA1);
      await v.verify('other.example.com', 22, ED2);
      await assert.rejects(v.verify('127.0.0.1', 2222, ED2), (error: unknown) => {
        assert.ok(error instanceof HostKeyError);
        assert.equal(error.code, 'ERR_SSH_HOST_KEY');
        assert.equal(
          error.message,
          `host key for [127.0.0.1]:2222 has changed: expected ${ED1_FP}, got ${ED2_FP} ` +
            `(offending key in ${knownHosts}:1); remove it with: tssh-keygen -R "[127.0.0.1]:2222"`,
        );
        return true;
      });
      // Another type is a change too (ssh(1) does not treat a new key type as a new host).
      writeFileSync(knownHosts, `${readFileSync(knownHosts, 'utf8')}[127.0.0.1]:2222 ${keyText(RSA1)}\n`);
      await assert.rejects(
        verifier({ userKnownHostsFiles: [knownHosts], policy: 'strict' }).verify('127.0.0.1', 2222, ED2),
        {
          message:
            `host key for [127.0.0.1]:2222 has changed: expected ${ED1_FP} or ${RSA1_FP}, got ${ED2_FP} ` +
            `(offending keys in ${knownHosts}:1, ${knownHosts}:4); remove them with: tssh-keygen -R "[127.0.0.1]:2222"`,
        },
      );
    }),
  );

  test(
    'accept-new written entries are found by ssh-keygen -F',
    withHome(async ({ knownHosts, t }) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const keygen = peerPath('ssh-keygen');
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new' });
      await v.verify('127.0.0.1', 2222, ED1);
      await v.verify('Host.Example.com', 22, RSA1);
      const hashing = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new', hashKnownHosts: true });
      const added = await hashing.verify('::1', 2022, ED2);
      assert.equal(added.added?.line, 3);
      assert.match(readFileSync(knownHosts, 'utf8').split('\n')[2]!, /^\|1\|/);
      for (const [name, line] of [['[127.0.0.1]:2222', 1], ['host.example.com', 2], ['[::1]:2022', 3]] as const) {
        const found = spawnSync(keygen, ['-F', name, '-f', knownHosts], { encoding: 'utf8' });
        assert.equal(found.status, 0, `${name}: ${found.stderr}`);
        assert.ok(found.stdout.startsWith(`# Host ${name} found: line ${line}`), found.stdout);
      }
    }),
  );

  test(
    'strict refuses unknown hosts and writes nothing',
    withHome(async ({ knownHosts }) => {
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'strict' });
      await assert.rejects(v.verify('new.example.com', 22, ED1), {
        name: 'HostKeyError',
        message: `no host key is known for new.example.com and StrictHostKeyChecking is strict (the server offered ssh-ed25519 ${ED1_FP}); if you trust it, add it to known_hosts or connect once with StrictHostKeyChecking=accept-new`,
      });
      assert.equal(existsSync(knownHosts), false);
    }),
  );

  test(
    'off: new keys are recorded; a changed key is let through untrusted, with a warning, and not written',
    withHome(async ({ knownHosts }) => {
      const warnings: string[] = [];
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'off' }, warnings);
      assert.deepEqual((await v.verify('a.example.com', 22, ED1)).added, { file: knownHosts, line: 1 });
      const before = readFileSync(knownHosts, 'utf8');
      const changed = await v.verify('a.example.com', 22, ED2);
      assert.equal(changed.lookup.status, 'mismatch');
      assert.equal(changed.trusted, false);
      assert.equal(
        warnings[1],
        `host key for a.example.com has changed: expected ${ED1_FP}, got ${ED2_FP} (offending key in ${knownHosts}:1); ` +
          `remove it with: tssh-keygen -R "a.example.com"; accepted because StrictHostKeyChecking is off`,
      );
      assert.equal(readFileSync(knownHosts, 'utf8'), before);
    }),
  );

  test(
    '@revoked keys are refused, or under off accepted untrusted',
    withHome(async ({ dir }) => {
      const path = join(dir, 'known_hosts');
      writeFileSync(path, `a.example.com ${keyText(ED1)}\n@revoked * ${keyText(ED1)}\n`);
      for (const policy of ['strict', 'accept-new'] as const) {
        await assert.rejects(verifier({ userKnownHostsFiles: [path], policy }).verify('a.example.com', 22, ED1), {
          name: 'HostKeyError',
          message: `host key for a.example.com is revoked: ssh-ed25519 ${ED1_FP} is marked @revoked in ${path}:2`,
        });
      }
      const verdict = await verifier({ userKnownHostsFiles: [path], policy: 'off' }).verify('a.example.com', 22, ED1);
      assert.equal(verdict.lookup.status, 'revoked');
      assert.equal(verdict.trusted, false);
    }),
  );

  test(
    'a non-standard port falls back to the plain host name when that has the key',
    withHome(async ({ dir }) => {
      const path = join(dir, 'known_hosts');
      writeFileSync(path, `host.example.com ${keyText(ED1)}\n`);
      const v = verifier({ userKnownHostsFiles: [path], policy: 'strict' });
      const verdict = await v.verify('host.example.com', 2200, ED1);
      assert.equal(verdict.lookup.status, 'match');
      assert.equal(verdict.lookup.name, 'host.example.com');
      // A different key under the plain name does not make the [host]:port name "changed".
      await assert.rejects(v.verify('host.example.com', 2200, ED2), /no host key is known for \[host\.example\.com\]:2200/);
    }),
  );

  test(
    'global files are read, never written; bad lines are reported, not fatal',
    withHome(async ({ dir, knownHosts }) => {
      const global = join(dir, 'ssh_known_hosts');
      writeFileSync(global, `garbage\nglobal.example.com ${keyText(ED1)}\n`);
      const v = verifier({ userKnownHostsFiles: [knownHosts], globalKnownHostsFiles: [global], policy: 'accept-new' });
      const verdict = await v.verify('global.example.com', 22, ED1);
      assert.equal(verdict.lookup.status, 'match');
      assert.deepEqual(
        verdict.skipped.map((b) => `${b.file}:${b.line}`),
        [`${global}:1`],
      );
      await v.verify('user.example.com', 22, ED1);
      assert.equal(readFileSync(global, 'utf8'), `garbage\nglobal.example.com ${keyText(ED1)}\n`);
      assert.equal(readFileSync(knownHosts, 'utf8'), `user.example.com ${keyText(ED1)}\n`);
    }),
  );

  test(
    'names that would read back as patterns are never recorded; HostKeyAlias names are used as is',
    withHome(async ({ knownHosts }) => {
      const v = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new' });
      await assert.rejects(v.verify('we*rd', 22, ED1), /never recorded/);
      await assert.rejects(v.verify('a|b', 22, ED1), /never recorded/);
      const alias = await v.verifyAlias('MyAlias', ED1);
      assert.equal(alias.added?.line, 1);
      assert.equal(readFileSync(knownHosts, 'utf8'), `myalias ${keyText(ED1)}\n`);
    }),
  );

  test(
    'callback() plugs into the transport: true, or a rejection with the HostKeyError',
    withHome(async ({ knownHosts }) => {
      const check = verifier({ userKnownHostsFiles: [knownHosts], policy: 'accept-new' }).callback('127.0.0.1', 2222);
      assert.equal(await check(ED1), true);
      assert.equal(await check(ED1), true);
      await assert.rejects(check(ED2), HostKeyError);
    }),
  );

  test(
    'an unreadable known_hosts file refuses rather than treating the host as new',
    withHome(async ({ dir }) => {
      const v = verifier({ userKnownHostsFiles: [dir], policy: 'accept-new' });
      await assert.rejects(v.verify('a.example.com', 22, ED1), { name: 'HostKeyError', message: /^cannot read known_hosts: EISDIR/ });
    }),
  );

  test(
    'an unwritable known_hosts file does not stop a connection that policy accepts',
    withHome(async ({ dir }) => {
      const warnings: string[] = [];
      const blocked = join(dir, 'not-a-dir');
      writeFileSync(blocked, '');
      const path = join(blocked, 'known_hosts');
      const v = verifier({ userKnownHostsFiles: [path], policy: 'accept-new' }, warnings);
      const verdict = await v.verify('a.example.com', 22, ED1);
      assert.equal(verdict.trusted, true);
      assert.equal(verdict.added, undefined);
      assert.match(warnings[0]!, /^failed to add a\.example\.com to /);
    }),
  );
});
