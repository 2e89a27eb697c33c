#!/usr/bin/env node
/**
 * tssh-keygen: ssh-keygen's command line for making and managing keys.
 *
 *   tssh-keygen [-q] [-t ed25519|ecdsa|rsa] [-b bits] [-f file] [-N pass] [-C comment] [-m format]
 *   tssh-keygen -l [-v] [-E sha256|md5] [-f file]     tssh-keygen -B [-f file]
 *   tssh-keygen -y [-P pass] [-f file]                tssh-keygen -p [-P old] [-N new] [-f file]
 *   tssh-keygen -e [-m RFC4716|PKCS8|PEM] [-f file]   tssh-keygen -i [-m RFC4716|PKCS8|PEM] [-f file]
 *   tssh-keygen -F host [-lv] [-f known_hosts]        tssh-keygen -H [-f known_hosts]
 *   tssh-keygen -R host [-f known_hosts]
 *
 * Output, messages and exit statuses follow OpenSSH's ssh-keygen, so scripts written for it work:
 * 0 on success, 1 for a usage error or a refusal (an existing file not overwritten, a known_hosts
 * file with invalid lines, -F finding nothing), 255 for a failure (a missing file, a wrong
 * passphrase, a corrupt key).
 */
import { KeygenExit, PROGRAM } from './keygen/console.js';
import { exportCommand, importCommand } from './keygen/convert.js';
import { fingerprintCommand } from './keygen/fingerprint-command.js';
import { generateCommand } from './keygen/generate.js';
import { knownHostsCommand } from './keygen/known-hosts-commands.js';
import { parseOptions } from './keygen/options.js';
import { changePassphraseCommand, printPublicCommand } from './keygen/private-commands.js';

/** The operation, chosen with ssh-keygen's precedence when several flags are given. */
async function run(argv: readonly string[]): Promise<void> {
  const options = parseOptions(argv);
  if (options.findHost !== undefined || options.removeHost !== undefined || options.hashHosts) return knownHostsCommand(options);
  if (options.fingerprint || options.bubbleBabble) return fingerprintCommand(options);
  if (options.changePassphrase) return changePassphraseCommand(options);
  if (options.exportKey) return exportCommand(options);
  if (options.importKey) return importCommand(options);
  if (options.printPublic) return printPublicCommand(options);
  return generateCommand(options);
}

function exit(status: number, message: string): never {
  if (message !== '') process.stderr.write(`${message}\n`);
  // stdout and stderr are synchronous for files and pipes on POSIX, so nothing written is lost;
  // exiting explicitly also releases stdin, which a prompt may have left open.
  process.exit(status);
}

// A reader that stops early (`tssh-keygen -l -f big | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(255);
  throw error;
});

run(process.argv.slice(2)).then(
  () => exit(0, ''),
  (error: unknown) => {
    if (error instanceof KeygenExit) exit(error.status, error.message);
    exit(255, `${PROGRAM}: ${error instanceof Error ? error.message : String(error)}`);
  },
);
