import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyFormatError } from '../../src/errors.js';
import {
  appendKnownHost,
  formatKnownHostsLine,
  hashHostName,
  hostFieldMatches,
  KnownHosts,
  knownHostsName,
  loadKnownHostsFile,
  parseHashedHostName,
  parseKnownHosts,
  splitKnownHostsLine,
} from '../../src/keys/known-hosts.js';
import type { HostKeyLookup, KnownHostsFile } from '../../src/keys/known-hosts.js';
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

/** `type base64` of a key, for writing test files. */
function keyText(key: { type: string; blob: Buffer }): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tssh-known-hosts-'));
}

/** The status and the line(s) a lookup points at, for compact assertions. */
function summary(result: HostKeyLookup): string {
  switch (result.status) {
    case 'match':
    case 'revoked':
      return `${result.status} ${result.entry.line}`;
    case 'mismatch':
      return `mismatch ${result.expected.map((e) => e.line).join(',')}`;
    case 'unknown':
      return 'unknown';
  }
}

describe('the OpenSSH fixture known_hosts', () => {
  const file = parseKnownHosts(readFileSync(FIXTURE_KNOWN_HOSTS, 'utf8'), FIXTURE_KNOWN_HOSTS);
  const known = new KnownHosts([file]);
  const blobAt = (line: number): Buffer => file.entries.find((e) => e.line === line)!.blob;

  test('every valid line is an entry; bad lines are skipped with their numbers', () => {
    assert.deepEqual(
      file.entries.map((e) => e.line),
      [2, 3, 4, 7, 8, 9, 12, 13, 14, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 33, 34],
    );
    assert.deepEqual(
      file.invalid.map((b) => [b.line, b.reason]),
      [
        [37, 'unknown marker "@what"'],
        [38, 'no key after the host names'],
        [39, 'no key after the key type ssh-ed25519'],
        [40, 'invalid public key blob: no key type'],
        [41, 'unknown key type "ssh-XXX"'],
        [42, 'key type mismatch: the line says "ssh-rsa", the key is something else'],
      ],
    );
    assert.ok(file.invalid.every((b) => b.file === FIXTURE_KNOWN_HOSTS));
    const e3 = file.entries[1]!;
    assert.equal(e3.keyType, 'ssh-ed25519');
    assert.equal(e3.comment, 'ED25519 #1');
    assert.equal(e3.key?.type, 'ssh-ed25519');
    assert.equal(file.entries.find((e) => e.line === 33)?.marker, 'revoked');
    assert.equal(file.entries.find((e) => e.line === 34)?.marker, 'cert-authority');
    assert.ok(file.entries.find((e) => e.line === 17)?.hashed);
  });

  test('plain names, several keys per host', () => {
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, blobAt(2))), 'match 2');
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, blobAt(3))), 'match 3');
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, blobAt(4))), 'match 4');
    assert.equal(summary(known.lookup('SISYPHUS.Example.COM', 22, blobAt(3))), 'match 3', 'host names are case-insensitive');
  });

  test('host lists with addresses (IPv4 and IPv6)', () => {
    for (const host of ['prometheus.example.com', '192.0.2.1', '2001:db8::1']) {
      assert.equal(summary(known.lookup(host, 22, blobAt(8))), 'match 8', host);
    }
  });

  test('wildcards in names and addresses', () => {
    assert.equal(summary(known.lookup('zeus.example.com', 22, blobAt(13))), 'match 13');
    assert.equal(summary(known.lookup('192.0.2.200', 22, blobAt(12))), 'match 12');
    assert.equal(summary(known.lookup('2001:db8::77', 22, blobAt(14))), 'match 14');
    assert.equal(summary(known.lookup('example.com', 22, blobAt(13))), 'unknown');
  });

  test('hashed entries written by OpenSSH', () => {
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, blobAt(18))), 'match 18');
    assert.equal(summary(known.lookup('prometheus.example.com', 22, blobAt(24))), 'match 24');
    // Lines 24-26 hold one key under three hashed names: each name finds its own line.
    assert.equal(summary(known.lookup('192.0.2.1', 22, blobAt(25))), 'match 25');
    assert.equal(summary(known.lookup('2001:db8::1', 22, blobAt(26))), 'match 26');
  });

  test('@revoked wins; @cert-authority never vouches for a plain key', () => {
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, blobAt(33))), 'revoked 33');
    const ca = known.lookup('prometheus.example.com', 22, blobAt(34));
    assert.equal(ca.status, 'mismatch');
  });

  test('a key the host does not have: mismatch listing every known key, whatever its type', () => {
    assert.equal(summary(known.lookup('sisyphus.example.com', 22, ED1)), 'mismatch 2,3,4,12,13,14,17,18,19');
    const result = known.lookup('sisyphus.example.com', 22, ED1);
    assert.ok(result.status === 'mismatch');
    assert.ok(result.expected.every((e) => e.file === FIXTURE_KNOWN_HOSTS && e.marker === undefined));
  });

  test('unknown hosts, and ports other than 22', () => {
    assert.equal(summary(known.lookup('hades.example.org', 22, ED1)), 'unknown');
    assert.equal(summary(known.lookup('sisyphus.example.com', 2222, blobAt(3))), 'unknown');
  });

  test('key types known for a host, in file order', () => {
    assert.deepEqual(known.keyTypesFor('sisyphus.example.com', 22), ['ecdsa-sha2-nistp384', 'ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256']);
    assert.deepEqual(known.keyTypesFor('hades.example.org', 22), []);
  });
});

describe('names and hashing', () => {
  test('knownHostsName: [host]:port unless the port is 22, lowercased', () => {
    assert.equal(knownHostsName('Example.COM', 22), 'example.com');
    assert.equal(knownHostsName('example.com'), 'example.com');
    assert.equal(knownHostsName('127.0.0.1', 2222), '[127.0.0.1]:2222');
    assert.equal(knownHostsName('::1', 2222), '[::1]:2222');
  });

  test('|1|salt|hash is the base64 HMAC-SHA1 of the name keyed with the salt', () => {
    const salt = Buffer.alloc(20, 0x5a);
    const hashed = hashHostName('[127.0.0.1]:2222', salt);
    const expected = createHmac('sha1', salt).update('[127.0.0.1]:2222').digest('base64');
    assert.equal(hashed, `|1|${salt.toString('base64')}|${expected}`);
    const parsed = parseHashedHostName(hashed);
    assert.ok(parsed);
    assert.equal(hostFieldMatches(hashed, parsed, '[127.0.0.1]:2222'), true);
    assert.equal(hostFieldMatches(hashed, parsed, '127.0.0.1'), false);
    assert.notEqual(hashHostName('a'), hashHostName('a'), 'a fresh salt each time');
  });

  test('malformed hashed names make the line invalid', () => {
    assert.equal(parseHashedHostName('plain.example.com'), undefined);
    for (const bad of ['|2|AAAA|AAAA', '|1|AAAA|AAAA', '|1|', `|1|${Buffer.alloc(20).toString('base64')}|x|y`]) {
      assert.throws(() => parseHashedHostName(bad), KeyFormatError, bad);
    }
    const file = parseKnownHosts(`|1|AAAA|AAAA ${keyText(ED1)}\n`);
    assert.equal(file.entries.length, 0);
    assert.equal(file.invalid[0]?.line, 1);
  });
});

describe('lines', () => {
  test('[host]:port entries, and the plain name for port 22', () => {
    const file = parseKnownHosts(
      [
        `[127.0.0.1]:2222 ${keyText(ED1)}`,
        `127.0.0.1 ${keyText(ED2)}`,
        `[127.0.0.1]:22 ${keyText(ECDSA1)}`,
        `[::1]:2222,[localhost]:2222 ${keyText(RSA1)}`,
      ].join('\n'),
    );
    const known = new KnownHosts([file]);
    assert.equal(summary(known.lookup('127.0.0.1', 2222, ED1)), 'match 1');
    assert.equal(summary(known.lookup('127.0.0.1', 22, ED2)), 'match 2');
    assert.equal(summary(known.lookup('127.0.0.1', 22, ED1)), 'mismatch 2', '[host]:22 is never looked up');
    assert.equal(summary(known.lookup('127.0.0.1', 2223, ED1)), 'unknown');
    assert.equal(summary(known.lookup('::1', 2222, RSA1)), 'match 4');
    assert.equal(summary(known.lookup('LOCALHOST', 2222, RSA1)), 'match 4');
  });

  test('negated patterns exclude a host from a line', () => {
    const known = new KnownHosts([
      parseKnownHosts(`*.example.com,!secret.example.com ${keyText(ED1)}\nsecret.example.com ${keyText(ED2)}\n`),
    ]);
    assert.equal(summary(known.lookup('www.example.com', 22, ED1)), 'match 1');
    assert.equal(summary(known.lookup('secret.example.com', 22, ED1)), 'mismatch 2');
    assert.equal(summary(known.lookup('secret.example.com', 22, ED2)), 'match 2');
  });

  test('comments, blank lines, tabs, CRLF and markers with blanks', () => {
    const text = [
      '# comment',
      '',
      '   ',
      `\thost.example.com\t${keyText(ED1)}\tmy comment\r`,
      `   # indented comment`,
      `@revoked\t*  ${keyText(ED2)}`,
      `@revoked @revoked * ${keyText(ED2)}`,
      `@cert-authority *.example.com ${keyText(ECDSA1)} ca`,
      `host.example.com ${keyText(ED1).split(' ')[0]}`,
      `host.example.com 1024 35 12345`,
    ].join('\n');
    const file = parseKnownHosts(text);
    assert.deepEqual(
      file.entries.map((e) => [e.line, e.marker, e.comment]),
      [
        [4, undefined, 'my comment'],
        [6, 'revoked', ''],
        [8, 'cert-authority', 'ca'],
      ],
    );
    assert.deepEqual(
      file.invalid.map((b) => b.line),
      [7, 9, 10],
    );
    assert.equal(summary(new KnownHosts([file]).lookup('anything.org', 22, ED2)), 'revoked 6');
  });

  test('splitKnownHostsLine keeps the raw key for rewriting', () => {
    const split = splitKnownHostsLine(`@revoked a,b ${keyText(ED1)}  comment  here`);
    assert.ok(split.kind === 'entry');
    assert.equal(split.fields.marker, 'revoked');
    assert.equal(split.fields.hosts, 'a,b');
    assert.equal(split.fields.rawKey, `${keyText(ED1)}  comment  here`);
    assert.deepEqual(splitKnownHostsLine('# x'), { kind: 'comment' });
  });

  test('key types tssh cannot use are kept and still compared by blob', () => {
    const type = 'sk-ssh-ed25519@openssh.com';
    const parts = [Buffer.from(type), Buffer.alloc(32, 1), Buffer.from('ssh:')];
    const blob = Buffer.concat(parts.flatMap((p) => [Buffer.from([0, 0, 0, p.length]), p]));
    const file = parseKnownHosts(`fido.example.com ${type} ${blob.toString('base64')}\n`);
    assert.equal(file.entries[0]?.key, undefined);
    assert.equal(summary(new KnownHosts([file]).lookup('fido.example.com', 22, blob)), 'match 1');
    assert.equal(summary(new KnownHosts([file]).lookup('fido.example.com', 22, ED1)), 'mismatch 1');
  });
});

describe('several files', () => {
  test('user files then global files, merged; each entry keeps its file and line', async () => {
    const dir = tempDir();
    try {
      const user = join(dir, 'known_hosts');
      const global = join(dir, 'ssh_known_hosts');
      writeFileSync(user, `# user\nhost.example.com ${keyText(ED1)}\n`);
      writeFileSync(global, `host.example.com ${keyText(RSA1)}\n`);
      const known = await KnownHosts.load([user, join(dir, 'missing'), global]);
      assert.equal(known.files.length, 3);
      assert.deepEqual(known.files[1], { path: join(dir, 'missing'), entries: [], invalid: [] });
      const rsa = known.lookup('host.example.com', 22, RSA1);
      assert.ok(rsa.status === 'match');
      assert.equal(rsa.entry.file, global);
      assert.equal(rsa.entry.line, 1);
      const changed = known.lookup('host.example.com', 22, ED2);
      assert.ok(changed.status === 'mismatch');
      assert.deepEqual(
        changed.expected.map((e) => `${e.file}:${e.line}`),
        [`${user}:2`, `${global}:1`],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writing entries', () => {
  test('formatKnownHostsLine: lowercased name, key type and base64, no comment; hashed on request', () => {
    assert.equal(formatKnownHostsLine('[Example.com]:2222', ED1), `[example.com]:2222 ${keyText(ED1)}`);
    const hashed = formatKnownHostsLine('Example.com', ED1, { hash: true });
    assert.match(hashed, /^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}= ssh-ed25519 /);
    const file: KnownHostsFile = parseKnownHosts(hashed);
    assert.equal(summary(new KnownHosts([file]).lookup('example.com', 22, ED1)), 'match 1');
  });

  test('appendKnownHost creates the folder (0700) and file (0600) and adds a missing final newline', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'new', '.ssh', 'known_hosts');
      assert.equal(await appendKnownHost(path, 'a.example.com', ED1), 1);
      assert.equal(statSync(join(dir, 'new', '.ssh')).mode & 0o777, 0o700);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      writeFileSync(path, readFileSync(path, 'utf8').trimEnd());
      assert.equal(await appendKnownHost(path, '[B.example.com]:2200', ED2), 2);
      assert.equal(readFileSync(path, 'utf8'), `a.example.com ${keyText(ED1)}\n[b.example.com]:2200 ${keyText(ED2)}\n`);
      const loaded = await loadKnownHostsFile(path);
      assert.equal(loaded.entries.length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('against ssh-keygen', () => {
  test('names we hash are found by ssh-keygen -F; names it hashes are found by our lookup', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const keygen = peerPath('ssh-keygen');
    const dir = tempDir();
    try {
      // Ours → theirs.
      const ours = join(dir, 'ours');
      await appendKnownHost(ours, '[127.0.0.1]:2222', ED1, { hash: true });
      await appendKnownHost(ours, 'host.example.com', RSA1, { hash: true });
      for (const [name, line] of [['[127.0.0.1]:2222', 1], ['host.example.com', 2]] as const) {
        const found = spawnSync(keygen, ['-F', name, '-f', ours], { encoding: 'utf8' });
        assert.equal(found.status, 0, `${name}: ${found.stderr}`);
        assert.match(found.stdout, new RegExp(`^# Host ${name.replace(/[[\].]/g, '\\$&')} found: line ${line}`));
      }
      assert.equal(spawnSync(keygen, ['-F', '127.0.0.1', '-f', ours]).status, 1);

      // Theirs → ours.
      const theirs = join(dir, 'theirs');
      writeFileSync(theirs, `web.example.com,192.0.2.10 ${keyText(ED2)}\n[db.example.com]:5022 ${keyText(ECDSA1)}\n`);
      const hashed = spawnSync(keygen, ['-H', '-f', theirs], { encoding: 'utf8' });
      assert.equal(hashed.status, 0, hashed.stderr);
      const file = await loadKnownHostsFile(theirs);
      assert.equal(file.entries.length, 3);
      assert.ok(file.entries.every((e) => e.hashed !== undefined));
      const known = new KnownHosts([file]);
      assert.equal(summary(known.lookup('web.example.com', 22, ED2)), 'match 1');
      assert.equal(summary(known.lookup('192.0.2.10', 22, ED2)), 'match 2');
      assert.equal(summary(known.lookup('db.example.com', 5022, ECDSA1)), 'match 3');
      assert.equal(summary(known.lookup('db.example.com', 22, ECDSA1)), 'unknown');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
