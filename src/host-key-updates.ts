/**
 * OpenSSH's UpdateHostKeys (PROTOCOL §2.5): after authentication the server announces all its
 * host keys (hostkeys-00@openssh.com); keys not yet in known_hosts are recorded once the server
 * proves it holds them (hostkeys-prove-00@openssh.com), but only when the key this connection was
 * verified with is itself in known_hosts: a key accepted by policy 'off' vouches for nothing.
 */
import type { SshPublicKey } from './algorithms/types.js';
import { appendKnownHost, KnownHosts } from './keys/known-hosts.js';

export interface HostKeyUpdate {
  /** The known_hosts name of the server (`host`, `[host]:port` or the HostKeyAlias). */
  readonly name: string;
  /** UserKnownHostsFile list (new keys go to the first) and GlobalKnownHostsFile list. */
  readonly files: readonly string[];
  readonly globalFiles: readonly string[];
  readonly hash: boolean;
  /** The key this connection was verified with. */
  readonly current: SshPublicKey;
  /** What the server announced. */
  readonly announced: readonly SshPublicKey[];
  /** Asks the server to prove it holds these keys; resolves with those it proved. */
  readonly prove: (keys: readonly SshPublicKey[]) => Promise<SshPublicKey[]>;
  readonly debug?: (line: string) => void;
}

/** Record the announced keys known_hosts lacks and the server proved; resolves with them. */
export async function recordAnnouncedHostKeys(update: HostKeyUpdate): Promise<SshPublicKey[]> {
  const { name, files, debug } = update;
  const known = await KnownHosts.load([...files, ...update.globalFiles]);
  if (known.lookupName(name, update.current).status !== 'match') {
    debug?.("update host keys: the connection's host key is not in known_hosts; not learning others");
    return [];
  }
  // "mismatch" here only means the host has other keys on file (the one we verified with).
  const unknown = update.announced.filter((key) => {
    const status = known.lookupName(name, key).status;
    return status === 'unknown' || status === 'mismatch';
  });
  debug?.(`update host keys: server announced ${update.announced.length} keys, ${unknown.length} new`);
  if (unknown.length === 0 || files[0] === undefined) return [];
  const proven = await update.prove(unknown);
  for (const key of proven) {
    await appendKnownHost(files[0], name, key, { hash: update.hash });
    debug?.(`client_global_hostkeys_prove_confirm: learned new ${key.type} host key`);
  }
  return proven;
}
