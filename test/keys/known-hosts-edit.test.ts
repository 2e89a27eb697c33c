import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import {
  findKnownHostFile,
  findKnownHostText,
  hashKnownHostsFile,
  hashKnownHostsText,
  removeKnownHostFile,
  removeKnownHostText,
} from '../../src/keys/known-hosts-edit.js';
import { KnownHosts, parseKnownHosts } from '../../src/keys/known-hosts.js';
import { parseOpenSshPublicKey } from '../../src/keys/public-key-text.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'fixtures');
const FIXTURE_KNOWN_HOSTS = join(FIXTURES, 'openssh-hostkeys', 'known_hosts');

function publicKey(name: string) {
  return parseOpenSshPublicKey(readFileSync(join(FIXTURES, 'openssh-keys', `${name}.pub`), 'utf8')).key;
}
const ED1 = publicKey('ed25519_1');
const ED2 = publicKey('ed25519_2');
const ECDSA1 = publicKey('ecdsa_1');
const RSA1 = publicKey('rsa_1');

function keyText(key: { type: string; blob: Buffer }): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** A file with every kind of line -H and -R treat differently. */
const SAMPLE = [
  '# a comment',
  `web.example.com,192.0.2.10,WWW.example.com ${keyText(ED1)} web key`,
  '',
  `[db.example.com]:5022 ${keyText(ECDSA1)}`,
  `*.wild.example.com,!no.wild.example.com ${keyText(RSA1)}`,
  `@revoked web.example.com ${keyText(ED2)}`,
  `@cert-authority *.example.com ${keyText(ECDSA1)}`,
  `web.example.com ${keyText(RSA1)}\tsecond key  for web`,
  `mail.example.com ${keyText(ED2)}`,
].join('\n') + '\n';

function withDir(run: (dir: string, t: TestContext) => Promise<void> | void): (t: TestContext) => Promise<void> {
  return async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tssh-kh-edit-'));
    try {
      await run(dir, t);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** Line numbers from ssh-keygen -F output (`# Host NAME found: line N …`). */
function foundLines(stdout: string): number[] {
  return [...stdout.matchAll(/^# Host .* found: line (\d+)/gm)].map((m) => Number(m[1]));
}

describe('hashing (-H)', () => {
  test('plain names become one hashed line each; wildcards, markers, hashed lines and comments stay', () => {
    const result = hashKnownHostsText(SAMPLE);
    assert.deepEqual(result.invalid, []);
    assert.equal(result.hashed, 6);
    const lines = result.text.split('\n');
    assert.equal(lines[0], '# a comment');
    assert.match(lines[1]!, new RegExp(`^\\|1\\|[^ ]+ ${keyText(ED1).replace(/[+/]/g, '\\$&')} web key$`));
    assert.match(lines[2]!, /^\|1\|/);
    assert.match(lines[3]!, /^\|1\|/);
    assert.equal(lines[4], '');
    assert.match(lines[5]!, /^\|1\|.* ecdsa-sha2-nistp256 /);
    assert.equal(lines[6], SAMPLE.split('\n')[4]);
    assert.equal(lines[7], SAMPLE.split('\n')[5]);
    assert.equal(lines[8], SAMPLE.split('\n')[6]);
    assert.match(lines[9]!, /\tsecond key {2}for web$/);

    const known = new KnownHosts([parseKnownHosts(result.text)]);
    assert.equal(known.lookup('web.example.com', 22, ED1).status, 'match');
    assert.equal(known.lookup('www.example.com', 22, ED1).status, 'match', 'names are lowercased before hashing');
    assert.equal(known.lookup('192.0.2.10', 22, ED1).status, 'match');
    assert.equal(known.lookup('db.example.com', 5022, ECDSA1).status, 'match');
    assert.equal(known.lookup('a.wild.example.com', 22, RSA1).status, 'match');
    assert.equal(known.lookup('web.example.com', 22, ED2).status, 'revoked');
    assert.equal(hashKnownHostsText(result.text).text, result.text, 'hashing again changes nothing');
  });

  test('invalid lines stop the rewrite and are listed', () => {
    const result = hashKnownHostsText(readFileSync(FIXTURE_KNOWN_HOSTS, 'utf8'));
    // Only what ssh-keygen itself rejects (it does not decode keys when rewriting).
    assert.deepEqual(
      result.invalid.map((b) => b.line),
      [37, 38, 39, 41],
    );
  });
});

describe('finding (-F)', () => {
  test('lines naming the host, markers included; hashed lines found by name', () => {
    assert.deepEqual(
      findKnownHostText(SAMPLE, 'web.example.com').map((f) => [f.line, f.marker]),
      [
        [2, undefined],
        [6, 'revoked'],
        [7, 'cert-authority'],
        [8, undefined],
      ],
    );
    assert.deepEqual(
      findKnownHostText(SAMPLE, '[db.example.com]:5022').map((f) => f.output),
      [[SAMPLE.split('\n')[3]]],
    );
    assert.deepEqual(findKnownHostText(SAMPLE, 'no.wild.example.com').map((f) => f.line), [7]);
    const hashed = hashKnownHostsText(SAMPLE).text;
    assert.deepEqual(findKnownHostText(hashed, '192.0.2.10').map((f) => f.line), [3]);
    // -H -F: plain lines shown hashed, the @cert-authority line (a pattern) as it is.
    const asHashed = findKnownHostText(SAMPLE, 'mail.example.com', { hash: true });
    assert.deepEqual(asHashed.map((f) => f.line), [7, 9]);
    assert.deepEqual(asHashed[0]!.output, [SAMPLE.split('\n')[6]]);
    assert.match(asHashed[1]!.output[0]!, /^\|1\|.* ssh-ed25519 /);
  });
});

describe('removing (-R)', () => {
  test('plain lines for the host go, markers and other hosts stay byte for byte', () => {
    const result = removeKnownHostText(SAMPLE, 'web.example.com');
    assert.deepEqual(result.removed, [2, 8]);
    const kept = SAMPLE.split('\n').filter((_, i) => i !== 1 && i !== 7).join('\n');
    assert.equal(result.text, kept);
    assert.deepEqual(removeKnownHostText(SAMPLE, 'nowhere.example.com').removed, []);
    const hashed = hashKnownHostsText(SAMPLE).text;
    assert.deepEqual(removeKnownHostText(hashed, '192.0.2.10').removed, [3]);
  });

  test(
    'files: .old backup, permissions kept, nothing touched when not found or invalid',
    withDir(async (dir) => {
      const path = join(dir, 'known_hosts');
      writeFileSync(path, SAMPLE);
      chmodSync(path, 0o640);
      assert.deepEqual(await removeKnownHostFile(path, 'nowhere.example.com'), { status: 'not-found' });
      assert.equal(existsSync(`${path}.old`), false);
      const result = await removeKnownHostFile(path, 'mail.example.com');
      assert.deepEqual(result, { status: 'updated', backup: `${path}.old`, removed: [9] });
      assert.equal(readFileSync(`${path}.old`, 'utf8'), SAMPLE);
      assert.equal(statSync(path).mode & 0o777, 0o640);
      assert.deepEqual(
        (await findKnownHostFile(path, 'mail.example.com')).map((f) => f.marker),
        ['cert-authority'],
        'only the CA line, which -R never removes, still names the host',
      );

      const broken = join(dir, 'broken');
      copyFileSync(FIXTURE_KNOWN_HOSTS, broken);
      const refused = await removeKnownHostFile(broken, 'sisyphus.example.com');
      assert.equal(refused.status, 'invalid');
      assert.equal(readFileSync(broken, 'utf8'), readFileSync(FIXTURE_KNOWN_HOSTS, 'utf8'));
      assert.equal((await hashKnownHostsFile(broken)).status, 'invalid');
      assert.equal(existsSync(`${broken}.old`), false);
    }),
  );
});

describe('against ssh-keygen', () => {
  test(
    '-H: theirs and ours agree line for line, each finds the other',
    withDir(async (dir, t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const keygen = peerPath('ssh-keygen');
      const theirs = join(dir, 'theirs');
      const ours = join(dir, 'ours');
      writeFileSync(theirs, SAMPLE);
      writeFileSync(ours, SAMPLE);
      const run = spawnSync(keygen, ['-H', '-f', theirs], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const result = await hashKnownHostsFile(ours);
      assert.equal(result.status, 'updated');
      assert.equal(readFileSync(`${ours}.old`, 'utf8'), readFileSync(`${theirs}.old`, 'utf8'));
      const theirLines = readFileSync(theirs, 'utf8').split('\n');
      const ourLines = readFileSync(ours, 'utf8').split('\n');
      assert.equal(ourLines.length, theirLines.length);
      ourLines.forEach((line, i) => {
        const theirLine = theirLines[i]!;
        if (line.startsWith('|1|')) {
          assert.ok(theirLine.startsWith('|1|'), `line ${i + 1}`);
          assert.equal(line.split(' ').slice(1).join(' '), theirLine.split(' ').slice(1).join(' '), `line ${i + 1}`);
        } else {
          assert.equal(line, theirLine, `line ${i + 1}`);
        }
      });
      // Our lookup on their file, their -F on ours.
      const known = new KnownHosts([parseKnownHosts(readFileSync(theirs, 'utf8'))]);
      assert.equal(known.lookup('www.example.com', 22, ED1).status, 'match');
      assert.equal(known.lookup('db.example.com', 5022, ECDSA1).status, 'match');
      for (const name of ['web.example.com', 'www.example.com', '192.0.2.10', '[db.example.com]:5022', 'mail.example.com', 'x.wild.example.com']) {
        const found = spawnSync(keygen, ['-F', name, '-f', ours], { encoding: 'utf8' });
        assert.equal(found.status, 0, name);
        assert.deepEqual(foundLines(found.stdout), (await findKnownHostFile(ours, name)).map((f) => f.line), name);
      }
    }),
  );

  test(
    '-R: ssh-keygen and ours leave identical files and backups',
    withDir(async (dir, t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const keygen = peerPath('ssh-keygen');
      // Half hashed, half plain, so both kinds of match are exercised.
      const mixed = SAMPLE + hashKnownHostsText(SAMPLE).text;
      for (const name of ['web.example.com', '192.0.2.10', '[db.example.com]:5022', 'b.wild.example.com', 'mail.example.com']) {
        const theirs = join(dir, 'theirs');
        const ours = join(dir, 'ours');
        for (const path of [theirs, ours, `${theirs}.old`, `${ours}.old`]) rmSync(path, { force: true });
        writeFileSync(theirs, mixed);
        writeFileSync(ours, mixed);
        const run = spawnSync(keygen, ['-R', name, '-f', theirs], { encoding: 'utf8' });
        assert.equal(run.status, 0, run.stderr);
        const result = await removeKnownHostFile(ours, name);
        assert.equal(result.status, 'updated', name);
        assert.equal(readFileSync(ours, 'utf8'), readFileSync(theirs, 'utf8'), name);
        assert.equal(readFileSync(`${ours}.old`, 'utf8'), readFileSync(`${theirs}.old`, 'utf8'), name);
        assert.equal(statSync(ours).mode & 0o777, statSync(theirs).mode & 0o777, name);
      }
    }),
  );

  test(
    'both refuse to rewrite the fixture file, which has invalid lines',
    withDir(async (dir, t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const keygen = peerPath('ssh-keygen');
      const theirs = join(dir, 'theirs');
      copyFileSync(FIXTURE_KNOWN_HOSTS, theirs);
      const run = spawnSync(keygen, ['-H', '-f', theirs], { encoding: 'utf8' });
      assert.equal(run.status, 1);
      const theirInvalid = [...run.stderr.matchAll(/:(\d+): invalid line/g)].map((m) => Number(m[1]));
      const ours = await hashKnownHostsFile(theirs);
      assert.ok(ours.status === 'invalid');
      assert.deepEqual(
        ours.invalid.map((b) => b.line),
        theirInvalid,
      );
    }),
  );
});
