/**
 * The algorithm registry: every wire name we speak mapped to its implementation, and the default
 * preference lists. Defaults follow current OpenSSH: post-quantum hybrid first, then curve25519,
 * then the DH groups; NIST-curve ECDH supported but not offered by default; SHA-1 anything and
 * the 1024-bit group only by explicit opt-in.
 */
import type {
  CipherAlgorithm,
  CompressionAlgorithm,
  KexAlgorithm,
  MacAlgorithm,
  SignatureAlgorithm,
} from './types.js';
import { aes128Gcm, aes256Gcm } from './cipher/aes-gcm.js';
import { aes128Ctr, aes192Ctr, aes256Ctr } from './cipher/aes-ctr.js';
import { chacha20Poly1305 } from './cipher/chacha20-poly1305.js';
import { hmacSha1, hmacSha1Etm, hmacSha2_256, hmacSha2_256Etm, hmacSha2_512, hmacSha2_512Etm } from './mac/hmac.js';
import { noCompression } from './compression/none.js';
import { zlib, zlibOpenssh } from './compression/zlib.js';
import { curve25519Sha256, curve25519Sha256Libssh } from './kex/curve25519.js';
import { ecdhNistp256, ecdhNistp384, ecdhNistp521 } from './kex/ecdh-nist.js';
import {
  dhGexSha256,
  dhGroup1Sha1,
  dhGroup14Sha1,
  dhGroup14Sha256,
  dhGroup16Sha512,
  dhGroup18Sha512,
} from './kex/dh.js';
import { mlkem768x25519Sha256 } from './kex/mlkem768x25519.js';
import { sshEd25519 } from './hostkey/ed25519.js';
import { ecdsaSha2Nistp256, ecdsaSha2Nistp384, ecdsaSha2Nistp521 } from './hostkey/ecdsa.js';
import { rsaSha2_256, rsaSha2_512, sshRsa } from './hostkey/rsa.js';

/** One category of algorithm: every implementation by name, what is offered by default, in order. */
export interface AlgorithmFamily<T extends { readonly name: string }> {
  readonly category: string;
  readonly all: ReadonlyMap<string, T>;
  /** Offered when the user configures nothing, in preference order. */
  readonly defaults: readonly string[];
}

function family<T extends { readonly name: string }>(category: string, items: readonly T[], defaults: readonly string[]): AlgorithmFamily<T> {
  const all = new Map(items.map((item) => [item.name, item]));
  for (const name of defaults) if (!all.has(name)) throw new Error(`default ${category} ${name} is not implemented`);
  return { category, all, defaults };
}

export const kexAlgorithms = family<KexAlgorithm>(
  'key exchange algorithm',
  [
    mlkem768x25519Sha256,
    curve25519Sha256,
    curve25519Sha256Libssh,
    ecdhNistp256,
    ecdhNistp384,
    ecdhNistp521,
    dhGexSha256,
    dhGroup16Sha512,
    dhGroup18Sha512,
    dhGroup14Sha256,
    dhGroup14Sha1,
    dhGroup1Sha1,
  ],
  [
    'mlkem768x25519-sha256',
    'curve25519-sha256',
    'curve25519-sha256@libssh.org',
    'diffie-hellman-group-exchange-sha256',
    'diffie-hellman-group16-sha512',
    'diffie-hellman-group18-sha512',
    'diffie-hellman-group14-sha256',
  ],
);

export const signatureAlgorithms = family<SignatureAlgorithm>(
  'host key algorithm',
  [sshEd25519, ecdsaSha2Nistp256, ecdsaSha2Nistp384, ecdsaSha2Nistp521, rsaSha2_512, rsaSha2_256, sshRsa],
  ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'],
);

export const cipherAlgorithms = family<CipherAlgorithm>(
  'cipher',
  [chacha20Poly1305, aes128Gcm, aes256Gcm, aes128Ctr, aes192Ctr, aes256Ctr],
  [
    'chacha20-poly1305@openssh.com',
    'aes128-gcm@openssh.com',
    'aes256-gcm@openssh.com',
    'aes128-ctr',
    'aes192-ctr',
    'aes256-ctr',
  ],
);

export const macAlgorithms = family<MacAlgorithm>(
  'MAC',
  [hmacSha2_256Etm, hmacSha2_512Etm, hmacSha2_256, hmacSha2_512, hmacSha1Etm, hmacSha1],
  ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
);

export const compressionAlgorithms = family<CompressionAlgorithm>(
  'compression',
  [noCompression, zlibOpenssh, zlib],
  ['none', 'zlib@openssh.com'],
);

/**
 * Apply an OpenSSH-style algorithm list setting to the defaults (ssh_config(5) `Ciphers`):
 * `+a,b` appends to the defaults, `-a,b` removes (wildcards `*` and `?` allowed), `^a,b` puts
 * in front; anything else replaces the list. Unknown names are an error naming them.
 */
export function applyAlgorithmSetting<T extends { readonly name: string }>(
  fam: AlgorithmFamily<T>,
  setting: string | readonly string[] | undefined,
): string[] {
  if (setting === undefined) return [...fam.defaults];
  const text = typeof setting === 'string' ? setting.trim() : setting.join(',');
  const op = text[0];
  const body = op === '+' || op === '-' || op === '^' ? text.slice(1) : text;
  // Each name as the registry spells it (the algorithm's own string), not a slice of `setting`:
  // the lists live as long as each connection that uses them.
  const names = body
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => fam.all.get(s)?.name ?? s);
  if (op === '-') {
    const patterns = names.map(globToRegExp);
    return fam.defaults.filter((name) => !patterns.some((re) => re.test(name)));
  }
  const unknown = names.filter((name) => !fam.all.has(name));
  if (unknown.length > 0) {
    throw new RangeError(`unsupported ${fam.category}${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  }
  if (op === '+') return [...fam.defaults, ...names.filter((n) => !fam.defaults.includes(n))];
  if (op === '^') return [...names, ...fam.defaults.filter((n) => !names.includes(n))];
  return [...new Set(names)];
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}
