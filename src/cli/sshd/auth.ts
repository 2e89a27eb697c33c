/**
 * tsshd's authentication policy, built from sshd_config: who may log in (AllowUsers,
 * DenyUsers, groups, PermitRootLogin), publickey through AuthorizedKeysFile with its options,
 * password and keyboard-interactive through the password file (or PAM when available), with an
 * unknown or refused user treated exactly like a wrong password.
 */
import { stat } from 'node:fs/promises';
import { lstatSync, type BigIntStats } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { dirname, isAbsolute, join } from 'node:path';
import type { ServerAuthHooks } from '../../auth/server.js';
import type { SshPublicKey } from '../../algorithms/types.js';
import { loadAuthorizedKeysFile, findAuthorizedKey, type AuthorizedKeysFile, type KeyOptions } from '../../keys/authorized-keys.js';
import { matchPattern } from '../../keys/patterns.js';
import type { SshdSettings } from '../../config/sshd-config.js';
import { expandAuthorizedKeysFile } from '../../config/sshd-config.js';
import { lookupUser, userGroups, type SystemUser } from './users.js';
import { knownLocal } from './local-fs.js';
import { dummyPasswordHash, readPasswordFile, verifyPassword } from './password-file.js';

export interface AuthPolicyContext {
  /** The settings for this connection (after Match blocks for its address). */
  readonly settings: (user: string) => SshdSettings;
  readonly remoteAddress: string;
  /** When not root, only this user (and password-file users) may log in. */
  readonly onlyUser: SystemUser | undefined;
  /** Extra authorized keys (the embedded default accepts ~/.ssh/*.pub too). */
  readonly extraAuthorizedKeys?: (user: SystemUser) => Promise<readonly SshPublicKey[]>;
  /** A one-time password for the embedded default, when no key is set up. */
  readonly oneTimePassword?: { readonly user: string; readonly password: string };
  /** PAM, when available and UsePAM is on (root only). */
  readonly pam?: (user: string, password: string) => Promise<boolean>;
  readonly log: (line: string) => void;
}

/** What authentication decided about the session that follows. */
export interface AuthResultState {
  user: SystemUser | undefined;
  /** The authorized_keys options of the key that logged in (restrictions to enforce). */
  keyOptions: KeyOptions | undefined;
}

/** OpenSSH's allowed_user(): does the account exist and may it log in at all? */
export function userMayLogIn(user: SystemUser | undefined, settings: SshdSettings, remoteAddress: string): string | undefined {
  if (!user) return 'invalid user';
  if (settings.denyUsers.some((p) => userPatternMatches(p, user.name, remoteAddress))) return 'listed in DenyUsers';
  if (settings.allowUsers.length > 0 && !settings.allowUsers.some((p) => userPatternMatches(p, user.name, remoteAddress))) {
    return 'not listed in AllowUsers';
  }
  if (settings.denyGroups.length > 0 || settings.allowGroups.length > 0) {
    const groups = userGroups(user.name);
    if (groups.some((g) => settings.denyGroups.some((p) => matchPattern(g, p)))) return 'in a group listed in DenyGroups';
    if (settings.allowGroups.length > 0 && !groups.some((g) => settings.allowGroups.some((p) => matchPattern(g, p)))) {
      return 'not in a group listed in AllowGroups';
    }
  }
  return undefined;
}

/** AllowUsers entries may be `user@host` (the host part a pattern against the address). */
function userPatternMatches(pattern: string, user: string, address: string): boolean {
  const at = pattern.indexOf('@');
  if (at < 0) return matchPattern(user, pattern);
  return matchPattern(user, pattern.slice(0, at)) && matchPattern(address, pattern.slice(at + 1));
}

/** StrictModes: the file must not be writable by others, and owned by the user or root. */
function strictModesOk(info: BigIntStats, user: SystemUser): boolean {
  if (info.uid !== BigInt(user.uid) && info.uid !== 0n) return false;
  if ((info.mode & 0o022n) !== 0n) return false;
  return true;
}

/**
 * authorized_keys files as last parsed, by path, each with the identity of the version that was
 * read: device, inode, size, and modification and change times in nanoseconds. sshd re-reads the
 * file at every attempt (twice per publickey login: the query, then the signed request); tsshd
 * serves every connection from one process, so it stats the file instead (one system call, which
 * StrictModes needs anyway) and re-reads and re-parses only when the file changed. Any write,
 * rename over it, chmod or chown changes at least one of these (the change time covers them all);
 * a read that races with a write stores what it read under the older identity, so the next stat
 * sees a difference and reads again.
 *
 * File systems stamp changes with a coarse clock (one tick, 1-10 ms), so two writes of the same
 * size within one tick leave identical identities: a version read between them would hide the
 * second. A version is therefore kept only once its last change is AUTHORIZED_KEYS_SETTLE_NS old by
 * our clock (any later change gets a later stamp); a younger file is read at every attempt, as
 * sshd reads it. This relies on the file's timestamps following this machine's clock, as local
 * file systems' do.
 */
const authorizedKeysCache = new Map<string, { readonly stamp: string; readonly file: AuthorizedKeysFile }>();
/** Entries kept at most (oldest dropped first): one per user's file in practice. */
const AUTHORIZED_KEYS_CACHE_SIZE = 256;
/** How old (ns) a file's last change must be before a version of it is kept: far beyond a clock tick. */
const AUTHORIZED_KEYS_SETTLE_NS = 2_000_000_000n;

/**
 * The file's status at once when its folder is on a local file system (./local-fs.ts) and it is
 * not a symbolic link (which could lead anywhere); null when it does not exist; undefined when it
 * must be asked through the thread pool.
 */
function statNow(path: string): BigIntStats | null | undefined {
  if (!knownLocal(dirname(path))) return undefined;
  try {
    const info = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    if (!info) return null;
    return info.isSymbolicLink() ? undefined : info;
  } catch {
    return undefined;
  }
}

/** How long a publickey query's yes may serve the signed request that follows (createAuthHooks). */
const QUERY_ANSWER_MS = 5_000;

/**
 * The parsed authorized_keys file at `path`, or undefined when it cannot be used: missing,
 * unreadable, or refused by StrictModes (sshd skips such a file and tries the next one).
 */
async function readAuthorizedKeys(path: string, user: SystemUser, strictModes: boolean): Promise<AuthorizedKeysFile | undefined> {
  const quick = statNow(path);
  const info = quick === undefined ? await stat(path, { bigint: true }).catch(() => undefined) : quick;
  if (!info) return undefined;
  if (strictModes && !strictModesOk(info, user)) return undefined;
  const stamp = `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  const cached = authorizedKeysCache.get(path);
  if (cached?.stamp === stamp) return cached.file;
  let file: AuthorizedKeysFile;
  try {
    file = await loadAuthorizedKeysFile(path);
  } catch {
    return undefined;
  }
  authorizedKeysCache.delete(path);
  const lastChange = info.mtimeNs > info.ctimeNs ? info.mtimeNs : info.ctimeNs;
  // A change stamped in the future (clock skew) never counts as settled.
  if (BigInt(Date.now()) * 1_000_000n - lastChange >= AUTHORIZED_KEYS_SETTLE_NS) {
    authorizedKeysCache.set(path, { stamp, file });
    if (authorizedKeysCache.size > AUTHORIZED_KEYS_CACHE_SIZE) authorizedKeysCache.delete(authorizedKeysCache.keys().next().value!);
  }
  return file;
}

export function createAuthHooks(context: AuthPolicyContext, state: AuthResultState): ServerAuthHooks {
  const reportedInvalid = new Set<string>();
  // One connection asks about one user several times (a publickey query, the signed request, the
  // success): like sshd, which looks the account up once per connection, the answer is kept for
  // the connection's life (RFC 4252 §5 forbids changing the user name midway anyway).
  const resolved = new Map<string, { user: SystemUser | undefined; settings: SshdSettings; refused: string | undefined }>();
  const resolveUser = (name: string): { user: SystemUser | undefined; settings: SshdSettings; refused: string | undefined } => {
    const known = resolved.get(name);
    if (known) return known;
    const settings = context.settings(name);
    let user = lookupUser(name);
    if (context.onlyUser && user && user.name !== context.onlyUser.name) user = undefined;
    let refused = userMayLogIn(user, settings, context.remoteAddress);
    if (!user && !reportedInvalid.has(name)) {
      reportedInvalid.add(name);
      context.log(`Invalid user ${name} from ${context.remoteAddress}`);
    }
    if (!refused && user?.uid === 0 && settings.permitRootLogin === 'no') refused = 'root login refused (PermitRootLogin no)';
    const answer = { user, settings, refused };
    resolved.set(name, answer);
    return answer;
  };

  const checkPassword = async (name: string, password: string): Promise<boolean> => {
    const { user, settings, refused } = resolveUser(name);
    if (!settings.passwordAuthentication && !settings.kbdInteractiveAuthentication) return false;
    if (password === '' && !settings.permitEmptyPasswords) return false;
    // The embedded default's one-time password, printed to whoever started tsshd, logs in the
    // user who started it (root included: it is a random secret, not a guessable password).
    const otp = context.oneTimePassword;
    if (otp && otp.user === name && !refused) return password.length === otp.password.length && timingSafeEqual(Buffer.from(password), Buffer.from(otp.password));
    // PermitRootLogin applies whatever the password source (prohibit-password is the default).
    if (user?.uid === 0 && settings.permitRootLogin !== 'yes') return false;
    if (settings.passwordFile) {
      const entries = await readPasswordFile(settings.passwordFile);
      const hash = entries.get(name);
      // The password-file user need not be a system user when we are not root.
      const ok = await verifyPassword(password, hash ?? (await dummyPasswordHash()));
      return ok && hash !== undefined && (refused === undefined || (context.onlyUser !== undefined && user === undefined));
    }
    if (refused || !user) {
      await verifyPassword(password, await dummyPasswordHash());
      return false;
    }
    if (user.uid === 0 && settings.permitRootLogin !== 'yes') return false;
    if (context.pam && settings.usePAM) return context.pam(name, password);
    return false;
  };

  /** Whether `key` may log in as `name` by AuthorizedKeysFile (or the extra keys); sets state.keyOptions. */
  const keyAllowed = async (name: string, key: SshPublicKey): Promise<boolean> => {
    const { user, settings, refused } = resolveUser(name);
    if (!settings.pubkeyAuthentication || refused || !user) return false;
    for (const pattern of settings.authorizedKeysFile) {
      if (pattern === 'none') continue;
      const expanded = expandAuthorizedKeysFile(pattern, { home: user.home, user: user.name, uid: user.uid });
      const path = isAbsolute(expanded) ? expanded : join(user.home, expanded);
      const file = await readAuthorizedKeys(path, user, settings.strictModes);
      if (!file) continue;
      const result = findAuthorizedKey(file, key.blob, { remoteAddress: context.remoteAddress, now: new Date() });
      if (result.found) {
        state.keyOptions = result.entry.options;
        return true;
      }
      for (const refusal of result.refused) context.log(`Authentication refused: ${refusal.message}`);
    }
    const extra = context.extraAuthorizedKeys ? await context.extraAuthorizedKeys(user) : [];
    if (extra.some((k) => k.blob.equals(key.blob))) {
      state.keyOptions = undefined;
      return true;
    }
    return false;
  };

  // A client asks whether a key may be used (a query), then sends the request signed with it:
  // sshd reads authorized_keys for both. The query's yes serves the signed request that follows,
  // once, if it comes within QUERY_ANSWER_MS: one look at the file per login instead of two (a
  // thread-pool round trip and a wake-up less), with an answer at most that old.
  let lastYes: { readonly user: string; readonly blob: Buffer; readonly options: KeyOptions | undefined; readonly at: number } | undefined;

  return {
    publicKeyAllowed: async ({ user: name, key }) => {
      const earlier = lastYes;
      lastYes = undefined;
      if (earlier && earlier.user === name && earlier.blob.equals(key.blob) && Date.now() - earlier.at < QUERY_ANSWER_MS) {
        state.keyOptions = earlier.options;
        return true;
      }
      const allowed = await keyAllowed(name, key);
      if (allowed) lastYes = { user: name, blob: key.blob, options: state.keyOptions, at: Date.now() };
      return allowed;
    },
    publicKeyVerified: ({ user: name }) => {
      state.user = resolveUser(name).user;
      return 'success';
    },
    password: async ({ user: name, password }) => {
      if (!context.settings(name).passwordAuthentication) return 'failure';
      if (!(await checkPassword(name, password))) return 'failure';
      state.user = resolveUser(name).user ?? passwordOnlyUser(name, context);
      state.keyOptions = undefined;
      return 'success';
    },
    keyboardInteractive: async ({ user: name }, prompt) => {
      if (!context.settings(name).kbdInteractiveAuthentication) return 'failure';
      const [password] = await prompt({ name: '', instruction: '', prompts: [{ prompt: 'Password: ', echo: false }] });
      if (password === undefined || !(await checkPassword(name, password))) return 'failure';
      state.user = resolveUser(name).user ?? passwordOnlyUser(name, context);
      state.keyOptions = undefined;
      return 'success';
    },
  };
}

/** A password-file user who is not a system user runs as the user tsshd runs as. */
function passwordOnlyUser(name: string, context: AuthPolicyContext): SystemUser | undefined {
  return context.onlyUser ? { ...context.onlyUser, name: context.onlyUser.name } : lookupUser(name);
}
