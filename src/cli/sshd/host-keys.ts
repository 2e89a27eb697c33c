/**
 * Host keys for tsshd: read each HostKey file; one that is missing is generated on first start
 * (ed25519, ecdsa P-256 or RSA 3072 by its name, file 0600 with its .pub beside it), as
 * `ssh-keygen -A` would, and its fingerprint is logged.
 */
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SshPrivateKey } from '../../algorithms/types.js';
import { generatePrivateKey, type GeneratedKeyType } from '../../keys/private-key.js';
import { formatPrivateKeyFile, parsePrivateKeyFile } from '../../keys/private-key-file.js';
import { formatOpenSshPublicKey } from '../../keys/public-key-text.js';
import { fingerprint } from '../../keys/fingerprint.js';

export function keyTypeForPath(path: string): GeneratedKeyType {
  if (/ecdsa/.test(path)) return 'ecdsa-p256';
  if (/rsa/.test(path)) return 'rsa';
  return 'ed25519';
}

export async function loadOrCreateHostKeys(paths: readonly string[], log: (line: string) => void): Promise<SshPrivateKey[]> {
  const keys: SshPrivateKey[] = [];
  for (const path of paths) {
    let data: Buffer | undefined;
    try {
      data = await readFile(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new Error(`Unable to load host key ${path}: ${(error as Error).message}`);
    }
    if (data) {
      try {
        keys.push((await parsePrivateKeyFile(data)).key);
      } catch (error) {
        throw new Error(`Unable to load host key ${path}: ${(error as Error).message}`);
      }
      continue;
    }
    const type = keyTypeForPath(path);
    const key = await generatePrivateKey(type, type === 'rsa' ? 3072 : undefined);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, await formatPrivateKeyFile(key, { format: 'openssh', comment: 'tsshd host key' }), { mode: 0o600 });
    await chmod(path, 0o600);
    await writeFile(`${path}.pub`, `${formatOpenSshPublicKey(key.publicKey, 'tsshd host key')}\n`, { mode: 0o644 });
    log(`generated host key ${path}: ${key.type} ${fingerprint(key.publicKey)}`);
    keys.push(key);
  }
  return keys;
}
