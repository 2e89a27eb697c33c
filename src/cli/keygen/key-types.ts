/**
 * The key type names -t accepts, as ssh-keygen accepts them: its short names in any case (`rsa`,
 * `ECDSA`) and the protocol names exactly (`ssh-ed25519`, `ecdsa-sha2-nistp384`, which also
 * implies the curve).
 */

/** What a -t name means: a kind of key and, for ecdsa-sha2-nistpN, the size it implies. */
export interface KeyKind {
  readonly kind: 'rsa' | 'dsa' | 'ecdsa' | 'ed25519' | 'ecdsa-sk' | 'ed25519-sk';
  readonly impliedBits?: number;
}

/** ssh-keygen's short names, any case. */
const SHORT_NAMES: readonly KeyKind['kind'][] = ['rsa', 'dsa', 'ecdsa', 'ed25519', 'ecdsa-sk', 'ed25519-sk'];
/** And the protocol names, exactly. */
const FULL_NAMES: ReadonlyMap<string, KeyKind> = new Map([
  ['ssh-rsa', { kind: 'rsa' }],
  ['rsa-sha2-256', { kind: 'rsa' }],
  ['rsa-sha2-512', { kind: 'rsa' }],
  ['ssh-dss', { kind: 'dsa' }],
  ['ssh-ed25519', { kind: 'ed25519' }],
  ['ecdsa-sha2-nistp256', { kind: 'ecdsa', impliedBits: 256 }],
  ['ecdsa-sha2-nistp384', { kind: 'ecdsa', impliedBits: 384 }],
  ['ecdsa-sha2-nistp521', { kind: 'ecdsa', impliedBits: 521 }],
  ['sk-ecdsa-sha2-nistp256@openssh.com', { kind: 'ecdsa-sk' }],
  ['sk-ssh-ed25519@openssh.com', { kind: 'ed25519-sk' }],
]);

export function keyKindOf(name: string): KeyKind | undefined {
  const short = SHORT_NAMES.find((kind) => kind === name.toLowerCase());
  return short !== undefined ? { kind: short } : FULL_NAMES.get(name);
}

/** Key file names in ~/.ssh by kind, as ssh-keygen proposes them. */
export const DEFAULT_KEY_FILES: Readonly<Record<KeyKind['kind'], string>> = {
  rsa: 'id_rsa',
  dsa: 'id_dsa',
  ecdsa: 'id_ecdsa',
  'ecdsa-sk': 'id_ecdsa_sk',
  ed25519: 'id_ed25519',
  'ed25519-sk': 'id_ed25519_sk',
};
