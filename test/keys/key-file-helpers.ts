/**
 * Shared by the key file tests: OpenSSH's regress keys (test/fixtures/openssh-keys), a scratch
 * folder, running ssh-keygen/puttygen, and a check that a private key signs for its public key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SshPrivateKey } from '../../src/algorithms/types.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import type { GeneratedKeyType } from '../../src/keys/private-key.js';

/** The repository root (tests run compiled from dist/test/keys). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'openssh-keys');

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURES, name));
}

export function fixtureText(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

/** The passphrase of the *_pw fixtures. */
export const FIXTURE_PASSPHRASE = fixtureText('pw').trim();

/** The blob and comment of an OpenSSH public key line (`type base64 comment…`). */
export function publicLine(line: string): { type: string; blob: Buffer; comment: string } {
  const [type, base64, ...comment] = line.trim().split(/\s+/);
  assert.ok(type !== undefined && base64 !== undefined, `not a public key line: ${line}`);
  return { type, blob: Buffer.from(base64, 'base64'), comment: comment.join(' ') };
}

/** A scratch folder removed at process exit. */
export function scratchFolder(prefix: string): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

/** Write a file readable only by us (ssh-keygen refuses private keys others can read). */
export function writePrivate(path: string, data: string | Buffer): void {
  writeFileSync(path, data, { mode: 0o600 });
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a program to completion (never throws for a non-zero exit). */
export function run(program: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((done) => {
    execFile(program, args, { encoding: 'utf8', timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

/** Run and require success, returning stdout. */
export async function runOk(program: string, args: readonly string[]): Promise<string> {
  const result = await run(program, args);
  assert.equal(result.code, 0, `${program} ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** Assert that a private key's signatures verify under its public key (so the halves belong together). */
export function assertSigns(key: SshPrivateKey): void {
  const data = createHash('sha256').update(key.publicKey.blob).digest();
  const algorithm = key.type === 'ssh-ed25519' ? null : 'sha256';
  const signature = sign(algorithm, data, key.keyObject);
  assert.ok(verify(algorithm, data, key.publicKey.keyObject, signature), `${key.type} key does not verify its own signature`);
}

/** One key of each type tssh handles, generated once per process (RSA 2048 to keep tests quick). */
export const KEY_TYPES: readonly GeneratedKeyType[] = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa'];

let generated: Promise<Map<GeneratedKeyType, SshPrivateKey>> | undefined;

export function testKeys(): Promise<Map<GeneratedKeyType, SshPrivateKey>> {
  generated ??= Promise.all(KEY_TYPES.map(async (type) => [type, await generatePrivateKey(type, 2048)] as const)).then(
    (pairs) => new Map(pairs),
  );
  return generated;
}
