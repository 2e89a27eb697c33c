/**
 * tssh's glibc malloc setting (src/cli/malloc-tuning.ts): its `#!` line gives it to the process,
 * and the commands tssh starts do not inherit it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLIENT_MALLOC_TUNABLES, takeOwnMallocTunables } from '../../src/cli/malloc-tuning.js';
import { run } from '../helpers/auth-lab.js';

const TSSH = resolve('dist/bin/tssh.js');

test('takeOwnMallocTunables removes our value only', () => {
  const ours: NodeJS.ProcessEnv = { GLIBC_TUNABLES: CLIENT_MALLOC_TUNABLES, HOME: '/h' };
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, ours), CLIENT_MALLOC_TUNABLES);
  assert.deepEqual(ours, { HOME: '/h' });
  const users: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' };
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, users), undefined);
  assert.deepEqual(users, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
  assert.equal(takeOwnMallocTunables(CLIENT_MALLOC_TUNABLES, {}), undefined);
});

test("tssh started through its #! line has the setting, and a command it starts (Match exec) does not", async () => {
  const line = readFileSync(TSSH, 'utf8').split('\n', 1)[0]!;
  assert.equal(line, `#!/usr/bin/env -S GLIBC_TUNABLES=${CLIENT_MALLOC_TUNABLES} node --max-semi-space-size=1`);
  const dir = mkdtempSync(join(tmpdir(), 'tssh-malloc-'));
  try {
    // Exit 0 when this script lacks the variable and an ancestor (tssh, before any shell between)
    // was started with it: /proc/PID/environ is a process's environment as it started.
    const check = join(dir, 'check.sh');
    writeFileSync(
      check,
      [
        '#!/bin/sh',
        '[ -z "${GLIBC_TUNABLES+set}" ] || exit 1',
        'p=$PPID',
        'for i in 1 2 3; do',
        `  tr '\\0' '\\n' < /proc/$p/environ | grep -qx 'GLIBC_TUNABLES=${CLIENT_MALLOC_TUNABLES}' && exit 0`,
        "  p=$(cut -d ' ' -f 4 /proc/$p/stat)",
        'done',
        'exit 1',
        '',
      ].join('\n'),
    );
    chmodSync(check, 0o755);
    const config = join(dir, 'config');
    writeFileSync(config, `Match exec ${check}\n  Port 2201\nHost *\n  Port 2202\n`);
    // As the kernel runs a #! line: the interpreter, the rest of the line as one argument, the script.
    const interpreter = line.slice(2, line.indexOf(' '));
    const argument = line.slice(line.indexOf(' ') + 1);
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES;
    const started = await run(interpreter, [argument, TSSH, '-F', config, '-G', 'example.test'], { env });
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^port 2201$/m);
    // A value the user set is the user's: tssh's commands see it (and the check fails).
    const users = await run(process.execPath, [TSSH, '-F', config, '-G', 'example.test'], {
      env: { ...env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' },
    });
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /^port 2202$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
