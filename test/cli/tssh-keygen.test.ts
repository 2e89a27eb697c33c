/**
 * tssh-keygen, run as a program (the bundled dist/bin/tssh-keygen.js) in a scratch folder, and
 * compared with OpenSSH's ssh-keygen on the same files: keys each one writes are read by the other,
 * fingerprints and known_hosts edits come out byte for byte the same, and errors give a clear
 * message and ssh-keygen's exit status.
 *
 * Tests needing ssh-keygen follow test/helpers/peers.ts: skipped when it is absent, failed under
 * TSSH_REQUIRE_PEERS=1.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { havePeers, missingPeers, peerPath, peersRequired } from '../helpers/peers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PROGRAM = join(ROOT, 'dist', 'bin', 'tssh-keygen.js');
const KEYS = join(ROOT, 'test', 'fixtures', 'openssh-keys');
const KNOWN_HOSTS = join(ROOT, 'test', 'fixtures', 'openssh-hostkeys', 'known_hosts');
const FIXTURE_PASSPHRASE = readFileSync(join(KEYS, 'pw'), 'utf8').trim();

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  /** With OpenSSH's log lines' CR LF turned into LF (tssh-keygen ends lines with LF alone). */
  readonly stderr: string;
}

interface RunOptions {
  readonly cwd: string;
  /** Written to stdin, which is then closed; stdin is empty otherwise (never a terminal). */
  readonly input?: string;
}

function runProgram(command: string, args: readonly string[], options: RunOptions): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr: stderr.replace(/\r\n/g, '\n') }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** tssh-keygen with these arguments. */
function ours(args: readonly string[], options: RunOptions): Promise<Result> {
  return runProgram(process.execPath, [PROGRAM, ...args], options);
}

/** OpenSSH's ssh-keygen with these arguments. */
function theirs(args: readonly string[], options: RunOptions): Promise<Result> {
  return runProgram(peerPath('ssh-keygen'), args, options);
}

/** A scratch folder, removed when the test ends. */
function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tssh-keygen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Copy a fixture key in, 0600 (the fixtures are read-only, and OpenSSH refuses private keys others can read). */
function copyFixture(dir: string, name: string, as = name): string {
  const target = join(dir, as);
  copyFileSync(join(KEYS, name), target);
  chmodSync(target, 0o600);
  return target;
}

function ok(result: Result, what: string): Result {
  assert.equal(result.status, 0, `${what} failed (${String(result.status)}): ${result.stderr}`);
  return result;
}

/** `type base64` of a public key line, without the comment. */
function keyPart(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}

const TYPES: readonly { readonly name: string; readonly args: readonly string[]; readonly keyType: string }[] = [
  { name: 'ed25519', args: ['-t', 'ed25519'], keyType: 'ssh-ed25519' },
  { name: 'ecdsa-256', args: ['-t', 'ecdsa'], keyType: 'ecdsa-sha2-nistp256' },
  { name: 'ecdsa-384', args: ['-t', 'ecdsa', '-b', '384'], keyType: 'ecdsa-sha2-nistp384' },
  { name: 'ecdsa-521', args: ['-t', 'ecdsa', '-b', '521'], keyType: 'ecdsa-sha2-nistp521' },
  { name: 'rsa-2048', args: ['-t', 'rsa', '-b', '2048'], keyType: 'ssh-rsa' },
];

/**
 * bcrypt rounds for keys ssh-keygen encrypts: its default 16 for Ed25519, 4 for the others, which
 * saves a few seconds of bcrypt in JavaScript and exercises a non-default cost.
 */
function fewerRounds(typeName: string): string[] {
  return typeName === 'ed25519' ? [] : ['-a', '4'];
}

// ---- Generation ---------------------------------------------------------------------------------

describe('tssh-keygen generates keys', { concurrency: true }, () => {
  for (const type of TYPES) {
    for (const passphrase of ['', 'correct horse']) {
      test(`${type.name}${passphrase === '' ? '' : ' with a passphrase'}: ssh-keygen reads it, output as ssh-keygen's`, async (t) => {
        if (!havePeers(t, 'ssh-keygen')) return;
        const dir = scratch(t);
        const made = ok(await ours([...type.args, '-f', 'key', '-N', passphrase, '-C', 'test key'], { cwd: dir }), 'generate');

        assert.equal(statSync(join(dir, 'key')).mode & 0o777, 0o600);
        assert.equal(statSync(join(dir, 'key.pub')).mode & 0o777, 0o644);
        const publicLine = readFileSync(join(dir, 'key.pub'), 'utf8');
        assert.match(publicLine, new RegExp(`^${type.keyType} [A-Za-z0-9+/=]+ test key\\n$`));
        assert.match(readFileSync(join(dir, 'key'), 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);

        // ssh-keygen opens the private key (only with the passphrase, when there is one).
        const read = ok(await theirs(['-y', '-f', 'key', '-P', passphrase], { cwd: dir }), 'ssh-keygen -y');
        assert.equal(read.stdout, publicLine);
        if (passphrase !== '') {
          const refused = await theirs(['-y', '-f', 'key', '-P', 'wrong'], { cwd: dir });
          assert.equal(refused.status, 255);
          assert.match(refused.stderr, /incorrect passphrase/);
        }

        // What we printed is what ssh-keygen prints for the key: the same fingerprint and picture.
        const verbose = ok(await theirs(['-lv', '-f', 'key.pub'], { cwd: dir }), 'ssh-keygen -lv');
        const [line, ...art] = verbose.stdout.trimEnd().split('\n');
        const fingerprint = line!.split(' ')[1]!;
        assert.equal(
          made.stdout,
          [
            `Generating public/private ${type.args[1]} key pair.`,
            'Your identification has been saved in key',
            'Your public key has been saved in key.pub',
            'The key fingerprint is:',
            `${fingerprint} test key`,
            "The key's randomart image is:",
            ...art,
            '',
          ].join('\n'),
        );
      });
    }
  }

  for (const format of ['PEM', 'PKCS8'] as const) {
    for (const type of TYPES.filter((t) => t.name === 'ecdsa-384' || t.name === 'rsa-2048' || t.name === 'ed25519')) {
      test(`${type.name} -m ${format}: the format ssh-keygen writes, and it reads ours`, async (t) => {
        if (!havePeers(t, 'ssh-keygen')) return;
        const dir = scratch(t);
        ok(await ours([...type.args, '-m', format, '-f', 'key', '-N', 'secret1', '-q'], { cwd: dir }), 'generate');
        const text = readFileSync(join(dir, 'key'), 'utf8');
        // Ed25519 has no PEM form ssh-keygen 9.2 reads: it stays in OpenSSH's format, as ssh-keygen does it.
        const label =
          type.name === 'ed25519'
            ? 'OPENSSH PRIVATE KEY'
            : format === 'PKCS8'
              ? 'ENCRYPTED PRIVATE KEY'
              : type.name === 'rsa-2048'
                ? 'RSA PRIVATE KEY'
                : 'EC PRIVATE KEY';
        assert.ok(text.startsWith(`-----BEGIN ${label}-----\n`), text.split('\n')[0]);
        const read = ok(await theirs(['-y', '-f', 'key', '-P', 'secret1'], { cwd: dir }), 'ssh-keygen -y');
        assert.equal(keyPart(read.stdout), keyPart(readFileSync(join(dir, 'key.pub'), 'utf8')));
      });
    }
  }

  test('-q prints nothing; the comment defaults to user@hostname', async (t) => {
    const dir = scratch(t);
    const made = ok(await ours(['-q', '-t', 'ed25519', '-f', 'key', '-N', ''], { cwd: dir }), 'generate');
    assert.equal(made.stdout, '');
    assert.equal(made.stderr, '');
    const comment = readFileSync(join(dir, 'key.pub'), 'utf8').trim().split(' ').slice(2).join(' ');
    assert.equal(comment, `${userInfo().username}@${hostname()}`);
  });

  test('an existing key is not replaced without a yes', async (t) => {
    const dir = scratch(t);
    ok(await ours(['-q', '-t', 'ed25519', '-f', 'key', '-N', ''], { cwd: dir }), 'generate');
    const before = readFileSync(join(dir, 'key'), 'utf8');
    for (const input of ['', 'n\n', 'no\n']) {
      const refused = await ours(['-q', '-t', 'ed25519', '-f', 'key', '-N', ''], { cwd: dir, input });
      assert.equal(refused.status, 1, `answer ${JSON.stringify(input)}`);
      assert.equal(refused.stdout, 'key already exists.\nOverwrite (y/n)? ');
      assert.equal(readFileSync(join(dir, 'key'), 'utf8'), before);
    }
    ok(await ours(['-q', '-t', 'ed25519', '-f', 'key', '-N', ''], { cwd: dir, input: 'y\n' }), 'overwrite');
    assert.notEqual(readFileSync(join(dir, 'key'), 'utf8'), before);
  });

  test('without -N the passphrase is asked twice, again when the two differ', async (t) => {
    const dir = scratch(t);
    const made = ok(await ours(['-q', '-t', 'ed25519', '-f', 'key'], { cwd: dir, input: 'one\ntwo\nfinal pass\nfinal pass\n' }), 'generate');
    assert.equal(made.stdout, 'Passphrases do not match.  Try again.\n');
    assert.equal(made.stderr, 'Enter passphrase (empty for no passphrase): Enter same passphrase again: '.repeat(2));
    ok(await ours(['-y', '-f', 'key', '-P', 'final pass'], { cwd: dir }), 'opens with the second answer');
    const wrong = await ours(['-y', '-f', 'key', '-P', 'one'], { cwd: dir });
    assert.equal(wrong.status, 255);
  });

  test('-t takes short names in any case and protocol names, which imply the curve', async (t) => {
    const dir = scratch(t);
    for (const [type, expected] of [
      ['RSA', 'ssh-rsa'],
      ['ssh-ed25519', 'ssh-ed25519'],
      ['ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp384'],
      ['EcDsA', 'ecdsa-sha2-nistp256'],
    ] as const) {
      const made = ok(await ours(['-t', type, ...(expected === 'ssh-rsa' ? ['-b', '2048'] : []), '-f', type, '-N', ''], { cwd: dir }), type);
      assert.ok(made.stdout.startsWith(`Generating public/private ${type} key pair.\n`));
      assert.ok(readFileSync(join(dir, `${type}.pub`), 'utf8').startsWith(`${expected} `), type);
    }
  });

  test('without -f the file name is asked, ~/.ssh/id_<type> proposed', async (t) => {
    const dir = scratch(t);
    const made = ok(await ours(['-t', 'ecdsa', '-N', ''], { cwd: dir, input: 'chosen\n' }), 'generate');
    assert.ok(made.stdout.includes(`Enter file in which to save the key (${userInfo().homedir}/.ssh/id_ecdsa): `));
    assert.ok(existsSync(join(dir, 'chosen.pub')));
    // No answer at all: nothing is written, status 1 (as ssh-keygen).
    const unanswered = await ours(['-t', 'ed25519', '-N', ''], { cwd: dir });
    assert.equal(unanswered.status, 1);
    const listed = ok(await ours(['-l'], { cwd: dir, input: 'chosen\n' }), '-l asking');
    assert.ok(listed.stdout.startsWith(`Enter file in which the key is (${userInfo().homedir}/.ssh/id_rsa): 256 SHA256:`));
  });

  test('key sizes and types ssh-keygen refuses (and RSA below 2048) are refused', async (t) => {
    const dir = scratch(t);
    const cases: readonly [readonly string[], string][] = [
      [['-t', 'rsa', '-b', '1024'], 'Invalid RSA key length: minimum is 2048 bits'],
      [['-t', 'rsa', '-b', '20000'], 'Invalid RSA key length: maximum is 16384 bits'],
      [['-t', 'ecdsa', '-b', '300'], 'Invalid ECDSA key length: valid lengths are 256, 384 or 521 bits'],
      [['-t', 'foo'], 'unknown key type foo'],
      [['-b', 'many'], 'Bits has bad value many (invalid)'],
    ];
    for (const [args, message] of cases) {
      const refused = await ours([...args, '-f', 'key', '-N', ''], { cwd: dir });
      assert.equal(refused.status, 255, args.join(' '));
      assert.equal(refused.stderr, `${message}\n`);
      assert.equal(existsSync(join(dir, 'key')), false);
    }
  });
});

// ---- Reading keys ssh-keygen wrote --------------------------------------------------------------

describe('tssh-keygen -y reads the keys ssh-keygen writes', { concurrency: true }, () => {
  for (const type of TYPES) {
    for (const format of ['openssh', 'PEM', 'PKCS8'] as const) {
      if (type.name === 'ed25519' && format !== 'openssh') continue;
      test(`${type.name}, ${format}, plain and encrypted`, async (t) => {
        if (!havePeers(t, 'ssh-keygen')) return;
        const dir = scratch(t);
        const formatArgs = format === 'openssh' ? [] : ['-m', format];
        for (const passphrase of ['', 'secret passphrase']) {
          const file = passphrase === '' ? 'plain' : 'encrypted';
          ok(await theirs([...type.args, ...formatArgs, ...fewerRounds(type.name), '-q', '-f', file, '-N', passphrase, '-C', 'their key'], { cwd: dir }), 'ssh-keygen');
          const expected = ok(await theirs(['-y', '-f', file, '-P', passphrase], { cwd: dir }), 'ssh-keygen -y').stdout;
          const read = ok(await ours(['-y', '-f', file, '-P', passphrase], { cwd: dir }), 'tssh-keygen -y');
          assert.equal(read.stdout, expected);
          if (passphrase !== '') {
            // The passphrase typed at the prompt (stdin here) works as -P does.
            const prompted = ok(await ours(['-y', '-f', file], { cwd: dir, input: `${passphrase}\n` }), 'prompted');
            assert.equal(prompted.stdout, expected);
            assert.equal(prompted.stderr, 'Enter passphrase: ');
          }
        }
      });
    }
  }

  test('OpenSSH regress keys, plain and encrypted', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const dir = scratch(t);
    for (const name of ['ecdsa_1', 'ecdsa_1_pw', 'ecdsa_n', 'ecdsa_n_pw', 'ed25519_1', 'ed25519_1_pw', 'rsa_1', 'rsa_1_pw', 'rsa_n', 'rsa_n_pw']) {
      copyFixture(dir, name);
      const args = ['-y', '-f', name, '-P', FIXTURE_PASSPHRASE];
      const expected = await theirs(args, { cwd: dir });
      const read = await ours(args, { cwd: dir });
      assert.deepEqual(read, expected, name);
    }
  });
});

// ---- Fingerprints -------------------------------------------------------------------------------

/** Files -l reads: public keys, certificates, private keys (with and without .pub), lists of keys. */
const FINGERPRINTED = [
  'ecdsa_1.pub',
  'ecdsa_1',
  'ecdsa_1-cert.pub',
  'ecdsa_n_pw',
  'ed25519_1.pub',
  'ed25519_1',
  'ed25519_1-cert.pub',
  'ed25519_1_pw',
  'ed25519_2',
  'rsa_1',
  'rsa_1-cert.pub',
  'rsa_1_pw',
  'rsa_2.pub',
  'rsa_n',
  'known_hosts',
  'authorized_keys',
];

function fingerprintFolder(t: TestContext): string {
  const dir = scratch(t);
  for (const name of FINGERPRINTED) {
    if (name === 'known_hosts') copyFileSync(KNOWN_HOSTS, join(dir, name));
    else if (name !== 'authorized_keys') copyFixture(dir, name);
  }
  // A .pub beside a private key is where ssh-keygen takes the comment from.
  for (const name of ['ecdsa_1', 'ed25519_1', 'rsa_1']) copyFixture(dir, `${name}.pub`);
  const line = (name: string): string => readFileSync(join(KEYS, `${name}.pub`), 'utf8').trim();
  writeFileSync(
    join(dir, 'authorized_keys'),
    [
      '# options, quoted blanks, comments',
      line('ed25519_1'),
      `command="echo hello world",no-pty ${line('rsa_1')}`,
      `  from="192.0.2.*" ${line('ecdsa_1')}`,
      'not a key at all',
      `restrict ${keyPart(line('ed25519_2'))}`,
      '',
    ].join('\n'),
  );
  return dir;
}

describe('tssh-keygen -l prints what ssh-keygen -l prints', { concurrency: true }, () => {
  for (const flags of [['-l'], ['-l', '-E', 'md5'], ['-lv'], ['-lv', '-E', 'md5'], ['-B']]) {
    test(flags.join(' '), async (t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const dir = fingerprintFolder(t);
      for (const name of FINGERPRINTED) {
        const expected = await theirs([...flags, '-f', name], { cwd: dir });
        const printed = await ours([...flags, '-f', name], { cwd: dir });
        assert.equal(printed.status, expected.status, `${name}: ${printed.stderr}`);
        assert.equal(printed.stdout, expected.stdout, name);
      }
    });
  }

  test('-l -f - reads the keys from stdin', async (t) => {
    const dir = scratch(t);
    const names = ['rsa_1', 'ed25519_1'];
    const lines = names.map((name) => readFileSync(join(KEYS, `${name}.pub`), 'utf8').trim());
    const printed = ok(await ours(['-l', '-f', '-'], { cwd: dir, input: `${lines.join('\n')}\n` }), '-l -f -');
    const expected = names.map((name, i) => {
      const comment = lines[i]!.split(' ').slice(2).join(' ');
      const [bits, label] = name === 'rsa_1' ? ['1024', 'RSA'] : ['256', 'ED25519'];
      return `${bits} ${readFileSync(join(KEYS, `${name}.fp`), 'utf8').trim()} ${comment} (${label})\n`;
    });
    assert.equal(printed.stdout, expected.join(''));
  });
});

// ---- Changing a passphrase ------------------------------------------------------------------------

describe('tssh-keygen -p changes the passphrase', { concurrency: true }, () => {
  for (const type of TYPES) {
    test(`${type.name}: ssh-keygen opens the key with the new passphrase only, comment kept`, async (t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const dir = scratch(t);
      ok(await theirs([...type.args, ...fewerRounds(type.name), '-q', '-f', 'key', '-N', 'old passphrase', '-C', 'kept comment'], { cwd: dir }), 'ssh-keygen');
      const changed = ok(await ours(['-p', '-f', 'key', '-P', 'old passphrase', '-N', 'new passphrase'], { cwd: dir }), '-p');
      assert.equal(changed.stdout, "Key has comment 'kept comment'\nYour identification has been saved with the new passphrase.\n");
      assert.equal(statSync(join(dir, 'key')).mode & 0o777, 0o600);
      const read = ok(await theirs(['-y', '-f', 'key', '-P', 'new passphrase'], { cwd: dir }), 'ssh-keygen -y -P new');
      assert.equal(read.stdout, readFileSync(join(dir, 'key.pub'), 'utf8'));
      const old = await theirs(['-y', '-f', 'key', '-P', 'old passphrase'], { cwd: dir });
      assert.equal(old.status, 255);
    });
  }

  test('the passphrases asked on stdin; removing the passphrase; a mismatch stops', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const dir = scratch(t);
    ok(await ours(['-q', '-t', 'ed25519', '-f', 'key', '-N', 'first', '-C', 'c'], { cwd: dir }), 'generate');
    const asked = ok(await ours(['-p', '-f', 'key'], { cwd: dir, input: 'first\nsecond\nsecond\n' }), '-p asking');
    assert.equal(asked.stderr, 'Enter old passphrase: Enter new passphrase (empty for no passphrase): Enter same passphrase again: ');
    ok(await theirs(['-y', '-f', 'key', '-P', 'second'], { cwd: dir }), 'new passphrase');

    const mismatch = await ours(['-p', '-f', 'key', '-P', 'second'], { cwd: dir, input: 'a\nb\n' });
    assert.equal(mismatch.status, 1);
    assert.match(mismatch.stdout, /Pass phrases do not match\.  Try again\.\n$/);

    ok(await ours(['-p', '-f', 'key', '-P', 'second', '-N', ''], { cwd: dir }), '-p to none');
    assert.match(readFileSync(join(dir, 'key'), 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    ok(await theirs(['-y', '-f', 'key', '-P', ''], { cwd: dir }), 'unencrypted now');
  });

  test('a PEM key stays PEM; -m PEM converts an OpenSSH key', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const dir = scratch(t);
    ok(await theirs(['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-q', '-f', 'pem', '-N', 'old secret'], { cwd: dir }), 'ssh-keygen');
    const changed = ok(await ours(['-p', '-f', 'pem', '-P', 'old secret', '-N', 'new secret'], { cwd: dir }), '-p');
    // PEM files carry no comment, so there is none to show.
    assert.equal(changed.stdout, 'Your identification has been saved with the new passphrase.\n');
    assert.match(readFileSync(join(dir, 'pem'), 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n/);
    ok(await theirs(['-y', '-f', 'pem', '-P', 'new secret'], { cwd: dir }), 'ssh-keygen reads it');

    ok(await ours(['-q', '-t', 'ecdsa', '-f', 'ec', '-N', 'old secret'], { cwd: dir }), 'generate');
    ok(await ours(['-p', '-m', 'PEM', '-f', 'ec', '-P', 'old secret', '-N', 'new secret'], { cwd: dir }), '-p -m PEM');
    assert.match(readFileSync(join(dir, 'ec'), 'utf8'), /^-----BEGIN EC PRIVATE KEY-----\n/);
    const read = ok(await theirs(['-y', '-f', 'ec', '-P', 'new secret'], { cwd: dir }), 'ssh-keygen reads it');
    assert.equal(keyPart(read.stdout), keyPart(readFileSync(join(dir, 'ec.pub'), 'utf8')));
  });
});

// ---- known_hosts --------------------------------------------------------------------------------

/** The fixture without its deliberately invalid lines (from "# Some invalid lines" on), which block rewrites. */
function validKnownHosts(): string {
  const text = readFileSync(KNOWN_HOSTS, 'utf8');
  return text.slice(0, text.indexOf('# Some invalid lines'));
}

/** Run the same edit with both programs on copies of `text` in the same folder, named `known_hosts` in turn. */
async function editBoth(t: TestContext, text: string, args: readonly string[]): Promise<{ mine: Result; theirs: Result; myFile: string; theirFile: string; myOld?: string; theirOld?: string }> {
  const results: { result: Result; file: string; old?: string }[] = [];
  for (const run of [theirs, ours]) {
    const dir = scratch(t);
    writeFileSync(join(dir, 'known_hosts'), text, { mode: 0o640 });
    const result = await run([...args, '-f', 'known_hosts'], { cwd: dir });
    const oldPath = join(dir, 'known_hosts.old');
    results.push({
      result,
      file: readFileSync(join(dir, 'known_hosts'), 'utf8'),
      ...(existsSync(oldPath) ? { old: readFileSync(oldPath, 'utf8') } : {}),
    });
    if (existsSync(oldPath)) assert.equal(statSync(join(dir, 'known_hosts')).mode & 0o777, 0o640 & 0o644, 'mode kept, limited to 0644');
  }
  const [their, mine] = results as [(typeof results)[0], (typeof results)[0]];
  return { mine: mine.result, theirs: their.result, myFile: mine.file, theirFile: their.file, myOld: mine.old, theirOld: their.old };
}

/** Hashed names differ by their random salts: compare lines with each `|1|salt|hash` replaced by a mark. */
function withoutHashes(text: string): string {
  return text.replace(/\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+/g, '|1|…');
}

describe('tssh-keygen -F, -R and -H do what ssh-keygen does', { concurrency: true }, () => {
  for (const args of [
    ['-F', 'sisyphus.example.com'],
    ['-F', 'prometheus.example.com', '-l'],
    ['-F', 'prometheus.example.com', '-l', '-E', 'md5'],
    ['-F', '192.0.2.1', '-lv'],
    ['-F', 'sisyphus.example.com', '-q'],
    ['-F', 'nowhere.example.com'],
  ]) {
    test(args.join(' '), async (t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const dir = scratch(t);
      copyFileSync(KNOWN_HOSTS, join(dir, 'known_hosts'));
      const expected = await theirs([...args, '-f', 'known_hosts'], { cwd: dir });
      const found = await ours([...args, '-f', 'known_hosts'], { cwd: dir });
      assert.equal(found.status, expected.status);
      assert.equal(found.stdout, expected.stdout);
    });
  }

  test('-F 192.0.2.1 -H: the found lines hashed, one per name', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const dir = scratch(t);
    copyFileSync(KNOWN_HOSTS, join(dir, 'known_hosts'));
    const args = ['-F', '192.0.2.1', '-H', '-f', 'known_hosts'];
    const expected = ok(await theirs(args, { cwd: dir }), 'ssh-keygen');
    const found = ok(await ours(args, { cwd: dir }), 'tssh-keygen');
    assert.equal(withoutHashes(found.stdout), withoutHashes(expected.stdout));
    // Lines 7-9 name three hosts each: each becomes three lines, one hashed name each, salted afresh.
    const names = ['prometheus.example.com', '192.0.2.1', '2001:db8::1'];
    const sections = found.stdout.split(/^# Host .*\n/m).filter((section) => section.split('\n').length === 4);
    assert.equal(sections.length, 3);
    for (const section of sections) {
      section.trimEnd().split('\n').forEach((line, index) => {
        const [, , salt, hash] = line.split(' ')[0]!.split('|');
        const name = names[index]!;
        assert.equal(createHmac('sha1', Buffer.from(salt!, 'base64')).update(name).digest('base64'), hash, `${name}: ${line}`);
      });
    }
  });

  for (const args of [['-R', 'prometheus.example.com'], ['-R', '192.0.2.1', '-q'], ['-R', 'nowhere.example.com']]) {
    test(`${args.join(' ')}: same output, same file, same backup`, async (t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const edited = await editBoth(t, validKnownHosts(), args);
      assert.deepEqual(edited.mine, edited.theirs);
      assert.equal(edited.myFile, edited.theirFile);
      assert.equal(edited.myOld, edited.theirOld);
    });
  }

  test('-H: same output, same lines but for the salts, hashes ssh-keygen finds', async (t) => {
    if (!havePeers(t, 'ssh-keygen')) return;
    const edited = await editBoth(t, validKnownHosts(), ['-H']);
    assert.deepEqual(edited.mine, edited.theirs);
    assert.equal(edited.myOld, validKnownHosts());
    assert.equal(withoutHashes(edited.myFile), withoutHashes(edited.theirFile));
    // ssh-keygen finds each host on the same lines of our file as of its own.
    const dir = scratch(t);
    writeFileSync(join(dir, 'mine'), edited.myFile);
    writeFileSync(join(dir, 'theirs'), edited.theirFile);
    for (const host of ['sisyphus.example.com', 'prometheus.example.com', '192.0.2.1', '2001:db8::1']) {
      const inMine = await theirs(['-F', host, '-f', 'mine'], { cwd: dir });
      const inTheirs = await theirs(['-F', host, '-f', 'theirs'], { cwd: dir });
      assert.equal(inMine.status, 0, host);
      assert.equal(withoutHashes(inMine.stdout), withoutHashes(inTheirs.stdout), host);
    }
  });

  for (const args of [['-H'], ['-R', 'sisyphus.example.com']]) {
    test(`${args.join(' ')} on a file with invalid lines: refused, unchanged, same messages`, async (t) => {
      if (!havePeers(t, 'ssh-keygen')) return;
      const original = readFileSync(KNOWN_HOSTS, 'utf8');
      const edited = await editBoth(t, original, args);
      assert.equal(edited.mine.status, 1);
      assert.deepEqual(edited.mine, edited.theirs);
      assert.match(edited.mine.stderr, /known_hosts is not a valid known_hosts file\.\nNot replacing existing known_hosts file because of errors\n$/);
      assert.equal(edited.myFile, original);
      assert.equal(edited.myOld, undefined);
    });
  }
});

// ---- Export and import --------------------------------------------------------------------------

describe('tssh-keygen -e and -i round-trip with ssh-keygen', { concurrency: true }, () => {
  for (const name of ['ed25519_1', 'ecdsa_1', 'rsa_1']) {
    for (const format of ['RFC4716', 'PKCS8', 'PEM'] as const) {
      test(`${name} -m ${format}`, async (t) => {
        if (!havePeers(t, 'ssh-keygen')) return;
        const dir = scratch(t);
        copyFixture(dir, `${name}.pub`);
        copyFixture(dir, `${name}_pw`);
        const expected = await theirs(['-e', '-m', format, '-f', `${name}.pub`], { cwd: dir });
        const exported = await ours(['-e', '-m', format, '-f', `${name}.pub`], { cwd: dir });
        assert.equal(exported.status, expected.status);
        assert.equal(exported.stdout, expected.stdout);
        if (expected.status !== 0) {
          assert.match(exported.stderr, /unsupported key type ED25519/);
          return;
        }
        // From the encrypted private key too: an OpenSSH file keeps its public half in the clear, so
        // no passphrase is needed; a PEM file has to be opened with it.
        const passphrase = name === 'ed25519_1' ? [] : ['-P', FIXTURE_PASSPHRASE];
        const fromPrivate = ok(await ours(['-e', '-m', format, '-f', `${name}_pw`, ...passphrase], { cwd: dir }), '-e private');
        assert.equal(fromPrivate.stdout, expected.stdout);

        writeFileSync(join(dir, 'exported'), exported.stdout);
        const line = keyPart(readFileSync(join(dir, `${name}.pub`), 'utf8'));
        // ssh-keygen -m PEM reads only RSA's PKCS#1 form; an ECDSA key exported as PEM is SPKI, read as PKCS8.
        const importFormat = format === 'PEM' && name === 'ecdsa_1' ? 'PKCS8' : format;
        assert.equal(ok(await theirs(['-i', '-m', importFormat, '-f', 'exported'], { cwd: dir }), 'ssh-keygen -i').stdout, `${line}\n`);
        assert.equal(ok(await ours(['-i', '-m', format, '-f', 'exported'], { cwd: dir }), 'tssh-keygen -i').stdout, `${line}\n`);
      });
    }
  }

  test('-i without -m reads RFC 4716 and refuses anything else clearly', async (t) => {
    const dir = scratch(t);
    copyFixture(dir, 'ed25519_1.pub');
    const exported = ok(await ours(['-e', '-f', 'ed25519_1.pub'], { cwd: dir }), '-e');
    assert.match(exported.stdout, new RegExp(`^---- BEGIN SSH2 PUBLIC KEY ----\\nComment: "256-bit ED25519, converted by ${userInfo().username}@${hostname()} from OpenSSH"\\n`));
    writeFileSync(join(dir, 'exported'), exported.stdout);
    const imported = ok(await ours(['-i', '-f', 'exported'], { cwd: dir }), '-i');
    assert.equal(imported.stdout, `${keyPart(readFileSync(join(KEYS, 'ed25519_1.pub'), 'utf8'))}\n`);
    const refused = await ours(['-i', '-f', 'ed25519_1.pub'], { cwd: dir });
    assert.equal(refused.status, 255);
    assert.match(refused.stderr, /^ed25519_1\.pub is not an RFC 4716 public key: /);
  });
});

// ---- Errors -------------------------------------------------------------------------------------

describe('tssh-keygen errors: clear messages, ssh-keygen\'s exit statuses', { concurrency: true }, () => {
  /** Both programs' statuses agree; returns ours. */
  async function sameStatus(dir: string, args: readonly string[], input?: string): Promise<Result> {
    const mine = await ours(args, { cwd: dir, input });
    // Our own checks run everywhere; the comparison where ssh-keygen is (always under TSSH_REQUIRE_PEERS=1).
    if (missingPeers('ssh-keygen') === undefined || peersRequired()) {
      const expected = await theirs(args, { cwd: dir, input });
      assert.equal(mine.status, expected.status, `${args.join(' ')}: ssh-keygen ${String(expected.status)} (${expected.stderr.trim()}), ours ${String(mine.status)}`);
    }
    return mine;
  }

  test('a wrong passphrase', async (t) => {
    const dir = scratch(t);
    copyFixture(dir, 'ed25519_1_pw');
    const wrong = await sameStatus(dir, ['-y', '-f', 'ed25519_1_pw', '-P', 'not it']);
    assert.equal(wrong.status, 255);
    assert.equal(wrong.stdout, '');
    assert.equal(wrong.stderr, 'Load key "ed25519_1_pw": incorrect passphrase supplied to decrypt private key\n');
    // No -P and nothing typed: the prompt, then the same refusal.
    const none = await sameStatus(dir, ['-y', '-f', 'ed25519_1_pw']);
    assert.equal(none.stderr, 'Enter passphrase: Load key "ed25519_1_pw": incorrect passphrase supplied to decrypt private key\n');
    const change = await sameStatus(dir, ['-p', '-f', 'ed25519_1_pw', '-P', 'not it', '-N', 'x']);
    assert.equal(change.stderr, 'Failed to load key ed25519_1_pw: incorrect passphrase supplied to decrypt private key\n');
  });

  test('a missing file', async (t) => {
    const dir = scratch(t);
    const cases: readonly [readonly string[], string][] = [
      [['-y', '-f', 'missing'], 'missing: No such file or directory'],
      [['-l', '-f', 'missing'], 'tssh-keygen: missing: No such file or directory'],
      [['-p', '-f', 'missing', '-N', 'x'], 'missing: No such file or directory'],
      [['-e', '-f', 'missing'], 'tssh-keygen: missing: No such file or directory'],
      [['-i', '-f', 'missing'], 'tssh-keygen: missing: No such file or directory'],
      [['-F', 'host', '-f', 'missing'], 'Cannot stat missing: No such file or directory'],
      [['-R', 'host', '-f', 'missing'], 'Cannot stat missing: No such file or directory'],
      [['-H', '-f', 'missing'], 'Cannot stat missing: No such file or directory'],
    ];
    for (const [args, message] of cases) {
      const result = await sameStatus(dir, args);
      assert.equal(result.status, 255, args.join(' '));
      assert.equal(result.stderr, `${message}\n`, args.join(' '));
    }
  });

  test('a corrupt key', async (t) => {
    const dir = scratch(t);
    const good = readFileSync(join(KEYS, 'ed25519_1'), 'utf8');
    writeFileSync(join(dir, 'truncated'), good.slice(0, 200), { mode: 0o600 });
    writeFileSync(join(dir, 'garbage'), 'this is not a key\n', { mode: 0o600 });
    const body = good.split('\n');
    body[3] = body[3]!.replace(/[A-Za-z]/g, 'A');
    writeFileSync(join(dir, 'damaged'), body.join('\n'), { mode: 0o600 });

    const truncated = await sameStatus(dir, ['-y', '-f', 'truncated']);
    assert.equal(truncated.status, 255);
    assert.match(truncated.stderr, /^Load key "truncated": invalid format: .*END OPENSSH PRIVATE KEY.*truncated/);
    const garbage = await sameStatus(dir, ['-y', '-f', 'garbage']);
    assert.match(garbage.stderr, /^Load key "garbage": invalid format: not a private key file/);
    const damaged = await sameStatus(dir, ['-y', '-f', 'damaged']);
    assert.equal(damaged.status, 255);
    assert.match(damaged.stderr, /^Load key "damaged": /);

    const listed = await sameStatus(dir, ['-l', '-f', 'garbage']);
    assert.equal(listed.stderr, 'garbage is not a public key file.\n');
    const truncatedListed = await sameStatus(dir, ['-l', '-f', 'truncated']);
    assert.match(truncatedListed.stderr, /^truncated is not a key file: invalid format/);
  });

  test('a private key others can read is refused, as OpenSSH refuses it', async (t) => {
    const dir = scratch(t);
    copyFixture(dir, 'ed25519_1');
    chmodSync(join(dir, 'ed25519_1'), 0o644);
    const refused = await sameStatus(dir, ['-y', '-f', 'ed25519_1']);
    assert.equal(refused.status, 255);
    assert.match(refused.stderr, /WARNING: UNPROTECTED PRIVATE KEY FILE![\s\S]*Permissions 0644 for 'ed25519_1' are too open\.[\s\S]*Load key "ed25519_1": bad permissions\n$/);
  });

  test('bad options print the usage', async (t) => {
    const dir = scratch(t);
    for (const [args, first] of [
      [['-x'], 'unknown option -- x'],
      [['-f'], 'option requires an argument -- f'],
      [['-l', '-f', 'key', 'extra'], 'Too many arguments.'],
      [['-l', '-H'], 'Cannot use -l with -H or -R.'],
    ] as const) {
      const result = await sameStatus(dir, args);
      assert.equal(result.status, 1, args.join(' '));
      assert.equal(result.stderr.split('\n')[0], first);
      assert.match(result.stderr, /\nusage: tssh-keygen /);
    }
    const format = await sameStatus(dir, ['-e', '-m', 'XML', '-f', 'key']);
    assert.equal(format.stderr, 'Unsupported conversion format "XML"\n');
    const hash = await sameStatus(dir, ['-l', '-E', 'crc32', '-f', 'key']);
    assert.equal(hash.stderr, 'Invalid hash algorithm "crc32"\n');
  });
});
