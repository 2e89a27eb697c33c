/**
 * The known_hosts edits of ssh-keygen(1): hash every name (-H), find a host's lines (-F) and
 * remove a host (-R), with ssh-keygen's rules:
 *
 * - lines are judged by their fields only (./known-hosts.ts splitKnownHostsLine), the key is not
 *   decoded, so a file ssh-keygen accepts is accepted here;
 * - -H and -R rewrite the file only when every line is valid ("not a valid known_hosts file"
 *   otherwise), keep the previous contents as `<file>.old`, and keep the file's permission bits
 *   (limited to 0644);
 * - -H leaves alone lines already hashed, lines with wildcards or negations (a pattern has no
 *   single name to hash) and `@revoked`/`@cert-authority` lines, and writes one hashed line per
 *   name of a `name1,name2` list;
 * - -R removes plain lines that name the host, never `@revoked` or `@cert-authority` lines.
 *
 * Names are matched as given (`[host]:port` for a non-standard port), as ssh-keygen does.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { KeyFormatError } from '../errors.js';
import { asciiLowercase, hasWildcards } from './patterns.js';
import { hashHostName, hostFieldMatches, parseHashedHostName, splitFileLines, splitKnownHostsLine } from './known-hosts.js';
import type { KnownHostsFields, KnownHostsMarker } from './known-hosts.js';

/** A line that stopped a rewrite. */
export interface KnownHostsInvalidLine {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

/** A line that names the host searched for. */
export interface KnownHostsFoundLine {
  readonly line: number;
  readonly marker: KnownHostsMarker | undefined;
  /** The line as written; with `hash`, the line(s) as -H would write them. */
  readonly output: readonly string[];
}

type Judged =
  | { readonly kind: 'comment' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'entry'; readonly fields: KnownHostsFields; readonly matched: boolean };

/** Split a line and, when a name is given, say whether the line names it (a malformed hash makes the line invalid). */
function judge(text: string, name: string | undefined): Judged {
  const split = splitKnownHostsLine(text);
  if (split.kind !== 'entry') return split;
  if (name === undefined) return { kind: 'entry', fields: split.fields, matched: false };
  try {
    const hashed = parseHashedHostName(split.fields.hosts);
    return { kind: 'entry', fields: split.fields, matched: hostFieldMatches(split.fields.hosts, hashed, name) };
  } catch (error) {
    if (error instanceof KeyFormatError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}

/** The lines -H writes for one line: itself, or one hashed line per name. */
function hashedLines(text: string, fields: KnownHostsFields): string[] {
  if (fields.hosts.startsWith('|') || hasWildcards(fields.hosts) || fields.marker !== undefined) return [text];
  const out: string[] = [];
  // Like ssh-keygen, an empty name (`a,,b`) ends the list.
  for (const name of fields.hosts.split(',')) {
    if (name === '') break;
    out.push(`${hashHostName(asciiLowercase(name))} ${fields.rawKey}`);
  }
  return out;
}

function joinLines(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

export interface HashResult {
  readonly text: string;
  /** How many names were hashed. */
  readonly hashed: number;
  readonly invalid: readonly KnownHostsInvalidLine[];
}

/** ssh-keygen -H on text: every plain name hashed with a fresh salt (see the module comment). */
export function hashKnownHostsText(text: string): HashResult {
  const out: string[] = [];
  const invalid: KnownHostsInvalidLine[] = [];
  let hashed = 0;
  splitFileLines(text).forEach((raw, index) => {
    const judged = judge(raw, undefined);
    if (judged.kind === 'entry') {
      const lines = hashedLines(raw, judged.fields);
      if (lines[0] !== raw) hashed += lines.length;
      out.push(...lines);
      return;
    }
    if (judged.kind === 'invalid') invalid.push({ line: index + 1, text: raw, reason: judged.reason });
    out.push(raw);
  });
  return { text: joinLines(out), hashed, invalid };
}

export interface FindOptions {
  /** ssh-keygen -H -F: show the found lines hashed. */
  readonly hash?: boolean;
}

/** ssh-keygen -F on text: every valid line whose hosts accept `name`, markers included. */
export function findKnownHostText(text: string, name: string, options: FindOptions = {}): KnownHostsFoundLine[] {
  const found: KnownHostsFoundLine[] = [];
  splitFileLines(text).forEach((raw, index) => {
    const judged = judge(raw, name);
    if (judged.kind !== 'entry' || !judged.matched) return;
    const output = options.hash === true ? hashedLines(raw, judged.fields) : [raw];
    found.push({ line: index + 1, marker: judged.fields.marker, output });
  });
  return found;
}

export interface RemoveResult {
  readonly text: string;
  /** Line numbers removed. */
  readonly removed: readonly number[];
  readonly invalid: readonly KnownHostsInvalidLine[];
}

/** ssh-keygen -R on text: drop the plain lines that name `name`; everything else is kept byte for byte. */
export function removeKnownHostText(text: string, name: string): RemoveResult {
  const out: string[] = [];
  const removed: number[] = [];
  const invalid: KnownHostsInvalidLine[] = [];
  splitFileLines(text).forEach((raw, index) => {
    const judged = judge(raw, name);
    if (judged.kind === 'entry' && judged.matched && judged.fields.marker === undefined) {
      removed.push(index + 1);
      return;
    }
    if (judged.kind === 'invalid') invalid.push({ line: index + 1, text: raw, reason: judged.reason });
    out.push(raw);
  });
  return { text: joinLines(out), removed, invalid };
}

// ---- Files ------------------------------------------------------------------------------------

/**
 * Replace a file's contents keeping the old ones as `<path>.old`, as ssh-keygen does: the new
 * text goes to a temporary file beside it (mode: the original's, at most 0644), the original is
 * hard-linked to `.old` (replacing any previous one), then the temporary file is renamed over it.
 * Returns the backup's path.
 */
export async function replaceWithBackup(path: string, text: string): Promise<string> {
  const { mode } = await stat(path);
  const temporary = `${path}.${randomBytes(6).toString('hex')}`;
  const backup = `${path}.old`;
  await writeFile(temporary, text, { mode: mode & 0o644, flag: 'wx' });
  try {
    await unlink(backup).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await link(path, backup);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  return backup;
}

export type FileEditResult =
  /** Some lines are invalid: the file was left alone. */
  | { readonly status: 'invalid'; readonly invalid: readonly KnownHostsInvalidLine[] }
  /** -R found nothing for the host: the file was left alone. */
  | { readonly status: 'not-found' }
  | { readonly status: 'updated'; readonly backup: string; readonly hashed?: number; readonly removed?: readonly number[] };

/** ssh-keygen -H -f path. */
export async function hashKnownHostsFile(path: string): Promise<FileEditResult> {
  const result = hashKnownHostsText(await readFile(path, 'utf8'));
  if (result.invalid.length > 0) return { status: 'invalid', invalid: result.invalid };
  return { status: 'updated', backup: await replaceWithBackup(path, result.text), hashed: result.hashed };
}

/** ssh-keygen -R name -f path. */
export async function removeKnownHostFile(path: string, name: string): Promise<FileEditResult> {
  const result = removeKnownHostText(await readFile(path, 'utf8'), name);
  if (result.invalid.length > 0) return { status: 'invalid', invalid: result.invalid };
  if (result.removed.length === 0) return { status: 'not-found' };
  return { status: 'updated', backup: await replaceWithBackup(path, result.text), removed: result.removed };
}

/** ssh-keygen -F name -f path. */
export async function findKnownHostFile(path: string, name: string, options: FindOptions = {}): Promise<KnownHostsFoundLine[]> {
  return findKnownHostText(await readFile(path, 'utf8'), name, options);
}
