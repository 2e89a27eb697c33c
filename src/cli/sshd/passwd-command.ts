/**
 * `tsshd passwd`: manage tsshd's password file.
 *   tsshd passwd [-f FILE] add USER      (reads the password from stdin, or asks twice on a terminal)
 *   tsshd passwd [-f FILE] remove USER
 *   tsshd passwd [-f FILE] list
 */
import { hashPassword, readPasswordFile, writePasswordFile } from './password-file.js';
import { readSecret } from '../terminal.js';

export async function passwdCommand(args: string[], defaultFile: string): Promise<number> {
  let file = defaultFile;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-f') file = args[++i] ?? file;
    else rest.push(args[i]!);
  }
  const [action, user] = rest;
  const entries = await readPasswordFile(file);
  switch (action) {
    case 'list':
      for (const name of entries.keys()) process.stdout.write(`${name}\n`);
      return 0;
    case 'add': {
      if (!user || !/^[A-Za-z0-9._][A-Za-z0-9._@-]*$/.test(user)) {
        process.stderr.write('tsshd passwd add: give a user name (letters, digits, . _ - @)\n');
        return 1;
      }
      const password = await readSecret(`New password for ${user}: `, true);
      if (password === undefined || password === '') {
        process.stderr.write('tsshd passwd add: empty password refused\n');
        return 1;
      }
      entries.set(user, await hashPassword(password));
      await writePasswordFile(file, entries);
      process.stderr.write(`password for ${user} set in ${file}\n`);
      return 0;
    }
    case 'remove': {
      if (!user || !entries.delete(user)) {
        process.stderr.write(`tsshd passwd remove: no user ${user ?? ''} in ${file}\n`);
        return 1;
      }
      await writePasswordFile(file, entries);
      process.stderr.write(`${user} removed from ${file}\n`);
      return 0;
    }
    default:
      process.stderr.write('usage: tsshd passwd [-f file] add USER | remove USER | list\n');
      return 1;
  }
}
