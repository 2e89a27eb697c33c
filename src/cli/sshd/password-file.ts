/**
 * tsshd's password file: one `user:hash` line per user, the hash a salted scrypt
 * (`$scrypt$N=16384,r=8,p=1$salt$key`, base64 without padding). It needs no system setup, and
 * the file is written 0600. `tsshd passwd add|remove|list` manages it.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { readFile, rename, writeFile, chmod } from 'node:fs/promises';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

const PARAMS = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;
const MAXMEM = 64 * 1024 * 1024;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_LENGTH, { ...PARAMS, maxmem: MAXMEM });
  return `$scrypt$N=${PARAMS.N},r=${PARAMS.r},p=${PARAMS.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Check a password against a stored hash, in constant time; false for any malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const match = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!match) return false;
  const [, n, r, p, salt, key] = match;
  const N = Number(n);
  // Refuse parameters that would let a tampered file make us burn memory or time.
  if (N > 1 << 20 || Number(r) > 32 || Number(p) > 16) return false;
  const expected = Buffer.from(key!, 'base64url');
  const actual = await scrypt(password, Buffer.from(salt!, 'base64url'), expected.length, {
    N,
    r: Number(r),
    p: Number(p),
    maxmem: 256 * 1024 * 1024,
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export type PasswordEntries = Map<string, string>;

export async function readPasswordFile(path: string): Promise<PasswordEntries> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const entries: PasswordEntries = new Map();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const colon = trimmed.indexOf(':');
    if (colon <= 0) continue;
    entries.set(trimmed.slice(0, colon), trimmed.slice(colon + 1));
  }
  return entries;
}

/** Write the whole file atomically (temporary file then rename), mode 0600. */
export async function writePasswordFile(path: string, entries: PasswordEntries): Promise<void> {
  const text = [...entries].map(([user, hash]) => `${user}:${hash}\n`).join('');
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

/** A dummy hash, verified for unknown users so they take as long as known ones. */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  return dummyHash;
}
