/**
 * `-F host`, `-R host` and `-H` on a known_hosts file (default ~/.ssh/known_hosts), with
 * ssh-keygen's output: `# Host h found: line N` before each line found (none with -q), the lines
 * themselves for -F (hashed with -H, as fingerprints with -l), and for a rewrite
 * `F updated.` / `Original contents retained as F.old`. A file with an invalid line is never
 * rewritten (status 1). -F exits 1 when the host is not there.
 *
 * The editing rules live in ../../keys/known-hosts-edit.ts; this file only reports.
 */
import { readFile } from 'node:fs/promises';
import { KeyFormatError } from '../../errors.js';
import { bubbleBabble, describeKey, fingerprint, randomArt } from '../../keys/fingerprint.js';
import { findKnownHostText, hashKnownHostsText, removeKnownHostText, replaceWithBackup } from '../../keys/known-hosts-edit.js';
import type { KnownHostsInvalidLine } from '../../keys/known-hosts-edit.js';
import { splitFileLines, splitKnownHostsLine } from '../../keys/known-hosts.js';
import type { KnownHostsMarker } from '../../keys/known-hosts.js';
import { hasWildcards } from '../../keys/patterns.js';
import { decodePublicKeyFields, splitKeyFields } from '../../keys/public-key-text.js';
import { describeError, err, fatal, KeygenExit, out } from './console.js';
import { userHome } from './load.js';
import type { KeygenOptions } from './options.js';

/** ssh-keygen shows at most this much of a host list in its wildcard warning. */
const SHOWN_HOSTS = 64;

function markerNote(marker: KnownHostsMarker | undefined): string {
  if (marker === 'cert-authority') return 'CA';
  if (marker === 'revoked') return 'REVOKED';
  return '';
}

/** A line's key and comment, or undefined when its key does not decode (ssh-keygen -F -l then skips the line). */
function lineKey(raw: string): { blob: Buffer; comment: string } | undefined {
  const split = splitKnownHostsLine(raw);
  if (split.kind !== 'entry') return undefined;
  const fields = splitKeyFields(split.fields.rawKey);
  if (fields === undefined) return undefined;
  try {
    return { blob: decodePublicKeyFields(fields.type, fields.base64).blob, comment: fields.comment };
  } catch (error) {
    if (error instanceof KeyFormatError) return undefined;
    throw error;
  }
}

function find(options: KeygenOptions, text: string, name: string): void {
  const lines = splitFileLines(text);
  let found = false;
  for (const match of findKnownHostText(text, name, { hash: options.hashHosts })) {
    const raw = lines[match.line - 1]!;
    const key = options.fingerprint && !options.hashHosts ? lineKey(raw) : undefined;
    if (options.fingerprint && !options.hashHosts && key === undefined) continue;
    found = true;
    if (!options.quiet) out(`# Host ${name} found: line ${match.line} ${markerNote(match.marker)}\n`);
    if (key !== undefined) {
      const shown = options.bubbleBabble ? bubbleBabble(key.blob) : fingerprint(key.blob, options.hash);
      out(`${name} ${describeKey(key.blob).label} ${shown}${key.comment === '' ? '' : ` ${key.comment}`}\n`);
      if (options.verbose) out(`${randomArt(key.blob, { hash: options.hash })}\n`);
    } else {
      out(`${match.output.join('\n')}\n`);
    }
  }
  if (!found) throw new KeygenExit(1);
}

/** Per-line messages in file order: invalid lines and (for -H) host lists left unhashed for their wildcards. */
function reportLines(path: string, invalid: readonly KnownHostsInvalidLine[], notes: ReadonlyMap<number, string>): void {
  const messages = new Map(notes);
  for (const bad of invalid) messages.set(bad.line, 'invalid line');
  for (const line of [...messages.keys()].sort((a, b) => a - b)) err(`${path}:${line}: ${messages.get(line)!}\n`);
}

function refuseInvalid(path: string): KeygenExit {
  return new KeygenExit(1, `${path} is not a valid known_hosts file.\nNot replacing existing known_hosts file because of errors`);
}

/** Rewrite the file keeping the old one as F.old; returns that name. */
async function replace(path: string, text: string): Promise<string> {
  let backup: string;
  try {
    backup = await replaceWithBackup(path, text);
  } catch (error) {
    throw fatal(`Cannot update ${path}: ${describeError(error)}`);
  }
  out(`${path} updated.\nOriginal contents retained as ${backup}\n`);
  return backup;
}

async function remove(options: KeygenOptions, path: string, text: string, name: string): Promise<void> {
  const result = removeKnownHostText(text, name);
  if (!options.quiet) for (const line of result.removed) out(`# Host ${name} found: line ${line}\n`);
  reportLines(path, result.invalid, new Map());
  if (result.invalid.length > 0) throw refuseInvalid(path);
  if (result.removed.length === 0) {
    err(`Host ${name} not found in ${path}\n`);
    return;
  }
  await replace(path, result.text);
}

async function hash(path: string, text: string): Promise<void> {
  const wildcards = new Map<number, string>();
  splitFileLines(text).forEach((raw, index) => {
    const split = splitKnownHostsLine(raw);
    if (split.kind === 'entry' && hasWildcards(split.fields.hosts)) {
      wildcards.set(index + 1, `ignoring host name with wildcard: ${split.fields.hosts.slice(0, SHOWN_HOSTS)}`);
    }
  });
  const result = hashKnownHostsText(text);
  reportLines(path, result.invalid, wildcards);
  if (result.invalid.length > 0) throw refuseInvalid(path);
  const backup = await replace(path, result.text);
  if (result.hashed > 0) err(`WARNING: ${backup} contains unhashed entries\nDelete this file to ensure privacy of hostnames\n`);
}

export async function knownHostsCommand(options: KeygenOptions): Promise<void> {
  const path = options.file ?? `${userHome()}/.ssh/known_hosts`;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw fatal(`Cannot stat ${path}: ${describeError(error)}`);
  }
  if (options.findHost !== undefined) find(options, text, options.findHost);
  else if (options.removeHost !== undefined) await remove(options, path, text, options.removeHost);
  else await hash(path, text);
}
