/**
 * tsshd's command helpers driven directly, without tsshd: the C one (src/cli/sshd/spawner.c,
 * built into dist/libexec by scripts/build-spawner.mjs) and the Perl one (spawn-helper.ts) speak
 * one protocol, and both are held to it here: a command gets its stdin, stdout, stderr, folder,
 * environment and (as root) the user's credentials; its status comes back; a program that cannot
 * run, a FIFO that is gone, malformed requests and garbage on the control channel are each handled
 * as the header of spawn-helper.ts says, and the helper serves on. The helpers as tsshd uses them
 * are tested in test/interop/tsshd-spawn-helper.test.ts.
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnHelperProgram, type SpawnHelperProgram } from '../../src/cli/sshd/spawn-helper.js';
import { peersRequired } from '../helpers/peers.js';

/** scripts/build-spawner.mjs, from dist/test/cli. */
const BUILD_SPAWNER = fileURLToPath(new URL('../../../scripts/build-spawner.mjs', import.meta.url));

const NEEDS = {
  native: 'needs dist/libexec/tsshd-spawner, which scripts/build-spawner.mjs builds with a C compiler (Debian package gcc)',
  perl: 'needs perl (Debian package perl-base)',
} as const;

/** A running helper, its stdout read line by line. */
class Driver {
  private readonly lines: string[] = [];
  private readonly waiting: Array<() => void> = [];
  private text = '';
  private nextId = 0;
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly socketPath: string,
    readonly dir: string,
  ) {
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => {
      this.text += chunk;
      for (let end = this.text.indexOf('\n'); end >= 0; end = this.text.indexOf('\n')) {
        this.lines.push(this.text.slice(0, end));
        this.text = this.text.slice(end + 1);
      }
      for (const wake of this.waiting.splice(0)) wake();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(program: SpawnHelperProgram, dir: string): Promise<Driver> {
    const socketPath = join(dir, 'spawner.sock');
    const child = spawn(program.file, [...program.args, socketPath], { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'inherit'] });
    const driver = new Driver(child, socketPath, dir);
    assert.equal(await driver.line((line) => line === 'R'), 'R');
    return driver;
  }

  /** The first line (removed) that `match` accepts, waiting up to 10 s for it. */
  async line(match: (line: string) => boolean): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const index = this.lines.findIndex(match);
      if (index >= 0) return this.lines.splice(index, 1)[0]!;
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`no such line from the helper; it said ${JSON.stringify(this.lines)}`);
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** Send raw bytes as one connection's request; returns the connection (the command's stdin). */
  raw(bytes: Buffer): Socket {
    const socket = connect(this.socketPath);
    socket.on('error', () => undefined);
    socket.write(bytes);
    return socket;
  }

  /** A well-formed request; returns its id and the connection. */
  request(fields: {
    cwd?: string;
    user?: { uid: number; gid: number; groups: number[] };
    stdout: string;
    stderr: string;
    file: string;
    argv0: string;
    args: string[];
    env?: string[];
    id?: number;
  }): { id: number; stdin: Socket } {
    const id = fields.id ?? this.nextId++;
    const body = [
      String(id),
      fields.cwd ?? '/',
      fields.user ? String(fields.user.uid) : '',
      fields.user ? String(fields.user.gid) : '',
      fields.user ? fields.user.groups.join(',') : '',
      fields.stdout,
      fields.stderr,
      '65536',
      fields.file,
      fields.argv0,
      String(fields.args.length),
      ...fields.args,
      ...(fields.env ?? ['PATH=/usr/bin:/bin']),
    ].join('\0');
    const payload = Buffer.from(body);
    return { id, stdin: this.raw(Buffer.concat([Buffer.from(`${String(payload.length).padStart(9, '0')}\n`), payload])) };
  }

  control(text: string): void {
    this.child.stdin!.write(text);
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

let fifoCount = 0;

/** A stdout and a stderr FIFO with their read ends open (as tsshd holds them), read to the end. */
function outputs(dir: string): { stdout: string; stderr: string; read: Promise<{ out: string; err: string }>; close: () => void } {
  const sockets: Socket[] = [];
  const make = (): { path: string; text: Promise<string> } => {
    const path = join(dir, `fifo-${fifoCount++}`);
    const made = spawnSync('mkfifo', ['-m', '0600', path]);
    assert.equal(made.status, 0, `mkfifo: ${made.stderr}`);
    const socket = new Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
    sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const text = new Promise<string>((resolve, reject) => {
      socket.once('end', () => resolve(Buffer.concat(chunks).toString()));
      socket.once('error', reject);
    });
    return { path, text };
  };
  const out = make();
  const err = make();
  return {
    stdout: out.path,
    stderr: err.path,
    read: Promise.all([out.text, err.text]).then(([o, e]) => ({ out: o, err: e })),
    // For FIFOs no command got: their read ends would wait for a writer for ever.
    close: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** The `X id status` of request `id`, as a number. */
async function status(driver: Driver, id: number): Promise<number> {
  const line = await driver.line((l) => l.startsWith(`X ${id} `) || l.startsWith(`F ${id} `));
  assert.match(line, /^X \d+ \d+$/, line);
  return Number(line.split(' ')[2]);
}

for (const kind of ['native', 'perl'] as const) {
  describe(`the ${kind === 'native' ? 'C' : 'Perl'} spawn helper, driven directly`, () => {
    const program = spawnHelperProgram(kind);
    let dir = '';
    let driver: Driver | undefined;

    /** Skip (naming what is missing) unless the helper exists; a failure under TSSH_REQUIRE_PEERS=1. */
    const ready = (t: TestContext): boolean => {
      if (driver) return true;
      assert.ok(!peersRequired(), `${NEEDS[kind]}, and TSSH_REQUIRE_PEERS=1`);
      t.skip(NEEDS[kind]);
      return false;
    };

    before(async () => {
      if (!program) return;
      dir = mkdtempSync(join(tmpdir(), 'tssh-spawner-'));
      driver = await Driver.start(program, dir);
    });
    after(async () => {
      driver?.child.stdin!.end();
      if (driver) assert.equal(await driver.exited, 0, 'the helper exits 0 when its stdin ends');
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('a command gets its stdin, stdout, stderr, folder and environment, and its exit status comes back', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const { id, stdin } = driver!.request({
        cwd: dir,
        ...io,
        file: 'sh',
        argv0: 'sh',
        args: ['-c', 'read x; echo "$x $PWD $FOO $0"; echo e >&2; exit 7'],
        env: ['PATH=/usr/bin:/bin', 'FOO=bar=baz'],
      });
      stdin.end('hi\n');
      assert.equal(await status(driver!, id), 7 << 8);
      assert.deepEqual(await io.read, { out: `hi ${dir} bar=baz sh\n`, err: 'e\n' });
      assert.equal(existsSync(io.stdout) || existsSync(io.stderr), false, 'the FIFO names are removed');
    });

    test('a missing folder: the command runs in /', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const { id, stdin } = driver!.request({ cwd: join(dir, 'absent'), ...io, file: '/bin/sh', argv0: 'sh', args: ['-c', 'pwd'] });
      stdin.end();
      assert.equal(await status(driver!, id), 0);
      assert.equal((await io.read).out, '/\n');
    });

    test('a program that cannot be run: status 127 and the reason on its stderr', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const { id, stdin } = driver!.request({ ...io, file: join(dir, 'no-such-program'), argv0: 'x', args: [] });
      stdin.end();
      assert.equal(await status(driver!, id), 127 << 8);
      const { err } = await io.read;
      assert.match(err, /^tsshd: .*no-such-program: No such file or directory\n$/);
    });

    test('a program without a slash is looked for in the PATH of its own environment', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const found = driver!.request({ ...io, file: 'echo', argv0: 'echo', args: ['found'], env: ['PATH=/nonexistent:/bin'] });
      found.stdin.end();
      assert.equal(await status(driver!, found.id), 0);
      assert.equal((await io.read).out, 'found\n');
      const missing = outputs(dir);
      const lost = driver!.request({ ...missing, file: 'echo', argv0: 'echo', args: ['lost'], env: ['PATH=/nonexistent'] });
      lost.stdin.end();
      assert.equal(await status(driver!, lost.id), 127 << 8);
      assert.match((await missing.read).err, /^tsshd: echo: No such file or directory\n$/);
    });

    test('malformed credentials: status 127 and the reason, nothing run', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const { id, stdin } = driver!.request({ ...io, user: { uid: Number.NaN, gid: 0, groups: [] }, file: '/bin/echo', argv0: 'echo', args: ['ran'] });
      stdin.end();
      assert.equal(await status(driver!, id), 127 << 8);
      assert.deepEqual(await io.read, { out: '', err: 'tsshd: malformed credentials\n' });
    });

    test('an output FIFO that is gone: F with the reason, and the next command runs', async (t) => {
      if (!ready(t)) return;
      const io = outputs(dir);
      const { id } = driver!.request({ stdout: join(dir, 'gone'), stderr: io.stderr, file: '/bin/true', argv0: 'true', args: [] });
      assert.equal(await driver!.line((l) => l.startsWith(`F ${id} `) || l.startsWith(`X ${id} `)), `F ${id} No such file or directory`);
      assert.equal(existsSync(io.stderr), false, 'the other FIFO is removed');
      io.close();
      const next = outputs(dir);
      const good = driver!.request({ ...next, file: '/bin/echo', argv0: 'echo', args: ['ok'] });
      good.stdin.end();
      assert.equal(await status(driver!, good.id), 0);
      assert.equal((await next.read).out, 'ok\n');
    });

    test('malformed requests are dropped without an answer, and the helper serves on', async (t) => {
      if (!ready(t)) return;
      const framed = (body: string): Buffer => Buffer.from(`${String(Buffer.byteLength(body)).padStart(9, '0')}\n${body}`);
      const bodies = [
        Buffer.from('garbage\n'),
        Buffer.from('00000001x\n'),
        Buffer.from(`${String(50).padStart(9, '0')}\nshort`), // closed before the body is complete
        framed('1\0/\0\0'), // too few fields
        framed(['2', '/', '', '', '', '/a', '/b', '0', 'f', 'a', '99'].join('\0')), // more arguments than fields
        framed(['x', '/', '', '', '', '/a', '/b', '0', 'f', 'a', '0'].join('\0')), // an id that is no number
      ];
      for (const body of bodies) {
        const socket = driver!.raw(body);
        socket.end();
        await new Promise((resolve) => socket.once('close', resolve));
      }
      assert.ok(driver!.alive());
      const io = outputs(dir);
      const good = driver!.request({ ...io, file: '/bin/echo', argv0: 'echo', args: ['still here'], id: 1000 });
      good.stdin.end();
      assert.equal(await status(driver!, good.id), 0);
      assert.equal((await io.read).out, 'still here\n');
    });

    test('a signal for a command reaches it, also one sent before the helper has read its request', async (t) => {
      if (!ready(t)) return;
      // Before: the id is higher than any seen, so the signal waits for that request.
      driver!.control('K 2000 15\n');
      const early = outputs(dir);
      const first = driver!.request({ ...early, file: '/bin/sleep', argv0: 'sleep', args: ['30'], id: 2000 });
      assert.equal(await status(driver!, first.id), 15);
      // After: the command runs (most likely by now), then the signal comes.
      const late = outputs(dir);
      const second = driver!.request({ ...late, file: '/bin/sleep', argv0: 'sleep', args: ['30'], id: 2001 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      driver!.control('K 2001 9\n');
      assert.equal(await status(driver!, second.id), 9);
      await late.read;
      // For an id already seen and ended, a signal is dropped (never reaching a reused pid).
      driver!.control('K 2000 9\n');
      assert.ok(driver!.alive());
    });

    test("as root: the user's uid, gid and groups, exactly", async (t) => {
      if (!ready(t)) return;
      if (process.getuid?.() !== 0) {
        // As the other tests that switch users: CI runs as root, so there a skip is a failure.
        assert.ok(!peersRequired(), 'needs root (switching users), and TSSH_REQUIRE_PEERS=1');
        t.skip('needs root (switching users)');
        return;
      }
      const io = outputs(dir);
      const { id, stdin } = driver!.request({
        ...io,
        user: { uid: 65534, gid: 65533, groups: [65533, 4242] },
        file: '/bin/sh',
        argv0: 'sh',
        args: ['-c', 'id -u; id -g; id -G | tr " " "\\n" | sort -n | tr "\\n" " "'],
      });
      stdin.end();
      assert.equal(await status(driver!, id), 0);
      assert.deepEqual((await io.read).out.trim().split('\n'), ['65534', '65533', '4242 65533']);
      // No groups named: the gid alone.
      const alone = outputs(dir);
      const second = driver!.request({ ...alone, user: { uid: 65534, gid: 65534, groups: [] }, file: '/bin/sh', argv0: 'sh', args: ['-c', 'id -G'] });
      second.stdin.end();
      assert.equal(await status(driver!, second.id), 0);
      assert.equal((await alone.read).out, '65534\n');
    });

    test('garbage on its control channel: the helper exits (tsshd starts another)', async (t) => {
      if (!ready(t) || !program) return;
      const own = await Driver.start(program, mkdtempSync(join(tmpdir(), 'tssh-spawner-')));
      try {
        own.control(`not a command\n${'x'.repeat(2000)}`);
        assert.equal(await own.exited, 2);
      } finally {
        rmSync(own.dir, { recursive: true, force: true });
      }
    });
  });
}

test('tsshd runs the C helper when it was built, the Perl one when TSSH_SPAWN_HELPER=perl says so', (t) => {
  const native = spawnHelperProgram('native');
  if (!native) {
    assert.ok(!peersRequired(), `${NEEDS.native}, and TSSH_REQUIRE_PEERS=1`);
    t.skip(NEEDS.native);
    return;
  }
  const saved = process.env.TSSH_SPAWN_HELPER;
  try {
    delete process.env.TSSH_SPAWN_HELPER;
    assert.deepEqual(spawnHelperProgram(), native);
    process.env.TSSH_SPAWN_HELPER = 'perl';
    assert.equal(spawnHelperProgram()?.kind, spawnHelperProgram('perl') ? 'perl' : undefined);
  } finally {
    if (saved === undefined) delete process.env.TSSH_SPAWN_HELPER;
    else process.env.TSSH_SPAWN_HELPER = saved;
  }
});

test('spawner.c compiles without a warning (-Wall -Wextra -Werror at -O2), with cc and, when there, clang', (t) => {
  const compilers = ['cc', 'clang'].filter((name) => spawnSync(name, ['--version']).status === 0);
  if (!compilers.includes('cc')) {
    assert.ok(!peersRequired(), 'needs a C compiler (Debian package gcc), and TSSH_REQUIRE_PEERS=1');
    t.skip('needs a C compiler (Debian package gcc)');
    return;
  }
  for (const compiler of compilers) {
    const result = spawnSync(process.execPath, [BUILD_SPAWNER, '--check'], { encoding: 'utf8', env: { ...process.env, CC: compiler } });
    assert.equal(result.status, 0, result.stderr);
  }
});
